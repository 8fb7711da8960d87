//! Runs of flows: their steps with counts and durations, the cursors reads resume from, and the
//! error log of records that failed. Also the other records the store returns (datasets, webhook
//! events and subscriptions, flow leases), whose operations are in their own modules.

use std::time::SystemTime;

use crate::dialect::{bind, execute, on_database};

/// Error-log rows in one statement, at most (six values each, within SQLite's bind limit).
const ERRORS_CHUNK: usize = 1_000;
use crate::{RunStatus, StepStatus, Store, StoreError, millis, millis_to_time, now_millis};

/// One run of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The run's id, as `weft runs show` takes it.
    pub id: String,
    /// The tenant the flow belongs to.
    pub tenant: String,
    /// The flow's name.
    pub flow: String,
    /// The environment the run used (`--env`), if any.
    pub environment: Option<String>,
    /// How it stands.
    pub status: RunStatus,
    /// When the run started.
    pub started_at: SystemTime,
    /// When it ended; `None` while running (or if the process died).
    pub finished_at: Option<SystemTime>,
    /// Why it failed.
    pub error: Option<String>,
    /// What it used (all zero while it runs, and for runs an older weft recorded).
    pub usage: RunUsage,
}

/// What one run used, or (from [`Store::usage_sum`](crate::Store::usage_sum)) many runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunUsage {
    /// Plugin CPU time, in milliseconds.
    pub cpu_ms: u64,
    /// Requests connections sent for plugins.
    pub requests: u64,
    /// Request bodies sent, in bytes.
    pub bytes_out: u64,
    /// Response bodies received, in bytes.
    pub bytes_in: u64,
    /// The most memory one plugin instance held, in bytes (for many runs: the most of any).
    pub peak_memory: u64,
    /// Records its read steps read.
    pub records_read: u64,
    /// Records its write steps wrote.
    pub records_written: u64,
    /// Records sent to its error log.
    pub records_failed: u64,
}

/// Which of a tenant's runs [`Store::runs_find`](crate::Store::runs_find) returns: each field
/// that is set narrows the search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFilter<'a> {
    /// Runs of this flow.
    pub flow: Option<&'a str>,
    /// Runs that stand so.
    pub status: Option<RunStatus>,
    /// Runs started at or after this.
    pub since: Option<SystemTime>,
    /// Runs started before this.
    pub before: Option<SystemTime>,
    /// At most this many, the newest.
    pub limit: u32,
}

/// One step of a run, with what went through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRunRecord {
    /// The step's id in its flow.
    pub step: String,
    /// How it stands.
    pub status: StepStatus,
    /// Pages (batches) the step handled.
    pub pages: u64,
    /// Records the step received (for reads: records read).
    pub records_in: u64,
    /// Records the step produced or wrote.
    pub records_out: u64,
    /// Records that went to the error log.
    pub failed: u64,
    /// When the step started.
    pub started_at: SystemTime,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One record that failed, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEntry {
    /// Order within the run's error log, from 1.
    pub seq: u64,
    /// The step where it failed.
    pub step: String,
    /// The record as JSON, when the failure concerns one.
    pub record: Option<String>,
    /// What went wrong, upstream's words included.
    pub error: String,
    /// When it was logged.
    pub created_at: SystemTime,
}

/// What an upsert did to one dataset record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// The key was new.
    Created,
    /// The key existed with other content.
    Updated,
    /// The key existed with the same content.
    Unchanged,
}

/// A dataset and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    /// The dataset's name.
    pub name: String,
    /// How many records it holds.
    pub records: u64,
    /// When a record last changed.
    pub updated_at: SystemTime,
}

/// A flow's webhook registration with its vendor, as `weft serve` made it: kept so that a
/// restart does not register again, and so that it can be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// The flow whose endpoint is registered.
    pub flow: String,
    /// The flow's webhook connection, whose plugin registered it.
    pub connection: String,
    /// The vendor's id for it, which unsubscribing needs.
    pub subscription_id: String,
    /// Where the vendor delivers.
    pub callback_url: String,
    /// The vendor event names subscribed to; every event the connector knows when empty.
    pub events: Vec<String>,
    /// When the vendor drops it, if it does.
    pub expires_at: Option<SystemTime>,
    /// When it was made.
    pub created_at: SystemTime,
}

