//! What differs between the databases the store runs on, in one place.
//!
//! Every query is written once, with `$1`-style placeholders that SQLite and PostgreSQL both
//! accept, and runs through [`on_database!`]: the one `match` over the databases, which
//! compiles an operation's body once per driver. What the shared SQL cannot say the same way
//! is a [`Dialect`], a handful of spellings; how a pool is opened is in `sqlite` and `postgres`.
//! A further database is a variant of [`Pool`], an arm in [`on_database!`], and a module with its
//! opening and its `Dialect`.

pub(crate) mod postgres;
pub(crate) mod sqlite;

/// The connection pool of the database a store is on.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    /// How this database spells what the shared SQL leaves open.
    pub(crate) fn dialect(&self) -> &'static Dialect {
        match self {
            Pool::Sqlite(_) => &sqlite::DIALECT,
            Pool::Postgres(_) => &postgres::DIALECT,
        }
    }
}

/// Every database the store supports, for what must be recognised without knowing which one
/// an error came from.
const DIALECTS: [&Dialect; 2] = [&sqlite::DIALECT, &postgres::DIALECT];

/// What one database spells its own way.
#[derive(Debug)]
pub(crate) struct Dialect {
    /// Starts a transaction that will write.
    pub(crate) begin_write: &'static str,
    /// Ends a `SELECT` of rows the same transaction goes on to change, so that a concurrent
    /// writer waits for it.
    pub(crate) lock_selected: &'static str,
    /// Takes a lock on the name bound to `$1` until the transaction ends, where the write
    /// transaction alone does not keep concurrent writers from deciding on the same rows (on a
    /// count of them, say, which no row lock covers).
    pub(crate) lock_name: Option<&'static str>,
    /// Run first in the migration transaction, where the transaction alone does not keep two
    /// processes from applying the same migration.
    pub(crate) migration_lock: Option<&'static str>,
    /// The column type of byte strings, which the migrations spell `BLOB`.
    pub(crate) bytes_type: &'static str,
    /// Whether a database error code says the call failed for the moment (busy, a lost
    /// serialization race, a dropped connection) and may succeed if tried again.
    pub(crate) transient_code: fn(&str) -> bool,
}

impl Dialect {
    /// A migration's SQL with this database's type names.
    pub(crate) fn schema_sql(&self, sql: &str) -> String {
        sql.replace(" BLOB ", &format!(" {} ", self.bytes_type))
    }
}

/// Whether an error code of any supported database is a transient one.
pub(crate) fn transient_code(code: &str) -> bool {
    DIALECTS.iter().any(|d| (d.transient_code)(code))
}

/// `on_database!(store, what_it_does, |pool| body)`: runs `body` with `pool` bound to the
/// store's pool, typed for its database, and tries it again while it fails transiently. `body` is written once and compiled once per database,
/// so it may use each driver's types without naming them. It evaluates to a
/// `Result<_, sqlx::Error>`, and its error becomes a [`StoreError::Query`] saying what the store
/// was doing (`what_it_does`, a string evaluated only then); without that, `body` gives a
/// `Result<_, StoreError>` itself.
///
/// [`StoreError::Query`]: crate::StoreError::Query
macro_rules! on_database {
    ($store:expr, $action:expr, |$pool:ident| $body:expr) => {{
        let action = || $action;
        $crate::dialect::on_database!($store, |$pool| {
            let done: Result<_, sqlx::Error> = async { $body }.await;
            done.map_err(|source| $crate::StoreError::Query {
                action: action().to_string(),
                source,
            })
        })
    }};
    ($store:expr, |$pool:ident| $body:expr) => {
        $store
            .retrying(|| async move {
                match &$store.pool {
                    $crate::dialect::Pool::Sqlite($pool) => $body,
                    $crate::dialect::Pool::Postgres($pool) => $body,
                }
            })
            .await
    };
}
pub(crate) use on_database;

/// `bind!(query, a, b, ...)`: `query` with `a` bound to `$1`, `b` to `$2`, and so on.
macro_rules! bind {
    ($query:expr $(, $value:expr)* $(,)?) => {
        $query$(.bind($value))*
    };
}
pub(crate) use bind;

/// `execute!(executor, sql, a, b, ...)`: runs the statement `sql` with `a`, `b`, ... bound to
/// `$1`, `$2`, ...; how many rows it changed.
macro_rules! execute {
    ($executor:expr, $sql:expr $(, $value:expr)* $(,)?) => {
        $crate::dialect::bind!(sqlx::query($sql) $(, $value)*)
            .execute($executor)
            .await
            .map(|done| done.rows_affected())
    };
}
pub(crate) use execute;
