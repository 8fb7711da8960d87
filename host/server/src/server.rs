//! The server loop: scheduled flows, the job chains after them, webhook events, registrations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use weft_capabilities::Secrets;
use weft_engine::{PluginDirectory, RunError, RunOptions};
use weft_runtime::Runtime;
use weft_store::{RunStatus, Store, StoreError};

use crate::agenda::Agenda;
use crate::deployed::Deployed;
use crate::dispatch::Load;
use crate::flows::{FlowKey, TenantPolicy};
use crate::metrics::Metrics;
use crate::quota::{QuotaBook, Quotas};
use crate::registration::{Registration, RegistrationError};
use crate::watch::RunWatch;
use crate::{ServedFlow, TenantPlugins, hooks};

mod due;
mod registrations;
mod runs;

use runs::{Due, Finished};

/// The longest the loop sleeps between looks at what is due.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// The longest a flow goes without a turn.
const WAKE_AT_MOST: Duration = Duration::from_secs(3_600);

/// How often the store is asked which runs under way were asked to stop, at most.
const CANCELS_POLL: Duration = Duration::from_secs(1);

/// How often a webhook flow's waiting events are looked for when no delivery to this process
/// announced any (events another process received, events of a run that failed).
const EVENTS_POLL: Duration = Duration::from_secs(10);

/// Runs at once, unless [`Server::with_workers`] says otherwise.
pub const DEFAULT_WORKERS: usize = 4;

/// How long [`Server::run`] waits for runs under way once told to stop, unless
/// [`Server::with_shutdown_grace`] says otherwise.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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
    #[error("the run stopped on a bug in weft (it panicked: {0}); please report it")]
    Panicked(String),
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
    /// A flow's turn could not be taken (its run could not start, or the store failed; for a
    /// deployed flow, it no longer plans): it is tried again at `retry_at`, later after each
    /// failure in a row; the server goes on.
    Deferred {
        tenant: String,
        flow: String,
        error: String,
        retry_at: SystemTime,
    },
    /// A webhook flow's endpoint is registered with its vendor (kept or made).
    Registered {
        tenant: String,
        flow: String,
        registration: Registration,
    },
}

/// A run the server started, as it ended.
#[derive(Debug)]
pub struct RunEnded {
    pub tenant: String,
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
    /// Someone asked for a run through the API.
    Requested,
    /// Someone asked through the API to retry the records run `of` logged as failed.
    Retry { of: String },
}

