//! weft's state database.
//!
//! One [`Store`] type is the whole interface the rest of the host sees. Behind it sits one
//! implementation per database (SQLite in the `sqlite` module, PostgreSQL in `postgres`, with
//! the same schema and semantics), so callers never write SQL and never learn which database
//! they run on. Every row is keyed by a `tenant` so one store can serve many tenants.
//!
//! What lives here: runs, step runs, cursors and the error log; datasets; webhook events and
//! subscriptions; plugin state, with hard limits ([`StateLimits`]); sealed secret and token
//! rows (the store never sees plaintext; the cipher lives in `weft-capabilities`); and the
//! flow leases that keep one run per flow ([`Store::lease_acquire`]).
//!
//! Calls that fail for the moment (a busy SQLite database, a serialization failure or
//! deadlock on PostgreSQL, a dropped connection) are retried with backoff before an error is
//! returned; SQLite write transactions take the write lock up front (`BEGIN IMMEDIATE`).
//!
//! The schema is versioned: migrations are embedded SQL applied in order, inside a transaction,
//! when the store is opened, and recorded in `schema_migrations`.

#![warn(missing_docs)]

mod error;
mod migrations;
mod postgres;
mod runs;
mod sqlite;

use std::path::Path;
use std::time::SystemTime;

pub use error::StoreError;
pub use migrations::{MIGRATIONS, Migration};
pub use runs::{
    DatasetInfo, ErrorEntry, FlowLease, LeaseOutcome, RunRecord, StepRunRecord, StoredEvent,
    Upserted, WebhookSubscription,
};
pub use sqlite::private_dir;

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
    backend: Backend,
    limits: StateLimits,
}

/// One variant per supported database; each keeps its SQL in its own module.
#[derive(Clone, Debug)]
enum Backend {
    Sqlite(sqlite::SqliteBackend),
    Postgres(postgres::PostgresBackend),
}

