//! The operator's routes: tenants, suspended, resumed and deleted with all they own, and their
//! API tokens, shown once when made.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weft_server::Quota;
use weft_store::{ApiTokenRecord, TenantRecord, TenantStatus, TokenHolder};

use crate::auth::Operator;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::{Api, IssuedToken, issue_token, time};

pub(crate) fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, delete))
        .routes(routes!(suspend))
        .routes(routes!(resume))
        .routes(routes!(token_create, token_list))
        .routes(routes!(token_revoke))
        .routes(routes!(quotas_show, quotas_set))
}

/// A tenant's quotas: each set quota's limit (a quota absent is no limit), the tenant's own
/// over the server's defaults.
#[derive(Serialize, ToSchema)]
pub struct QuotaLimits {
    /// By quota name: `concurrent_runs`, `runs_per_hour`, `cpu_ms_per_hour`,
    /// `requests_per_hour`, `bytes_per_hour`, `records_per_day`, `flows`.
    pub limits: BTreeMap<String, u64>,
}

/// Quotas to set for a tenant: a number sets one, `null` puts it back to the server's default,
/// a quota left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaChanges {
    /// Runs of the tenant at once.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub concurrent_runs: Option<Option<u64>>,
    /// Runs started in a clock hour.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub runs_per_hour: Option<Option<u64>>,
    /// Plugin CPU milliseconds in a clock hour.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub cpu_ms_per_hour: Option<Option<u64>>,
    /// Requests in a clock hour.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub requests_per_hour: Option<Option<u64>>,
    /// Request and response bytes in a clock hour.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub bytes_per_hour: Option<Option<u64>>,
    /// Records read and written in a UTC day.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub records_per_day: Option<Option<u64>>,
    /// Flows deployed at once.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub flows: Option<Option<u64>>,
    /// Bytes of one plugin uploaded.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub plugin_bytes: Option<Option<u64>>,
    /// Records the tenant's datasets hold in all (checked when a run starts).
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable)]
    pub dataset_rows: Option<Option<u64>>,
}

/// A field that is present: `Some` of its value, `null` included. A limit is a whole number
/// from 0 to 2^63 - 1 (what the store keeps), also when written `12.0`.
fn given<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(Some(None));
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= i64::MAX as f64)
            .map(|f| f as u64)
    });
    match whole.filter(|v| *v <= i64::MAX as u64) {
        Some(limit) => Ok(Some(Some(limit))),
        None => Err(serde::de::Error::custom(format!(
            "a quota's limit is a whole number from 0 to {}, not {number}",
            i64::MAX
        ))),
    }
}

impl QuotaChanges {
    fn changes(&self) -> [(Quota, Option<Option<u64>>); 9] {
        [
            (Quota::ConcurrentRuns, self.concurrent_runs),
            (Quota::RunsPerHour, self.runs_per_hour),
            (Quota::CpuMsPerHour, self.cpu_ms_per_hour),
            (Quota::RequestsPerHour, self.requests_per_hour),
            (Quota::BytesPerHour, self.bytes_per_hour),
            (Quota::RecordsPerDay, self.records_per_day),
            (Quota::Flows, self.flows),
            (Quota::PluginBytes, self.plugin_bytes),
            (Quota::DatasetRows, self.dataset_rows),
        ]
    }
}

async fn limits_of(api: &Api, tenant: &str) -> Result<QuotaLimits, ApiError> {
    let quotas = api.quotas.of(&api.store, tenant).await?;
    Ok(QuotaLimits {
        limits: quotas
            .iter()
            .map(|(q, v)| (q.name().to_owned(), v))
            .collect(),
    })
}

