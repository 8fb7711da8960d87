//! Webhook endpoints and their event queue. `POST /hooks/{endpoint}` (a deployed flow's
//! unguessable endpoint id, which says nothing of its tenant) or `POST /hooks/{flow}` (a flow
//! of the server's flows directory) hands the delivery to the flow's connector, which verifies
//! it (signature, vendor handshake); accepted events are written to the store *before* the
//! sender gets its 2xx (in batches, see `intake`), so a crash loses nothing, and a redelivered
//! event id is dropped. The
//! server then processes each flow's events in arrival order: the flow's read steps on the
//! webhook connection take the events of their stream instead of reading the upstream, and
//! the events are marked done only when that run completed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use weft_flow::{StepId, StepKind};
use weft_runtime::{InboundRequest, Verification};
use weft_store::StoredEvent;

use crate::metrics::Delivery;
use crate::server::Shared;
use crate::{ServeError, ServedFlow};

/// Events taken into one run, at most.
const EVENTS_PER_RUN: u32 = 1_000;

/// The endpoints; the task keeping their events in batches starts with the first router made
/// (in the runtime serving them).
pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    shared.intake();
    axum::Router::new()
        .route("/hooks/{hook}", axum::routing::any(receive))
        .with_state(shared)
}

/// The webhook-triggered flow reached at `/hooks/{hook}`: a deployed flow by its endpoint id,
/// else a flow of the flows directory (the server's own tenant) by its name.
fn hooked(shared: &Shared, hook: &str) -> Option<Arc<ServedFlow>> {
    let served = shared.by_endpoint(hook).or_else(|| {
        shared
            .flows()
            .iter()
            .find(|s| {
                s.endpoint().is_none() && s.tenant == shared.options.tenant && s.name() == hook
            })
            .cloned()
    })?;
    served.webhook().is_some().then_some(served)
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(hook): Path<String>,
    request: Request,
) -> Response {
    let Some(served) = hooked(&shared, &hook) else {
        return (StatusCode::NOT_FOUND, "no webhook endpoint here").into_response();
    };
    let Some((connection, _)) = served.webhook() else {
        unreachable!("hooked flows have webhook triggers")
    };
    let flow = served.name();
    let tenant = &served.tenant;
    let Some(bound) = served.plan.connections.get(connection) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the webhook connection is not a connector",
        )
            .into_response();
    };
    let (parts, body) = request.into_parts();
    // The listener has read the whole body already, within its cap and deadline.
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return (
            StatusCode::BAD_REQUEST,
            "the delivery's body could not be read",
        )
            .into_response();
    };
    let inbound = InboundRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let context = match bound.context(&shared.secrets, tenant, flow) {
        Ok(context) => context,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let verified = bound
        .plugin
        .verify(&context, connection, &bound.config, inbound)
        .await;
    let outcome = match &verified {
        Ok(Verification::Accepted(_)) => Delivery::Accepted,
        Ok(Verification::Handshake(_)) => Delivery::Handshake,
        Ok(Verification::Rejected(_)) => Delivery::Rejected,
        Err(_) => Delivery::Failed,
    };
    let answer = answer(&shared, &served, flow, verified).await;
    let outcome = if answer.status().is_server_error() {
        Delivery::Failed
    } else {
        outcome
    };
    shared.metrics.delivery(tenant, outcome);
    answer
}

/// The answer to a delivery the connector verified so: its events kept first when accepted.
async fn answer(
    shared: &Shared,
    served: &ServedFlow,
    flow: &str,
    verified: Result<Verification, weft_runtime::CallError>,
) -> Response {
    let tenant = &served.tenant;
    match verified {
        Ok(Verification::Accepted(events)) => {
            let events: Vec<StoredEvent> = events
                .into_iter()
                .map(|e| StoredEvent {
                    event_id: e.id,
                    seq: 0,
                    stream: e.stream,
                    action: e.action,
                    record: e.record,
                })
                .collect();
            let kept = match shared.intake().keep(tenant, flow, events).await {
                Ok(kept) => kept,
                // Not kept: the sender must deliver again.
                Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
            };
            let new = kept.iter().filter(|k| **k).count();
            let (kept, duplicates) = (new, kept.len() - new);
            shared
                .delivered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(served.key().clone());
            shared.wake.notify_one();
            axum::Json(json!({"accepted": kept, "duplicates": duplicates})).into_response()
        }
        Ok(Verification::Handshake(reply)) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            let mut response = (status, reply.body).into_response();
            for (k, v) in reply.headers {
                if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                    response.headers_mut().insert(k, v);
                }
            }
            response
        }
        Ok(Verification::Rejected(reason)) => {
            tracing::warn!(tenant = %tenant, flow = %flow, %reason, "webhook delivery rejected");
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": reason})),
            )
                .into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// Webhook events a run takes: their ids, and their records for each read step on the webhook
/// connection.
pub(crate) type Taken = (Vec<String>, BTreeMap<StepId, Vec<Value>>);

/// A webhook flow's pending events; `None` when nothing waits.
pub(crate) async fn pending(
    served: &ServedFlow,
    shared: &Shared,
) -> Result<Option<Taken>, ServeError> {
    let Some((connection, _)) = served.webhook() else {
        return Ok(None);
    };
    let events = shared
        .store
        .events_pending(&served.tenant, served.name(), EVENTS_PER_RUN)
        .await?;
    if events.is_empty() {
        return Ok(None);
    }
    let mut injected = BTreeMap::new();
    for step in &served.flow.steps {
        if let StepKind::Read(read) = &step.kind
            && let read = read.get_ref()
            && read.connection.get_ref().as_str() == connection
        {
            let records = events
                .iter()
                .filter(|e| &e.stream == read.stream.get_ref())
                .filter_map(|e| serde_json::from_str(&e.record).ok())
                .collect();
            injected.insert(step.id.get_ref().clone(), records);
        }
    }
    let ids = events.into_iter().map(|e| e.event_id).collect();
    Ok(Some((ids, injected)))
}
