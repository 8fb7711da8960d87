//! Flows tenants deployed through the API, kept in step with the store: new and changed ones
//! planned, removed and disabled ones dropped, with the run requests waiting.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use weft_engine::PluginDirectory;
use weft_runtime::Runtime;
use weft_store::{RunRequest, Store};

use crate::flows::{Deployment, FlowKey, TenantPolicy, plan_deployed};
use crate::server::Shared;
use crate::{ServedFlow, TenantPlugins};

/// How often the store is asked whether deployed flows changed (one row, the flows themselves
/// only when it says so) and for run requests, when the API in this process announced none
/// (another process's API may have taken them).
pub(crate) const DEPLOYED_POLL: Duration = Duration::from_secs(5);

pub(crate) struct Deployed {
    pub plugins: PluginDirectory,
    /// Tenants' own plugins, found before the shared ones.
    pub tenant_plugins: TenantPlugins,
    pub runtime: Runtime,
    pub policy: TenantPolicy,
    /// Notified by the API when a flow is deployed, changed or removed, or a run is asked for.
    pub changed: Arc<Notify>,
    /// The digest of each deployed flow served, or that failed to plan (not tried again until
    /// it changes).
    pub digests: BTreeMap<FlowKey, String>,
    /// When the store was last asked.
    pub looked: Option<SystemTime>,
    /// The store's count of changes to what is served when the flows were last read: they
    /// are read again only when it moved.
    generation: Option<i64>,
}

/// What a look at the store found.
#[derive(Default)]
pub(crate) struct Synced {
    /// Run requests waiting.
    pub requests: Vec<RunRequest>,
    /// Deployed flows that do not plan, with why.
    pub failures: Vec<(FlowKey, String)>,
}

impl Deployed {
    pub fn new(
        plugins: PluginDirectory,
        tenant_plugins: TenantPlugins,
        runtime: Runtime,
        policy: TenantPolicy,
        changed: Arc<Notify>,
    ) -> Self {
        Deployed {
            plugins,
            tenant_plugins,
            runtime,
            policy,
            changed,
            digests: BTreeMap::new(),
            looked: None,
            generation: None,
        }
    }

    /// Whether `key` is a deployed flow (not one of the flows directory's).
    pub fn has(&self, key: &FlowKey) -> bool {
        self.digests.contains_key(key)
    }

    /// Brings the flows `shared` serves in step with the store, when the API announced a
    /// change or [`DEPLOYED_POLL`] passed (nothing otherwise). A flow that no longer plans is
    /// left out until it changes; the store failing leaves the flows as they are, for the next
    /// look.
    pub async fn sync(&mut self, shared: &Shared, now: SystemTime) -> Synced {
        // A change announced since the last look (the permit `notify_one` leaves).
        let announced = tokio::time::timeout(Duration::ZERO, self.changed.notified())
            .await
            .is_ok();
        if !announced
            && self
                .looked
                .is_some_and(|at| at <= now && now < at + DEPLOYED_POLL)
        {
            return Synced::default();
        }
        self.looked = Some(now);
        let store = &shared.store;
        // The generation first: a change made after it was read moves it again.
        let (generation, requests) = match tokio::try_join!(
            store.serving_generation(),
            store.run_requests()
        ) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "reading the deployed flows failed; trying again later");
                return Synced::default();
            }
        };
        if self.generation == Some(generation) {
            return Synced {
                requests,
                failures: Vec::new(),
            };
        }
        let found = tokio::try_join!(store.flows_served(), store.plugin_fingerprints());
        let (versions, prints) = match found {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "reading the deployed flows failed; trying again later");
                return Synced::default();
            }
        };
        self.generation = Some(generation);
        let current = shared.flows();
        let served: HashMap<FlowKey, &Arc<ServedFlow>> =
            current.iter().map(|s| (s.key().clone(), s)).collect();
        // The flows directory's flows stay; deployed ones are kept, replaced or dropped.
        let mut flows: Vec<Arc<ServedFlow>> = current
            .iter()
            .filter(|s| !self.has(s.key()))
            .cloned()
            .collect();
        let from_directory: HashSet<FlowKey> = flows.iter().map(|s| s.key().clone()).collect();
        let mut digests = BTreeMap::new();
        let mut failures = Vec::new();
        let mut changed = false;
        for mut version in versions {
            let key = (version.tenant.clone(), version.name.clone());
            // A flow is planned again when its tenant's own plugins change, too.
            if let Some(print) = prints.get(&version.tenant) {
                version.digest.push('/');
                version.digest.push_str(print);
            }
            if from_directory.contains(&key) {
                continue;
            }
            if self.digests.get(&key) == Some(&version.digest) {
                if let Some(kept) = served.get(&key) {
                    flows.push(Arc::clone(kept));
                }
                digests.insert(key, version.digest);
                continue;
            }
            changed = true;
            let own = prints.contains_key(&version.tenant);
            match self.plan(store, &version.tenant, &version.name, own).await {
                Ok(Some(served)) => flows.push(Arc::new(served)),
                Ok(None) => continue,
                Err(error) => failures.push((key.clone(), error)),
            }
            digests.insert(key, version.digest);
        }
        // The same flows as before keep the same list: the loop follows only changes.
        if changed || digests.len() != self.digests.len() {
            shared.set_flows(flows);
        }
        self.digests = digests;
        Synced { requests, failures }
    }

    /// Reads a deployed flow from the store and plans it (with the tenant's `own` plugins, if
    /// it has any); `None` if it is gone since it was listed.
    async fn plan(
        &self,
        store: &Store,
        tenant: &str,
        name: &str,
        own: bool,
    ) -> Result<Option<ServedFlow>, String> {
        self.plan_with(store, tenant, name, &BTreeMap::new(), own)
            .await
    }

    /// [`Deployed::plan`] with `over` over the variables it was deployed with: a run asked for
    /// with variables of its own.
    pub async fn plan_with(
        &self,
        store: &Store,
        tenant: &str,
        name: &str,
        over: &BTreeMap<String, String>,
        own: bool,
    ) -> Result<Option<ServedFlow>, String> {
        let Some(stored) = store
            .flow_deployed(tenant, name)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        // A tenant without plugins of its own (most) costs no look in the store.
        let plugins = match own {
            true => self.tenant_plugins.directory(&self.plugins, tenant).await?,
            false => self.plugins.clone(),
        };
        let mut variables: BTreeMap<String, String> = serde_json::from_str(&stored.variables)
            .map_err(|e| format!("its stored variables are not a JSON object of strings: {e}"))?;
        variables.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
        let deployment = Deployment {
            tenant,
            source: &stored.source,
            variables: &variables,
        };
        let served = plan_deployed(&deployment, &plugins, &self.runtime, self.policy)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(match stored.endpoint {
            Some(endpoint) => served.with_endpoint(endpoint),
            None => served,
        }))
    }
}
