//! Plugins a tenant uploaded: kept whole with their description, the tenant's own beside the
//! server's shared plugins.

use std::time::SystemTime;

use crate::dialect::{bind, execute, on_database};
use crate::flows::SERVING_CHANGED;
use crate::{Store, StoreError, millis_to_time, now_millis};

/// A plugin a tenant uploaded, as listed (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPlugin {
    /// The name its `describe` gives, which flows name it by.
    pub name: String,
    /// The version its `describe` gives.
    pub version: String,
    /// `connector` or `transform`.
    pub kind: String,
    /// The SHA-256 of its bytes, in hex.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last uploaded.
    pub uploaded_at: SystemTime,
}

type PluginRow = (String, String, String, String, i64, i64);

impl Store {
    /// Keeps `wasm` as version `plugin.version` of `tenant`'s plugin `plugin.name` (replacing
    /// that version, beside the others). Flows served are planned again
    /// ([`Store::serving_generation`] moves).
    pub async fn plugin_put(
        &self,
        tenant: &str,
        plugin: &TenantPlugin,
        wasm: &[u8],
    ) -> Result<(), StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        let p = plugin;
        let size = p.size as i64;
        on_database!(self, format!("keep plugin {:?}", p.name), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            let sql = "INSERT INTO tenant_plugins
                           (tenant, name, version, kind, digest, size, wasm, uploaded_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                       ON CONFLICT (tenant, name, version) DO UPDATE SET
                           kind = excluded.kind, digest = excluded.digest, size = excluded.size,
                           wasm = excluded.wasm, uploaded_at = excluded.uploaded_at";
            let query = bind!(sqlx::query(sql), tenant, &p.name, &p.version, &p.kind);
            bind!(query, &p.digest, size, wasm, now_millis())
                .execute(&mut *tx)
                .await?;
            execute!(&mut *tx, SERVING_CHANGED)?;
            tx.commit().await
        })
    }

    /// The tenant's plugins, every version, by name.
    pub async fn plugin_list(&self, tenant: &str) -> Result<Vec<TenantPlugin>, StoreError> {
        let rows: Vec<PluginRow> = on_database!(self, "list the tenant's plugins", |pool| {
            let sql = "SELECT name, version, kind, digest, size, uploaded_at
                       FROM tenant_plugins WHERE tenant = $1 ORDER BY name, uploaded_at";
            sqlx::query_as(sql).bind(tenant).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(name, version, kind, digest, size, at)| TenantPlugin {
                name,
                version,
                kind,
                digest,
                size: size.max(0) as u64,
                uploaded_at: millis_to_time(at),
            })
            .collect())
    }

    /// For each tenant with plugins of its own, their names and digests in one text: it
    /// changes when any of them is uploaded again or deleted. One query.
    pub async fn plugin_fingerprints(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String, String)> =
            on_database!(self, "list every tenant's plugins", |pool| {
                let sql = "SELECT tenant, name, digest FROM tenant_plugins
                           ORDER BY tenant, name, version";
                sqlx::query_as(sql).fetch_all(pool).await
            })?;
        let mut prints = std::collections::HashMap::<String, String>::new();
        for (tenant, name, digest) in rows {
            let print = prints.entry(tenant).or_default();
            print.push_str(&name);
            print.push('=');
            print.push_str(&digest);
            print.push(';');
        }
        Ok(prints)
    }

    /// The bytes of the tenant's plugin whose digest is `digest`.
    pub async fn plugin_wasm(
        &self,
        tenant: &str,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        on_database!(self, "read a plugin", |pool| {
            let sql = "SELECT wasm FROM tenant_plugins WHERE tenant = $1 AND digest = $2";
            bind!(sqlx::query_scalar(sql), tenant, digest)
                .fetch_optional(pool)
                .await
        })
    }

    /// Deletes version `version` of the tenant's plugin `name`, or every version when `None`;
    /// false if there was none. Flows served are planned again (one that named it no longer
    /// plans, unless another version or a shared plugin takes the name).
    pub async fn plugin_delete(
        &self,
        tenant: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<bool, StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        on_database!(self, format!("delete plugin {name:?}"), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            let deleted = match version {
                Some(version) => {
                    let sql = "DELETE FROM tenant_plugins
                               WHERE tenant = $1 AND name = $2 AND version = $3";
                    execute!(&mut *tx, sql, tenant, name, version)?
                }
                None => {
                    let sql = "DELETE FROM tenant_plugins WHERE tenant = $1 AND name = $2";
                    execute!(&mut *tx, sql, tenant, name)?
                }
            };
            execute!(&mut *tx, SERVING_CHANGED)?;
            tx.commit().await?;
            Ok(deleted > 0)
        })
    }
}
