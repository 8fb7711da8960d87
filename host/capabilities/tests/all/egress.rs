//! Egress policy on real requests: what is refused, and that refused requests never leave.

use axum::http::{StatusCode, header};
use weft_capabilities::{AuthSpec, ConnectionSpec, HostRule, HttpError, Request};

use crate::support::{Upstream, bearer_spec, connect, loopback, loopback_on, secrets, spec};

async fn ok_upstream() -> Upstream {
    Upstream::start(|_| async { "ok" }).await
}

fn denied(result: Result<weft_capabilities::Response, HttpError>) -> String {
    match result {
        Err(HttpError::Denied(msg)) => msg,
        other => panic!("expected Denied, got {other:?}"),
    }
}

/// A connection allowing `rules` (and nothing else), without auth.
fn allowing(rules: Vec<HostRule>) -> ConnectionSpec {
    let mut s = spec(AuthSpec::None);
    s.egress = rules;
    s
}

#[tokio::test]
async fn refuses_loopback_literal_unless_allowed_private() {
    let up = ok_upstream().await;
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            HostRule::parse(&format!("127.0.0.1:{}", up.port()))
                .unwrap()
                .allow_http(true),
        ]),
        &s,
    );
    let msg = denied(conn.send(Request::get(up.url("/"))).await);
    assert!(msg.contains("non-global"), "{msg}");
    assert!(msg.contains("allow_private"), "{msg}");
    assert!(
        up.seen().is_empty(),
        "the refused request reached the upstream"
    );

    let conn = connect(allowing(loopback()), &s);
    let resp = conn.send(Request::get(up.url("/"))).await.unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok"[..]));
}

#[tokio::test]
async fn refuses_ipv6_loopback_literal() {
    let s = secrets().await;
    let conn = connect(
        allowing(vec![HostRule::parse("[::1]:9").unwrap().allow_http(true)]),
        &s,
    );
    let msg = denied(conn.send(Request::get("http://[::1]:9/")).await);
    assert!(msg.contains("non-global") && msg.contains("::1"), "{msg}");
}

#[tokio::test]
async fn refuses_ipv4_mapped_loopback_literal() {
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            HostRule::parse("[::ffff:127.0.0.1]:9")
                .unwrap()
                .allow_http(true),
        ]),
        &s,
    );
    let msg = denied(
        conn.send(Request::get("http://[::ffff:127.0.0.1]:9/"))
            .await,
    );
    assert!(msg.contains("non-global"), "{msg}");
}

#[tokio::test]
async fn refuses_private_network_address() {
    let s = secrets().await;
    let conn = connect(
        allowing(vec![HostRule::parse("10.0.0.1").unwrap().allow_http(true)]),
        &s,
    );
    let msg = denied(conn.send(Request::get("http://10.0.0.1/internal")).await);
    assert!(
        msg.contains("10.0.0.1") && msg.contains("non-global"),
        "{msg}"
    );
}

#[tokio::test]
async fn refuses_metadata_address() {
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            HostRule::parse("169.254.169.254").unwrap().allow_http(true),
        ]),
        &s,
    );
    let msg = denied(
        conn.send(Request::get("http://169.254.169.254/latest/meta-data/"))
            .await,
    );
    assert!(
        msg.contains("169.254.169.254") && msg.contains("non-global"),
        "{msg}"
    );
}

#[tokio::test]
async fn refuses_name_resolving_to_loopback() {
    let up = ok_upstream().await;
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            HostRule::parse(&format!("localhost:{}", up.port()))
                .unwrap()
                .allow_http(true),
        ]),
        &s,
    );
    let msg = denied(conn.send(Request::get(up.localhost_url("/"))).await);
    assert!(
        msg.contains("localhost") && msg.contains("non-global"),
        "{msg}"
    );
    assert!(
        up.seen().is_empty(),
        "the refused request reached the upstream"
    );
}

#[tokio::test]
async fn allows_name_resolving_to_loopback_when_that_host_is_private() {
    let up = ok_upstream().await;
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            HostRule::parse(&format!("localhost:{}", up.port()))
                .unwrap()
                .allow_http(true)
                .allow_private(true),
        ]),
        &s,
    );
    let resp = conn
        .send(Request::get(up.localhost_url("/hello")))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(up.seen_at("/hello").len(), 1);
}

#[tokio::test]
async fn refuses_host_off_the_allowlist() {
    let s = secrets().await;
    let conn = connect(allowing(vec![loopback_on(8080)]), &s);
    let msg = denied(conn.send(Request::get("https://evil.example/steal")).await);
    assert!(
        msg.contains("evil.example") && msg.contains("not allowed"),
        "{msg}"
    );
    assert!(
        msg.contains("127.0.0.1"),
        "the message lists the allowed hosts: {msg}"
    );
}

#[tokio::test]
async fn refuses_plain_http_unless_the_host_allows_it() {
    let up = ok_upstream().await;
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            HostRule::parse(&format!("127.0.0.1:{}", up.port()))
                .unwrap()
                .allow_private(true),
        ]),
        &s,
    );
    let msg = denied(conn.send(Request::get(up.url("/"))).await);
    assert!(msg.contains("only https"), "{msg}");
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn refuses_port_other_than_the_rules() {
    let up = ok_upstream().await;
    let s = secrets().await;
    let rule = loopback_on(up.port().wrapping_add(1).max(1));
    let conn = connect(allowing(vec![rule]), &s);
    let msg = denied(conn.send(Request::get(up.url("/"))).await);
    assert!(msg.contains("not allowed"), "{msg}");
}