/// A tenant's quotas.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/quotas", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path)),
    responses(
        (status = 200, body = QuotaLimits),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn quotas_show(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(tenant): Path<String>,
) -> Result<axum::Json<QuotaLimits>, ApiError> {
    existing(&api, &tenant).await?;
    Ok(axum::Json(limits_of(&api, &tenant).await?))
}

/// Sets a tenant's own quotas over the server's defaults.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/quotas", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path)),
    request_body = QuotaChanges,
    responses(
        (status = 200, body = QuotaLimits),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn quotas_set(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(tenant): Path<String>,
    Json(changes): Json<QuotaChanges>,
) -> Result<axum::Json<QuotaLimits>, ApiError> {
    existing(&api, &tenant).await?;
    for (quota, change) in changes.changes() {
        if let Some(value) = change {
            api.store.quota_set(&tenant, quota.name(), value).await?;
        }
    }
    api.changed();
    Ok(axum::Json(limits_of(&api, &tenant).await?))
}

/// A tenant to make.
#[derive(Deserialize, ToSchema)]
pub struct NewTenant {
    /// 1 to 63 characters from a-z, 0-9 and '-', not starting with '-'.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
}

/// A tenant.
#[derive(Serialize, ToSchema)]
pub struct Tenant {
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    pub created_at: String,
}

impl From<TenantRecord> for Tenant {
    fn from(t: TenantRecord) -> Self {
        Tenant {
            name: t.name,
            status: t.status.as_str().to_owned(),
            created_at: time(t.created_at),
        }
    }
}

/// A token just made: its text is shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewToken {
    /// The id it is listed and revoked by.
    pub id: String,
    /// The token, for `Authorization: Bearer`.
    pub token: String,
}

impl From<IssuedToken> for NewToken {
    fn from(t: IssuedToken) -> Self {
        NewToken {
            id: t.id,
            token: t.token,
        }
    }
}

/// A tenant just made, with its first token.
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub token: NewToken,
}

/// A token as listed: never its text.
#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl From<ApiTokenRecord> for TokenInfo {
    fn from(t: ApiTokenRecord) -> Self {
        TokenInfo {
            id: t.id,
            created_at: time(t.created_at),
            revoked_at: t.revoked_at.map(time),
        }
    }
}

async fn existing(api: &Api, name: &str) -> Result<TenantRecord, ApiError> {
    api.store
        .tenant_get(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant `{name}`")))
}

/// Makes a tenant and its first API token.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", security(("token" = [])),
    request_body = NewTenant,
    responses(
        (status = 201, body = CreatedTenant),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
    ))]
async fn create(
    _: Operator,
    State(api): State<Arc<Api>>,
    Json(new): Json<NewTenant>,
) -> Result<(StatusCode, axum::Json<CreatedTenant>), ApiError> {
    if !api.store.tenant_create(&new.name).await? {
        return Err(ApiError::Conflict(format!(
            "tenant `{}` exists already",
            new.name
        )));
    }
    let token = issue_token(&api.store, &TokenHolder::Tenant(new.name.clone())).await?;
    let tenant = existing(&api, &new.name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedTenant {
            tenant: tenant.into(),
            token: token.into(),
        }),
    ))
}

