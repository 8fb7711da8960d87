//! The SQLite implementation of the store: all of its SQL lives here.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, SqliteConnection};

use crate::migrations::{MIGRATIONS, latest_version};
use crate::runs::{UPSERT_CHUNK, abandoned_reason, upsert_plan};
use crate::{
    DatasetInfo, ErrorEntry, FlowLease, LeaseOutcome, RunRecord, SecretEntry, StateScope,
    StepRunRecord, StoreError, StoredEvent, Upserted, WebhookSubscription, millis_to_time,
    now_millis,
};
use sqlx::Row as _;

/// How long a writer waits for another writer (possibly another weft process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub(crate) struct SqliteBackend {
    pool: SqlitePool,
}

fn query_err(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let action = action.into();
    move |source| StoreError::Query { action, source }
}

/// Every write transaction takes the write lock up front: a deferred transaction that reads and
/// then writes cannot wait for a concurrent writer (SQLite answers BUSY_SNAPSHOT at once), where
/// an immediate one waits under the busy timeout.
const WRITE_TRANSACTION: &str = "BEGIN IMMEDIATE";

/// Creates `dir` (and its parents) readable by its owner only, or makes an existing one so
/// (mode 0700): a data directory holds the store, the master key and compiled plugins.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// The database holds sealed secrets but also runs, datasets and plugin state that may carry
/// personal data: the file and its WAL and shared-memory files are the owner's only (SQLite
/// gives the latter two the database file's mode). Files an older version created 0644 are
/// fixed here.
fn private_files(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            match std::fs::metadata(&file) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl SqliteBackend {
    pub(crate) async fn open_file(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            private_dir(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        private_files(path).map_err(|source| StoreError::CreateDir {
            path: path.to_path_buf(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes; only an OS crash can lose the
            // last transactions, which at-least-once delivery tolerates.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: path.display().to_string(),
                source,
            })?;
        let backend = Self { pool };
        backend.migrate().await?;
        Ok(backend)
    }

    pub(crate) async fn open_in_memory() -> Result<Self, StoreError> {
        let location = "sqlite::memory:";
        let options = SqliteConnectOptions::from_str(location)
            .map_err(|source| StoreError::Open {
                location: location.to_owned(),
                source,
            })?
            .foreign_keys(true);
        // Every SQLite connection to ":memory:" is its own database, so the pool holds exactly
        // one connection and never lets it go.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: location.to_owned(),
                source,
            })?;
        let backend = Self { pool };
        backend.migrate().await?;
        Ok(backend)
    }

    /// Applies pending migrations in one `BEGIN IMMEDIATE` transaction, so two processes opening
    /// the same file at once cannot both apply the same migration.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(query_err("acquire a connection to migrate"))?;
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(query_err("start the migration transaction"))?;
        match apply_pending(&mut conn).await {
            Ok(()) => sqlx::raw_sql("COMMIT")
                .execute(&mut *conn)
                .await
                .map(|_| ())
                .map_err(query_err("commit migrations")),
            Err(e) => {
                if let Err(rollback) = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
                    tracing::warn!(error = %rollback, "rolling back a failed migration failed");
                    // The connection may be mid-transaction; do not return it to the pool.
                    let _ = conn.detach().close().await;
                }
                Err(e)
            }
        }
    }

    pub(crate) async fn schema_version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("read the schema version"))
    }

    pub(crate) async fn state_get(
        &self,
        scope: &StateScope,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT value FROM plugin_state
             WHERE tenant = ? AND plugin = ? AND connection = ? AND flow = ? AND key = ?",
        )
        .bind(&scope.tenant)
        .bind(&scope.plugin)
        .bind(&scope.connection)
        .bind(&scope.flow)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err(format!("read state key {key:?} ({scope})")))
    }

    /// Inserts or replaces the value in one statement, which is atomic in SQLite: the row is
    /// written only if the key already exists or the scope is under `max_keys`. Returns whether
    /// it was written.
    pub(crate) async fn state_set(
        &self,
        scope: &StateScope,
        key: &str,
        value: &[u8],
        max_keys: u64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO plugin_state (tenant, plugin, connection, flow, key, value, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
             WHERE EXISTS (SELECT 1 FROM plugin_state
                           WHERE tenant = ?1 AND plugin = ?2 AND connection = ?3 AND flow = ?4
                             AND key = ?5)
                OR (SELECT COUNT(*) FROM plugin_state
                    WHERE tenant = ?1 AND plugin = ?2 AND connection = ?3 AND flow = ?4) < ?8
             ON CONFLICT (tenant, plugin, connection, flow, key)
             DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(&scope.tenant)
        .bind(&scope.plugin)
        .bind(&scope.connection)
        .bind(&scope.flow)
        .bind(key)
        .bind(value)
        .bind(now_millis())
        .bind(i64::try_from(max_keys).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(query_err(format!("write state key {key:?} ({scope})")))?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn state_delete(
        &self,
        scope: &StateScope,
        key: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "DELETE FROM plugin_state
             WHERE tenant = ? AND plugin = ? AND connection = ? AND flow = ? AND key = ?",
        )
        .bind(&scope.tenant)
        .bind(&scope.plugin)
        .bind(&scope.connection)
        .bind(&scope.flow)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(query_err(format!("delete state key {key:?} ({scope})")))?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn state_count(&self, scope: &StateScope) -> Result<u64, StoreError> {
        let n = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM plugin_state
             WHERE tenant = ? AND plugin = ? AND connection = ? AND flow = ?",
        )
        .bind(&scope.tenant)
        .bind(&scope.plugin)
        .bind(&scope.connection)
        .bind(&scope.flow)
        .fetch_one(&self.pool)
        .await
        .map_err(query_err(format!("count state keys ({scope})")))?;
        Ok(n.max(0) as u64)
    }

    pub(crate) async fn secret_put(
        &self,
        tenant: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO secrets (tenant, name, sealed, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (tenant, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(name)
        .bind(sealed)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(query_err(format!("store secret {name:?} of tenant {tenant:?}")))?;
        Ok(())
    }

    pub(crate) async fn secret_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar::<_, Vec<u8>>("SELECT sealed FROM secrets WHERE tenant = ? AND name = ?")
            .bind(tenant)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err(format!(
                "read secret {name:?} of tenant {tenant:?}"
            )))
    }

    pub(crate) async fn secret_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM secrets WHERE tenant = ? AND name = ?")
            .bind(tenant)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(query_err(format!(
                "delete secret {name:?} of tenant {tenant:?}"
            )))?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn secret_list(&self, tenant: &str) -> Result<Vec<SecretEntry>, StoreError> {
        let rows = sqlx::query_as::<_, (String, i64)>(
            "SELECT name, updated_at FROM secrets WHERE tenant = ? ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err(format!("list secrets of tenant {tenant:?}")))?;
        Ok(rows
            .into_iter()
            .map(|(name, updated_at)| SecretEntry {
                name,
                updated_at: millis_to_time(updated_at),
            })
            .collect())
    }
}

async fn apply_pending(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     BIGINT PRIMARY KEY,
             name        TEXT   NOT NULL,
             applied_at  BIGINT NOT NULL
         )",
    )
    .execute(&mut *conn)
    .await
    .map_err(query_err("create schema_migrations"))?;
    let current =
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(query_err("read the schema version"))?;
    if current > latest_version() {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: latest_version(),
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let fail = |source| StoreError::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        sqlx::raw_sql(migration.sql)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
            .bind(migration.version)
            .bind(migration.name)
            .bind(now_millis())
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied state database migration"
        );
    }
    Ok(())
}

