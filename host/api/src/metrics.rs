//! The server's counters for the operator's Prometheus: `GET /api/v1/metrics`, OpenMetrics
//! text, every series by tenant where it is a tenant's.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Api;
use crate::auth::Operator;
use crate::error::{ApiError, ErrorBody};

pub(crate) fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// What the server in this process counted since it started: runs ended by tenant and status;
/// records, requests, bytes and plugin CPU by tenant; webhook deliveries by tenant and
/// outcome; runs under way and waiting; flows served.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "tenants", security(("token" = [])),
    responses(
        (status = 200, description = "OpenMetrics text",
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
async fn metrics(_: Operator, State(api): State<Arc<Api>>) -> Result<impl IntoResponse, ApiError> {
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.metrics.encode(),
    ))
}
