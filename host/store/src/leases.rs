//! One run per flow at a time: a lease in the store, renewed by its holder, that a dead process
//! cannot hold for longer than its time to live.

use std::time::Duration;

use crate::dialect::{bind, execute, on_database};
use crate::{FlowLease, LeaseOutcome, Store, StoreError, millis_to_time, now_millis};

/// The error a run abandoned by its process gets.
fn abandoned_reason(holder: &str, lapsed_at_ms: i64) -> String {
    format!(
        "abandoned: the process running it ({holder}) stopped renewing its lease, which lapsed at {} ms since the epoch; the next run resumes from the last committed checkpoint",
        lapsed_at_ms
    )
}

/// A `flow_leases` row: run, holder, and when it lapses in milliseconds.
type LeaseRow = (String, String, i64);

fn flow_lease((run_id, holder, expires_at): LeaseRow) -> FlowLease {
    FlowLease {
        run_id,
        holder,
        expires_at: millis_to_time(expires_at),
    }
}

impl Store {
    /// Takes flow `flow` for run `run_id` for `ttl`, unless another run holds an unexpired
    /// lease. A lapsed lease is taken over, and the run that held it, if still `running`, is
    /// marked `abandoned` with when and why.
    pub async fn lease_acquire(
        &self,
        tenant: &str,
        flow: &str,
        run_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let dialect = self.pool.dialect();
        let select = format!(
            "SELECT run_id, holder, expires_at FROM flow_leases WHERE tenant = $1 AND flow = $2{}",
            dialect.lock_selected
        );
        let select = select.as_str();
        on_database!(self, format!("take the lease of flow {flow}"), |pool| {
            let mut tx = pool.begin_with(dialect.begin_write).await?;
            let now = now_millis();
            let current: Option<LeaseRow> = bind!(sqlx::query_as(select), tenant, flow)
                .fetch_optional(&mut *tx)
                .await?;
            let mut abandoned = None;
            if let Some((lease_run, lease_holder, expires_at)) = current {
                if expires_at > now && lease_run != run_id {
                    let held = (lease_run, lease_holder, expires_at);
                    return Ok(LeaseOutcome::Held(flow_lease(held)));
                }
                let sql = "UPDATE runs SET status = 'abandoned', finished_at = $1, error = $2
                           WHERE id = $3 AND status = 'running'";
                let reason = abandoned_reason(&lease_holder, expires_at);
                if execute!(&mut *tx, sql, expires_at, reason, &lease_run)? > 0 {
                    abandoned = Some(lease_run);
                }
            }
            // Conditional on the lease having lapsed, so two takers racing on a missing row
            // cannot both win: the second finds the first's fresh lease and changes nothing.
            let sql = "INSERT INTO flow_leases (tenant, flow, run_id, holder, expires_at)
                       VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT (tenant, flow) DO UPDATE SET run_id = excluded.run_id,
                         holder = excluded.holder, expires_at = excluded.expires_at
                       WHERE flow_leases.expires_at <= $6
                          OR flow_leases.run_id = excluded.run_id";
            let expires_at = now + millis_of(ttl);
            if execute!(&mut *tx, sql, tenant, flow, run_id, holder, expires_at, now)? == 0 {
                let held = bind!(sqlx::query_as(select), tenant, flow)
                    .fetch_one(&mut *tx)
                    .await?;
                return Ok(LeaseOutcome::Held(flow_lease(held)));
            }
            tx.commit().await?;
            Ok(LeaseOutcome::Acquired { abandoned })
        })
    }

    /// Extends run `run_id`'s lease on `flow` to `ttl` from now; `false` if it no longer holds it.
    pub async fn lease_renew(
        &self,
        tenant: &str,
        flow: &str,
        run_id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let renewed = on_database!(self, format!("renew the lease of flow {flow}"), |pool| {
            let sql = "UPDATE flow_leases SET expires_at = $1
                       WHERE tenant = $2 AND flow = $3 AND run_id = $4";
            let expires_at = now_millis() + millis_of(ttl);
            execute!(pool, sql, expires_at, tenant, flow, run_id)
        })?;
        Ok(renewed > 0)
    }

    /// Gives the flow up, if run `run_id` holds it.
    pub async fn lease_release(
        &self,
        tenant: &str,
        flow: &str,
        run_id: &str,
    ) -> Result<(), StoreError> {
        on_database!(self, format!("release the lease of flow {flow}"), |pool| {
            let sql = "DELETE FROM flow_leases WHERE tenant = $1 AND flow = $2 AND run_id = $3";
            execute!(pool, sql, tenant, flow, run_id)
        })?;
        Ok(())
    }

    /// Marks `abandoned` every `running` run of the tenant that no live lease holds (its process
    /// died, or an older weft left it); how many there were.
    pub async fn runs_reap(&self, tenant: &str) -> Result<u64, StoreError> {
        on_database!(self, "mark runs whose process died as abandoned", |pool| {
            let sql = "UPDATE runs SET status = 'abandoned', finished_at = $1,
                         error = 'abandoned: no live process holds its lease (the process running it died); the next run resumes from the last committed checkpoint'
                       WHERE tenant = $2 AND status = 'running'
                         AND NOT EXISTS (SELECT 1 FROM flow_leases l
                                         WHERE l.run_id = runs.id AND l.expires_at > $1)";
            execute!(pool, sql, now_millis(), tenant)
        })
    }
}

/// A time to live in milliseconds, as lease expiries are kept.
fn millis_of(ttl: Duration) -> i64 {
    ttl.as_millis() as i64
}
