//! The schema, as an ordered list of migrations.
//!
//! Migrations are append-only: a released migration is never edited, a change is a new one. The
//! SQL sticks to what SQLite and PostgreSQL share (TEXT, BIGINT), and spells byte strings `BLOB`,
//! which each database's dialect renames where it has to.

use crate::dialect::on_database;
use crate::{Store, StoreError, now_millis, query_err};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version number, recorded in `schema_migrations`.
    pub version: i64,
    /// A short name for messages.
    pub name: &'static str,
    /// The SQL, possibly several statements.
    pub sql: &'static str,
}

/// Every migration, in the order they are applied.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "plugin state and secrets",
        sql: r#"
CREATE TABLE plugin_state (
    tenant      TEXT    NOT NULL,
    plugin      TEXT    NOT NULL,
    connection  TEXT    NOT NULL,
    flow        TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       BLOB    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, plugin, connection, flow, key)
);

CREATE TABLE secrets (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    sealed      BLOB    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, name)
);
"#,
    },
    Migration {
        version: 2,
        name: "runs, step runs, cursors and the error log",
        sql: r#"
CREATE TABLE runs (
    id           TEXT    PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    flow         TEXT    NOT NULL,
    environment  TEXT,
    status       TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    error        TEXT
);
CREATE INDEX runs_by_flow ON runs (tenant, flow, started_at);

CREATE TABLE step_runs (
    run_id       TEXT    NOT NULL REFERENCES runs (id),
    step         TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    pages        BIGINT  NOT NULL,
    records_in   BIGINT  NOT NULL,
    records_out  BIGINT  NOT NULL,
    failed       BIGINT  NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    error        TEXT,
    PRIMARY KEY (run_id, step)
);

CREATE TABLE cursors (
    tenant      TEXT    NOT NULL,
    flow        TEXT    NOT NULL,
    step        TEXT    NOT NULL,
    cursor      TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, flow, step)
);

CREATE TABLE run_errors (
    run_id      TEXT    NOT NULL REFERENCES runs (id),
    seq         BIGINT  NOT NULL,
    step        TEXT    NOT NULL,
    record      TEXT,
    error       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"#,
    },
    Migration {
        version: 3,
        name: "datasets",
        sql: r#"
CREATE TABLE dataset_records (
    tenant      TEXT    NOT NULL,
    dataset     TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    record      TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, dataset, key)
);
"#,
    },
    Migration {
        version: 4,
        name: "webhook events",
        sql: r#"
CREATE TABLE webhook_events (
    tenant        TEXT    NOT NULL,
    flow          TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    seq           BIGINT  NOT NULL,
    stream        TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    record        TEXT    NOT NULL,
    received_at   BIGINT  NOT NULL,
    processed_at  BIGINT,
    PRIMARY KEY (tenant, flow, event_id)
);
CREATE INDEX webhook_events_pending ON webhook_events (tenant, flow, processed_at, seq);
"#,
    },
    Migration {
        version: 5,
        name: "webhook subscriptions",
        sql: r#"
CREATE TABLE webhook_subscriptions (
    tenant           TEXT    NOT NULL,
    flow             TEXT    NOT NULL,
    connection       TEXT    NOT NULL,
    subscription_id  TEXT    NOT NULL,
    callback_url     TEXT    NOT NULL,
    events           TEXT    NOT NULL,
    expires_at       BIGINT,
    created_at       BIGINT  NOT NULL,
    PRIMARY KEY (tenant, flow)
);
"#,
    },
    Migration {
        version: 6,
        name: "flow leases",
        sql: r#"
CREATE TABLE flow_leases (
    tenant      TEXT    NOT NULL,
    flow        TEXT    NOT NULL,
    run_id      TEXT    NOT NULL,
    holder      TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, flow)
);
CREATE INDEX runs_by_status ON runs (tenant, status);
"#,
    },
    Migration {
        version: 7,
        name: "tokens",
        sql: r#"
CREATE TABLE tokens (
    tenant      TEXT    NOT NULL,
    credential  TEXT    NOT NULL,
    sealed      BLOB    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, credential)
);
"#,
    },
    Migration {
        version: 8,
        name: "tenants, API tokens, deployed flows and run requests",
        sql: r#"
CREATE TABLE tenants (
    name        TEXT    PRIMARY KEY,
    status      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    tenant      TEXT,
    hash        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant);

CREATE TABLE deployed_flows (
    tenant       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    variables    TEXT    NOT NULL,
    digest       TEXT    NOT NULL,
    enabled      BIGINT  NOT NULL,
    deployed_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE run_requests (
    tenant        TEXT    NOT NULL,
    flow          TEXT    NOT NULL,
    requested_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, flow)
);
"#,
    },
    Migration {
        version: 9,
        name: "what each run used",
        sql: r#"
ALTER TABLE runs ADD COLUMN cpu_ms BIGINT;
ALTER TABLE runs ADD COLUMN requests BIGINT;
ALTER TABLE runs ADD COLUMN bytes_out BIGINT;
ALTER TABLE runs ADD COLUMN bytes_in BIGINT;
ALTER TABLE runs ADD COLUMN peak_memory BIGINT;
ALTER TABLE runs ADD COLUMN records_read BIGINT;
ALTER TABLE runs ADD COLUMN records_written BIGINT;
ALTER TABLE runs ADD COLUMN records_failed BIGINT;
CREATE INDEX runs_by_time ON runs (tenant, started_at);
"#,
    },
    Migration {
        version: 10,
        name: "tenant quotas",
        sql: r#"
CREATE TABLE tenant_quotas (
    tenant  TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    value   BIGINT  NOT NULL,
    PRIMARY KEY (tenant, name)
);
"#,
    },
    Migration {
        version: 11,
        name: "retries and runs with variables asked for, runs asked to stop",
        sql: r#"
CREATE TABLE run_requests_new (
    tenant        TEXT    NOT NULL,
    flow          TEXT    NOT NULL,
    retry_of      TEXT    NOT NULL,
    variables     TEXT    NOT NULL,
    requested_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, flow, retry_of, variables)
);
INSERT INTO run_requests_new (tenant, flow, retry_of, variables, requested_at)
    SELECT tenant, flow, '', '{}', requested_at FROM run_requests;
