//! The connector conformance suite: the same checks for every connector, run against its
//! vendor's emulator in the sandbox.
//!
//! A vendor module implements [`Case`] (how a connection reaches the emulator, which stream is
//! read and written, how records change upstream, how a genuine webhook delivery is obtained)
//! and `weft_tests::conformance!(module_name, CaseType);` turns it into one test per check:
//!
//! | test | what it pins |
//! |---|---|
//! | `describe_is_valid` | every stream has an object schema holding its key and cursor fields; auth kinds, hosts and config schema are declared |
//! | `check_accepts_the_credential_and_refuses_a_bad_one` | `check` succeeds with the demo credential and fails with an `auth` error with a wrong one |
//! | `check_reports_an_unreachable_host` | a dead port is a retryable `unavailable` or `timeout`, not a crash |
//! | `full_read_returns_every_record` | all pages, no duplicate, the emulator's count |
//! | `incremental_read_returns_only_the_changes` | after changes upstream, a read from the committed cursor returns exactly the changed records |
//! | `incremental_read_misses_nothing_changed_during_it` | records edited between the pages of an incremental read (read already or not yet) are all read by it or by the next run, in their edited version: none skipped when pages shift |
//! | `incremental_read_copes_with_stale_and_future_cursors` | a stale cursor reads what changed since; a future one reads nothing; garbage is a `config` error |
//! | `partial_batch_writes_the_valid_records_and_reports_the_rest` | one outcome per record, failures carry an error, the valid records are upstream |
//! | `survives_a_429_burst_and_a_token_expiry_mid_run` | the vendor's throttling answer is `rate-limited` (with its wait); after it and an expired token the read completes without loss or duplicates |
//! | `refuses_a_forged_webhook_and_accepts_a_genuine_one` | a delivery the emulator really sent is accepted as events; the same with its body altered is rejected |

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::Value;
use weft_capabilities::{AuthSpec, Connections, Secrets};
use weft_runtime::bindings::{PluginError, SyncMode, WriteMode};
use weft_runtime::{
    CallContext, CallError, ConnectorPlugin, InboundRequest, ReadRequest, Runtime, Verification,
    WriteOutcome, WriteRequest,
};
pub use weft_sandbox::{FaultConfig, Sandbox, SandboxConfig, Vendor};

/// The connection name every conformance call uses.
pub const CONNECTION: &str = "crm";

/// What the suite needs to know about one connector and its emulator.
#[allow(async_fn_in_trait)]
pub trait Case {
    /// The component's crate name, e.g. `weft_plugin_zendesk`.
    const PLUGIN: &'static str;
    const VENDOR: Vendor;
    /// The stream the read checks use.
    const STREAM: &'static str;
    /// The page size the read checks ask for: small enough that the demo data spans pages.
    const PAGE_SIZE: u32 = 50;
    /// Whether the vendor's throttling answer says how long to wait (`Retry-After` or the like).
    const RATE_LIMIT_HAS_WAIT: bool = true;
    /// Whether the vendor sends webhooks the connector verifies. When it sends none, the webhook
    /// check pins instead that the connector refuses every delivery, with a reason.
    const WEBHOOKS: bool = true;

