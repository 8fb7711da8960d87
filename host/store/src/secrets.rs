//! Sealed rows: secrets, and the tokens token endpoints issued. The store keeps their sealed
//! bytes (`nonce + ciphertext`) and never sees plaintext; the cipher lives in
//! `weft-capabilities`.

use crate::dialect::{bind, execute, on_database};
use crate::{SecretEntry, Store, StoreError, millis_to_time, now_millis};

impl Store {
    /// Stores (or replaces) a secret's sealed bytes (`nonce + ciphertext`) under `name`.
    pub async fn secret_put(
        &self,
        tenant: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        check_secret_name(name)?;
        let action = format!("store secret {name:?} of tenant {tenant:?}");
        self.sealed(SECRETS, tenant, name, action).put(sealed).await
    }

    /// Reads a secret's sealed bytes; `None` if no secret of that name exists for the tenant.
    pub async fn secret_get(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let action = format!("read secret {name:?} of tenant {tenant:?}");
        self.sealed(SECRETS, tenant, name, action).get().await
    }

    /// Deletes a secret. Returns whether it existed.
    pub async fn secret_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let action = format!("delete secret {name:?} of tenant {tenant:?}");
        self.sealed(SECRETS, tenant, name, action).delete().await
    }

    /// The tenant's secrets by name, sorted, with when each was last written.
    pub async fn secret_list(&self, tenant: &str) -> Result<Vec<SecretEntry>, StoreError> {
        let action = || format!("list secrets of tenant {tenant:?}");
        let rows: Vec<(String, i64)> = on_database!(self, action(), |pool| {
            let sql = "SELECT name, updated_at FROM secrets WHERE tenant = $1 ORDER BY name";
            sqlx::query_as(sql).bind(tenant).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(name, updated_at)| SecretEntry {
                name,
                updated_at: millis_to_time(updated_at),
            })
            .collect())
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
        let action = "read a kept token".to_owned();
        self.sealed(TOKENS, tenant, credential, action).get().await
    }

    /// Keeps (or replaces) the sealed token for `credential`.
    pub async fn token_put(
        &self,
        tenant: &str,
        credential: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let action = "keep a token".to_owned();
        self.sealed(TOKENS, tenant, credential, action)
            .put(sealed)
            .await
    }

    /// Forgets the token for `credential` (the upstream refused it).
    pub async fn token_delete(&self, tenant: &str, credential: &str) -> Result<(), StoreError> {
        let action = "forget a token".to_owned();
        let row = self.sealed(TOKENS, tenant, credential, action);
        row.delete().await.map(|_existed| ())
    }

    /// One row of a table of sealed rows; `action` says what the caller is doing, for errors.
    fn sealed<'a>(
        &'a self,
        (table, column): SealedTable,
        tenant: &'a str,
        name: &'a str,
        action: String,
    ) -> SealedRow<'a> {
        SealedRow {
            store: self,
            table,
            column,
            key: (tenant, name),
            action,
        }
    }
}

/// A table of sealed rows, `(tenant, <name>, sealed, updated_at)`, and its name column.
type SealedTable = (&'static str, &'static str);

const SECRETS: SealedTable = ("secrets", "name");
const TOKENS: SealedTable = ("tokens", "credential");

/// A tenant's secret or token: what the two share.
struct SealedRow<'a> {
    store: &'a Store,
    table: &'static str,
    column: &'static str,
    /// The tenant and the row's name.
    key: (&'a str, &'a str),
    action: String,
}

impl SealedRow<'_> {
    async fn put(&self, sealed: &[u8]) -> Result<(), StoreError> {
        let (table, column, (tenant, name)) = (self.table, self.column, self.key);
        let sql = format!(
            "INSERT INTO {table} (tenant, {column}, sealed, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, {column})
             DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at"
        );
        let sql = sql.as_str();
        on_database!(self.store, &self.action, |pool| {
            execute!(pool, sql, tenant, name, sealed, now_millis())
        })?;
        Ok(())
    }

    async fn get(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let (tenant, name) = self.key;
        let sql = format!(
            "SELECT sealed FROM {} WHERE tenant = $1 AND {} = $2",
            self.table, self.column
        );
        let query = sql.as_str();
        on_database!(self.store, &self.action, |pool| {
            bind!(sqlx::query_scalar(query), tenant, name)
                .fetch_optional(pool)
                .await
        })
    }

    /// Whether there was a row to delete.
    async fn delete(&self) -> Result<bool, StoreError> {
        let (tenant, name) = self.key;
        let sql = format!(
            "DELETE FROM {} WHERE tenant = $1 AND {} = $2",
            self.table, self.column
        );
        let sql = sql.as_str();
        let deleted = on_database!(self.store, &self.action, |pool| {
            execute!(pool, sql, tenant, name)
        })?;
        Ok(deleted > 0)
    }
}
