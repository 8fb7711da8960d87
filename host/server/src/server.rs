//! The server loop: scheduled flows, the job chains after them, webhook events, registrations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use weft_capabilities::Secrets;
use weft_engine::{PluginDirectory, RunError, RunOptions, schedule};
use weft_runtime::Runtime;
use weft_store::{RunRequest, RunStatus, Store, StoreError};

use crate::agenda::Agenda;
use crate::deployed::{DEPLOYED_POLL, Deployed};
use crate::dispatch::Load;
use crate::flows::{FlowKey, TenantPolicy};
use crate::metrics::Metrics;
use crate::quota::{QuotaBook, Quotas};
use crate::registration::{self, Registration, RegistrationError};
use crate::watch::RunWatch;
use crate::{ServedFlow, TenantPlugins, hooks};

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
    /// Where the endpoints keep the events they accepted, in batches.
    pub intake: std::sync::OnceLock<crate::intake::Intake>,
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

    /// Registers every webhook-triggered flow's endpoint with its vendor (or keeps the
    /// registration it has), when the server has a public URL. Call it once the endpoints
    /// listen: a vendor may call them to verify the registration.
    pub async fn register(&mut self) -> Result<(), ServeError> {
        let Some(public_url) = self.public_url.clone() else {
            return Ok(());
        };
        for served in self.shared.flows().iter() {
            if served.webhook().is_some() {
                self.register_one(served, &public_url).await?;
            }
        }
        Ok(())
    }

    async fn register_one(
        &mut self,
        served: &ServedFlow,
        public_url: &str,
    ) -> Result<(), RegistrationError> {
        let callback = registration::callback_url(public_url, served.hook_id());
        let made = registration::ensure(
            served,
            &self.shared.store,
            &self.shared.secrets,
            &served.tenant,
            &callback,
        )
        .await?;
        match made.subscription().expires_at {
            Some(at) => self.lapses.insert(served.key().clone(), at),
            None => self.lapses.remove(served.key()),
        };
        (self.report)(&Event::Registered {
            tenant: served.tenant.clone(),
            flow: served.name().to_owned(),
            registration: made,
        });
        Ok(())
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

    /// Brings the agenda in step with the flows served; deployed webhook-triggered flows new or
    /// deployed again are to be registered with their vendors, when there is a public URL.
    fn follow(&mut self, now: SystemTime) {
        let followed = self.agenda.follow(&self.shared.flows(), now);
        if self.public_url.is_none() {
            return;
        }
        let deployed_hook = |s: &Arc<ServedFlow>| s.endpoint().is_some() && s.webhook().is_some();
        for served in followed.fresh.iter().filter(|s| deployed_hook(s)) {
            self.retiring.remove(served.key());
            self.unregistered.insert(served.key().clone(), now);
        }
        for served in followed.gone.into_iter().filter(deployed_hook) {
            self.unregistered.remove(served.key());
            self.retiring.insert(served.key().clone(), (served, now));
        }
    }

    /// Registers the endpoints of deployed webhook flows not registered yet (see
    /// [`Server::register`]), and unsubscribes those of deployed flows served no more; one that
    /// fails is tried again after [`FIRST_REST`].
    async fn register_deployed(&mut self, now: SystemTime) {
        let Some(public_url) = self.public_url.clone() else {
            return;
        };
        let retire: Vec<FlowKey> = self
            .retiring
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in retire {
            let Some((served, _)) = self.retiring.remove(&key) else {
                continue;
            };
            let (store, secrets) = (&self.shared.store, &self.shared.secrets);
            match registration::remove(&served, store, secrets, &served.tenant).await {
                Ok(_) => {
                    self.lapses.remove(&key);
                }
                Err(e) => {
                    tracing::error!(tenant = %served.tenant, flow = %served.name(), error = %e, "unsubscribing the webhook of a flow served no more failed; trying again later");
                    self.retiring.insert(key, (served, now + FIRST_REST));
                }
            }
        }
        let ready: Vec<FlowKey> = self
            .unregistered
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in ready {
            let Some(served) = self.agenda.served(&key).cloned() else {
                // Not served any more.
                self.unregistered.remove(&key);
                continue;
            };
            match self.register_one(&served, &public_url).await {
                Ok(()) => {
                    self.unregistered.remove(&key);
                }
                Err(e) => {
                    tracing::error!(tenant = %served.tenant, flow = %served.name(), error = %e, "registering the webhook endpoint failed; trying again later");
                    let retry_at = now + FIRST_REST;
                    self.unregistered.insert(key, retry_at);
                    (self.report)(&Event::Deferred {
                        tenant: served.tenant.clone(),
                        flow: served.name().to_owned(),
                        error: format!("registering its webhook endpoint failed: {e}"),
                        retry_at,
                    });
                }
            }
        }
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

    /// The run requests waiting, as due runs of the flows served (a request for a flow not
    /// served any more is dropped).
    async fn requests(&mut self, now: SystemTime) -> Vec<Due> {
        let Some(deployed) = &mut self.deployed else {
            return Vec::new();
        };
        let synced = deployed.sync(&self.shared, now).await;
        self.follow(now);
        for ((tenant, flow), error) in synced.failures {
            tracing::error!(tenant = %tenant, flow = %flow, %error, "a deployed flow does not plan");
            (self.report)(&Event::Deferred {
                tenant,
                flow,
                error,
                retry_at: now + DEPLOYED_POLL,
            });
        }
        let mut due = Vec::new();
        for request in synced.requests {
            let key = (request.tenant.clone(), request.flow.clone());
            let found = self.agenda.served(&key).cloned();
            match found {
                Some(served) if self.running.contains_key(served.key()) => {}
                Some(served) if self.resting_until(&served, now).is_some() => {}
                Some(served) => {
                    let cause = match &request.retry_of {
                        Some(of) => Cause::Retry { of: of.clone() },
                        None => Cause::Requested,
                    };
                    let served = match self.with_variables(served, &request).await {
                        Ok(served) => served,
                        Err(error) => {
                            // Checked when it was asked for: the flow changed since.
                            tracing::error!(tenant = %request.tenant, flow = %request.flow, %error, "a run asked for with variables does not plan; dropped");
                            (self.report)(&Event::Deferred {
                                tenant: request.tenant.clone(),
                                flow: request.flow.clone(),
                                error: format!(
                                    "the run asked for with variables {} does not plan, and is dropped: {error}",
                                    request.variables
                                ),
                                retry_at: now,
                            });
                            if let Err(e) = self.shared.store.run_request_done(&request).await {
                                tracing::error!(error = %e, "dropping a run request failed");
                            }
                            continue;
                        }
                    };
                    due.push(Due {
                        request: Some(request),
                        ..Due::new(&served, cause)
                    });
                }
                None => {
                    // Deleted or disabled since it was asked for: nothing to run.
                    tracing::info!(tenant = %request.tenant, flow = %request.flow, "run request for a flow not served; dropped");
                    if let Err(e) = self.shared.store.run_request_done(&request).await {
                        tracing::error!(error = %e, "dropping a run request failed");
                    }
                }
            }
        }
        due
    }

    /// The flow a run request runs: `served` itself, or, for a run asked for with variables of
    /// its own, the flow planned again with them over those it was deployed with.
    async fn with_variables(
        &self,
        served: Arc<ServedFlow>,
        request: &RunRequest,
    ) -> Result<Arc<ServedFlow>, String> {
        let over: BTreeMap<String, String> = serde_json::from_str(&request.variables)
            .map_err(|e| format!("its variables are not a JSON object of strings: {e}"))?;
        let Some(deployed) = self.deployed.as_ref().filter(|_| !over.is_empty()) else {
            return Ok(served);
        };
        let planned = deployed
            .plan_with(
                &self.shared.store,
                &served.tenant,
                served.name(),
                &over,
                true,
            )
            .await?
            .ok_or_else(|| "the flow was deleted".to_owned())?;
        Ok(Arc::new(planned))
    }

    /// A flow's turn: its schedule if due, else its waiting webhook events: the run due, and
    /// when its schedule is next due if it has one. An idle flow costs no store query: when
    /// its last run started is remembered, and read again only when that makes it due
    /// (another process sharing the store may have run it since).
    async fn turn(
        &self,
        served: &Arc<ServedFlow>,
        now: SystemTime,
    ) -> Result<(Option<SystemTime>, Option<Due>), ServeError> {
        let key = served.key();
        let remembered = lock(&self.started).get(key).copied();
        let mut last = match remembered {
            Some(last) => last,
            None => self.read_started(served).await?,
        };
        let mut due = schedule::next_due(&served.flow, last, now);
        if remembered.is_some() && due.is_some_and(|due| due <= now) {
            last = self.read_started(served).await?;
            due = schedule::next_due(&served.flow, last, now);
        }
        if due.is_some_and(|due| due <= now) {
            // When it is next due follows from this run, once it ran.
            return Ok((None, Some(Due::new(served, Cause::Schedule))));
        }
        if self.events_due(served, now)
            && let Some((ids, injected)) = hooks::pending(served, &self.shared).await?
        {
            let cause = Cause::Webhook { events: ids.len() };
            // Records of the events that failed are in the run's error log, to retry from
            // there; events of a run that did not complete wait for the next look.
            return Ok((
                due,
                Some(Due {
                    events: Some((ids, injected)),
                    ..Due::new(served, cause)
                }),
            ));
        }
        lock(&self.resting).remove(key);
        Ok((due, None))
    }

    /// When `served`, whose turn at `now` found nothing due, next needs one: when its schedule
    /// is `due`, when its events are next looked for; an hour on at most, in case.
    fn wake_at(&self, served: &ServedFlow, due: Option<SystemTime>, now: SystemTime) -> SystemTime {
        let mut wake = due.unwrap_or(now + WAKE_AT_MOST).min(now + WAKE_AT_MOST);
        if served.webhook().is_some() {
            let polled = lock(&self.events_polled).get(served.key()).copied();
            wake = wake.min(polled.unwrap_or(now) + EVENTS_POLL);
        }
        wake
    }

    /// When `served`'s last run started, from the store; remembered.
    async fn read_started(&self, served: &ServedFlow) -> Result<Option<SystemTime>, StoreError> {
        let last = self.last_started(served).await?;
        lock(&self.started).insert(served.key().clone(), last);
        Ok(last)
    }

    /// Whether to look for `served`'s waiting events at `now`: a webhook flow whose endpoint
    /// accepted events since, or not looked at for [`EVENTS_POLL`].
    fn events_due(&self, served: &ServedFlow, now: SystemTime) -> bool {
        if served.webhook().is_none() {
            return false;
        }
        let key = served.key();
        let delivered = lock(&self.shared.delivered).remove(key);
        let mut polled = lock(&self.events_polled);
        let stale = polled
            .get(key)
            .is_none_or(|at| *at + EVENTS_POLL <= now || *at > now);
        if delivered || stale {
            polled.insert(key.clone(), now);
        }
        delivered || stale
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

    /// Renews the registrations that lapse within [`registration::RENEW_BEFORE`] of `now`; one
    /// that fails is tried again next turn (it has not lapsed yet).
    async fn renew(&mut self, now: SystemTime) {
        let Some(public_url) = self.public_url.clone() else {
            return;
        };
        let flows = self.shared.flows();
        let due: Vec<&Arc<ServedFlow>> = flows
            .iter()
            .filter(|s| {
                self.lapses
                    .get(s.key())
                    .is_some_and(|lapses| *lapses <= now + registration::RENEW_BEFORE)
            })
            .collect();
        for served in due {
            if let Err(e) = self.register_one(served, &public_url).await {
                let flow = served.name();
                tracing::error!(flow = %flow, error = %e, "renewing the webhook registration failed");
            }
        }
    }

    async fn last_started(&self, served: &ServedFlow) -> Result<Option<SystemTime>, StoreError> {
        self.shared
            .store
            .flow_last_started(&served.tenant, served.name())
            .await
    }

    /// Whether every flow `next` runs after completed since `next` last started.
    async fn ready(&self, next: &ServedFlow) -> Result<bool, StoreError> {
        let last = self.last_started(next).await?;
        for before in &next.flow.file.after {
            // Ran to its end since: succeeded, or partial (its failed records are in its error
            // log, not in the way of what comes after).
            let mut since = false;
            for status in [RunStatus::Succeeded, RunStatus::Partial] {
                since |= self
                    .shared
                    .store
                    .flow_runs(&next.tenant, before.get_ref().as_str(), Some(status), 1)
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