    /// The sandbox this connector is tested against; the default demo data unless a case needs
    /// something else.
    fn sandbox_config() -> SandboxConfig {
        SandboxConfig::default()
    }
    /// The connection's config, pointing at the emulator.
    fn config(sandbox: &Sandbox) -> Value;
    /// The config of a connection whose upstream is `dead` (nothing listens there).
    fn unreachable_config(sandbox: &Sandbox, dead: &str) -> Value;
    /// The emulator's demo credential, as a flow file would configure it.
    fn auth(sandbox: &Sandbox) -> AuthSpec;
    /// A credential the emulator refuses.
    fn bad_auth(sandbox: &Sandbox) -> AuthSpec;
    /// The connection's webhook secret, for vendors that sign deliveries with a shared secret.
    fn webhook_secret(_sandbox: &Sandbox) -> Option<String> {
        None
    }
    /// Extra egress for the connection beyond the emulator's own address (a second emulator
    /// port, an OAuth host).
    fn extra_hosts(_sandbox: &Sandbox) -> Vec<String> {
        Vec::new()
    }
    /// How many records `STREAM` holds in the emulator before any change.
    async fn expected_total(h: &Harness) -> usize;
    /// A record's id as `STREAM` returns it.
    fn id(record: &Value) -> String {
        match &record["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    /// Changes `n` existing records of `STREAM` upstream (through the vendor's API or the
    /// sandbox admin API, after moving the sandbox clock if the vendor needs time to pass) and
    /// returns their ids.
    async fn change(h: &Harness, n: usize) -> Vec<String>;
    /// A cursor older than any record (a connection left alone for months).
    fn stale_cursor(h: &Harness) -> String;
    /// A cursor past every record.
    fn future_cursor(h: &Harness) -> String;
    /// A write whose records at `invalid` the vendor refuses; the rest it accepts.
    fn partial_batch() -> PartialBatch;
    /// Whether the record the valid write produced is upstream now, by the outcome's id.
    async fn written(h: &Harness, stream: &str, id: &str) -> bool;
    /// Makes the emulator send a genuine signed delivery to `callback` (subscribing first if
    /// the vendor needs it) and waits for it with [`Receiver::next`]. Only called when
    /// [`Case::WEBHOOKS`] is true.
    async fn genuine_delivery(_h: &Harness, _receiver: &Receiver) -> InboundRequest {
        panic!(
            "{} declares webhooks but its case has no genuine_delivery",
            Self::PLUGIN
        )
    }
    /// A forgery of a genuine delivery, which `verify` must refuse. By default the body is
    /// altered: a vendor that signs its bodies refuses that. A vendor whose credential does not
    /// cover the body (a static key header, a JWT over other claims) forges the credential.
    fn forge(genuine: &InboundRequest) -> InboundRequest {
        let mut forged = genuine.clone();
        match forged.body.iter().rposition(|b| b.is_ascii_alphanumeric()) {
            Some(i) => forged.body[i] = if forged.body[i] == b'1' { b'2' } else { b'1' },
            None => forged.body.extend_from_slice(b" "),
        }
        forged
    }
    /// For vendors that mint the signing secret per subscription (Zendesk) instead of letting
    /// the operator choose it: the secret issued for the subscription `genuine_delivery` made,
    /// which the operator would then store as the connection's webhook secret. `None` keeps
    /// [`Case::webhook_secret`].
    async fn issued_webhook_secret(_h: &Harness) -> Option<String> {
        None
    }
}

/// A write with some records the vendor refuses.
pub struct PartialBatch {
    pub stream: &'static str,
    pub mode: WriteMode,
    pub key: Vec<String>,
    pub records: Vec<Value>,
    /// Indices of the records the vendor refuses.
    pub invalid: Vec<usize>,
}

/// A sandbox, the connector loaded in a runtime, and a connection to the emulator.
pub struct Harness {
    pub sandbox: Sandbox,
    pub plugin: ConnectorPlugin,
    pub secrets: Secrets,
    pub runtime: Runtime,
    pub context: CallContext,
    pub config: Value,
}

/// The egress rule for a loopback emulator address (`127.0.0.1:PORT`, or a URL).
fn loopback(host: &str) -> weft_capabilities::HostRule {
    let host = host.trim_start_matches("http://").trim_end_matches('/');
    let host = host.split('/').next().unwrap_or(host);
    weft_capabilities::HostRule::parse(host)
        .expect("loopback rule")
        .allow_http(true)
        .allow_private(true)
}

impl Harness {
    pub async fn start<C: Case>() -> Harness {
        Self::start_with::<C>(C::sandbox_config()).await
    }

    /// Like [`Harness::start`], with a sandbox configured for one test (small batch sizes,
    /// low limits) rather than the case's.
    pub async fn start_with<C: Case>(sandbox_config: SandboxConfig) -> Harness {
        let sandbox = Sandbox::start(sandbox_config)
            .await
            .expect("sandbox starts");
        let runtime = crate::runtime(|_| {});
        let plugin = crate::connector(&runtime, C::PLUGIN).await;
        let secrets = crate::secrets().await;
        let config = C::config(&sandbox);
        let mut harness = Harness {
            sandbox,
            plugin,
            secrets,
            runtime,
            context: CallContext::default(),
            config,
        };
        harness.context = harness
            .context_for::<C>(C::auth(&harness.sandbox), harness.config.clone())
            .await;
        harness
    }

    /// A call context whose connection `crm` uses `auth` and `config`.
    pub async fn context_for<C: Case>(&self, auth: AuthSpec, config: Value) -> CallContext {
        self.context_with::<C>(auth, config, C::webhook_secret(&self.sandbox))
            .await
    }

    /// A call context whose connection `crm` uses `auth`, `config` and webhook `secret`.
    pub async fn context_with<C: Case>(
        &self,
        auth: AuthSpec,
        config: Value,
        secret: Option<String>,
    ) -> CallContext {
        let base = self
            .sandbox
            .vendor(C::VENDOR)
            .expect("the vendor's emulator runs")
            .base_url()
            .to_owned();
        let mut egress = vec![loopback(&base)];
        egress.extend(C::extra_hosts(&self.sandbox).iter().map(|h| loopback(h)));
        let connections: Connections = crate::connections(
            &self.plugin,
            CONNECTION,
            config,
            auth,
            egress,
            &self.secrets,
            |spec| {
                if let Some(secret) = secret {
                    spec.webhook_secret = Some(weft_capabilities::SecretRef::Literal(
                        weft_capabilities::Secret::new(&secret),
                    ));
                }
            },
        )
        .await;
        CallContext::new("default").with_connections(connections)
    }

    pub fn base_url<C: Case>(&self) -> String {
        self.sandbox
            .vendor(C::VENDOR)
            .expect("the vendor's emulator runs")
            .base_url()
            .to_owned()
    }

    pub fn request(
        stream: &str,
        mode: SyncMode,
        cursor: Option<String>,
        page_size: u32,
    ) -> ReadRequest {
        ReadRequest {
            stream: stream.into(),
            mode,
            cursor,
            page_size: Some(page_size),
            options: "{}".into(),
        }
    }

    /// One page, retried like the engine retries.
    pub async fn read_page(&self, request: ReadRequest) -> Result<weft_runtime::Page, CallError> {
        weft_conformance::connector::read_page(
            &self.plugin,
            &self.context,
            CONNECTION,
            &self.config,
            request,
        )
        .await
    }

    /// Reads `stream` to its end from `cursor`: the records and the last cursor.
    pub async fn read_all(
        &self,
        stream: &str,
        mode: SyncMode,
        mut cursor: Option<String>,
        page_size: u32,
    ) -> (Vec<Value>, Option<String>) {
        let mut records = Vec::new();
        for _ in 0..10_000 {
            let page = self
                .read_page(Self::request(stream, mode, cursor.clone(), page_size))
                .await
                .unwrap_or_else(|e| panic!("reading {stream} ({mode:?}) from {cursor:?}: {e}"));
            let batch: Vec<Value> =
                serde_json::from_str(&page.records).expect("records are a JSON array");
            records.extend(batch);
            if page.next_cursor.is_some() {
                cursor = page.next_cursor;
            }
            if page.done {
                return (records, cursor);
            }
        }
        panic!("{stream} never said it was done after 10,000 pages");
    }

    pub async fn write(&self, batch: &PartialBatch) -> Result<Vec<WriteOutcome>, CallError> {
        let request = WriteRequest {
            stream: batch.stream.into(),
            mode: batch.mode,
            key: batch.key.clone(),
            records: Value::Array(batch.records.clone()).to_string(),
        };
        self.plugin
            .write(
                &self.context,
                CONNECTION,
                &self.config,
                request,
                batch.records.len(),
            )
            .await
    }

    pub async fn verify(&self, request: InboundRequest) -> Result<Verification, CallError> {
        self.verify_in(&self.context, request).await
    }

    pub async fn verify_in(
        &self,
        context: &CallContext,
        request: InboundRequest,
    ) -> Result<Verification, CallError> {
        self.plugin
            .verify(context, CONNECTION, &self.config, request)
            .await
    }
}

/// A loopback HTTP server that keeps every request it receives, answering 200 (or echoing a
/// JSON `challenge`, as vendors' handshakes expect), so tests can capture genuine webhook
/// deliveries.
pub struct Receiver {
    pub url: String,
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<InboundRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let received: Arc<Mutex<Vec<InboundRequest>>> = Arc::default();
        async fn keep(
            State(kept): State<Arc<Mutex<Vec<InboundRequest>>>>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            let request = InboundRequest {
                method: method.to_string(),
                path: uri.path().to_owned(),
                query: uri.query().unwrap_or("").to_owned(),
                headers: headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
            };
            let challenge = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("challenge").cloned());
            kept.lock().unwrap().push(request);
            match challenge {
                Some(c) => axum::Json(serde_json::json!({ "challenge": c })).into_response(),
                None => "".into_response(),
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let app = Router::new()
            .fallback(any(keep))
            .with_state(Arc::clone(&received));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hooks"),
            addr,
            received,
            task,
        }
    }

    /// The next request received, waiting up to 10 s (sandbox deliveries are asynchronous).
    pub async fn next(&self) -> InboundRequest {
        for _ in 0..1_000 {
            if let Some(r) = {
                let mut kept = self.received.lock().unwrap();
                (!kept.is_empty()).then(|| kept.remove(0))
            } {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no webhook delivery reached {} within 10 s", self.url);
    }

    /// Every request received so far, oldest first, without taking them.
    pub fn all(&self) -> Vec<InboundRequest> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback address nobody listens on.
pub async fn dead_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

fn ids<C: Case>(records: &[Value]) -> Vec<String> {
    records.iter().map(C::id).collect()
}

fn assert_unique(ids: &[String], what: &str) {
    let mut seen = BTreeSet::new();
    let dupes: Vec<&String> = ids.iter().filter(|id| !seen.insert(*id)).collect();
    assert!(dupes.is_empty(), "{what} returned duplicates: {dupes:?}");
}

pub async fn describe_is_valid<C: Case>() {
    let h = Harness::start::<C>().await;
    let info = h.plugin.info();
    let problems = weft_conformance::connector::describe_problems(info);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        info.streams.iter().any(|s| s.name == C::STREAM),
        "has stream {}",
        C::STREAM
    );
}

pub async fn check_accepts_the_credential_and_refuses_a_bad_one<C: Case>() {
    let h = Harness::start::<C>().await;
    h.plugin
        .check(&h.context, CONNECTION, &h.config)
        .await
        .expect("check passes with the demo credential");
    let bad = h
        .context_for::<C>(C::bad_auth(&h.sandbox), h.config.clone())
        .await;
    let err = h
        .plugin
        .check(&bad, CONNECTION, &h.config)
        .await
        .expect_err("check fails with a wrong credential");
    assert!(
        matches!(err.plugin_error(), Some(PluginError::Auth(_))),
        "a refused credential is an auth error, got: {err}"
    );
}

pub async fn check_reports_an_unreachable_host<C: Case>() {
    let h = Harness::start::<C>().await;
    let dead = dead_address().await;
    let config = C::unreachable_config(&h.sandbox, &dead);
    // The dead address is allowed, so the failure is the transport's, not the egress policy's.
    let mut egress = vec![loopback(&h.base_url::<C>()), loopback(&dead)];
    egress.extend(C::extra_hosts(&h.sandbox).iter().map(|x| loopback(x)));
    let connections = crate::connections(
        &h.plugin,
        CONNECTION,
        config.clone(),
        C::auth(&h.sandbox),
        egress,
        &h.secrets,
        |_| {},
    )
    .await;
    let context = CallContext::new("default").with_connections(connections);
    let err = h
        .plugin
        .check(&context, CONNECTION, &config)
        .await
        .expect_err("check fails when the host is down");
    assert!(
        matches!(
            err.plugin_error(),
            Some(PluginError::Unavailable(_) | PluginError::Timeout(_))
        ),
        "an unreachable host is `unavailable` (retryable), got: {err}"
    );
}

pub async fn full_read_returns_every_record<C: Case>() {
    let h = Harness::start::<C>().await;
    let expected = C::expected_total(&h).await;
    assert!(
        expected as u32 > C::PAGE_SIZE,
        "the demo data spans more than one page ({expected} records)"
    );
    let (records, _) = h
        .read_all(C::STREAM, SyncMode::Full, None, C::PAGE_SIZE)
        .await;
    let ids = ids::<C>(&records);
    assert_unique(&ids, "a full read");
    assert_eq!(ids.len(), expected, "a full read returns every record");
}

pub async fn incremental_read_returns_only_the_changes<C: Case>() {
    let h = Harness::start::<C>().await;
    let (first, cursor) = h
        .read_all(C::STREAM, SyncMode::Incremental, None, C::PAGE_SIZE)
        .await;
    assert_eq!(
        first.len(),
        C::expected_total(&h).await,
        "the first incremental read is a full one"
    );
    assert!(cursor.is_some(), "an incremental read leaves a cursor");
    let changed: BTreeSet<String> = C::change(&h, 3).await.into_iter().collect();
    assert_eq!(changed.len(), 3);
    let (again, _) = h
        .read_all(
            C::STREAM,
            SyncMode::Incremental,
            cursor.clone(),
            C::PAGE_SIZE,
        )
        .await;
    let got = ids::<C>(&again);
    assert_unique(&got, "an incremental read");
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        changed,
        "an incremental read returns exactly the changed records"
    );
}

/// A long incremental read while the source changes under it: after every page, records are
/// edited upstream (some already read, some not yet). Then the next run reads from the cursor
/// the first one left. Between them, every record the source holds must have been read, and
/// every edited one in a version at least as new as its last edit: none skipped because pages
/// shifted under the reader.
pub async fn incremental_read_misses_nothing_changed_during_it<C: Case>() {
    let h = Harness::start::<C>().await;
    let total = C::expected_total(&h).await;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut edited: BTreeSet<String> = BTreeSet::new();
    let mut read_after_edit: BTreeSet<String> = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = h
            .read_page(Harness::request(
                C::STREAM,
                SyncMode::Incremental,
                cursor.clone(),
                C::PAGE_SIZE,
            ))
            .await
            .unwrap_or_else(|e| panic!("reading {} page {pages} while it changes: {e}", C::STREAM));
        let batch: Vec<Value> =
            serde_json::from_str(&page.records).expect("records are a JSON array");
        for record in &batch {
            let id = C::id(record);
            if edited.contains(&id) {
                read_after_edit.insert(id.clone());
            }
            seen.insert(id);
        }
        if page.next_cursor.is_some() {
            cursor = page.next_cursor;
        }
        pages += 1;
        assert!(
            pages < 1_000,
            "the read does not end while the source changes"
        );
        if page.done {
            break;
        }
        // An edit lands between every page.
        for id in C::change(&h, 2).await {
            read_after_edit.remove(&id);
            edited.insert(id);
        }
    }
    assert!(
        pages >= 3,
        "the check needs a read of several pages, got {pages}"
    );
    // The next run, from the committed cursor.
    let (next, _) = h
        .read_all(C::STREAM, SyncMode::Incremental, cursor, C::PAGE_SIZE)
        .await;
    for record in &next {
        let id = C::id(record);
        if edited.contains(&id) {
            read_after_edit.insert(id.clone());
        }
        seen.insert(id);
    }
    let (everything, _) = h
        .read_all(C::STREAM, SyncMode::Full, None, C::PAGE_SIZE)
        .await;
    let all: BTreeSet<String> = ids::<C>(&everything).into_iter().collect();
    assert_eq!(all.len(), total, "the edits created or deleted nothing");
    let skipped: Vec<&String> = all.difference(&seen).collect();
    assert!(
        skipped.is_empty(),
        "{} of {total} records were never read across the two runs: {skipped:?}",
        skipped.len()
    );
    let stale: Vec<&String> = edited.difference(&read_after_edit).collect();
    assert!(
        stale.is_empty(),
        "{} edited records were not read again after their last edit: {stale:?}",
        stale.len()
    );
}

pub async fn incremental_read_copes_with_stale_and_future_cursors<C: Case>() {
    let h = Harness::start::<C>().await;
    let total = C::expected_total(&h).await;
    let (stale, _) = h
        .read_all(
            C::STREAM,
            SyncMode::Incremental,
            Some(C::stale_cursor(&h)),
            C::PAGE_SIZE,
        )
        .await;
    let stale_ids = ids::<C>(&stale);
    assert_unique(&stale_ids, "a read from a stale cursor");
    assert_eq!(
        stale_ids.len(),
        total,
        "a stale cursor reads everything changed since, here everything"
    );
    let (future, _) = h
        .read_all(
            C::STREAM,
            SyncMode::Incremental,
            Some(C::future_cursor(&h)),
            C::PAGE_SIZE,
        )
        .await;
    assert!(
        future.is_empty(),
        "a future cursor reads nothing, got {} records",
        future.len()
    );
    let garbage = h
        .read_page(Harness::request(
            C::STREAM,
            SyncMode::Incremental,
            Some("not a cursor \u{1F980}".into()),
            C::PAGE_SIZE,
        ))
        .await;
    match garbage {
        Err(e) => assert!(
            matches!(e.plugin_error(), Some(PluginError::Config(_))),
            "a garbage cursor is a config error, got: {e}"
        ),
        Ok(_) => panic!("a garbage cursor is refused"),
    }
}

pub async fn partial_batch_writes_the_valid_records_and_reports_the_rest<C: Case>() {
    let h = Harness::start::<C>().await;
    let batch = C::partial_batch();
    assert!(!batch.invalid.is_empty() && batch.invalid.len() < batch.records.len());
    let outcomes = h
        .write(&batch)
        .await
        .expect("a batch with some invalid records is written, not refused whole");
    assert_eq!(
        outcomes.len(),
        batch.records.len(),
        "one outcome per record"
    );
    for (i, outcome) in outcomes.iter().enumerate() {
        if batch.invalid.contains(&i) {
            assert_eq!(
                outcome.status,
                weft_runtime::WriteStatus::Failed,
                "record {i} is refused"
            );
            let error = outcome
                .error
                .as_ref()
                .unwrap_or_else(|| panic!("record {i}'s failure says why"));
            assert!(!error.message().is_empty());
        } else {
            assert_ne!(
                outcome.status,
                weft_runtime::WriteStatus::Failed,
                "record {i} is written: {:?}",
                outcome.error
            );
            let id = outcome
                .id
                .as_deref()
                .unwrap_or_else(|| panic!("record {i}'s outcome carries the upstream id"));
            assert!(
                C::written(&h, batch.stream, id).await,
                "record {i} ({id}) is upstream"
            );
        }
    }
}

pub async fn survives_a_429_burst_and_a_token_expiry_mid_run<C: Case>() {
    let h = Harness::start::<C>().await;
    let expected = C::expected_total(&h).await;
    // Page one normally, then a burst of throttling answers.
    let first = h
        .read_page(Harness::request(
            C::STREAM,
            SyncMode::Full,
            None,
            C::PAGE_SIZE,
        ))
        .await
        .expect("first page");
    let mut records: Vec<Value> = serde_json::from_str(&first.records).unwrap();
    h.sandbox.set_faults(
        Some(C::VENDOR),
        FaultConfig {
            rate_limited: 1.0,
            ..FaultConfig::default()
        },
    );
    let throttled = h
        .plugin
        .read(
            &h.context,
            CONNECTION,
            &h.config,
            Harness::request(
                C::STREAM,
                SyncMode::Full,
                first.next_cursor.clone(),
                C::PAGE_SIZE,
            ),
        )
        .await;
    match throttled.as_ref().map_err(CallError::plugin_error) {
        Err(Some(PluginError::RateLimited(r))) => {
            if C::RATE_LIMIT_HAS_WAIT {
                assert!(
                    r.retry_after_ms.is_some(),
                    "the vendor's wait is passed on: {}",
                    r.message
                );
            }
        }
        other => panic!("the vendor's throttling answer is `rate-limited`, got {other:?}"),
    }
    h.sandbox
        .set_faults(Some(C::VENDOR), FaultConfig::default());
    // Then every token expires: the host refreshes it (or the static key still works).
    h.sandbox.expire_tokens(Some(C::VENDOR));
    let (rest, _) = h
        .read_all(
            C::STREAM,
            SyncMode::Full,
            first.next_cursor.clone(),
            C::PAGE_SIZE,
        )
        .await;
    records.extend(rest);
    let ids = ids::<C>(&records);
    assert_unique(&ids, "a read through throttling and token expiry");
    assert_eq!(
        ids.len(),
        expected,
        "no record is lost to throttling or token expiry"
    );
}

pub async fn refuses_a_forged_webhook_and_accepts_a_genuine_one<C: Case>() {
    let h = Harness::start::<C>().await;
    if !C::WEBHOOKS {
        let delivery = InboundRequest {
            method: "POST".into(),
            path: "/hooks".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"[{"id":"1","event":"created"}]"#.to_vec(),
        };
        match h.verify(delivery).await {
            Ok(Verification::Rejected(reason)) => {
                assert!(!reason.is_empty(), "the refusal says why")
            }
            other => panic!(
                "a connector whose vendor sends no webhooks refuses every delivery, got {other:?}"
            ),
        }
        return;
    }
    let receiver = Receiver::start().await;
    let genuine = C::genuine_delivery(&h, &receiver).await;
    let issued = match C::issued_webhook_secret(&h).await {
        Some(secret) => Some(
            h.context_with::<C>(C::auth(&h.sandbox), h.config.clone(), Some(secret))
                .await,
        ),
        None => None,
    };
    let context = issued.as_ref().unwrap_or(&h.context);
    let forged = C::forge(&genuine);
    match h.verify_in(context, genuine).await.expect("verify answers") {
        Verification::Accepted(events) => {
            assert!(!events.is_empty(), "a genuine delivery carries events");
            assert!(
                events
                    .iter()
                    .all(|e| !e.id.is_empty() && !e.stream.is_empty()),
                "events carry an id and a stream: {events:?}"
            );
        }
        other => panic!("a genuine delivery is accepted, got {other:?}"),
    }
    match h.verify_in(context, forged).await {
        Ok(Verification::Rejected(reason)) => assert!(!reason.is_empty()),
        Err(e) if matches!(e.plugin_error(), Some(PluginError::Auth(_))) => {}
        other => panic!("a forged delivery is rejected, got {other:?}"),
    }
}

/// One `#[tokio::test]` per conformance check for `$case`, in a module named `$name`.
#[macro_export]
macro_rules! conformance {
    ($name:ident, $case:ty) => {
        mod $name {
            use super::*;
            $crate::conformance!(@tests $case;
                describe_is_valid,
                check_accepts_the_credential_and_refuses_a_bad_one,
                check_reports_an_unreachable_host,
                full_read_returns_every_record,
                incremental_read_returns_only_the_changes,
                incremental_read_misses_nothing_changed_during_it,
                incremental_read_copes_with_stale_and_future_cursors,
                partial_batch_writes_the_valid_records_and_reports_the_rest,
                survives_a_429_burst_and_a_token_expiry_mid_run,
                refuses_a_forged_webhook_and_accepts_a_genuine_one
            );
        }
    };
    (@tests $case:ty; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::conformance::$check::<$case>().await;
            }
        )*
    };
}
