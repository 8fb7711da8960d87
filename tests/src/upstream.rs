//! A real HTTP server on 127.0.0.1 speaking the `http-json` connector's API, recording every
//! request it receives so tests can see exactly what the host sent (and what it did not).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Map, Value, json};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
}

#[derive(Default)]
struct Data {
    streams: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    seen: Vec<Seen>,
    /// When set, data endpoints demand `Authorization: Bearer <this>`.
    bearer: Option<String>,
    /// Ids whose writes fail with "locked" until released.
    locked: std::collections::BTreeSet<String>,
    /// Writes are acknowledged and counted but not kept (benchmarks measure the engine).
    forget_writes: bool,
    written: usize,
    /// Answers to give data requests before serving them normally: status and `Retry-After`.
    faults: std::collections::VecDeque<(u16, Option<u32>)>,
    tokens_issued: u32,
    /// How long data requests wait before they are answered.
    delay: Option<std::time::Duration>,
    /// Webhook subscriptions by id: where to deliver, for which events.
    webhooks: BTreeMap<String, Value>,
    webhooks_made: u32,
}

/// A running upstream; stops when dropped.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    data: Arc<Mutex<Data>>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Shared = Arc<Mutex<Data>>;

impl Upstream {
    pub async fn start() -> Upstream {
        let data: Shared = Arc::default();
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/oauth/token", post(token))
            .route("/redirect", get(redirect))
            .route("/big", get(big))
            .route("/echo-headers", get(echo_headers))
            .route("/webhooks", post(subscribe))
            .route("/webhooks/{id}", axum::routing::delete(unsubscribe))
            .route("/{stream}", get(list))
            .route("/{stream}/batch", post(batch))
            .fallback(any(|| async { (StatusCode::NOT_FOUND, "no such route") }))
            .layer(axum::middleware::from_fn_with_state(data.clone(), record))
            .with_state(data.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream {
            addr,
            data,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Demands `Authorization: Bearer token` on data endpoints.
    pub fn require_bearer(&self, token: &str) {
        self.data.lock().unwrap().bearer = Some(token.to_owned());
    }

    /// Puts records into `stream`, keyed by their `id`.
    pub fn seed(&self, stream: &str, records: impl IntoIterator<Item = Value>) {
        let mut data = self.data.lock().unwrap();
        let table = data.streams.entry(stream.to_owned()).or_default();
        for record in records {
            let Value::Object(map) = record else {
                panic!("records are objects")
            };
            let id = map["id"].as_str().expect("string id").to_owned();
            table.insert(id, map);
        }
    }

    /// Makes writes of these ids fail (a record locked upstream) until [`Upstream::unlock`].
    pub fn lock(&self, ids: &[&str]) {
        self.data
            .lock()
            .unwrap()
            .locked
            .extend(ids.iter().map(|i| (*i).to_owned()));
    }

    pub fn unlock(&self) {
        self.data.lock().unwrap().locked.clear();
    }

    /// Acknowledges writes without keeping them; [`Upstream::written`] still counts them.
    pub fn forget_writes(&self) {
        self.data.lock().unwrap().forget_writes = true;
    }

    /// Records acknowledged by batch writes so far.
    pub fn written(&self) -> usize {
        self.data.lock().unwrap().written
    }

    /// The next data requests get these answers (status, `Retry-After` seconds) instead.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = (u16, Option<u32>)>) {
        self.data.lock().unwrap().faults.extend(faults);
    }

    /// Drops the faults [`Upstream::fail_next`] queued that were not given yet.
    pub fn heal(&self) {
        self.data.lock().unwrap().faults.clear();
    }

    /// Data requests are answered only after `by` (a slow upstream).
    pub fn delay_data(&self, by: std::time::Duration) {
        self.data.lock().unwrap().delay = Some(by);
    }

    pub fn records(&self, stream: &str) -> Vec<Map<String, Value>> {
        self.data
            .lock()
            .unwrap()
            .streams
            .get(stream)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.data.lock().unwrap().seen.clone()
    }

    /// The webhook subscriptions held now (`{"id", "url", "events"}`), in id order.
    pub fn webhooks(&self) -> Vec<Value> {
        self.data
            .lock()
            .unwrap()
            .webhooks
            .values()
            .cloned()
            .collect()
    }

    /// Subscriptions made so far, removed ones included.
    pub fn webhooks_made(&self) -> u32 {
        self.data.lock().unwrap().webhooks_made
    }

    pub fn tokens_issued(&self) -> u32 {
        self.data.lock().unwrap().tokens_issued
    }
}

async fn record(
    State(data): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let seen = Seen {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or("").to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    let open = [
        "/health",
        "/oauth/token",
        "/redirect",
        "/big",
        "/echo-headers",
    ]
    .contains(&seen.path.as_str());
    let (demanded, fault, delay) = {
        let mut data = data.lock().unwrap();
        data.seen.push(seen.clone());
        let fault = if open { None } else { data.faults.pop_front() };
        (data.bearer.clone(), fault, data.delay.filter(|_| !open))
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, retry_after)) = fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(json!({"error": "injected"}))).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().unwrap());
        }
        return response;
    }
    if let Some(token) = demanded.filter(|_| !open)
        && seen.headers.get("authorization") != Some(&format!("Bearer {token}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    next.run(request).await
}

/// `POST /webhooks {"url", "events"}`: a subscription, answered with its id.
async fn subscribe(State(data): State<Shared>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    let Some(url) = request["url"].as_str() else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "`url` is required").into_response();
    };
    let mut data = data.lock().unwrap();
    data.webhooks_made += 1;
    let id = format!("wh-{}", data.webhooks_made);
    let subscription = json!({"id": id, "url": url, "events": request["events"]});
    data.webhooks.insert(id.clone(), subscription);
    (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
}