impl Store {
    /// Opens (creating if needed, with its parent directories) the SQLite database at `path`, in
    /// WAL mode so readers do not block the writer, and applies pending migrations.
    pub async fn open_sqlite(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let backend = sqlite::SqliteBackend::open_file(path.as_ref()).await?;
        Ok(Self::with_backend(Backend::Sqlite(backend)))
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:5432/database`) and applies pending
    /// migrations: several weft processes can share it.
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let backend = postgres::PostgresBackend::open(url).await?;
        Ok(Self::with_backend(Backend::Postgres(backend)))
    }

    /// Opens a private in-memory SQLite database with the full schema. Nothing survives the last
    /// clone being dropped; meant for tests.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let backend = sqlite::SqliteBackend::open_in_memory().await?;
        Ok(Self::with_backend(Backend::Sqlite(backend)))
    }

    fn with_backend(backend: Backend) -> Self {
        Self {
            backend,
            limits: StateLimits::default(),
        }
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
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.schema_version().await,
                Backend::Postgres(db) => db.schema_version().await,
            }
        })
        .await
    }

    /// Reads one state value; `None` if the key was never set or was deleted.
    pub async fn state_get(
        &self,
        scope: &StateScope,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_key(key)?;
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.state_get(scope, key).await,
                Backend::Postgres(db) => db.state_get(scope, key).await,
            }
        })
        .await
    }

    /// Writes one state value, replacing any previous one. Refused when the key or value is over
    /// its limit, or when the key is new and the scope already holds the maximum number of keys.
    pub async fn state_set(
        &self,
        scope: &StateScope,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        self.check_key(key)?;
        if value.len() > self.limits.max_value_bytes {
            return Err(StoreError::StateValueTooLarge {
                key: key.to_owned(),
                size: value.len(),
                limit: self.limits.max_value_bytes,
            });
        }
        let written = match &self.backend {
            Backend::Sqlite(db) => {
                db.state_set(scope, key, value, self.limits.max_keys_per_scope)
                    .await?
            }
            Backend::Postgres(db) => {
                db.state_set(scope, key, value, self.limits.max_keys_per_scope)
                    .await?
            }
        };
        if written {
            Ok(())
        } else {
            Err(StoreError::StateTooManyKeys {
                scope: scope.to_string(),
                key: key.to_owned(),
                limit: self.limits.max_keys_per_scope,
            })
        }
    }

    /// Deletes one state value. Returns whether it existed.
    pub async fn state_delete(&self, scope: &StateScope, key: &str) -> Result<bool, StoreError> {
        self.check_key(key)?;
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.state_delete(scope, key).await,
                Backend::Postgres(db) => db.state_delete(scope, key).await,
            }
        })
        .await
    }

    /// How many keys a scope holds.
    pub async fn state_count(&self, scope: &StateScope) -> Result<u64, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.state_count(scope).await,
                Backend::Postgres(db) => db.state_count(scope).await,
            }
        })
        .await
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.is_empty() {
            return Err(StoreError::StateKeyEmpty);
        }
        if key.len() > self.limits.max_key_bytes {
            return Err(StoreError::StateKeyTooLong {
                key_prefix: key.chars().take(32).collect(),
                size: key.len(),
                limit: self.limits.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Stores (or replaces) a secret's sealed bytes (`nonce + ciphertext`) under `name`.
    pub async fn secret_put(
        &self,
        tenant: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        check_secret_name(name)?;
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.secret_put(tenant, name, sealed).await,
                Backend::Postgres(db) => db.secret_put(tenant, name, sealed).await,
            }
        })
        .await
    }

    /// Reads a secret's sealed bytes; `None` if no secret of that name exists for the tenant.
    pub async fn secret_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.secret_get(tenant, name).await,
                Backend::Postgres(db) => db.secret_get(tenant, name).await,
            }
        })
        .await
    }

    /// Deletes a secret. Returns whether it existed.
    pub async fn secret_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.secret_delete(tenant, name).await,
                Backend::Postgres(db) => db.secret_delete(tenant, name).await,
            }
        })
        .await
    }

    /// The tenant's secrets by name, sorted, with when each was last written.
    pub async fn secret_list(&self, tenant: &str) -> Result<Vec<SecretEntry>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.secret_list(tenant).await,
                Backend::Postgres(db) => db.secret_list(tenant).await,
            }
        })
        .await
    }
}

/// Secret names appear in flow files as `secret:NAME` and on the command line, so they are kept
/// to a shell- and TOML-friendly alphabet.
fn check_secret_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidSecretName {
            name: name.to_owned(),
        })
    }
}

/// How often a store call is tried again after a transient failure, and the first pause.
const TRANSIENT_RETRIES: u32 = 8;
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

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
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }
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
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.run_start(id, tenant, flow, environment).await,
                Backend::Postgres(db) => db.run_start(id, tenant, flow, environment).await,
            }
        })
        .await
    }

    /// Records how a run ended.
    pub async fn run_finish(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.run_finish(id, status, error).await,
                Backend::Postgres(db) => db.run_finish(id, status, error).await,
            }
        })
        .await
    }

    /// Writes a step's current state (insert or replace).
    pub async fn step_save(&self, run_id: &str, step: &StepRunRecord) -> Result<(), StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.step_save(run_id, step).await,
                Backend::Postgres(db) => db.step_save(run_id, step).await,
            }
        })
        .await
    }

    /// The most recent runs of a tenant, newest first.
    pub async fn runs_list(&self, tenant: &str, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.runs_list(tenant, limit).await,
                Backend::Postgres(db) => db.runs_list(tenant, limit).await,
            }
        })
        .await
    }

    /// The most recent runs of one flow, newest first; with `status`, only runs that ended so.
    pub async fn flow_runs(
        &self,
        tenant: &str,
        flow: &str,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.flow_runs(tenant, flow, status, limit).await,
                Backend::Postgres(db) => db.flow_runs(tenant, flow, status, limit).await,
            }
        })
        .await
    }

    /// One run and its steps.
    pub async fn run_get(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(RunRecord, Vec<StepRunRecord>)>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.run_get(tenant, id).await,
                Backend::Postgres(db) => db.run_get(tenant, id).await,
            }
        })
        .await
    }

    /// Adds a failed record to a run's error log.
    pub async fn error_append(
        &self,
        run_id: &str,
        step: &str,
        record: Option<&str>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.error_append(run_id, step, record, error).await,
                Backend::Postgres(db) => db.error_append(run_id, step, record, error).await,
            }
        })
        .await
    }

    /// A run's error log, in the order the failures happened.
    pub async fn run_errors(&self, run_id: &str) -> Result<Vec<ErrorEntry>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.run_errors(run_id).await,
                Backend::Postgres(db) => db.run_errors(run_id).await,
            }
        })
        .await
    }

    /// Where a read step of a flow resumes from.
    pub async fn cursor_get(
        &self,
        tenant: &str,
        flow: &str,
        step: &str,
    ) -> Result<Option<String>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.cursor_get(tenant, flow, step).await,
                Backend::Postgres(db) => db.cursor_get(tenant, flow, step).await,
            }
        })
        .await
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
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.cursor_set(tenant, flow, step, cursor).await,
                Backend::Postgres(db) => db.cursor_set(tenant, flow, step, cursor).await,
            }
        })
        .await
    }
}

/// Tokens token endpoints issued, sealed like secrets, so every process and run using the same
/// credential shares one token instead of exchanging its own. `credential` is a digest of the
/// values the token was issued for; the store never sees a token in clear.
impl Store {
    /// The sealed token kept for `credential`.
    pub async fn token_get(
        &self,
        tenant: &str,
        credential: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.token_get(tenant, credential).await,
                Backend::Postgres(db) => db.token_get(tenant, credential).await,
            }
        })
        .await
    }

    /// Keeps (or replaces) the sealed token for `credential`.
    pub async fn token_put(
        &self,
        tenant: &str,
        credential: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.token_put(tenant, credential, sealed).await,
                Backend::Postgres(db) => db.token_put(tenant, credential, sealed).await,
            }
        })
        .await
    }

    /// Forgets the token for `credential` (the upstream refused it).
    pub async fn token_delete(&self, tenant: &str, credential: &str) -> Result<(), StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.token_delete(tenant, credential).await,
                Backend::Postgres(db) => db.token_delete(tenant, credential).await,
            }
        })
        .await
    }
}

/// One run per flow at a time: a lease in the store, renewed by its holder, that a dead process
/// cannot hold for longer than its time to live.
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
        ttl: std::time::Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let ttl_ms = ttl.as_millis() as i64;
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.lease_acquire(tenant, flow, run_id, holder, ttl_ms).await,
                Backend::Postgres(db) => {
                    db.lease_acquire(tenant, flow, run_id, holder, ttl_ms).await
                }
            }
        })
        .await
    }

    /// Extends run `run_id`'s lease on `flow` to `ttl` from now; `false` if it no longer holds it.
    pub async fn lease_renew(
        &self,
        tenant: &str,
        flow: &str,
        run_id: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis() as i64;
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.lease_renew(tenant, flow, run_id, ttl_ms).await,
                Backend::Postgres(db) => db.lease_renew(tenant, flow, run_id, ttl_ms).await,
            }
        })
        .await
    }

    /// Gives the flow up, if run `run_id` holds it.
    pub async fn lease_release(
        &self,
        tenant: &str,
        flow: &str,
        run_id: &str,
    ) -> Result<(), StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.lease_release(tenant, flow, run_id).await,
                Backend::Postgres(db) => db.lease_release(tenant, flow, run_id).await,
            }
        })
        .await
    }

    /// Marks `abandoned` every `running` run of the tenant that no live lease holds (its process
    /// died, or an older weft left it); how many there were.
    pub async fn runs_reap(&self, tenant: &str) -> Result<u64, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.runs_reap(tenant).await,
                Backend::Postgres(db) => db.runs_reap(tenant).await,
            }
        })
        .await
    }
}

/// Datasets: records kept in weft's own store under a name, upserted by key.
impl Store {
    /// Upserts `(key, record JSON)` rows into a dataset in one transaction; one outcome per row.
    pub async fn dataset_upsert(
        &self,
        tenant: &str,
        dataset: &str,
        rows: &[(String, String)],
    ) -> Result<Vec<Upserted>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.dataset_upsert(tenant, dataset, rows).await,
                Backend::Postgres(db) => db.dataset_upsert(tenant, dataset, rows).await,
            }
        })
        .await
    }

    /// Deletes the rows with these keys from a dataset in one transaction; how many there were.
    pub async fn dataset_delete(
        &self,
        tenant: &str,
        dataset: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.dataset_delete(tenant, dataset, keys).await,
                Backend::Postgres(db) => db.dataset_delete(tenant, dataset, keys).await,
            }
        })
        .await
    }

    /// Up to `limit` `(key, record JSON)` rows in key order, after `after`.
    pub async fn dataset_page(
        &self,
        tenant: &str,
        dataset: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.dataset_page(tenant, dataset, after, limit).await,
                Backend::Postgres(db) => db.dataset_page(tenant, dataset, after, limit).await,
            }
        })
        .await
    }

    /// The tenant's datasets with their sizes.
    pub async fn dataset_list(&self, tenant: &str) -> Result<Vec<DatasetInfo>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.dataset_list(tenant).await,
                Backend::Postgres(db) => db.dataset_list(tenant).await,
            }
        })
        .await
    }
}

/// Webhook events: persisted before the sender gets its 2xx, processed in order, once.
impl Store {
    /// Keeps a verified event for `flow`; `false` when an event with its id was already kept
    /// (a redelivery), which is then dropped.
    pub async fn event_put(
        &self,
        tenant: &str,
        flow: &str,
        event: &StoredEvent,
    ) -> Result<bool, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.event_put(tenant, flow, event).await,
                Backend::Postgres(db) => db.event_put(tenant, flow, event).await,
            }
        })
        .await
    }

    /// Events of `flow` not yet processed, in arrival order.
    pub async fn events_pending(
        &self,
        tenant: &str,
        flow: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.events_pending(tenant, flow, limit).await,
                Backend::Postgres(db) => db.events_pending(tenant, flow, limit).await,
            }
        })
        .await
    }

    /// Marks events processed, after the run that consumed them succeeded.
    pub async fn events_done(
        &self,
        tenant: &str,
        flow: &str,
        event_ids: &[String],
    ) -> Result<(), StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.events_done(tenant, flow, event_ids).await,
                Backend::Postgres(db) => db.events_done(tenant, flow, event_ids).await,
            }
        })
        .await
    }

    /// Keeps a flow's webhook registration, replacing the one it had.
    pub async fn subscription_put(
        &self,
        tenant: &str,
        subscription: &WebhookSubscription,
    ) -> Result<(), StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.subscription_put(tenant, subscription).await,
                Backend::Postgres(db) => db.subscription_put(tenant, subscription).await,
            }
        })
        .await
    }

    /// The tenant's webhook registrations (only `flow`'s when given), by flow name.
    pub async fn subscriptions(
        &self,
        tenant: &str,
        flow: Option<&str>,
    ) -> Result<Vec<WebhookSubscription>, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.subscriptions(tenant, flow).await,
                Backend::Postgres(db) => db.subscriptions(tenant, flow).await,
            }
        })
        .await
    }

    /// Forgets a flow's webhook registration; whether there was one.
    pub async fn subscription_delete(&self, tenant: &str, flow: &str) -> Result<bool, StoreError> {
        self.retrying(|| async move {
            match &self.backend {
                Backend::Sqlite(db) => db.subscription_delete(tenant, flow).await,
                Backend::Postgres(db) => db.subscription_delete(tenant, flow).await,
            }
        })
        .await
    }
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn millis_to_time(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}
