//! Tenants, the API tokens that act for them (or for the operator), and deleting a tenant with
//! everything it owns. The store keeps a token's hash, never the token.

use std::time::SystemTime;

use crate::dialect::{bind, execute, on_database};
use crate::flows::SERVING_CHANGED;
use crate::{Store, StoreError, millis_to_time, now_millis};

/// Whether a tenant's flows run and its token is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    /// Its flows run; its API token works.
    Active,
    /// Its flows do not run and its API token is refused, until it is resumed; nothing it owns
    /// is deleted.
    Suspended,
}

impl TenantStatus {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            other => Err(StoreError::UnknownStatus {
                of: "tenant",
                value: other.to_owned(),
            }),
        }
    }
}

/// A tenant as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// Its name, which every row it owns is keyed by.
    pub name: String,
    /// Whether it is served.
    pub status: TenantStatus,
    /// When it was created.
    pub created_at: SystemTime,
}

/// Who an API token acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenHolder {
    /// The operator: tenants are made and removed with it.
    Operator,
    /// One tenant, and only what it owns.
    Tenant(String),
}

/// An API token as listed: never the token, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// Its public id, which names it to revoke it.
    pub id: String,
    /// Who it acts for.
    pub holder: TokenHolder,
    /// When it was made.
    pub created_at: SystemTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
}

/// The longest tenant name.
pub const TENANT_NAME_MAX: usize = 63;

/// Tenant names go into URLs, logs and metric labels: lower-case letters, digits and `-`,
/// starting with a letter or digit.
pub fn check_tenant_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= TENANT_NAME_MAX
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidTenantName {
            name: name.to_owned(),
        })
    }
}

/// Every table with a `tenant` column, emptied of a deleted tenant's rows (after the rows that
/// hang off its runs, before its row in `tenants`).
const TENANT_TABLES: &[&str] = &[
    "plugin_state",
    "secrets",
    "tokens",
    "cursors",
    "dataset_records",
    "webhook_events",
    "webhook_subscriptions",
    "flow_leases",
    "deployed_flows",
    "run_requests",
    "api_tokens",
    "tenant_quotas",
    "tenant_plugins",
    "runs",
];

type TenantRow = (String, String, i64);

fn tenant_record((name, status, created_at): TenantRow) -> Result<TenantRecord, StoreError> {
    Ok(TenantRecord {
        name,
        status: TenantStatus::parse(&status)?,
        created_at: millis_to_time(created_at),
    })
}

impl Store {
    /// Creates an active tenant; false (and nothing changed) if one of that name exists.
    pub async fn tenant_create(&self, name: &str) -> Result<bool, StoreError> {
        check_tenant_name(name)?;
        let active = TenantStatus::Active.as_str();
        let created = on_database!(self, format!("create tenant {name:?}"), |pool| {
            let sql = "INSERT INTO tenants (name, status, created_at) VALUES ($1, $2, $3)
                       ON CONFLICT (name) DO NOTHING";
            execute!(pool, sql, name, active, now_millis())
        })?;
        Ok(created == 1)
    }

    /// The tenant called `name`, if it exists.
    pub async fn tenant_get(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        let row: Option<TenantRow> = on_database!(self, format!("read tenant {name:?}"), |pool| {
            let sql = "SELECT name, status, created_at FROM tenants WHERE name = $1";
            sqlx::query_as(sql).bind(name).fetch_optional(pool).await
        })?;
        row.map(tenant_record).transpose()
    }

    /// Every tenant, by name.
    pub async fn tenant_list(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows: Vec<TenantRow> = on_database!(self, "list tenants", |pool| {
            let sql = "SELECT name, status, created_at FROM tenants ORDER BY name";
            sqlx::query_as(sql).fetch_all(pool).await
        })?;
        rows.into_iter().map(tenant_record).collect()
    }

    /// Suspends or resumes a tenant; false if there is no such tenant.
    pub async fn tenant_set_status(
        &self,
        name: &str,
        status: TenantStatus,
    ) -> Result<bool, StoreError> {
        let status = status.as_str();
        let changed = on_database!(self, format!("set tenant {name:?} {status}"), |pool| {
            let sql = "UPDATE tenants SET status = $1 WHERE name = $2";
            let changed = execute!(pool, sql, status, name)?;
            execute!(pool, SERVING_CHANGED)?;
            Ok(changed)
        })?;
        Ok(changed == 1)
    }

    /// Deletes a tenant and everything it owns (flows, runs and their steps and error logs,
    /// cursors, datasets, secrets, tokens, plugin state, webhook events and registrations,
    /// API tokens), in one transaction; false if there was no such tenant.
    pub async fn tenant_delete(&self, name: &str) -> Result<bool, StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        on_database!(self, format!("delete tenant {name:?}"), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            for child in ["step_runs", "run_errors"] {
                let sql = format!(
                    "DELETE FROM {child} WHERE run_id IN (SELECT id FROM runs WHERE tenant = $1)"
                );
                execute!(&mut *tx, &sql, name)?;
            }
            for table in TENANT_TABLES {
                let sql = format!("DELETE FROM {table} WHERE tenant = $1");
                execute!(&mut *tx, &sql, name)?;
            }
            let existed = execute!(&mut *tx, "DELETE FROM tenants WHERE name = $1", name)?;
            execute!(&mut *tx, SERVING_CHANGED)?;
            tx.commit().await?;
            Ok(existed == 1)
        })
    }
}

