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
//!
//! Each kind of step runs in a module of its own; [`Execution::enter`] is the one `match` over
//! kinds. Records cross the host as JSON text ([`records`]). A step's failure stops the source
//! feeding it; a failure of the state database stops the run, recorded as failed with the cause.

mod call;
mod condition;
mod for_each;
mod read;
pub mod records;
mod retry;
mod steps;
mod transform;
mod watch;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tracing::Instrument;
use weft_capabilities::{Connection, ConnectionError, Connections, Secrets, Usage};
use weft_flow::model::{Branch, RunAfter};
use weft_flow::{Flow, StepId};
use weft_runtime::CallContext;
use weft_store::{RunStatus, RunUsage, StepRunRecord, StepStatus, Store, StoreError};

use crate::lease::FlowHold;
use crate::plan::{Plan, PlannedStep, Work};

pub use call::RetryPolicy;
use records::Record;
pub use records::dataset_key;
pub use retry::retry_failed;
pub use watch::{Halt, Watch};

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
    /// Asked between pages whether the run goes on; none: it runs to its end.
    pub watch: Option<Arc<dyn Watch>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            tenant: "default".into(),
            environment: None,
            retry: RetryPolicy::default(),
            write_batch: 100,
            lease: crate::lease::DEFAULT_LEASE,
            watch: None,
        }
    }
}

/// Why a run could not be carried out at all (a step failing is a run status, not this).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("the state database failed: {0}")]
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
    pub status: RunStatus,
    pub steps: Vec<StepRunRecord>,
    pub took: Duration,
    /// What it used: plugin CPU and memory, requests and bytes, records read, written, failed.
    pub usage: RunUsage,
}

impl RunReport {
    /// Whether every step ran to its end: succeeded, or partial (records in the error log).
    pub fn completed(&self) -> bool {
        self.status.completed()
    }
}

/// Why records stopped moving from a source.
#[derive(Debug)]
enum Stop {
    /// This step failed (its record says why); the source feeding it stops, others go on.
    Step(StepId),
    /// The state database failed: the run cannot record what it does, so it stops.
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

/// A new run id: unique across processes sharing a store (time, process, counter).
pub fn run_id_new() -> String {
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

/// The longest error text stored for a step or a failed record.
const MAX_STORED_ERROR_BYTES: usize = 8192;

/// Which steps records may enter in this part of a run.
type Include<'f> = &'f dyn Fn(&StepId) -> bool;

/// The run in progress.
struct Execution<'a> {
    flow: &'a Flow,
    plan: &'a Plan,
    store: &'a Store,
    options: &'a RunOptions,
    context: CallContext,
    run: String,
    steps: BTreeMap<StepId, StepRunRecord>,
    /// Steps counted since their record was last written: saved together, once a page.
    unsaved: BTreeSet<StepId>,
    /// Steps whose full output is kept for the run: lookup inputs and what feeds them.
    collected: BTreeMap<StepId, Vec<Record>>,
    /// Kept outputs as one JSON array, made once for every batch using it as a lookup.
    lookups: BTreeMap<StepId, Arc<str>>,
    /// Read steps fed by webhook events instead of their connector.
    injected: BTreeMap<StepId, Vec<Value>>,
    /// How many records each read step's source said it holds.
    totals: BTreeMap<StepId, u64>,
    /// Why the run stopped before its end, once its watch said so.
    halt: Option<Halt>,
    progress: &'a mut (dyn FnMut(&Progress<'_>) + Send),
}

