//! weft's state database.
//!
//! One [`Store`] type is the whole interface the rest of the host sees, on SQLite or on
//! PostgreSQL with the same schema and semantics, so callers never write SQL and never learn
//! which database they run on. Every row is keyed by a `tenant` so one store can serve many
//! tenants.
//!
//! Each operation is implemented once, as a `Store` method in the module of its concept:
//! `runs` (runs, step runs, the error log and cursors), `leases` (one run per flow,
//! [`Store::lease_acquire`]), `tenants` (tenants, API tokens as hashes, deleting a tenant with
//! all it owns), `flows` (flows deployed through the API, requests to run one now),
//! `datasets`, `webhooks` (events and subscriptions), `state` (plugin
//! state, with hard limits, [`StateLimits`]), `secrets` (sealed secret and token rows: the store
//! never sees plaintext; the cipher lives in `weft-capabilities`) and `migrations` (the schema).
//! The records they take and return are declared here and in `runs`. Their SQL is written once,
//! with `$1`-style placeholders, which both databases accept. What differs between the databases
//! (opening a pool, starting a write transaction, row, name and migration locks, the byte string
//! type, which error codes are transient) is in `dialect`, the one place that matches on the
//! database.
//!
//! Calls that fail for the moment (a busy SQLite database, a serialization failure or
//! deadlock on PostgreSQL, a dropped connection) are retried with backoff before an error is
//! returned; SQLite write transactions take the write lock up front (`BEGIN IMMEDIATE`).
//!
//! The schema is versioned: migrations are embedded SQL applied in order, inside a transaction,
//! when the store is opened, and recorded in `schema_migrations`.

#![warn(missing_docs)]

mod datasets;
mod dialect;
mod error;
mod flows;
mod leases;
mod migrations;
mod plugins;
mod runs;
mod secrets;
mod state;
mod status;
mod tenants;
mod webhooks;

use std::path::Path;
use std::time::{Duration, SystemTime};

pub use dialect::sqlite::private_dir;
pub use error::StoreError;
pub use flows::{DeployedFlow, FlowVersion, RunRequest};
pub use migrations::{MIGRATIONS, Migration};
pub use plugins::TenantPlugin;
pub use runs::{
    DatasetInfo, ErrorEntry, FlowLease, LeaseOutcome, RunFilter, RunRecord, RunUsage,
    StepRunRecord, StoredEvent, Upserted, WebhookSubscription,
};
pub use status::{RunStatus, StepStatus};
pub use tenants::{
    ApiTokenRecord, TENANT_NAME_MAX, TenantRecord, TenantStatus, TokenHolder, check_tenant_name,
};

use dialect::{Pool, on_database};

/// The tenant used while weft runs a single tenant.
pub const DEFAULT_TENANT: &str = "default";

/// Where a plugin's state lives: one plugin, on one connection, in one flow, for one tenant.
///
/// Keys of different scopes never collide, so two flows using the same plugin and connection
/// keep separate state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateScope {
    /// The tenant that owns the flow.
    pub tenant: String,
    /// The plugin's name as it describes itself.
    pub plugin: String,
    /// The connection the plugin was invoked for.
    pub connection: String,
    /// The flow the plugin runs in.
    pub flow: String,
}

impl StateScope {
    /// A scope for the given tenant, plugin, connection and flow.
    pub fn new(
        tenant: impl Into<String>,
        plugin: impl Into<String>,
        connection: impl Into<String>,
        flow: impl Into<String>,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            plugin: plugin.into(),
            connection: connection.into(),
            flow: flow.into(),
        }
    }
}

impl std::fmt::Display for StateScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tenant {:?}, plugin {:?}, connection {:?}, flow {:?}",
            self.tenant, self.plugin, self.connection, self.flow
        )
    }
}

/// Bounds on plugin state. State is for cursors and small bookkeeping, not for data: these keep
/// a misbehaving plugin from turning the state database into its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Longest key, in bytes of UTF-8.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most keys one [`StateScope`] may hold.
    pub max_keys_per_scope: u64,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_keys_per_scope: 1_000,
        }
    }
}

/// One stored secret as listed by [`Store::secret_list`]: its name and when it was last written,
/// never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEntry {
    /// The secret's name, as used in `secret:NAME`.
    pub name: String,
    /// When the secret was last written.
    pub updated_at: SystemTime,
}

/// The state database. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    limits: StateLimits,
}

impl Store {
    /// Opens (creating if needed, with its parent directories) the SQLite database at `path`, in
    /// WAL mode so readers do not block the writer, and applies pending migrations.
    pub async fn open_sqlite(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::migrated(dialect::sqlite::open_file(path.as_ref()).await?).await
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:5432/database`) and applies pending
    /// migrations: several weft processes can share it.
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        Self::migrated(dialect::postgres::open(url).await?).await
    }

    /// Opens a private in-memory SQLite database with the full schema. Nothing survives the last
    /// clone being dropped; meant for tests.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        Self::migrated(dialect::sqlite::open_in_memory().await?).await
    }

    async fn migrated(pool: Pool) -> Result<Self, StoreError> {
        let store = Self {
            pool,
            limits: StateLimits::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Replaces the state limits for this handle (and clones made from it afterwards).
    pub fn with_state_limits(mut self, limits: StateLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The state limits this handle enforces.
    pub fn state_limits(&self) -> StateLimits {
        self.limits
    }

    /// The schema version the database is at (the highest applied migration).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        on_database!(self, "read the schema version", |pool| {
            let sql = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
            sqlx::query_scalar(sql).fetch_one(pool).await
        })
    }
}

/// How often a store call is tried again after a transient failure, and the first pause.
const TRANSIENT_RETRIES: u32 = 8;
const FIRST_PAUSE: Duration = Duration::from_millis(20);

impl Store {
    /// Runs `call`, trying it again with growing pauses while it fails transiently (a busy
    /// SQLite database, a PostgreSQL serialization failure or deadlock, a dropped connection):
    /// those say nothing about the call itself, and a run should not fail on them.
    async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut pause = FIRST_PAUSE;
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if e.is_transient() && attempt < TRANSIENT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, error = %e, "transient store error; trying again");
                    // Up to 40% longer, differently per process and attempt, so contending
                    // processes fall out of step.
                    let jitter = pause * ((std::process::id() + attempt) % 5) / 10;
                    tokio::time::sleep(pause + jitter).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }
}

/// The error of a query that failed while the store was trying to `action`.
fn query_err(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let action = action.into();
    move |source| StoreError::Query { action, source }
}

/// Times are stored as milliseconds since the Unix epoch.
fn now_millis() -> i64 {
    millis(SystemTime::now())
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn millis_to_time(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}