fn time(ms: Option<i64>) -> Option<std::time::SystemTime> {
    ms.map(millis_to_time)
}

fn ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn run_record(row: &sqlx::sqlite::SqliteRow) -> RunRecord {
    RunRecord {
        id: row.get("id"),
        tenant: row.get("tenant"),
        flow: row.get("flow"),
        environment: row.get("environment"),
        status: row.get("status"),
        started_at: millis_to_time(row.get("started_at")),
        finished_at: time(row.get("finished_at")),
        error: row.get("error"),
    }
}

impl SqliteBackend {
    pub(crate) async fn run_start(
        &self,
        id: &str,
        tenant: &str,
        flow: &str,
        environment: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO runs (id, tenant, flow, environment, status, started_at) VALUES (?, ?, ?, ?, 'running', ?)")
            .bind(id)
            .bind(tenant)
            .bind(flow)
            .bind(environment)
            .bind(now_millis())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query_err(format!("record the start of run {id}")))
    }

    pub(crate) async fn run_finish(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?")
            .bind(status)
            .bind(now_millis())
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query_err(format!("record the end of run {id}")))
    }

    pub(crate) async fn step_save(
        &self,
        run_id: &str,
        s: &StepRunRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO step_runs (run_id, step, status, pages, records_in, records_out, failed, started_at, finished_at, error)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (run_id, step) DO UPDATE SET status = excluded.status, pages = excluded.pages,
               records_in = excluded.records_in, records_out = excluded.records_out, failed = excluded.failed,
               finished_at = excluded.finished_at, error = excluded.error",
        )
        .bind(run_id)
        .bind(&s.step)
        .bind(&s.status)
        .bind(s.pages as i64)
        .bind(s.records_in as i64)
        .bind(s.records_out as i64)
        .bind(s.failed as i64)
        .bind(ms(s.started_at))
        .bind(s.finished_at.map(ms))
        .bind(&s.error)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(query_err(format!("save step {} of run {run_id}", s.step)))
    }

    pub(crate) async fn runs_list(
        &self,
        tenant: &str,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE tenant = ? ORDER BY started_at DESC, id DESC LIMIT ?",
        )
        .bind(tenant)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list runs"))?;
        Ok(rows.iter().map(run_record).collect())
    }

    pub(crate) async fn flow_runs(
        &self,
        tenant: &str,
        flow: &str,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE tenant = ? AND flow = ? AND (? IS NULL OR status = ?) ORDER BY started_at DESC, id DESC LIMIT ?",
        )
        .bind(tenant)
        .bind(flow)
        .bind(status)
        .bind(status)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err(format!("list runs of flow {flow}")))?;
        Ok(rows.iter().map(run_record).collect())
    }

    pub(crate) async fn run_get(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(RunRecord, Vec<StepRunRecord>)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM runs WHERE tenant = ? AND id = ?")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err(format!("read run {id}")))?
        else {
            return Ok(None);
        };
        let steps =
            sqlx::query("SELECT * FROM step_runs WHERE run_id = ? ORDER BY started_at, step")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(query_err(format!("read the steps of run {id}")))?
                .iter()
                .map(|r| StepRunRecord {
                    step: r.get("step"),
                    status: r.get("status"),
                    pages: r.get::<i64, _>("pages") as u64,
                    records_in: r.get::<i64, _>("records_in") as u64,
                    records_out: r.get::<i64, _>("records_out") as u64,
                    failed: r.get::<i64, _>("failed") as u64,
                    started_at: millis_to_time(r.get("started_at")),
                    finished_at: time(r.get("finished_at")),
                    error: r.get("error"),
                })
                .collect();
        Ok(Some((run_record(&row), steps)))
    }

    pub(crate) async fn error_append(
        &self,
        run_id: &str,
        step: &str,
        record: Option<&str>,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO run_errors (run_id, seq, step, record, error, created_at)
             VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM run_errors WHERE run_id = ?), ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(run_id)
        .bind(step)
        .bind(record)
        .bind(error)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(query_err(format!("log a failed record of run {run_id}")))
    }

    pub(crate) async fn run_errors(&self, run_id: &str) -> Result<Vec<ErrorEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM run_errors WHERE run_id = ? ORDER BY seq")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err(format!("read the error log of run {run_id}")))?;
        Ok(rows
            .iter()
            .map(|r| ErrorEntry {
                seq: r.get::<i64, _>("seq") as u64,
                step: r.get("step"),
                record: r.get("record"),
                error: r.get("error"),
                created_at: millis_to_time(r.get("created_at")),
            })
            .collect())
    }

    pub(crate) async fn cursor_get(
        &self,
        tenant: &str,
        flow: &str,
        step: &str,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT cursor FROM cursors WHERE tenant = ? AND flow = ? AND step = ?")
            .bind(tenant)
            .bind(flow)
            .bind(step)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err(format!("read the cursor of {flow}/{step}")))
    }

    pub(crate) async fn cursor_set(
        &self,
        tenant: &str,
        flow: &str,
        step: &str,
        cursor: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cursors (tenant, flow, step, cursor, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (tenant, flow, step) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(flow)
        .bind(step)
        .bind(cursor)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(query_err(format!("commit the cursor of {flow}/{step}")))
    }

    /// One page as a few statements, not two per record: the keys' current records in one
    /// `SELECT … IN`, then the new and changed rows in one multi-row `INSERT … ON CONFLICT`.
    pub(crate) async fn dataset_upsert(
        &self,
        tenant: &str,
        dataset: &str,
        rows: &[(String, String)],
    ) -> Result<Vec<Upserted>, StoreError> {
        let action = || format!("upsert into dataset {dataset}");
        let mut tx = self
            .pool
            .begin_with(WRITE_TRANSACTION)
            .await
            .map_err(query_err(action()))?;
        let mut existing = std::collections::HashMap::new();
        let mut keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(UPSERT_CHUNK) {
            let mut select =
                sqlx::QueryBuilder::new("SELECT key, record FROM dataset_records WHERE tenant = ");
            select
                .push_bind(tenant)
                .push(" AND dataset = ")
                .push_bind(dataset)
                .push(" AND key IN (");
            let mut list = select.separated(", ");
            for key in chunk {
                list.push_bind(*key);
            }
            select.push(")");
            for row in select
                .build()
                .fetch_all(&mut *tx)
                .await
                .map_err(query_err(action()))?
            {
                existing.insert(row.get::<String, _>("key"), row.get::<String, _>("record"));
            }
        }
        let (outcomes, writes) = upsert_plan(rows, existing);
        let now = now_millis();
        for chunk in writes.chunks(UPSERT_CHUNK) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO dataset_records (tenant, dataset, key, record, updated_at) ",
            );
            insert.push_values(chunk, |mut b, (key, record)| {
                b.push_bind(tenant)
                    .push_bind(dataset)
                    .push_bind(*key)
                    .push_bind(*record)
                    .push_bind(now);
            });
            insert.push(" ON CONFLICT (tenant, dataset, key) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at");
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(query_err(action()))?;
        }
        tx.commit().await.map_err(query_err(action()))?;
        Ok(outcomes)
    }

    pub(crate) async fn dataset_delete(
        &self,
        tenant: &str,
        dataset: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        let action = || format!("delete from dataset {dataset}");
        let mut tx = self
            .pool
            .begin_with(WRITE_TRANSACTION)
            .await
            .map_err(query_err(action()))?;
        let mut deleted = 0;
        for key in keys {
            deleted += sqlx::query(
                "DELETE FROM dataset_records WHERE tenant = ? AND dataset = ? AND key = ?",
            )
            .bind(tenant)
            .bind(dataset)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(query_err(action()))?
            .rows_affected();
        }
        tx.commit().await.map_err(query_err(action()))?;
        Ok(deleted)
    }

    pub(crate) async fn dataset_page(
        &self,
        tenant: &str,
        dataset: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT key, record FROM dataset_records WHERE tenant = ? AND dataset = ? AND key > ? ORDER BY key LIMIT ?")
            .bind(tenant)
            .bind(dataset)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(query_err(format!("read dataset {dataset}")))?;
        Ok(rows
            .iter()
            .map(|r| (r.get("key"), r.get("record")))
            .collect())
    }

    pub(crate) async fn dataset_list(&self, tenant: &str) -> Result<Vec<DatasetInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT dataset, COUNT(*) AS records, MAX(updated_at) AS updated_at FROM dataset_records WHERE tenant = ? GROUP BY dataset ORDER BY dataset",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list datasets"))?;
        Ok(rows
            .iter()
            .map(|r| DatasetInfo {
                name: r.get("dataset"),
                records: r.get::<i64, _>("records") as u64,
                updated_at: millis_to_time(r.get("updated_at")),
            })
            .collect())
    }

    pub(crate) async fn event_put(
        &self,
        tenant: &str,
        flow: &str,
        e: &StoredEvent,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO webhook_events (tenant, flow, event_id, seq, stream, action, record, received_at)
             VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM webhook_events WHERE tenant = ?1 AND flow = ?2), ?4, ?5, ?6, ?7)
             ON CONFLICT (tenant, flow, event_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(flow)
        .bind(&e.event_id)
        .bind(&e.stream)
        .bind(&e.action)
        .bind(&e.record)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(query_err(format!("keep webhook event {} of flow {flow}", e.event_id)))?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn events_pending(
        &self,
        tenant: &str,
        flow: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, seq, stream, action, record FROM webhook_events
             WHERE tenant = ? AND flow = ? AND processed_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(tenant)
        .bind(flow)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_err(format!(
            "read pending webhook events of flow {flow}"
        )))?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                event_id: r.get("event_id"),
                seq: r.get::<i64, _>("seq") as u64,
                stream: r.get("stream"),
                action: r.get("action"),
                record: r.get("record"),
            })
            .collect())
    }

    pub(crate) async fn events_done(
        &self,
        tenant: &str,
        flow: &str,
        event_ids: &[String],
    ) -> Result<(), StoreError> {
        let action = || format!("mark webhook events of flow {flow} processed");
        let mut tx = self
            .pool
            .begin_with(WRITE_TRANSACTION)
            .await
            .map_err(query_err(action()))?;
        let now = now_millis();
        for id in event_ids {
            sqlx::query("UPDATE webhook_events SET processed_at = ? WHERE tenant = ? AND flow = ? AND event_id = ?")
                .bind(now)
                .bind(tenant)
                .bind(flow)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query_err(action()))?;
        }
        tx.commit().await.map_err(query_err(action()))
    }

    pub(crate) async fn subscription_put(
        &self,
        tenant: &str,
        s: &WebhookSubscription,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_subscriptions (tenant, flow, connection, subscription_id, callback_url, events, expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tenant, flow) DO UPDATE SET connection = excluded.connection, subscription_id = excluded.subscription_id,
               callback_url = excluded.callback_url, events = excluded.events, expires_at = excluded.expires_at, created_at = excluded.created_at",
        )
        .bind(tenant)
        .bind(&s.flow)
        .bind(&s.connection)
        .bind(&s.subscription_id)
        .bind(&s.callback_url)
        .bind(s.events.join("\n"))
        .bind(s.expires_at.map(ms))
        .bind(ms(s.created_at))
        .execute(&self.pool)
        .await
        .map_err(query_err(format!("keep the webhook subscription of flow {}", s.flow)))?;
        Ok(())
    }

    pub(crate) async fn subscriptions(
        &self,
        tenant: &str,
        flow: Option<&str>,
    ) -> Result<Vec<WebhookSubscription>, StoreError> {
        let rows = sqlx::query(
            "SELECT flow, connection, subscription_id, callback_url, events, expires_at, created_at FROM webhook_subscriptions
             WHERE tenant = ?1 AND (?2 IS NULL OR flow = ?2) ORDER BY flow",
        )
        .bind(tenant)
        .bind(flow)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list webhook subscriptions".to_string()))?;
        Ok(rows
            .iter()
            .map(|row| WebhookSubscription {
                flow: row.get("flow"),
                connection: row.get("connection"),
                subscription_id: row.get("subscription_id"),
                callback_url: row.get("callback_url"),
                events: row
                    .get::<String, _>("events")
                    .split('\n')
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect(),
                expires_at: time(row.get("expires_at")),
                created_at: millis_to_time(row.get("created_at")),
            })
            .collect())
    }

    pub(crate) async fn subscription_delete(
        &self,
        tenant: &str,
        flow: &str,
    ) -> Result<bool, StoreError> {
        let result =
            sqlx::query("DELETE FROM webhook_subscriptions WHERE tenant = ?1 AND flow = ?2")
                .bind(tenant)
                .bind(flow)
                .execute(&self.pool)
                .await
                .map_err(query_err(format!(
                    "forget the webhook subscription of flow {flow}"
                )))?;
        Ok(result.rows_affected() > 0)
    }
}

