//! What every store test file shares: the databases a test runs on and `on_both!`.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;
use weft_store::{Store, StoreError};

/// The database one test runs on.
pub enum TestDatabase {
    /// A SQLite file in a temporary directory.
    Sqlite(tempfile::TempDir),
    /// A fresh schema on the test server, and the URL that reaches it.
    Postgres { schema: String, url: String },
}

fn admin_url() -> String {
    std::env::var("WEFT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is needed for the store tests (.ci/run starts it): {e}",
                admin_url()
            )
        })
}

impl TestDatabase {
    pub fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    pub async fn postgres() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "weft_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .execute(&mut admin().await)
        .await
        .unwrap();
        let separator = if admin_url().contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{separator}options=-c%20search_path%3D{schema}",
            admin_url()
        );
        Self::Postgres { schema, url }
    }

    /// A store on the database, with a pool of its own, as another weft process would open it.
    pub async fn open(&self) -> Result<Store, StoreError> {
        match self {
            Self::Sqlite(dir) => Store::open_sqlite(dir.path().join("weft.db")).await,
            Self::Postgres { url, .. } => Store::open_postgres(url).await,
        }
    }

    /// Runs `sql` on the database behind the store's back.
    pub async fn execute(&self, sql: &str) {
        match self {
            Self::Sqlite(dir) => {
                let url = format!("sqlite://{}", dir.path().join("weft.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            }
            Self::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
            }
        }
    }

    /// Drops the PostgreSQL schema; the SQLite directory goes with the value.
    pub async fn remove(self) {
        if let Self::Postgres { schema, .. } = self {
            sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut admin().await)
                .await
                .unwrap();
        }
    }
}

/// `on_both!(name, |store| { ... })`, or `|store, database|` for a test that also reopens or
/// edits the database: a module `name` with the test `sqlite` and the test `postgres`.
macro_rules! on_both {
    ($(#[$doc:meta])* $name:ident, |$store:ident| $body:block) => {
        on_both!($(#[$doc])* $name, |$store, _database| $body);
    };
    ($(#[$doc:meta])* $name:ident, |$store:ident, $database:ident| $body:block) => {
        $(#[$doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn check($store: weft_store::Store, $database: &$crate::common::TestDatabase) $body

            async fn on(database: $crate::common::TestDatabase) {
                check(database.open().await.unwrap(), &database).await;
                database.remove().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                on($crate::common::TestDatabase::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                on($crate::common::TestDatabase::postgres().await).await;
            }
        }
    };
}
