//! The server as tenants share it: a slow or failing tenant (an upstream that never answers
//! well, a plugin that panics) does not hold up another's run; quotas refuse runs with their
//! reason; usage sums over any period.

use super::*;

#[tokio::test]
async fn a_slow_or_failing_tenant_does_not_hold_up_another_tenants_run() {
    let slow = Upstream::start().await;
    slow.require_bearer("s3cret-token");
    slow.seed("items", people("s", 3));
    slow.delay_data(Duration::from_secs(3));
    let broken = Upstream::start().await;
    broken.require_bearer("s3cret-token");
    broken.fail_next(std::iter::repeat_n((500, None), 1_000));
    let quick = Upstream::start().await;
    quick.require_bearer("s3cret-token");
    quick.seed("items", people("q", 2));
    let trapping = Upstream::start().await;
    trapping.require_bearer("s3cret-token");
    trapping.seed("items", people("t", 2));
    let mut served = Served::start(allow_private()).await;
    for (tenant, upstream) in [("slowpoke", &slow), ("broken", &broken), ("quick", &quick)] {
        let token = served.tenant(tenant).await;
        deploy_and_request(
            &served,
            &token,
            "sync",
            sync_flow(upstream, "sync", "items"),
        )
        .await;
    }
    // A plugin that panics on every batch, between the read and the write.
    let panicking = sync_flow(&trapping, "sync", "items")
        .replace("input = \"items\"", "input = \"mapped\"")
        .replace(
            "[[steps]]\nid = \"keep\"",
            "[[steps]]\nid = \"mapped\"\ntransform = { plugin = \"weft_guest_hostile_transform\", input = \"items\" }\nconfig = { do = \"panic\" }\n\n[[steps]]\nid = \"keep\"",
        );
    let token = served.tenant("trapping").await;
    deploy_and_request(&served, &token, "sync", panicking).await;

    // All four start at once; the quick one ends while the slow one still reads.
    let started = std::time::Instant::now();
    served.server.tick(SystemTime::now()).await;
    assert_eq!(served.server.running(), 4);
    let mut told = Vec::new();
    while !told.iter().any(|l: &String| l.starts_with("quick/")) {
        assert!(started.elapsed() < Duration::from_secs(30), "{told:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        served.server.tick(SystemTime::now()).await;
        told.extend(served.told());
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the quick run waited for the slow one: {:?}",
        started.elapsed()
    );
    assert!(
        told.contains(&"quick/sync succeeded: 2 read, 2 written".to_owned()),
        "{told:?}"
    );
    assert!(
        told.iter().all(|l| !l.starts_with("slowpoke/")),
        "the slow run is still going: {told:?}"
    );
    served.server.settle(SystemTime::now()).await;
    told.extend(served.told());
    assert!(
        told.contains(&"slowpoke/sync succeeded: 3 read, 3 written".to_owned()),
        "{told:?}"
    );
    assert!(
        told.iter().any(|l| l.starts_with("broken/sync failed")),
        "{told:?}"
    );
    assert!(
        told.contains(&"trapping/sync failed: 2 read, 0 written".to_owned()),
        "{told:?}"
    );
    let (_, runs) = served
        .call(Some(&token), Method::GET, "/api/v1/runs", None)
        .await;
    let mapped = runs[0]["id"].as_str().unwrap();
    let (_, detail) = served
        .call(
            Some(&token),
            Method::GET,
            &format!("/api/v1/runs/{mapped}"),
            None,
        )
        .await;
    let step = |id: &str| {
        detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == id)
            .cloned()
            .unwrap()
    };
    let error = step("mapped")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.starts_with("hostile-transform crashed"), "{detail}");

    // The server goes on serving: the quick tenant runs again.
    let quick_token = served.tenant("quick2").await;
    deploy_and_request(
        &served,
        &quick_token,
        "sync",
        sync_flow(&quick, "sync", "items"),
    )
    .await;
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(served.told(), ["quick2/sync succeeded: 2 read, 2 written"]);
}