impl SqliteBackend {
    pub(crate) async fn lease_acquire(
        &self,
        tenant: &str,
        flow: &str,
        run_id: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        let action = || format!("take the lease of flow {flow}");
        let mut tx = self
            .pool
            .begin_with(WRITE_TRANSACTION)
            .await
            .map_err(query_err(action()))?;
        let now = now_millis();
        let current = sqlx::query(
            "SELECT run_id, holder, expires_at FROM flow_leases WHERE tenant = ? AND flow = ?",
        )
        .bind(tenant)
        .bind(flow)
        .fetch_optional(&mut *tx)
        .await
        .map_err(query_err(action()))?;
        let mut abandoned = None;
        if let Some(row) = current {
            let lease = FlowLease {
                run_id: row.get("run_id"),
                holder: row.get("holder"),
                expires_at: millis_to_time(row.get("expires_at")),
            };
            let expires_at: i64 = row.get("expires_at");
            if expires_at > now && lease.run_id != run_id {
                return Ok(LeaseOutcome::Held(lease));
            }
            let marked = sqlx::query("UPDATE runs SET status = 'abandoned', finished_at = ?, error = ? WHERE id = ? AND status = 'running'")
                .bind(expires_at)
                .bind(abandoned_reason(&lease.holder, expires_at))
                .bind(&lease.run_id)
                .execute(&mut *tx)
                .await
                .map_err(query_err(action()))?;
            if marked.rows_affected() > 0 {
                abandoned = Some(lease.run_id);
            }
        }
        // Conditional on the lease having lapsed, so two takers racing on a missing row cannot
        // both win: the second finds the first's fresh lease and changes nothing.
        let taken = sqlx::query(
            "INSERT INTO flow_leases (tenant, flow, run_id, holder, expires_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (tenant, flow) DO UPDATE SET run_id = excluded.run_id, holder = excluded.holder, expires_at = excluded.expires_at
             WHERE flow_leases.expires_at <= ? OR flow_leases.run_id = excluded.run_id",
        )
        .bind(tenant)
        .bind(flow)
        .bind(run_id)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(query_err(action()))?;
        if taken.rows_affected() == 0 {
            let row = sqlx::query(
                "SELECT run_id, holder, expires_at FROM flow_leases WHERE tenant = ? AND flow = ?",
            )
            .bind(tenant)
            .bind(flow)
            .fetch_one(&mut *tx)
            .await
            .map_err(query_err(action()))?;
            return Ok(LeaseOutcome::Held(FlowLease {
                run_id: row.get("run_id"),
                holder: row.get("holder"),
                expires_at: millis_to_time(row.get("expires_at")),
            }));
        }
        tx.commit().await.map_err(query_err(action()))?;
        Ok(LeaseOutcome::Acquired { abandoned })
    }

