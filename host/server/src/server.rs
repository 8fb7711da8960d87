//! The server loop: scheduled flows, the job chains after them, webhook events, registrations.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::Notify;
use weft_capabilities::Secrets;
use weft_engine::{Progress, RunError, RunOptions, RunReport, Work, schedule};
use weft_flow::StepId;
use weft_store::{RunStatus, Store, StoreError};

use crate::registration::{self, Registration, RegistrationError};
use crate::{ServedFlow, hooks};

/// The longest the loop sleeps between looks at what is due.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// How often a webhook flow's waiting events are looked for when no delivery to this process
/// announced any (events another process received, events of a run that failed).
const EVENTS_POLL: Duration = Duration::from_secs(10);

/// How long a flow whose turn failed rests before the next try: doubled after each failure
/// in a row, up to [`LONGEST_REST`].
const FIRST_REST: Duration = Duration::from_secs(5);
const LONGEST_REST: Duration = Duration::from_secs(300);

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the state database failed: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error("listening on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// What the server tells its operator.
#[derive(Debug)]
pub enum Event {
    /// A run of a flow ended.
    RunEnded(RunEnded),
    /// A flow's turn could not be taken (its run could not start, or the store failed): it
    /// is tried again at `retry_at`, later after each failure in a row; the server goes on.
    Deferred {
        flow: String,
        error: String,
        retry_at: SystemTime,
    },
    /// A webhook flow's endpoint is registered with its vendor (kept or made).
    Registered {
        flow: String,
        registration: Registration,
    },
}

/// A run the server started, as it ended.
#[derive(Debug)]
pub struct RunEnded {
    pub flow: String,
    pub run: String,
    pub status: RunStatus,
    /// Records read by its read steps, written by its write steps, and sent to the error log.
    pub read: u64,
    pub written: u64,
    pub failed: u64,
    pub took: Duration,
    pub cause: Cause,
}

/// Why the server ran a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Its schedule was due (or it never ran).
    Schedule,
    /// Every flow it runs after completed since its own last run; `after` just did.
    Chain { after: String },
    /// Webhook events were waiting for it.
    Webhook { events: usize },
}

/// What the webhook endpoints share with the loop.
pub(crate) struct Shared {
    pub flows: Vec<ServedFlow>,
    pub store: Store,
    pub secrets: Secrets,
    pub options: RunOptions,
    /// Woken when an event arrives, so that it is processed at once.
    pub wake: Notify,
    /// Flows whose endpoint accepted events since their last turn.
    pub delivered: Mutex<BTreeSet<String>>,
}

type Report = Box<dyn Fn(&Event) + Send + Sync>;

/// Runs a tenant's flows: each on its schedule, the job chains after them, webhook-triggered
/// flows over the events their endpoints received. Runs of one flow never overlap, also with
/// other processes on the same store (a busy flow is tried again when next due).
pub struct Server {
    shared: Arc<Shared>,
    public_url: Option<String>,
    /// When each registered flow's registration lapses (by index), if it does.
    lapses: BTreeMap<usize, SystemTime>,
    /// Flows whose last turn failed, by name: failures in a row, and when to try again.
    resting: Mutex<BTreeMap<String, (u32, SystemTime)>>,
    /// When each flow's last run started, as last read from the store (absent: read it), so
    /// that an idle flow costs no query a turn.
    started: Mutex<BTreeMap<String, Option<SystemTime>>>,
    /// When each webhook flow's waiting events were last looked for.
    events_polled: Mutex<BTreeMap<String, SystemTime>>,
    report: Report,
}

impl Server {
    pub fn new(
        flows: Vec<ServedFlow>,
        store: Store,
        secrets: Secrets,
        options: RunOptions,
    ) -> Self {
        Server {
            shared: Arc::new(Shared {
                flows,
                store,
                secrets,
                options,
                wake: Notify::new(),
                delivered: Mutex::new(BTreeSet::new()),
            }),
            public_url: None,
            lapses: BTreeMap::new(),
            resting: Mutex::new(BTreeMap::new()),
            started: Mutex::new(BTreeMap::new()),
            events_polled: Mutex::new(BTreeMap::new()),
            report: Box::new(|_| {}),
        }
    }

