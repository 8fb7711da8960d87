//! Who is calling: the holder of the bearer token, looked up by its hash. A tenant's route
//! takes only a tenant's token, the operator's routes only the operator's.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use weft_store::TokenHolder;

use crate::Api;
use crate::error::ApiError;
use crate::token;

/// The tenant whose token called a tenant's route.
pub struct Tenant(pub String);

/// The operator called an operator's route.
pub struct Operator;

async fn holder(parts: &Parts, api: &Api) -> Result<TokenHolder, ApiError> {
    let presented = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.starts_with(token::PREFIX))
        .ok_or(ApiError::Unauthorized)?;
    api.store
        .api_token_holder(&token::hash(presented))
        .await?
        .ok_or(ApiError::Unauthorized)
}

impl FromRequestParts<Arc<Api>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, ApiError> {
        match holder(parts, api).await? {
            TokenHolder::Tenant(name) => Ok(Tenant(name)),
            TokenHolder::Operator => Err(ApiError::Forbidden(
                "this route acts for a tenant: call it with the tenant's token, not the operator's"
                    .into(),
            )),
        }
    }
}

impl FromRequestParts<Arc<Api>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, ApiError> {
        match holder(parts, api).await? {
            TokenHolder::Operator => Ok(Operator),
            TokenHolder::Tenant(_) => Err(ApiError::Forbidden(
                "this route is the operator's: call it with the operator's token".into(),
            )),
        }
    }
}