    pub(crate) async fn lease_renew(
        &self,
        tenant: &str,
        flow: &str,
        run_id: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE flow_leases SET expires_at = ? WHERE tenant = ? AND flow = ? AND run_id = ?",
        )
        .bind(now_millis() + ttl_ms)
        .bind(tenant)
        .bind(flow)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(query_err(format!("renew the lease of flow {flow}")))?;
        Ok(renewed.rows_affected() > 0)
    }

    pub(crate) async fn lease_release(
        &self,
        tenant: &str,
        flow: &str,
        run_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM flow_leases WHERE tenant = ? AND flow = ? AND run_id = ?")
            .bind(tenant)
            .bind(flow)
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query_err(format!("release the lease of flow {flow}")))
    }

    pub(crate) async fn runs_reap(&self, tenant: &str) -> Result<u64, StoreError> {
        let now = now_millis();
        let reaped = sqlx::query(
            "UPDATE runs SET status = 'abandoned', finished_at = ?,
               error = 'abandoned: no live process holds its lease (the process running it died); the next run resumes from the last committed checkpoint'
             WHERE tenant = ? AND status = 'running'
               AND NOT EXISTS (SELECT 1 FROM flow_leases l WHERE l.run_id = runs.id AND l.expires_at > ?)",
        )
        .bind(now)
        .bind(tenant)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(query_err("mark runs whose process died as abandoned"))?;
        Ok(reaped.rows_affected())
    }
}

impl SqliteBackend {
    pub(crate) async fn token_get(
        &self,
        tenant: &str,
        credential: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT sealed FROM tokens WHERE tenant = ? AND credential = ?",
        )
        .bind(tenant)
        .bind(credential)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("read a kept token"))
    }

    pub(crate) async fn token_put(
        &self,
        tenant: &str,
        credential: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (tenant, credential, sealed, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (tenant, credential) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(credential)
        .bind(sealed)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(query_err("keep a token"))
    }

    pub(crate) async fn token_delete(
        &self,
        tenant: &str,
        credential: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tokens WHERE tenant = ? AND credential = ?")
            .bind(tenant)
            .bind(credential)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query_err("forget a token"))
    }
}
