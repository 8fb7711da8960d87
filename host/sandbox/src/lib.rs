//! Local emulators of the CRM APIs weft connects to, started in-process for tests or by
//! `weft sandbox` for people developing flows offline.
//!
//! Each emulator listens on its own loopback port and serves the vendor's real paths at the
//! root, including its OAuth endpoints, so a connector only needs its base URLs changed. A
//! separate admin API resets and seeds data, reads the request log, injects faults, forces
//! token expiry and moves the sandbox clock.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_sandbox::SandboxError> {
//! use weft_sandbox::{Sandbox, SandboxConfig, Vendor};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! let zoho = sandbox.vendor(Vendor::Zoho).expect("zoho runs");
//! println!("{} {}", zoho.base_url(), zoho.credentials().client_id);
//! print!("{}", weft_sandbox::render_table(&sandbox));
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

// Handlers answer failures with the vendor's own error response, carried as the `Err` value;
// boxing every early return would only add noise.
#![allow(clippy::result_large_err)]

mod admin;
mod clock;
mod collection;
mod config;
mod demo;
mod error;
mod keys;
mod log;
mod oauth;
mod prng;
mod proxy;
mod server;
mod tokens;
mod vendor;
mod vendors;
mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    DataverseLimits, DemoData, DemoSize, FaultConfig, HubSpotLimits, MondayLimits,
    PartnerCenterLimits, PortPlan, SalesforceLimits, SandboxConfig, TokenLifetimes, WebhookConfig,
    ZendeskLimits, ZohoLimits,
};
pub use error::SandboxError;
pub use log::LoggedRequest;
pub use proxy::{HostRoute, Proxy, ProxyCa, ROUTED_HOSTS, route_host};
pub use server::Credentials;
pub use vendor::Vendor;
pub use webhook::{Attempt, Delivery};

use server::{Emulator, Hub};

/// A running set of emulators plus the admin API. Dropping it without `shutdown` leaves the
/// servers running until the Tokio runtime ends.
pub struct Sandbox {
    hub: Arc<Hub>,
    emulators: Arc<Vec<Arc<dyn Emulator>>>,
    data: Arc<Mutex<DemoData>>,
    admin_url: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// One running emulator.
#[derive(Clone, Copy)]
pub struct VendorHandle<'a> {
    emulator: &'a Arc<dyn Emulator>,
}

impl VendorHandle<'_> {
    pub fn vendor(&self) -> Vendor {
        self.emulator.vendor()
    }

    /// `http://127.0.0.1:PORT`, with no trailing slash; the vendor's API and OAuth paths are
    /// served under it exactly as on the real hosts.
    pub fn base_url(&self) -> &str {
        self.emulator
            .base_url()
            .get()
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn credentials(&self) -> Credentials {
        self.emulator.credentials()
    }
}

impl Sandbox {
    /// Binds every emulator and the admin API and starts serving.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        // reqwest is built without a default TLS provider; webhooks to https receivers need one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        validate(&config)?;
        let data = Arc::new(Mutex::new(config.data));
        let hub = Arc::new(Hub::new(config.clone()));
        let emulators: Vec<Arc<dyn Emulator>> = vendors::build(&hub, &config)?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for emu in &emulators {
            let port = match config.ports {
                PortPlan::Ephemeral => 0,
                PortPlan::Fixed { first_vendor, .. } => first_vendor + emu.vendor().port_offset(),
            };
            let listener = bind(
                emu.vendor().display_name(),
                SocketAddr::new(config.host, port),
            )
            .await?;
            let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
                vendor: emu.vendor().display_name(),
                addr: SocketAddr::new(config.host, port),
                source,
            })?;
            let _ = emu.base_url().set(format!("http://{addr}"));
            let router = Arc::clone(emu).router();
            tasks.push(tokio::spawn(server::serve(
                listener,
                router,
                Some((Arc::clone(emu), Arc::clone(&hub))),
                stop_rx.clone(),
            )));
        }
        let emulators = Arc::new(emulators);
        let admin_port = match config.ports {
            PortPlan::Ephemeral => 0,
            PortPlan::Fixed { admin, .. } => admin,
        };
        let listener = bind("admin API", SocketAddr::new(config.host, admin_port)).await?;
        let admin_addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            vendor: "admin API",
            addr: SocketAddr::new(config.host, admin_port),
            source,
        })?;
        let admin = admin::router(admin::Admin {
            hub: Arc::clone(&hub),
            emulators: Arc::clone(&emulators),
            data: Arc::clone(&data),
        });
        tasks.push(tokio::spawn(server::serve(listener, admin, None, stop_rx)));
        tracing::info!(admin = %admin_addr, emulators = emulators.len(), "sandbox started");
        Ok(Sandbox {
            hub,
            emulators,
            data,
            admin_url: format!("http://{admin_addr}"),
            stop,
            tasks,
        })
    }

    /// Starts the HTTPS proxy on `addr` (port 0 for any), signing with `ca`: clients that
    /// hard-code the vendors' hosts reach the emulators through it with only `HTTPS_PROXY` and
    /// the CA certificate set. It runs until `Proxy::shutdown`.
    pub async fn start_proxy(&self, addr: SocketAddr, ca: ProxyCa) -> Result<Proxy, SandboxError> {
        Proxy::start(addr, ca, Arc::clone(&self.hub), &self.emulators).await
    }

    /// The running emulators, in `Vendor::ALL` order.
    pub fn vendors(&self) -> impl Iterator<Item = VendorHandle<'_>> {
        self.emulators
            .iter()
            .map(|emulator| VendorHandle { emulator })
    }

    /// The emulator for `vendor`, or `None` if this build does not include it yet.
    pub fn vendor(&self, vendor: Vendor) -> Option<VendorHandle<'_>> {
        self.vendors().find(|h| h.vendor() == vendor)
    }

    /// `{vendor}_url` (`http://127.0.0.1:PORT`) and `{vendor}_host` (`127.0.0.1:PORT`) of every
    /// emulator, the vendor's slug with `_` for `-`: the variables through which a flow's
    /// `sandbox` environment points its connections at this sandbox.
    pub fn flow_variables(&self) -> std::collections::BTreeMap<String, String> {
        let mut vars = std::collections::BTreeMap::new();
        for handle in self.vendors() {
            let url = handle.base_url().to_owned();
            let prefix = handle.vendor().slug().replace('-', "_");
            vars.insert(
                format!("{prefix}_host"),
                url.trim_start_matches("http://").to_owned(),
            );
            vars.insert(format!("{prefix}_url"), url);
        }
        vars
    }

    /// Base URL of the admin API (`/admin/...` paths).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Current seed and sizes of the demo data.
    pub fn data(&self) -> DemoData {
        *self.data.lock().expect("data")
    }

    /// Makes every live access token of `vendor` (all vendors for `None`) expire now.
    pub fn expire_tokens(&self, vendor: Option<Vendor>) -> usize {
        self.hub.tokens.expire_all(vendor, self.hub.now_ms())
    }

    pub fn set_faults(&self, vendor: Option<Vendor>, faults: FaultConfig) {
        self.hub.set_faults(vendor, faults);
    }

    /// Moves the sandbox clock forward (token, cursor, channel and referral expiries follow it).
    pub fn advance_clock(&self, by: Duration) {
        self.hub.clock.advance(by.as_millis() as i64);
    }

    /// The sandbox clock (wall clock plus every `advance_clock`); tokens, JWT `exp` checks and
    /// expiries use it.
    pub fn now(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + Duration::from_millis(self.hub.now_ms().max(0) as u64)
    }

    /// Requests received, oldest first.
    pub fn requests(&self, vendor: Option<Vendor>) -> Vec<LoggedRequest> {
        self.hub.log.query(vendor, 0, usize::MAX)
    }

    /// Webhook deliveries and their attempts.
    pub fn deliveries(&self, vendor: Option<Vendor>) -> Vec<Delivery> {
        self.hub.outbox.list(vendor)
    }

    /// Stops every server and closes open connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Signature checks for tests of webhook receivers (Partner Center signs with RSA-SHA256).