    /// The URL vendors reach the webhook endpoints at: [`Server::register`] registers each
    /// webhook-triggered flow's endpoint under it, and the loop keeps them registered.
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Where the server tells what it did (runs ended, registrations).
    pub fn on_event(mut self, report: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.report = Box::new(report);
        self
    }

    pub fn flows(&self) -> &[ServedFlow] {
        &self.shared.flows
    }

    /// Whether any flow has a webhook trigger (and so endpoints to listen on).
    pub fn has_webhooks(&self) -> bool {
        self.shared.flows.iter().any(|s| s.webhook().is_some())
    }

    /// The webhook endpoints, `POST /hooks/{flow}`.
    pub fn router(&self) -> axum::Router {
        hooks::router(Arc::clone(&self.shared))
    }

    /// Serves the webhook endpoints on `address` (behind the hardened listener's limits) until
    /// the runtime ends; the address bound (`127.0.0.1:0` picks a port).
    pub async fn listen(&self, address: SocketAddr) -> Result<SocketAddr, ServeError> {
        let listen_error = |source| ServeError::Listen { address, source };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(listen_error)?;
        let bound = listener.local_addr().map_err(listen_error)?;
        let app = self.router();
        tokio::spawn(async move {
            if let Err(e) =
                weft_listener::serve(listener, app, weft_listener::Limits::default()).await
            {
                tracing::error!(error = %e, "the webhook server stopped");
            }
        });
        Ok(bound)
    }

    /// Registers every webhook-triggered flow's endpoint with its vendor (or keeps the
    /// registration it has), when the server has a public URL. Call it once the endpoints
    /// listen: a vendor may call them to verify the registration.
    pub async fn register(&mut self) -> Result<(), ServeError> {
        let Some(public_url) = self.public_url.clone() else {
            return Ok(());
        };
        for i in 0..self.shared.flows.len() {
            if self.shared.flows[i].webhook().is_some() {
                self.register_one(i, &public_url).await?;
            }
        }
        Ok(())
    }

    async fn register_one(&mut self, i: usize, public_url: &str) -> Result<(), RegistrationError> {
        let served = &self.shared.flows[i];
        let callback = registration::callback_url(public_url, served.name());
        let made = registration::ensure(
            served,
            &self.shared.store,
            &self.shared.secrets,
            &self.shared.options.tenant,
            &callback,
        )
        .await?;
        match made.subscription().expires_at {
            Some(at) => self.lapses.insert(i, at),
            None => self.lapses.remove(&i),
        };
        (self.report)(&Event::Registered {
            flow: served.name().to_owned(),
            registration: made,
        });
        Ok(())
    }

    /// Registers, then runs what is due until `shutdown` completes: a run in progress is
    /// finished first.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        self.register().await?;
        tokio::pin!(shutdown);
        loop {
            let next = self.tick(SystemTime::now()).await;
            let wait = next
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .min(MAX_WAIT);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        Ok(())
    }

    /// One turn of the loop at `now`: renews registrations about to lapse, then gives each
    /// flow its turn (its schedule if due, the chain after it, its waiting webhook events).
    /// Nothing that fails stops the server: a flow whose turn failed is told of
    /// ([`Event::Deferred`]) and rests. When to look again.
    pub async fn tick(&mut self, now: SystemTime) -> SystemTime {
        self.renew(now).await;
        let mut next = now + MAX_WAIT;
        for served in &self.shared.flows {
            if let Some(until) = self.resting_until(served.name(), now) {
                next = next.min(until);
                continue;
            }
            match self.turn(served, now).await {
                Ok(Some(due)) => next = next.min(due),
                Ok(None) => {}
                Err(e) => next = next.min(self.defer(served.name(), &e, now)),
            }
        }
        next
    }

