//! Credential injection and token exchange against a loopback token endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::json;
use weft_capabilities::{
    AuthSpec, Connection, ConnectionError, CredentialPlacement, HttpError, Request, Secret,
    SecretRef, Secrets,
};

use crate::support::{Seen, Upstream, connect, secrets, spec};

/// An upstream that is both token endpoint (`/token`, issuing `at-1`, `at-2`, ...) and API
/// (`/api`, answering 200 with the Authorization header it got, or 401 if `api_401` says so).
struct Provider {
    up: Upstream,
    issued: Arc<AtomicUsize>,
}

impl Provider {
    async fn start<T, A>(token: T, api: A) -> Self
    where
        T: Fn(usize, &Seen) -> Response + Send + Sync + 'static,
        A: Fn(&Seen) -> Response + Send + Sync + 'static,
    {
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        let token = Arc::new(token);
        let api = Arc::new(api);
        let up = Upstream::start(move |seen| {
            let (counter, token, api) = (counter.clone(), token.clone(), api.clone());
            async move {
                if seen.path == "/token" {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    token(n, &seen)
                } else {
                    api(&seen)
                }
            }
        })
        .await;
        Self { up, issued }
    }

    fn token_requests(&self) -> Vec<Seen> {
        self.up.seen_at("/token")
    }

    fn api_auth_headers(&self) -> Vec<Option<String>> {
        self.up
            .seen_at("/api")
            .iter()
            .map(|s| s.header("authorization"))
            .collect()
    }
}

fn token_ok(n: usize, expires_in: u64) -> Response {
    Json(json!({
        "access_token": format!("at-{n}"),
        "expires_in": expires_in,
        "token_type": "Bearer",
        "api_domain": "https://www.zohoapis.jp",
    }))
    .into_response()
}

fn echo_auth(seen: &Seen) -> Response {
    seen.header("authorization")
        .unwrap_or_default()
        .into_response()
}

async fn refresh_connection(p: &Provider, s: &Secrets) -> Connection {
    s.set(
        "default",
        "zoho_secret",
        &Secret::new("client-secret-value-9"),
    )
    .await
    .unwrap();
    s.set(
        "default",
        "zoho_refresh",
        &Secret::new("refresh-token-value-1"),
    )
    .await
    .unwrap();
    let mut sp = spec(AuthSpec::OAuth2Refresh {
        token_url: p.up.url("/token"),
        client_id: "client-id-1".into(),
        client_secret: "secret:zoho_secret".into(),
        refresh_token: "secret:zoho_refresh".into(),
        scope: None,
    });
    sp.placement = CredentialPlacement::header("Authorization", "Zoho-oauthtoken {token}");
    connect(sp, s)
}

#[tokio::test]
async fn api_key_goes_in_the_declared_header_or_query_parameter() {
    let up = Upstream::start(|_| async { "ok" }).await;
    let s = secrets().await;
    s.set("default", "zd_key", &Secret::new("api-key-value-77"))
        .await
        .unwrap();

    let mut header = spec(AuthSpec::ApiKey {
        value: "secret:zd_key".into(),
    });
    header.placement = CredentialPlacement::header("X-Api-Key", "{token}");
    connect(header, &s)
        .send(Request::get(up.url("/h")))
        .await
        .unwrap();
    assert_eq!(
        up.seen_at("/h")[0].header("x-api-key").as_deref(),
        Some("api-key-value-77")
    );

    let mut query = spec(AuthSpec::ApiKey {
        value: "secret:zd_key".into(),
    });
    query.placement = CredentialPlacement::query("api_key");
    connect(query, &s)
        .send(Request::get(up.url("/q?page=1&q=a%20b")))
        .await
        .unwrap();
    assert_eq!(
        up.seen_at("/q")[0].query.as_deref(),
        Some("page=1&q=a%20b&api_key=api-key-value-77"),
        "the guest's query keeps its encoding; the key is appended"
    );
}

