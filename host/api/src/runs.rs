//! A tenant's runs: found by flow, status and time; one with its steps; its error log as JSON
//! Lines or CSV.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weft_store::{ErrorEntry, RunFilter, RunRecord, RunStatus, RunUsage, StepRunRecord};

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Path, Query};
use crate::flows::RunRequested;
use crate::{Api, time};

pub(crate) fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(errors))
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(usage))
}

/// A run.
#[derive(Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub flow: String,
    /// `running`, `succeeded`, `partial`, `failed`, `abandoned`, `refused` (not started, or
    /// stopped after a page: `error` names the quota, its limit and when it resets) or
    /// `cancelled` (stopped after a page on request).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it used (zero while it runs).
    pub usage: Usage,
}

/// What a run (or a tenant's runs over a period) used.
#[derive(Serialize, ToSchema)]
pub struct Usage {
    /// Plugin CPU time, in milliseconds (counted in the runtime's 10 ms ticks).
    pub cpu_ms: u64,
    /// Requests connections sent for plugins.
    pub requests: u64,
    /// Request bodies sent, in bytes.
    pub bytes_out: u64,
    /// Response bodies received, in bytes.
    pub bytes_in: u64,
    /// The most memory one plugin instance held, in bytes.
    pub peak_memory: u64,
    pub records_read: u64,
    pub records_written: u64,
    /// Records sent to error logs.
    pub records_failed: u64,
}

impl From<RunUsage> for Usage {
    fn from(u: RunUsage) -> Self {
        Usage {
            cpu_ms: u.cpu_ms,
            requests: u.requests,
            bytes_out: u.bytes_out,
            bytes_in: u.bytes_in,
            peak_memory: u.peak_memory,
            records_read: u.records_read,
            records_written: u.records_written,
            records_failed: u.records_failed,
        }
    }
}

/// What a tenant's runs started in a period used.
#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    pub since: String,
    pub until: String,
    /// Runs started in the period.
    pub runs: u64,
    #[serde(flatten)]
    pub usage: Usage,
}

/// The period to sum.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Runs started at or after this time (RFC 3339); 24 hours before `until` if not given.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Runs started before this time (RFC 3339); now if not given.
    #[param(format = DateTime)]
    until: Option<String>,
}

impl From<RunRecord> for RunSummary {
    fn from(r: RunRecord) -> Self {
        RunSummary {
            id: r.id,
            flow: r.flow,
            status: r.status.as_str().to_owned(),
            environment: r.environment,
            started_at: time(r.started_at),
            finished_at: r.finished_at.map(time),
            error: r.error,
            usage: r.usage.into(),
        }
    }
}

/// A step of a run, with what went through it.
#[derive(Serialize, ToSchema)]
pub struct StepInfo {
    pub step: String,
    /// `running`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    pub pages: u64,
    pub records_in: u64,
    pub records_out: u64,
    /// Records sent to the error log.
    pub failed: u64,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<StepRunRecord> for StepInfo {
    fn from(s: StepRunRecord) -> Self {
        StepInfo {
            step: s.step,
            status: s.status.as_str().to_owned(),
            pages: s.pages,
            records_in: s.records_in,
            records_out: s.records_out,
            failed: s.failed,
            started_at: time(s.started_at),
            finished_at: s.finished_at.map(time),
            error: s.error,
        }
    }
}

/// A run with its steps.
#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    pub steps: Vec<StepInfo>,
}

/// Which runs to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Runs of this flow.
    flow: Option<String>,
    /// Runs that stand so.
    #[param(inline)]
    status: Option<Status>,
    /// Runs started at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Runs started before this time (RFC 3339).
    #[param(format = DateTime)]
    before: Option<String>,
    /// At most this many, newest first: 1 to 1,000, 50 if not given.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// How a run stands, to find runs by.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Succeeded,
    Partial,
    Failed,
    Abandoned,
    Refused,
    Cancelled,
}

impl From<Status> for RunStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Running => RunStatus::Running,
            Status::Succeeded => RunStatus::Succeeded,
            Status::Partial => RunStatus::Partial,
            Status::Failed => RunStatus::Failed,
            Status::Abandoned => RunStatus::Abandoned,
            Status::Refused => RunStatus::Refused,
            Status::Cancelled => RunStatus::Cancelled,
        }
    }
}

