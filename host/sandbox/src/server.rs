//! What every emulator shares: the hub of sandbox-wide state, the request wrapper that logs
//! and injects faults, and an accept loop that can drop a connection without answering.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::clock::{Clock, rfc3339};
use crate::config::{DemoData, FaultConfig, SandboxConfig};
use crate::log::{LoggedRequest, RequestLog, loggable_body, loggable_uri, redact_header};
use crate::prng::SplitMix;
use crate::tokens::TokenStore;
use crate::vendor::Vendor;
use crate::webhook::Outbox;

/// Largest request body an emulator accepts (vendors cap payloads far below this).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Sandbox-wide state every emulator and the admin API can reach.
pub(crate) struct Hub {
    pub config: SandboxConfig,
    pub clock: Arc<Clock>,
    pub log: RequestLog,
    pub tokens: TokenStore,
    pub outbox: Arc<Outbox>,
    faults: Mutex<HashMap<Vendor, FaultConfig>>,
    fault_seq: AtomicU64,
    request_seq: AtomicU64,
    in_flight: Mutex<HashMap<Vendor, u32>>,
}

/// Decrements a vendor's in-flight count when the request is done, however it ends.
struct InFlight<'a> {
    hub: &'a Hub,
    vendor: Vendor,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(n) = self
            .hub
            .in_flight
            .lock()
            .expect("in flight")
            .get_mut(&self.vendor)
        {
            *n = n.saturating_sub(1);
        }
    }
}

impl Hub {
    pub(crate) fn new(config: SandboxConfig) -> Self {
        let faults = Vendor::ALL
            .into_iter()
            .map(|v| (v, config.faults))
            .collect();
        Self {
            outbox: Arc::new(Outbox::new(config.webhooks.clone())),
            config,
            clock: Arc::new(Clock::default()),
            log: RequestLog::default(),
            tokens: TokenStore::default(),
            faults: Mutex::new(faults),
            fault_seq: AtomicU64::new(0),
            request_seq: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn faults(&self, vendor: Vendor) -> FaultConfig {
        self.faults.lock().expect("faults")[&vendor]
    }

    pub(crate) fn set_faults(&self, vendor: Option<Vendor>, faults: FaultConfig) {
        let mut f = self.faults.lock().expect("faults");
        for v in Vendor::ALL {
            if vendor.is_none_or(|x| x == v) {
                f.insert(v, faults);
            }
        }
    }

    /// Draws the fault dice for one request from the seeded stream.
    fn roll(&self) -> SplitMix {
        let n = self.fault_seq.fetch_add(1, Ordering::Relaxed);
        SplitMix::new(self.config.data.seed, 0xFA_u64 << 32, n)
    }
}

/// What the request wrapper tells handlers about the current request.
#[derive(Debug, Clone)]
pub(crate) struct RequestCtx {
    /// Fault injection chose to treat the caller's access token as expired.
    pub force_expired: bool,
    /// Requests to this emulator being handled right now, this one included (concurrency limits).
    pub in_flight: u32,
    /// When the request arrived, so vendors that meter execution time can measure it.
    pub received_at: Instant,
}

/// Demo credentials of one emulator, as printed by `weft sandbox`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    /// A refresh token issued at start-up, so a flow can run without the consent page.
    pub refresh_token: Option<String>,
    /// Static API token (Zendesk API token, monday personal token, HubSpot private app).
    pub api_token: Option<String>,
    /// The demo user the tokens act as (email or username).
    pub username: String,
    /// Vendor-specific values by name (`jwt_private_key_pem`, `webhook_signing_secret`, ...).
    pub extra: BTreeMap<String, String>,
}

/// One vendor emulator. Implementations keep their objects behind their own locks.
pub(crate) trait Emulator: Send + Sync + 'static {
    fn vendor(&self) -> Vendor;
    fn router(self: Arc<Self>) -> Router;
    /// Drops everything written and regenerates demo data for `data`.
    fn reset(&self, data: DemoData);
    /// Counts and subscriptions, for `GET /admin/vendors/{vendor}/state`.
    fn snapshot(&self) -> Value;
    /// One record as the vendor would return it, for `GET /admin/vendors/{vendor}/records/..`.
    fn record(&self, object: &str, id: &str) -> Option<Value>;
    /// The vendor's answer when it throttles a caller.
    fn throttled(&self) -> Response;
    /// The vendor's answer when it fails internally.
    fn server_error(&self) -> Response;
    fn credentials(&self) -> Credentials;
    fn base_url(&self) -> &OnceLock<String>;
    /// A vendor-specific admin action (`POST /admin/vendors/{vendor}/actions/{action}`), such as
    /// Partner Center's "a referral arrives from Microsoft". `None` if the action is unknown.
    fn admin_action(&self, _action: &str, _body: &Value) -> Option<Response> {
        None
    }

    /// Maps a received path onto the router's paths (Zendesk's optional `.json` suffix).
    fn rewrite_path(&self, _path: &str) -> Option<String> {
        None
    }
}