/// What the webhook endpoints share with the loop.
pub(crate) struct Shared {
    /// The flows served now: the flows directory's, then the deployed ones. Replaced whole
    /// when deployed flows change; a turn works on the list it started with.
    flows: RwLock<Arc<Vec<Arc<ServedFlow>>>>,
    /// The deployed flows by their webhook endpoint id, made with `flows`.
    endpoints: RwLock<Arc<HashMap<String, Arc<ServedFlow>>>>,
    pub store: Store,
    pub secrets: Secrets,
    /// How runs go; its tenant is the server's own (the flows directory's), each run takes its
    /// flow's.
    pub options: RunOptions,
    /// Woken when an event arrives, so that it is processed at once.
    pub wake: Notify,
    /// Flows whose endpoint accepted events since their last turn.
    pub delivered: Mutex<BTreeSet<FlowKey>>,
    /// Where the endpoints keep the events they accepted, in batches (see [`Shared::intake`]).
    intake: std::sync::OnceLock<crate::intake::Intake>,
    /// What the server counts.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    pub fn flows(&self) -> Arc<Vec<Arc<ServedFlow>>> {
        Arc::clone(
            &self
                .flows
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Where the webhook endpoints keep the events they accepted; its task starts on the
    /// first call (in the runtime serving the endpoints).
    pub fn intake(&self) -> &crate::intake::Intake {
        self.intake
            .get_or_init(|| crate::intake::Intake::start(self.store.clone()))
    }

    /// The deployed flow whose webhook endpoint is `id`.
    pub fn by_endpoint(&self, id: &str) -> Option<Arc<ServedFlow>> {
        self.endpoints
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub(crate) fn set_flows(&self, flows: Vec<Arc<ServedFlow>>) {
        let endpoints = flows
            .iter()
            .filter_map(|s| Some((s.endpoint()?.to_owned(), Arc::clone(s))))
            .collect();
        *self
            .endpoints
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(endpoints);
        *self
            .flows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(flows);
    }
}

type Report = Box<dyn Fn(&Event) + Send + Sync>;

/// Serves flows: each on its schedule, the job chains after them, webhook-triggered flows over
/// the events their endpoints received, runs asked for through the API; the flows directory's
/// and, [`Server::with_deployed`], every active tenant's. Runs go to a pool of workers, fairly
/// between tenants (see `dispatch`). Runs of one flow never overlap, also with other processes
/// on the same store (a busy flow is tried again when next due).
pub struct Server {
    shared: Arc<Shared>,
    public_url: Option<String>,
    /// When each registered flow's registration lapses, if it does.
    lapses: BTreeMap<FlowKey, SystemTime>,
    /// Flows whose last turn failed: failures in a row, and when to try again.
    resting: Mutex<BTreeMap<FlowKey, (u32, SystemTime)>>,
    /// When each flow's last run started, as last read from the store (absent: read it), so
    /// that an idle flow costs no query a turn.
    started: Mutex<BTreeMap<FlowKey, Option<SystemTime>>>,
    /// When each webhook flow's waiting events were last looked for.
    events_polled: Mutex<BTreeMap<FlowKey, SystemTime>>,
    /// When each flow next needs a turn.
    agenda: Agenda,
    /// Serving deployed flows, if this server does.
    deployed: Option<Deployed>,
    /// Runs at once, at most.
    workers: usize,
    shutdown_grace: Duration,
    /// The runs under way, and which flows they are of.
    in_flight: JoinSet<Finished>,
    running: BTreeMap<FlowKey, Arc<RunWatch>>,
    /// When the store was last asked which runs under way were asked to stop (`None`: ask at
    /// the next turn).
    cancels_polled: Option<SystemTime>,
    load: Load,
    /// Chained flows found ready when a run completed, to start at the next turn.
    chained: Vec<Due>,
    /// Due runs left waiting for a worker, in the order they fell due.
    waiting: Vec<Due>,
    /// Deployed webhook flows whose endpoint is to be registered with the vendor, and when to
    /// try.
    unregistered: BTreeMap<FlowKey, SystemTime>,
    /// Deployed webhook flows served no more, as they were, whose registration is to be
    /// removed from the vendor, and when to try.
    retiring: BTreeMap<FlowKey, (Arc<ServedFlow>, SystemTime)>,
    /// Every tenant's quotas: the defaults, and each tenant's own as last read.
    quotas: QuotaBook,
    /// Whether chains left ready by an earlier process (stopped before it started them) were
    /// looked for.
    chains_recovered: bool,
    report: Report,
}

impl Server {
    pub fn new(
        flows: Vec<ServedFlow>,
        store: Store,
        secrets: Secrets,
        options: RunOptions,
    ) -> Self {
        let flows = flows.into_iter().map(Arc::new).collect();
        Server {
            shared: Arc::new(Shared {
                flows: RwLock::new(Arc::new(flows)),
                endpoints: RwLock::default(),
                store,
                secrets,
                options,
                wake: Notify::new(),
                delivered: Mutex::new(BTreeSet::new()),
                intake: std::sync::OnceLock::new(),
                metrics: Arc::default(),
            }),
            public_url: None,
            lapses: BTreeMap::new(),
            resting: Mutex::new(BTreeMap::new()),
            started: Mutex::new(BTreeMap::new()),
            events_polled: Mutex::new(BTreeMap::new()),
            agenda: Agenda::default(),
            deployed: None,
            workers: DEFAULT_WORKERS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            in_flight: JoinSet::new(),
            running: BTreeMap::new(),
            cancels_polled: None,
            load: Load::default(),
            chained: Vec::new(),
            waiting: Vec::new(),
            unregistered: BTreeMap::new(),
            retiring: BTreeMap::new(),
            quotas: QuotaBook::default(),
            chains_recovered: false,
            report: Box::new(|_| {}),
        }
    }

    /// Also serves the flows tenants deploy through the API (enabled flows of active tenants,
    /// planned with `plugins` and each tenant's own `tenant_plugins` under `policy`), and runs asked for through it. The store is asked
    /// what changed when `changed` is notified, and every few seconds.
    pub fn with_deployed(
        mut self,
        plugins: PluginDirectory,
        tenant_plugins: TenantPlugins,
        runtime: Runtime,
        policy: TenantPolicy,
        changed: Arc<Notify>,
    ) -> Self {
        let deployed = Deployed::new(plugins, tenant_plugins, runtime, policy, changed);
        self.deployed = Some(deployed);
        self
    }

    /// Runs at once, at most (at least one). With more than one, scheduled runs and chains
    /// leave one worker to webhook events and runs asked for.
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The quotas of every tenant that has none of its own set (see `quota`).
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas.defaults = quotas;
        self
    }

    /// How long [`Server::run`] lets runs under way finish once told to stop; runs still going
    /// then are dropped, and resume from their last checkpoint at the next start.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
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

    /// What the server counts (runs, what they used, webhook deliveries, by tenant), for the
    /// API's `/api/v1/metrics`.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The flows served now.
    pub fn flows(&self) -> Arc<Vec<Arc<ServedFlow>>> {
        self.shared.flows()
    }

    /// How many runs are under way.
    pub fn running(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether any flow has a webhook trigger (and so endpoints to listen on).
    pub fn has_webhooks(&self) -> bool {
        self.shared.flows().iter().any(|s| s.webhook().is_some())
    }

    /// The webhook endpoints: `POST /hooks/{endpoint}` for deployed flows, `/hooks/{flow}` for
    /// the flows directory's.
    pub fn router(&self) -> axum::Router {
        hooks::router(Arc::clone(&self.shared))
    }

    /// Serves the webhook endpoints on `address` (behind the hardened listener's limits) until
    /// the runtime ends; the address bound (`127.0.0.1:0` picks a port).
    pub async fn listen(&self, address: SocketAddr) -> Result<SocketAddr, ServeError> {
        self.listen_with(address, axum::Router::new()).await
    }

    /// [`Server::listen`], with `routes` (the API) served beside the webhook endpoints.
    pub async fn listen_with(
        &self,
        address: SocketAddr,
        routes: axum::Router,
    ) -> Result<SocketAddr, ServeError> {
        let listen_error = |source| ServeError::Listen { address, source };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(listen_error)?;
        let bound = listener.local_addr().map_err(listen_error)?;
        let app = self.router().merge(routes);
        tokio::spawn(async move {
            if let Err(e) =
                weft_listener::serve(listener, app, weft_listener::Limits::default()).await
            {
                tracing::error!(error = %e, "the webhook server stopped");
            }
        });
        Ok(bound)
    }

    /// Registers, then serves until `shutdown` completes; then starts nothing more and lets
    /// the runs under way finish within the shutdown grace (those still going then resume
    /// from their last checkpoint at the next start).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        self.register().await?;
        tokio::pin!(shutdown);
        let shared = Arc::clone(&self.shared);
        let changed = self.deployed.as_ref().map(|d| Arc::clone(&d.changed));
        loop {
            let next = self.tick(SystemTime::now()).await;
            let wait = next
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .min(MAX_WAIT);
            let deployed_changed = async {
                match &changed {
                    Some(changed) => changed.notified().await,
                    None => std::future::pending().await,
                }
            };
            let busy = !self.in_flight.is_empty();
            let finished = tokio::select! {
                _ = &mut shutdown => break,
                _ = shared.wake.notified() => None,
                // Consumed here: the next turn looks at the store at once.
                _ = deployed_changed => {
                    if let Some(deployed) = &mut self.deployed {
                        deployed.looked = None;
                    }
                    self.cancels_polled = None;
                    self.quotas.forget();
                    None
                }
                Some(done) = self.in_flight.join_next(), if busy => Some(done),
                _ = tokio::time::sleep(wait) => None,
            };
            if let Some(done) = finished {
                self.finished(done, SystemTime::now()).await;
            }
        }
        self.drain().await;
        Ok(())
    }

    /// Lets the runs under way finish within the shutdown grace, then drops the rest.
    async fn drain(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        tracing::info!(
            runs = self.in_flight.len(),
            grace = ?self.shutdown_grace,
            "stopping: letting the runs under way finish"
        );
        let deadline = tokio::time::Instant::now() + self.shutdown_grace;
        loop {
            match tokio::time::timeout_at(deadline, self.in_flight.join_next()).await {
                Ok(Some(done)) => self.finished(done, SystemTime::now()).await,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        tracing::warn!(
            runs = self.in_flight.len(),
            "runs still going at the end of the shutdown grace are stopped; they resume from their last checkpoint at the next start"
        );
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
    }

    /// One turn of the loop at `now`: takes in the runs that ended, renews registrations about
    /// to lapse, brings deployed flows in step with the store, then starts what is due (run
    /// requests, chains, schedules, webhook events) on free workers, fairly between tenants.
    /// Does not wait for the runs it starts ([`Server::settle`] does). Nothing that fails stops
    /// the server: a flow whose turn failed is told of ([`Event::Deferred`]) and rests. When to
    /// look again.
    pub async fn tick(&mut self, now: SystemTime) -> SystemTime {
        while let Some(done) = self.in_flight.try_join_next() {
            self.finished(done, now).await;
        }
        self.renew(now).await;
        self.recover_chains(now).await;
        self.cancels(now).await;
        let mut next = now + MAX_WAIT;
        let mut due = std::mem::take(&mut self.chained);
        due.extend(self.requests(now).await);
        self.follow(now);
        self.register_deployed(now).await;
        // Runs still waiting for a worker, of flows still served as they were (a run asked for
        // with variables runs the flow planned with them, checked when it was asked for).
        let waiting = std::mem::take(&mut self.waiting);
        due.extend(waiting.into_iter().filter(|d| {
            self.agenda
                .served(d.served.key())
                .is_some_and(|s| Arc::ptr_eq(s, &d.served) || d.request.is_some())
        }));
        // Events delivered since: their flows' turns are due at once.
        for key in lock(&self.shared.delivered).iter() {
            self.agenda.set(key, now);
        }
        // Only the flows due are looked at; one found due stays due until it started (a run
        // waiting for a worker is found again at the next turn) and ended.
        for served in self.agenda.due(now) {
            let key = served.key();
            if self.running.contains_key(key) {
                continue;
            }
            if let Some(until) = self.resting_until(&served, now) {
                self.agenda.set(key, until);
                continue;
            }
            match self.turn(&served, now).await {
                Ok((at, None)) => {
                    let wake = self.wake_at(&served, at, now);
                    self.agenda.set(key, wake);
                }
                Ok((_, Some(found))) => due.push(found),
                Err(e) => {
                    let until = self.defer(&served, &e, now);
                    self.agenda.set(key, until);
                }
            }
        }
        self.start(due, now).await;
        if let Some(at) = self.agenda.next_after(now) {
            next = next.min(at);
        }
        let served = self.shared.flows().len();
        (self.shared.metrics).load(self.in_flight.len(), self.waiting.len(), served);
        next
    }

    /// Brings the agenda in step with the flows served, and the registrations with the
    /// deployed webhook flows that came and went.
    fn follow(&mut self, now: SystemTime) {
        let followed = self.agenda.follow(&self.shared.flows(), now);
        self.queue_registrations(followed, now);
    }

    /// Stops the runs under way that were asked to stop (through this process's API or
    /// another's): each after its current page. One store query, at most every
    /// [`CANCELS_POLL`] (at once after the API announced a change).
    async fn cancels(&mut self, now: SystemTime) {
        if self.running.is_empty()
            || self
                .cancels_polled
                .is_some_and(|at| at <= now && now < at + CANCELS_POLL)
        {
            return;
        }
        self.cancels_polled = Some(now);
        let runs: BTreeMap<&str, &Arc<RunWatch>> = self
            .running
            .values()
            .filter_map(|w| Some((w.run()?, w)))
            .collect();
        let ids: Vec<String> = runs.keys().map(|r| (*r).to_owned()).collect();
        match self.shared.store.runs_cancelling(&ids).await {
            Ok(cancelling) => {
                for run in cancelling {
                    if let Some(watch) = runs.get(run.as_str()) {
                        tracing::info!(run, "asked to stop; stopping after its current page");
                        watch.cancel(format!(
                            "cancelled on request (POST /api/v1/runs/{run}/cancel)"
                        ));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "looking for runs asked to stop failed; trying again later");
            }
        }
    }

    /// Waits for every run under way, and the chains they start, to end; what they tell is
    /// told. For tests driving the server turn by turn.
    pub async fn settle(&mut self, now: SystemTime) {
        loop {
            while let Some(done) = self.in_flight.join_next().await {
                self.finished(done, now).await;
            }
            if self.chained.is_empty() {
                return;
            }
            let chained = std::mem::take(&mut self.chained);
            self.start(chained, now).await;
        }
    }

    /// At the first turn: the chained flows whose every predecessor completed since their own
    /// last run, as a server stopped between a run and the chain after it leaves them.
    async fn recover_chains(&mut self, now: SystemTime) {
        if self.chains_recovered {
            return;
        }
        self.chains_recovered = true;
        let flows = self.shared.flows();
        for served in flows.iter() {
            let Some(last) = served.flow.file.after.last() else {
                continue;
            };
            match self.ready(served).await {
                Ok(true) => self.chained.push(Due::new(
                    served,
                    Cause::Chain {
                        after: last.get_ref().to_string(),
                    },
                )),
                Ok(false) => {}
                Err(e) => {
                    self.defer(served, &e.into(), now);
                }
            }
        }
    }

    /// When `served` may be tried again, if it is resting at `now`.
    fn resting_until(&self, served: &ServedFlow, now: SystemTime) -> Option<SystemTime> {
        let resting = lock(&self.resting);
        resting
            .get(served.key())
            .map(|(_, until)| *until)
            .filter(|until| *until > now)
    }

    /// Tells of `served`'s failed turn and rests it, longer after each failure in a row; until
    /// when.
    fn defer(&self, served: &ServedFlow, error: &ServeError, now: SystemTime) -> SystemTime {
        let mut resting = lock(&self.resting);
        let failures = resting.get(served.key()).map_or(0, |(n, _)| *n) + 1;
        let rest = FIRST_REST
            .saturating_mul(1 << (failures - 1).min(16))
            .min(LONGEST_REST);
        let retry_at = now + rest;
        resting.insert(served.key().clone(), (failures, retry_at));
        drop(resting);
        let (tenant, flow) = (&served.tenant, served.name());
        tracing::error!(tenant = %tenant, flow = %flow, error = %error, failures, "the flow's turn failed; it rests");
        (self.report)(&Event::Deferred {
            tenant: tenant.clone(),
            flow: flow.to_owned(),
            error: error.to_string(),
            retry_at,
        });
        retry_at
    }
}

/// The value behind `mutex`; a panic while it was held leaves nothing half-done in these maps.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
