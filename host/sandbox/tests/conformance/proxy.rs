//! The HTTPS proxy: clients that hard-code the vendors' hosts reach the emulators with only
//! `HTTPS_PROXY` and the sandbox CA, and nothing else is reachable through it.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_sandbox::{Proxy, ProxyCa, Sandbox, SandboxConfig, Vendor};

use crate::support::{admin_get, start};

async fn with_proxy() -> (Sandbox, Proxy) {
    let sb = start(SandboxConfig::default()).await;
    let proxy = sb
        .start_proxy(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            ProxyCa::generate().unwrap(),
        )
        .await
        .expect("proxy starts");
    (sb, proxy)
}

/// A client that trusts only the sandbox CA and sends every https request through the proxy.
fn proxied(proxy: &Proxy) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(proxy.ca_pem().as_bytes()).expect("CA PEM");
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(proxy.url()).unwrap())
        .tls_certs_only([ca])
        .build()
        .expect("client")
}

#[tokio::test]
async fn proxy_serves_vendor_hosts_over_tls_from_their_emulators() {
    let (sb, proxy) = with_proxy().await;
    let http = proxied(&proxy);

    let z = sb.vendor(Vendor::Zendesk).unwrap().credentials();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}/token:{}", z.username, z.api_token.unwrap()))
    );
    let r = http
        .get("https://weft-sandbox.zendesk.com/api/v2/account/settings.json")
        .header("Authorization", basic)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["settings"]["active_features"]["organization_access_enabled"],
        true
    );

    let token = sb
        .vendor(Vendor::HubSpot)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    let r = http
        .get("https://api.hubapi.com/crm/v3/objects/contacts?limit=1")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let token = sb
        .vendor(Vendor::Monday)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    let r = http
        .post("https://api.monday.com/v2")
        .header("Authorization", token)
        .json(&json!({"query": "{ me { name } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]["me"]["name"],
        "Weft Demo"
    );

    // login.microsoftonline.com is Dataverse's or Partner Center's, by tenant.
    let d = sb.vendor(Vendor::Dataverse).unwrap().credentials();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", d.client_id.as_str()),
        ("client_secret", d.client_secret.as_str()),
        ("scope", d.extra["scope"].as_str()),
    ];
    let r = http
        .post(format!(
            "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
            d.extra["tenant_id"]
        ))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["access_token"].is_string());

    // The requests are in each emulator's log, as direct ones are.
    let log = admin_get(&sb, "/admin/log?vendor=dataverse").await;
    assert!(
        log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["uri"].as_str().unwrap().ends_with("/oauth2/v2.0/token")),
        "{log}"
    );
    let log = admin_get(&sb, "/admin/log?vendor=zendesk").await;
    assert_eq!(log["requests"].as_array().unwrap().len(), 1);
    proxy.shutdown().await;
    sb.shutdown().await;
}

#[tokio::test]
async fn proxy_also_tunnels_to_the_emulators_loopback_addresses() {
    let (sb, proxy) = with_proxy().await;
    // Salesforce's instance_url names the emulator; a client that insists on https reaches it.
    let base = sb
        .vendor(Vendor::Salesforce)
        .unwrap()
        .base_url()
        .replace("http://", "https://");
    let r = proxied(&proxy)
        .get(format!("{base}/services/data"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    proxy.shutdown().await;
    sb.shutdown().await;
}

/// Sends a raw request to the proxy and returns its status line and body.
async fn raw(proxy: &Proxy, request: &str) -> (String, String) {
    let addr = proxy.url().trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[tokio::test]
async fn proxy_refuses_hosts_that_are_not_emulators_and_plain_http() {
    let (sb, proxy) = with_proxy().await;
    for target in [
        "example.com:443",
        "169.254.169.254:443",
        "api.hubapi.com:80",
        "zendesk.com.evil.example:443",
    ] {
        let (status, body) = raw(
            &proxy,
            &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
        )
        .await;
        assert_eq!(status, "HTTP/1.1 403 Forbidden", "{target}");
        assert!(
            body.contains("is not an emulator") && body.contains("api.hubapi.com"),
            "{body}"
        );
    }
    let (status, body) = raw(&proxy, "GET http://api.hubapi.com/crm/v3/objects/contacts HTTP/1.1\r\nHost: api.hubapi.com\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(body.contains("only tunnels https"), "{body}");
    // A client without the sandbox CA does not trust the proxy's certificates.
    // (And the CA itself is name-constrained to the vendors' domains and loopback.)
    let untrusting = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(proxy.url()).unwrap())
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(
        untrusting
            .get("https://api.hubapi.com/crm/v3/objects/contacts")
            .send()
            .await
            .is_err()
    );
    proxy.shutdown().await;
    sb.shutdown().await;
}