/// `DELETE /webhooks/{id}`: 204, or 404 for a subscription it does not hold.
async fn unsubscribe(State(data): State<Shared>, Path(id): Path<String>) -> StatusCode {
    match data.lock().unwrap().webhooks.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::NOT_FOUND,
    }
}

async fn token(State(data): State<Shared>) -> impl IntoResponse {
    let mut data = data.lock().unwrap();
    data.tokens_issued += 1;
    axum::Json(json!({
        "access_token": format!("issued-token-{}", data.tokens_issued),
        "token_type": "Bearer",
        "expires_in": 3600,
        "instance_url": "https://example.invalid",
    }))
}

async fn redirect(Query(q): Query<BTreeMap<String, String>>) -> impl IntoResponse {
    (
        StatusCode::FOUND,
        [("location", q.get("to").cloned().unwrap_or_default())],
    )
}

async fn big(Query(q): Query<BTreeMap<String, String>>) -> impl IntoResponse {
    let kib: usize = q.get("kib").and_then(|v| v.parse().ok()).unwrap_or(1024);
    vec![b'x'; kib * 1024]
}

async fn echo_headers(headers: HeaderMap) -> impl IntoResponse {
    let map: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    axum::Json(json!(map))
}

async fn list(
    State(data): State<Shared>,
    Path(stream): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let limit: usize = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let offset: usize = q.get("cursor").and_then(|v| v.parse().ok()).unwrap_or(0);
    let since = q.get("updated_since");
    let data = data.lock().unwrap();
    let Some(table) = data.streams.get(&stream) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no stream {stream}")})),
        )
            .into_response();
    };
    // A plain listing (the bulk of a benchmark's pages) walks no filter over the whole table.
    let plain = since.is_none() && q.keys().all(|k| ["limit", "cursor"].contains(&k.as_str()));
    if plain {
        let page: Vec<&Map<String, Value>> = table.values().skip(offset).take(limit).collect();
        let next = (offset + limit < table.len()).then(|| (offset + limit).to_string());
        return axum::Json(json!({"data": page, "next_cursor": next, "total": table.len()}))
            .into_response();
    }
    let matching: Vec<&Map<String, Value>> = table
        .values()
        .filter(|r| match since {
            Some(since) => r
                .get("updated_at")
                .and_then(Value::as_str)
                .is_some_and(|u| u > since.as_str()),
            None => true,
        })
        // Any other parameter selects the records whose field of that name has that value.
        .filter(|r| {
            q.iter()
                .filter(|(k, _)| !["limit", "cursor", "updated_since"].contains(&k.as_str()))
                .all(|(k, v)| match r.get(k) {
                    Some(Value::String(s)) => s == v,
                    Some(other) => {
                        serde_json::from_str::<Value>(v).is_ok_and(|given| &given == other)
                    }
                    None => false,
                })
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| Value::Object((*r).clone()))
        .collect();
    let next = (offset + limit < matching.len()).then(|| (offset + limit).to_string());
    axum::Json(json!({"data": page, "next_cursor": next, "total": matching.len()})).into_response()
}

async fn batch(State(data): State<Shared>, Path(stream): Path<String>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    let mut data = data.lock().unwrap();
    let forget = data.forget_writes;
    let locked = data.locked.clone();
    data.written += request["records"].as_array().map_or(0, Vec::len);
    let mut scratch = BTreeMap::new();
    let table = if forget {
        &mut scratch
    } else {
        data.streams.entry(stream).or_default()
    };
    let results: Vec<Value> = request["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|record| {
            let Value::Object(map) = record else {
                return json!({"status": "failed", "error": "record is not an object"});
            };
            let Some(id) = map.get("id").and_then(Value::as_str).map(str::to_owned) else {
                return json!({"status": "failed", "error": "id is required"});
            };
            if locked.contains(&id) {
                return json!({"status": "failed", "error": format!("record {id} is locked by another user")});
            }
            match table.insert(id.clone(), map.clone()) {
                None => json!({"status": "created", "id": id}),
                Some(old) if old == map => json!({"status": "unchanged", "id": id}),
                Some(_) => json!({"status": "updated", "id": id}),
            }
        })
        .collect();
    axum::Json(json!({ "results": results })).into_response()
}
