//! A tenant's secrets: set (sealed before the store sees them), listed by name, deleted. No
//! route returns a value.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weft_capabilities::{Secret, SecretError};

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::{Api, time};

pub(crate) fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(set, delete))
}

/// The longest secret value taken, in characters.
const MAX_VALUE: usize = 16 * 1024;

/// A secret's value, to set.
#[derive(Deserialize, ToSchema)]
pub struct SecretValue {
    /// 1 to 16,384 characters.
    #[schema(min_length = 1, max_length = 16384)]
    pub value: String,
}

/// A secret as listed: its name, never its value.
#[derive(Serialize, ToSchema)]
pub struct SecretInfo {
    pub name: String,
    pub updated_at: String,
}

fn store_error(e: SecretError) -> ApiError {
    match e {
        SecretError::Store(e) => e.into(),
        other => {
            tracing::error!(error = %other, "sealing or opening a secret failed");
            ApiError::Unavailable
        }
    }
}

/// The tenant's secrets, by name.
#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets", security(("token" = [])),
    responses(
        (status = 200, body = [SecretInfo]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
async fn list(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
) -> Result<axum::Json<Vec<SecretInfo>>, ApiError> {
    let secrets = api.secrets.list(&tenant).await.map_err(store_error)?;
    Ok(axum::Json(
        secrets
            .into_iter()
            .map(|s| SecretInfo {
                name: s.name,
                updated_at: time(s.updated_at),
            })
            .collect(),
    ))
}

/// Sets a secret (flows refer to it as `secret:NAME`).
#[utoipa::path(put, path = "/api/v1/secrets/{name}", tag = "secrets", security(("token" = [])),
    params(("name" = String, Path, description = "1 to 128 characters from A-Z, a-z, 0-9, '_', '-' and '.'", pattern = "^[A-Za-z0-9_.-]{1,128}$")),
    request_body = SecretValue,
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    ))]
async fn set(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    Json(secret): Json<SecretValue>,
) -> Result<StatusCode, ApiError> {
    let length = secret.value.chars().count();
    if !(1..=MAX_VALUE).contains(&length) {
        return Err(ApiError::BadRequest(format!(
            "a secret's value is 1 to {MAX_VALUE} characters; this one is {length}"
        )));
    }
    api.secrets
        .set(&tenant, &name, &Secret::new(secret.value))
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a secret.
#[utoipa::path(delete, path = "/api/v1/secrets/{name}", tag = "secrets", security(("token" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn delete(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !api
        .secrets
        .delete(&tenant, &name)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::NotFound(format!("no secret `{name}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}
