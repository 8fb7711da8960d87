//! Runs steered through the API: the failed records of a run retried, a running run cancelled
//! after its current page, a run stopped after the page that took its tenant over a quota.

use super::*;

/// A manual flow reading `items` of `upstream` `page_size` at a time and upserting them by `id`
/// into its `contacts` (both with the bearer token `secret:api`).
fn items_to_contacts(upstream: &Upstream, name: &str, page_size: u32) -> String {
    format!(
        "name = \"{name}\"\n\n[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\nauth = {{ kind = \"bearer\", token = \"secret:api\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\n\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"items\", page_size = {page_size} }}\n\n[[steps]]\nid = \"save\"\nwrite = {{ connection = \"api\", stream = \"contacts\", input = \"items\", mode = \"upsert\", key = [\"id\"] }}\n",
        upstream.url(),
        upstream.addr
    )
}

/// The tenant's runs of `flow`, newest first.
async fn runs_of(served: &Served, token: &str, flow: &str) -> Vec<Value> {
    let (status, runs) = served
        .call(
            Some(token),
            Method::GET,
            &format!("/api/v1/runs?flow={flow}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    runs.as_array().unwrap().clone()
}

/// Waits (a few seconds at most) until the tenant's run of `flow` is running; its id.
async fn running(served: &Served, token: &str, flow: &str) -> String {
    for _ in 0..100 {
        let runs = runs_of(served, token, flow).await;
        if let Some(run) = runs.iter().find(|r| r["status"] == "running") {
            return run["id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("flow {flow} never ran");
}

#[tokio::test]
async fn the_failed_records_of_a_run_are_retried_through_the_api_and_nothing_else() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 6));
    upstream.lock(&["1", "4"]);
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let globex = served.tenant("globex").await;
    let first = deploy_and_run(
        &mut served,
        &acme,
        "contacts",
        items_to_contacts(&upstream, "contacts", 100),
    )
    .await;
    assert_eq!(first["status"], "partial", "{first}");
    let first = first["id"].as_str().unwrap().to_owned();
    assert_eq!(upstream.records("contacts").len(), 4);

    // Another tenant's token: no such run.
    let retry = format!("/api/v1/runs/{first}/retry");
    let (status, _) = served.call(Some(&globex), Method::POST, &retry, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    upstream.unlock();
    let reads_before = upstream
        .seen()
        .iter()
        .filter(|s| s.path == "/items")
        .count();
    served.told();
    let (status, asked) = served.call(Some(&acme), Method::POST, &retry, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    assert_eq!(
        (asked["flow"].clone(), asked["retry_of"].clone()),
        (json!("contacts"), json!(first))
    );
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(
        served.told(),
        ["acme/contacts succeeded: 0 read, 2 written"]
    );
    assert_eq!(upstream.records("contacts").len(), 6);
    assert_eq!(
        upstream
            .seen()
            .iter()
            .filter(|s| s.path == "/items")
            .count(),
        reads_before,
        "a retry reads nothing upstream"
    );
    let runs = runs_of(&served, &acme, "contacts").await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "succeeded");
    assert!(served.store.run_requests().await.unwrap().is_empty());

    // The retry itself failed nothing: there is nothing to retry in it.
    let retry_run = runs[0]["id"].as_str().unwrap();
    let (status, body) = served
        .call(
            Some(&acme),
            Method::POST,
            &format!("/api/v1/runs/{retry_run}/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has no failed records to retry"),
        "{body}"
    );

    // A flow removed since: its runs cannot be retried, and say why.
    let (status, _) = served
        .call(Some(&acme), Method::DELETE, "/api/v1/flows/contacts", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = served.call(Some(&acme), Method::POST, &retry, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"].as_str().unwrap().contains("not deployed"),
        "{body}"
    );
}

#[tokio::test]
async fn a_running_run_cancelled_through_the_api_stops_after_its_page_and_says_so() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 20));
    upstream.delay_data(Duration::from_millis(300));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let globex = served.tenant("globex").await;
    deploy_and_request(
        &served,
        &acme,
        "contacts",
        items_to_contacts(&upstream, "contacts", 2),
    )
    .await;
    served.server.tick(SystemTime::now()).await;
    let run = running(&served, &acme, "contacts").await;
    let cancel = format!("/api/v1/runs/{run}/cancel");
    let (status, _) = served
        .call(Some(&globex), Method::POST, &cancel, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = served.call(Some(&acme), Method::POST, &cancel, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "running");

    // The server learns of it at its next turn and the run stops after its page.
    served.told();
    turn(&mut served.server, SystemTime::now()).await;
    let told = served.told();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].starts_with("acme/contacts cancelled: "), "{told:?}");
    let (_, detail) = served
        .call(
            Some(&acme),
            Method::GET,
            &format!("/api/v1/runs/{run}"),
            None,
        )
        .await;
    assert_eq!(detail["status"], "cancelled");
    assert_eq!(
        detail["error"],
        format!("cancelled on request (POST /api/v1/runs/{run}/cancel)")
    );
    let items = &detail["steps"][0];
    assert!(
        items["error"]
            .as_str()
            .unwrap()
            .starts_with("stopped after page "),
        "{detail}"
    );
    let pages = items["pages"].as_u64().unwrap();
    assert!(pages < 10, "stopped before the end: {detail}");
    // What went through was written, and only that.
    assert_eq!(upstream.records("contacts").len() as u64, pages * 2);

    let (status, body) = served.call(Some(&acme), Method::POST, &cancel, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["message"],
        format!("run `{run}` is not running: it ended cancelled")
    );
    let (_, cancelled) = served
        .call(
            Some(&acme),
            Method::GET,
            "/api/v1/runs?status=cancelled",
            None,
        )
        .await;
    assert_eq!(cancelled.as_array().unwrap().len(), 1, "{cancelled}");
}

