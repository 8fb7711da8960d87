//! The connector checks: describe, check, reads, cursors, throttling and webhooks, against an
//! upstream the author chooses.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_capabilities::{AuthSpec, Connection, Connections, Secret, SecretRef, Secrets};
use weft_runtime::bindings::{PluginError, SyncMode};
use weft_runtime::{
    CallContext, CallError, ConnectorPlugin, InboundRequest, Page, ReadRequest, Verification,
};
use weft_sandbox::FaultConfig;

use crate::schema;
use crate::upstream::rule_for;
pub use crate::upstream::{Against, Upstream};
use crate::{Check, Outcome, Report};

/// The connection name every call of the checks uses.
pub const CONNECTION: &str = "conformance";

/// The page size reads ask for unless told otherwise: small, so demo data spans pages.
pub const DEFAULT_PAGE_SIZE: u32 = 25;

/// The most a full read may take before the check gives up on it.
const READ_LIMITS: (usize, usize, Duration) = (10_000, 1_000_000, Duration::from_secs(120));

/// A connection to check the connector through, configured as a flow would.
pub struct Target {
    /// The connection's config; `{url}` in any string stands for the upstream's base URL.
    pub config: Value,
    pub auth: AuthSpec,
    /// The stream the read checks use; the first readable stream when `None`.
    pub stream: Option<String>,
    pub page_size: u32,
    /// The secrets `secret:NAME` references resolve against.
    pub secrets: Secrets,
}

/// Replaces `{url}` in every string of `config`.
fn with_url(config: &Value, url: &str) -> Value {
    match config {
        Value::String(s) => Value::String(s.replace("{url}", url)),
        Value::Array(items) => Value::Array(items.iter().map(|v| with_url(v, url)).collect()),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), with_url(v, url)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The same credential, wrong: what the upstream must refuse.
fn spoiled(auth: &AuthSpec) -> Option<AuthSpec> {
    let wrong = || SecretRef::Literal(Secret::new("weft-conformance-wrong-credential"));
    let mut auth = auth.clone();
    match &mut auth {
        AuthSpec::None | AuthSpec::JwtBearer { .. } => return None,
        AuthSpec::ApiKey { value } => *value = wrong(),
        AuthSpec::Basic { password, .. } => *password = wrong(),
        AuthSpec::Bearer { token } => *token = wrong(),
        AuthSpec::OAuth2Refresh { refresh_token, .. } => *refresh_token = wrong(),
        AuthSpec::OAuth2ClientCredentials { client_secret, .. } => *client_secret = wrong(),
    }
    Some(auth)
}

/// The plugin, the upstream and a call context for the connection under test.
struct Bench<'a> {
    plugin: &'a ConnectorPlugin,
    upstream: &'a Upstream,
    target: &'a Target,
    config: Value,
    context: CallContext,
}

impl Bench<'_> {
    /// A call context whose connection uses `auth` and `config`, allowed to reach the
    /// upstream and `extra` addresses.
    fn context(
        &self,
        auth: AuthSpec,
        config: &Value,
        extra: &[&str],
    ) -> Result<CallContext, String> {
        context_for(
            self.plugin,
            self.upstream,
            &self.target.secrets,
            auth,
            config,
            extra,
        )
    }

    fn request(&self, stream: &str, mode: SyncMode, cursor: Option<String>) -> ReadRequest {
        ReadRequest {
            stream: stream.to_owned(),
            mode,
            cursor,
            page_size: Some(self.target.page_size),
            options: "{}".into(),
        }
    }

    async fn page(&self, request: ReadRequest) -> Result<Page, CallError> {
        read_page(
            self.plugin,
            &self.context,
            CONNECTION,
            &self.config,
            request,
        )
        .await
    }

    /// A stream read to its end from `cursor`, within the read limits.
    async fn read_all(
        &self,
        stream: &str,
        mode: SyncMode,
        mut cursor: Option<String>,
    ) -> Result<Read, String> {
        let (max_pages, max_records, max_time) = READ_LIMITS;
        let started = Instant::now();
        let mut read = Read::default();
        loop {
            let from = cursor.clone();
            let page = self
                .page(self.request(stream, mode, cursor.clone()))
                .await
                .map_err(|e| {
                    format!("reading page {} from cursor {from:?}: {e}", read.pages + 1)
                })?;
            let records: Vec<Value> = serde_json::from_str(&page.records).map_err(|e| {
                format!(
                    "page {} is not a JSON array of records: {e}",
                    read.pages + 1
                )
            })?;
            read.pages += 1;
            read.page_cursors.push(page.next_cursor.clone());
            read.page_lengths.push(records.len());
            read.records.extend(records);
            read.total = page.total.or(read.total);
            let gave_cursor = page.next_cursor.is_some();
            if gave_cursor {
                cursor = page.next_cursor;
            }
            if page.done {
                read.cursor = cursor;
                return Ok(read);
            }
            if !gave_cursor {
                return Err(format!(
                    "page {} says more follows but gives no cursor to read it from",
                    read.pages
                ));
            }
            if read.pages >= max_pages || read.records.len() >= max_records {
                return Err(format!(
                    "{stream} did not end after {} pages and {} records",
                    read.pages,
                    read.records.len()
                ));
            }
            if started.elapsed() > max_time {
                return Err(format!(
                    "{stream} did not end within {} s ({} pages read)",
                    max_time.as_secs(),
                    read.pages
                ));
            }
        }
    }
}

