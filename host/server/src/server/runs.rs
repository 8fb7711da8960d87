//! Carrying runs out: which due runs start now (quotas, then fair dispatch onto the workers),
//! each on a thread of its own, and taking in each that ended (telling of it, its events and
//! request done, the chains it makes ready, rest when it could not be carried out).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinError;
use weft_engine::{Progress, RunError, RunOptions, RunReport};
use weft_store::{RunRequest, RunStatus};

use super::{Cause, Event, RunEnded, ServeError, Server, Shared, lock};
use crate::ServedFlow;
use crate::dispatch::{self, Lane, Waiting};
use crate::hooks;
use crate::quota::{self, Quota, Tally};
use crate::watch::RunWatch;

/// How long a flow whose run waits for a worker goes without a turn of its own, at most (the
/// run started, its flow has one when it ends).
const WAITING_FOR_A_WORKER: std::time::Duration = std::time::Duration::from_secs(60);

/// A run due now, waiting for a worker.
pub(super) struct Due {
    pub(super) served: Arc<ServedFlow>,
    pub(super) cause: Cause,
    /// The webhook events it takes: their ids, and their records per read step.
    pub(super) events: Option<hooks::Taken>,
    /// The API request it answers.
    pub(super) request: Option<RunRequest>,
    /// Asked between pages whether it goes on (set when it starts).
    pub(super) watch: Arc<RunWatch>,
}

impl Due {
    pub(super) fn new(served: &Arc<ServedFlow>, cause: Cause) -> Self {
        Due {
            served: Arc::clone(served),
            cause,
            events: None,
            request: None,
            watch: Arc::default(),
        }
    }

    fn lane(&self) -> Lane {
        match self.cause {
            Cause::Webhook { .. } | Cause::Requested | Cause::Retry { .. } => Lane::Interactive,
            Cause::Schedule | Cause::Chain { .. } => Lane::Background,
        }
    }
}

/// A run a worker carried out; what it panicked with, if it did.
pub(super) struct Finished {
    due: Due,
    lane: Lane,
    result: Result<Result<RunReport, RunError>, String>,
}