#[tokio::test]
async fn basic_auth_is_always_an_authorization_header() {
    let up = Upstream::start(|_| async { "ok" }).await;
    let s = secrets().await;
    s.set("default", "zd_token", &Secret::new("zendesk-api-token"))
        .await
        .unwrap();
    let mut sp = spec(AuthSpec::Basic {
        username: "ops@acme.example/token".into(),
        password: "secret:zd_token".into(),
    });
    sp.placement = CredentialPlacement::query("ignored");
    connect(sp, &s)
        .send(Request::get(up.url("/b")))
        .await
        .unwrap();
    let expected = format!(
        "Basic {}",
        B64.encode("ops@acme.example/token:zendesk-api-token")
    );
    assert_eq!(up.seen_at("/b")[0].header("authorization"), Some(expected));
    assert_eq!(up.seen_at("/b")[0].query, None);
}

#[tokio::test]
async fn exchanges_refresh_token_once_for_many_calls() {
    let p = Provider::start(|n, _| token_ok(n, 3600), echo_auth).await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    let calls = (0..8).map(|_| {
        let conn = conn.clone();
        let url = p.up.url("/api");
        async move { conn.send(Request::get(url)).await.unwrap() }
    });
    let responses = futures_join_all(calls).await;
    assert!(responses.iter().all(|r| r.body == b"Zoho-oauthtoken at-1"));
    let tokens = p.token_requests();
    assert_eq!(
        tokens.len(),
        1,
        "one token exchange serves all concurrent calls"
    );
    let t = &tokens[0];
    assert_eq!(t.method, axum::http::Method::POST);
    assert_eq!(t.form_value("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(
        t.form_value("refresh_token").as_deref(),
        Some("refresh-token-value-1")
    );
    assert_eq!(t.form_value("client_id").as_deref(), Some("client-id-1"));
    assert_eq!(
        t.form_value("client_secret").as_deref(),
        Some("client-secret-value-9")
    );
    assert_eq!(
        t.header("authorization"),
        None,
        "the API credential never goes to the token endpoint"
    );
}

/// Runs futures concurrently on the current task (no futures crate needed).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn refreshes_token_shortly_before_expiry() {
    // expires_in = 2 s: renewed 1 s before expiry (halfway, for short-lived tokens).
    let p = Provider::start(|n, _| token_ok(n, 2), echo_auth).await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    conn.send(Request::get(p.up.url("/api"))).await.unwrap();
    conn.send(Request::get(p.up.url("/api"))).await.unwrap();
    assert_eq!(p.issued.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    conn.send(Request::get(p.up.url("/api"))).await.unwrap();
    assert_eq!(p.issued.load(Ordering::SeqCst), 2);
    assert_eq!(
        p.api_auth_headers(),
        [
            Some("Zoho-oauthtoken at-1".into()),
            Some("Zoho-oauthtoken at-1".into()),
            Some("Zoho-oauthtoken at-2".into())
        ]
    );
}

#[tokio::test]
async fn refreshes_once_on_401() {
    // The upstream revoked at-1 early; at-2 works.
    let p = Provider::start(
        |n, _| token_ok(n, 3600),
        |seen| match seen.header("authorization").as_deref() {
            Some("Zoho-oauthtoken at-2") => "fresh".into_response(),
            _ => StatusCode::UNAUTHORIZED.into_response(),
        },
    )
    .await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    let resp = conn.send(Request::get(p.up.url("/api"))).await.unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"fresh"[..]));
    assert_eq!(p.token_requests().len(), 2);
    assert_eq!(
        p.api_auth_headers(),
        [
            Some("Zoho-oauthtoken at-1".into()),
            Some("Zoho-oauthtoken at-2".into())
        ]
    );
}

#[tokio::test]
async fn retries_401_only_once() {
    let p = Provider::start(
        |n, _| token_ok(n, 3600),
        |_| StatusCode::UNAUTHORIZED.into_response(),
    )
    .await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    let resp = conn.send(Request::get(p.up.url("/api"))).await.unwrap();
    assert_eq!(resp.status, 401, "the second 401 is the plugin's to handle");
    assert_eq!(p.token_requests().len(), 2);
    assert_eq!(p.up.seen_at("/api").len(), 2);
}

