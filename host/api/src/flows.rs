//! A tenant's flows: deployed as TOML (checked and planned as the server will run them, refused
//! with `weft validate`'s diagnostics), listed with when each is next due, enabled, disabled,
//! deleted, and run now on request.

use std::collections::BTreeMap;
use std::path::Path as FilePath;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weft_flow::Flow;
use weft_server::{Deployment, Quota, ServedFlow};
use weft_store::DeployedFlow;

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, OptionalJson, Path};
use crate::runs::RunSummary;
use crate::{Api, time};

pub(crate) fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new()
        .routes(routes!(deploy, list))
        .routes(routes!(show, delete))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(request_run))
}

/// A flow to deploy.
#[derive(Deserialize, ToSchema)]
pub struct FlowDeploy {
    /// The flow file's text (TOML). Its `name` names the flow; deploying a name again replaces
    /// the flow, keeping its history, cursors and whether it is enabled. At most 262,144
    /// bytes.
    pub source: String,
    /// Values of variables the flow declares.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// A deployed flow.
#[derive(Serialize, ToSchema)]
pub struct FlowInfo {
    pub name: String,
    pub enabled: bool,
    pub deployed_at: String,
    /// Changes when the source or the variables do.
    pub digest: String,
    /// What starts it: `every 15m`, `cron 0 * * * *`, `after a, b`, `webhook`, `manual`.
    pub trigger: String,
    /// For a webhook-triggered flow, the path of its endpoint on the server
    /// (`/hooks/hk_...`): give the vendor the server's public URL with it. Unguessable, and
    /// kept across deploys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// When its schedule is next due, if it is enabled and scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<String>,
    /// Its latest run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunSummary>,
}

/// A deployed flow with its source.
#[derive(Serialize, ToSchema)]
pub struct FlowDetail {
    #[serde(flatten)]
    pub flow: FlowInfo,
    pub source: String,
    pub variables: BTreeMap<String, String>,
}

/// What a run asked for takes besides the flow.
#[derive(Deserialize, ToSchema)]
pub struct RunWith {
    /// Values of variables the flow declares, for this run, over those it was deployed with
    /// (each checked against its declared type first).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// A run asked for: a whole run of the flow, or a retry of a run's failed records.
#[derive(Serialize, ToSchema)]
pub struct RunRequested {
    pub flow: String,
    /// The variables given for this run.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The run whose failed records are retried, for a retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    pub requested_at: String,
}

/// The longest flow file taken.
const MAX_SOURCE: usize = 256 * 1024;

/// Deploys a flow (or replaces the one of the same name). It is checked and planned against
/// the server's plugins first; a flow with problems is refused with every diagnostic, and
/// nothing changes.
#[utoipa::path(post, path = "/api/v1/flows", tag = "flows", security(("token" = [])),
    request_body = FlowDeploy,
    responses(
        (status = 201, description = "Deployed, new", body = FlowInfo),
        (status = 200, description = "Deployed over the flow of the same name", body = FlowInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 409, description = "The tenant reached its quota of flows", body = ErrorBody),
        (status = 422, description = "The flow has problems", body = ErrorBody),
    ))]
async fn deploy(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Json(deploy): Json<FlowDeploy>,
) -> Result<(StatusCode, axum::Json<FlowInfo>), ApiError> {
    if deploy.source.len() > MAX_SOURCE {
        return Err(ApiError::BadRequest(format!(
            "the flow file is {} bytes, over the limit of {MAX_SOURCE}",
            deploy.source.len()
        )));
    }
    let served = plan(&api, &tenant, &deploy.source, &deploy.variables).await?;
    let name = served.name().to_owned();
    if let Some(limit) = api.quotas.of(&api.store, &tenant).await?.get(Quota::Flows) {
        let deployed = api.store.flows_deployed(&tenant).await?;
        let new = deployed.iter().all(|f| f.name != name);
        if new && deployed.len() as u64 >= limit {
            return Err(ApiError::Conflict(format!(
                "the tenant reached its quota flows ({} deployed of {limit}): delete a flow first, or ask the operator for more",
                deployed.len()
            )));
        }
    }
    let variables = serde_json::to_string(&deploy.variables).unwrap_or_else(|_| "{}".into());
    let digest = crate::token::hash(&format!("{}\0{variables}", deploy.source));
    let created = api
        .store
        .flow_deploy(
            &tenant,
            &name,
            &deploy.source,
            &variables,
            &digest,
            &crate::token::endpoint_id_new(),
        )
        .await?;
    api.changed();
    let stored = stored(&api, &tenant, &name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(info(&api, &tenant, &stored).await?)))
}

