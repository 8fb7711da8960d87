//! PostgreSQL, for several weft processes sharing one database.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::{Dialect, Pool};
use crate::StoreError;

pub(crate) const DIALECT: Dialect = Dialect {
    begin_write: "BEGIN",
    lock_selected: " FOR UPDATE",
    lock_name: Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"),
    // Every weft process migrating the same database takes this advisory lock first; its key is
    // 0x7765_6674, "weft".
    migration_lock: Some("SELECT pg_advisory_xact_lock(2003134068)"),
    bytes_type: "BYTEA",
    transient_code,
};

/// A serialization failure, a deadlock, a connection exception (class 08), or the server
/// shutting the connection (57P01-57P03).
fn transient_code(code: &str) -> bool {
    matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

/// Connects to `url` (`postgres://user@host:port/database`).
pub(crate) async fn open(url: &str) -> Result<Pool, StoreError> {
    // Never echo a password in messages.
    let location = match url.split_once('@') {
        Some((_, host)) => format!("postgres://…@{host}"),
        None => url.to_owned(),
    };
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|source| StoreError::Open { location, source })?;
    Ok(Pool::Postgres(pool))
}