#[tokio::test]
async fn a_run_that_takes_its_tenant_over_a_quota_is_stopped_after_that_page() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 20));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    served
        .set_quotas("acme", json!({"requests_per_hour": 3}))
        .await;
    let stopped = deploy_and_run(
        &mut served,
        &acme,
        "contacts",
        items_to_contacts(&upstream, "contacts", 2),
    )
    .await;
    assert_eq!(stopped["status"], "refused", "{stopped}");
    let why = stopped["error"].as_str().unwrap();
    assert!(
        why.starts_with("the tenant reached its quota requests_per_hour (")
            && why.contains(" used of 3); it resets at "),
        "{why}"
    );
    // It stopped early, not at the end of its 10 pages (and 10 writes).
    let requests = stopped["usage"]["requests"].as_u64().unwrap();
    assert!((3..=5).contains(&requests), "{stopped}");
    assert!(upstream.records("contacts").len() < 20);

    // The flow rests until the quota resets: a run asked for waits, nothing more goes out.
    let seen = upstream.seen().len();
    let (status, _) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows/contacts/runs",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(upstream.seen().len(), seen);
    assert_eq!(runs_of(&served, &acme, "contacts").await.len(), 1);
}

#[tokio::test]
async fn a_run_asked_for_with_variables_runs_with_them_over_the_deployed_ones() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    a.seed("items", people("a", 3));
    b.seed("items", people("b", 5));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let source = format!(
        "name = \"pull\"\n\n[variables.base]\ntype = \"string\"\ndefault = \"{}\"\n\n[variables.host]\ntype = \"string\"\ndefault = \"{}\"\n\n[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"${{var.base}}\" }}\negress = [{{ host = \"${{var.host}}\", allow_http = true, allow_private = true }}]\n\n[connections.store]\nplugin = \"dataset\"\n\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"keep\"\nwrite = {{ connection = \"store\", stream = \"people\", input = \"items\", mode = \"upsert\", key = [\"email\"] }}\n",
        a.url(),
        a.addr
    );
    let (status, body) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows",
            Some(json!({ "source": source })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    served.told();

    // Variables the flow does not declare: refused with the diagnostic, nothing asked for.
    let (status, refused) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows/pull/runs",
            Some(json!({"variables": {"bsae": "x"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("variable `bsae` is given a value but the flow does not declare it"),
        "{refused}"
    );
    assert!(served.store.run_requests().await.unwrap().is_empty());

    // With the other upstream's address for this run only, then without: each reads its own.
    let (status, asked) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows/pull/runs",
            Some(json!({"variables": {"base": b.url(), "host": b.addr.to_string()}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    assert_eq!(asked["variables"]["base"], b.url());
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(served.told(), ["acme/pull succeeded: 5 read, 5 written"]);
    let (status, _) = served
        .call(Some(&acme), Method::POST, "/api/v1/flows/pull/runs", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(served.told(), ["acme/pull succeeded: 3 read, 3 written"]);
    assert!(served.store.run_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_tenant_whose_datasets_hold_its_quota_of_rows_has_its_runs_refused() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 3));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    served.set_quotas("acme", json!({"dataset_rows": 3})).await;
    // Under it when it starts: the run goes, and fills the datasets to the quota.
    let first = deploy_and_run(
        &mut served,
        &acme,
        "sync",
        sync_flow(&upstream, "sync", "items"),
    )
    .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    // At it: the next run is refused, saying what to do.
    let (status, _) = served
        .call(Some(&acme), Method::POST, "/api/v1/flows/sync/runs", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    turn(&mut served.server, SystemTime::now()).await;
    let runs = runs_of(&served, &acme, "sync").await;
    assert_eq!(runs[0]["status"], "refused", "{runs:?}");
    let why = runs[0]["error"].as_str().unwrap();
    assert!(
        why.starts_with("the tenant reached its quota dataset_rows (3 used of 3); delete records of its datasets or ask the operator for more; tried again at "),
        "{why}"
    );
}