#[tokio::test]
async fn static_credentials_are_not_retried_on_401() {
    let up = Upstream::start(|_| async { StatusCode::UNAUTHORIZED }).await;
    let s = secrets().await;
    let conn = connect(crate::support::bearer_spec("static-token-1234"), &s);
    assert_eq!(
        conn.send(Request::get(up.url("/api")))
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(up.seen().len(), 1);
}

#[tokio::test]
async fn persists_rotated_refresh_token() {
    let p = Provider::start(
        |n, seen| {
            let presented = seen.form_value("refresh_token").unwrap();
            Json(json!({
                "access_token": format!("at-{n}"),
                "refresh_token": format!("refresh-token-value-{}", n + 1),
                "presented": presented,
            }))
            .into_response()
        },
        |seen| match seen.header("authorization").as_deref() {
            Some("Zoho-oauthtoken at-1") => StatusCode::UNAUTHORIZED.into_response(),
            _ => "ok".into_response(),
        },
    )
    .await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    conn.send(Request::get(p.up.url("/api"))).await.unwrap();
    // The 401 forced a second exchange, which presented the rotated token.
    let presented: Vec<_> = p
        .token_requests()
        .iter()
        .map(|t| t.form_value("refresh_token").unwrap())
        .collect();
    assert_eq!(
        presented,
        ["refresh-token-value-1", "refresh-token-value-2"]
    );
    let stored = s.get("default", "zoho_refresh").await.unwrap();
    assert_eq!(stored.expose(), "refresh-token-value-3");
}

#[tokio::test]
async fn client_credentials_grant() {
    let p = Provider::start(|n, _| token_ok(n, 3600), echo_auth).await;
    let s = secrets().await;
    s.set("default", "cc_secret", &Secret::new("cc-secret-value"))
        .await
        .unwrap();
    let sp = spec(AuthSpec::OAuth2ClientCredentials {
        token_url: p.up.url("/token"),
        client_id: "cc-client".into(),
        client_secret: "secret:cc_secret".into(),
        scope: Some("read write".into()),
    });
    let conn = connect(sp, &s);
    let resp = conn.send(Request::get(p.up.url("/api"))).await.unwrap();
    assert_eq!(resp.body, b"Bearer at-1");
    let t = &p.token_requests()[0];
    assert_eq!(
        t.form_value("grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(t.form_value("client_id").as_deref(), Some("cc-client"));
    assert_eq!(
        t.form_value("client_secret").as_deref(),
        Some("cc-secret-value")
    );
    assert_eq!(t.form_value("scope").as_deref(), Some("read write"));
}

const PKCS8_KEY: &str = include_str!("../fixtures/test-only-jwt-key.pkcs8.pem");
const PKCS1_KEY: &str = include_str!("../fixtures/test-only-jwt-key.pkcs1.pem");
const PUBLIC_KEY_DER: &[u8] = include_bytes!("../fixtures/test-only-jwt-key.public.pkcs1.der");

/// Verifies an RS256 assertion the way Salesforce would: signature with the public key, then
/// the claims. Returns why it is invalid.
fn verify_assertion(assertion: &str, audience: &str) -> Result<serde_json::Value, String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not three parts".into());
    };
    let header: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(header).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let signature = B64URL.decode(signature).map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        PUBLIC_KEY_DER,
    )
    .verify(format!("{}.{claims}", parts[0]).as_bytes(), &signature)
    .map_err(|_| "bad signature".to_owned())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(claims).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    if exp <= now || exp > now + 600 {
        return Err(format!("exp {exp} out of range"));
    }
    if claims["aud"] != audience {
        return Err("wrong aud".into());
    }
    Ok(claims)
}