/// Every tenant.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", security(("token" = [])),
    responses(
        (status = 200, body = [Tenant]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
async fn list(
    _: Operator,
    State(api): State<Arc<Api>>,
) -> Result<axum::Json<Vec<Tenant>>, ApiError> {
    let tenants = api.store.tenant_list().await?;
    Ok(axum::Json(tenants.into_iter().map(Tenant::from).collect()))
}

/// One tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path)),
    responses(
        (status = 200, body = Tenant),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn show(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(tenant): Path<String>,
) -> Result<axum::Json<Tenant>, ApiError> {
    Ok(axum::Json(existing(&api, &tenant).await?.into()))
}

/// How a tenant is deleted.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete it even when a webhook registration at a vendor could not be removed (it stays
    /// registered there, delivering to an endpoint that answers 404).
    #[serde(default)]
    force: bool,
}

/// Deletes a tenant with everything it owns: flows, runs and their error logs, cursors,
/// datasets, secrets, plugin state, webhook events, tokens. First its flows' webhook
/// registrations are removed at their vendors (with the tenant's credentials, which go with
/// it); when one cannot be, nothing is deleted and the answer (409) says which and why, unless
/// `force` is given.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path), DeleteQuery),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ))]
async fn delete(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(tenant): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    api.delete_tenant(&tenant, query.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl Api {
    /// Deletes `tenant` and all it owns, after removing its flows' webhook registrations at
    /// their vendors; one that cannot be removed stops the deletion (a `Conflict` naming it)
    /// unless `force`, when it is logged and left. What `DELETE /api/v1/tenants/{tenant}` and
    /// `weft tenant delete` do.
    pub async fn delete_tenant(&self, tenant: &str, force: bool) -> Result<(), ApiError> {
        if self.store.tenant_get(tenant).await?.is_none() {
            return Err(ApiError::NotFound(format!("no tenant `{tenant}`")));
        }
        let left = self.unsubscribe_all(tenant).await?;
        if !left.is_empty() {
            let list = left.join("; ");
            if !force {
                return Err(ApiError::Conflict(format!(
                    "tenant `{tenant}` was not deleted: {} webhook registration(s) at vendors could not be removed ({list}); fix what is said and try again, or delete with force (`?force=true`, `weft tenant delete --force`) to leave them registered",
                    left.len()
                )));
            }
            tracing::warn!(tenant, left = %list, "deleting the tenant with webhook registrations left at vendors");
        }
        if !self.store.tenant_delete(tenant).await? {
            return Err(ApiError::NotFound(format!("no tenant `{tenant}`")));
        }
        self.changed();
        Ok(())
    }

    /// Removes each webhook registration the tenant's flows hold at their vendors; what could
    /// not be removed, one line each.
    async fn unsubscribe_all(&self, tenant: &str) -> Result<Vec<String>, ApiError> {
        let mut left = Vec::new();
        for subscription in self.store.subscriptions(tenant, None).await? {
            let flow = &subscription.flow;
            let Some(stored) = self.store.flow_deployed(tenant, flow).await? else {
                left.push(format!(
                    "flow `{flow}` is no longer deployed, so its registration `{}` cannot be reached",
                    subscription.subscription_id
                ));
                continue;
            };
            let served = match crate::flows::plan_stored(self, tenant, &stored, &BTreeMap::new())
                .await
            {
                Ok(served) => served,
                Err(ApiError::Rejected(e)) => {
                    let why: Vec<&str> = e.diagnostics.iter().map(|d| d.message.as_str()).collect();
                    left.push(format!("flow `{flow}` no longer plans: {}", why.join(", ")));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Err(e) =
                weft_server::registration::remove(&served, &self.store, &self.secrets, tenant).await
            {
                left.push(format!("flow `{flow}`: {e}"));
            }
        }
        Ok(left)
    }
}

async fn set_status(
    api: &Api,
    tenant: &str,
    status: TenantStatus,
) -> Result<axum::Json<Tenant>, ApiError> {
    if !api.store.tenant_set_status(tenant, status).await? {
        return Err(ApiError::NotFound(format!("no tenant `{tenant}`")));
    }
    api.changed();
    Ok(axum::Json(existing(api, tenant).await?.into()))
}

/// Suspends a tenant: its flows stop being run and its tokens are refused; nothing is deleted.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/suspend", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path)),
    responses(
        (status = 200, body = Tenant),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn suspend(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(tenant): Path<String>,
) -> Result<axum::Json<Tenant>, ApiError> {
    set_status(&api, &tenant, TenantStatus::Suspended).await
}

/// Resumes a suspended tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/resume", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path)),
    responses(
        (status = 200, body = Tenant),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn resume(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(tenant): Path<String>,
) -> Result<axum::Json<Tenant>, ApiError> {
    set_status(&api, &tenant, TenantStatus::Active).await
}

/// Makes another token for a tenant (to rotate: make one, then revoke the old).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/tokens", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path)),
    responses(
        (status = 201, body = NewToken),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn token_create(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(tenant): Path<String>,
) -> Result<(StatusCode, axum::Json<NewToken>), ApiError> {
    existing(&api, &tenant).await?;
    let token = issue_token(&api.store, &TokenHolder::Tenant(tenant)).await?;
    Ok((StatusCode::CREATED, axum::Json(token.into())))
}

/// A tenant's tokens, newest first, revoked ones too.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/tokens", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path)),
    responses(
        (status = 200, body = [TokenInfo]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn token_list(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(tenant): Path<String>,
) -> Result<axum::Json<Vec<TokenInfo>>, ApiError> {
    existing(&api, &tenant).await?;
    let tokens = api
        .store
        .api_token_list(&TokenHolder::Tenant(tenant))
        .await?;
    Ok(axum::Json(
        tokens.into_iter().map(TokenInfo::from).collect(),
    ))
}

/// Revokes one of a tenant's tokens.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/tokens/{token}", tag = "tenants", security(("token" = [])),
    params(("tenant" = String, Path), ("token" = String, Path, description = "The token's id (`tok_...`)")),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn token_revoke(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path((tenant, token)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let holder = TokenHolder::Tenant(tenant.clone());
    if api.store.api_token_revoke(&holder, Some(&token)).await? == 0 {
        return Err(ApiError::NotFound(format!(
            "tenant `{tenant}` has no unrevoked token `{token}`"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
