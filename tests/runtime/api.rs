//! The HTTP API with the server it feeds, in-process: real HTTP on loopback, a real store, real
//! components. Two tenants deploy, run and inspect flows; every route tried with the other
//! tenant's token answers 404; a refused deploy carries `weft validate`'s diagnostics; tokens
//! are checked at their edges (none, revoked, suspended, the wrong kind). The server is driven
//! with `tick(now)`, so nothing waits for a clock.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use weft_api::Api;
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::{PluginDirectory, RunOptions};
use weft_server::{Event, Server, TenantPlugins, TenantPolicy};
use weft_store::{Store, TokenHolder};
use weft_tests::link::Link;
use weft_tests::upstream::Upstream;

mod control;
mod hooks;
mod looking;
mod plugins;
mod serving;

/// A server with its API on loopback, the operator's token, and what the server told.
struct Served {
    _dir: tempfile::TempDir,
    store: Store,
    server: Server,
    address: SocketAddr,
    operator: String,
    told: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Served {
    async fn start(policy: TenantPolicy) -> Served {
        Served::start_at(policy, None).await
    }

    /// [`Served::start`], reached by vendors at `public_url` when given.
    async fn start_at(policy: TenantPolicy, public_url: Option<&str>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("weft.db"))
            .await
            .unwrap();
        Served::start_on(dir, store, policy, public_url).await
    }

    /// [`Served::start_at`] on `store`, its plugins kept under `dir`.
    async fn start_on(
        dir: tempfile::TempDir,
        store: Store,
        policy: TenantPolicy,
        public_url: Option<&str>,
    ) -> Served {
        // reqwest's TLS wants a provider chosen, even for plain http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secrets = Secrets::new(store.clone(), MasterKey::generate("test"));
        let plugins = PluginDirectory::new([std::path::PathBuf::from(weft_tests::WASM_DIR)]);
        let runtime = weft_tests::runtime(|_| {});
        let tenant_plugins = TenantPlugins::new(store.clone(), dir.path().join("tenant-plugins"));
        let api = Api::new(
            store.clone(),
            secrets.clone(),
            plugins.clone(),
            tenant_plugins.clone(),
            runtime.clone(),
        )
        .with_policy(policy);
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&told);
        let options = RunOptions {
            lease: Duration::from_secs(5),
            ..RunOptions::default()
        };
        let mut server = Server::new(Vec::new(), store.clone(), secrets, options)
            .with_deployed(plugins, tenant_plugins, runtime, policy, api.changes())
            .on_event(move |e| sink.lock().unwrap().push(said(e)));
        if let Some(url) = public_url {
            server = server.with_public_url(url);
        }
        let address = server
            .listen_with(
                "127.0.0.1:0".parse().unwrap(),
                api.with_metrics(server.metrics()).router(),
            )
            .await
            .unwrap();
        let operator = weft_api::issue_token(&store, &TokenHolder::Operator)
            .await
            .unwrap()
            .token;
        Served {
            _dir: dir,
            store,
            server,
            address,
            operator,
            told,
            http: reqwest::Client::new(),
        }
    }

    /// `method path` with `token`, and a JSON body when given: the status and the body (JSON
    /// when it is, else a string).
    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Makes a tenant through the API; its token.
    async fn tenant(&self, name: &str) -> String {
        let (status, body) = self
            .call(
                Some(&self.operator),
                Method::POST,
                "/api/v1/tenants",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"]["token"].as_str().unwrap().to_owned()
    }

    /// Sets `tenant`'s quotas as the operator (`changes` as the API takes them); they must be
    /// taken.
    async fn set_quotas(&self, tenant: &str, changes: Value) {
        let (status, body) = self
            .call(
                Some(&self.operator),
                Method::PUT,
                &format!("/api/v1/tenants/{tenant}/quotas"),
                Some(changes),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// What the server told since the last look.
    fn told(&self) -> Vec<String> {
        std::mem::take(&mut self.told.lock().unwrap())
    }
}

fn said(event: &Event) -> String {
    match event {
        Event::RunEnded(run) => format!(
            "{}/{} {}: {} read, {} written",
            run.tenant, run.flow, run.status, run.read, run.written
        ),
        Event::Deferred {
            tenant,
            flow,
            error,
            ..
        } => format!("{tenant}/{flow} deferred: {error}"),
        Event::Registered { tenant, flow, .. } => format!("{tenant}/{flow} registered"),
    }
}

/// A manual flow reading `stream` of `upstream` (with the bearer token `secret:api`) into the
/// dataset `people`.
fn sync_flow(upstream: &Upstream, name: &str, stream: &str) -> String {
    format!(
        "name = \"{name}\"\n\n[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\nauth = {{ kind = \"bearer\", token = \"secret:api\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\n\n[connections.store]\nplugin = \"dataset\"\n\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"{stream}\" }}\n\n[[steps]]\nid = \"keep\"\nwrite = {{ connection = \"store\", stream = \"people\", input = \"items\", mode = \"upsert\", key = [\"email\"] }}\n",
        upstream.url(),
        upstream.addr
    )
}

fn people(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("{i}"), "email": format!("{prefix}{i}@x.io")}))
        .collect()
}