#[tokio::test]
async fn jwt_bearer_assertion_is_verified_by_the_upstream() {
    for (label, pem) in [("pkcs8", PKCS8_KEY), ("pkcs1", PKCS1_KEY)] {
        let p = Provider::start(
            |n, seen| {
                if seen.form_value("grant_type").as_deref()
                    != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
                {
                    return (StatusCode::BAD_REQUEST, "wrong grant").into_response();
                }
                let assertion = seen.form_value("assertion").unwrap_or_default();
                match verify_assertion(&assertion, "https://login.salesforce.com") {
                    Ok(claims) => Json(json!({
                        "access_token": format!("sf-{n}"),
                        "instance_url": "https://acme.my.salesforce.com",
                        "iss_seen": claims["iss"],
                        "sub_seen": claims["sub"],
                        "signature": "c2lnbmF0dXJl",
                    }))
                    .into_response(),
                    Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
                }
            },
            echo_auth,
        )
        .await;
        let s = secrets().await;
        s.set("default", "sf_key", &Secret::new(pem)).await.unwrap();
        let sp = spec(AuthSpec::JwtBearer {
            token_url: p.up.url("/token"),
            issuer: "3MVG9-consumer-key".into(),
            subject: "integration@acme.example".into(),
            audience: "https://login.salesforce.com".into(),
            private_key: "secret:sf_key".into(),
            lifetime: None,
        });
        let conn = connect(sp, &s);
        let resp = conn.send(Request::get(p.up.url("/api"))).await.unwrap();
        assert_eq!(resp.body, b"Bearer sf-1", "{label}");
        let info = conn.token_info().await.unwrap();
        assert!(
            info.contains(&(
                "instance_url".into(),
                "https://acme.my.salesforce.com".into()
            )),
            "{label}: {info:?}"
        );
        assert!(
            info.contains(&("iss_seen".into(), "3MVG9-consumer-key".into())),
            "{label}: {info:?}"
        );
        assert!(
            info.contains(&("sub_seen".into(), "integration@acme.example".into())),
            "{label}: {info:?}"
        );
        assert!(
            !info
                .iter()
                .any(|(k, _)| k == "signature" || k == "access_token"),
            "{label}: {info:?}"
        );
    }
}

#[tokio::test]
async fn jwt_bearer_with_a_non_key_is_an_auth_error() {
    let s = secrets().await;
    s.set("default", "sf_key", &Secret::new("not a pem"))
        .await
        .unwrap();
    let mut sp = spec(AuthSpec::JwtBearer {
        token_url: "http://127.0.0.1:9/token".into(),
        issuer: "i".into(),
        subject: "s".into(),
        audience: "a".into(),
        private_key: "secret:sf_key".into(),
        lifetime: Some(60),
    });
    sp.egress.push(crate::support::loopback_on(9));
    let err = connect(sp, &s)
        .send(Request::get("http://127.0.0.1:9/api"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::Auth(m) if m.contains("PEM")),
        "{err}"
    );
}

#[tokio::test]
async fn token_info_hides_secrets() {
    let p = Provider::start(
        |_, _| {
            Json(json!({
                "access_token": "at-secret-value",
                "refresh_token": "rt-secret-value",
                "id_token": "idt-secret-value",
                "token_type": "Bearer",
                "client_secret": "leaked-secret",
                "signature": "sig-value",
                "instance_url": "https://acme.my.salesforce.com",
                "api_domain": "https://www.zohoapis.jp",
                "expires_in": 3600,
            }))
            .into_response()
        },
        echo_auth,
    )
    .await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    let mut info = conn.token_info().await.unwrap();
    info.sort();
    assert_eq!(
        info,
        [
            (
                "api_domain".to_owned(),
                "https://www.zohoapis.jp".to_owned()
            ),
            ("expires_in".to_owned(), "3600".to_owned()),
            (
                "instance_url".to_owned(),
                "https://acme.my.salesforce.com".to_owned()
            ),
        ]
    );
    // token_info exchanged the token; a request reuses it.
    conn.send(Request::get(p.up.url("/api"))).await.unwrap();
    assert_eq!(p.token_requests().len(), 1);
}