DROP TABLE run_requests;
ALTER TABLE run_requests_new RENAME TO run_requests;
ALTER TABLE runs ADD COLUMN cancel_requested_at BIGINT;
"#,
    },
    Migration {
        version: 12,
        name: "webhook endpoints of deployed flows",
        sql: r#"
ALTER TABLE deployed_flows ADD COLUMN endpoint TEXT;
CREATE UNIQUE INDEX deployed_flows_by_endpoint ON deployed_flows (endpoint);
"#,
    },
    Migration {
        version: 13,
        name: "a counter of changes to what servers serve",
        sql: r#"
CREATE TABLE serving_changes (
    id          BIGINT  PRIMARY KEY,
    generation  BIGINT  NOT NULL
);
INSERT INTO serving_changes (id, generation) VALUES (1, 0);
"#,
    },
    Migration {
        version: 14,
        name: "webhook events by sequence",
        sql: r#"
CREATE INDEX webhook_events_by_seq ON webhook_events (tenant, flow, seq);
"#,
    },
    Migration {
        version: 15,
        name: "plugins tenants uploaded",
        sql: r#"
CREATE TABLE tenant_plugins (
    tenant       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    digest       TEXT    NOT NULL,
    size         BIGINT  NOT NULL,
    wasm         BLOB    NOT NULL,
    uploaded_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, name)
);
"#,
    },
    Migration {
        version: 16,
        name: "tenant plugins side by side by version",
        sql: r#"
CREATE TABLE tenant_plugin_versions (
    tenant       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    digest       TEXT    NOT NULL,
    size         BIGINT  NOT NULL,
    wasm         BLOB    NOT NULL,
    uploaded_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
INSERT INTO tenant_plugin_versions (tenant, name, version, kind, digest, size, wasm, uploaded_at)
    SELECT tenant, name, version, kind, digest, size, wasm, uploaded_at FROM tenant_plugins;
DROP TABLE tenant_plugins;
ALTER TABLE tenant_plugin_versions RENAME TO tenant_plugins;
"#,
    },
];

/// The newest schema version this build knows.
fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

impl Store {
    /// Applies pending migrations in one write transaction, under the migration lock where the
    /// database needs one, so two processes opening it at once cannot both apply the same
    /// migration. Refuses a database a newer weft has migrated.
    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        // A database that is current (the common case: every command but the first) costs one
        // read and takes no write lock, so a command starting beside a busy `weft serve` does
        // not queue behind its writes.
        if self.schema_version().await.ok() == Some(latest_version()) {
            return Ok(());
        }
        let dialect = self.pool.dialect();
        on_database!(self, |pool| {
            let mut tx = pool
                .begin_with(dialect.begin_write)
                .await
                .map_err(query_err("start the migration transaction"))?;
            if let Some(lock) = dialect.migration_lock {
                sqlx::raw_sql(lock)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err("take the migration lock"))?;
            }
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version     BIGINT PRIMARY KEY,
                     name        TEXT   NOT NULL,
                     applied_at  BIGINT NOT NULL
                 )",
            )
            .execute(&mut *tx)
            .await
            .map_err(query_err("create schema_migrations"))?;
            let current = sqlx::query_scalar::<_, i64>(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            )
            .fetch_one(&mut *tx)
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
                sqlx::raw_sql(&dialect.schema_sql(migration.sql))
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                sqlx::query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                )
                .bind(migration.version)
                .bind(migration.name)
                .bind(now_millis())
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
                tracing::info!(
                    version = migration.version,
                    name = migration.name,
                    "applied state database migration"
                );
            }
            tx.commit().await.map_err(query_err("commit migrations"))
        })
    }
}