/// One page of `connection`, retried as the engine retries: retryable errors up to 8 times,
/// the upstream's wait honoured up to a second.
pub async fn read_page(
    plugin: &ConnectorPlugin,
    context: &CallContext,
    connection: &str,
    config: &Value,
    request: ReadRequest,
) -> Result<Page, CallError> {
    let mut attempt = 0;
    loop {
        match plugin
            .read(context, connection, config, request.clone())
            .await
        {
            Err(e) if attempt < 8 && e.plugin_error().is_some_and(PluginError::is_retryable) => {
                let wait = match e.plugin_error() {
                    Some(PluginError::RateLimited(r)) => r.retry_after_ms.unwrap_or(100).min(1_000),
                    _ => 100,
                };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn context_for(
    plugin: &ConnectorPlugin,
    upstream: &Upstream,
    secrets: &Secrets,
    auth: AuthSpec,
    config: &Value,
    extra: &[&str],
) -> Result<CallContext, String> {
    let mut egress = vec![rule_for(upstream.base_url())?];
    for url in extra {
        egress.push(rule_for(url)?);
    }
    let mut spec = plugin
        .connection_spec(CONNECTION, "default", config.clone(), auth, egress)
        .map_err(|e| e.to_string())?;
    // Verification runs with a secret configured, so a connector that checks signatures
    // reaches its check instead of stopping at a missing secret.
    spec.webhook_secret = Some(SecretRef::Literal(Secret::new(
        "weft-conformance-webhook-secret",
    )));
    let connection = Connection::new(spec, secrets.clone()).map_err(|e| e.to_string())?;
    let mut connections = Connections::new();
    connections.insert(connection);
    Ok(CallContext::new("default").with_connections(connections))
}

/// A stream read to its end.
#[derive(Default)]
struct Read {
    records: Vec<Value>,
    pages: usize,
    /// Each page's `next-cursor`, in order.
    page_cursors: Vec<Option<String>>,
    page_lengths: Vec<usize>,
    /// The cursor to resume after the last page.
    cursor: Option<String>,
    total: Option<u64>,
}

/// A record's primary key as text, or why it has none.
fn key_of(record: &Value, key: &[String]) -> Result<String, String> {
    let mut parts = Vec::with_capacity(key.len());
    for field in key {
        match record.get(field) {
            None | Some(Value::Null) => {
                return Err(format!(
                    "a record has no `{field}`, part of the stream's primary key: {}",
                    schema::excerpt(record)
                ));
            }
            Some(value) => parts.push(value.to_string()),
        }
    }
    Ok(parts.join("|"))
}

/// Cursor-field values compared as numbers when both are, as text otherwise (RFC 3339
/// timestamps of one format order as text).
fn cursor_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => {
            let text = |v: &Value| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            };
            text(a).cmp(&text(b))
        }
    }
}

/// Runs every connector check on `plugin` against `upstream` through `target`.
pub async fn check(plugin: &ConnectorPlugin, upstream: &Upstream, target: &Target) -> Report {
    let info = plugin.info();
    let mut report = Report::new(format!("{} {} (connector)", info.name, info.version));
    let config = with_url(&target.config, upstream.base_url());

    report
        .timed(
        "describe_is_valid",
        "name, version and description set; the config schema an object; auth kinds and hosts declared; every stream's key and cursor fields in its schema",
        async { describe_is_valid(plugin) },
    )
    .await;

    let context = match context_for(
        plugin,
        upstream,
        &target.secrets,
        target.auth.clone(),
        &config,
        &[],
    ) {
        Ok(context) => context,
        Err(e) => {
            report.checks.push(Check {
                name: "connection_is_configured",
                pins: "the connection's config and auth fit what the plugin declares",
                outcome: Outcome::Failed(e),
                took: Duration::ZERO,
            });
            return report;
        }
    };
    let bench = Bench {
        plugin,
        upstream,
        target,
        config,
        context,
    };

    report
        .timed(
            "check_accepts_the_credential",
            "`check` succeeds with the connection's credential",
            async {
                match plugin
                    .check(&bench.context, CONNECTION, &bench.config)
                    .await
                {
                    Ok(()) => {
                        Outcome::Passed(format!("accepted ({} credential)", target.auth.kind()))
                    }
                    Err(e) => Outcome::Failed(format!("check failed: {e}")),
                }
            },
        )
        .await;
    report
        .timed(
            "check_refuses_a_wrong_credential",
            "`check` with a wrong credential fails with an `auth` error, not another kind",
            check_refuses_a_wrong_credential(&bench),
        )
        .await;
    report
        .timed(
        "check_reports_an_unreachable_host",
        "with nothing listening upstream, `check` fails with `unavailable` or `timeout` (retryable), not a crash",
        check_reports_an_unreachable_host(&bench),
    )
    .await;

    let stream = match &target.stream {
        Some(name) => info.streams.iter().find(|s| &s.name == name),
        None => info.streams.iter().find(|s| !s.sync_modes.is_empty()),
    };
    let Some(stream) = stream.filter(|s| !s.sync_modes.is_empty()) else {
        let why = match &target.stream {
            Some(name) => format!(
                "the plugin has no readable stream `{name}` (it has: {})",
                info.streams
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "the plugin declares no readable stream".to_owned(),
        };
        report.checks.push(Check {
            name: "full_read_returns_every_record_once",
            pins: "a full read of the stream ends, with no record twice",
            outcome: Outcome::Failed(why),
            took: Duration::ZERO,
        });
        return report;
    };

    let started = Instant::now();
    let full = bench.read_all(&stream.name, SyncMode::Full, None).await;
    report.checks.push(Check {
        name: "full_read_returns_every_record_once",
        pins: "a full read pages to its end; every record has its primary key, fits the stream's schema and comes once; the count matches the upstream's total when it gives one",
        outcome: full_read_verdict(stream, &full, target.page_size),
        took: started.elapsed(),
    });
    report
        .timed(
            "a_read_resumes_from_any_page",
            "reading from the cursor of a page returns exactly the records after it",
            a_read_resumes_from_any_page(&bench, stream, full.as_ref().ok()),
        )
        .await;
    report
        .timed(
        "incremental_read_from_its_last_cursor_returns_nothing_older",
        "an incremental read from the cursor an incremental read ended on returns no record older than what that read returned",
        incremental_read_returns_nothing_older(&bench, stream),
    )
    .await;
    report
        .timed(
            "a_garbage_cursor_is_a_config_error",
            "a cursor the plugin never gave out is refused as `config`, not read from nor a crash",
            a_garbage_cursor_is_a_config_error(&bench, stream),
        )
        .await;
    report
        .timed(
            "throttling_is_rate_limited_and_the_read_recovers",
            "the vendor's throttling answer becomes `rate-limited`, and reads go on once it stops",
            throttling_is_rate_limited(&bench, stream),
        )
        .await;
    report
        .timed(
            "an_unsigned_webhook_is_refused",
            "`verify` never accepts a delivery that carries no signature",
            an_unsigned_webhook_is_refused(&bench),
        )
        .await;
    report
}

fn describe_is_valid(plugin: &ConnectorPlugin) -> Outcome {
    let info = plugin.info();
    let problems = describe_problems(info);
    if problems.is_empty() {
        Outcome::Passed(format!(
            "{} stream(s): {}",
            info.streams.len(),
            info.streams
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        Outcome::Failed(problems.join("; "))
    }
}

/// What is wrong with what a connector says of itself: empty when nothing is.
pub fn describe_problems(info: &weft_runtime::ConnectorInfo) -> Vec<String> {
    let mut problems = crate::identity_problems(
        &info.name,
        &info.version,
        &info.description,
        &info.config_schema,
    );
    if info.auth.is_empty() {
        problems.push("no auth kind is declared (declare `none` if the API needs none)".into());
    }
    if info.hosts.is_empty() {
        problems.push("no host is declared: the host would allow the connection nowhere".into());
    }
    if info.streams.is_empty() {
        problems.push("no stream is declared".into());
    }
    for stream in &info.streams {
        let schema: Value = match serde_json::from_str(&stream.schema) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!(
                    "stream {}: the schema is not JSON: {e}",
                    stream.name
                ));
                continue;
            }
        };
        let properties = match schema::properties(&schema) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("stream {}: {e}", stream.name));
                continue;
            }
        };
        if stream.primary_key.is_empty() {
            problems.push(format!("stream {} has no primary key", stream.name));
        }
        for field in stream.primary_key.iter().chain(&stream.cursor_field) {
            if !properties.contains_key(field) {
                problems.push(format!(
                    "stream {}: `{field}` (key or cursor field) is not among its schema's properties",
                    stream.name
                ));
            }
        }
        if stream.cursor_field.is_some() && !stream.sync_modes.contains(&SyncMode::Incremental) {
            problems.push(format!(
                "stream {} has a cursor field but does not read incrementally",
                stream.name
            ));
        }
        if stream.sync_modes.is_empty() && stream.write_modes.is_empty() {
            problems.push(format!(
                "stream {} can be neither read nor written",
                stream.name
            ));
        }
    }
    problems
}

