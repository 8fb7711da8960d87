//! Webhook-triggered flows deployed through the API: each is reached at an endpoint of its own
//! whose id is unguessable and says nothing of its tenant or its name; a delivery is verified
//! with the tenant's own secret and runs that tenant's flow, never another's.

use super::*;

/// A flow run by webhook events of `upstream`'s `items` (signed with the tenant's secret
/// `hook`), writing what changed to its `contacts`.
fn hooks_flow(upstream: &Upstream) -> String {
    format!(
        "name = \"hooks\"\n\n[trigger]\nwebhook = {{ connection = \"api\" }}\n\n[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\nwebhook_secret = \"secret:hook\"\n\n[[steps]]\nid = \"changed\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"save\"\nwrite = {{ connection = \"api\", stream = \"contacts\", input = \"changed\", mode = \"upsert\", key = [\"id\"] }}\n",
        upstream.url(),
        upstream.addr
    )
}

fn delivery(ids: &[&str]) -> String {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": format!("evt-{id}"), "stream": "items", "action": "updated", "record": {"id": id}}))
        .collect();
    json!({ "events": events }).to_string()
}

fn sign(secret: &str, body: &str) -> String {
    weft_tests::webhook_signature(secret, body.as_bytes())
}

impl Served {
    /// Deploys the webhook flow for `token` with its secret; its endpoint's path.
    async fn deploy_hooks(&self, token: &str, upstream: &Upstream, secret: &str) -> String {
        let (status, secret) = self
            .call(
                Some(token),
                Method::PUT,
                "/api/v1/secrets/hook",
                Some(json!({ "value": secret })),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{secret}");
        let (status, flow) = self
            .call(
                Some(token),
                Method::POST,
                "/api/v1/flows",
                Some(json!({ "source": hooks_flow(upstream) })),
            )
            .await;
        assert!(status.is_success(), "{flow}");
        assert_eq!(flow["trigger"], "webhook");
        flow["webhook_path"].as_str().unwrap().to_owned()
    }

    /// Delivers `body` signed so at `path`: the status and the answer.
    async fn deliver(&self, path: &str, body: String, signature: String) -> (u16, Value) {
        let response = self
            .http
            .post(format!("http://{}{path}", self.address))
            .header("X-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

#[tokio::test]
async fn a_deployed_webhook_flow_is_reached_at_its_own_unguessable_endpoint_only() {
    let (upstream_a, upstream_g) = (Upstream::start().await, Upstream::start().await);
    let mut served = Served::start(allow_private()).await;
    let acme = served.tenant("acme").await;
    let globex = served.tenant("globex").await;
    let path_a = served.deploy_hooks(&acme, &upstream_a, "acme-hook").await;
    let path_g = served
        .deploy_hooks(&globex, &upstream_g, "globex-hook")
        .await;
    // `/hooks/hk_` and 32 hex digits: nothing of the tenant or the flow's name.
    for path in [&path_a, &path_g] {
        let id = path.strip_prefix("/hooks/hk_").unwrap();
        assert!(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{path}"
        );
    }
    assert_ne!(
        path_a, path_g,
        "the same flow name in two tenants: two endpoints"
    );
    // Deployed again, a flow keeps its endpoint: what the vendor was given stays right.
    assert_eq!(
        served.deploy_hooks(&acme, &upstream_a, "acme-hook").await,
        path_a
    );
    // The server learns of the flows.
    turn(&mut served.server, SystemTime::now()).await;

    let body = delivery(&["a", "b"]);
    let signature = sign("acme-hook", &body);
    assert_eq!(
        served.deliver(&path_a, body, signature).await,
        (200, json!({"accepted": 2, "duplicates": 0}))
    );
    // Signed with another tenant's secret, at acme's endpoint: refused.
    let body = delivery(&["c"]);
    let signature = sign("globex-hook", &body);
    assert_eq!(served.deliver(&path_a, body, signature).await.0, 401);
    // Deployed flows are not reached by their name, nor at an endpoint id that is not one.
    for path in ["/hooks/hooks", "/hooks/hk_00000000000000000000000000000000"] {
        let body = delivery(&["d"]);
        let signature = sign("acme-hook", &body);
        let (status, answer) = served.deliver(path, body, signature).await;
        assert_eq!(status, 404, "{path}");
        assert!(!answer.to_string().contains("acme"), "{answer}");
    }

    // Counted by tenant and outcome, for the operator.
    let (_, text) = served
        .call(Some(&served.operator), Method::GET, "/api/v1/metrics", None)
        .await;
    let text = text.as_str().unwrap();
    for line in [
        "weft_webhook_deliveries_total{tenant=\"acme\",outcome=\"accepted\"} 1",
        "weft_webhook_deliveries_total{tenant=\"acme\",outcome=\"rejected\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }

    served.told();
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(served.told(), ["acme/hooks succeeded: 2 read, 2 written"]);
    let ids: Vec<Value> = upstream_a
        .records("contacts")
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!("a"), json!("b")]);
    assert!(upstream_g.records("contacts").is_empty());
    assert!(
        served
            .store
            .events_pending("acme", "hooks", 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Deleted, the flow's endpoint is gone with it.
    let (status, _) = served
        .call(Some(&acme), Method::DELETE, "/api/v1/flows/hooks", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    turn(&mut served.server, SystemTime::now()).await;
    let body = delivery(&["e"]);
    let signature = sign("acme-hook", &body);
    assert_eq!(served.deliver(&path_a, body, signature).await.0, 404);
    // Globex's is still served.
    let body = delivery(&["g"]);
    let signature = sign("globex-hook", &body);
    assert_eq!(served.deliver(&path_g, body, signature).await.0, 200);
}

#[tokio::test]
async fn a_deployed_webhook_flow_is_registered_with_its_vendor_at_its_own_endpoint_until_deleted() {
    let upstream = Upstream::start().await;
    let mut served = Served::start_at(allow_private(), Some("https://weft.example.com/")).await;
    let acme = served.tenant("acme").await;
    let path = served.deploy_hooks(&acme, &upstream, "acme-hook").await;
    served.told();
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(served.told(), ["acme/hooks registered"]);
    let made = upstream.webhooks();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["url"], format!("https://weft.example.com{path}"));
    // Kept: not registered again at the next turns, nor when deployed again unchanged.
    turn(&mut served.server, SystemTime::now()).await;
    served.deploy_hooks(&acme, &upstream, "acme-hook").await;
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(upstream.webhooks().len(), 1);
    assert_eq!(upstream.webhooks_made(), 1);

    // Deleted, the flow's subscription is removed from the vendor.
    let (status, _) = served
        .call(Some(&acme), Method::DELETE, "/api/v1/flows/hooks", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(upstream.webhooks(), Vec::<Value>::new());
    assert!(
        served
            .store
            .subscriptions("acme", None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A server whose tenant `acme` has its webhook flow registered at `upstream`, and the
/// operator's token.
async fn acme_registered_at(upstream: &Upstream) -> (Served, String) {
    let mut served = Served::start_at(allow_private(), Some("https://weft.example.com/")).await;
    let acme = served.tenant("acme").await;
    served.deploy_hooks(&acme, upstream, "acme-hook").await;
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(upstream.webhooks().len(), 1);
    let operator = served.operator.clone();
    (served, operator)
}

/// `DELETE /api/v1/tenants/acme` as the operator, with `?force=true` when `force`.
async fn delete_acme(served: &Served, operator: &str, force: bool) -> (StatusCode, Value) {
    let path = if force {
        "/api/v1/tenants/acme?force=true"
    } else {
        "/api/v1/tenants/acme"
    };
    served
        .call(Some(operator), Method::DELETE, path, None)
        .await
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_webhook_registrations_at_the_vendor_first() {
    let upstream = Upstream::start().await;
    let (mut served, operator) = acme_registered_at(&upstream).await;

    // The vendor refuses the unsubscribe: nothing is deleted, and the answer says what failed.
    upstream.fail_next([(403, None)]);
    let (status, body) = delete_acme(&served, &operator, false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("flow `hooks`") && message.contains("force"),
        "{message}"
    );
    assert_eq!(upstream.webhooks().len(), 1);
    assert!(served.store.tenant_get("acme").await.unwrap().is_some());
    assert_eq!(
        served
            .store
            .subscriptions("acme", None)
            .await
            .unwrap()
            .len(),
        1
    );

    // Asked again: removed at the vendor with the tenant's credential, then deleted.
    let (status, body) = delete_acme(&served, &operator, false).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(upstream.webhooks(), Vec::<Value>::new());
    assert!(served.store.tenant_get("acme").await.unwrap().is_none());
    assert!(
        served
            .store
            .subscriptions("acme", None)
            .await
            .unwrap()
            .is_empty()
    );
    // The server drops the tenant's flows without registering anything again.
    turn(&mut served.server, SystemTime::now()).await;
    assert_eq!(upstream.webhooks_made(), 1);
    assert_eq!(upstream.webhooks(), Vec::<Value>::new());
}

#[tokio::test]
async fn a_tenant_whose_vendor_cannot_be_reached_is_deleted_only_by_force() {
    let upstream = Upstream::start().await;
    let (served, operator) = acme_registered_at(&upstream).await;
    drop(upstream);

    let (status, body) = delete_acme(&served, &operator, false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(served.store.tenant_get("acme").await.unwrap().is_some());

    let (status, body) = delete_acme(&served, &operator, true).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(served.store.tenant_get("acme").await.unwrap().is_none());
    let (status, _) = delete_acme(&served, &operator, false).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
