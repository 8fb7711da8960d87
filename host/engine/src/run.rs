//! Executing a planned flow.
//!
//! Records move page by page: each page a read step returns is pushed through every step
//! downstream of it (transforms, then writes) before the next page is read, so memory stays
//! bounded by one page per source whatever the record count. A read's cursor is committed to the
//! store only after every write depending on that page has been acknowledged: a crash replays at
//! most the uncommitted page, and writes are upserts by key, so a replay duplicates nothing.
//!
//! Lookup inputs (`transform = { lookup = "accounts" }`) are read in full first and kept in
//! memory for the run. Records that fail (a transform's rejects, a write's failed outcomes) go
//! to the run's error log with the record and the reason, and the batch carries on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::lease::FlowHold;
use serde_json::Value;
use weft_capabilities::{Connection, ConnectionError, Connections, Secrets};
use weft_flow::model::{Branch, RunAfter, Step, SyncMode};
use weft_flow::{Flow, StepId};
use weft_runtime::bindings::{self, PluginError};
use weft_runtime::{Batch, CallContext, CallError, ReadRequest, WriteRequest, WriteStatus};
use weft_store::{StepRunRecord, Store, StoreError};

use crate::plan::Plan;

/// How failing calls are retried: 408, 429, 5xx and transport failures, with exponential
/// backoff and jitter, honouring the wait a rate-limited upstream asks for.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    /// The longest single wait, whatever `Retry-After` says.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(250),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// What a run needs besides the flow and its plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub tenant: String,
    pub environment: Option<String>,
    pub retry: RetryPolicy,
    /// Records per write call when the step does not say.
    pub write_batch: usize,
    /// How long the run's hold on its flow lasts unless renewed (it is renewed every third).
    pub lease: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            tenant: "default".into(),
            environment: None,
            retry: RetryPolicy::default(),
            write_batch: 100,
            lease: crate::lease::DEFAULT_LEASE,
        }
    }
}

/// Why a run could not be carried out at all (a step failing is a run status, not this).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another run of the flow holds it: runs of one flow never overlap.
    #[error(
        "flow `{flow}` is running already: run {run} (process {holder}) holds it until {until}, renewing while it runs; wait for it to end (`weft run --wait`) or see `weft runs show {run}`"
    )]
    FlowBusy {
        flow: String,
        run: String,
        holder: String,
        until: String,
    },
}

/// A step's state as the run goes, for progress displays.
#[derive(Debug)]
pub struct Progress<'a> {
    pub step: &'a StepRunRecord,
    /// Records the source says it holds in all, when it says (read steps).
    pub total: Option<u64>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub id: String,
    pub succeeded: bool,
    pub steps: Vec<StepRunRecord>,
    pub took: Duration,
}

/// A fresh run id: time-ordered and unique within the process.
fn run_id_new() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "r{millis:x}{:x}{:02x}",
        std::process::id() & 0xfff,
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff
    )
}

/// Jitter without a random-number crate: good enough to spread retries apart.
fn jitter(attempt: u32) -> f64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (u64::from(nanos) ^ (u64::from(attempt) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    0.5 + (mixed >> 11) as f64 / (1u64 << 53) as f64
}

async fn with_retry<T, Fut>(
    policy: &RetryPolicy,
    mut call: impl FnMut() -> Fut,
) -> Result<T, CallError>
where
    Fut: Future<Output = Result<T, CallError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e)
                if attempt < policy.attempts
                    && e.plugin_error().is_some_and(PluginError::is_retryable) =>
            {
                let wait = match e.plugin_error() {
                    Some(PluginError::RateLimited(r)) if r.retry_after_ms.is_some() => {
                        Duration::from_millis(r.retry_after_ms.unwrap_or(0))
                    }
                    _ => policy
                        .base
                        .mul_f64(2f64.powi(attempt as i32 - 1) * jitter(attempt)),
                };
                tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                tokio::time::sleep(wait.min(policy.max_wait)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A step's `timeout`: how long one of its calls (a page read, a batch transformed or written,
/// retries included) may take.
fn step_timeout(step: &Step) -> Option<Duration> {
    step.timeout.as_ref().map(|t| t.get_ref().0)
}

/// The step failure a call over its step's timeout becomes.
#[derive(Debug)]
struct StepTimedOut(Duration);

impl std::fmt::Display for StepTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the step's timeout of {} s ran out", self.0.as_secs())
    }
}

/// `call` under the step's timeout, if it has one.
async fn bounded<T>(
    limit: Option<Duration>,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, StepFailure> {
    match limit {
        None => call.await.map_err(StepFailure::Call),
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(StepFailure::Call),
            Err(_) => Err(StepFailure::TimedOut(StepTimedOut(limit))),
        },
    }
}

/// Why a step's call failed.
#[derive(Debug)]
enum StepFailure {
    Call(CallError),
    TimedOut(StepTimedOut),
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepFailure::Call(e) => e.fmt(f),
            StepFailure::TimedOut(t) => t.fmt(f),
        }
    }
}