impl<'a> Execution<'a> {
    fn new(
        flow: &'a Flow,
        plan: &'a Plan,
        store: &'a Store,
        options: &'a RunOptions,
        context: CallContext,
        run: String,
        progress: &'a mut (dyn FnMut(&Progress<'_>) + Send),
    ) -> Self {
        Execution {
            flow,
            plan,
            store,
            options,
            context,
            run,
            steps: BTreeMap::new(),
            unsaved: BTreeSet::new(),
            collected: BTreeMap::new(),
            lookups: BTreeMap::new(),
            injected: BTreeMap::new(),
            totals: BTreeMap::new(),
            halt: None,
            progress,
        }
    }

    /// Whether the run stops here: its watch asked with what it used so far. Once it said so,
    /// the run stays stopped.
    fn halted(&mut self) -> bool {
        if self.halt.is_none()
            && let Some(watch) = &self.options.watch
        {
            self.halt = watch.halt(&self.used());
        }
        self.halt.is_some()
    }

    fn planned(&self, id: &StepId) -> &'a PlannedStep {
        self.plan.step(id).expect("planned steps exist")
    }

    /// Steps reading `id`'s output, in flow order.
    fn downstream(&self, id: &StepId) -> Vec<StepId> {
        self.planned(id)
            .readers
            .iter()
            .map(|r| r.step.clone())
            .collect()
    }

    /// The readers of `id` on `branch` that `include` admits.
    fn readers_on(&self, id: &StepId, branch: Branch, include: Include<'_>) -> Vec<StepId> {
        self.planned(id)
            .readers
            .iter()
            .filter(|r| r.branch == branch && include(&r.step))
            .map(|r| r.step.clone())
            .collect()
    }

    /// A call context for `id`'s plugin calls.
    fn context_for(&self, id: &StepId) -> CallContext {
        let mut context = self.context.clone();
        context.step = Some(id.to_string());
        context
    }

    /// Keeps what `id` produced when the run keeps that step's output.
    fn keep(&mut self, id: &StepId, records: &[Record]) {
        if let Some(kept) = self.collected.get_mut(id) {
            kept.extend(records.iter().cloned());
            self.lookups.remove(id);
        }
    }

    /// The kept output of `id` as one JSON array.
    fn lookup(&mut self, id: &StepId) -> Arc<str> {
        if let Some(text) = self.lookups.get(id) {
            return Arc::clone(text);
        }
        let text: Arc<str> =
            records::join(self.collected.get(id).map_or(&[], Vec::as_slice)).into();
        self.lookups.insert(id.clone(), Arc::clone(&text));
        text
    }

    /// Pushes `records`, produced by `from` on its main output, through every downstream step
    /// `include` admits.
    async fn propagate(
        &mut self,
        from: &StepId,
        records: &[Record],
        include: Include<'_>,
    ) -> Result<(), Stop> {
        self.hand_on(from, Branch::Then, records, include).await
    }

    /// Pushes `records` through the readers of `from`'s `branch`.
    async fn hand_on(
        &mut self,
        from: &StepId,
        branch: Branch,
        records: &[Record],
        include: Include<'_>,
    ) -> Result<(), Stop> {
        // What a transform rejected or a write wrote goes on only when there is some.
        if records.is_empty() && matches!(branch, Branch::Rejected | Branch::Written) {
            return Ok(());
        }
        for next in self.readers_on(from, branch, include) {
            Box::pin(self.enter(&next, records, include)).await?;
        }
        Ok(())
    }

    /// Runs step `id` over `records` and pushes what it produces on downstream.
    async fn enter(
        &mut self,
        id: &StepId,
        records: &[Record],
        include: Include<'_>,
    ) -> Result<(), Stop> {
        let planned = self.planned(id);
        let span = tracing::debug_span!("step", step = %id, records = records.len());
        let work = async {
            match &planned.work {
                Work::Read(_) => unreachable!("read steps take no input"),
                Work::Transform(work) => self.transform(planned, work, records, include).await,
                Work::Condition(work) => self.condition(planned, work, records, include).await,
                Work::ForEach(work) => self.for_each(planned, work, records, include).await,
                Work::Write(work) => self.write(planned, work, records, include).await,
            }
        };
        work.instrument(span).await
    }

    fn run_after_met(&self, step: &PlannedStep) -> bool {
        step.run_after.iter().all(|(other, when)| {
            let status = self.steps.get(other).map(|s| s.status);
            match when {
                RunAfter::Succeeded => status == Some(StepStatus::Succeeded),
                RunAfter::Failed => status == Some(StepStatus::Failed),
                RunAfter::Completed => {
                    matches!(status, Some(StepStatus::Succeeded | StepStatus::Failed))
                }
            }
        })
    }

    /// Marks every step that never ran as skipped and ends those still running.
    async fn close_steps(&mut self) -> Result<(), StoreError> {
        for id in &self.flow.order {
            if !self.steps.contains_key(id) {
                let record = self.record(id);
                record.status = StepStatus::Skipped;
                record.finished_at = Some(SystemTime::now());
                self.save(id).await?;
            } else if self.steps[id].status == StepStatus::Running {
                self.finish(id, None).await?;
            }
        }
        Ok(())
    }

    /// Records of the run that went to the error log.
    fn records_failed(&self) -> u64 {
        self.steps.values().map(|s| s.failed).sum()
    }

    /// What the run used so far: its plugins' CPU time and memory and its connections'
    /// requests (counted as they went), the records its read and write steps moved and those
    /// that failed.
    fn used(&self) -> RunUsage {
        let counted = self
            .context
            .usage
            .as_ref()
            .map(|u| u.read())
            .unwrap_or_default();
        let (mut read, mut written) = (0, 0);
        for (id, step) in &self.steps {
            match self.plan.step(id).map(|s| &s.work) {
                Some(Work::Read(_)) => read += step.records_out,
                Some(Work::Write(_)) => written += step.records_out,
                _ => {}
            }
        }
        RunUsage {
            cpu_ms: counted.cpu.as_millis() as u64,
            requests: counted.requests,
            bytes_out: counted.bytes_out,
            bytes_in: counted.bytes_in,
            peak_memory: counted.peak_memory,
            records_read: read,
            records_written: written,
            records_failed: self.records_failed(),
        }
    }

    /// Records what the run used and how it ended, lets go of its flow (see [`end`]), and
    /// reports it.
    async fn conclude(
        self,
        hold: FlowHold,
        outcome: Result<Option<String>, StoreError>,
        started: Instant,
    ) -> Result<RunReport, RunError> {
        let used = self.used();
        let status = end(
            self.store,
            &self.run,
            hold,
            outcome,
            &used,
            self.halt.as_ref(),
        )
        .await?;
        Ok(self.report(status, started))
    }

    /// The steps' records in flow order.
    fn report(self, status: RunStatus, started: Instant) -> RunReport {
        let steps = self
            .flow
            .order
            .iter()
            .filter_map(|id| self.steps.get(id).cloned())
            .collect();
        let usage = self.used();
        RunReport {
            id: self.run,
            status,
            steps,
            took: started.elapsed(),
            usage,
        }
    }
}

