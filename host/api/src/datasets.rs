//! A tenant's datasets: listed with their sizes, paged through in key order, exported whole as
//! JSON Lines.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Path, Query};
use crate::{Api, time};

pub(crate) fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(records))
        .routes(routes!(export))
}

/// Records read from the store at a time while a dataset is exported.
const EXPORT_PAGE: u32 = 1_000;

/// A dataset and its size.
#[derive(Serialize, ToSchema)]
pub struct DatasetInfo {
    pub name: String,
    pub records: u64,
    /// When a record last changed.
    pub updated_at: String,
}

/// A record of a dataset.
#[derive(Serialize, ToSchema)]
pub struct DatasetRecord {
    /// The record's key as weft keeps it: a JSON array of its key fields' values.
    pub key: String,
    /// The record, as JSON.
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
}

/// A page of a dataset, in key order.
#[derive(Serialize, ToSchema)]
pub struct DatasetPage {
    pub records: Vec<DatasetRecord>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Where a page starts.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Records with keys after this one (the previous page's `next`).
    after: Option<String>,
    /// At most this many: 1 to 1,000, 100 if not given.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The tenant's datasets.
#[utoipa::path(get, path = "/api/v1/datasets", tag = "datasets", security(("token" = [])),
    responses(
        (status = 200, body = [DatasetInfo]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
async fn list(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
) -> Result<axum::Json<Vec<DatasetInfo>>, ApiError> {
    let datasets = api.store.dataset_list(&tenant).await?;
    Ok(axum::Json(
        datasets
            .into_iter()
            .map(|d| DatasetInfo {
                name: d.name,
                records: d.records,
                updated_at: time(d.updated_at),
            })
            .collect(),
    ))
}

/// A page of a dataset's records, in key order. A dataset the tenant does not have is empty.
#[utoipa::path(get, path = "/api/v1/datasets/{dataset}/records", tag = "datasets", security(("token" = [])),
    params(("dataset" = String, Path), PageQuery),
    responses(
        (status = 200, body = DatasetPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn records(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(dataset): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<DatasetPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` is 1 to 1000, not {limit}"
        )));
    }
    let rows = api
        .store
        .dataset_page(&tenant, &dataset, query.after.as_deref(), limit)
        .await?;
    if rows.is_empty() && query.after.is_none() {
        return Err(ApiError::NotFound(format!("no dataset `{dataset}`")));
    }
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|(key, _)| key.clone()))
        .flatten();
    let records = rows
        .into_iter()
        .map(|(key, record)| DatasetRecord {
            record: serde_json::from_str(&record).unwrap_or(serde_json::Value::String(record)),
            key,
        })
        .collect();
    Ok(axum::Json(DatasetPage { records, next }))
}

/// A whole dataset as JSON Lines, one record a line in key order, streamed from the store a
/// page at a time (however large the dataset, the server holds one page of it).
#[utoipa::path(get, path = "/api/v1/datasets/{dataset}/export", tag = "datasets", security(("token" = [])),
    params(("dataset" = String, Path)),
    responses(
        (status = 200, description = "One record a line", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn export(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(dataset): Path<String>,
) -> Result<Response, ApiError> {
    let first = api
        .store
        .dataset_page(&tenant, &dataset, None, EXPORT_PAGE)
        .await?;
    if first.is_empty() {
        return Err(ApiError::NotFound(format!("no dataset `{dataset}`")));
    }
    let store = api.store.clone();
    let name = dataset.clone();
    // Each step: the page in hand as lines, and the next one read after its last key.
    let pages = futures_util::stream::try_unfold(Some(first), move |page| {
        let (store, tenant, name) = (store.clone(), tenant.clone(), name.clone());
        async move {
            let Some(page) = page else {
                return Ok(None);
            };
            let mut lines = String::new();
            for (_, record) in &page {
                lines.push_str(record);
                lines.push('\n');
            }
            let next = match page.last() {
                Some((last, _)) if page.len() == EXPORT_PAGE as usize => {
                    let next = store
                        .dataset_page(&tenant, &name, Some(last), EXPORT_PAGE)
                        .await?;
                    (!next.is_empty()).then_some(next)
                }
                _ => None,
            };
            Ok::<_, weft_store::StoreError>(Some((lines, next)))
        }
    });
    // Only characters safe in a header and a file name.
    let file: String = dataset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{file}.jsonl\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(pages),
    )
        .into_response())
}