async fn check_refuses_a_wrong_credential(bench: &Bench<'_>) -> Outcome {
    let Some(auth) = spoiled(&bench.target.auth) else {
        return Outcome::Skipped(format!(
            "a `{}` credential has no wrong variant this kit can make",
            bench.target.auth.kind()
        ));
    };
    let context = match bench.context(auth, &bench.config, &[]) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e),
    };
    match bench
        .plugin
        .check(&context, CONNECTION, &bench.config)
        .await
    {
        Ok(()) => Outcome::Failed(
            "check succeeded with a wrong credential: does `check` call the API at all?".into(),
        ),
        Err(e) => match e.plugin_error() {
            Some(PluginError::Auth(m)) => Outcome::Passed(format!("auth: {m}")),
            _ => Outcome::Failed(format!(
                "a refused credential must be an `auth` error (the host then stops retrying and tells the operator), got: {e}"
            )),
        },
    }
}

/// An address nothing listens on: a port bound and released at once.
async fn dead_address() -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("finding a free port: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("finding a free port: {e}"))?;
    drop(listener);
    Ok(format!("http://{addr}"))
}

async fn check_reports_an_unreachable_host(bench: &Bench<'_>) -> Outcome {
    if !bench.target.config.to_string().contains("{url}") {
        return Outcome::Skipped(
            "the config does not say where the upstream is with {url}, so the kit cannot point it elsewhere".into(),
        );
    }
    let dead = match dead_address().await {
        Ok(d) => d,
        Err(e) => return Outcome::Failed(e),
    };
    let config = with_url(&bench.target.config, &dead);
    let context = match bench.context(bench.target.auth.clone(), &config, &[&dead]) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e),
    };
    match bench.plugin.check(&context, CONNECTION, &config).await {
        Ok(()) => Outcome::Failed(format!("check succeeded with nothing listening at {dead}")),
        Err(e) => match e.plugin_error() {
            Some(PluginError::Unavailable(m) | PluginError::Timeout(m)) => {
                Outcome::Passed(m.clone())
            }
            // The token endpoint is unreachable too: the host reports that as the credential
            // being unobtainable, before the plugin's request is sent.
            Some(PluginError::Auth(m)) if bench.target.auth.token_url().is_some() => {
                Outcome::Skipped(format!(
                    "the credential is exchanged at the upstream, which is down too: {m}"
                ))
            }
            _ => Outcome::Failed(format!(
                "an unreachable upstream must be `unavailable` or `timeout` (retryable), got: {e}"
            )),
        },
    }
}