/// Records per call when a kept step's records are handed to its other readers.
const REPLAY_PAGE: usize = 500;

/// Builds the run's connections, records its start and makes the context its calls share.
async fn begin(
    flow: &Flow,
    plan: &Plan,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
) -> Result<(String, CallContext, FlowHold), RunError> {
    let usage = Arc::new(Usage::default());
    let mut connections = Connections::new();
    for bound in plan.connections.values() {
        let connection = Connection::new(bound.spec.clone(), secrets.clone())?;
        connections.insert(connection.with_usage(Arc::clone(&usage)));
    }
    let run = run_id_new();
    if let Some(watch) = &options.watch {
        watch.began(&run);
    }
    let flow_name = flow.file.name.get_ref().to_string();
    // The flow first, then the run: a run that is recorded always holds its flow.
    let hold = FlowHold::take(store, &options.tenant, &flow_name, &run, options.lease).await?;
    if let Err(e) = store
        .run_start(
            &run,
            &options.tenant,
            &flow_name,
            options.environment.as_deref(),
        )
        .await
    {
        release(hold).await;
        return Err(e.into());
    }
    let mut context = CallContext::new(options.tenant.clone())
        .with_store(store.clone())
        .with_usage(usage)
        .in_flow(flow_name);
    context.connections = Arc::new(connections);
    context.run = Some(run.clone());
    Ok((run, context, hold))
}

/// Lets go of the flow; a failure to is logged, as the lease runs out by itself.
async fn release(hold: FlowHold) {
    if let Err(e) = hold.release().await {
        tracing::warn!(error = %e, "could not release the flow's lease; it expires by itself");
    }
}

/// Records what the run used and how it ended, and lets go of its flow: failed when a step
/// failed (`outcome` says which), partial when records went to the error log, succeeded
/// otherwise. When the run stopped because the state database failed, the run is recorded as
/// failed with that cause (if the database lets it).
async fn end(
    store: &Store,
    run: &str,
    hold: FlowHold,
    outcome: Result<Option<String>, StoreError>,
    usage: &RunUsage,
    halt: Option<&Halt>,
) -> Result<RunStatus, RunError> {
    if let Err(e) = store.run_used(run, usage).await {
        tracing::error!(run, error = %e, "could not record what the run used");
    }
    let (status, error) = match (&outcome, halt) {
        (Ok(_), Some(halt)) => (halt.status, Some(halt.reason.clone())),
        (Ok(None), None) if usage.records_failed == 0 => (RunStatus::Succeeded, None),
        (Ok(None), None) => (RunStatus::Partial, None),
        (Ok(Some(failed)), None) => (RunStatus::Failed, Some(failed.clone())),
        (Err(e), _) => (
            RunStatus::Failed,
            Some(format!("the state database failed: {e}")),
        ),
    };
    let finished = store.run_finish(run, status, error.as_deref()).await;
    release(hold).await;
    match (outcome, finished) {
        (Err(e), finished) => {
            if let Err(also) = finished {
                tracing::error!(run, error = %also, "could not record the run as failed");
            }
            Err(e.into())
        }
        (Ok(_), Err(e)) => Err(e.into()),
        (Ok(_), Ok(())) => Ok(status),
    }
}