fn allow_private() -> TenantPolicy {
    TenantPolicy {
        allow_private_egress: true,
    }
}

/// Deploys `flow` for `token`, sets its secret and asks for a run of it.
async fn deploy_and_request(served: &Served, token: &str, flow: &str, source: String) {
    let (status, body) = served
        .call(
            Some(token),
            Method::POST,
            "/api/v1/flows",
            Some(json!({ "source": source })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = served
        .call(
            Some(token),
            Method::PUT,
            "/api/v1/secrets/api",
            Some(json!({ "value": "s3cret-token" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = served
        .call(
            Some(token),
            Method::POST,
            &format!("/api/v1/flows/{flow}/runs"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// Deploys `flow` for `token`, sets its secret, asks for a run and has the server run it.
async fn deploy_and_run(served: &mut Served, token: &str, flow: &str, source: String) -> Value {
    deploy_and_request(served, token, flow, source).await;
    turn(&mut served.server, SystemTime::now()).await;
    let (status, runs) = served
        .call(
            Some(token),
            Method::GET,
            &format!("/api/v1/runs?flow={flow}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    runs[0].clone()
}

/// One turn of the server at `now`, and the runs it started (and the chains after them) to
/// their end.
async fn turn(server: &mut Server, now: SystemTime) {
    server.tick(now).await;
    server.settle(now).await;
}

#[tokio::test]
async fn two_tenants_deploy_run_and_inspect_their_own_flows() {
    let (upstream_a, upstream_g) = (Upstream::start().await, Upstream::start().await);
    for upstream in [&upstream_a, &upstream_g] {
        upstream.require_bearer("s3cret-token");
    }
    upstream_a.seed("items", people("a", 3));
    upstream_g.seed("items", people("g", 5));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let globex = served.tenant("globex").await;

    // The same flow name in both tenants: two flows.
    let run_a = deploy_and_run(
        &mut served,
        &acme,
        "sync",
        sync_flow(&upstream_a, "sync", "items"),
    )
    .await;
    let run_g = deploy_and_run(
        &mut served,
        &globex,
        "sync",
        sync_flow(&upstream_g, "sync", "items"),
    )
    .await;
    let mut told = served.told();
    told.sort();
    assert_eq!(
        told,
        [
            "acme/sync succeeded: 3 read, 3 written",
            "globex/sync succeeded: 5 read, 5 written"
        ]
    );
    assert_eq!(run_a["status"], "succeeded");
    assert_eq!(run_g["status"], "succeeded");

    // A run with its steps.
    let (status, run) = served
        .call(
            Some(&acme),
            Method::GET,
            &format!("/api/v1/runs/{}", run_a["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let steps: Vec<(&str, u64)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap(),
                s["records_out"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps, [("items", 3), ("keep", 3)]);
    // What the run used: counted as it went, kept with it, summed per tenant.
    let usage = &run["usage"];
    assert_eq!(
        (
            &usage["records_read"],
            &usage["records_written"],
            &usage["records_failed"]
        ),
        (&json!(3), &json!(3), &json!(0))
    );
    assert!(usage["requests"].as_u64().unwrap() >= 1, "{usage}");
    assert!(usage["bytes_in"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["peak_memory"].as_u64().unwrap() > 0, "{usage}");
    let (status, sum) = served
        .call(Some(&acme), Method::GET, "/api/v1/usage", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{sum}");
    assert_eq!(sum["runs"], 1);
    assert_eq!(sum["records_read"], 3);
    assert_eq!(sum["requests"], usage["requests"]);
    let (_, globex_sum) = served
        .call(Some(&globex), Method::GET, "/api/v1/usage", None)
        .await;
    assert_eq!(
        (&globex_sum["runs"], &globex_sum["records_read"]),
        (&json!(1), &json!(5))
    );

    // Each tenant's dataset holds its own records, paged in key order.
    let (_, page) = served
        .call(
            Some(&globex),
            Method::GET,
            "/api/v1/datasets/people/records?limit=2",
            None,
        )
        .await;
    let keys: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["[\"g0@x.io\"]", "[\"g1@x.io\"]"]);
    let next = page["next"].as_str().unwrap();
    let (_, rest) = served
        .call(
            Some(&globex),
            Method::GET,
            &format!("/api/v1/datasets/people/records?limit=10&after={next}"),
            None,
        )
        .await;
    assert_eq!(rest["records"].as_array().unwrap().len(), 3);
    assert!(rest.get("next").is_none());
    let (_, datasets) = served
        .call(Some(&acme), Method::GET, "/api/v1/datasets", None)
        .await;
    assert_eq!(
        datasets,
        json!([{"name": "people", "records": 3, "updated_at": datasets[0]["updated_at"]}])
    );

    // Listed flows: manual, the last run; secrets by name only.
    let (_, flows) = served
        .call(Some(&acme), Method::GET, "/api/v1/flows", None)
        .await;
    assert_eq!(flows[0]["name"], "sync");
    assert_eq!(flows[0]["trigger"], "manual");
    assert_eq!(flows[0]["last_run"]["id"], run_a["id"]);
    let (_, secrets) = served
        .call(Some(&acme), Method::GET, "/api/v1/secrets", None)
        .await;
    assert_eq!(secrets[0]["name"], "api");
    assert!(!secrets.to_string().contains("s3cret"));

    // Disabled, a flow is not served and a run of it is refused; enabled, it is again.
    let (status, _) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows/sync/disable",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    turn(&mut served.server, SystemTime::now()).await;
    let names: Vec<String> = served
        .server
        .flows()
        .iter()
        .map(|s| format!("{}/{}", s.tenant, s.name()))
        .collect();
    assert_eq!(names, ["globex/sync"]);
    let (status, body) = served
        .call(Some(&acme), Method::POST, "/api/v1/flows/sync/runs", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // A deleted tenant's flows stop being served, and its token stops working.
    let (status, _) = served
        .call(
            Some(&served.operator.clone()),
            Method::DELETE,
            "/api/v1/tenants/globex",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    turn(&mut served.server, SystemTime::now()).await;
    assert!(served.server.flows().is_empty());
    let (status, _) = served
        .call(Some(&globex), Method::GET, "/api/v1/flows", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_route_with_another_tenants_token_answers_as_if_nothing_were_there() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 2));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let intruder = served.tenant("intruder").await;
    let run = deploy_and_run(
        &mut served,
        &acme,
        "sync",
        sync_flow(&upstream, "sync", "items"),
    )
    .await;
    let run = run["id"].as_str().unwrap().to_owned();
    served
        .store
        .error_append(&run, "keep", Some("{\"email\":\"x\"}"), "refused")
        .await
        .unwrap();

    let foreign = [
        (Method::GET, "/api/v1/flows/sync".to_owned(), None),
        (
            Method::GET,
            "/api/v1/flows/sync/connections".to_owned(),
            None,
        ),
        (Method::POST, "/api/v1/flows/sync/enable".to_owned(), None),
        (Method::POST, "/api/v1/flows/sync/disable".to_owned(), None),
        (Method::POST, "/api/v1/flows/sync/runs".to_owned(), None),
        (Method::DELETE, "/api/v1/flows/sync".to_owned(), None),
        (Method::GET, format!("/api/v1/runs/{run}"), None),
        (Method::GET, format!("/api/v1/runs/{run}/errors"), None),
        (Method::POST, format!("/api/v1/runs/{run}/retry"), None),
        (Method::POST, format!("/api/v1/runs/{run}/cancel"), None),
        (
            Method::GET,
            format!("/api/v1/runs/{run}/errors?format=csv"),
            None,
        ),
        (Method::DELETE, "/api/v1/secrets/api".to_owned(), None),
        (
            Method::GET,
            "/api/v1/datasets/people/records".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/api/v1/datasets/people/export".to_owned(),
            None,
        ),
    ];
    for (method, path, body) in foreign {
        let (status, answer) = served
            .call(Some(&intruder), method.clone(), &path, body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        let text = answer.to_string();
        assert!(
            !text.contains("acme") && !text.contains("a0@x.io"),
            "{method} {path} leaks: {text}"
        );
    }
    // The lists are the intruder's own: empty.
    for list in [
        "/api/v1/flows",
        "/api/v1/secrets",
        "/api/v1/datasets",
        "/api/v1/runs",
        "/api/v1/runs?flow=sync",
    ] {
        let (status, answer) = served.call(Some(&intruder), Method::GET, list, None).await;
        assert_eq!((status, answer), (StatusCode::OK, json!([])), "{list}");
    }
    // A secret set by the intruder under the same name is its own, not acme's.
    let (status, _) = served
        .call(
            Some(&intruder),
            Method::PUT,
            "/api/v1/secrets/api",
            Some(json!({"value": "mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Nothing of acme's changed: the flow is there and enabled, its error log intact, its
    // secret still the one its run used.
    let (_, flow) = served
        .call(Some(&acme), Method::GET, "/api/v1/flows/sync", None)
        .await;
    assert_eq!(flow["enabled"], true);
    let (status, log) = served
        .call(
            Some(&acme),
            Method::GET,
            &format!("/api/v1/runs/{run}/errors"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // One failed record: one line, which is a JSON document of its own.
    let line = log;
    assert_eq!(
        (
            line["step"].clone(),
            line["record"].clone(),
            line["error"].clone()
        ),
        (json!("keep"), json!({"email": "x"}), json!("refused"))
    );
    let (_, csv) = served
        .call(
            Some(&acme),
            Method::GET,
            &format!("/api/v1/runs/{run}/errors?format=csv"),
            None,
        )
        .await;
    assert!(
        csv.as_str().unwrap().starts_with(
            "seq,step,record,error,created_at\n1,keep,\"{\"\"email\"\":\"\"x\"\"}\",refused,"
        ),
        "{csv}"
    );
    served.told();
    let (status, _) = served
        .call(Some(&acme), Method::POST, "/api/v1/flows/sync/runs", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(served.told(), ["acme/sync succeeded: 2 read, 2 written"]);
}

#[tokio::test]
async fn tokens_are_refused_at_their_edges() {
    let served = Served::start(TenantPolicy::default()).await;
    let acme = served.tenant("acme").await;
    let operator = served.operator.clone();
    let cases: [(Option<&str>, Method, &str, StatusCode); 8] = [
        (None, Method::GET, "/api/v1/flows", StatusCode::UNAUTHORIZED),
        (
            Some("weft_not-a-token"),
            Method::GET,
            "/api/v1/flows",
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some("Basic abc"),
            Method::GET,
            "/api/v1/flows",
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(&acme),
            Method::GET,
            "/api/v1/tenants",
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&acme),
            Method::DELETE,
            "/api/v1/tenants/acme",
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&operator),
            Method::GET,
            "/api/v1/flows",
            StatusCode::FORBIDDEN,
        ),
        (Some(&acme), Method::GET, "/api/v1/flows", StatusCode::OK),
        (None, Method::GET, "/api/v1/openapi.json", StatusCode::OK),
    ];
    for (token, method, path, expected) in cases {
        let (status, body) = served.call(token, method.clone(), path, None).await;
        assert_eq!(status, expected, "{token:?} {method} {path}: {body}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["error"], "unauthorized");
        }
    }

    // Suspended: refused; resumed: taken again.
    let suspend = served
        .call(
            Some(&operator),
            Method::POST,
            "/api/v1/tenants/acme/suspend",
            None,
        )
        .await;
    assert_eq!(suspend.1["status"], "suspended");
    let (status, _) = served
        .call(Some(&acme), Method::GET, "/api/v1/flows", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    served
        .call(
            Some(&operator),
            Method::POST,
            "/api/v1/tenants/acme/resume",
            None,
        )
        .await;
    let (status, _) = served
        .call(Some(&acme), Method::GET, "/api/v1/flows", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Rotated: a new token works, the old one revoked by id does not.
    let (status, new) = served
        .call(
            Some(&operator),
            Method::POST,
            "/api/v1/tenants/acme/tokens",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, tokens) = served
        .call(
            Some(&operator),
            Method::GET,
            "/api/v1/tenants/acme/tokens",
            None,
        )
        .await;
    assert!(
        !tokens.to_string().contains("weft_"),
        "tokens are never shown again"
    );
    let old = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .find(|id| *id != new["id"].as_str().unwrap())
        .unwrap()
        .to_owned();
    let (status, _) = served
        .call(
            Some(&operator),
            Method::DELETE,
            &format!("/api/v1/tenants/acme/tokens/{old}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = served
        .call(Some(&acme), Method::GET, "/api/v1/flows", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let new = new["token"].as_str().unwrap();
    let (status, _) = served
        .call(Some(new), Method::GET, "/api/v1/flows", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // A tenant that exists already, a name that is not one.
    for (name, expected) in [
        ("acme", StatusCode::CONFLICT),
        ("Acme Corp", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = served
            .call(
                Some(&operator),
                Method::POST,
                "/api/v1/tenants",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, expected, "{body}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused_before_anything_changes() {
    let served = Served::start(TenantPolicy::default()).await;
    let acme = served.tenant("acme").await;
    let operator = served.operator.clone();
    // Every field of a quota change is optional, so serde alone would read `[]` as "no
    // change" and `[5]` as the first field; a tenant's name would be read from `["x"]`.
    let cases = [
        (
            &operator,
            Method::PUT,
            "/api/v1/tenants/acme/quotas",
            json!([]),
        ),
        (
            &operator,
            Method::PUT,
            "/api/v1/tenants/acme/quotas",
            json!([5]),
        ),
        (&operator, Method::POST, "/api/v1/tenants", json!(["beta"])),
        (&operator, Method::POST, "/api/v1/tenants", json!("beta")),
        (&acme, Method::PUT, "/api/v1/secrets/key", json!(["v"])),
        (&acme, Method::PUT, "/api/v1/secrets/key", Value::Null),
        (&acme, Method::POST, "/api/v1/flows", json!(["f", "x"])),
    ];
    for (token, method, path, body) in cases {
        let (status, answer) = served
            .call(Some(token), method.clone(), path, Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {answer}"
        );
        assert_eq!(answer["error"], "bad_request", "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .starts_with("the request body must be a JSON object"),
            "{answer}"
        );
    }
    let (_, quotas) = served
        .call(
            Some(&operator),
            Method::GET,
            "/api/v1/tenants/acme/quotas",
            None,
        )
        .await;
    assert!(
        quotas["limits"].as_object().unwrap().is_empty(),
        "no quota was set: {quotas}"
    );
    let (_, tenants) = served
        .call(Some(&operator), Method::GET, "/api/v1/tenants", None)
        .await;
    assert_eq!(tenants.as_array().unwrap().len(), 1, "{tenants}");
    let (_, secrets) = served
        .call(Some(&acme), Method::GET, "/api/v1/secrets", None)
        .await;
    assert_eq!(secrets.as_array().unwrap().len(), 0, "{secrets}");
}

#[tokio::test]
async fn a_refused_deploy_answers_what_weft_validate_says_and_deploys_nothing() {
    let upstream = Upstream::start().await;
    let served = Served::start(TenantPolicy::default()).await;
    let acme = served.tenant("acme").await;
    let deploy = |source: String, variables: Value| {
        let served = &served;
        let acme = acme.clone();
        async move {
            served
                .call(
                    Some(&acme),
                    Method::POST,
                    "/api/v1/flows",
                    Some(json!({ "source": source, "variables": variables })),
                )
                .await
        }
    };

    // A file that does not check: each diagnostic with its line and column, and the report
    // as `weft validate` prints it.
    let broken = "name = \"sync\"\n\n[[steps]]\nid = \"keep\"\nwrite = { connection = \"nowhere\", stream = \"people\", input = \"items\" }\n";
    let (status, body) = deploy(broken.to_owned(), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let expected = weft_flow::parse(std::path::Path::new("flow.toml"), broken).unwrap_err();
    assert_eq!(body["report"], expected.to_string());
    assert_eq!(
        body["diagnostics"].as_array().unwrap().len(),
        expected.diagnostics.len()
    );
    let first = &body["diagnostics"][0];
    assert_eq!(
        (first["line"].as_u64(), first["file"].as_str()),
        (Some(5), Some("flow.toml"))
    );
    assert!(first["column"].as_u64().unwrap() > 1, "{first}");

    // A plugin the server does not have.
    let unknown = sync_flow(&upstream, "sync", "items").replace("http-json", "no-such-plugin");
    let (status, body) = deploy(unknown, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["report"].as_str().unwrap().contains("no-such-plugin"),
        "{body}"
    );

    // What a tenant may not do on this server: private addresses, the server's environment.
    let (status, body) = deploy(sync_flow(&upstream, "sync", "items"), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["report"]
            .as_str()
            .unwrap()
            .contains("allows private addresses"),
        "{body}"
    );
    let from_env = sync_flow(&upstream, "sync", "items")
        .replace(", allow_private = true", "")
        .replace("secret:api", "env:HOME");
    let (status, body) = deploy(from_env, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["report"].as_str().unwrap().contains("env:HOME"),
        "{body}"
    );

    // A variable the flow does not declare.
    let plain = sync_flow(&upstream, "sync", "items").replace(", allow_private = true", "");
    let (status, body) = deploy(plain, json!({"region": "eu"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["report"].as_str().unwrap().contains("`region`"),
        "{body}"
    );

    // Bodies that are not what the route takes are said in JSON, not axum's text.
    let (status, body) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows",
            Some(json!({"src": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");

    // Nothing was deployed.
    let (_, flows) = served
        .call(Some(&acme), Method::GET, "/api/v1/flows", None)
        .await;
    assert_eq!(flows, json!([]));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_with_its_security() {
    let served = Served::start(TenantPolicy::default()).await;
    let (status, document) = served
        .call(None, Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document, serde_json::to_value(weft_api::openapi()).unwrap());
    let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    for path in [
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant}",
        "/api/v1/tenants/{tenant}/tokens/{token}",
        "/api/v1/flows",
        "/api/v1/flows/{flow}",
        "/api/v1/flows/{flow}/runs",
        "/api/v1/secrets/{name}",
        "/api/v1/runs",
        "/api/v1/runs/{run}/errors",
        "/api/v1/datasets/{dataset}/records",
    ] {
        assert!(
            paths.iter().any(|p| *p == path),
            "{path} missing from {paths:?}"
        );
    }
    assert!(document["components"]["securitySchemes"]["token"].is_object());
}

/// A store in a schema of its own on the test PostgreSQL server (127.0.0.1:5432, or
/// `WEFT_TEST_POSTGRES`), reached through a [`Link`] the test can cut.
async fn postgres_behind_link() -> (Link, Store) {
    use sqlx::ConnectOptions;
    use sqlx::postgres::PgConnectOptions;
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("WEFT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let options = PgConnectOptions::from_str(&admin).unwrap();
    let schema = format!(
        "weft_api_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut db = options.connect().await.unwrap();
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&mut db)
    .await
    .unwrap();
    let target = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let link = Link::to(target).await;
    let url = options
        .host("127.0.0.1")
        .port(link.addr.port())
        .to_url_lossy();
    let url = format!("{url}&options=-c%20search_path%3D{schema}");
    let store = Store::open_postgres(&url).await.unwrap();
    (link, store)
}
