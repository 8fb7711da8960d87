//! Test support: where the built components are, a runtime with test limits, and a real HTTP
//! upstream on loopback that speaks the `http-json` connector's API.

pub mod conformance;
pub mod link;
pub mod scenario;
pub mod upstream;
pub mod vendor;

use std::path::PathBuf;

use weft_runtime::{ConnectorPlugin, Limits, Runtime, RuntimeConfig, TransformPlugin};

/// The directory the build script compiled every component into.
pub const WASM_DIR: &str = env!("WEFT_WASM_DIR");

/// A component by crate name, e.g. `weft_plugin_map`.
pub fn wasm(crate_name: &str) -> PathBuf {
    PathBuf::from(WASM_DIR).join(format!("{crate_name}.wasm"))
}

pub const MAP: &str = "weft_plugin_map";
pub const HTTP_JSON: &str = "weft_plugin_http_json";
pub const SALESFORCE: &str = "weft_plugin_salesforce";
pub const HUBSPOT: &str = "weft_plugin_hubspot";
pub const ZENDESK: &str = "weft_plugin_zendesk";
pub const ZOHO_CRM: &str = "weft_plugin_zoho_crm";
pub const DYNAMICS365: &str = "weft_plugin_dynamics365";
pub const MONDAY: &str = "weft_plugin_monday";
pub const PARTNER_CENTER: &str = "weft_plugin_partner_center";
pub const HOSTILE_TRANSFORM: &str = "weft_guest_hostile_transform";
pub const TRESPASSER: &str = "weft_guest_trespasser";
pub const IMPOSTOR: &str = "weft_guest_impostor";
pub const OLD_CONTRACT: &str = "weft_guest_old_contract";

/// A runtime with small slot counts, no on-disk cache, and `limits` adjusted by the caller.
pub fn runtime(adjust: impl FnOnce(&mut Limits)) -> Runtime {
    let mut limits = Limits {
        instances: 8,
        ..Limits::default()
    };
    adjust(&mut limits);
    Runtime::new(RuntimeConfig {
        limits,
        cache_dir: None,
    })
    .expect("runtime")
}

pub async fn transform(runtime: &Runtime, crate_name: &str) -> TransformPlugin {
    runtime
        .load_file(wasm(crate_name))
        .await
        .unwrap_or_else(|e| panic!("loading {crate_name}: {e}"))
        .into_transform()
        .unwrap_or_else(|| panic!("{crate_name} is not a transform"))
}

pub async fn connector(runtime: &Runtime, crate_name: &str) -> ConnectorPlugin {
    runtime
        .load_file(wasm(crate_name))
        .await
        .unwrap_or_else(|e| panic!("loading {crate_name}: {e}"))
        .into_connector()
        .unwrap_or_else(|| panic!("{crate_name} is not a connector"))
}

use weft_capabilities::{AuthSpec, Connection, Connections, HostRule, MasterKey, Secrets};
use weft_store::Store;

/// A secrets vault over an in-memory store with a fresh master key.
pub async fn secrets() -> Secrets {
    let store = Store::open_in_memory().await.expect("in-memory store");
    Secrets::new(store, MasterKey::generate("test"))
}

/// An egress rule for a loopback test server: plain http to a private address, allowed
/// explicitly, as a flow pointing at the local sandbox would.
pub fn loopback_rule(addr: std::net::SocketAddr) -> HostRule {
    HostRule::parse(&addr.to_string())
        .expect("rule")
        .allow_http(true)
        .allow_private(true)
}

/// One connection `name` for `plugin`, as a flow file would configure it.
pub async fn connections(
    plugin: &ConnectorPlugin,
    name: &str,
    config: serde_json::Value,
    auth: AuthSpec,
    egress: Vec<HostRule>,
    secrets: &Secrets,
    adjust: impl FnOnce(&mut weft_capabilities::ConnectionSpec),
) -> Connections {
    let mut spec = plugin
        .connection_spec(name, "default", config, auth, egress)
        .expect("connection spec");
    adjust(&mut spec);
    let mut connections = Connections::new();
    connections.insert(Connection::new(spec, secrets.clone()).expect("connection"));
    connections
}

/// The `X-Signature` the `http-json` connector verifies webhook deliveries by: `sha256=` and
/// the hex HMAC-SHA256 of `body` under `secret`.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mac = ring::hmac::sign(&key, body);
    let hex: String = mac.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}
