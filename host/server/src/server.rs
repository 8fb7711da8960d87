//! The server loop: scheduled flows, the job chains after them, webhook events, registrations.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::Notify;
use weft_capabilities::Secrets;
use weft_engine::{PluginDirectory, Progress, RunError, RunOptions, RunReport, Work, schedule};
use weft_flow::StepId;
use weft_runtime::Runtime;
use weft_store::{RunRequest, RunStatus, Store, StoreError};

use crate::flows::{Deployment, FlowKey, TenantPolicy, plan_deployed};
use crate::registration::{self, Registration, RegistrationError};
use crate::{ServedFlow, hooks};

/// The longest the loop sleeps between looks at what is due.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// How often a webhook flow's waiting events are looked for when no delivery to this process
/// announced any (events another process received, events of a run that failed).
const EVENTS_POLL: Duration = Duration::from_secs(10);

/// How often the store is asked for deployed flows that changed and for run requests, when
/// the API in this process announced none (another process's API may have taken them).
const DEPLOYED_POLL: Duration = Duration::from_secs(5);

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
}

/// What the webhook endpoints share with the loop.
pub(crate) struct Shared {
    /// The flows served now: the flows directory's, then the deployed ones. Replaced whole
    /// when deployed flows change; a turn works on the list it started with.
    flows: RwLock<Arc<Vec<Arc<ServedFlow>>>>,
    pub store: Store,
    pub secrets: Secrets,
    /// How runs go; its tenant is the server's own (the flows directory's), each run takes its
    /// flow's.
    pub options: RunOptions,
    /// Woken when an event arrives, so that it is processed at once.
    pub wake: Notify,
    /// Flows whose endpoint accepted events since their last turn.
    pub delivered: Mutex<BTreeSet<FlowKey>>,
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

    fn set_flows(&self, flows: Vec<Arc<ServedFlow>>) {
        *self
            .flows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(flows);
    }
}

/// Flows tenants deployed through the API, as the server keeps them in step with the store.
struct Deployed {
    plugins: PluginDirectory,
    runtime: Runtime,
    policy: TenantPolicy,
    /// Notified by the API when a flow is deployed, changed or removed, or a run is asked for.
    changed: Arc<Notify>,
    /// The digest of each deployed flow served, or that failed to plan (not tried again until
    /// it changes).
    digests: BTreeMap<FlowKey, String>,
    /// When the store was last asked.
    looked: Option<SystemTime>,
}

type Report = Box<dyn Fn(&Event) + Send + Sync>;