/// The tenant's flows, by name.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows", security(("token" = [])),
    responses(
        (status = 200, body = [FlowInfo]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
async fn list(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
) -> Result<axum::Json<Vec<FlowInfo>>, ApiError> {
    let mut flows = Vec::new();
    for stored in api.store.flows_deployed(&tenant).await? {
        flows.push(info(&api, &tenant, &stored).await?);
    }
    Ok(axum::Json(flows))
}

/// One flow, with its source.
#[utoipa::path(get, path = "/api/v1/flows/{flow}", tag = "flows", security(("token" = [])),
    params(("flow" = String, Path)),
    responses(
        (status = 200, body = FlowDetail),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn show(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(flow): Path<String>,
) -> Result<axum::Json<FlowDetail>, ApiError> {
    let stored = stored(&api, &tenant, &flow).await?;
    let variables = serde_json::from_str(&stored.variables).unwrap_or_default();
    Ok(axum::Json(FlowDetail {
        flow: info(&api, &tenant, &stored).await?,
        source: stored.source,
        variables,
    }))
}

/// Deletes a flow and its cursors (deployed again, it starts from scratch); its runs stay in
/// the history.
#[utoipa::path(delete, path = "/api/v1/flows/{flow}", tag = "flows", security(("token" = [])),
    params(("flow" = String, Path)),
    responses(
        (status = 204),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn delete(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(flow): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !api.store.flow_undeploy(&tenant, &flow).await? {
        return Err(not_found(&flow));
    }
    api.changed();
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    api: &Api,
    tenant: &str,
    flow: &str,
    enabled: bool,
) -> Result<axum::Json<FlowInfo>, ApiError> {
    if !api.store.flow_set_enabled(tenant, flow, enabled).await? {
        return Err(not_found(flow));
    }
    api.changed();
    let stored = stored(api, tenant, flow).await?;
    Ok(axum::Json(info(api, tenant, &stored).await?))
}

/// Serves the flow again.
#[utoipa::path(post, path = "/api/v1/flows/{flow}/enable", tag = "flows", security(("token" = [])),
    params(("flow" = String, Path)),
    responses(
        (status = 200, body = FlowInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn enable(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(flow): Path<String>,
) -> Result<axum::Json<FlowInfo>, ApiError> {
    set_enabled(&api, &tenant, &flow, true).await
}

/// Stops serving the flow (a run under way ends first); its history and cursors stay.
#[utoipa::path(post, path = "/api/v1/flows/{flow}/disable", tag = "flows", security(("token" = [])),
    params(("flow" = String, Path)),
    responses(
        (status = 200, body = FlowInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn disable(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(flow): Path<String>,
) -> Result<axum::Json<FlowInfo>, ApiError> {
    set_enabled(&api, &tenant, &flow, false).await
}

/// Asks for a run of an enabled flow as soon as the server can (the run appears in
/// `GET /api/v1/runs?flow=...`), with variables for this run if given. Asked again before it
/// started with the same variables, one run answers both. Variables the flow does not declare,
/// or of the wrong type, are refused with the diagnostics `weft validate` prints.
#[utoipa::path(post, path = "/api/v1/flows/{flow}/runs", tag = "flows", security(("token" = [])),
    params(("flow" = String, Path)),
    request_body = Option<RunWith>,
    responses(
        (status = 202, body = RunRequested),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The flow is disabled", body = ErrorBody),
        (status = 422, description = "The variables do not fit the flow", body = ErrorBody),
    ))]
async fn request_run(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(flow): Path<String>,
    OptionalJson(with): OptionalJson<RunWith>,
) -> Result<(StatusCode, axum::Json<RunRequested>), ApiError> {
    let stored = stored(&api, &tenant, &flow).await?;
    if !stored.enabled {
        return Err(ApiError::Conflict(format!(
            "flow `{flow}` is disabled: enable it first (POST /api/v1/flows/{flow}/enable)"
        )));
    }
    let variables = with.map(|w| w.variables).unwrap_or_default();
    if !variables.is_empty() {
        plan_stored(&api, &tenant, &stored, &variables).await?;
    }
    let text = serde_json::to_string(&variables).unwrap_or_else(|_| "{}".into());
    let requested_at = api.store.run_request(&tenant, &flow, None, &text).await?;
    api.changed();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(RunRequested {
            flow,
            variables,
            retry_of: None,
            requested_at: time(requested_at),
        }),
    ))
}

/// Plans `source` for `tenant` with `variables` as the server will plan it; a flow with
/// problems is refused with every diagnostic.
async fn plan(
    api: &Api,
    tenant: &str,
    source: &str,
    variables: &BTreeMap<String, String>,
) -> Result<ServedFlow, ApiError> {
    let plugins = api
        .tenant_plugins
        .directory(&api.plugins, tenant)
        .await
        .map_err(|e| {
            tracing::error!(tenant, error = %e, "reading the tenant's plugins failed");
            ApiError::Unavailable
        })?;
    let deployment = Deployment {
        tenant,
        source,
        variables,
    };
    weft_server::plan_deployed(&deployment, &plugins, &api.runtime, api.policy)
        .await
        .map_err(ApiError::Rejected)
}

/// [`plan`] for a deployed flow, with `over` over the variables it was deployed with.
pub(crate) async fn plan_stored(
    api: &Api,
    tenant: &str,
    stored: &DeployedFlow,
    over: &BTreeMap<String, String>,
) -> Result<ServedFlow, ApiError> {
    let mut variables: BTreeMap<String, String> =
        serde_json::from_str(&stored.variables).unwrap_or_default();
    variables.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
    plan(api, tenant, &stored.source, &variables).await
}

fn not_found(flow: &str) -> ApiError {
    ApiError::NotFound(format!("no flow `{flow}`"))
}

pub(crate) async fn stored(api: &Api, tenant: &str, flow: &str) -> Result<DeployedFlow, ApiError> {
    api.store
        .flow_deployed(tenant, flow)
        .await?
        .ok_or_else(|| not_found(flow))
}

/// What the API tells of a deployed flow.
async fn info(api: &Api, tenant: &str, stored: &DeployedFlow) -> Result<FlowInfo, ApiError> {
    let last = api
        .store
        .flow_runs(tenant, &stored.name, None, 1)
        .await?
        .into_iter()
        .next();
    // It planned when deployed; a file that no longer parses (a newer weft's) says so.
    let flow = weft_flow::parse(FilePath::new("flow.toml"), &stored.source).ok();
    let next_due = flow
        .as_ref()
        .filter(|_| stored.enabled)
        .and_then(|f| {
            weft_engine::schedule::next_due(
                f,
                last.as_ref().map(|r| r.started_at),
                SystemTime::now(),
            )
        })
        .map(time);
    Ok(FlowInfo {
        name: stored.name.clone(),
        enabled: stored.enabled,
        deployed_at: time(stored.deployed_at),
        digest: stored.digest.clone(),
        trigger: flow.as_ref().map_or_else(|| "unknown".into(), trigger),
        webhook_path: flow
            .as_ref()
            .filter(|f| {
                f.file
                    .trigger
                    .as_ref()
                    .is_some_and(|t| t.get_ref().webhook.is_some())
            })
            .and(stored.endpoint.as_ref())
            .map(|id| format!("/hooks/{id}")),
        next_due,
        last_run: last.map(RunSummary::from),
    })
}

/// What starts `flow`, in a few words.
fn trigger(flow: &Flow) -> String {
    let file = &flow.file;
    let trigger = file.trigger.as_ref().map(|t| t.get_ref());
    let schedule = trigger.and_then(|t| t.schedule.as_ref().or(t.poll.as_ref()));
    if let Some(schedule) = schedule {
        let schedule = schedule.get_ref();
        if let Some(every) = &schedule.every {
            return format!("every {}", humantime::format_duration(every.get_ref().0));
        }
        if let Some(cron) = &schedule.cron {
            return format!("cron {}", cron.get_ref().0);
        }
    }
    if trigger.is_some_and(|t| t.webhook.is_some()) {
        return "webhook".into();
    }
    if !file.after.is_empty() {
        let after: Vec<&str> = file.after.iter().map(|a| a.get_ref().as_str()).collect();
        return format!("after {}", after.join(", "));
    }
    "manual".into()
}