/// Why one read of a for-each step produced nothing.
enum ForEachFailure {
    /// The record cannot fill the step's options.
    Record(String),
    Read(StepFailure),
    /// The connector misbehaved; the step stops.
    Step(String),
}

impl From<String> for ForEachFailure {
    fn from(reason: String) -> Self {
        ForEachFailure::Record(reason)
    }
}

/// Upstream answers about one record (it does not exist, it is invalid), as opposed to ones
/// about the connection or the upstream as a whole.
fn is_record_level(error: &PluginError) -> bool {
    match error {
        PluginError::InvalidRecord(_) => true,
        PluginError::Upstream(u) => {
            (400..500).contains(&u.status) && ![401, 403, 408, 429].contains(&u.status)
        }
        _ => false,
    }
}

/// The field at a dotted `path` of `record`.
fn field<'v>(record: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(record, |v, part| match v {
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => v.get(part),
    })
}

/// `template` with `${record.FIELD}` filled from `record`: a string that is only a reference
/// takes the field's value and type; a reference inside text is replaced by the value's text.
fn fill_record(template: &Value, record: &Value) -> Result<Value, String> {
    let lookup = |path: &str| {
        field(record, path)
            .filter(|v| !v.is_null())
            .cloned()
            .ok_or_else(|| format!("the record has no field `{path}` for `${{record.{path}}}`"))
    };
    Ok(match template {
        Value::String(s) => {
            if let Some(path) = s
                .strip_prefix("${record.")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|p| !p.contains('}'))
            {
                return lookup(path);
            }
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${record.") {
                let Some(end) = rest[start..].find('}') else {
                    break;
                };
                out.push_str(&rest[..start]);
                match lookup(&rest[start + 9..start + end])? {
                    Value::String(text) => out.push_str(&text),
                    other => out.push_str(&other.to_string()),
                }
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill_record(v, record))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill_record(v, record)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn sync_mode(mode: SyncMode) -> bindings::SyncMode {
    match mode {
        SyncMode::Full => bindings::SyncMode::Full,
        SyncMode::Incremental => bindings::SyncMode::Incremental,
    }
}

fn write_mode(mode: weft_flow::model::WriteMode) -> bindings::WriteMode {
    use weft_flow::model::WriteMode as M;
    match mode {
        M::Create => bindings::WriteMode::Create,
        M::Update => bindings::WriteMode::Update,
        M::Upsert => bindings::WriteMode::Upsert,
        M::Delete => bindings::WriteMode::Delete,
    }
}

/// The longest error text stored for a step or a failed record.
const MAX_STORED_ERROR_BYTES: usize = 8192;

/// The run in progress.
struct Execution<'a> {
    flow: &'a Flow,
    plan: &'a Plan,
    store: &'a Store,
    options: &'a RunOptions,
    context: CallContext,
    run: String,
    steps: BTreeMap<StepId, StepRunRecord>,
    /// Steps whose full output is kept for the run: lookup inputs and what feeds them.
    collected: BTreeMap<StepId, Vec<Value>>,
    /// Read steps fed by webhook events instead of their connector.
    injected: BTreeMap<StepId, Vec<Value>>,
    /// How many records each read step's source said it holds.
    totals: BTreeMap<StepId, u64>,
    progress: &'a mut (dyn FnMut(&Progress<'_>) + Send),
}