    /// A flow's turn: its schedule if due (and the chain after it if it completed), then its
    /// waiting webhook events. When its schedule is next due, if it has one. An idle flow costs
    /// no store query: when its last run started is remembered, and read again only when that
    /// makes it due (another process sharing the store may have run it since).
    async fn turn(
        &self,
        served: &ServedFlow,
        now: SystemTime,
    ) -> Result<Option<SystemTime>, ServeError> {
        let name = served.name();
        let remembered = lock(&self.started).get(name).copied();
        let mut last = match remembered {
            Some(last) => last,
            None => self.read_started(name).await?,
        };
        let mut due = schedule::next_due(&served.flow, last, now);
        if remembered.is_some() && due.is_some_and(|due| due <= now) {
            last = self.read_started(name).await?;
            due = schedule::next_due(&served.flow, last, now);
        }
        let due_now = due.is_some_and(|due| due <= now);
        if due_now && self.run_flow(served, Cause::Schedule, None).await? {
            self.run_chain(name, now).await;
        }
        // Once run, when it is next due follows from this run, at the next turn.
        let due_at = due.filter(|_| !due_now);
        if self.events_due(served, now)
            && let Some((ids, injected)) = hooks::pending(served, &self.shared).await?
        {
            let cause = Cause::Webhook { events: ids.len() };
            // Records of the events that failed are in the run's error log, to retry from
            // there; events of a run that did not complete wait for the next look.
            if self.run_flow(served, cause, Some(injected)).await? {
                self.shared
                    .store
                    .events_done(&self.shared.options.tenant, name, &ids)
                    .await?;
                // There may be more than one run's worth.
                lock(&self.events_polled).remove(name);
            }
        }
        lock(&self.resting).remove(name);
        Ok(due_at)
    }

    /// When `flow`'s last run started, from the store; remembered.
    async fn read_started(&self, flow: &str) -> Result<Option<SystemTime>, StoreError> {
        let last = self.last_started(flow).await?;
        lock(&self.started).insert(flow.to_owned(), last);
        Ok(last)
    }

    /// Whether to look for `served`'s waiting events at `now`: a webhook flow whose endpoint
    /// accepted events since, or not looked at for [`EVENTS_POLL`].
    fn events_due(&self, served: &ServedFlow, now: SystemTime) -> bool {
        if served.webhook().is_none() {
            return false;
        }
        let name = served.name();
        let delivered = lock(&self.shared.delivered).remove(name);
        let mut polled = lock(&self.events_polled);
        let stale = polled
            .get(name)
            .is_none_or(|at| *at + EVENTS_POLL <= now || *at > now);
        if delivered || stale {
            polled.insert(name.to_owned(), now);
        }
        delivered || stale
    }

    /// When `flow` may be tried again, if it is resting at `now`.
    fn resting_until(&self, flow: &str, now: SystemTime) -> Option<SystemTime> {
        let resting = lock(&self.resting);
        resting
            .get(flow)
            .map(|(_, until)| *until)
            .filter(|until| *until > now)
    }

    /// Tells of `flow`'s failed turn and rests it, longer after each failure in a row; until
    /// when.
    fn defer(&self, flow: &str, error: &ServeError, now: SystemTime) -> SystemTime {
        let mut resting = lock(&self.resting);
        let failures = resting.get(flow).map_or(0, |(n, _)| *n) + 1;
        let rest = FIRST_REST
            .saturating_mul(1 << (failures - 1).min(16))
            .min(LONGEST_REST);
        let retry_at = now + rest;
        resting.insert(flow.to_owned(), (failures, retry_at));
        drop(resting);
        tracing::error!(flow = %flow, error = %error, failures, "the flow's turn failed; it rests");
        (self.report)(&Event::Deferred {
            flow: flow.to_owned(),
            error: error.to_string(),
            retry_at,
        });
        retry_at
    }

