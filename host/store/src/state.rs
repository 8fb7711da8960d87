//! Plugin state: small values a plugin keeps between runs, per scope, within hard limits.

use crate::dialect::{bind, execute, on_database};
use crate::{StateScope, Store, StoreError, now_millis};

impl StateScope {
    /// Tenant, plugin, connection and flow, in the order the state queries bind them.
    fn parts(&self) -> (&str, &str, &str, &str) {
        (&self.tenant, &self.plugin, &self.connection, &self.flow)
    }
}

impl Store {
    /// Reads one state value; `None` if the key was never set or was deleted.
    pub async fn state_get(
        &self,
        scope: &StateScope,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_key(key)?;
        let (tenant, plugin, connection, flow) = scope.parts();
        let action = || format!("read state key {key:?} ({scope})");
        on_database!(self, action(), |pool| {
            let query = sqlx::query_scalar(
                "SELECT value FROM plugin_state
                 WHERE tenant = $1 AND plugin = $2 AND connection = $3 AND flow = $4 AND key = $5",
            );
            bind!(query, tenant, plugin, connection, flow, key)
                .fetch_optional(pool)
                .await
        })
    }

    /// Writes one state value, replacing any previous one. Refused when the key or value is over
    /// its limit, or when the key is new and the scope already holds the maximum number of keys.
    ///
    /// The key count is checked by the statement that writes, in a write transaction holding
    /// the scope's lock, so concurrent writers cannot together take a scope over its limit.
    pub async fn state_set(
        &self,
        scope: &StateScope,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        self.check_key(key)?;
        let limits = self.limits;
        if value.len() > limits.max_value_bytes {
            return Err(StoreError::StateValueTooLarge {
                key: key.to_owned(),
                size: value.len(),
                limit: limits.max_value_bytes,
            });
        }
        let max_keys = i64::try_from(limits.max_keys_per_scope).unwrap_or(i64::MAX);
        let dialect = self.pool.dialect();
        let (tenant, plugin, connection, flow) = scope.parts();
        let action = || format!("write state key {key:?} ({scope})");
        let written = on_database!(self, action(), |pool| {
            let mut tx = pool.begin_with(dialect.begin_write).await?;
            if let Some(lock) = dialect.lock_name {
                execute!(&mut *tx, lock, scope.to_string())?;
            }
            let insert = sqlx::query(
                "INSERT INTO plugin_state (tenant, plugin, connection, flow, key, value, updated_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7
                 WHERE EXISTS (SELECT 1 FROM plugin_state
                               WHERE tenant = $1 AND plugin = $2 AND connection = $3 AND flow = $4
                                 AND key = $5)
                    OR (SELECT COUNT(*) FROM plugin_state
                        WHERE tenant = $1 AND plugin = $2 AND connection = $3 AND flow = $4) < $8
                 ON CONFLICT (tenant, plugin, connection, flow, key)
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            );
            let insert = bind!(insert, tenant, plugin, connection, flow, key, value);
            let written = bind!(insert, now_millis(), max_keys)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(written.rows_affected())
        })?;
        if written > 0 {
            Ok(())
        } else {
            Err(StoreError::StateTooManyKeys {
                scope: scope.to_string(),
                key: key.to_owned(),
                limit: limits.max_keys_per_scope,
            })
        }
    }

    /// Deletes one state value. Returns whether it existed.
    pub async fn state_delete(&self, scope: &StateScope, key: &str) -> Result<bool, StoreError> {
        self.check_key(key)?;
        let (tenant, plugin, connection, flow) = scope.parts();
        let action = || format!("delete state key {key:?} ({scope})");
        let deleted = on_database!(self, action(), |pool| {
            let sql = "DELETE FROM plugin_state
                       WHERE tenant = $1 AND plugin = $2 AND connection = $3 AND flow = $4
                         AND key = $5";
            execute!(pool, sql, tenant, plugin, connection, flow, key)
        })?;
        Ok(deleted > 0)
    }

    /// How many keys a scope holds.
    pub async fn state_count(&self, scope: &StateScope) -> Result<u64, StoreError> {
        let (tenant, plugin, connection, flow) = scope.parts();
        let count: i64 = on_database!(self, format!("count state keys ({scope})"), |pool| {
            let query = sqlx::query_scalar(
                "SELECT COUNT(*) FROM plugin_state
                 WHERE tenant = $1 AND plugin = $2 AND connection = $3 AND flow = $4",
            );
            bind!(query, tenant, plugin, connection, flow)
                .fetch_one(pool)
                .await
        })?;
        Ok(count.max(0) as u64)
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
}
