use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;
use weft_sandbox::{Sandbox, SandboxConfig};

pub async fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).await.expect("sandbox starts")
}

/// A client that does not follow redirects, so consent-page redirects can be inspected.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

pub async fn admin_post(sb: &Sandbox, path: &str, body: Value) -> Value {
    let r = client()
        .post(format!("{}{path}", sb.admin_url()))
        .json(&body)
        .send()
        .await
        .expect("admin call");
    assert!(
        r.status().is_success(),
        "admin {path} failed: {}",
        r.status()
    );
    r.json().await.expect("admin json")
}

pub async fn admin_get(sb: &Sandbox, path: &str) -> Value {
    let r = client()
        .get(format!("{}{path}", sb.admin_url()))
        .send()
        .await
        .expect("admin call");
    assert!(
        r.status().is_success(),
        "admin {path} failed: {}",
        r.status()
    );
    r.json().await.expect("admin json")
}

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// An HTTP endpoint that records what it receives; the first `fail_first` requests get a 500.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Receiver {
        Self::start_with(fail_first, |_| None).await
    }

    /// `reply` may answer a request itself (monday's challenge echo).
    pub async fn start_with(
        fail_first: usize,
        reply: fn(&Received) -> Option<(StatusCode, String)>,
    ) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = Arc::clone(&received);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let store = Arc::clone(&store);
                async move {
                    let r = Received {
                        method: method.to_string(),
                        uri: uri.to_string(),
                        headers,
                        body: body.to_vec(),
                    };
                    let n = {
                        let mut s = store.lock().unwrap();
                        s.push(r.clone());
                        s.len()
                    };
                    if n <= fail_first {
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "receiver failing on purpose".to_string(),
                        )
                            .into_response();
                    }
                    match reply(&r) {
                        Some((status, body)) => (status, body).into_response(),
                        None => (StatusCode::OK, "ok".to_string()).into_response(),
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (or fails after 10 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..500 {
            let r = self.received();
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "expected {n} webhook requests, got {}",
            self.received().len()
        );
    }
}

/// Webhook retries in tests wait milliseconds, not minutes.
pub fn fast_webhooks(mut c: SandboxConfig) -> SandboxConfig {
    c.webhooks.retry_base_delay = Duration::from_millis(20);
    c
}

/// Sends one HTTP/1.1 request over a plain socket and returns the response head exactly as it
/// came off the wire (status line and header lines), so header-name case can be checked;
/// HTTP client libraries normalise it away.
pub async fn raw_response_head(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base_url
        .strip_prefix("http://")
        .expect("plain http base url");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    let text = String::from_utf8_lossy(&bytes);
    let end = text.find("\r\n\r\n").expect("a complete response head");
    text[..end].to_string()
}

/// The header names of a raw response head, in the case they were sent.
pub fn header_names(head: &str) -> Vec<&str> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .collect()
}
