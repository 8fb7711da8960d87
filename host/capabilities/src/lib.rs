//! What a weft plugin's host imports do, as plain async Rust.
//!
//! The runtime (the wasmtime glue) calls into this crate; nothing here knows about WebAssembly.
//! One module per capability:
//!
//! - [`egress`]: which hosts a connection may reach ([`EgressPolicy`], [`is_global`]) and the DNS
//!   resolver that enforces it;
//! - [`http`]: a guest's request sent on behalf of a [`Connection`], with its limits and the
//!   guest-visible [`HttpError`];
//! - [`auth`]: credential kinds ([`AuthSpec`]), where the credential goes
//!   ([`CredentialPlacement`]), token exchange and caching;
//! - [`secrets`]: `secret:` / `env:` references, encryption at rest, [`redact`];
//! - [`hmac`]: webhook MACs computed with a secret the plugin never sees;
//! - [`log`]: plugin log calls into `tracing`, within a per-call budget;
//! - [`untrusted`]: plugin-supplied text made safe to store and print ([`Redactor`], [`printable`]);
//! - [`connection`]: [`Connection`] and the per-flow [`Connections`] registry.
//!
//! How the runtime wires a connection from a flow file and serves a plugin's `http` import:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use weft_capabilities::{
//!     AuthSpec, Connection, ConnectionSpec, Connections, CredentialPlacement, MasterKey,
//!     Request, Secrets,
//! };
//!
//! let data_dir = std::path::Path::new("/var/lib/weft");
//! let store = weft_store::Store::open_sqlite(data_dir.join("weft.db")).await?;
//! let secrets = Secrets::new(store, MasterKey::load(data_dir)?);
//!
//! let mut spec = ConnectionSpec::new("zoho");
//! spec.auth = AuthSpec::OAuth2Refresh {
//!     token_url: "https://accounts.zoho.jp/oauth/v2/token".into(),
//!     client_id: "env:ZOHO_CLIENT_ID".into(),
//!     client_secret: "secret:zoho_client_secret".into(),
//!     refresh_token: "secret:zoho_refresh".into(),
//!     scope: None,
//! };
//! // From the plugin's describe: where the token goes and which hosts the config implies.
//! spec.placement = CredentialPlacement::header("Authorization", "Zoho-oauthtoken {token}");
//! spec.derived_hosts = vec!["https://www.zohoapis.jp".into()];
//!
//! let connections: Connections = [Connection::new(spec, secrets)?].into_iter().collect();
//! // A guest call: `http.send("zoho", request)`.
//! let response = connections
//!     .require("zoho")?
//!     .send(Request::get("https://www.zohoapis.jp/crm/v8/Leads?per_page=200"))
//!     .await?;
//! println!("{}", response.status);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod budget;
pub mod connection;
pub mod egress;
pub mod hmac;
pub mod http;
pub mod log;
pub mod secrets;
pub mod untrusted;
pub mod usage;

pub use auth::{AuthSpec, CredentialPlacement};
pub use budget::RateBudget;
pub use connection::{Connection, ConnectionError, ConnectionSpec, Connections};
pub use egress::{
    DerivedHost, EgressDenied, EgressError, EgressPolicy, EgressResolver, HostRule, PolicyEntry,
    is_global,
};
pub use hmac::{HmacAlgorithm, MacError};
pub use http::{HttpError, HttpLimits, Request, Response};
pub use log::{LogContext, LogLevel, PluginLogger};
pub use secrets::{MasterKey, Secret, SecretError, SecretRef, Secrets, redact};
pub use untrusted::{Redactor, printable};
pub use usage::{Usage, Used};
