//! The admin API, on its own port so vendor paths stay exactly the vendor's: reset, seed,
//! inspect state, read the request log, set faults, force token expiry, move the clock.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{DemoData, DemoSize, FaultConfig};
use crate::server::{Emulator, Hub};
use crate::vendor::Vendor;

#[derive(Clone)]
pub(crate) struct Admin {
    pub hub: Arc<Hub>,
    pub emulators: Arc<Vec<Arc<dyn Emulator>>>,
    pub data: Arc<std::sync::Mutex<DemoData>>,
}

pub(crate) fn router(admin: Admin) -> Router {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/vendors", get(index))
        .route("/admin/vendors/{vendor}/state", get(state))
        .route("/admin/vendors/{vendor}/records/{object}/{id}", get(record))
        .route("/admin/vendors/{vendor}/actions/{action}", post(action))
        .route("/admin/reset", post(reset))
        .route("/admin/seed", post(seed))
        .route("/admin/log", get(log).delete(clear_log))
        .route("/admin/faults", get(faults).put(set_faults))
        .route("/admin/tokens/expire", post(expire_tokens))
        .route("/admin/clock/advance", post(advance_clock))
        .route("/admin/webhooks", get(webhooks).delete(clear_webhooks))
        .route("/admin/webhooks/{id}", get(webhook))
        .with_state(admin)
}

fn bad(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

impl Admin {
    fn emulator(&self, slug: &str) -> Result<&Arc<dyn Emulator>, Response> {
        let Some(v) = Vendor::from_slug(slug) else {
            let known: Vec<&str> = self.emulators.iter().map(|e| e.vendor().slug()).collect();
            return Err(bad(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown vendor {slug:?}; running emulators: {}",
                    known.join(", ")
                ),
            ));
        };
        self.emulators
            .iter()
            .find(|e| e.vendor() == v)
            .ok_or_else(|| {
                bad(
                    StatusCode::NOT_FOUND,
                    format!(
                        "the {} emulator is not part of this sandbox build",
                        v.display_name()
                    ),
                )
            })
    }

    fn vendor_filter(&self, slug: Option<&str>) -> Result<Option<Vendor>, Response> {
        match slug {
            None | Some("") => Ok(None),
            Some(s) => self.emulator(s).map(|e| Some(e.vendor())),
        }
    }
}

async fn index(State(a): State<Admin>) -> Json<Value> {
    let vendors: Vec<Value> = a
        .emulators
        .iter()
        .map(|e| {
            json!({
                "vendor": e.vendor().slug(),
                "name": e.vendor().display_name(),
                "base_url": e.base_url().get(),
                "credentials": e.credentials(),
            })
        })
        .collect();
    let data = *a.data.lock().expect("data");
    Json(json!({"vendors": vendors, "data": data, "now": crate::clock::rfc3339(a.hub.now_ms())}))
}

async fn state(State(a): State<Admin>, Path(vendor): Path<String>) -> Response {
    match a.emulator(&vendor) {
        Ok(e) => Json(e.snapshot()).into_response(),
        Err(r) => r,
    }
}

async fn record(
    State(a): State<Admin>,
    Path((vendor, object, id)): Path<(String, String, String)>,
) -> Response {
    let e = match a.emulator(&vendor) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match e.record(&object, &id) {
        Some(v) => Json(v).into_response(),
        None => bad(
            StatusCode::NOT_FOUND,
            format!("no {object} record with id {id:?} in the {vendor} emulator"),
        ),
    }
}