#[tokio::test]
async fn error_text_never_contains_the_token() {
    // The token endpoint echoes the client secret and refresh token in its error.
    let p = Provider::start(
        |_, seen| {
            let body = format!(
                "invalid_grant: refresh_token={} client_secret={}",
                seen.form_value("refresh_token").unwrap(),
                seen.form_value("client_secret").unwrap()
            );
            (StatusCode::BAD_REQUEST, body).into_response()
        },
        echo_auth,
    )
    .await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    let err = conn.send(Request::get(p.up.url("/api"))).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HttpError::Auth(_)), "{text}");
    assert!(
        text.contains("HTTP 400") && text.contains("<redacted>"),
        "{text}"
    );
    assert!(
        !text.contains("refresh-token-value-1") && !text.contains("client-secret-value-9"),
        "{text}"
    );

    // An API error echoing the access token (body and header) reaches the plugin redacted.
    let echo = Upstream::start(|seen| async move {
        let auth = seen.header("authorization").unwrap_or_default();
        (
            StatusCode::FORBIDDEN,
            [("x-debug", auth.clone())],
            format!("token {auth} lacks scope"),
        )
    })
    .await;
    let conn = connect(crate::support::bearer_spec("static-token-abcdef"), &s);
    let resp = conn.send(Request::get(echo.url("/api"))).await.unwrap();
    let body = String::from_utf8(resp.body.clone()).unwrap();
    assert!(!body.contains("static-token-abcdef"), "{body}");
    assert!(body.contains("<redacted>"), "{body}");
    assert!(
        !resp
            .header("x-debug")
            .unwrap()
            .contains("static-token-abcdef")
    );
    assert!(
        !conn
            .redact("x static-token-abcdef y")
            .contains("static-token-abcdef")
    );
}

#[tokio::test]
async fn credential_in_query_is_not_in_transport_errors() {
    // Nothing listens on this port: the connect error must not echo the URL with the key.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let s = secrets().await;
    let mut sp = spec(AuthSpec::ApiKey {
        value: "query-key-secret-42".into(),
    });
    sp.placement = CredentialPlacement::query("key");
    sp.egress.push(crate::support::loopback_on(port));
    let err = connect(sp, &s)
        .send(Request::get(format!("http://127.0.0.1:{port}/x")))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Transport(_)), "{err}");
    assert!(!err.to_string().contains("query-key-secret-42"), "{err}");
}

#[tokio::test]
async fn the_token_endpoint_the_flow_names_is_reached_over_https_only() {
    let s = secrets().await;
    let auth = |url: &str| AuthSpec::OAuth2ClientCredentials {
        token_url: url.into(),
        client_id: "id".into(),
        client_secret: "secret:x".into(),
        scope: None,
    };
    // The operator wrote the token URL: its host is on the list, named as where it came from.
    let sp = spec(auth("https://accounts.zoho.jp/oauth/v2/token"));
    let policy = sp.policy().unwrap();
    let entry = policy
        .entries()
        .find(|e| e.rule.host() == "accounts.zoho.jp")
        .expect("the token host is allowed");
    assert_eq!(entry.sources, ["auth token_url"]);
    assert!(!entry.rule.allows_http() && !entry.rule.allows_private());
    Connection::new(sp, s.clone()).expect("an https token endpoint needs no egress rule");
    // Plain http still needs the flow's egress rule to say so.
    let err = Connection::new(spec(auth("http://accounts.zoho.jp/oauth/v2/token")), s).unwrap_err();
    assert!(
        matches!(err, ConnectionError::TokenEndpoint { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("accounts.zoho.jp") && text.contains("only https"),
        "{text}"
    );
}

#[tokio::test]
async fn missing_secret_names_the_command_to_set_it() {
    let up = Upstream::start(|_| async { "ok" }).await;
    let s = secrets().await;
    let sp = spec(AuthSpec::Bearer {
        token: "secret:zendesk_token".into(),
    });
    let err = connect(sp, &s)
        .send(Request::get(up.url("/api")))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HttpError::Auth(_)), "{text}");
    assert!(
        text.contains("zendesk_token") && text.contains("weft secret set zendesk_token"),
        "{text}"
    );
    assert!(
        up.seen().is_empty(),
        "no request goes out without its credential"
    );
}