/// The span every event of a run is logged under.
fn run_span(flow: &Flow, options: &RunOptions, run: &str) -> tracing::Span {
    tracing::info_span!("run", tenant = %options.tenant, flow = %flow.file.name.get_ref(), run)
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
    let mut execution = Execution::new(flow, plan, store, options, context, run.clone(), progress);
    execution.injected = injected;
    let outcome = execution
        .all()
        .instrument(run_span(flow, options, &run))
        .await;
    execution.conclude(hold, outcome, started).await
}

impl Execution<'_> {
    /// Every source read and its records moved; why the run failed, if it did.
    async fn all(&mut self) -> Result<Option<String>, StoreError> {
        let plan = self.plan;
        // Lookup inputs and everything feeding them are kept whole for the run.
        let mut kept = BTreeSet::new();
        let mut pending: Vec<StepId> = plan
            .steps
            .iter()
            .filter_map(|s| match &s.work {
                Work::Transform(t) => t.lookup.clone(),
                _ => None,
            })
            .collect();
        while let Some(id) = pending.pop() {
            if kept.insert(id.clone())
                && let Some((input, _)) = plan.step(&id).and_then(PlannedStep::input)
            {
                pending.push(input.clone());
            }
        }
        self.collected = kept.iter().map(|k| (k.clone(), Vec::new())).collect();
        let sources: Vec<StepId> = plan
            .steps
            .iter()
            .filter(|s| matches!(s.work, Work::Read(_)))
            .map(|s| s.id.clone())
            .collect();
        // Lookups first, read in full; then everything else, page by page.
        for source in sources.iter().filter(|s| kept.contains(*s)) {
            let inside = |s: &StepId| kept.contains(s);
            self.read(source, &inside, false).await?;
        }
        // A kept step's other readers (a write of the rows a lookup also uses, say) get its
        // records from what was kept, a page at a time, rather than never.
        let outside = |s: &StepId| !kept.contains(s);
        for id in plan
            .steps
            .iter()
            .map(|s| &s.id)
            .filter(|s| kept.contains(*s) && !sources.contains(*s))
        {
            let children = self.readers_on(id, Branch::Then, &outside);
            if children.is_empty() {
                continue;
            }
            let records = self.collected.get(id).cloned().unwrap_or_default();
            for page in records.chunks(REPLAY_PAGE) {
                for child in &children {
                    match self.enter(child, page, &outside).await {
                        // A failure is recorded on the step that failed; the others carry on.
                        Ok(()) | Err(Stop::Step(_)) => {}
                        Err(Stop::Store(e)) => return Err(e),
                    }
                }
            }
        }
        for source in &sources {
            if kept.contains(source) && self.downstream(source).iter().all(|d| kept.contains(d)) {
                continue;
            }
            let step = self.planned(source);
            if !self.run_after_met(step) {
                let record = self.record(source);
                record.status = StepStatus::Skipped;
                record.finished_at = Some(SystemTime::now());
                self.save(source).await?;
                continue;
            }
            self.read(source, &outside, true).await?;
        }
        self.close_steps().await?;
        // A failed step that another waits on (`run_after`) was expected to fail sometimes.
        let awaited: BTreeSet<&StepId> = plan
            .steps
            .iter()
            .flat_map(|s| s.run_after.iter().map(|(other, _)| other))
            .collect();
        let failed: Vec<String> = self
            .steps
            .iter()
            .filter(|(id, s)| s.status == StepStatus::Failed && !awaited.contains(id))
            .map(|(_, s)| format!("{}: {}", s.step, s.error.as_deref().unwrap_or("failed")))
            .collect();
        Ok((!failed.is_empty()).then(|| failed.join("; ")))
    }
}