#[tokio::test]
async fn refuses_redirect_downgrade_to_plain_http() {
    // localhost is allowed (private) but https only; a redirect to http://localhost is refused.
    let target = ok_upstream().await;
    let location = target.localhost_url("/target");
    let up = Upstream::start(move |_| {
        let location = location.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, location)]) }
    })
    .await;
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            loopback_on(up.port()),
            HostRule::parse(&format!("localhost:{}", target.port()))
                .unwrap()
                .allow_private(true),
        ]),
        &s,
    );
    let msg = denied(conn.send(Request::get(up.url("/start"))).await);
    assert!(
        msg.contains("redirect") && msg.contains("localhost"),
        "{msg}"
    );
    assert!(msg.contains("only https"), "{msg}");
    assert!(target.seen().is_empty());
}

#[tokio::test]
async fn refuses_redirect_to_disallowed_host() {
    let up = Upstream::start(|_| async {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "https://attacker.example/collect")],
        )
    })
    .await;
    let s = secrets().await;
    let conn = connect(bearer_spec("tok-never-leaks-123"), &s);
    let msg = denied(conn.send(Request::get(up.url("/start"))).await);
    assert!(
        msg.contains("attacker.example"),
        "the message names the target host: {msg}"
    );
    assert!(!msg.contains("tok-never-leaks-123"));
}

#[tokio::test]
async fn follows_redirect_to_allowed_host_without_the_credential() {
    let other = Upstream::start(|_| async { "landed" }).await;
    let location = other.localhost_url("/final");
    let up = Upstream::start(move |seen| {
        let location = location.clone();
        async move {
            match seen.path.as_str() {
                "/start" => (
                    StatusCode::FOUND,
                    [(header::LOCATION, "/same-host".to_owned())],
                ),
                _ => (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, location)],
                ),
            }
        }
    })
    .await;
    let s = secrets().await;
    let mut spec = bearer_spec("tok-origin-only-456");
    spec.egress.push(
        HostRule::parse(&format!("localhost:{}", other.port()))
            .unwrap()
            .allow_http(true)
            .allow_private(true),
    );
    let conn = connect(spec, &s);
    let resp = conn.send(Request::get(up.url("/start"))).await.unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"landed"[..]));

    // The same-origin hop kept the credential; the hop to another host did not get it.
    let first = &up.seen_at("/start")[0];
    assert_eq!(
        first.header("authorization").as_deref(),
        Some("Bearer tok-origin-only-456")
    );
    let same = &up.seen_at("/same-host")[0];
    assert_eq!(
        same.header("authorization").as_deref(),
        Some("Bearer tok-origin-only-456")
    );
    let landed = &other.seen_at("/final")[0];
    assert_eq!(landed.header("authorization"), None);
}

#[tokio::test]
async fn stops_after_five_redirects() {
    let up =
        Upstream::start(|_| async { (StatusCode::FOUND, [(header::LOCATION, "/again")]) }).await;
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    match conn.send(Request::get(up.url("/again"))).await {
        Err(HttpError::Transport(msg)) => assert!(msg.contains("more than 5"), "{msg}"),
        other => panic!("expected Transport, got {other:?}"),
    }
    assert_eq!(up.seen().len(), 6, "the first request and five redirects");
}

#[tokio::test]
async fn ignores_proxy_environment_variables() {
    // SAFETY: nextest runs each test in its own process, so no other thread reads the
    // environment concurrently.
    unsafe {
        for var in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            std::env::set_var(var, "http://127.0.0.1:9");
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let up = ok_upstream().await;
    let s = secrets().await;
    let conn = connect(spec(AuthSpec::None), &s);
    let resp = conn.send(Request::get(up.url("/direct"))).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        up.seen_at("/direct").len(),
        1,
        "the request went to the upstream directly"
    );
}

#[tokio::test]
async fn a_port_less_rule_allows_only_the_schemes_default_port() {
    let up = ok_upstream().await;
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            HostRule::parse("127.0.0.1")
                .unwrap()
                .allow_http(true)
                .allow_private(true),
        ]),
        &s,
    );
    let msg = denied(conn.send(Request::get(up.url("/"))).await);
    assert!(msg.contains("not allowed"), "{msg}");
    assert!(
        up.seen().is_empty(),
        "a port-less rule reached port {}",
        up.port()
    );
}

#[tokio::test]
async fn allow_private_holds_for_its_own_port_only() {
    // `localhost` is private on the upstream's port; the same name on another port (here a
    // rule without a port: 443) is public-only, so loopback is refused there.
    let up = ok_upstream().await;
    let s = secrets().await;
    let conn = connect(
        allowing(vec![
            HostRule::parse(&format!("localhost:{}", up.port()))
                .unwrap()
                .allow_http(true)
                .allow_private(true),
            HostRule::parse("localhost").unwrap(),
        ]),
        &s,
    );
    let resp = conn
        .send(Request::get(up.localhost_url("/own")))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let msg = denied(conn.send(Request::get("https://localhost/")).await);
    assert!(msg.contains("non-global"), "{msg}");
    let msg = denied(
        conn.send(Request::get(format!("http://localhost:{}/", up.port() + 1)))
            .await,
    );
    assert!(msg.contains("not allowed"), "{msg}");
}

#[tokio::test]
async fn a_host_allowed_without_credential_never_receives_it() {
    let up =
        Upstream::start(|seen| async move { seen.header("authorization").unwrap_or_default() })
            .await;
    let s = secrets().await;
    let mut spec = bearer_spec("tok-not-for-the-cdn");
    spec.egress = vec![loopback_on(up.port()).credential(false)];
    let conn = connect(spec, &s);
    let resp = conn.send(Request::get(up.url("/file"))).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(up.seen_at("/file")[0].header("authorization"), None);
}