type TokenRow = (String, Option<String>, i64, Option<i64>);

fn token_record((id, tenant, created_at, revoked_at): TokenRow) -> ApiTokenRecord {
    ApiTokenRecord {
        id,
        holder: tenant.map_or(TokenHolder::Operator, TokenHolder::Tenant),
        created_at: millis_to_time(created_at),
        revoked_at: revoked_at.map(millis_to_time),
    }
}

/// API tokens, kept as hashes.
impl Store {
    /// Records a token by its public `id` and the hash of its whole text.
    pub async fn api_token_add(
        &self,
        id: &str,
        holder: &TokenHolder,
        hash: &str,
    ) -> Result<(), StoreError> {
        let tenant = match holder {
            TokenHolder::Operator => None,
            TokenHolder::Tenant(name) => Some(name.as_str()),
        };
        on_database!(self, format!("record API token {id}"), |pool| {
            let sql =
                "INSERT INTO api_tokens (id, tenant, hash, created_at) VALUES ($1, $2, $3, $4)";
            execute!(pool, sql, id, tenant, hash, now_millis())
        })?;
        Ok(())
    }

    /// Who the unrevoked token with this hash acts for, if there is one. A tenant's token
    /// counts only while its tenant is active.
    pub async fn api_token_holder(&self, hash: &str) -> Result<Option<TokenHolder>, StoreError> {
        let active = TenantStatus::Active.as_str();
        let row: Option<(Option<String>,)> = on_database!(self, "look up an API token", |pool| {
            let sql = "SELECT t.tenant FROM api_tokens t LEFT JOIN tenants n ON n.name = t.tenant
                       WHERE t.hash = $1 AND t.revoked_at IS NULL
                         AND (t.tenant IS NULL OR n.status = $2)";
            bind!(sqlx::query_as(sql), hash, active)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(tenant,)| tenant.map_or(TokenHolder::Operator, TokenHolder::Tenant)))
    }

    /// The tokens of `holder`, newest first.
    pub async fn api_token_list(
        &self,
        holder: &TokenHolder,
    ) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let tenant = match holder {
            TokenHolder::Operator => None,
            TokenHolder::Tenant(name) => Some(name.as_str()),
        };
        let rows: Vec<TokenRow> = on_database!(self, "list API tokens", |pool| {
            let sql = "SELECT id, tenant, created_at, revoked_at FROM api_tokens
                       WHERE tenant IS NOT DISTINCT FROM $1 ORDER BY created_at DESC, id";
            sqlx::query_as(sql).bind(tenant).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(token_record).collect())
    }

    /// Revokes the token `id` of `holder` (every unrevoked one of `holder` when `id` is
    /// `None`); how many were revoked.
    pub async fn api_token_revoke(
        &self,
        holder: &TokenHolder,
        id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let tenant = match holder {
            TokenHolder::Operator => None,
            TokenHolder::Tenant(name) => Some(name.as_str()),
        };
        on_database!(self, "revoke API tokens", |pool| {
            let sql = "UPDATE api_tokens SET revoked_at = $1
                       WHERE tenant IS NOT DISTINCT FROM $2 AND revoked_at IS NULL
                         AND ($3 IS NULL OR id = $3)";
            execute!(pool, sql, now_millis(), tenant, id)
        })
    }
}

/// Quotas an operator set for one tenant, over the server's defaults.
impl Store {
    /// Sets (`Some`) or clears (`None`, back to the server's default) a tenant's quota `name`.
    pub async fn quota_set(
        &self,
        tenant: &str,
        name: &str,
        value: Option<u64>,
    ) -> Result<(), StoreError> {
        on_database!(
            self,
            format!("set quota {name} of tenant {tenant:?}"),
            |pool| {
                match value {
                    Some(value) => {
                        let value = value.min(i64::MAX as u64) as i64;
                        let sql =
                            "INSERT INTO tenant_quotas (tenant, name, value) VALUES ($1, $2, $3)
                               ON CONFLICT (tenant, name) DO UPDATE SET value = excluded.value";
                        execute!(pool, sql, tenant, name, value)
                    }
                    None => {
                        let sql = "DELETE FROM tenant_quotas WHERE tenant = $1 AND name = $2";
                        execute!(pool, sql, tenant, name)
                    }
                }
            }
        )?;
        Ok(())
    }

    /// The quotas set for a tenant, by name.
    pub async fn quotas(&self, tenant: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_database!(
            self,
            format!("read the quotas of tenant {tenant:?}"),
            |pool| {
                let sql = "SELECT name, value FROM tenant_quotas WHERE tenant = $1 ORDER BY name";
                sqlx::query_as(sql).bind(tenant).fetch_all(pool).await
            }
        )?;
        Ok(rows
            .into_iter()
            .map(|(name, value)| (name, value.max(0) as u64))
            .collect())
    }
}