/// Runs a tenant's flows: each on its schedule, the job chains after them, webhook-triggered
/// flows over the events their endpoints received. Runs of one flow never overlap, also with
/// other processes on the same store (a busy flow is tried again when next due).
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
    /// Serving deployed flows, if this server does.
    deployed: Option<Deployed>,
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
            deployed: None,
            report: Box::new(|_| {}),
        }
    }

    /// Also serves the flows tenants deploy through the API (enabled flows of active tenants,
    /// planned with `plugins` under `policy`), and runs asked for through it. The store is asked
    /// what changed when `changed` is notified, and every few seconds.
    pub fn with_deployed(
        mut self,
        plugins: PluginDirectory,
        runtime: Runtime,
        policy: TenantPolicy,
        changed: Arc<Notify>,
    ) -> Self {
        self.deployed = Some(Deployed {
            plugins,
            runtime,
            policy,
            changed,
            digests: BTreeMap::new(),
            looked: None,
        });
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

    /// The flows served now.
    pub fn flows(&self) -> Arc<Vec<Arc<ServedFlow>>> {
        self.shared.flows()
    }

    /// Whether any flow has a webhook trigger (and so endpoints to listen on).
    pub fn has_webhooks(&self) -> bool {
        self.shared.flows().iter().any(|s| s.webhook().is_some())
    }

    /// The webhook endpoints, `POST /hooks/{flow}`.
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
        let callback = registration::callback_url(public_url, served.name());
        let made = registration::ensure(
            served,
            &self.shared.store,
            &self.shared.secrets,
            &served.tenant,
            &callback,
        )
        .await?;
        match made.subscription().expires_at {
            Some(at) => self.lapses.insert(served.key(), at),
            None => self.lapses.remove(&served.key()),
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
            let changed = self.deployed.as_ref().map(|d| Arc::clone(&d.changed));
            let deployed_changed = async {
                match changed {
                    Some(changed) => changed.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.shared.wake.notified() => {}
                // Consumed here: the next turn looks at the store at once.
                _ = deployed_changed => {
                    if let Some(deployed) = &mut self.deployed {
                        deployed.looked = None;
                    }
                }
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
        let requests = self.sync_deployed(now).await;
        let mut next = now + MAX_WAIT;
        let flows = self.shared.flows();
        for request in requests {
            let Some(served) = flows
                .iter()
                .find(|s| s.tenant == request.tenant && s.name() == request.flow)
            else {
                // Deleted or disabled since it was asked for: nothing to run.
                tracing::info!(tenant = %request.tenant, flow = %request.flow, "run request for a flow not served; dropped");
                if let Err(e) = self.shared.store.run_request_done(&request).await {
                    tracing::error!(error = %e, "dropping a run request failed");
                }
                continue;
            };
            if self.resting_until(served, now).is_some() {
                continue;
            }
            if let Err(e) = self.requested(served, &request, now).await {
                next = next.min(self.defer(served, &e, now));
            }
        }
        for served in flows.iter() {
            if let Some(until) = self.resting_until(served, now) {
                next = next.min(until);
                continue;
            }
            match self.turn(served, now).await {
                Ok(Some(due)) => next = next.min(due),
                Ok(None) => {}
                Err(e) => next = next.min(self.defer(served, &e, now)),
            }
        }
        next
    }

    /// Runs a flow someone asked for, then the chain after it; the request is dropped once a
    /// run answered it (a busy flow keeps it for the next turn).
    async fn requested(
        &self,
        served: &ServedFlow,
        request: &RunRequest,
        now: SystemTime,
    ) -> Result<(), ServeError> {
        match self.run_flow(served, Cause::Requested, None).await? {
            Ran::Busy => return Ok(()),
            Ran::Completed => self.run_chain(served, now).await,
            Ran::Failed => {}
        }
        self.shared.store.run_request_done(request).await?;
        Ok(())
    }

    /// Brings the deployed flows served in step with the store, when the API announced a
    /// change or [`DEPLOYED_POLL`] passed; the run requests waiting then (none otherwise).
    /// A flow that no longer plans is told of and left out until it changes; the store
    /// failing leaves the flows as they are, for the next look.
    async fn sync_deployed(&mut self, now: SystemTime) -> Vec<RunRequest> {
        let Some(deployed) = &mut self.deployed else {
            return Vec::new();
        };
        // A change announced since the last look (the permit `notify_one` leaves).
        let announced = tokio::time::timeout(Duration::ZERO, deployed.changed.notified())
            .await
            .is_ok();
        if !announced
            && deployed
                .looked
                .is_some_and(|at| at <= now && now < at + DEPLOYED_POLL)
        {
            return Vec::new();
        }
        deployed.looked = Some(now);
        let store = &self.shared.store;
        let (versions, requests) = match tokio::try_join!(
            store.flows_served(),
            store.run_requests()
        ) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "reading the deployed flows failed; trying again later");
                return Vec::new();
            }
        };
        let current = self.shared.flows();
        let home = &self.shared.options.tenant;
        // The flows directory's flows stay; deployed ones are kept, replaced or dropped.
        let mut flows: Vec<Arc<ServedFlow>> = current
            .iter()
            .filter(|s| !deployed.digests.contains_key(&s.key()))
            .cloned()
            .collect();
        let mut digests = BTreeMap::new();
        let mut failures = Vec::new();
        for version in versions {
            let key = (version.tenant.clone(), version.name.clone());
            if flows.iter().any(|s| s.tenant == *home && s.key() == key) {
                continue;
            }
            let unchanged = deployed.digests.get(&key) == Some(&version.digest);
            if unchanged {
                if let Some(kept) = current.iter().find(|s| s.key() == key) {
                    flows.push(Arc::clone(kept));
                }
                digests.insert(key, version.digest);
                continue;
            }
            match plan_stored(store, deployed, &version.tenant, &version.name).await {
                Ok(Some(served)) => flows.push(Arc::new(served)),
                Ok(None) => continue,
                Err(error) => failures.push((key.clone(), error)),
            }
            digests.insert(key, version.digest);
        }
        deployed.digests = digests;
        self.shared.set_flows(flows);
        for ((tenant, flow), error) in failures {
            tracing::error!(tenant = %tenant, flow = %flow, %error, "a deployed flow does not plan");
            (self.report)(&Event::Deferred {
                tenant,
                flow,
                error,
                retry_at: now + DEPLOYED_POLL,
            });
        }
        requests
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
        let key = served.key();
        let remembered = lock(&self.started).get(&key).copied();
        let mut last = match remembered {
            Some(last) => last,
            None => self.read_started(served).await?,
        };
        let mut due = schedule::next_due(&served.flow, last, now);
        if remembered.is_some() && due.is_some_and(|due| due <= now) {
            last = self.read_started(served).await?;
            due = schedule::next_due(&served.flow, last, now);
        }
        let due_now = due.is_some_and(|due| due <= now);
        if due_now && self.run_flow(served, Cause::Schedule, None).await? == Ran::Completed {
            self.run_chain(served, now).await;
        }
        // Once run, when it is next due follows from this run, at the next turn.
        let due_at = due.filter(|_| !due_now);
        if self.events_due(served, now)
            && let Some((ids, injected)) = hooks::pending(served, &self.shared).await?
        {
            let cause = Cause::Webhook { events: ids.len() };
            // Records of the events that failed are in the run's error log, to retry from
            // there; events of a run that did not complete wait for the next look.
            if self.run_flow(served, cause, Some(injected)).await? == Ran::Completed {
                self.shared
                    .store
                    .events_done(&served.tenant, served.name(), &ids)
                    .await?;
                // There may be more than one run's worth.
                lock(&self.events_polled).remove(&key);
            }
        }
        lock(&self.resting).remove(&key);
        Ok(due_at)
    }

    /// When `served`'s last run started, from the store; remembered.
    async fn read_started(&self, served: &ServedFlow) -> Result<Option<SystemTime>, StoreError> {
        let last = self.last_started(served).await?;
        lock(&self.started).insert(served.key(), last);
        Ok(last)
    }

    /// Whether to look for `served`'s waiting events at `now`: a webhook flow whose endpoint
    /// accepted events since, or not looked at for [`EVENTS_POLL`].
    fn events_due(&self, served: &ServedFlow, now: SystemTime) -> bool {
        if served.webhook().is_none() {
            return false;
        }
        let key = served.key();
        let delivered = lock(&self.shared.delivered).remove(&key);
        let mut polled = lock(&self.events_polled);
        let stale = polled
            .get(&key)
            .is_none_or(|at| *at + EVENTS_POLL <= now || *at > now);
        if delivered || stale {
            polled.insert(key, now);
        }
        delivered || stale
    }

    /// When `served` may be tried again, if it is resting at `now`.
    fn resting_until(&self, served: &ServedFlow, now: SystemTime) -> Option<SystemTime> {
        let resting = lock(&self.resting);
        resting
            .get(&served.key())
            .map(|(_, until)| *until)
            .filter(|until| *until > now)
    }

    /// Tells of `served`'s failed turn and rests it, longer after each failure in a row; until
    /// when.
    fn defer(&self, served: &ServedFlow, error: &ServeError, now: SystemTime) -> SystemTime {
        let mut resting = lock(&self.resting);
        let failures = resting.get(&served.key()).map_or(0, |(n, _)| *n) + 1;
        let rest = FIRST_REST
            .saturating_mul(1 << (failures - 1).min(16))
            .min(LONGEST_REST);
        let retry_at = now + rest;
        resting.insert(served.key(), (failures, retry_at));
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
                    .get(&s.key())
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
        Ok(self
            .shared
            .store
            .flow_runs(&served.tenant, served.name(), None, 1)
            .await?
            .into_iter()
            .next()
            .map(|r| r.started_at))
    }

    /// Runs one flow, for its tenant, and tells of it; how it went.
    async fn run_flow(
        &self,
        served: &ServedFlow,
        cause: Cause,
        events: Option<BTreeMap<StepId, Vec<Value>>>,
    ) -> Result<Ran, ServeError> {
        let shared = &self.shared;
        // A deployed flow was planned without the server's environment.
        let deployed = self
            .deployed
            .as_ref()
            .is_some_and(|d| d.digests.contains_key(&served.key()));
        let options = RunOptions {
            tenant: served.tenant.clone(),
            environment: shared.options.environment.clone().filter(|_| !deployed),
            ..shared.options.clone()
        };
        let report = weft_engine::run_with_events(
            &served.flow,
            &served.plan,
            &shared.store,
            &shared.secrets,
            &options,
            events.unwrap_or_default(),
            &mut |_: &Progress<'_>| {},
        )
        .await;
        let report = match report {
            Ok(report) => report,
            // Never an overlapping run: the flow is tried again when it is next due, its
            // events at the next turn.
            Err(e @ RunError::FlowBusy { .. }) => {
                tracing::info!(tenant = %served.tenant, flow = %served.name(), "{e}; not started");
                return Ok(Ran::Busy);
            }
            Err(e) => return Err(e.into()),
        };
        // Its start is read again from the store when next needed.
        lock(&self.started).remove(&served.key());
        let ran = if report.status.completed() {
            Ran::Completed
        } else {
            Ran::Failed
        };
        (self.report)(&Event::RunEnded(ended(served, report, cause)));
        Ok(ran)
    }

    /// Runs the flows of `served`'s tenant chained after it whose every predecessor completed
    /// since their own last run, and theirs in turn. A chained flow whose turn fails rests like
    /// any other.
    async fn run_chain(&self, served: &ServedFlow, now: SystemTime) {
        let flows = self.shared.flows();
        let mut pending = vec![served.name().to_owned()];
        while let Some(done) = pending.pop() {
            let after = flows
                .iter()
                .filter(|s| s.tenant == served.tenant && s.follows(&done));
            for next in after {
                if self.resting_until(next, now).is_some() {
                    continue;
                }
                let cause = Cause::Chain {
                    after: done.clone(),
                };
                let ran = match self.ready(next).await {
                    Ok(true) => self.run_flow(next, cause, None).await,
                    Ok(false) => Ok(Ran::Busy),
                    Err(e) => Err(e.into()),
                };
                match ran {
                    Ok(Ran::Completed) => pending.push(next.name().to_owned()),
                    Ok(_) => {}
                    Err(e) => {
                        self.defer(next, &e, now);
                    }
                }
            }
        }
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

/// How a run the server started went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    /// Every step ran to its end (succeeded or partial).
    Completed,
    /// It failed or could not go on.
    Failed,
    /// Another run held the flow: not started.
    Busy,
}

/// Reads a deployed flow from the store and plans it; `None` if it is gone since it was listed.
async fn plan_stored(
    store: &Store,
    deployed: &Deployed,
    tenant: &str,
    name: &str,
) -> Result<Option<ServedFlow>, String> {
    let Some(stored) = store
        .flow_deployed(tenant, name)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let variables: BTreeMap<String, String> = serde_json::from_str(&stored.variables)
        .map_err(|e| format!("its stored variables are not a JSON object of strings: {e}"))?;
    let deployment = Deployment {
        tenant,
        source: &stored.source,
        variables: &variables,
    };
    plan_deployed(
        &deployment,
        &deployed.plugins,
        &deployed.runtime,
        deployed.policy,
    )
    .await
    .map(Some)
    .map_err(|e| e.to_string())
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
        tenant: served.tenant.clone(),
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
