//! One run per flow at a time.
//!
//! A run holds its flow through a lease in the store, taken before the run is recorded and
//! renewed while it runs. A second run of the flow (another `weft run`, `serve`, another
//! server) finds the lease held and does not start. A process that dies stops renewing: once
//! the lease lapses the next run takes it over, the dead run is marked `abandoned`, and the new
//! one resumes from the last committed checkpoint.

use std::time::Duration;

use weft_store::{LeaseOutcome, Store, StoreError};

use crate::run::RunError;

/// How long a lease lasts unless renewed; it is renewed every third of that.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A run's hold on its flow. Released when the run ends; if the run is dropped half way (an
/// error), the release happens in the background, and if the process dies the lease lapses.
pub(crate) struct FlowHold {
    store: Store,
    tenant: String,
    flow: String,
    run: String,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

/// Who holds a lease, for the message another run gets: `host:pid`.
fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

impl FlowHold {
    /// Takes `flow` for run `run`, or says which run holds it.
    pub(crate) async fn take(
        store: &Store,
        tenant: &str,
        flow: &str,
        run: &str,
        ttl: Duration,
    ) -> Result<FlowHold, RunError> {
        match store
            .lease_acquire(tenant, flow, run, &holder(), ttl)
            .await?
        {
            LeaseOutcome::Held(lease) => Err(RunError::FlowBusy {
                flow: flow.to_owned(),
                run: lease.run_id,
                holder: lease.holder,
                until: humantime::format_rfc3339_seconds(lease.expires_at).to_string(),
            }),
            LeaseOutcome::Acquired { abandoned } => {
                if let Some(dead) = abandoned {
                    tracing::warn!(
                        flow,
                        run = dead,
                        "the previous run's process died; marked it abandoned and resuming from its last checkpoint"
                    );
                }
                let renewer = tokio::spawn(renew(
                    store.clone(),
                    tenant.to_owned(),
                    flow.to_owned(),
                    run.to_owned(),
                    ttl,
                ));
                Ok(FlowHold {
                    store: store.clone(),
                    tenant: tenant.to_owned(),
                    flow: flow.to_owned(),
                    run: run.to_owned(),
                    renewer,
                    released: false,
                })
            }
        }
    }

    /// Gives the flow up: the run is over.
    pub(crate) async fn release(mut self) -> Result<(), StoreError> {
        self.renewer.abort();
        self.released = true;
        self.store
            .lease_release(&self.tenant, &self.flow, &self.run)
            .await
    }
}

impl Drop for FlowHold {
    fn drop(&mut self) {
        self.renewer.abort();
        // Outside a runtime (the process is ending) there is nothing to release with: the
        // lease lapses on its own.
        if let (false, Ok(runtime)) = (self.released, tokio::runtime::Handle::try_current()) {
            let (store, tenant, flow, run) = (
                self.store.clone(),
                self.tenant.clone(),
                self.flow.clone(),
                self.run.clone(),
            );
            runtime.spawn(async move {
                if let Err(e) = store.lease_release(&tenant, &flow, &run).await {
                    tracing::warn!(flow, run, error = %e, "could not release the flow's lease; it lapses on its own");
                }
            });
        }
    }
}

async fn renew(store: Store, tenant: String, flow: String, run: String, ttl: Duration) {
    let every = (ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        match store.lease_renew(&tenant, &flow, &run, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    flow,
                    run,
                    "the run lost its flow's lease (it was not renewed in time and another run took over)"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(flow, run, error = %e, "could not renew the flow's lease; trying again")
            }
        }
    }
}
