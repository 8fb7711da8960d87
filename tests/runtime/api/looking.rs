//! What a tenant and the operator look at: a dataset exported whole, a flow's connections
//! checked, the server's metrics scraped.

use super::*;

#[tokio::test]
async fn a_dataset_is_exported_whole_as_json_lines_in_key_order_page_after_page() {
    let served = Served::start(TenantPolicy::default()).await;
    let acme = served.tenant("acme").await;
    let globex = served.tenant("globex").await;
    // More than one page of the export (1,000 records a page).
    let rows: Vec<(String, String)> = (0..2_500)
        .map(|i| {
            let key = format!("[\"k{i:05}\"]");
            (key, json!({"id": format!("k{i:05}"), "n": i}).to_string())
        })
        .collect();
    served
        .store
        .dataset_upsert("acme", "people", &rows)
        .await
        .unwrap();
    let response = served
        .http
        .get(format!(
            "http://{}/api/v1/datasets/people/export",
            served.address
        ))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"people.jsonl\""
    );
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2_500);
    assert!(
        lines.iter().enumerate().all(|(i, l)| l["n"] == i),
        "every record once, in key order"
    );
    // Another tenant's, or one that does not exist: none.
    for (token, dataset) in [(&globex, "people"), (&acme, "nobody")] {
        let (status, _) = served
            .call(
                Some(token),
                Method::GET,
                &format!("/api/v1/datasets/{dataset}/export"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_flows_connections_are_checked_with_the_tenants_own_credential() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    let served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let (status, _) = served
        .call(
            Some(&acme),
            Method::POST,
            "/api/v1/flows",
            Some(json!({ "source": sync_flow(&upstream, "sync", "items") })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let connections = async |served: &Served| {
        served
            .call(
                Some(&acme),
                Method::GET,
                "/api/v1/flows/sync/connections",
                None,
            )
            .await
    };
    // No secret yet: the check says what is missing.
    let (status, before) = connections(&served).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before[0]["status"], "failed", "{before}");
    assert!(
        before[0]["error"]
            .as_str()
            .unwrap()
            .contains("secret \"api\" is not set for tenant \"acme\""),
        "{before}"
    );
    served
        .call(
            Some(&acme),
            Method::PUT,
            "/api/v1/secrets/api",
            Some(json!({ "value": "s3cret-token" })),
        )
        .await;
    let (status, after) = connections(&served).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(
        after,
        json!([
            {"name": "api", "plugin": "http-json", "auth": "bearer", "status": "ok", "token": "static"},
            {"name": "store", "plugin": "dataset", "auth": "none", "status": "ok", "token": "datasets"},
        ])
    );
}

#[tokio::test]
async fn the_operator_scrapes_what_each_tenant_ran_and_used() {
    let upstream = Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed("items", people("a", 3));
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    deploy_and_run(
        &mut served,
        &acme,
        "sync",
        sync_flow(&upstream, "sync", "items"),
    )
    .await;
    let response = served
        .http
        .get(format!("http://{}/api/v1/metrics", served.address))
        .bearer_auth(&served.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for line in [
        "weft_runs_total{tenant=\"acme\",status=\"succeeded\"} 1",
        "weft_records_read_total{tenant=\"acme\"} 3",
        "weft_records_written_total{tenant=\"acme\"} 3",
        "weft_requests_total{tenant=\"acme\"} 1",
        "weft_flows_served 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    // A tenant's token is not the operator's.
    let (status, _) = served
        .call(Some(&acme), Method::GET, "/api/v1/metrics", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