/// A webhook event as the store keeps it between its arrival and its processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The vendor's event id; a second delivery with the same id is dropped.
    pub event_id: String,
    /// Arrival order within the flow.
    pub seq: u64,
    /// The stream the event's record belongs to.
    pub stream: String,
    /// What happened, in the vendor's words.
    pub action: String,
    /// The record, as JSON.
    pub record: String,
}

/// Who holds a flow: the one run of it that may be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLease {
    /// The run holding the flow.
    pub run_id: String,
    /// The process running it (`host:pid`), for messages.
    pub holder: String,
    /// When the lease lapses unless its holder renews it.
    pub expires_at: SystemTime,
}

/// What [`Store::lease_acquire`](crate::Store::lease_acquire) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The run holds the flow now. If a lapsed lease was taken over, `abandoned` names the run
    /// that held it, now marked `abandoned`.
    Acquired {
        /// The run whose holder died.
        abandoned: Option<String>,
    },
    /// Another run holds the flow.
    Held(FlowLease),
}

/// A `runs` row as [`RUN_COLUMNS`] selects it: the run, then what it used.
type RunRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// The usage columns, as [`USAGE_COLUMNS`] or [`USAGE_SUMS`] select them.
type UsageRow = (i64, i64, i64, i64, i64, i64, i64, i64);

const RUN_COLUMNS: &str = "id, tenant, flow, environment, status, started_at, finished_at, error, \
    COALESCE(cpu_ms, 0), COALESCE(requests, 0), COALESCE(bytes_out, 0), COALESCE(bytes_in, 0), \
    COALESCE(peak_memory, 0), COALESCE(records_read, 0), COALESCE(records_written, 0), \
    COALESCE(records_failed, 0)";

/// The usage columns summed over runs (the peak: the most of any); cast, as PostgreSQL sums
/// BIGINTs into NUMERIC.
const USAGE_SUMS: &str = "CAST(COALESCE(SUM(cpu_ms), 0) AS BIGINT), \
    CAST(COALESCE(SUM(requests), 0) AS BIGINT), CAST(COALESCE(SUM(bytes_out), 0) AS BIGINT), \
    CAST(COALESCE(SUM(bytes_in), 0) AS BIGINT), CAST(COALESCE(MAX(peak_memory), 0) AS BIGINT), \
    CAST(COALESCE(SUM(records_read), 0) AS BIGINT), \
    CAST(COALESCE(SUM(records_written), 0) AS BIGINT), \
    CAST(COALESCE(SUM(records_failed), 0) AS BIGINT)";

fn usage_record(row: UsageRow) -> RunUsage {
    let (cpu_ms, requests, bytes_out, bytes_in, peak_memory, read, written, failed) = row;
    let n = |v: i64| v.max(0) as u64;
    RunUsage {
        cpu_ms: n(cpu_ms),
        requests: n(requests),
        bytes_out: n(bytes_out),
        bytes_in: n(bytes_in),
        peak_memory: n(peak_memory),
        records_read: n(read),
        records_written: n(written),
        records_failed: n(failed),
    }
}

fn run_record(row: RunRow) -> Result<RunRecord, StoreError> {
    let (id, tenant, flow, environment, status, started_at, finished_at, error) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let usage = (row.8, row.9, row.10, row.11, row.12, row.13, row.14, row.15);
    Ok(RunRecord {
        id,
        tenant,
        flow,
        environment,
        status: status.parse()?,
        started_at: millis_to_time(started_at),
        finished_at: finished_at.map(millis_to_time),
        error,
        usage: usage_record(usage),
    })
}

