//! Hostile clients against the listener, over real TCP on loopback: each limit at its edge, and
//! the server answering an honest client throughout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_listener::Limits;

fn limits() -> Limits {
    Limits {
        max_connections: 64,
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        max_body_bytes: 1_000,
        connection_lifetime: Duration::from_secs(10),
    }
}

/// Echoes the length of the body it got.
async fn start(limits: Limits) -> SocketAddr {
    let app = axum::Router::new().route(
        "/hooks/{id}",
        axum::routing::post(|body: axum::body::Bytes| async move {
            format!("got {} bytes", body.len())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(weft_listener::serve(listener, app, limits));
    addr
}

/// Sends `raw` and reads until the server closes or `wait` passes.
async fn exchange(addr: SocketAddr, raw: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn post(body: &str) -> Vec<u8> {
    format!("POST /hooks/a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes()
}

#[tokio::test]
async fn honest_request_is_answered() {
    let addr = start(limits()).await;
    let answer = exchange(addr, &post("hello"), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("got 5 bytes"), "{answer}");
}

#[tokio::test]
async fn body_at_the_cap_is_accepted_and_one_byte_more_is_refused_with_413() {
    let addr = start(limits()).await;
    let at_cap = exchange(addr, &post(&"x".repeat(1_000)), Duration::from_secs(5)).await;
    assert!(at_cap.ends_with("got 1000 bytes"), "{at_cap}");
    let over = exchange(addr, &post(&"x".repeat(1_001)), Duration::from_secs(5)).await;
    assert!(over.starts_with("HTTP/1.1 413"), "{over}");
}

#[tokio::test]
async fn declared_oversized_body_is_refused_before_it_is_sent() {
    let addr = start(limits()).await;
    let started = Instant::now();
    let head = b"POST /hooks/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n";
    let answer = exchange(addr, head, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn chunked_body_over_the_cap_is_refused_with_413() {
    let addr = start(limits()).await;
    let mut raw =
        b"POST /hooks/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(format!("{:x}\r\n{}\r\n", 400, "y".repeat(400)).as_bytes());
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(addr, &raw, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn slow_body_is_cut_with_408() {
    let addr = start(limits()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /hooks/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .expect("cut within the body timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slow_headers_are_cut_at_the_header_timeout() {
    let addr = start(limits()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /hooks/a HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(
        closed.is_ok(),
        "a client that never finishes its headers is never cut"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn twenty_slow_clients_neither_block_an_honest_one_nor_outlive_the_timeout() {
    let addr = start(limits()).await;
    let mut slow = Vec::new();
    for i in 0..20 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // Half dawdle over their headers, half over their bodies.
        let raw = if i % 2 == 0 {
            "POST /hooks/a HTTP/1.1\r\nHost: x\r\n".to_owned()
        } else {
            "POST /hooks/a HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\nab".to_owned()
        };
        stream.write_all(raw.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    let started = Instant::now();
    let answer = exchange(addr, &post("honest"), Duration::from_secs(5)).await;
    assert!(answer.ends_with("got 6 bytes"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the honest client waited {:?}",
        started.elapsed()
    );
    for mut stream in slow {
        let mut out = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out)).await;
        assert!(closed.is_ok(), "a slow client was never cut");
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_a_slot_frees() {
    let addr = start(Limits {
        max_connections: 2,
        ..limits()
    })
    .await;
    let mut hogs = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /hooks/a HTTP/1.1\r\n")
            .await
            .unwrap();
        hogs.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let answer = exchange(addr, &post("third"), Duration::from_secs(5)).await;
    assert!(answer.ends_with("got 5 bytes"), "{answer}");
    // Served only once the header timeout freed a slot: the cap held, and the wait was bounded.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "served while both slots were held ({waited:?})"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}