/// Serves `router` on `listener` until `shutdown` flips; with `emulator` set, requests are
/// logged and subject to fault injection.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    emulator: Option<(Arc<dyn Emulator>, Arc<Hub>)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let kill = Arc::new(Notify::new());
                let router = router.clone();
                let emulator = emulator.clone();
                let kill_in = Arc::clone(&kill);
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let router = router.clone();
                    let emulator = emulator.clone();
                    let kill = Arc::clone(&kill_in);
                    async move {
                        let resp = match emulator {
                            Some((emu, hub)) => handle(req, router, emu, hub, kill).await,
                            None => router.oneshot(req.map(Body::new)).await.unwrap_or_else(|e: Infallible| match e {}),
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let mut stop = shutdown.clone();
                conns.spawn(async move {
                    let conn = http1().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = kill.notified() => {}
                        _ = stop.changed() => {}
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        }
    }
    conns.abort_all();
}

/// The HTTP/1 server every emulator and the admin API use.
///
/// Header names go out in title case (`Content-Type`, `Sforce-Limit-Info`), as the vendors'
/// HTTP/1.1 front ends send them; `http` keeps names lower-case, which hyper would otherwise
/// write verbatim. Some clients look response headers up case-sensitively (airbyte-cdk reads
/// Salesforce's `Content-Type` that way). Documented for Salesforce (the REST API guide's
/// example responses: `Content-Type`, `Sforce-Limit-Info`, `Last-Modified`); inferred for the
/// others, whose documented examples use the same form. Title case cannot spell mixed-case names
/// such as Dataverse's `OData-Version` (it writes `Odata-Version`); HTTP/1.1 names are
/// case-insensitive, and no client we know of reads those case-sensitively.
pub(crate) fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.title_case_headers(true);
    builder
}

/// One request to `emu`: logged, subject to fault injection, then answered by `router`. A
/// dropped-connection fault notifies `kill` and never returns.
pub(crate) async fn handle(
    req: Request<Incoming>,
    router: Router,
    emu: Arc<dyn Emulator>,
    hub: Arc<Hub>,
    kill: Arc<Notify>,
) -> Response {
    let started = Instant::now();
    let seq = hub.request_seq.fetch_add(1, Ordering::Relaxed) + 1;
    let (mut parts, body) = req.into_parts();
    let (bytes, too_large) = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(b) => (b, false),
        Err(_) => (axum::body::Bytes::new(), true),
    };
    let uri = loggable_uri(&parts.uri.to_string());
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                redact_header(k.as_str(), v.to_str().unwrap_or("<binary>")),
            )
        })
        .collect();
    let in_flight = {
        let mut m = hub.in_flight.lock().expect("in flight");
        let n = m.entry(emu.vendor()).or_insert(0);
        *n += 1;
        *n
    };
    let _in_flight = InFlight {
        hub: &hub,
        vendor: emu.vendor(),
    };
    let faults = hub.faults(emu.vendor());
    let mut dice = hub.roll();
    let mut fault: Option<&'static str> = None;
    let mut force_expired = false;
    if dice.unit() < faults.dropped {
        fault = Some("dropped");
    } else if dice.unit() < faults.rate_limited {
        fault = Some("rate_limited");
    } else if dice.unit() < faults.server_error {
        fault = Some("server_error");
    } else {
        if dice.unit() < faults.slow {
            fault = Some("slow");
        }
        if dice.unit() < faults.token_expired {
            force_expired = true;
            fault = Some("token_expired");
        }
    }
    let response = match fault {
        _ if too_large => Some(
            (
                http::StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than the sandbox's {} MiB limit",
                    MAX_BODY / (1024 * 1024)
                ),
            )
                .into_response(),
        ),
        Some("dropped") => None,
        Some("rate_limited") => Some(emu.throttled()),
        Some("server_error") => Some(emu.server_error()),
        _ => {
            if fault == Some("slow") {
                tokio::time::sleep(Duration::from_millis(faults.slow_delay_ms)).await;
            }
            if let Some(p) = emu.rewrite_path(parts.uri.path()) {
                let pq = match parts.uri.query() {
                    Some(q) => format!("{p}?{q}"),
                    None => p,
                };
                if let Ok(u) = pq.parse() {
                    parts.uri = u;
                }
            }
            let mut req = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
            req.extensions_mut().insert(RequestCtx {
                force_expired,
                in_flight,
                received_at: started,
            });
            Some(
                router
                    .oneshot(req)
                    .await
                    .unwrap_or_else(|e: Infallible| match e {}),
            )
        }
    };
    hub.log.push(LoggedRequest {
        seq,
        vendor: emu.vendor(),
        method: parts.method.to_string(),
        uri,
        headers,
        body: loggable_body(&bytes),
        status: response.as_ref().map(|r| r.status().as_u16()).unwrap_or(0),
        fault,
        at: rfc3339(hub.now_ms()),
        duration_ms: started.elapsed().as_millis() as u64,
    });
    match response {
        Some(r) => r,
        None => {
            kill.notify_one();
            std::future::pending().await
        }
    }
}
