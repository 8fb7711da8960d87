//! HubSpot CRM emulator conformance (crm-apis.md §4 and §8 "HubSpot").

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use weft_sandbox::{DemoData, DemoSize, Sandbox, SandboxConfig, Vendor};

use crate::support::{Receiver, client, fast_webhooks, start};

fn base(sb: &Sandbox) -> String {
    sb.vendor(Vendor::HubSpot).unwrap().base_url().to_string()
}

fn sized(n: u64) -> SandboxConfig {
    let mut c = SandboxConfig {
        data: DemoData {
            seed: 3,
            size: DemoSize::uniform(n),
        },
        ..SandboxConfig::default()
    };
    c.hubspot.search_index_lag = Duration::ZERO;
    c.hubspot.search_per_second = 1_000;
    c
}

fn pat(sb: &Sandbox) -> String {
    sb.vendor(Vendor::HubSpot)
        .unwrap()
        .credentials()
        .api_token
        .unwrap()
}

async fn get(sb: &Sandbox, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", base(sb)))
        .bearer_auth(pat(sb))
        .send()
        .await
        .unwrap()
}

async fn send(sb: &Sandbox, method: reqwest::Method, path: &str, body: Value) -> reqwest::Response {
    client()
        .request(method, format!("{}{path}", base(sb)))
        .bearer_auth(pat(sb))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn hubspot_oauth_refresh_keeps_the_refresh_token_and_access_lasts_30_minutes() {
    let sb = start(sized(3)).await;
    let c = sb.vendor(Vendor::HubSpot).unwrap().credentials();
    let page = client().get(format!("{}/oauth/authorize?client_id={}&redirect_uri=http://localhost:9/cb&scope=crm.objects.contacts.read", base(&sb), c.client_id)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let r = client()
        .post(format!("{}/oauth/authorize", base(&sb)))
        .form(&[
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", "http://localhost:9/cb"),
            ("scope", "crm.objects.contacts.read"),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(loc.split_once('?').unwrap().1).unwrap();
    let code = q.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let t: Value = client()
        .post(format!("{}/oauth/v1/token", base(&sb)))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("redirect_uri", "http://localhost:9/cb"),
            ("code", &code),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["expires_in"], 1800);
    assert_eq!(t["token_type"], "bearer");
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let r: Value = client()
        .post(format!("{}/oauth/v1/token", base(&sb)))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("refresh_token", &refresh),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["refresh_token"], refresh.as_str());
    let access = r["access_token"].as_str().unwrap().to_string();
    let info: Value = client()
        .get(format!("{}/oauth/v1/access-tokens/{access}", base(&sb)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["hub_id"].as_u64().unwrap().to_string(),
        c.extra["portal_id"]
    );
    let ok = client()
        .get(format!("{}/crm/v3/objects/contacts", base(&sb)))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    sb.advance_clock(Duration::from_secs(1_801));
    let r = client()
        .get(format!("{}/crm/v3/objects/contacts", base(&sb)))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["category"], "EXPIRED_AUTHENTICATION");
    assert_eq!(b["status"], "error");
    assert!(b["correlationId"].is_string());
    let bad: Value = client()
        .post(format!("{}/oauth/v1/token", base(&sb)))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("refresh_token", "nope"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["status"], "BAD_REFRESH_TOKEN");
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_unknown_token_is_401_invalid_authentication() {
    let sb = start(sized(3)).await;
    let r = client()
        .get(format!("{}/crm/v3/objects/contacts", base(&sb)))
        .bearer_auth("pat-na1-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["category"],
        "INVALID_AUTHENTICATION"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_list_pages_with_opaque_after_and_string_properties() {
    let sb = start(sized(12)).await;
    let mut ids = Vec::new();
    let mut path =
        "/crm/v3/objects/companies?limit=5&properties=name,numberofemployees".to_string();
    loop {
        let r: Value = get(&sb, &path).await.json().await.unwrap();
        for c in r["results"].as_array().unwrap() {
            assert!(
                c["properties"]["numberofemployees"].is_string(),
                "numbers are strings: {c}"
            );
            assert!(c["id"].is_string());
            assert_eq!(c["archived"], false);
            ids.push(c["id"].as_str().unwrap().to_string());
        }
        match r.get("paging") {
            Some(p) => {
                let after = p["next"]["after"].as_str().unwrap();
                assert!(
                    after.parse::<u64>().is_err(),
                    "list cursors are opaque, not offsets"
                );
                path = format!(
                    "/crm/v3/objects/companies?limit=5&properties=name,numberofemployees&after={after}"
                );
            }
            None => break,
        }
    }
    assert_eq!(ids.len(), 12);
    let r = get(&sb, "/crm/v3/objects/companies?limit=101").await;
    assert_eq!(r.status(), 400);
    let r: Value = get(&sb, "/crm/v3/objects/contacts?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let keys: Vec<&String> = r["results"][0]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        keys,
        [
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname"
        ]
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_contacts_are_associated_with_their_company_through_v4() {
    let sb = start(sized(6)).await;
    let contacts: Value = get(
        &sb,
        "/crm/v3/objects/contacts?limit=1&associations=companies&properties=email",
    )
    .await
    .json()
    .await
    .unwrap();
    let contact = &contacts["results"][0];
    let company_id = contact["associations"]["companies"]["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let company: Value = get(&sb, &format!("/crm/v3/objects/companies/{company_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        contact["properties"]["email"]
            .as_str()
            .unwrap()
            .ends_with(company["properties"]["domain"].as_str().unwrap())
    );
    let v4: Value = get(
        &sb,
        &format!(
            "/crm/v4/objects/contacts/{}/associations/companies",
            contact["id"].as_str().unwrap()
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    let types = &v4["results"][0]["associationTypes"];
    assert!(
        types
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["typeId"] == 1 && t["label"] == "Primary")
    );
    assert!(
        types
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["typeId"] == 279 && t["label"].is_null())
    );
    let labels: Value = get(&sb, "/crm/v4/associations/contacts/companies/labels")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(labels["results"].as_array().unwrap().len(), 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_create_with_association_then_put_and_delete_v4_associations() {
    let sb = start(sized(3)).await;
    let companies: Value = get(&sb, "/crm/v3/objects/companies?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let c1 = companies["results"][0]["id"].as_str().unwrap().to_string();
    let c2 = companies["results"][1]["id"].as_str().unwrap().to_string();
    let r = send(&sb, reqwest::Method::POST, "/crm/v3/objects/contacts", json!({"properties": {"firstname": "Jane", "lastname": "Smith", "email": "jsmith@example.com"}, "associations": [{"to": {"id": c1}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]})).await;
    assert_eq!(r.status(), 201);
    let contact: Value = r.json().await.unwrap();
    let id = contact["id"].as_str().unwrap().to_string();
    assert_eq!(contact["properties"]["email"], "jsmith@example.com");
    let r = send(
        &sb,
        reqwest::Method::PUT,
        &format!("/crm/v4/objects/contacts/{id}/associations/companies/{c2}"),
        json!([{"associationCategory": "USER_DEFINED", "associationTypeId": 36}]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        &sb,
        reqwest::Method::PUT,
        &format!("/crm/v4/objects/contacts/{id}/associations/companies/{c2}"),
        json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 999}]),
    )
    .await;
    assert_eq!(r.status(), 400);
    let list: Value = get(
        &sb,
        &format!("/crm/v4/objects/contacts/{id}/associations/companies"),
    )
    .await
    .json()
    .await
    .unwrap();
    let to: Vec<String> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["toObjectId"].to_string())
        .collect();
    assert_eq!(to, [c1.clone(), c2.clone()]);
    // The inverse side sees the contact with the company-to-contact type.
    let back: Value = get(
        &sb,
        &format!("/crm/v4/objects/companies/{c1}/associations/contacts"),
    )
    .await
    .json()
    .await
    .unwrap();
    let mine = back["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["toObjectId"].as_u64().map(|n| n.to_string()).as_ref() == Some(&id))
        .unwrap();
    assert_eq!(mine["associationTypes"][0]["typeId"], 280);
    let r = client()
        .delete(format!(
            "{}/crm/v4/objects/contacts/{id}/associations/companies/{c1}",
            base(&sb)
        ))
        .bearer_auth(pat(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let list: Value = get(
        &sb,
        &format!("/crm/v4/objects/contacts/{id}/associations/companies"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
    let r = send(
        &sb,
        reqwest::Method::PUT,
        &format!("/crm/v4/objects/contacts/{id}/associations/default/companies/{c1}"),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["results"][0]["associationSpec"]["associationTypeId"],
        279
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_validation_and_conflict_errors_have_categories() {
    let sb = start(sized(3)).await;
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts",
        json!({"properties": {"email": "not-an-email"}}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["category"], "VALIDATION_ERROR");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("Property values were not valid")
    );
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts",
        json!({"properties": {"favourite_colour": "blue"}}),
    )
    .await;
    assert!(r.text().await.unwrap().contains("PROPERTY_DOESNT_EXIST"));
    let existing: Value = get(&sb, "/crm/v3/objects/contacts?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let email = existing["results"][0]["properties"]["email"]
        .as_str()
        .unwrap();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts",
        json!({"properties": {"email": email}}),
    )
    .await;
    assert_eq!(r.status(), 409);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["category"], "CONFLICT");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains(existing["results"][0]["id"].as_str().unwrap())
    );
    let info: Value = get(&sb, "/account-info/v3/details")
        .await
        .json()
        .await
        .unwrap();
    assert!(info["portalId"].is_u64());
    let r = get(&sb, "/crm/v3/objects/contacts/123").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["category"],
        "OBJECT_NOT_FOUND"
    );
    let by_email: Value = get(
        &sb,
        &format!("/crm/v3/objects/contacts/{email}?idProperty=email"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(by_email["id"], existing["results"][0]["id"]);
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_batch_create_is_201_and_partial_failure_is_207() {
    let sb = start(sized(3)).await;
    let r = send(&sb, reqwest::Method::POST, "/crm/v3/objects/deals/batch/create", json!({"inputs": [{"properties": {"dealname": "A", "amount": "100"}}, {"properties": {"dealname": "B"}}]})).await;
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["status"], "COMPLETE");
    assert_eq!(b["results"].as_array().unwrap().len(), 2);
    assert!(b["completedAt"].is_string());
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/deals/batch/create",
        json!({"inputs": [{"properties": {"dealname": "C"}}, {"properties": {"amount": "lots"}}]}),
    )
    .await;
    assert_eq!(r.status(), 207);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["numErrors"], 1);
    assert_eq!(b["errors"][0]["category"], "VALIDATION_ERROR");
    assert_eq!(b["results"].as_array().unwrap().len(), 1);
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"dealname": format!("D{i}")}}))
        .collect();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/deals/batch/create",
        json!({"inputs": many}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let ids: Vec<Value> = (0..2)
        .map(|i| json!({"id": (9_000_000_001u64 + i).to_string()}))
        .collect();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/deals/batch/read",
        json!({"inputs": [ids[0].clone(), {"id": "1"}], "properties": ["dealname"]}),
    )
    .await;
    assert_eq!(r.status(), 207);
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/deals/batch/archive",
        json!({"inputs": ids}),
    )
    .await;
    assert_eq!(r.status(), 204);
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_batch_upsert_by_email_reports_new() {
    let sb = start(sized(3)).await;
    let existing: Value = get(&sb, "/crm/v3/objects/contacts?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let email = existing["results"][0]["properties"]["email"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/batch/upsert",
        json!({"inputs": [{"id": email, "idProperty": "email", "properties": {"firstname": "Updated"}}, {"id": "new.person@example.com", "idProperty": "email", "properties": {"firstname": "New"}}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["results"][0]["new"], false);
    assert_eq!(b["results"][0]["id"], existing["results"][0]["id"]);
    assert_eq!(b["results"][1]["new"], true);
    let created: Value = get(
        &sb,
        "/crm/v3/objects/contacts/new.person@example.com?idProperty=email&properties=firstname",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(created["properties"]["firstname"], "New");
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_search_on_last_modified_uses_epoch_ms_and_numeric_after() {
    let sb = start(sized(30)).await;
    // Mid-2025 in epoch milliseconds.
    let since = "1751328000000";
    let body = json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since}]}], "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "properties": ["email", "lastmodifieddate"], "limit": 5});
    let r: Value = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/search",
        body.clone(),
    )
    .await
    .json()
    .await
    .unwrap();
    let total = r["total"].as_u64().unwrap();
    assert!(total > 0 && total < 30, "{total}");
    assert_eq!(r["paging"]["next"]["after"], "5");
    let dates: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["properties"]["lastmodifieddate"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]));
    assert!(dates.iter().all(|d| *d >= "2025-07-01"));
    let mut next = body;
    next["after"] = json!("5");
    let r2: Value = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/search",
        next,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(r2["results"][0]["id"], r["results"][0]["id"]);
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/search",
        json!({"after": "9995", "limit": 10}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("10000"));
    let groups: Vec<Value> = (0..6)
        .map(|_| json!({"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}))
        .collect();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/search",
        json!({"filterGroups": groups}),
    )
    .await;
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_search_has_a_secondly_limit_and_an_index_lag() {
    let mut config = sized(3);
    config.hubspot.search_per_second = 2;
    config.hubspot.search_index_lag = Duration::from_secs(5);
    let sb = start(config).await;
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Fresh Co", "domain": "fresh.example"}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let q = json!({"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ", "value": "fresh.example"}]}]});
    let r: Value = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/search",
        q.clone(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["total"], 0, "not indexed yet");
    send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/search",
        q.clone(),
    )
    .await;
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/search",
        q.clone(),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "You have reached your secondly limit."
    );
    sb.advance_clock(Duration::from_secs(6));
    let r: Value = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/search",
        q,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["total"], 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_ten_secondly_rolling_limit_names_its_policy() {
    let mut config = sized(3);
    config.hubspot.burst = 2;
    let sb = start(config).await;
    let r = get(&sb, "/crm/v3/objects/deals").await;
    assert_eq!(r.headers()["x-hubspot-ratelimit-max"], "2");
    assert_eq!(r.headers()["x-hubspot-ratelimit-remaining"], "1");
    assert_eq!(
        r.headers()["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    assert!(
        r.headers()
            .contains_key("x-hubspot-ratelimit-daily-remaining")
    );
    get(&sb, "/crm/v3/objects/deals").await;
    let r = get(&sb, "/crm/v3/objects/deals").await;
    assert_eq!(r.status(), 429);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(b["errorType"], "RATE_LIMIT");
    sb.advance_clock(Duration::from_secs(10));
    assert_eq!(get(&sb, "/crm/v3/objects/deals").await.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn an_unthrottled_hubspot_answers_past_its_ten_secondly_limit() {
    let burst = sized(3).hubspot.burst;
    let sb = start(sized(3).unthrottled()).await;
    for _ in 0..=burst {
        assert_eq!(get(&sb, "/crm/v3/objects/deals").await.status(), 200);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_webhooks_are_batched_signed_v3_and_count_attempts() {
    let rx = Receiver::start(1).await;
    let mut config = fast_webhooks(sized(3));
    config.webhooks.target = Some(format!("{}/hubspot", rx.url));
    let sb = start(config).await;
    let r = send(&sb, reqwest::Method::POST, "/crm/v3/objects/contacts/batch/create", json!({"inputs": [{"properties": {"email": "a@hook.example"}}, {"properties": {"email": "b@hook.example"}}]})).await;
    assert_eq!(r.status(), 201);
    let got = rx.wait_for(2).await;
    let first = got[0].json();
    let second = got[1].json();
    assert_eq!(
        first.as_array().unwrap().len(),
        2,
        "one request carries both events"
    );
    assert_eq!(first[0]["subscriptionType"], "contact.creation");
    assert_eq!(first[0]["attemptNumber"], 0);
    assert_eq!(
        second[0]["attemptNumber"], 1,
        "the retry counts the attempt"
    );
    assert_eq!(first[0]["eventId"], second[0]["eventId"]);
    let req = &got[1];
    let ts = req.header("x-hubspot-request-timestamp").unwrap();
    let secret = sb
        .vendor(Vendor::HubSpot)
        .unwrap()
        .credentials()
        .client_secret;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = format!("POST{}/hubspot", rx.url).into_bytes();
    msg.extend_from_slice(&req.body);
    msg.extend_from_slice(ts.as_bytes());
    ring::hmac::verify(
        &key,
        &msg,
        &STANDARD
            .decode(req.header("x-hubspot-signature-v3").unwrap())
            .unwrap(),
    )
    .expect("v3 signature verifies");
    assert_eq!(req.header("x-hubspot-signature-version").unwrap(), "v1");
    let id = first[0]["objectId"].as_u64().unwrap();
    send(
        &sb,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"firstname": "Changed"}}),
    )
    .await;
    let got = rx.wait_for(3).await;
    let change = got[2].json();
    assert_eq!(change[0]["subscriptionType"], "contact.propertyChange");
    assert_eq!(change[0]["propertyName"], "firstname");
    assert_eq!(change[0]["propertyValue"], "Changed");
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_webhook_settings_need_the_developer_key() {
    let rx = Receiver::start(0).await;
    let sb = start(fast_webhooks(sized(3))).await;
    let c = sb.vendor(Vendor::HubSpot).unwrap().credentials();
    let app = &c.extra["app_id"];
    let r = client()
        .put(format!(
            "{}/webhooks/v3/{app}/settings?hapikey=wrong",
            base(&sb)
        ))
        .json(&json!({"targetUrl": rx.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let key = &c.extra["developer_api_key"];
    let r = client()
        .put(format!(
            "{}/webhooks/v3/{app}/settings?hapikey={key}",
            base(&sb)
        ))
        .json(&json!({"targetUrl": rx.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(format!(
            "{}/webhooks/v3/{app}/subscriptions?hapikey={key}",
            base(&sb)
        ))
        .json(&json!({"eventType": "company.deletion", "active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let companies: Value = get(&sb, "/crm/v3/objects/companies?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let id = companies["results"][0]["id"].as_str().unwrap();
    assert_eq!(
        client()
            .delete(format!("{}/crm/v3/objects/companies/{id}", base(&sb)))
            .bearer_auth(pat(&sb))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json()[0]["subscriptionType"], "company.deletion");
    // The date-versioned path serves the same objects.
    let r = get(&sb, "/crm/objects/2026-03/companies?limit=1").await;
    assert_eq!(r.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_modified_date_search_gives_the_same_answer_on_its_fast_path() {
    let sb = start(sized(400)).await;
    sb.advance_clock(Duration::from_secs(3_600));
    // Some writes so the answer mixes demo records and written ones.
    for i in 0..5u64 {
        send(
            &sb,
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{}", 5_000_000_001 + i * 37),
            json!({"properties": {"jobtitle": "Changed"}}),
        )
        .await;
    }
    let range = json!({"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1743465600000"}, {"propertyName": "lastmodifieddate", "operator": "LT", "value": "4102444800000"}]});
    let sorts = json!([{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]);
    let mut fast_ids = Vec::new();
    let mut slow_ids = Vec::new();
    for (groups, ids) in [
        (json!([range.clone()]), &mut fast_ids),
        (json!([range.clone(), range.clone()]), &mut slow_ids),
    ] {
        let mut after = json!(null);
        loop {
            let r: Value = send(&sb, reqwest::Method::POST, "/crm/v3/objects/contacts/search", json!({"filterGroups": groups, "sorts": sorts, "limit": 100, "after": after, "properties": ["lastmodifieddate"]})).await.json().await.unwrap();
            ids.extend(
                r["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["id"].as_str().unwrap().to_string()),
            );
            match r.get("paging") {
                Some(p) => after = p["next"]["after"].clone(),
                None => break,
            }
        }
    }
    assert!(fast_ids.len() > 100, "{}", fast_ids.len());
    assert_eq!(fast_ids, slow_ids);
    let written: Vec<String> = (0..5u64)
        .map(|i| (5_000_000_001 + i * 37).to_string())
        .collect();
    assert_eq!(
        fast_ids[fast_ids.len() - 5..],
        written[..],
        "records written last sort last"
    );
    sb.shutdown().await;
}

/// The properties every HubSpot write answer carries besides the ones written.
fn assert_whole_record(record: &Value, modified: &str) {
    let props = &record["properties"];
    assert_eq!(props["hs_object_id"], record["id"], "{record}");
    for p in ["createdate", modified] {
        assert!(props[p].is_string(), "no {p} in {record}");
    }
}

#[tokio::test]
async fn hubspot_create_and_update_answer_with_the_whole_record() {
    let sb = start(sized(3)).await;
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts",
        json!({"properties": {"email": "whole.record@example.com", "firstname": "Whole"}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_whole_record(&created, "lastmodifieddate");
    // Default properties the request did not name are present (null when unset).
    let props = created["properties"].as_object().unwrap();
    assert!(props.contains_key("lastname"), "{created}");
    assert_eq!(created["properties"]["firstname"], "Whole");
    let id = created["id"].as_str().unwrap();

    let r = send(
        &sb,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"lastname": "Record"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_whole_record(&updated, "lastmodifieddate");
    // Properties written earlier stay in the answer: the record, not an echo of this request.
    assert_eq!(updated["properties"]["email"], "whole.record@example.com");
    assert_eq!(updated["properties"]["firstname"], "Whole");
    assert_eq!(updated["properties"]["lastname"], "Record");

    // Companies and deals name their modified date hs_lastmodifieddate.
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/deals",
        json!({"properties": {"dealname": "Whole deal"}}),
    )
    .await;
    assert_whole_record(&r.json::<Value>().await.unwrap(), "hs_lastmodifieddate");
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_batch_upsert_and_create_answer_with_whole_records() {
    let sb = start(sized(3)).await;
    let existing: Value = get(&sb, "/crm/v3/objects/contacts?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let email = existing["results"][0]["properties"]["email"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts/batch/upsert",
        json!({"inputs": [{"id": email, "idProperty": "email", "properties": {"firstname": "Updated"}}, {"id": "batch.whole@example.com", "idProperty": "email", "properties": {"firstname": "New"}}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    for result in b["results"].as_array().unwrap() {
        assert_whole_record(result, "lastmodifieddate");
    }
    // The existing contact's other stored values come back with the update.
    assert_eq!(b["results"][0]["properties"]["email"], email.as_str());
    assert_eq!(
        b["results"][0]["properties"]["lastname"],
        existing["results"][0]["properties"]["lastname"]
    );
    assert_eq!(
        b["results"][1]["properties"]["email"],
        "batch.whole@example.com"
    );
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/batch/create",
        json!({"inputs": [{"properties": {"name": "Whole Co"}}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_whole_record(
        &r.json::<Value>().await.unwrap()["results"][0],
        "hs_lastmodifieddate",
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_properties_v3_lists_typed_definitions_of_every_stored_property() {
    let sb = start(sized(3)).await;
    let r = get(&sb, "/crm/v3/properties/contacts").await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let props = b["results"].as_array().unwrap();
    let by_name = |n: &str| {
        props
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {b}"))
            .clone()
    };
    // Every property a contact carries is defined, so a client can build its schema.
    let contact: Value = get(&sb, "/crm/v3/objects/contacts?limit=1")
        .await
        .json()
        .await
        .unwrap();
    for name in contact["results"][0]["properties"]
        .as_object()
        .unwrap()
        .keys()
    {
        by_name(name);
    }
    let email = by_name("email");
    assert_eq!(
        (email["type"].as_str(), email["fieldType"].as_str()),
        (Some("string"), Some("text"))
    );
    assert_eq!(email["groupName"], "contactinformation");
    for required in [
        "label",
        "description",
        "options",
        "displayOrder",
        "hasUniqueValue",
        "hidden",
        "modificationMetadata",
    ] {
        assert!(!email[required].is_null(), "{required} missing: {email}");
    }
    assert_eq!(by_name("createdate")["type"], "datetime");
    assert_eq!(
        by_name("createdate")["modificationMetadata"]["readOnlyValue"],
        true
    );
    assert_eq!(by_name("hs_object_id")["type"], "number");
    let stage = by_name("lifecyclestage");
    assert_eq!(stage["type"], "enumeration");
    assert!(
        stage["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["value"] == "customer" && o["label"].is_string())
    );

    // One property by name, and a name the object does not have.
    let deal_stage: Value = get(&sb, "/crm/v3/properties/deals/dealstage")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deal_stage["type"], "enumeration");
    assert!(
        deal_stage["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["value"] == "closedwon")
    );
    let r = get(&sb, "/crm/v3/properties/deals/favourite_colour").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["category"],
        "OBJECT_NOT_FOUND"
    );
    // Object type ids work as in the objects API; archived properties there are none.
    let companies: Value = get(&sb, "/crm/v3/properties/0-2")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        companies["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "hs_lastmodifieddate")
    );
    let archived: Value = get(&sb, "/crm/v3/properties/contacts?archived=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(archived["results"], json!([]));
    assert_eq!(get(&sb, "/crm/v3/properties/unicorns").await.status(), 400);
    assert_eq!(
        client()
            .get(format!("{}/crm/v3/properties/contacts", base(&sb)))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_properties_v2_is_a_bare_array_for_singular_object_names() {
    let sb = start(sized(3)).await;
    for (object, unique) in [
        ("contact", "email"),
        ("company", "domain"),
        ("deal", "dealname"),
    ] {
        let r = get(&sb, &format!("/properties/v2/{object}/properties")).await;
        assert_eq!(r.status(), 200, "{object}");
        let all: Value = r.json().await.unwrap();
        let all = all
            .as_array()
            .unwrap_or_else(|| panic!("{object}: not an array"));
        let p = all.iter().find(|p| p["name"] == unique).unwrap();
        assert!(
            p["type"].is_string() && p["fieldType"].is_string() && p["groupName"].is_string(),
            "{p}"
        );
        assert!(
            p["createdAt"].is_i64(),
            "v2 times are epoch milliseconds: {p}"
        );
    }
    let one: Value = get(
        &sb,
        "/properties/v2/companies/properties/named/numberofemployees",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(one["type"], "number");
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_schemas_lists_no_custom_objects() {
    let sb = start(sized(3)).await;
    for path in ["/crm/v3/schemas", "/crm-object-schemas/v3/schemas"] {
        let r = get(&sb, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"results": []}));
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_standard_objects_without_records_have_properties_and_empty_lists() {
    let sb = start(sized(3)).await;
    // Every portal has tickets, products, line items, engagements, ...; the sandbox stores none.
    for object in [
        "ticket",
        "tickets",
        "line_item",
        "product",
        "deal_split",
        "emails",
        "meetings",
        "notes",
        "tasks",
        "goal_targets",
        "feedback_submissions",
        "leads",
        "form",
    ] {
        let r = get(&sb, &format!("/properties/v2/{object}/properties")).await;
        assert_eq!(r.status(), 200, "{object}");
        let all: Value = r.json().await.unwrap();
        assert!(
            all.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "hs_object_id"),
            "{object}: {all}"
        );
    }
    let v3: Value = get(&sb, "/crm/v3/properties/tickets")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        v3["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "hs_lastmodifieddate")
    );
    assert_eq!(
        get(&sb, "/crm/v3/objects/tickets?limit=10")
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!({"results": []})
    );
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/tickets/search",
        json!({"filterGroups": [], "limit": 10}),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"total": 0, "results": []})
    );
    assert_eq!(get(&sb, "/crm/v3/objects/tickets/123").await.status(), 404);
    assert_eq!(
        get(&sb, "/properties/v2/unicorns/properties")
            .await
            .status(),
        400
    );
    sb.shutdown().await;
}