fn full_read_verdict(
    stream: &weft_runtime::bindings::StreamDescriptor,
    full: &Result<Read, String>,
    page_size: u32,
) -> Outcome {
    let read = match full {
        Ok(read) => read,
        Err(e) => return Outcome::Failed(e.clone()),
    };
    let schema: Value = serde_json::from_str(&stream.schema).unwrap_or(Value::Null);
    let mut seen = BTreeSet::new();
    for record in &read.records {
        if let Err(e) = schema::check_record(&schema, record) {
            return Outcome::Failed(format!("stream {}: {e}", stream.name));
        }
        let key = match key_of(record, &stream.primary_key) {
            Ok(key) => key,
            Err(e) => return Outcome::Failed(e),
        };
        if !seen.insert(key.clone()) {
            return Outcome::Failed(format!(
                "the record with key {key} came twice in one full read: paging repeats records"
            ));
        }
    }
    if let Some(longest) = read.page_lengths.iter().max()
        && *longest > page_size as usize
    {
        return Outcome::Failed(format!(
            "a page held {longest} records where {page_size} were asked for at most"
        ));
    }
    if let Some(total) = read.total
        && total as usize != read.records.len()
    {
        return Outcome::Failed(format!(
            "the upstream gave a total of {total} but the read returned {}",
            read.records.len()
        ));
    }
    Outcome::Passed(format!(
        "{} records in {} page(s) of stream {}",
        read.records.len(),
        read.pages,
        stream.name
    ))
}

