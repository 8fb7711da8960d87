//! Finding what is due at a turn: runs asked for through the API (planned again with their
//! variables when they have some), a flow's schedule and its waiting webhook events, and the
//! job chains a completed run makes ready.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use weft_engine::schedule;
use weft_store::{RunRequest, RunStatus, StoreError};

use super::runs::Due;
use super::{Cause, EVENTS_POLL, Event, ServeError, Server, WAKE_AT_MOST, lock};
use crate::ServedFlow;
use crate::deployed::DEPLOYED_POLL;
use crate::hooks;

impl Server {
    /// The run requests waiting, as due runs of the flows served (a request for a flow not
    /// served any more is dropped).
    pub(super) async fn requests(&mut self, now: SystemTime) -> Vec<Due> {
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
    pub(super) async fn turn(
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
    pub(super) fn wake_at(
        &self,
        served: &ServedFlow,
        due: Option<SystemTime>,
        now: SystemTime,
    ) -> SystemTime {
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

    async fn last_started(&self, served: &ServedFlow) -> Result<Option<SystemTime>, StoreError> {
        self.shared
            .store
            .flow_last_started(&served.tenant, served.name())
            .await
    }

    /// Whether every flow `next` runs after completed since `next` last started.
    pub(super) async fn ready(&self, next: &ServedFlow) -> Result<bool, StoreError> {
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