async fn action(
    State(a): State<Admin>,
    Path((vendor, name)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    let e = match a.emulator(&vendor) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let body = body.map(|b| b.0).unwrap_or(Value::Null);
    e.admin_action(&name, &body).unwrap_or_else(|| {
        bad(
            StatusCode::NOT_FOUND,
            format!("the {vendor} emulator has no admin action {name:?}"),
        )
    })
}

#[derive(Deserialize, Default)]
struct ResetBody {
    vendor: Option<String>,
    seed: Option<u64>,
    size: Option<DemoSize>,
}

async fn reset(State(a): State<Admin>, body: Option<Json<ResetBody>>) -> Response {
    let body = body.map(|b| b.0).unwrap_or_default();
    apply_reset(&a, body)
}

/// Like reset, but a new seed or size is the point, so one of them is required.
async fn seed(State(a): State<Admin>, Json(body): Json<ResetBody>) -> Response {
    if body.seed.is_none() && body.size.is_none() {
        return bad(
            StatusCode::BAD_REQUEST,
            "give \"seed\" and/or \"size\" (e.g. {\"seed\":7,\"size\":{\"contacts\":1000}})",
        );
    }
    apply_reset(&a, body)
}

fn apply_reset(a: &Admin, body: ResetBody) -> Response {
    let vendor = match a.vendor_filter(body.vendor.as_deref()) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let data = {
        let mut d = a.data.lock().expect("data");
        if let Some(s) = body.seed {
            d.seed = s;
        }
        if let Some(s) = body.size {
            d.size = s;
        }
        *d
    };
    for e in a
        .emulators
        .iter()
        .filter(|e| vendor.is_none_or(|v| e.vendor() == v))
    {
        a.hub.tokens.forget_vendor(e.vendor());
        e.reset(data);
    }
    a.hub.log.clear(vendor);
    a.hub.outbox.clear(vendor);
    Json(json!({"reset": vendor.map(|v| v.slug()).unwrap_or("all"), "data": data})).into_response()
}

#[derive(Deserialize)]
struct LogQuery {
    vendor: Option<String>,
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn log(State(a): State<Admin>, Query(q): Query<LogQuery>) -> Response {
    match a.vendor_filter(q.vendor.as_deref()) {
        Ok(v) => Json(json!({"requests": a.hub.log.query(v, q.after, q.limit.unwrap_or(1_000))}))
            .into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct VendorQuery {
    vendor: Option<String>,
}

async fn clear_log(State(a): State<Admin>, Query(q): Query<VendorQuery>) -> Response {
    match a.vendor_filter(q.vendor.as_deref()) {
        Ok(v) => {
            a.hub.log.clear(v);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

async fn faults(State(a): State<Admin>) -> Json<Value> {
    let map: serde_json::Map<String, Value> = a
        .emulators
        .iter()
        .map(|e| {
            (
                e.vendor().slug().to_string(),
                serde_json::to_value(a.hub.faults(e.vendor())).unwrap_or(Value::Null),
            )
        })
        .collect();
    Json(Value::Object(map))
}

#[derive(Deserialize)]
struct FaultsBody {
    vendor: Option<String>,
    #[serde(flatten)]
    faults: FaultConfig,
}

async fn set_faults(State(a): State<Admin>, Json(body): Json<FaultsBody>) -> Response {
    let f = body.faults;
    for (name, x) in [
        ("rate_limited", f.rate_limited),
        ("server_error", f.server_error),
        ("dropped", f.dropped),
        ("slow", f.slow),
        ("token_expired", f.token_expired),
    ] {
        if !(0.0..=1.0).contains(&x) {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("{name} must be a fraction between 0.0 and 1.0, got {x}"),
            );
        }
    }
    match a.vendor_filter(body.vendor.as_deref()) {
        Ok(v) => {
            a.hub.set_faults(v, f);
            Json(json!({"vendor": v.map(|v| v.slug()).unwrap_or("all"), "faults": f}))
                .into_response()
        }
        Err(r) => r,
    }
}

async fn expire_tokens(State(a): State<Admin>, body: Option<Json<VendorQuery>>) -> Response {
    let slug = body.and_then(|b| b.0.vendor);
    match a.vendor_filter(slug.as_deref()) {
        Ok(v) => {
            Json(json!({"expired": a.hub.tokens.expire_all(v, a.hub.now_ms())})).into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct AdvanceBody {
    seconds: i64,
}

async fn advance_clock(State(a): State<Admin>, Json(b): Json<AdvanceBody>) -> Response {
    if b.seconds < 0 {
        return bad(
            StatusCode::BAD_REQUEST,
            "the sandbox clock only moves forward; give a positive \"seconds\"",
        );
    }
    a.hub.clock.advance(b.seconds * 1_000);
    Json(json!({"now": crate::clock::rfc3339(a.hub.now_ms())})).into_response()
}

async fn webhooks(State(a): State<Admin>, Query(q): Query<VendorQuery>) -> Response {
    match a.vendor_filter(q.vendor.as_deref()) {
        Ok(v) => Json(json!({"deliveries": a.hub.outbox.list(v)})).into_response(),
        Err(r) => r,
    }
}

async fn webhook(State(a): State<Admin>, Path(id): Path<u64>) -> Response {
    match a.hub.outbox.get(id) {
        Some(d) => Json(d).into_response(),
        None => bad(StatusCode::NOT_FOUND, format!("no webhook delivery {id}")),
    }
}

async fn clear_webhooks(State(a): State<Admin>, Query(q): Query<VendorQuery>) -> Response {
    match a.vendor_filter(q.vendor.as_deref()) {
        Ok(v) => {
            a.hub.outbox.clear(v);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}