async fn a_read_resumes_from_any_page(
    bench: &Bench<'_>,
    stream: &weft_runtime::bindings::StreamDescriptor,
    full: Option<&Read>,
) -> Outcome {
    let Some(full) = full else {
        return Outcome::Skipped("the full read failed".into());
    };
    if full.pages < 2 {
        return Outcome::Skipped(format!(
            "the stream fits one page ({} records at a page size of {}): lower --page-size or add records upstream",
            full.records.len(),
            bench.target.page_size
        ));
    }
    let first = full.page_lengths[0];
    let Some(cursor) = full.page_cursors[0].clone() else {
        return Outcome::Failed("the first page of several gave no cursor".into());
    };
    let rest = match bench
        .read_all(&stream.name, SyncMode::Full, Some(cursor))
        .await
    {
        Ok(rest) => rest,
        Err(e) => return Outcome::Failed(format!("resuming after the first page: {e}")),
    };
    let keys = |records: &[Value]| -> Vec<String> {
        records
            .iter()
            .filter_map(|r| key_of(r, &stream.primary_key).ok())
            .collect()
    };
    let expected = keys(&full.records[first..]);
    let got = keys(&rest.records);
    if got == expected {
        Outcome::Passed(format!(
            "resumed after page 1: {} records, the same as the full read's",
            got.len()
        ))
    } else {
        let missing = expected.iter().filter(|k| !got.contains(k)).count();
        let extra = got.iter().filter(|k| !expected.contains(k)).count();
        Outcome::Failed(format!(
            "resumed after page 1 and got {} records where the full read had {} after it ({missing} missing, {extra} not in it, or a different order)",
            got.len(),
            expected.len()
        ))
    }
}

async fn incremental_read_returns_nothing_older(
    bench: &Bench<'_>,
    stream: &weft_runtime::bindings::StreamDescriptor,
) -> Outcome {
    if !stream.sync_modes.contains(&SyncMode::Incremental) {
        return Outcome::Skipped(format!("stream {} reads in full only", stream.name));
    }
    let Some(field) = &stream.cursor_field else {
        return Outcome::Skipped(format!("stream {} declares no cursor field", stream.name));
    };
    let first = match bench
        .read_all(&stream.name, SyncMode::Incremental, None)
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("the first incremental read: {e}")),
    };
    let Some(cursor) = first.cursor.clone() else {
        return Outcome::Failed(
            "an incremental read ended without a cursor to resume from: the next run would read everything again".into(),
        );
    };
    let newest = first
        .records
        .iter()
        .filter_map(|r| r.get(field))
        .max_by(|a, b| cursor_order(a, b))
        .cloned();
    let again = match bench
        .read_all(&stream.name, SyncMode::Incremental, Some(cursor))
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("resuming from the last cursor: {e}")),
    };
    if let Some(newest) = &newest
        && let Some(older) = again.records.iter().find(|r| {
            r.get(field)
                .is_some_and(|v| cursor_order(v, newest) == std::cmp::Ordering::Less)
        })
    {
        return Outcome::Failed(format!(
            "the second read returned a record older than the first read's newest ({field} {newest}): {}",
            schema::excerpt(older)
        ));
    }
    Outcome::Passed(format!(
        "{} records, then {} from the last cursor (nothing changed upstream in between)",
        first.records.len(),
        again.records.len()
    ))
}