#[tokio::test]
async fn denied_request_does_not_fetch_a_token() {
    let p = Provider::start(|n, _| token_ok(n, 3600), echo_auth).await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    let err = conn
        .send(Request::get("https://elsewhere.example/"))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Denied(_)), "{err}");
    assert!(p.token_requests().is_empty());
}

#[test]
fn auth_specs_read_secret_references() {
    let spec: AuthSpec = serde_json::from_value(json!({
        "kind": "basic", "username": "ops@acme.example/token", "password": "env:ZD_TOKEN"
    }))
    .unwrap();
    assert_eq!(
        spec,
        AuthSpec::Basic {
            username: "ops@acme.example/token".into(),
            password: SecretRef::Env("ZD_TOKEN".into()),
        }
    );
}

#[tokio::test]
async fn token_endpoint_goes_through_the_egress_resolver() {
    // localhost is on the list (http) but not private: the exchange is refused at resolution,
    // like any plugin request, and nothing reaches the token endpoint.
    let p = Provider::start(|n, _| token_ok(n, 3600), echo_auth).await;
    let s = secrets().await;
    s.set("default", "cc_secret", &Secret::new("cc-secret-value"))
        .await
        .unwrap();
    let mut sp = spec(AuthSpec::OAuth2ClientCredentials {
        token_url: p.up.localhost_url("/token"),
        client_id: "cc-client".into(),
        client_secret: "secret:cc_secret".into(),
        scope: None,
    });
    sp.egress.push(
        weft_capabilities::HostRule::parse(&format!("localhost:{}", p.up.port()))
            .unwrap()
            .allow_http(true),
    );
    let conn = connect(sp, &s);
    let err = conn.send(Request::get(p.up.url("/api"))).await.unwrap_err();
    assert!(
        matches!(&err, HttpError::Denied(m) if m.starts_with("token endpoint:") && m.contains("non-global")),
        "{err}"
    );
    assert!(p.up.seen().is_empty());
}

#[tokio::test]
async fn static_credential_is_reread_after_a_401() {
    // An operator rotates the API key with `weft secret set` while the connection is live.
    let up = Upstream::start(|seen| async move {
        match seen.header("authorization").as_deref() {
            Some("Bearer key-version-2") => StatusCode::OK,
            _ => StatusCode::UNAUTHORIZED,
        }
    })
    .await;
    let s = secrets().await;
    s.set("default", "api_token", &Secret::new("key-version-1"))
        .await
        .unwrap();
    let conn = connect(
        spec(AuthSpec::Bearer {
            token: "secret:api_token".into(),
        }),
        &s,
    );
    assert_eq!(
        conn.send(Request::get(up.url("/api")))
            .await
            .unwrap()
            .status,
        401
    );
    s.set("default", "api_token", &Secret::new("key-version-2"))
        .await
        .unwrap();
    assert_eq!(
        conn.send(Request::get(up.url("/api")))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        up.seen().len(),
        2,
        "no automatic retry for static credentials"
    );
}

#[tokio::test]
async fn query_credential_is_sent_once_across_same_origin_redirects() {
    // The upstream redirects to a Location that repeats the query, credential included.
    let up = Upstream::start(|seen| async move {
        if seen.path == "/start" {
            let location = format!("/next?{}", seen.query.unwrap_or_default());
            (
                StatusCode::FOUND,
                [(axum::http::header::LOCATION, location)],
            )
                .into_response()
        } else {
            "ok".into_response()
        }
    })
    .await;
    let s = secrets().await;
    let mut sp = spec(AuthSpec::ApiKey {
        value: "query-key-value-5".into(),
    });
    sp.placement = CredentialPlacement::query("key");
    connect(sp, &s)
        .send(Request::get(up.url("/start?page=2")))
        .await
        .unwrap();
    assert_eq!(
        up.seen_at("/next")[0].query.as_deref(),
        Some("page=2&key=query-key-value-5")
    );
}