impl Server {
    /// Starts what `due` may start now on free workers (one run per flow, a tenant within its
    /// quotas; the others stay due and are found again next turn). A tenant over a counted
    /// quota has its due runs refused: recorded, told, and their flows resting until it resets.
    pub(super) async fn start(&mut self, due: Vec<Due>, now: SystemTime) {
        let mut by_tenant: BTreeMap<String, Vec<Due>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for d in due {
            let key = d.served.key();
            if self.running.contains_key(key) || !seen.insert(key.clone()) {
                continue;
            }
            by_tenant
                .entry(d.served.tenant.clone())
                .or_default()
                .push(d);
        }
        let mut waiting = Vec::new();
        let mut caps = BTreeMap::new();
        for (tenant, due) in by_tenant {
            let store = &self.shared.store;
            let checked = match self.quotas.of(store, &tenant, now).await {
                Ok(quotas) => Tally::read(store, &tenant, &quotas, now)
                    .await
                    .map(|tally| (quotas, tally)),
                Err(e) => Err(e),
            };
            let none_used = weft_store::RunUsage::default();
            match checked {
                Ok((quotas, tally)) if tally.exceeded(&quotas, &none_used, now).is_none() => {
                    if let Some(cap) = quotas.get(Quota::ConcurrentRuns) {
                        caps.insert(tenant.clone(), cap as usize);
                    }
                    // Each run is stopped after the page that takes the tenant over a quota.
                    let budget = (quotas, tally);
                    waiting.extend(due.into_iter().map(|d| Waiting {
                        tenant: tenant.clone(),
                        lane: d.lane(),
                        run: Due {
                            watch: Arc::new(RunWatch::new(Some(budget.clone()))),
                            ..d
                        },
                    }));
                }
                Ok((quotas, tally)) => {
                    let exceeded = tally
                        .exceeded(&quotas, &none_used, now)
                        .expect("the arm above takes the tally under every quota");
                    for d in due {
                        self.refuse(d, &exceeded).await;
                    }
                }
                Err(e) => {
                    let e = ServeError::from(e);
                    for d in due {
                        self.defer(&d.served, &e, now);
                    }
                }
            }
        }
        let (chosen, left) = dispatch::choose(waiting, self.workers, &mut self.load, &caps);
        // Left for a worker: kept as they are, not found due again turn after turn; their
        // flows have no turn of their own meanwhile.
        for w in left {
            self.agenda
                .set(w.run.served.key(), now + WAITING_FOR_A_WORKER);
            self.waiting.push(w.run);
        }
        for due in chosen {
            self.running
                .insert(due.served.key().clone(), Arc::clone(&due.watch));
            let lane = due.lane();
            let shared = Arc::clone(&self.shared);
            let deployed = self
                .deployed
                .as_ref()
                .is_some_and(|d| d.has(due.served.key()));
            // A thread of its own for each run: a plugin's CPU time never holds up the tasks
            // serving the API and the webhook endpoints.
            let handle = tokio::runtime::Handle::current();
            self.in_flight.spawn_blocking(move || {
                // A panic (a bug in weft, never a plugin's doing: guests trap) ends this run,
                // not the server, and the flow is tried again later like any failed turn.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle.block_on(carry_out(&shared, &due, deployed))
                }))
                .map_err(|panic| panic_message(&*panic));
                Finished { due, lane, result }
            });
        }
    }

    /// Does not start `due` because its tenant reached `exceeded`: records a `refused` run
    /// saying so (its request, if it had one, is answered by it; its webhook events wait), and
    /// rests its flow until the quota resets.
    pub(super) async fn refuse(&mut self, due: Due, exceeded: &quota::Exceeded) {
        let served = &due.served;
        let why = exceeded.to_string();
        let store = &self.shared.store;
        let id = weft_engine::run_id_new();
        let recorded = match store
            .run_refused(&id, &served.tenant, served.name(), &why)
            .await
        {
            Ok(()) => match &due.request {
                Some(request) => store.run_request_done(request).await,
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "recording a refused run failed");
        }
        lock(&self.resting).insert(served.key().clone(), (0, exceeded.resets_at));
        let none_used = weft_store::RunUsage::default();
        (self.shared.metrics).run_ended(&served.tenant, RunStatus::Refused, &none_used);
        tracing::warn!(tenant = %served.tenant, flow = %served.name(), %why, "run refused");
        (self.report)(&Event::Deferred {
            tenant: served.tenant.clone(),
            flow: served.name().to_owned(),
            error: why,
            retry_at: exceeded.resets_at,
        });
    }

    /// Takes in a run that ended: tells of it, marks its events and request done, finds the
    /// chains it makes ready, rests its flow when it could not be carried out.
    pub(super) async fn finished(&mut self, done: Result<Finished, JoinError>, now: SystemTime) {
        let Finished { due, lane, result } = match done {
            Ok(finished) => finished,
            Err(e) => {
                // Only when the task was aborted (at the end of a stop's grace): nothing more
                // to take in.
                tracing::warn!(error = %e, "a run's task ended without finishing");
                return;
            }
        };
        let served = &due.served;
        let key = served.key();
        self.running.remove(key);
        self.load.ended(&served.tenant, lane);
        self.cancels_polled = None;
        let report = match result {
            Ok(Ok(report)) => report,
            Err(panic) => {
                tracing::error!(tenant = %served.tenant, flow = %served.name(), %panic, "a run panicked");
                self.defer(served, &ServeError::Panicked(panic), now);
                return;
            }
            // Never an overlapping run: the flow is tried again when it is next due, its
            // events and requests at the next turn.
            Ok(Err(e @ RunError::FlowBusy { .. })) => {
                tracing::info!(tenant = %served.tenant, flow = %served.name(), "{e}; not started");
                return;
            }
            Ok(Err(e)) => {
                self.defer(served, &e.into(), now);
                return;
            }
        };
        // Its start is read again from the store when next needed, and its next turn follows
        // from it.
        lock(&self.started).remove(key);
        self.agenda.set(key, now);
        let completed = report.status.completed();
        let metrics = &self.shared.metrics;
        metrics.run_ended(&served.tenant, report.status, &report.usage);
        (self.report)(&Event::RunEnded(ended(served, report, due.cause.clone())));
        let store = &self.shared.store;
        let mut after = Ok(());
        if let Some((ids, _)) = due.events.as_ref().filter(|_| completed) {
            after = store.events_done(&served.tenant, served.name(), ids).await;
            // There may be more than one run's worth.
            lock(&self.events_polled).remove(key);
        }
        if let Some(request) = &due.request {
            after = after.and(store.run_request_done(request).await);
        }
        match (after, due.watch.exceeded()) {
            (Ok(()), None) => {
                lock(&self.resting).remove(key);
            }
            // Stopped by a quota: its flows rest until it resets, like runs refused at start.
            (Ok(()), Some(exceeded)) => {
                lock(&self.resting).insert(key.clone(), (0, exceeded.resets_at));
            }
            (Err(e), _) => {
                self.defer(served, &e.into(), now);
            }
        }
        if completed {
            self.chain(served, now).await;
        }
    }

    /// Finds the flows of `served`'s tenant chained after it whose every predecessor completed
    /// since their own last run: they start at the next turn (and theirs after them).
    pub(super) async fn chain(&mut self, served: &Arc<ServedFlow>, now: SystemTime) {
        let flows = self.shared.flows();
        let after = flows
            .iter()
            .filter(|s| s.tenant == served.tenant && s.follows(served.name()));
        for next in after {
            if self.resting_until(next, now).is_some() {
                continue;
            }
            match self.ready(next).await {
                Ok(true) => self.chained.push(Due::new(
                    next,
                    Cause::Chain {
                        after: served.name().to_owned(),
                    },
                )),
                Ok(false) => {}
                Err(e) => {
                    self.defer(next, &e.into(), now);
                }
            }
        }
    }
}