pub mod verify {
    /// Whether `signature` is a valid RSASSA-PKCS1-v1_5 SHA-256 signature of `message` for the
    /// key in `pem` (a `CERTIFICATE`, `PUBLIC KEY` or `RSA PUBLIC KEY` block).
    pub fn rsa_sha256(pem: &str, message: &[u8], signature: &[u8]) -> Result<bool, String> {
        let key = crate::keys::rsa_public_key_der(pem)?;
        Ok(crate::keys::verify_rs256(&key, message, signature))
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, SandboxError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SandboxError::Bind {
            vendor: what,
            addr,
            source,
        })
}

fn validate(c: &SandboxConfig) -> Result<(), SandboxError> {
    let f = c.faults;
    for (name, x) in [
        ("rate_limited", f.rate_limited),
        ("server_error", f.server_error),
        ("dropped", f.dropped),
        ("slow", f.slow),
        ("token_expired", f.token_expired),
    ] {
        if !(0.0..=1.0).contains(&x) {
            return Err(SandboxError::Config(format!(
                "faults.{name} must be between 0.0 and 1.0, got {x}"
            )));
        }
    }
    if c.zoho.max_per_page == 0
        || c.zendesk.max_page_size == 0
        || c.salesforce.query_batch_size == 0
    {
        return Err(SandboxError::Config("page sizes must be at least 1".into()));
    }
    Ok(())
}

/// The table `weft sandbox` prints: one block per emulator with its base URL and demo
/// credentials, then the admin API.
pub fn render_table(sandbox: &Sandbox) -> String {
    let mut out = String::new();
    out.push_str(&format!("{:<26} {}\n", "EMULATOR", "BASE URL"));
    for h in sandbox.vendors() {
        out.push_str(&format!(
            "{:<26} {}\n",
            h.vendor().display_name(),
            h.base_url()
        ));
        let c = h.credentials();
        let mut rows: Vec<(String, String)> = vec![
            ("client id".into(), c.client_id),
            ("client secret".into(), c.client_secret),
            ("user".into(), c.username),
        ];
        if let Some(t) = c.refresh_token {
            rows.push(("refresh token".into(), t));
        }
        if let Some(t) = c.api_token {
            rows.push(("api token".into(), t));
        }
        for (k, v) in c.extra {
            if v.contains('\n') {
                rows.push((
                    k.replace('_', " "),
                    "(multi-line; GET /admin/vendors)".into(),
                ));
            } else {
                rows.push((k.replace('_', " "), v));
            }
        }
        for (k, v) in rows.into_iter().filter(|(_, v)| !v.is_empty()) {
            out.push_str(&format!("  {k:<24} {v}\n"));
        }
    }
    out.push_str(&format!("{:<26} {}\n", "admin API", sandbox.admin_url()));
    out.push_str("  reset/seed/log/faults     POST /admin/reset, POST /admin/seed, GET /admin/log, PUT /admin/faults\n");
    out.push_str("  tokens/clock/webhooks     POST /admin/tokens/expire, POST /admin/clock/advance, GET /admin/webhooks\n");
    out
}