#[tokio::test]
async fn a_second_connection_with_the_same_credential_reuses_the_token_until_it_is_refused() {
    let p = Provider::start(
        |n, _| {
            Json(json!({"access_token": format!("shared-at-{n}"), "expires_in": 3600}))
                .into_response()
        },
        |seen| match seen.header("authorization").as_deref() {
            Some("Zoho-oauthtoken shared-at-2") => StatusCode::UNAUTHORIZED.into_response(),
            _ => "ok".into_response(),
        },
    )
    .await;
    let s = secrets().await;
    // A run, then the next run of this or another flow with the same credential: one exchange.
    for _ in 0..3 {
        let conn = refresh_connection(&p, &s).await;
        assert_eq!(
            conn.send(Request::get(p.up.url("/api")))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(
        p.token_requests().len(),
        1,
        "the token is shared across connections"
    );
    // Another refresh token is another credential (secrets resolve at the first request).
    let other = refresh_connection(&p, &s).await;
    s.set(
        "default",
        "zoho_refresh",
        &Secret::new("another-refresh-token"),
    )
    .await
    .unwrap();
    // Its token (shared-at-2) is refused: it is forgotten, and the next exchange replaces it.
    assert_eq!(
        other
            .send(Request::get(p.up.url("/api")))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(p.token_requests().len(), 3);
    let again = refresh_connection(&p, &s).await;
    s.set(
        "default",
        "zoho_refresh",
        &Secret::new("another-refresh-token"),
    )
    .await
    .unwrap();
    assert_eq!(
        again
            .send(Request::get(p.up.url("/api")))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        p.token_requests().len(),
        3,
        "the replacement is shared in turn"
    );
}

#[tokio::test]
async fn a_busy_token_endpoint_is_a_retryable_transport_error_not_a_refusal() {
    let p = Provider::start(
        |n, _| {
            if n == 1 {
                (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response()
            } else {
                Json(json!({"access_token": format!("at-{n}"), "expires_in": 3600})).into_response()
            }
        },
        echo_auth,
    )
    .await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    let err = conn.send(Request::get(p.up.url("/api"))).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HttpError::Transport(_)), "{text}");
    assert!(
        text.contains("HTTP 429") && text.contains("try again later"),
        "{text}"
    );
    // The next attempt (the engine's retry) gets a token.
    assert_eq!(
        conn.send(Request::get(p.up.url("/api")))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn zohos_too_many_requests_400_is_throttling_not_a_refusal() {
    let p = Provider::start(
        |n, _| {
            if n == 1 {
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "Access Denied", "error_description": "You have made too many requests continuously. Please try again after some time."})),
                )
                    .into_response()
            } else {
                Json(json!({"access_token": format!("at-{n}"), "expires_in": 3600})).into_response()
            }
        },
        echo_auth,
    )
    .await;
    let s = secrets().await;
    let conn = refresh_connection(&p, &s).await;
    let err = conn.send(Request::get(p.up.url("/api"))).await.unwrap_err();
    assert!(matches!(err, HttpError::Transport(_)), "{err}");
    assert_eq!(
        conn.send(Request::get(p.up.url("/api")))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn an_issued_token_is_kept_sealed_in_the_store() {
    let p = Provider::start(
        |n, _| {
            Json(json!({"access_token": format!("at-kept-{n}"), "expires_in": 3600}))
                .into_response()
        },
        echo_auth,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    let store = weft_store::Store::open_sqlite(&path).await.unwrap();
    let s = Secrets::new(store, weft_capabilities::MasterKey::generate("test key"));
    let conn = refresh_connection(&p, &s).await;
    assert_eq!(
        conn.send(Request::get(p.up.url("/api")))
            .await
            .unwrap()
            .status,
        200
    );
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(dir.path().join("weft.db-wal")).unwrap_or_default());
    assert!(
        !bytes.windows(b"at-kept-1".len()).any(|w| w == b"at-kept-1"),
        "the token is stored in clear"
    );
    assert_eq!(p.token_requests().len(), 1);
}
