//! How a deployed flow's connections stand: each connector's check with the tenant's
//! credential, the credential kind, and when the current token expires.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weft_engine::{ConnectionStatus, TokenState, check_connections};

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::flows::{plan_stored, stored};
use crate::{Api, time};

pub(crate) fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new().routes(routes!(check))
}

/// One connection of a flow, checked.
#[derive(Serialize, ToSchema)]
pub struct ConnectionInfo {
    /// Its name in the flow.
    pub name: String,
    /// The plugin behind it (`dataset` for weft's own datasets).
    pub plugin: String,
    /// The credential kind: `none`, `api-key`, `bearer`, `basic`, `oauth2-refresh`, ...
    pub auth: String,
    /// `ok`, or `failed` with `error` saying why (what to fix).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `expires` (at `token_expires_at`; weft renews it before then), `no-lifetime` (a new
    /// one is fetched when it is refused), `missing` (`token_error` says why), `static` or
    /// `datasets`.
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_error: Option<String>,
}

impl From<ConnectionStatus> for ConnectionInfo {
    fn from(c: ConnectionStatus) -> Self {
        let (token, token_expires_at, token_error) = match c.token {
            TokenState::Expires(at) => ("expires", Some(time(at)), None),
            TokenState::NoLifetime => ("no-lifetime", None, None),
            TokenState::Missing(why) => ("missing", None, Some(why)),
            TokenState::Static => ("static", None, None),
            TokenState::Datasets => ("datasets", None, None),
        };
        ConnectionInfo {
            name: c.name,
            plugin: c.plugin,
            auth: c.auth.to_owned(),
            status: if c.check.is_ok() { "ok" } else { "failed" }.to_owned(),
            error: c.check.err(),
            token: token.to_owned(),
            token_expires_at,
            token_error,
        }
    }
}

/// Checks each connection of a deployed flow now, with the tenant's credentials: the
/// connector's check (reachable, credential accepted), the credential kind, the token's
/// expiry.
#[utoipa::path(get, path = "/api/v1/flows/{flow}/connections", tag = "flows", security(("token" = [])),
    params(("flow" = String, Path)),
    responses(
        (status = 200, body = [ConnectionInfo]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A connection cannot be made (a credential missing)", body = ErrorBody),
        (status = 422, description = "The flow no longer plans on this server", body = ErrorBody),
    ))]
async fn check(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(flow): Path<String>,
) -> Result<axum::Json<Vec<ConnectionInfo>>, ApiError> {
    let stored = stored(&api, &tenant, &flow).await?;
    let served = plan_stored(&api, &tenant, &stored, &BTreeMap::new()).await?;
    let statuses = check_connections(&served.plan, &api.secrets, &tenant, &flow)
        .await
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    Ok(axum::Json(
        statuses.into_iter().map(ConnectionInfo::from).collect(),
    ))
}