#[tokio::test]
async fn a_tenant_over_its_quota_has_its_runs_refused_with_the_quota_its_limit_and_reset() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 2));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let other = served.tenant("other").await;
    let operator = served.operator.clone();
    let (status, limits) = served
        .call(
            Some(&operator),
            Method::PUT,
            "/api/v1/tenants/acme/quotas",
            Some(json!({"runs_per_hour": 1, "flows": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{limits}");
    assert_eq!(limits["limits"], json!({"flows": 1, "runs_per_hour": 1}));
    let (status, body) = served
        .call(
            Some(&operator),
            Method::PUT,
            "/api/v1/tenants/acme/quotas",
            Some(json!({"runs_per_minute": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let first = deploy_and_run(
        &mut served,
        &acme,
        "sync",
        sync_flow(&upstream, "sync", "items"),
    )
    .await;
    assert_eq!(first["status"], "succeeded");
    // The quota of flows: a second flow is refused, the same one redeployed is not.
    let (status, body) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows",
            Some(json!({"source": sync_flow(&upstream, "second", "items")})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("quota flows (1 deployed of 1)")
    );

    // The second run in the hour is refused: in the history, with why.
    served.told();
    let (status, _) = served
        .call(Some(&acme), Method::POST, "/api/v1/flows/sync/runs", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    turn(&mut served.server, SystemTime::now()).await;
    let told = served.told();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].starts_with("acme/sync deferred: the tenant reached its quota runs_per_hour (1 used of 1); it resets at "),
        "{told:?}"
    );
    let (_, refused) = served
        .call(
            Some(&acme),
            Method::GET,
            "/api/v1/runs?status=refused",
            None,
        )
        .await;
    assert_eq!(refused.as_array().unwrap().len(), 1, "{refused}");
    let why = refused[0]["error"].as_str().unwrap();
    assert!(
        why.contains("runs_per_hour") && why.contains("of 1") && why.contains("resets at"),
        "{why}"
    );
    assert_eq!(upstream.seen().len(), 1, "nothing more was asked upstream");
    // The request was answered by the refusal: it does not come back every turn.
    assert!(served.store.run_requests().await.unwrap().is_empty());

    // Another tenant is not held to acme's quota.
    let theirs = deploy_and_run(
        &mut served,
        &other,
        "sync",
        sync_flow(&upstream, "sync", "items"),
    )
    .await;
    assert_eq!(theirs["status"], "succeeded");
}

#[tokio::test]
async fn usage_over_a_period_at_the_edge_of_1970_answers_and_does_not_crash() {
    let served = Served::start(TenantPolicy::default()).await;
    let acme = served.tenant("acme").await;
    for query in [
        "?until=1970-01-01T00:00:00Z",
        "?since=1969-12-31T00:00:00Z&until=1970-01-01T00:00:01Z",
        "?since=9999-12-31T23:59:59Z",
    ] {
        let (status, body) = served
            .call(
                Some(&acme),
                Method::GET,
                &format!("/api/v1/usage{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(body["runs"], 0, "{query}: {body}");
    }
    let (status, body) = served
        .call(
            Some(&acme),
            Method::GET,
            "/api/v1/usage?until=yesterday",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// The emails in `tenant`'s dataset `people`, read through the store.
async fn people_kept(served: &Served, tenant: &str) -> Vec<String> {
    let mut emails: Vec<String> = served
        .store
        .dataset_page(tenant, "people", None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, record)| {
            let record: Value = serde_json::from_str(&record).unwrap();
            record["email"].as_str().unwrap().to_owned()
        })
        .collect();
    emails.sort();
    emails
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_unreachable_for_a_while_loses_nothing_and_the_server_serves_on() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 3));
    let (link, store) = postgres_behind_link().await;
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::start_on(dir, store, allow_private(), None).await;
    let acme = served.tenant("acme").await;
    let globex = served.tenant("globex").await;

    // Cut for less than the store's retries take, in the middle of a run (while it waits for
    // its page): the run goes through as if nothing happened.
    upstream.delay_data(Duration::from_millis(800));
    deploy_and_request(
        &served,
        &acme,
        "sync",
        sync_flow(&upstream, "sync", "items"),
    )
    .await;
    let outage = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        link.cut();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        link.restore();
    };
    tokio::join!(turn(&mut served.server, SystemTime::now()), outage);
    assert!(link.refused() > 0, "the run never felt the cut");
    assert_eq!(served.told(), ["acme/sync succeeded: 3 read, 3 written"]);
    upstream.delay_data(Duration::ZERO);

    // Cut for longer: the API says so and what to do, a run asked for before is put off, and
    // the server's turns go on.
    deploy_and_request(
        &served,
        &globex,
        "sync",
        sync_flow(&upstream, "sync", "items"),
    )
    .await;
    link.cut();
    let (status, body) = served
        .call(Some(&acme), Method::GET, "/api/v1/runs", None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["message"],
        "the server's state database failed; try again shortly"
    );
    let now = SystemTime::now();
    turn(&mut served.server, now).await;
    let told = served.told();
    assert!(
        told.iter()
            .all(|l| l.contains("/sync deferred: the state database failed")),
        "{told:?}"
    );

    // Back: the put-off run and a new one go through, and every record is kept once.
    link.restore();
    upstream.seed(
        "items",
        (0..2).map(|i| json!({"id": format!("b{i}"), "email": format!("b{i}@x.io")})),
    );
    let (status, body) = served
        .call(Some(&acme), Method::POST, "/api/v1/flows/sync/runs", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    turn(&mut served.server, now + Duration::from_secs(6)).await;
    let mut told = served.told();
    told.sort();
    assert_eq!(
        told,
        [
            "acme/sync succeeded: 5 read, 5 written",
            "globex/sync succeeded: 5 read, 5 written"
        ]
    );
    let all = ["a0", "a1", "a2", "b0", "b1"].map(|p| format!("{p}@x.io"));
    assert_eq!(people_kept(&served, "acme").await, all);
    assert_eq!(people_kept(&served, "globex").await, all);
}