impl<'a> Execution<'a> {
    fn step(&self, id: &StepId) -> &'a Step {
        self.flow.step(id).expect("planned steps exist")
    }

    /// Steps reading `id`'s output, in flow order.
    fn downstream(&self, id: &StepId) -> Vec<StepId> {
        self.flow
            .order
            .iter()
            .filter(|s| self.step(s).input().is_some_and(|i| i.get_ref() == id))
            .cloned()
            .collect()
    }

    fn record(&mut self, id: &StepId) -> &mut StepRunRecord {
        self.steps
            .entry(id.clone())
            .or_insert_with(|| StepRunRecord {
                step: id.to_string(),
                status: "running".into(),
                pages: 0,
                records_in: 0,
                records_out: 0,
                failed: 0,
                started_at: SystemTime::now(),
                finished_at: None,
                error: None,
            })
    }

    async fn save(&mut self, id: &StepId) -> Result<(), StoreError> {
        let record = self.record(id).clone();
        let total = self.totals.get(id).copied();
        (self.progress)(&Progress {
            step: &record,
            total,
        });
        self.store.step_save(&self.run, &record).await
    }

    async fn finish(&mut self, id: &StepId, error: Option<String>) -> Result<(), StoreError> {
        // Step errors quote plugins and upstreams: scrubbed of every secret the run holds and
        // escaped before they are stored (and so before `weft runs show` prints them).
        let error = error.map(|e| self.context.redactor().clean(&e, MAX_STORED_ERROR_BYTES));
        let record = self.record(id);
        if record.status == "running" {
            record.status = if error.is_some() {
                "failed".into()
            } else {
                "succeeded".into()
            };
        }
        if error.is_some() {
            record.status = "failed".into();
            record.error = error;
        }
        record.finished_at = Some(SystemTime::now());
        self.save(id).await
    }

    async fn log_error(
        &mut self,
        id: &StepId,
        record: Option<&Value>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.record(id).failed += 1;
        let redactor = self.context.redactor();
        let text = record.map(|r| redactor.redact(&r.to_string()));
        let error = redactor.clean(error, MAX_STORED_ERROR_BYTES);
        self.store
            .error_append(&self.run, id.as_str(), text.as_deref(), &error)
            .await
    }

    /// Pushes `records`, produced by `from`, through every downstream step `include` admits.
    /// An error names the step that failed; the caller stops that source.
    async fn propagate(
        &mut self,
        from: &StepId,
        records: Vec<Value>,
        include: &dyn Fn(&StepId) -> bool,
    ) -> Result<(), StepId> {
        for next in self.downstream(from) {
            if include(&next) {
                Box::pin(self.enter(&next, records.clone(), include)).await?;
            }
        }
        Ok(())
    }

    /// Runs step `next` over `records` and pushes what it produces on downstream.
    async fn enter(
        &mut self,
        next: &StepId,
        records: Vec<Value>,
        include: &dyn Fn(&StepId) -> bool,
    ) -> Result<(), StepId> {
        let next = next.clone();
        {
            let step = self.step(&next);
            if step.condition.is_some() {
                return self.condition(&next, records, include).await;
            } else if step.for_each.is_some() {
                return self.for_each(&next, records, include).await;
            } else if let Some(transform) = &step.transform {
                let lookup_id = transform
                    .get_ref()
                    .lookup
                    .as_ref()
                    .map(|l| l.get_ref().clone());
                let plugin = Arc::clone(&self.plan.transforms[&next]);
                let config = self
                    .plan
                    .configs
                    .get(&next)
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into());
                let lookup = lookup_id.map(|l| {
                    Value::Array(self.collected.get(&l).cloned().unwrap_or_default()).to_string()
                });
                let batch = Batch {
                    config,
                    records: Value::Array(records.clone()).to_string(),
                    lookup,
                };
                let mut context = self.context.clone();
                context.step = Some(next.to_string());
                let limit = step_timeout(step);
                let result = bounded(
                    limit,
                    with_retry(&self.options.retry, || {
                        plugin.process(&context, batch.clone())
                    }),
                )
                .await;
                let record = self.record(&next);
                record.pages += 1;
                record.records_in += records.len() as u64;
                match result {
                    Ok(result) => {
                        let out: Vec<Value> =
                            serde_json::from_str(&result.records).unwrap_or_default();
                        self.record(&next).records_out += out.len() as u64;
                        let mut rejected = Vec::new();
                        for reject in &result.rejects {
                            let field = reject
                                .field
                                .as_deref()
                                .map(|f| format!(" (field `{f}`)"))
                                .unwrap_or_default();
                            let reason = format!("rejected{field}: {}", reject.reason);
                            let record = records.get(reject.index as usize);
                            let _ = self.log_error(&next, record, &reason).await;
                            if let Some(Value::Object(r)) = record {
                                let mut r = r.clone();
                                r.insert("_rejected".into(), serde_json::json!({"reason": reject.reason, "field": reject.field}));
                                rejected.push(Value::Object(r));
                            }
                        }
                        let _ = self.save(&next).await;
                        if let Some(kept) = self.collected.get_mut(&next) {
                            kept.extend(out.iter().cloned());
                        }
                        // The rejects go on to the steps on the `rejected` branch, the rest to the others.
                        let on_rejected = |s: &StepId| {
                            self.step(s)
                                .branch()
                                .is_some_and(|b| *b.get_ref() == Branch::Rejected)
                        };
                        let (to_rejected, to_rest): (Vec<StepId>, Vec<StepId>) = self
                            .downstream(&next)
                            .into_iter()
                            .filter(|s| include(s))
                            .partition(on_rejected);
                        for child in to_rest {
                            Box::pin(self.enter(&child, out.clone(), include)).await?;
                        }
                        if !rejected.is_empty() {
                            for child in to_rejected {
                                Box::pin(self.enter(&child, rejected.clone(), include)).await?;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = self.finish(&next, Some(e.to_string())).await;
                        return Err(next);
                    }
                }
            } else if let Some(write) = &step.write.as_ref().filter(|w| {
                self.plan
                    .datasets
                    .contains(w.get_ref().connection.get_ref().as_str())
            }) {
                let w = write.get_ref();
                let (dataset, key) = (
                    w.stream.get_ref().clone(),
                    w.key
                        .iter()
                        .map(|k| k.get_ref().clone())
                        .collect::<Vec<_>>(),
                );
                let record = self.record(&next);
                record.pages += 1;
                record.records_in += records.len() as u64;
                let mut rows = Vec::with_capacity(records.len());
                let mut accepted = Vec::with_capacity(records.len());
                for r in &records {
                    match dataset_key(r, &key) {
                        Ok(k) => {
                            rows.push((k.clone(), r.to_string()));
                            accepted.push((k, r));
                        }
                        Err(missing) => {
                            let _ = self
                                .log_error(
                                    &next,
                                    Some(r),
                                    &format!("key field `{missing}` is missing or null"),
                                )
                                .await;
                        }
                    }
                }
                let written = if *w.mode.get_ref() == weft_flow::model::WriteMode::Delete {
                    // Deleting what is already gone counts as deleted, so a replay is harmless.
                    let keys: Vec<String> = rows.into_iter().map(|(k, _)| k).collect();
                    self.store
                        .dataset_delete(&self.options.tenant, &dataset, &keys)
                        .await
                        .map(|_| keys.len())
                } else {
                    self.store
                        .dataset_upsert(&self.options.tenant, &dataset, &rows)
                        .await
                        .map(|done| done.len())
                };
                match written {
                    Ok(done) => {
                        self.record(&next).records_out += done as u64;
                        let _ = self.save(&next).await;
                        let status = if *w.mode.get_ref() == weft_flow::model::WriteMode::Delete {
                            "deleted"
                        } else {
                            "updated"
                        };
                        let written: Vec<Value> = accepted
                            .into_iter()
                            .filter_map(|(k, r)| {
                                let mut r = r.as_object()?.clone();
                                r.insert(
                                    "_written".into(),
                                    serde_json::json!({"id": k, "status": status}),
                                );
                                Some(Value::Object(r))
                            })
                            .collect();
                        if !written.is_empty() {
                            self.propagate(&next, written, include).await?;
                        }
                    }
                    Err(e) => {
                        let _ = self.finish(&next, Some(e.to_string())).await;
                        return Err(next);
                    }
                }
            } else if let Some(write) = &step.write {
                let w = write.get_ref();
                let connection = w.connection.get_ref().to_string();
                let bound = &self.plan.connections[&connection];
                let plugin = Arc::clone(&bound.plugin);
                let config = bound.config.clone();
                let chunk = w
                    .batch_size
                    .map_or(self.options.write_batch, |b| b as usize)
                    .max(1);
                let (stream, mode) = (w.stream.get_ref().clone(), write_mode(*w.mode.get_ref()));
                let key: Vec<String> = w.key.iter().map(|k| k.get_ref().clone()).collect();
                let mut context = self.context.clone();
                context.step = Some(next.to_string());
                for part in records.chunks(chunk) {
                    let request = WriteRequest {
                        stream: stream.clone(),
                        mode,
                        key: key.clone(),
                        records: Value::Array(part.to_vec()).to_string(),
                    };
                    let result = bounded(
                        step_timeout(step),
                        with_retry(&self.options.retry, || {
                            plugin.write(
                                &context,
                                &connection,
                                &config,
                                request.clone(),
                                part.len(),
                            )
                        }),
                    )
                    .await;
                    let record = self.record(&next);
                    record.pages += 1;
                    record.records_in += part.len() as u64;
                    match result {
                        Ok(outcomes) => {
                            let mut written = Vec::new();
                            for (outcome, rec) in outcomes.iter().zip(part) {
                                if outcome.status == WriteStatus::Failed {
                                    let reason = outcome
                                        .error
                                        .as_ref()
                                        .map_or_else(|| "failed".to_owned(), PluginError::message);
                                    let _ = self.log_error(&next, Some(rec), &reason).await;
                                } else {
                                    self.record(&next).records_out += 1;
                                    if let Value::Object(r) = rec {
                                        let mut r = r.clone();
                                        r.insert("_written".into(), serde_json::json!({"id": outcome.id, "status": written_status(outcome.status)}));
                                        written.push(Value::Object(r));
                                    }
                                }
                            }
                            let _ = self.save(&next).await;
                            // What the upstream accepted goes on to the steps on the `written` branch.
                            if !written.is_empty() {
                                self.propagate(&next, written, include).await?;
                            }
                        }
                        Err(e) => {
                            let _ = self.finish(&next, Some(e.to_string())).await;
                            return Err(next);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A condition step: the records its `when` holds for go to the steps reading it, the
    /// others to the steps reading it with `branch = "else"`. Records the condition cannot be
    /// evaluated on go to the error log once.
    async fn condition(
        &mut self,
        id: &StepId,
        records: Vec<Value>,
        include: &dyn Fn(&StepId) -> bool,
    ) -> Result<(), StepId> {
        let step = self.step(id);
        let plugin = Arc::clone(&self.plan.transforms[id]);
        let config = self.plan.configs[id].clone();
        let when = config["when"].as_str().unwrap_or_default().to_owned();
        let (otherwise, then): (Vec<StepId>, Vec<StepId>) = self
            .downstream(id)
            .into_iter()
            .filter(|s| include(s))
            .partition(|s| {
                self.step(s)
                    .branch()
                    .is_some_and(|b| *b.get_ref() == Branch::Else)
            });
        let keep = self.collected.contains_key(id);
        let record = self.record(id);
        record.pages += 1;
        record.records_in += records.len() as u64;
        let mut context = self.context.clone();
        context.step = Some(id.to_string());
        let mut rejects_logged = false;
        let branches = [
            (then, config.clone(), true),
            (
                otherwise,
                serde_json::json!({ "when": format!("!({when})") }),
                false,
            ),
        ];
        for (children, config, is_then) in branches {
            if children.is_empty() && !(is_then && keep) {
                continue;
            }
            let batch = Batch {
                config: config.to_string(),
                records: Value::Array(records.clone()).to_string(),
                lookup: None,
            };
            let result = bounded(
                step_timeout(step),
                with_retry(&self.options.retry, || {
                    plugin.process(&context, batch.clone())
                }),
            )
            .await;
            let result = match result {
                Ok(result) => result,
                Err(e) => {
                    let _ = self.finish(id, Some(e.to_string())).await;
                    return Err(id.clone());
                }
            };
            if !rejects_logged {
                for reject in &result.rejects {
                    let _ = self
                        .log_error(
                            id,
                            records.get(reject.index as usize),
                            &format!("condition: {}", reject.reason),
                        )
                        .await;
                }
                rejects_logged = true;
            }
            let out: Vec<Value> = serde_json::from_str(&result.records).unwrap_or_default();
            self.record(id).records_out += out.len() as u64;
            let _ = self.save(id).await;
            if is_then && keep {
                if let Some(kept) = self.collected.get_mut(id) {
                    kept.extend(out.iter().cloned());
                }
            }
            for child in children {
                Box::pin(self.enter(&child, out.clone(), include)).await?;
            }
        }
        Ok(())
    }

    /// A for-each step: one read per input record, with the step's options filled in from the
    /// record, `concurrency` reads in flight; what they return goes downstream in input order.
    /// A record whose read the upstream refuses (a 4xx, an invalid record) goes to the error
    /// log; any other failure fails the step.
    async fn for_each(
        &mut self,
        id: &StepId,
        records: Vec<Value>,
        include: &dyn Fn(&StepId) -> bool,
    ) -> Result<(), StepId> {
        use futures_util::stream::{self, StreamExt};
        let step = self.step(id);
        let f = step.for_each.as_ref().expect("a for-each step").get_ref();
        let connection = f.connection.get_ref().to_string();
        let bound = &self.plan.connections[&connection];
        let (plugin, config) = (Arc::clone(&bound.plugin), bound.config.clone());
        let template = self
            .plan
            .options
            .get(id)
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let concurrency = f.concurrency.as_ref().map_or(4, |c| *c.get_ref()) as usize;
        let (stream_name, page_size, limit) =
            (f.stream.get_ref().clone(), f.page_size, step_timeout(step));
        let mut context = self.context.clone();
        context.step = Some(id.to_string());
        let record = self.record(id);
        record.pages += 1;
        record.records_in += records.len() as u64;
        let retry = &self.options.retry;
        let reads = records.iter().map(|input| {
            let (plugin, config, context, connection, stream_name) =
                (&plugin, &config, &context, &connection, &stream_name);
            let options = fill_record(&template, input);
            async move {
                let options = options?;
                let mut found = Vec::new();
                let mut cursor = None;
                loop {
                    let request = ReadRequest {
                        stream: stream_name.clone(),
                        mode: bindings::SyncMode::Full,
                        cursor: cursor.clone(),
                        page_size,
                        options: options.to_string(),
                    };
                    let page = bounded(
                        limit,
                        with_retry(retry, || {
                            plugin.read(context, connection, config, request.clone())
                        }),
                    )
                    .await
                    .map_err(ForEachFailure::Read)?;
                    let batch: Vec<Value> = serde_json::from_str(&page.records).map_err(|e| {
                        ForEachFailure::Step(format!(
                            "the connector returned records that are not a JSON array: {e}"
                        ))
                    })?;
                    found.extend(batch);
                    if page.done || page.next_cursor.is_none() {
                        return Ok(found);
                    }
                    cursor = page.next_cursor;
                }
            }
        });
        let results: Vec<Result<Vec<Value>, ForEachFailure>> = stream::iter(reads)
            .buffered(concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::new();
        for (input, result) in records.iter().zip(results) {
            match result {
                Ok(found) => out.extend(found.into_iter().map(|mut r| {
                    if let (Some(parent), Some(obj)) = (&f.parent_field, r.as_object_mut()) {
                        obj.insert(parent.clone(), input.clone());
                    }
                    r
                })),
                Err(ForEachFailure::Record(reason)) => {
                    let _ = self.log_error(id, Some(input), &reason).await;
                }
                Err(ForEachFailure::Read(StepFailure::Call(e)))
                    if e.plugin_error().is_some_and(is_record_level) =>
                {
                    let _ = self.log_error(id, Some(input), &e.to_string()).await;
                }
                Err(ForEachFailure::Read(e)) => {
                    let _ = self.finish(id, Some(e.to_string())).await;
                    return Err(id.clone());
                }
                Err(ForEachFailure::Step(reason)) => {
                    let _ = self.finish(id, Some(reason)).await;
                    return Err(id.clone());
                }
            }
        }
        self.record(id).records_out += out.len() as u64;
        let _ = self.save(id).await;
        if let Some(kept) = self.collected.get_mut(id) {
            kept.extend(out.iter().cloned());
        }
        self.propagate(id, out, include).await
    }

    /// Reads `source` page by page, pushing each page downstream; commits the cursor after each
    /// page whose writes all succeeded (incremental reads only: a full read starts over).
    async fn read(
        &mut self,
        source: &StepId,
        include: &dyn Fn(&StepId) -> bool,
        commit: bool,
    ) -> Result<(), StoreError> {
        if let Some(records) = self.injected.remove(source) {
            return self.read_injected(source, records, include).await;
        }
        let step = self.step(source);
        let read = step
            .read
            .as_ref()
            .expect("sources are read steps")
            .get_ref();
        let connection = read.connection.get_ref().to_string();
        if self.plan.datasets.contains(&connection) {
            return self
                .read_dataset(
                    source,
                    read.stream.get_ref().clone(),
                    read.page_size.unwrap_or(500),
                    include,
                )
                .await;
        }
        let bound = &self.plan.connections[&connection];
        let plugin = Arc::clone(&bound.plugin);
        let config = bound.config.clone();
        let mode = read.sync;
        let options = self
            .plan
            .options
            .get(source)
            .map_or_else(|| "{}".to_owned(), Value::to_string);
        let (stream, page_size) = (read.stream.get_ref().clone(), read.page_size);
        let flow_name = self.flow.file.name.get_ref().to_string();
        let mut cursor = match mode {
            SyncMode::Incremental => {
                self.store
                    .cursor_get(&self.options.tenant, &flow_name, source.as_str())
                    .await?
            }
            SyncMode::Full => None,
        };
        let mut context = self.context.clone();
        context.step = Some(source.to_string());
        self.record(source);
        loop {
            let request = ReadRequest {
                stream: stream.clone(),
                mode: sync_mode(mode),
                cursor: cursor.clone(),
                page_size,
                options: options.clone(),
            };
            let page = match bounded(
                step_timeout(step),
                with_retry(&self.options.retry, || {
                    plugin.read(&context, &connection, &config, request.clone())
                }),
            )
            .await
            {
                Ok(page) => page,
                Err(e) => return self.finish(source, Some(e.to_string())).await,
            };
            if let Some(total) = page.total {
                self.totals.insert(source.clone(), total);
            }
            let records: Vec<Value> = match serde_json::from_str(&page.records) {
                Ok(r) => r,
                Err(e) => {
                    return self
                        .finish(
                            source,
                            Some(format!(
                                "the connector returned records that are not a JSON array: {e}"
                            )),
                        )
                        .await;
                }
            };
            if let Some(failed) = self.deliver(source, records, include).await? {
                // The page's writes were not all acknowledged: keep the cursor where it was.
                return self.finish(source, Some(failed)).await;
            }
            if commit && mode == SyncMode::Incremental {
                if let Some(next) = &page.next_cursor {
                    self.store
                        .cursor_set(&self.options.tenant, &flow_name, source.as_str(), next)
                        .await?;
                }
            }
            if page.done {
                break;
            }
            cursor = page.next_cursor;
        }
        self.finish(source, None).await
    }

    /// Feeds a read step from webhook events: one page, no cursor (the events are the change).
    async fn read_injected(
        &mut self,
        source: &StepId,
        records: Vec<Value>,
        include: &dyn Fn(&StepId) -> bool,
    ) -> Result<(), StoreError> {
        let failed = self.deliver(source, records, include).await?;
        self.finish(source, failed).await
    }

    /// Counts a page a source produced and pushes it downstream; why the source must stop, if
    /// a step downstream failed.
    async fn deliver(
        &mut self,
        source: &StepId,
        records: Vec<Value>,
        include: &dyn Fn(&StepId) -> bool,
    ) -> Result<Option<String>, StoreError> {
        let record = self.record(source);
        record.pages += 1;
        record.records_in += records.len() as u64;
        record.records_out += records.len() as u64;
        self.save(source).await?;
        if let Some(kept) = self.collected.get_mut(source) {
            kept.extend(records.iter().cloned());
        }
        Ok(self
            .propagate(source, records, include)
            .await
            .err()
            .map(|failed| format!("stopped because step `{failed}` failed")))
    }

    /// Reads a dataset in key order, a page at a time.
    async fn read_dataset(
        &mut self,
        source: &StepId,
        dataset: String,
        page_size: u32,
        include: &dyn Fn(&StepId) -> bool,
    ) -> Result<(), StoreError> {
        let mut after: Option<String> = None;
        self.record(source);
        loop {
            let rows = self
                .store
                .dataset_page(
                    &self.options.tenant,
                    &dataset,
                    after.as_deref(),
                    page_size.max(1),
                )
                .await?;
            let done = rows.len() < page_size.max(1) as usize;
            after = rows.last().map(|(k, _)| k.clone());
            let records: Vec<Value> = rows
                .iter()
                .filter_map(|(_, r)| serde_json::from_str(r).ok())
                .collect();
            if let Some(failed) = self.deliver(source, records, include).await? {
                return self.finish(source, Some(failed)).await;
            }
            if done {
                break;
            }
        }
        self.finish(source, None).await
    }

    fn run_after_met(&self, step: &Step) -> bool {
        step.run_after.iter().all(|(other, when)| {
            let status = self.steps.get(other.get_ref()).map(|s| s.status.as_str());
            match when.get_ref() {
                RunAfter::Succeeded => status == Some("succeeded"),
                RunAfter::Failed => status == Some("failed"),
                RunAfter::Completed => matches!(status, Some("succeeded" | "failed")),
            }
        })
    }
}

/// Runs again only the records a run logged as failed: each goes back into the step that
/// failed it (a transform's rejects, a write's failed outcomes) and on downstream from there.
/// The retry is a run of its own, with its own error log.
pub async fn retry_failed(
    flow: &Flow,
    plan: &Plan,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
    run_id: &str,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<RunReport, RunError> {
    let mut failures: BTreeMap<StepId, Vec<Value>> = BTreeMap::new();
    for entry in store.run_errors(run_id).await? {
        let (Ok(step), Some(record)) = (
            StepId::try_from(entry.step.clone()),
            entry.record.as_deref(),
        ) else {
            continue;
        };
        if let Ok(record) = serde_json::from_str(record) {
            failures.entry(step).or_default().push(record);
        }
    }
    let started = Instant::now();
    let (run, context, hold) = begin(flow, plan, store, secrets, options).await?;
    let mut execution = Execution {
        flow,
        plan,
        store,
        options,
        context,
        run: run.clone(),
        steps: BTreeMap::new(),
        collected: BTreeMap::new(),
        injected: BTreeMap::new(),
        totals: BTreeMap::new(),
        progress,
    };
    let mut failed = Vec::new();
    for (step, records) in failures {
        let Some(definition) = flow.step(&step) else {
            continue;
        };
        let Some(input) = definition.input().map(|i| i.get_ref().clone()) else {
            continue;
        };
        // The failed step and everything downstream of it, nothing beside it.
        let mut reach = BTreeSet::from([step.clone()]);
        let mut frontier = vec![step.clone()];
        while let Some(s) = frontier.pop() {
            for d in execution.downstream(&s) {
                if reach.insert(d.clone()) {
                    frontier.push(d);
                }
            }
        }
        let only = |s: &StepId| reach.contains(s);
        if let Err(step) = execution.propagate(&input, records, &only).await {
            failed.push(step.to_string());
        }
    }
    let ids: Vec<StepId> = execution.steps.keys().cloned().collect();
    for id in ids {
        if execution.steps[&id].status == "running" {
            execution.finish(&id, None).await?;
        }
    }
    let succeeded = failed.is_empty();
    let error = (!succeeded).then(|| format!("retry stopped at {}", failed.join(", ")));
    store
        .run_finish(
            &run,
            if succeeded { "succeeded" } else { "failed" },
            error.as_deref(),
        )
        .await?;
    hold.release().await?;
    let steps = flow
        .order
        .iter()
        .filter_map(|id| execution.steps.get(id).cloned())
        .collect();
    Ok(RunReport {
        id: run,
        succeeded,
        steps,
        took: started.elapsed(),
    })
}

fn written_status(status: WriteStatus) -> &'static str {
    match status {
        WriteStatus::Created => "created",
        WriteStatus::Updated => "updated",
        WriteStatus::Unchanged => "unchanged",
        WriteStatus::Deleted => "deleted",
        WriteStatus::Failed => "failed",
    }
}

/// Records per call when a kept step's records are handed to its other readers.
const REPLAY_PAGE: usize = 500;

/// A dataset record's key: its key fields' values, as a JSON array; `Err` names the first key
/// field that is missing or null.
pub fn dataset_key(record: &Value, fields: &[String]) -> Result<String, String> {
    let mut values = Vec::with_capacity(fields.len());
    for field in fields {
        match record.get(field).filter(|v| !v.is_null()) {
            Some(v) => values.push(v.clone()),
            None => return Err(field.clone()),
        }
    }
    Ok(Value::Array(values).to_string())
}

/// Builds the run's connections, records its start and makes the context its calls share.
async fn begin(
    flow: &Flow,
    plan: &Plan,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
) -> Result<(String, CallContext, FlowHold), RunError> {
    let mut connections = Connections::new();
    for bound in plan.connections.values() {
        connections.insert(Connection::new(bound.spec.clone(), secrets.clone())?);
    }
    let run = run_id_new();
    let flow_name = flow.file.name.get_ref().to_string();
    // The flow first, then the run: a run that is recorded always holds its flow.
    let hold = FlowHold::take(store, &options.tenant, &flow_name, &run, options.lease).await?;
    store
        .run_start(
            &run,
            &options.tenant,
            &flow_name,
            options.environment.as_deref(),
        )
        .await?;
    let mut context = CallContext::new(options.tenant.clone())
        .with_store(store.clone())
        .in_flow(flow_name);
    context.connections = Arc::new(connections);
    context.run = Some(run.clone());
    Ok((run, context, hold))
}

/// Runs a planned flow once and records it in the store.
pub async fn run(
    flow: &Flow,
    plan: &Plan,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<RunReport, RunError> {
    run_with_events(
        flow,
        plan,
        store,
        secrets,
        options,
        BTreeMap::new(),
        progress,
    )
    .await
}

/// Runs a planned flow with some read steps fed by webhook events (their records, by step)
/// instead of by their connector.
pub async fn run_with_events(
    flow: &Flow,
    plan: &Plan,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
    injected: BTreeMap<StepId, Vec<Value>>,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let (run, context, hold) = begin(flow, plan, store, secrets, options).await?;

    // Lookup inputs and everything feeding them are kept whole for the run.
    let mut kept = BTreeSet::new();
    let mut pending: Vec<StepId> = flow
        .file
        .steps
        .iter()
        .filter_map(|s| {
            s.get_ref()
                .transform
                .as_ref()
                .and_then(|t| t.get_ref().lookup.as_ref().map(|l| l.get_ref().clone()))
        })
        .collect();
    while let Some(id) = pending.pop() {
        if kept.insert(id.clone()) {
            if let Some(input) = flow.step(&id).and_then(|s| s.input()) {
                pending.push(input.get_ref().clone());
            }
        }
    }
    let mut execution = Execution {
        flow,
        plan,
        store,
        options,
        context,
        run: run.clone(),
        steps: BTreeMap::new(),
        collected: kept.iter().map(|k| (k.clone(), Vec::new())).collect(),
        injected,
        totals: BTreeMap::new(),
        progress,
    };
    let sources: Vec<StepId> = flow
        .order
        .iter()
        .filter(|s| flow.step(s).is_some_and(|s| s.read.is_some()))
        .cloned()
        .collect();
    // Lookups first, read in full; then everything else, page by page.
    for source in sources.iter().filter(|s| kept.contains(*s)) {
        let inside = |s: &StepId| kept.contains(s);
        execution.read(source, &inside, false).await?;
    }
    // A kept step's other readers (a write of the rows a lookup also uses, say) get its
    // records from what was kept, a page at a time, rather than never.
    let outside = |s: &StepId| !kept.contains(s);
    for id in flow
        .order
        .iter()
        .filter(|s| kept.contains(*s) && !sources.contains(*s))
    {
        let on_default_branch = |c: &StepId| {
            flow.step(c)
                .and_then(|s| s.branch())
                .is_none_or(|b| *b.get_ref() == Branch::Then)
        };
        let children: Vec<StepId> = execution
            .downstream(id)
            .into_iter()
            .filter(|c| !kept.contains(c) && on_default_branch(c))
            .collect();
        if children.is_empty() {
            continue;
        }
        let records = execution.collected.get(id).cloned().unwrap_or_default();
        for page in records.chunks(REPLAY_PAGE) {
            for child in &children {
                // A failure is recorded on the step that failed; the others carry on.
                let _ = execution.enter(child, page.to_vec(), &outside).await;
            }
        }
    }
    for source in &sources {
        if kept.contains(source)
            && execution
                .downstream(source)
                .iter()
                .all(|d| kept.contains(d))
        {
            continue;
        }
        let step = flow.step(source).expect("source exists");
        if !execution.run_after_met(step) {
            let record = execution.record(source);
            record.status = "skipped".into();
            record.finished_at = Some(SystemTime::now());
            execution.save(source).await?;
            continue;
        }
        execution.read(source, &outside, true).await?;
    }
    // Steps that never received anything still get a line in the run.
    for id in &flow.order {
        if !execution.steps.contains_key(id) {
            let record = execution.record(id);
            record.status = "skipped".into();
            record.finished_at = Some(SystemTime::now());
            execution.save(id).await?;
        } else if execution.steps[id].status == "running" {
            execution.finish(id, None).await?;
        }
    }
    let failed: Vec<String> = execution
        .steps
        .values()
        .filter(|s| {
            s.status == "failed"
                && !flow.file.steps.iter().any(|f| {
                    f.get_ref()
                        .run_after
                        .keys()
                        .any(|k| k.get_ref().as_str() == s.step)
                })
        })
        .map(|s| format!("{}: {}", s.step, s.error.as_deref().unwrap_or("failed")))
        .collect();
    let succeeded = failed.is_empty();
    let error = (!succeeded).then(|| failed.join("; "));
    store
        .run_finish(
            &run,
            if succeeded { "succeeded" } else { "failed" },
            error.as_deref(),
        )
        .await?;
    hold.release().await?;
    let steps = flow
        .order
        .iter()
        .filter_map(|id| execution.steps.get(id).cloned())
        .collect();
    Ok(RunReport {
        id: run,
        succeeded,
        steps,
        took: started.elapsed(),
    })
}