/// A `step_runs` row as [`STEP_COLUMNS`] selects it.
type StepRow = (
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

const STEP_COLUMNS: &str =
    "step, status, pages, records_in, records_out, failed, started_at, finished_at, error";

fn step_record(
    (step, status, pages, records_in, records_out, failed, started_at, finished_at, error): StepRow,
) -> Result<StepRunRecord, StoreError> {
    Ok(StepRunRecord {
        step,
        status: status.parse()?,
        pages: pages as u64,
        records_in: records_in as u64,
        records_out: records_out as u64,
        failed: failed as u64,
        started_at: millis_to_time(started_at),
        finished_at: finished_at.map(millis_to_time),
        error,
    })
}

/// Runs, steps, cursors and the error log.
impl Store {
    /// Records the start of a run.
    pub async fn run_start(
        &self,
        id: &str,
        tenant: &str,
        flow: &str,
        environment: Option<&str>,
    ) -> Result<(), StoreError> {
        on_database!(self, format!("record the start of run {id}"), |pool| {
            let sql = "INSERT INTO runs (id, tenant, flow, environment, status, started_at)
                       VALUES ($1, $2, $3, $4, $5, $6)";
            let running = RunStatus::Running.as_str();
            execute!(
                pool,
                sql,
                id,
                tenant,
                flow,
                environment,
                running,
                now_millis()
            )
        })?;
        Ok(())
    }

    /// Records a run that was not started because its tenant was over a quota: `refused`,
    /// with why.
    pub async fn run_refused(
        &self,
        id: &str,
        tenant: &str,
        flow: &str,
        why: &str,
    ) -> Result<(), StoreError> {
        on_database!(self, format!("record the refused run {id}"), |pool| {
            let sql = "INSERT INTO runs (id, tenant, flow, status, started_at, finished_at, error)
                       VALUES ($1, $2, $3, $4, $5, $5, $6)";
            let refused = RunStatus::Refused.as_str();
            execute!(pool, sql, id, tenant, flow, refused, now_millis(), why)
        })?;
        Ok(())
    }

    /// Asks run `id` of `tenant` to stop after its current page, if it is running (the process
    /// carrying it out learns of it from [`Store::runs_cancelling`]). How the run stands, or
    /// `None` when the tenant has no such run.
    pub async fn run_cancel(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<RunStatus>, StoreError> {
        let running = RunStatus::Running.as_str();
        let status: Option<String> = on_database!(self, format!("cancel run {id}"), |pool| {
            let sql = "UPDATE runs SET cancel_requested_at = $1
                       WHERE tenant = $2 AND id = $3 AND status = $4";
            execute!(pool, sql, now_millis(), tenant, id, running)?;
            let sql = "SELECT status FROM runs WHERE tenant = $1 AND id = $2";
            bind!(sqlx::query_scalar(sql), tenant, id)
                .fetch_optional(pool)
                .await
        })?;
        status.map(|s| s.parse()).transpose()
    }

    /// Which of the runs `ids` were asked to stop and are still running. One query.
    pub async fn runs_cancelling(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = (0..ids.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT id FROM runs
             WHERE status = $1 AND cancel_requested_at IS NOT NULL AND id IN ({list})"
        );
        let sql = sql.as_str();
        let running = RunStatus::Running.as_str();
        on_database!(self, "find runs asked to stop", |pool| {
            let mut query = sqlx::query_scalar(sql).bind(running);
            for id in ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })
    }

    /// When the flow's last run that was started started (refused ones were not).
    pub async fn flow_last_started(
        &self,
        tenant: &str,
        flow: &str,
    ) -> Result<Option<SystemTime>, StoreError> {
        let refused = RunStatus::Refused.as_str();
        let last: Option<i64> = on_database!(
            self,
            format!("read when flow {flow} last started"),
            |pool| {
                let sql = "SELECT MAX(started_at) FROM runs
                           WHERE tenant = $1 AND flow = $2 AND status <> $3";
                bind!(sqlx::query_scalar(sql), tenant, flow, refused)
                    .fetch_one(pool)
                    .await
            }
        )?;
        Ok(last.map(millis_to_time))
    }

    /// Records how a run ended.
    pub async fn run_finish(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let status = status.as_str();
        on_database!(self, format!("record the end of run {id}"), |pool| {
            let sql = "UPDATE runs SET status = $1, finished_at = $2, error = $3 WHERE id = $4";
            execute!(pool, sql, status, now_millis(), error, id)
        })?;
        Ok(())
    }

    /// Records what a run used.
    pub async fn run_used(&self, id: &str, usage: &RunUsage) -> Result<(), StoreError> {
        let u = usage;
        let values = [
            u.cpu_ms,
            u.requests,
            u.bytes_out,
            u.bytes_in,
            u.peak_memory,
            u.records_read,
            u.records_written,
            u.records_failed,
        ]
        .map(|v| v.min(i64::MAX as u64) as i64);
        on_database!(self, format!("record what run {id} used"), |pool| {
            let sql = "UPDATE runs SET cpu_ms = $1, requests = $2, bytes_out = $3, bytes_in = $4,
                           peak_memory = $5, records_read = $6, records_written = $7,
                           records_failed = $8
                       WHERE id = $9";
            let [a, b, c, d, e, f, g, h] = values;
            execute!(pool, sql, a, b, c, d, e, f, g, h, id)
        })?;
        Ok(())
    }

    /// What a tenant's runs started in `[since, until)` used, summed; and how many there were.
    pub async fn usage_sum(
        &self,
        tenant: &str,
        since: SystemTime,
        until: SystemTime,
    ) -> Result<(u64, RunUsage), StoreError> {
        let sql = format!(
            "SELECT COUNT(*), {USAGE_SUMS} FROM runs
             WHERE tenant = $1 AND started_at >= $2 AND started_at < $3"
        );
        let sql = sql.as_str();
        let (since, until) = (millis(since), millis(until));
        let (runs, usage): (i64, UsageRow) =
            on_database!(self, format!("sum what tenant {tenant:?} used"), |pool| {
                let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64) =
                    bind!(sqlx::query_as(sql), tenant, since, until)
                        .fetch_one(pool)
                        .await?;
                Ok((
                    row.0,
                    (row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8),
                ))
            })?;
        Ok((runs.max(0) as u64, usage_record(usage)))
    }

    /// Writes the current state of several steps of a run (insert or replace) in one
    /// statement: a run saves the counters of every step a page went through at once.
    pub async fn steps_save(
        &self,
        run_id: &str,
        steps: &[StepRunRecord],
    ) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
        let action = || format!("save steps {} of run {run_id}", names.join(", "));
        on_database!(self, action(), |pool| {
            let mut upsert = sqlx::QueryBuilder::new(
                "INSERT INTO step_runs (run_id, step, status, pages, records_in, records_out,
                                        failed, started_at, finished_at, error) ",
            );
            upsert.push_values(steps, |mut row, step| {
                let counts = [step.pages, step.records_in, step.records_out, step.failed];
                let [pages, records_in, records_out, failed] = counts.map(|n| n as i64);
                row.push_bind(run_id).push_bind(&step.step);
                row.push_bind(step.status.as_str()).push_bind(pages);
                row.push_bind(records_in)
                    .push_bind(records_out)
                    .push_bind(failed);
                row.push_bind(millis(step.started_at));
                row.push_bind(step.finished_at.map(millis))
                    .push_bind(&step.error);
            });
            upsert.push(
                " ON CONFLICT (run_id, step) DO UPDATE SET status = excluded.status,
                   pages = excluded.pages, records_in = excluded.records_in,
                   records_out = excluded.records_out, failed = excluded.failed,
                   finished_at = excluded.finished_at, error = excluded.error",
            );
            upsert.build().execute(pool).await?;
            Ok(())
        })
    }

    /// The most recent runs of a tenant, newest first.
    pub async fn runs_list(&self, tenant: &str, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = $1
             ORDER BY started_at DESC, id DESC LIMIT $2"
        );
        let sql = sql.as_str();
        let rows: Vec<RunRow> = on_database!(self, "list runs", |pool| {
            let query = sqlx::query_as(sql);
            bind!(query, tenant, i64::from(limit)).fetch_all(pool).await
        })?;
        rows.into_iter().map(run_record).collect()
    }

    /// The most recent runs of one flow, newest first; with `status`, only runs that ended so.
    pub async fn flow_runs(
        &self,
        tenant: &str,
        flow: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let status = status.map(RunStatus::as_str);
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE tenant = $1 AND flow = $2 AND ($3 IS NULL OR status = $3)
             ORDER BY started_at DESC, id DESC LIMIT $4"
        );
        let sql = sql.as_str();
        let rows: Vec<RunRow> = on_database!(self, format!("list runs of flow {flow}"), |pool| {
            bind!(sqlx::query_as(sql), tenant, flow, status, i64::from(limit))
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(run_record).collect()
    }

    /// A tenant's runs that pass `filter`, newest first.
    pub async fn runs_find(
        &self,
        tenant: &str,
        filter: &RunFilter<'_>,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let status = filter.status.map(RunStatus::as_str);
        let since = filter.since.map(millis);
        let before = filter.before.map(millis);
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE tenant = $1 AND ($2 IS NULL OR flow = $2) AND ($3 IS NULL OR status = $3)
               AND ($4 IS NULL OR started_at >= $4) AND ($5 IS NULL OR started_at < $5)
             ORDER BY started_at DESC, id DESC LIMIT $6"
        );
        let sql = sql.as_str();
        let limit = i64::from(filter.limit);
        let rows: Vec<RunRow> = on_database!(self, "find runs", |pool| {
            bind!(
                sqlx::query_as(sql),
                tenant,
                filter.flow,
                status,
                since,
                before,
                limit
            )
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(run_record).collect()
    }

    /// One run and its steps.
    pub async fn run_get(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(RunRecord, Vec<StepRunRecord>)>, StoreError> {
        let run_sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE tenant = $1 AND id = $2");
        let steps_sql = format!(
            "SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = $1 ORDER BY started_at, step"
        );
        let (run_sql, steps_sql) = (run_sql.as_str(), steps_sql.as_str());
        let found: Option<(RunRow, Vec<StepRow>)> =
            on_database!(self, format!("read run {id}"), |pool| {
                let run = bind!(sqlx::query_as(run_sql), tenant, id)
                    .fetch_optional(pool)
                    .await?;
                let Some(run) = run else { return Ok(None) };
                let steps = sqlx::query_as(steps_sql).bind(id).fetch_all(pool).await?;
                Ok(Some((run, steps)))
            })?;
        let Some((run, steps)) = found else {
            return Ok(None);
        };
        let steps = steps
            .into_iter()
            .map(step_record)
            .collect::<Result<_, _>>()?;
        Ok(Some((run_record(run)?, steps)))
    }

    /// Adds a failed record to a run's error log.
    pub async fn error_append(
        &self,
        run_id: &str,
        step: &str,
        record: Option<&str>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.errors_append(run_id, step, &[(record, error)]).await
    }

    /// Adds the failed records of one step's batch to a run's error log, in their order after
    /// what it holds: one transaction, a statement per thousand records, not one per record.
    /// A run's log is written only by the process holding the run.
    pub async fn errors_append(
        &self,
        run_id: &str,
        step: &str,
        failures: &[(Option<&str>, &str)],
    ) -> Result<(), StoreError> {
        if failures.is_empty() {
            return Ok(());
        }
        let begin_write = self.pool.dialect().begin_write;
        let action = || format!("log {} failed record(s) of run {run_id}", failures.len());
        on_database!(self, action(), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            let (last,): (i64,) =
                sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM run_errors WHERE run_id = $1")
                    .bind(run_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let now = now_millis();
            let numbered = failures.iter().zip(last + 1..);
            let numbered: Vec<_> = numbered.collect();
            for chunk in numbered.chunks(ERRORS_CHUNK) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO run_errors (run_id, seq, step, record, error, created_at) ",
                );
                insert.push_values(chunk, |mut row, ((record, error), seq)| {
                    row.push_bind(run_id).push_bind(*seq).push_bind(step);
                    row.push_bind(*record).push_bind(*error).push_bind(now);
                });
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// A run's error log, in the order the failures happened.
    pub async fn run_errors(&self, run_id: &str) -> Result<Vec<ErrorEntry>, StoreError> {
        let action = || format!("read the error log of run {run_id}");
        let rows: Vec<(i64, String, Option<String>, String, i64)> =
            on_database!(self, action(), |pool| {
                let sql = "SELECT seq, step, record, error, created_at FROM run_errors
                           WHERE run_id = $1 ORDER BY seq";
                sqlx::query_as(sql).bind(run_id).fetch_all(pool).await
            })?;
        Ok(rows
            .into_iter()
            .map(|(seq, step, record, error, created_at)| ErrorEntry {
                seq: seq as u64,
                step,
                record,
                error,
                created_at: millis_to_time(created_at),
            })
            .collect())
    }

    /// Where a read step of a flow resumes from.
    pub async fn cursor_get(
        &self,
        tenant: &str,
        flow: &str,
        step: &str,
    ) -> Result<Option<String>, StoreError> {
        on_database!(self, format!("read the cursor of {flow}/{step}"), |pool| {
            let sql = "SELECT cursor FROM cursors WHERE tenant = $1 AND flow = $2 AND step = $3";
            bind!(sqlx::query_scalar(sql), tenant, flow, step)
                .fetch_optional(pool)
                .await
        })
    }

    /// Commits a read step's cursor. Callers do this only after every write depending on the
    /// pages before it was acknowledged.
    pub async fn cursor_set(
        &self,
        tenant: &str,
        flow: &str,
        step: &str,
        cursor: &str,
    ) -> Result<(), StoreError> {
        on_database!(
            self,
            format!("commit the cursor of {flow}/{step}"),
            |pool| {
                let sql = "INSERT INTO cursors (tenant, flow, step, cursor, updated_at)
                       VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT (tenant, flow, step)
                       DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at";
                execute!(pool, sql, tenant, flow, step, cursor, now_millis())
            }
        )?;
        Ok(())
    }
}
