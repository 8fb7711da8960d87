//! A recording upstream on 127.0.0.1:0 and helpers to build connections against it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use weft_capabilities::{
    AuthSpec, Connection, ConnectionSpec, CredentialPlacement, HostRule, MasterKey, Secrets,
};
use weft_store::Store;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The body parsed as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    pub fn form_value(&self, key: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

type Handler = Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

#[derive(Clone)]
struct UpstreamState {
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Handler,
}

/// An HTTP/1.1 server on 127.0.0.1 with an ephemeral port that records every request.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start<F, Fut, R>(handler: F) -> Self
    where
        F: Fn(Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        let handler = Arc::new(handler);
        let state = UpstreamState {
            seen: Arc::new(Mutex::new(Vec::new())),
            handler: Arc::new(move |seen| {
                let fut = handler(seen);
                Box::pin(async move { fut.await.into_response() })
            }),
        };
        let seen = state.seen.clone();
        let app = axum::Router::new().fallback(record).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        STARTED.lock().unwrap().push(addr.port());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, seen }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// `http://localhost:PORT{path}`.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

async fn record(
    axum::extract::State(state): axum::extract::State<UpstreamState>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap();
    let seen = Seen {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    state.seen.lock().unwrap().push(seen.clone());
    (state.handler)(seen).await
}

/// Secrets over an in-memory store with a random key.
pub async fn secrets() -> Secrets {
    Secrets::new(
        Store::open_in_memory().await.unwrap(),
        MasterKey::generate("test key"),
    )
}

/// The ports of the upstreams this test started so far. nextest runs each test in a process of
/// its own, so these are exactly the test's servers.
static STARTED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// 127.0.0.1 on `port` as a local emulator: plain http and private addresses allowed.
pub fn loopback_on(port: u16) -> HostRule {
    HostRule::parse(&format!("127.0.0.1:{port}"))
        .unwrap()
        .allow_http(true)
        .allow_private(true)
}

/// 127.0.0.1 as a local emulator, on the port of every upstream the test started: rules name
/// one port each.
pub fn loopback() -> Vec<HostRule> {
    STARTED
        .lock()
        .unwrap()
        .iter()
        .map(|p| loopback_on(*p))
        .collect()
}

/// A connection spec allowing only the test's upstreams on 127.0.0.1 (http, private). Start
/// the upstreams first.
pub fn spec(auth: AuthSpec) -> ConnectionSpec {
    let mut spec = ConnectionSpec::new("crm");
    spec.auth = auth;
    spec.egress = loopback();
    spec
}

pub fn connect(spec: ConnectionSpec, secrets: &Secrets) -> Connection {
    Connection::new(spec, secrets.clone()).unwrap()
}

/// A bearer connection with a literal token, allowed to reach 127.0.0.1.
pub fn bearer_spec(token: &str) -> ConnectionSpec {
    let mut s = spec(AuthSpec::Bearer {
        token: token.into(),
    });
    s.placement = CredentialPlacement::bearer();
    s
}
