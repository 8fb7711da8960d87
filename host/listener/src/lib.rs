//! The HTTP listener `weft serve` exposes to the internet: webhook endpoints first, whatever the
//! service grows later next.
//!
//! Anyone can open a connection to it, before any signature is checked, so everything such a
//! client controls is bounded ([`Limits`]): how many connections are open at once (more wait
//! to be accepted), how long the request head may take (a slow-headers client is cut), how long
//! the body may take (`408 Request Timeout`), how large it may be (`413 Content Too Large`, at
//! once when `Content-Length` says so), and how long one connection may live. A handler gets a
//! request whose body is already in memory and within the cap, so nothing it does (a plugin's
//! `verify`) runs before the whole delivery arrived.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Bounds on what clients of the listener can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; further clients wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// Time from the start of a request (or of an idle keep-alive wait) to the end of its head.
    pub header_timeout: Duration,
    /// Time to receive a request's whole body once its head arrived.
    pub body_timeout: Duration,
    /// Largest body read into memory, in bytes.
    pub max_body_bytes: usize,
    /// Longest a connection stays open, whatever it does.
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    /// Vendors' webhook deliveries are small (a batch of HubSpot events is tens of KiB) and sent
    /// by machines that do not dawdle.
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            connection_lifetime: Duration::from_secs(120),
        }
    }
}

/// Largest request head kept in memory (hyper's read buffer; its minimum is 8 KiB).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` under `limits` until the listener fails.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        // Waiting for a slot before accepting leaves further clients in the backlog.
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Answers go out as written, not held back to coalesce with more (Nagle's algorithm
        // against the client's delayed ACK costs 40 ms a request).
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(app, request, limits).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(limits.connection_lifetime, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
                Err(_) => tracing::debug!(%peer, "connection closed at its lifetime limit"),
            }
            drop(slot);
        });
    }
}

/// Reads the body under the limits, then hands the request to `app`.
async fn handle(app: axum::Router, request: Request<Incoming>, limits: Limits) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
        return too_large(limits);
    }
    let read = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body_bytes).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(limits),
        Ok(Err(e)) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}\n"),
            );
        }
        Err(_) => {
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s\n",
                    limits.body_timeout.as_secs()
                ),
            );
        }
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    match app.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn too_large(limits: Limits) -> Response<Body> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "a request body is at most {} bytes\n",
            limits.max_body_bytes
        ),
    )
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // The connection may be mid-body: do not wait for the rest of it.
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}
