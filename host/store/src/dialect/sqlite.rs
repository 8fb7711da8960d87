//! SQLite: a private file in WAL mode, or a database in memory for tests.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Dialect, Pool};
use crate::StoreError;

pub(crate) const DIALECT: Dialect = Dialect {
    // Every write transaction takes the write lock up front: a deferred transaction that reads
    // and then writes cannot wait for a concurrent writer (SQLite answers BUSY_SNAPSHOT at
    // once), where an immediate one waits under the busy timeout. That lock also keeps two
    // processes from migrating at once, and makes row and name locks needless.
    begin_write: "BEGIN IMMEDIATE",
    lock_selected: "",
    lock_name: None,
    migration_lock: None,
    bytes_type: "BLOB",
    transient_code,
};

/// BUSY (5) and LOCKED (6), with their extended codes (BUSY_SNAPSHOT 517, ...).
fn transient_code(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

/// How long a writer waits for another writer (possibly another weft process) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating if needed, with private parent directories) the database file at `path`.
pub(crate) async fn open_file(path: &Path) -> Result<Pool, StoreError> {
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
    Ok(Pool::Sqlite(pool))
}

/// Opens a private database in memory.
pub(crate) async fn open_in_memory() -> Result<Pool, StoreError> {
    let location = "sqlite::memory:";
    let open_error = |source| StoreError::Open {
        location: location.to_owned(),
        source,
    };
    let options = SqliteConnectOptions::from_str(location)
        .map_err(open_error)?
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
        .map_err(open_error)?;
    Ok(Pool::Sqlite(pool))
}

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