async fn a_garbage_cursor_is_a_config_error(
    bench: &Bench<'_>,
    stream: &weft_runtime::bindings::StreamDescriptor,
) -> Outcome {
    let mode = if stream.sync_modes.contains(&SyncMode::Incremental) {
        SyncMode::Incremental
    } else {
        SyncMode::Full
    };
    let garbage = "\u{1}weft-conformance: not a cursor %%".to_owned();
    match bench
        .plugin
        .read(
            &bench.context,
            CONNECTION,
            &bench.config,
            bench.request(&stream.name, mode, Some(garbage)),
        )
        .await
    {
        Err(e) => match e.plugin_error() {
            Some(PluginError::Config(m)) => Outcome::Passed(format!("config: {m}")),
            _ => Outcome::Failed(format!(
                "a cursor the plugin never gave out must be a `config` error (the operator resets the connection's cursor), got: {e}"
            )),
        },
        Ok(page) => Outcome::Failed(format!(
            "the read went ahead from a garbage cursor and returned a page ({} bytes of records)",
            page.records.len()
        )),
    }
}

async fn throttling_is_rate_limited(
    bench: &Bench<'_>,
    stream: &weft_runtime::bindings::StreamDescriptor,
) -> Outcome {
    let Some((sandbox, vendor)) = bench.upstream.sandbox() else {
        return Outcome::Skipped(
            "needs the upstream's throttling on demand: run against sandbox:VENDOR".into(),
        );
    };
    // The credential was obtained by the reads before; from here every request is throttled.
    sandbox.set_faults(
        Some(vendor),
        FaultConfig {
            rate_limited: 1.0,
            ..FaultConfig::default()
        },
    );
    let throttled = bench
        .plugin
        .read(
            &bench.context,
            CONNECTION,
            &bench.config,
            bench.request(&stream.name, SyncMode::Full, None),
        )
        .await;
    sandbox.set_faults(Some(vendor), FaultConfig::default());
    let seen = match throttled {
        Err(e) => match e.plugin_error() {
            Some(PluginError::RateLimited(r)) => match r.retry_after_ms {
                Some(ms) => format!("rate-limited, waiting {ms} ms as the upstream asked"),
                None => "rate-limited (the upstream gave no wait)".to_owned(),
            },
            _ => {
                return Outcome::Failed(format!(
                    "the vendor's throttling answer must be `rate-limited` (the host waits and retries), got: {e}"
                ));
            }
        },
        Ok(_) => {
            return Outcome::Failed(
                "the read succeeded while the upstream throttled every request".into(),
            );
        }
    };
    match bench
        .page(bench.request(&stream.name, SyncMode::Full, None))
        .await
    {
        Ok(_) => Outcome::Passed(format!("{seen}; the next read went through")),
        Err(e) => Outcome::Failed(format!("{seen}, but once it stopped the read failed: {e}")),
    }
}

async fn an_unsigned_webhook_is_refused(bench: &Bench<'_>) -> Outcome {
    let delivery = InboundRequest {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"id":"conformance-1","event":"updated","object":{"id":"1"}}"#.to_vec(),
    };
    match bench
        .plugin
        .verify(&bench.context, CONNECTION, &bench.config, delivery)
        .await
    {
        Ok(Verification::Accepted(events)) => Outcome::Failed(format!(
            "an unsigned delivery was accepted as {} event(s): anyone who knows the URL could inject records",
            events.len()
        )),
        Ok(Verification::Rejected(reason)) => Outcome::Passed(format!("rejected: {reason}")),
        Ok(Verification::Handshake(reply)) => Outcome::Passed(format!(
            "answered as a handshake ({}), nothing processed",
            reply.status
        )),
        Err(e) => match e.plugin_error() {
            Some(_) => Outcome::Passed(format!("refused: {e}")),
            None => Outcome::Failed(format!("verify failed outside the contract: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_stands_in_every_string_of_the_config() {
        let config = json!({"base_url": "{url}/api", "n": 1, "more": ["{url}"]});
        assert_eq!(
            with_url(&config, "http://h:1"),
            json!({"base_url": "http://h:1/api", "n": 1, "more": ["http://h:1"]})
        );
    }

    #[test]
    fn a_spoiled_credential_differs_in_its_secret_only() {
        let auth = AuthSpec::Basic {
            username: "u".into(),
            password: SecretRef::Literal(Secret::new("p")),
        };
        let Some(AuthSpec::Basic { username, password }) = spoiled(&auth) else {
            panic!("basic spoils to basic");
        };
        assert_eq!(username, "u");
        assert_ne!(
            password,
            SecretRef::Literal(Secret::new("p")),
            "the password changed"
        );
        assert_eq!(spoiled(&AuthSpec::None), None);
    }
}
