//! Request validation, limits and pass-through of the `http` capability.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use weft_capabilities::{AuthSpec, CredentialPlacement, HttpError, HttpLimits, Request};

use crate::support::{Upstream, connect, secrets, spec};

fn invalid(result: Result<weft_capabilities::Response, HttpError>) -> String {
    match result {
        Err(HttpError::InvalidRequest(msg)) => msg,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn passes_method_headers_and_body_through() {
    let up = Upstream::start(|seen| async move {
        (
            StatusCode::CREATED,
            [("x-echo", seen.header("x-custom").unwrap_or_default())],
            seen.body,
        )
    })
    .await;
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    let resp = conn
        .send(
            Request::new(axum::http::Method::POST, up.url("/records?page=2"))
                .header("X-Custom", "hello")
                .header("Content-Type", "application/json")
                .body(br#"{"a":1}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("x-echo"), Some("hello"));
    assert_eq!(resp.body, br#"{"a":1}"#);
    let seen = &up.seen_at("/records")[0];
    assert_eq!(seen.method, axum::http::Method::POST);
    assert_eq!(seen.query.as_deref(), Some("page=2"));
}

#[tokio::test]
async fn error_statuses_are_responses_not_errors() {
    let up = Upstream::start(|_| async {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            "slow down",
        )
    })
    .await;
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    let resp = conn.send(Request::get(up.url("/"))).await.unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("Retry-After"), Some("7"));
    assert_eq!(resp.body, b"slow down");
}

#[tokio::test]
async fn refuses_headers_the_host_owns() {
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    for name in [
        "Host",
        "Authorization",
        "Proxy-Authorization",
        "proxy-anything",
        "Cookie",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
    ] {
        let msg = invalid(
            conn.send(Request::get("http://127.0.0.1:9/").header(name, "x"))
                .await,
        );
        assert!(
            msg.contains(&format!("{name:?}")),
            "message names the header {name}: {msg}"
        );
    }
}

#[tokio::test]
async fn refuses_the_credential_header_and_query_parameter() {
    let s = secrets().await;
    let mut header_spec = spec(AuthSpec::ApiKey {
        value: "key-123456".into(),
    });
    header_spec.placement = CredentialPlacement::header("X-Api-Key", "{token}");
    let conn = connect(header_spec, &s);
    let msg = invalid(
        conn.send(Request::get("http://127.0.0.1:9/").header("x-api-key", "mine"))
            .await,
    );
    assert!(msg.contains("x-api-key"), "{msg}");

    let mut query_spec = spec(AuthSpec::ApiKey {
        value: "key-123456".into(),
    });
    query_spec.placement = CredentialPlacement::query("api_key");
    let conn = connect(query_spec, &s);
    let msg = invalid(
        conn.send(Request::get("http://127.0.0.1:9/?api_key=mine"))
            .await,
    );
    assert!(msg.contains("api_key"), "{msg}");
}

#[tokio::test]
async fn refuses_malformed_urls_and_userinfo() {
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    invalid(conn.send(Request::get("not a url")).await);
    let msg = invalid(conn.send(Request::get("http://user:pw@127.0.0.1:9/")).await);
    assert!(msg.contains("user:password@"), "{msg}");
}

#[tokio::test]
async fn refuses_request_body_over_the_limit() {
    let s = secrets().await;
    let mut sp = spec(AuthSpec::None);
    sp.limits.max_request_bytes = 10;
    let conn = connect(sp, &s);
    let msg = invalid(
        conn.send(Request::new(axum::http::Method::POST, "http://127.0.0.1:9/").body(vec![0; 11]))
            .await,
    );
    assert!(
        msg.contains("11 bytes") && msg.contains("10 bytes"),
        "{msg}"
    );
}

#[tokio::test]
async fn oversized_response_is_too_large() {
    let up = Upstream::start(|seen| async move {
        match seen.path.as_str() {
            "/small" => vec![b'a'; 1024],
            _ => vec![b'a'; 4096],
        }
    })
    .await;
    let s = secrets().await;
    let mut sp = spec(AuthSpec::None);
    sp.limits.max_response_bytes = 1024;
    let conn = connect(sp, &s);
    assert_eq!(
        conn.send(Request::get(up.url("/small")))
            .await
            .unwrap()
            .body
            .len(),
        1024
    );
    match conn.send(Request::get(up.url("/declared"))).await {
        Err(HttpError::TooLarge { limit }) => assert_eq!(limit, 1024),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn streamed_response_is_cut_at_the_cap() {
    // A chunked body announces no length, so the cap must be enforced while reading. The server
    // would send 64 KiB; the client stops after 1 KiB.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = vec![b'b'; 512];
        for _ in 0..128 {
            if sock.write_all(b"200\r\n").await.is_err()
                || sock.write_all(&chunk).await.is_err()
                || sock.write_all(b"\r\n").await.is_err()
            {
                return;
            }
        }
        let _ = sock.write_all(b"0\r\n\r\n").await;
    });
    let s = secrets().await;
    let mut sp = spec(AuthSpec::None);
    sp.limits.max_response_bytes = 1024;
    sp.egress.push(crate::support::loopback_on(port));
    let conn = connect(sp, &s);
    match conn
        .send(Request::get(format!("http://127.0.0.1:{port}/stream")))
        .await
    {
        Err(HttpError::TooLarge { limit }) => assert_eq!(limit, 1024),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn slow_upstream_times_out() {
    let up = Upstream::start(|_| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "too late"
    })
    .await;
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    let started = Instant::now();
    let result = conn
        .send(Request::get(up.url("/slow")).timeout(Duration::from_millis(300)))
        .await;
    assert!(
        matches!(result, Err(HttpError::Timeout(ref m)) if m.contains("127.0.0.1")),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn guest_cannot_exceed_the_maximum_timeout() {
    let up = Upstream::start(|_| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "too late"
    })
    .await;
    let s = secrets().await;
    let mut sp = spec(AuthSpec::None);
    sp.limits = HttpLimits {
        max_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let conn = connect(sp, &s);
    let started = Instant::now();
    let result = conn
        .send(Request::get(up.url("/slow")).timeout(Duration::from_secs(60)))
        .await;
    assert!(matches!(result, Err(HttpError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn unknown_connection_names_the_available_ones() {
    let s = secrets().await;
    let connections: weft_capabilities::Connections =
        [connect(spec(AuthSpec::None), &s)].into_iter().collect();
    let err = connections.require("zoho").unwrap_err();
    assert!(
        matches!(&err, HttpError::InvalidRequest(m) if m.contains("\"zoho\"") && m.contains("crm")),
        "{err}"
    );
    assert_eq!(connections.require("crm").unwrap().name(), "crm");
}

#[tokio::test]
async fn https_uses_tls_and_fails_cleanly_against_a_plain_server() {
    // The client is built with the preconfigured rustls (ring) config; a handshake against a
    // server that speaks plain HTTP fails as a transport error, not a panic or a plaintext send.
    let up = Upstream::start(|_| async { "plain" }).await;
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    let err = conn
        .send(Request::get(format!("https://127.0.0.1:{}/", up.port())))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Transport(_)), "{err}");
}