/// Carries out one run of a due flow, for its tenant (a deployed flow without the server's
/// environment, which it was planned without).
async fn carry_out(shared: &Shared, due: &Due, deployed: bool) -> Result<RunReport, RunError> {
    let served = &due.served;
    let options = RunOptions {
        tenant: served.tenant.clone(),
        environment: shared.options.environment.clone().filter(|_| !deployed),
        watch: Some(Arc::clone(&due.watch) as Arc<dyn weft_engine::Watch>),
        ..shared.options.clone()
    };
    if let Some(failed) = due.request.as_ref().and_then(|r| r.retry_of.as_deref()) {
        return weft_engine::retry_failed(
            &served.flow,
            &served.plan,
            &shared.store,
            &shared.secrets,
            &options,
            failed,
            &mut |_: &Progress<'_>| {},
        )
        .await;
    }
    let events = due
        .events
        .as_ref()
        .map(|(_, injected)| injected.clone())
        .unwrap_or_default();
    weft_engine::run_with_events(
        &served.flow,
        &served.plan,
        &shared.store,
        &shared.secrets,
        &options,
        events,
        &mut |_: &Progress<'_>| {},
    )
    .await
}

/// What a panic said, when it said it as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// What the operator is told of a run: records read and written by the flow's read and write
/// steps, and failed anywhere.
fn ended(served: &ServedFlow, report: RunReport, cause: Cause) -> RunEnded {
    RunEnded {
        tenant: served.tenant.clone(),
        flow: served.name().to_owned(),
        run: report.id,
        status: report.status,
        read: report.usage.records_read,
        written: report.usage.records_written,
        failed: report.usage.records_failed,
        took: report.took,
        cause,
    }
}
