/// Everything the store can refuse or fail at. Each variant carries what was being done and the
/// value at fault, so the message stands on its own in a log or a CLI error chain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file or its directory could not be created.
    #[error("cannot create the state database directory {path}: {source}")]
    CreateDir {
        /// The directory weft tried to create.
        path: std::path::PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },

    /// Connecting to or opening the database failed.
    #[error("cannot open the state database at {location}: {source}")]
    Open {
        /// The file path or connection string (never with a password).
        location: String,
        /// The database driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A migration failed; the transaction was rolled back and the schema is unchanged.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// The migration's version number.
        version: i64,
        /// The migration's name.
        name: &'static str,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },

    /// A row holds a status this weft does not know.
    #[error(
        "the state database holds a {of} status `{value}` that this weft does not know: it was written by a newer weft; upgrade weft"
    )]
    UnknownStatus {
        /// `run`, `step` or `tenant`.
        of: &'static str,
        /// The status as stored.
        value: String,
    },

    /// The database was migrated by a newer weft than this one.
    #[error(
        "the state database is at schema version {found}, but this weft supports up to {supported}: upgrade weft"
    )]
    SchemaTooNew {
        /// The version found in `schema_migrations`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// A query failed.
    #[error("state database query failed while trying to {action}: {source}")]
    Query {
        /// What the store was doing, e.g. "read state key \"cursor\"".
        action: String,
        /// The database's error.
        #[source]
        source: sqlx::Error,
    },

    /// A state key was empty.
    #[error("state key is empty")]
    StateKeyEmpty,

    /// A state key exceeded [`StateLimits::max_key_bytes`](crate::StateLimits::max_key_bytes).
    #[error("state key {key_prefix:?}... is {size} bytes, over the limit of {limit} bytes")]
    StateKeyTooLong {
        /// The key's first characters.
        key_prefix: String,
        /// The key's length in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A state value exceeded [`StateLimits::max_value_bytes`](crate::StateLimits::max_value_bytes).
    #[error("state value for key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    StateValueTooLarge {
        /// The key being written.
        key: String,
        /// The value's size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// Writing a new key would exceed
    /// [`StateLimits::max_keys_per_scope`](crate::StateLimits::max_keys_per_scope).
    #[error(
        "cannot add state key {key:?}: the scope ({scope}) already holds the maximum of {limit} keys; delete keys that are no longer needed"
    )]
    StateTooManyKeys {
        /// The scope, described.
        scope: String,
        /// The new key that was refused.
        key: String,
        /// The limit.
        limit: u64,
    },

    /// A secret name used characters outside `A-Z a-z 0-9 _ - .` or was empty or too long.
    #[error(
        "invalid secret name {name:?}: use 1 to 128 characters from A-Z, a-z, 0-9, '_', '-' and '.'"
    )]
    InvalidSecretName {
        /// The refused name.
        name: String,
    },

    /// A tenant name used characters outside `a-z 0-9 -`, started with `-`, or was empty or
    /// too long.
    #[error(
        "invalid tenant name {name:?}: use 1 to 63 characters from a-z, 0-9 and '-', not starting with '-'"
    )]
    InvalidTenantName {
        /// The refused name.
        name: String,
    },
}

impl StoreError {
    /// Whether the failure is about the moment, not the call: the database was busy or locked
    /// (SQLite), a transaction lost a serialization race or a deadlock (PostgreSQL), or the
    /// connection dropped. Trying the call again may succeed.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            StoreError::Query { source, .. } | StoreError::Open { source, .. } => source,
            _ => return false,
        };
        match source {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|code| crate::dialect::transient_code(&code)),
            _ => false,
        }
    }
}