    /// Renews the registrations that lapse within [`registration::RENEW_BEFORE`] of `now`; one
    /// that fails is tried again next turn (it has not lapsed yet).
    async fn renew(&mut self, now: SystemTime) {
        let Some(public_url) = self.public_url.clone() else {
            return;
        };
        let due: Vec<usize> = self
            .lapses
            .iter()
            .filter(|(_, lapses)| **lapses <= now + registration::RENEW_BEFORE)
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            if let Err(e) = self.register_one(i, &public_url).await {
                let flow = self.shared.flows[i].name();
                tracing::error!(flow = %flow, error = %e, "renewing the webhook registration failed");
            }
        }
    }

    async fn last_started(&self, flow: &str) -> Result<Option<SystemTime>, StoreError> {
        Ok(self
            .shared
            .store
            .flow_runs(&self.shared.options.tenant, flow, None, 1)
            .await?
            .into_iter()
            .next()
            .map(|r| r.started_at))
    }

    /// Runs one flow and tells of it; whether it completed (succeeded or partial).
    async fn run_flow(
        &self,
        served: &ServedFlow,
        cause: Cause,
        events: Option<BTreeMap<StepId, Vec<Value>>>,
    ) -> Result<bool, ServeError> {
        let shared = &self.shared;
        let report = weft_engine::run_with_events(
            &served.flow,
            &served.plan,
            &shared.store,
            &shared.secrets,
            &shared.options,
            events.unwrap_or_default(),
            &mut |_: &Progress<'_>| {},
        )
        .await;
        let report = match report {
            Ok(report) => report,
            // Never an overlapping run: the flow is tried again when it is next due, its
            // events at the next turn.
            Err(e @ RunError::FlowBusy { .. }) => {
                tracing::info!(flow = %served.name(), "{e}; not started");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        // Its start is read again from the store when next needed.
        lock(&self.started).remove(served.name());
        let completed = report.status.completed();
        (self.report)(&Event::RunEnded(ended(served, report, cause)));
        Ok(completed)
    }

    /// Runs the flows chained after `flow` whose every predecessor completed since their own
    /// last run, and theirs in turn. A chained flow whose turn fails rests like any other.
    async fn run_chain(&self, flow: &str, now: SystemTime) {
        let mut pending = vec![flow.to_owned()];
        while let Some(done) = pending.pop() {
            for next in self.shared.flows.iter().filter(|s| s.follows(&done)) {
                if self.resting_until(next.name(), now).is_some() {
                    continue;
                }
                let cause = Cause::Chain {
                    after: done.clone(),
                };
                let ran = match self.ready(next).await {
                    Ok(true) => self.run_flow(next, cause, None).await,
                    Ok(false) => Ok(false),
                    Err(e) => Err(e.into()),
                };
                match ran {
                    Ok(true) => pending.push(next.name().to_owned()),
                    Ok(false) => {}
                    Err(e) => {
                        self.defer(next.name(), &e, now);
                    }
                }
            }
        }
    }

    /// Whether every flow `next` runs after completed since `next` last started.
    async fn ready(&self, next: &ServedFlow) -> Result<bool, StoreError> {
        let last = self.last_started(next.name()).await?;
        for before in &next.flow.file.after {
            // Ran to its end since: succeeded, or partial (its failed records are in its error
            // log, not in the way of what comes after).
            let mut since = false;
            for status in [RunStatus::Succeeded, RunStatus::Partial] {
                since |= self
                    .shared
                    .store
                    .flow_runs(
                        &self.shared.options.tenant,
                        before.get_ref().as_str(),
                        Some(status),
                        1,
                    )
                    .await?
                    .iter()
                    .any(|r| last.is_none_or(|l| r.started_at >= l));
            }
            if !since {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The value behind `mutex`; a panic while it was held leaves nothing half-done in these maps.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the operator is told of a run: records read and written by the flow's read and write
/// steps, and failed anywhere.
fn ended(served: &ServedFlow, report: RunReport, cause: Cause) -> RunEnded {
    let (mut read, mut written, mut failed) = (0, 0, 0);
    for step in &report.steps {
        let work = served
            .plan
            .steps
            .iter()
            .find(|s| s.id.as_str() == step.step)
            .map(|s| &s.work);
        match work {
            Some(Work::Read(_)) => read += step.records_out,
            Some(Work::Write(_)) => written += step.records_out,
            _ => {}
        }
        failed += step.failed;
    }
    RunEnded {
        flow: served.name().to_owned(),
        run: report.id,
        status: report.status,
        read,
        written,
        failed,
        took: report.took,
        cause,
    }
}
