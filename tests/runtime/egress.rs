//! A connector reaches only what its connection allows, and never holds the credential.
//! Every request below goes through a real component and the host's HTTP capability.

use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, HostRule, Secret, SecretRef};
use weft_runtime::bindings::{PluginError, SyncMode};
use weft_runtime::{CallContext, ConnectorPlugin, ReadRequest};
use weft_tests::upstream::Upstream;
use weft_tests::*;

struct Probe {
    plugin: ConnectorPlugin,
    ctx: CallContext,
    config: Value,
}

const TOKEN: &str = "tok-never-in-the-guest";

async fn probe(
    upstream: &Upstream,
    egress: Vec<HostRule>,
    adjust: impl FnOnce(&mut weft_capabilities::ConnectionSpec),
) -> Probe {
    let rt = runtime(|_| {});
    let plugin = connector(&rt, TRESPASSER).await;
    let config = json!({"base_url": upstream.url()});
    let secrets = secrets().await;
    let mut rules = vec![loopback_rule(upstream.addr)];
    rules.extend(egress);
    let auth = AuthSpec::Bearer {
        token: SecretRef::Literal(Secret::new(TOKEN)),
    };
    let connections =
        connections(&plugin, "c", config.clone(), auth, rules, &secrets, adjust).await;
    Probe {
        plugin,
        ctx: CallContext::new("default").with_connections(connections),
        config,
    }
}

impl Probe {
    async fn get(&self, url: &str) -> Result<Value, PluginError> {
        self.send(json!({"url": url})).await
    }

    async fn send(&self, options: Value) -> Result<Value, PluginError> {
        let request = ReadRequest {
            stream: "probe".into(),
            mode: SyncMode::Full,
            cursor: None,
            page_size: None,
            options: options.to_string(),
        };
        match self
            .plugin
            .read(&self.ctx, "c", &self.config, request)
            .await
        {
            Ok(page) => Ok(serde_json::from_str::<Vec<Value>>(&page.records)
                .unwrap()
                .remove(0)),
            Err(e) => Err(e
                .plugin_error()
                .cloned()
                .unwrap_or_else(|| panic!("not a plugin error: {e}"))),
        }
    }
}

fn denied(result: Result<Value, PluginError>) -> String {
    match result {
        Err(PluginError::Denied(message)) => message,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn reaches_its_allowed_upstream() {
    let upstream = Upstream::start().await;
    let p = probe(&upstream, vec![], |_| {}).await;
    let answer = p.get(&format!("{}/health", upstream.url())).await.unwrap();
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"], "ok");
}

#[tokio::test]
async fn refuses_loopback_private_and_metadata_addresses() {
    let upstream = Upstream::start().await;
    let p = probe(&upstream, vec![], |_| {}).await;
    let other_port = format!("http://127.0.0.1:{}/health", upstream.addr.port() + 1);
    for url in [
        other_port.as_str(),
        "http://127.0.0.2/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "https://example.com/",
    ] {
        let message = denied(p.get(url).await);
        assert!(!message.is_empty(), "{url}");
    }
    assert_eq!(upstream.seen().len(), 0, "nothing may reach the upstream");
}

#[tokio::test]
async fn refuses_an_allowed_name_that_resolves_to_loopback() {
    let upstream = Upstream::start().await;
    // `localhost` is on the list, with plain http, but not as a private host.
    let rule = HostRule::parse(&format!("localhost:{}", upstream.addr.port()))
        .unwrap()
        .allow_http(true);
    let p = probe(&upstream, vec![rule], |_| {}).await;
    let message = denied(
        p.get(&format!("http://localhost:{}/health", upstream.addr.port()))
            .await,
    );
    assert!(message.contains("localhost"), "{message}");
    assert_eq!(upstream.seen().len(), 0);
}

#[tokio::test]
async fn refuses_a_redirect_to_a_disallowed_host() {
    let upstream = Upstream::start().await;
    let p = probe(&upstream, vec![], |_| {}).await;
    let url = format!(
        "{}/redirect?to=http://169.254.169.254/latest/meta-data/",
        upstream.url()
    );
    let message = denied(p.get(&url).await);
    assert!(message.contains("169.254.169.254"), "{message}");
}

#[tokio::test]
async fn credential_is_attached_for_the_allowed_host_and_not_forwarded_on_redirect() {
    let upstream = Upstream::start().await;
    let elsewhere = Upstream::start().await;
    let p = probe(&upstream, vec![loopback_rule(elsewhere.addr)], |_| {}).await;
    let answer = p
        .get(&format!(
            "{}/redirect?to={}/echo-headers",
            upstream.url(),
            elsewhere.url()
        ))
        .await
        .unwrap();
    assert_eq!(answer["status"], 200);
    let first = &upstream.seen()[0];
    assert_eq!(first.headers["authorization"], format!("Bearer {TOKEN}"));
    let second = &elsewhere.seen()[0];
    assert!(
        !second.headers.contains_key("authorization"),
        "credential followed the redirect: {second:?}"
    );
    assert!(!answer.to_string().contains(TOKEN));
}

#[tokio::test]
async fn guest_cannot_set_the_headers_the_host_owns() {
    let upstream = Upstream::start().await;
    let p = probe(&upstream, vec![], |_| {}).await;
    for header in ["Authorization", "Host", "Proxy-Authorization", "Cookie"] {
        let result = p
            .send(json!({"url": format!("{}/health", upstream.url()), "headers": [[header, "x"]]}))
            .await;
        match result {
            Err(PluginError::Internal(message)) => {
                assert!(
                    message.to_lowercase().contains(&header.to_lowercase()),
                    "{header}: {message}"
                )
            }
            other => panic!("{header}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(upstream.seen().len(), 0);
}

#[tokio::test]
async fn token_never_reaches_the_guest() {
    let upstream = Upstream::start().await;
    let p = probe(&upstream, vec![], |_| {}).await;
    let answer = p.get(&format!("{}/health", upstream.url())).await.unwrap();
    let text = answer.to_string();
    assert!(!text.contains(TOKEN), "the guest saw the token: {text}");
    assert_eq!(answer["env"], 0);
}

#[tokio::test]
async fn oversized_response_is_cut_at_the_cap() {
    let upstream = Upstream::start().await;
    let p = probe(&upstream, vec![], |s| {
        s.limits.max_response_bytes = 256 * 1024
    })
    .await;
    match p.get(&format!("{}/big?kib=1024", upstream.url())).await {
        Err(PluginError::Internal(message)) => assert!(message.contains("262144"), "{message}"),
        other => panic!("expected the response to be refused, got {other:?}"),
    }
    let small = p
        .get(&format!("{}/big?kib=16", upstream.url()))
        .await
        .unwrap();
    assert_eq!(small["status"], 200);
}