/// How to write an error log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// `jsonl` (one JSON object a line, the default) or `csv`.
    #[param(inline)]
    format: Option<ErrorFormat>,
}

/// How an error log is written.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ErrorFormat {
    /// One JSON object a line.
    Jsonl,
    /// A header line, then one row a failed record.
    Csv,
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<std::time::SystemTime>, ApiError> {
    value
        .map(|v| {
            let time = chrono::DateTime::parse_from_rfc3339(v).map_err(|e| {
                ApiError::BadRequest(format!(
                    "`{name}` is not an RFC 3339 time ({e}): write e.g. 2026-12-03T10:00:00Z"
                ))
            })?;
            // Before 1970 is before any run; far future after every one.
            let millis = time.timestamp_millis().max(0) as u64;
            Ok(std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis))
        })
        .transpose()
}

/// The tenant's runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", security(("token" = [])),
    params(RunQuery),
    responses(
        (status = 200, body = [RunSummary]),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn list(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Query(query): Query<RunQuery>,
) -> Result<axum::Json<Vec<RunSummary>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` is 1 to 1000, not {limit}"
        )));
    }
    let filter = RunFilter {
        flow: query.flow.as_deref(),
        status: query.status.map(RunStatus::from),
        since: parse_time("since", query.since.as_deref())?,
        before: parse_time("before", query.before.as_deref())?,
        limit,
    };
    let runs = api.store.runs_find(&tenant, &filter).await?;
    Ok(axum::Json(runs.into_iter().map(RunSummary::from).collect()))
}

async fn run_of(api: &Api, tenant: &str, run: &str) -> Result<RunDetail, ApiError> {
    let (run, steps) = api
        .store
        .run_get(tenant, run)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run `{run}`")))?;
    Ok(RunDetail {
        run: run.into(),
        steps: steps.into_iter().map(StepInfo::from).collect(),
    })
}

/// One run, with its steps.
#[utoipa::path(get, path = "/api/v1/runs/{run}", tag = "runs", security(("token" = [])),
    params(("run" = String, Path)),
    responses(
        (status = 200, body = RunDetail),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn show(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(run): Path<String>,
) -> Result<axum::Json<RunDetail>, ApiError> {
    Ok(axum::Json(run_of(&api, &tenant, &run).await?))
}

/// Asks a running run to stop after the page it is on: what it committed before stays, and
/// its cursor is where that page left it, so the flow's next run goes on from there. The run
/// then stands `cancelled`.
#[utoipa::path(post, path = "/api/v1/runs/{run}/cancel", tag = "runs", security(("token" = [])),
    params(("run" = String, Path)),
    responses(
        (status = 202, description = "Asked to stop; it stops after its current page", body = RunSummary),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The run is not running", body = ErrorBody),
    ))]
async fn cancel(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(run): Path<String>,
) -> Result<(StatusCode, axum::Json<RunSummary>), ApiError> {
    match api.store.run_cancel(&tenant, &run).await? {
        None => Err(ApiError::NotFound(format!("no run `{run}`"))),
        Some(RunStatus::Running) => {
            api.changed();
            let detail = run_of(&api, &tenant, &run).await?;
            Ok((StatusCode::ACCEPTED, axum::Json(detail.run)))
        }
        Some(status) => Err(ApiError::Conflict(format!(
            "run `{run}` is not running: it ended {status}"
        ))),
    }
}

/// Asks for the records a run logged as failed to be run again, each through the step that
/// failed it and on downstream from there, as soon as the server can (as a run of its own,
/// never beside another run of the flow). Fix what made them fail first: the flow (deploy it
/// again), a secret, the target's data.
#[utoipa::path(post, path = "/api/v1/runs/{run}/retry", tag = "runs", security(("token" = [])),
    params(("run" = String, Path)),
    responses(
        (status = 202, body = RunRequested),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The run is running, has no failed records, or its flow is not deployed and enabled", body = ErrorBody),
    ))]
async fn retry(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(run): Path<String>,
) -> Result<(StatusCode, axum::Json<RunRequested>), ApiError> {
    let detail = run_of(&api, &tenant, &run).await?;
    let flow = detail.run.flow;
    if detail.run.status == RunStatus::Running.as_str() {
        return Err(ApiError::Conflict(format!(
            "run `{run}` is still running: retry its failed records once it ended"
        )));
    }
    if detail.steps.iter().all(|s| s.failed == 0) {
        return Err(ApiError::Conflict(format!(
            "run `{run}` has no failed records to retry"
        )));
    }
    let deployed = api.store.flow_deployed(&tenant, &flow).await?;
    match deployed {
        Some(d) if d.enabled => {}
        Some(_) => {
            return Err(ApiError::Conflict(format!(
                "flow `{flow}` is disabled: enable it first (POST /api/v1/flows/{flow}/enable)"
            )));
        }
        None => {
            return Err(ApiError::Conflict(format!(
                "flow `{flow}` of run `{run}` is not deployed any more: deploy it again to retry its records"
            )));
        }
    }
    let requested_at = api
        .store
        .run_request(&tenant, &flow, Some(&run), "{}")
        .await?;
    api.changed();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RunRequested {
            flow,
            variables: Default::default(),
            retry_of: Some(run),
            requested_at: time(requested_at),
        }),
    ))
}

/// One failed record in the error log, as a JSON line.
#[derive(Serialize)]
struct ErrorLine<'a> {
    seq: u64,
    step: &'a str,
    /// The record itself when it is JSON, else its text.
    record: Option<serde_json::Value>,
    error: &'a str,
    created_at: String,
}

/// A run's error log: each failed record with its step and why it failed.
#[utoipa::path(get, path = "/api/v1/runs/{run}/errors", tag = "runs", security(("token" = [])),
    params(("run" = String, Path), ErrorsQuery),
    responses(
        (status = 200, description = "One line a failed record",
            content((String = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn errors(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(run): Path<String>,
    Query(query): Query<ErrorsQuery>,
) -> Result<Response, ApiError> {
    let csv = query.format == Some(ErrorFormat::Csv);
    // The run must be the tenant's: the error log is keyed by run alone.
    run_of(&api, &tenant, &run).await?;
    let entries = api.store.run_errors(&run).await?;
    let (content_type, body) = if csv {
        ("text/csv", errors_csv(&entries))
    } else {
        ("application/x-ndjson", errors_jsonl(&entries))
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn errors_jsonl(entries: &[ErrorEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        let record = e.record.as_deref().map(|r| {
            serde_json::from_str(r).unwrap_or_else(|_| serde_json::Value::String(r.to_owned()))
        });
        let line = ErrorLine {
            seq: e.seq,
            step: &e.step,
            record,
            error: &e.error,
            created_at: time(e.created_at),
        };
        if let Ok(text) = serde_json::to_string(&line) {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

fn errors_csv(entries: &[ErrorEntry]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let rows = std::iter::once(["seq", "step", "record", "error", "created_at"].map(String::from))
        .chain(entries.iter().map(|e| {
            [
                e.seq.to_string(),
                e.step.clone(),
                e.record.clone().unwrap_or_default(),
                e.error.clone(),
                time(e.created_at),
            ]
        }));
    for row in rows {
        // Writing to memory does not fail.
        let _ = writer.write_record(&row);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// What the tenant's runs started in a period used, summed (the peak memory: the most of any
/// run).
#[utoipa::path(get, path = "/api/v1/usage", tag = "runs", security(("token" = [])),
    params(UsageQuery),
    responses(
        (status = 200, body = UsageReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn usage(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsageReport>, ApiError> {
    let until =
        parse_time("until", query.until.as_deref())?.unwrap_or_else(std::time::SystemTime::now);
    let since = parse_time("since", query.since.as_deref())?.unwrap_or_else(|| {
        until
            .checked_sub(std::time::Duration::from_secs(24 * 3600))
            .unwrap_or(std::time::UNIX_EPOCH)
    });
    let (runs, usage) = api.store.usage_sum(&tenant, since, until).await?;
    Ok(axum::Json(UsageReport {
        since: time(since),
        until: time(until),
        runs,
        usage: usage.into(),
    }))
}
