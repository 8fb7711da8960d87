//! Zendesk Support emulator conformance (crm-apis.md §2 and §8 "Zendesk").

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use weft_sandbox::{DemoData, DemoSize, Sandbox, SandboxConfig, Vendor};

use crate::support::{Receiver, admin_post, client, fast_webhooks, start};

fn base(sb: &Sandbox) -> String {
    sb.vendor(Vendor::Zendesk).unwrap().base_url().to_string()
}

fn sized(n: u64) -> SandboxConfig {
    let mut c = SandboxConfig {
        data: DemoData {
            seed: 11,
            size: DemoSize::uniform(n),
        },
        ..SandboxConfig::default()
    };
    // Most tests write and read back at once; the one-minute export lag has its own test.
    c.zendesk.incremental_lag = Duration::ZERO;
    c
}

/// `Authorization: Basic base64("{email}/token:{api_token}")`.
fn basic(sb: &Sandbox) -> String {
    let c = sb.vendor(Vendor::Zendesk).unwrap().credentials();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}/token:{}", c.username, c.api_token.unwrap()))
    )
}

async fn get(sb: &Sandbox, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", base(sb)))
        .header("Authorization", basic(sb))
        .send()
        .await
        .unwrap()
}

async fn send(sb: &Sandbox, method: reqwest::Method, path: &str, body: Value) -> reqwest::Response {
    client()
        .request(method, format!("{}{path}", base(sb)))
        .header("Authorization", basic(sb))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn wait_job(sb: &Sandbox, url: &str) -> Value {
    for _ in 0..200 {
        let r: Value = client()
            .get(url)
            .header("Authorization", basic(sb))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["job_status"]["status"] == "completed" {
            return r["job_status"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {url} did not complete");
}

#[tokio::test]
async fn zendesk_api_token_basic_auth_is_accepted_and_others_rejected() {
    let sb = start(sized(3)).await;
    assert_eq!(get(&sb, "/api/v2/tickets").await.status(), 200);
    let c = sb.vendor(Vendor::Zendesk).unwrap().credentials();
    for cred in [
        format!("{}/token:wrong", c.username),
        format!("{}:password", c.username),
        format!("other@x.example/token:{}", c.api_token.clone().unwrap()),
    ] {
        let r = client()
            .get(format!("{}/api/v2/tickets", base(&sb)))
            .header("Authorization", format!("Basic {}", STANDARD.encode(cred)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"error": "Couldn't authenticate you"})
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_paths_accept_an_optional_json_suffix() {
    let sb = start(sized(3)).await;
    let a: Value = get(&sb, "/api/v2/tickets/1.json")
        .await
        .json()
        .await
        .unwrap();
    let b: Value = get(&sb, "/api/v2/tickets/1").await.json().await.unwrap();
    assert_eq!(a["ticket"]["id"], 1);
    assert_eq!(a, b);
    assert_eq!(
        a["ticket"]["url"],
        format!("{}/api/v2/tickets/1.json", base(&sb))
    );
    sb.shutdown().await;
}

async fn consent_code(sb: &Sandbox, challenge: &str) -> String {
    let page = client()
        .get(format!("{}/oauth/authorizations/new", base(sb)))
        .query(&[
            ("response_type", "code"),
            ("client_id", "weft_sandbox"),
            ("redirect_uri", "http://localhost:9/cb"),
            ("scope", "read write"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Zendesk Support"));
    let r = client()
        .post(format!("{}/oauth/authorizations", base(sb)))
        .form(&[
            ("response_type", "code"),
            ("client_id", "weft_sandbox"),
            ("redirect_uri", "http://localhost:9/cb"),
            ("scope", "read write"),
            ("code_challenge", challenge),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(loc.split_once('?').unwrap().1).unwrap();
    q.into_iter().find(|(k, _)| k == "code").unwrap().1
}

async fn token_call(sb: &Sandbox, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/oauth/tokens", base(sb)))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn zendesk_authorization_code_with_pkce_issues_bearer_and_refresh_tokens() {
    let sb = start(sized(3)).await;
    let c = sb.vendor(Vendor::Zendesk).unwrap().credentials();
    let verifier = "a-very-long-code-verifier-string-for-pkce-0123456789";
    let challenge = URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    let code = consent_code(&sb, &challenge).await;
    let bad = token_call(&sb, json!({"grant_type": "authorization_code", "code": code, "client_id": c.client_id, "client_secret": c.client_secret, "redirect_uri": "http://localhost:9/cb", "code_verifier": "wrong"})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let code = consent_code(&sb, &challenge).await;
    let r = token_call(&sb, json!({"grant_type": "authorization_code", "code": code, "client_id": c.client_id, "client_secret": c.client_secret, "redirect_uri": "http://localhost:9/cb", "code_verifier": verifier, "expires_in": 600})).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 600);
    assert!(t["refresh_token"].is_string() && t["refresh_token_expires_in"].is_number());
    let me: Value = client()
        .get(format!("{}/api/v2/users/me", base(&sb)))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], c.username.as_str());
    let r = client()
        .get(format!("{}/api/v2/tickets", base(&sb)))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_refresh_rotates_and_invalidates_the_previous_pair() {
    let sb = start(sized(3)).await;
    let c = sb.vendor(Vendor::Zendesk).unwrap().credentials();
    let first: Value = token_call(&sb, json!({"grant_type": "refresh_token", "refresh_token": c.refresh_token, "client_id": c.client_id, "client_secret": c.client_secret})).await.json().await.unwrap();
    let access1 = first["access_token"].as_str().unwrap().to_string();
    let refresh1 = first["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(Some(refresh1.clone()), c.refresh_token);
    // The demo refresh token is gone after use.
    let again = token_call(&sb, json!({"grant_type": "refresh_token", "refresh_token": c.refresh_token, "client_id": c.client_id, "client_secret": c.client_secret})).await;
    assert_eq!(again.status(), 400);
    let second: Value = token_call(&sb, json!({"grant_type": "refresh_token", "refresh_token": refresh1, "client_id": c.client_id, "client_secret": c.client_secret})).await.json().await.unwrap();
    let r = client()
        .get(format!("{}/api/v2/tickets", base(&sb)))
        .bearer_auth(&access1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the access token of the rotated pair must stop working"
    );
    let r = client()
        .get(format!("{}/api/v2/tickets", base(&sb)))
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_expired_bearer_token_gets_invalid_token_401() {
    let sb = start(sized(3)).await;
    let c = sb.vendor(Vendor::Zendesk).unwrap().credentials();
    let t: Value = token_call(&sb, json!({"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": c.client_secret, "scope": "read", "expires_in": 300})).await.json().await.unwrap();
    assert!(t.get("refresh_token").is_none());
    let token = t["access_token"].as_str().unwrap();
    let ok = client()
        .get(format!("{}/api/v2/tickets", base(&sb)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let write = client()
        .post(format!("{}/api/v2/organizations", base(&sb)))
        .bearer_auth(token)
        .json(&json!({"organization": {"name": "ReadOnly"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403, "a read scope cannot write");
    sb.advance_clock(Duration::from_secs(301));
    let r = client()
        .get(format!("{}/api/v2/tickets", base(&sb)))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let bad = token_call(&sb, json!({"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": "nope"})).await;
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_cursor_pagination_has_meta_links_and_a_size_cap() {
    let sb = start(sized(25)).await;
    let r = get(&sb, "/api/v2/tickets.json?page[size]=101").await;
    assert_eq!(r.status(), 400);
    let mut url = format!("{}/api/v2/tickets.json?page[size]=10", base(&sb));
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let r: Value = client()
            .get(&url)
            .header("Authorization", basic(&sb))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        for t in r["tickets"].as_array().unwrap() {
            ids.push(t["id"].as_u64().unwrap());
        }
        assert!(r["meta"]["after_cursor"].is_string());
        if r["meta"]["has_more"] == false {
            assert!(r["links"]["next"].is_null());
            break;
        }
        url = r["links"]["next"].as_str().unwrap().to_string();
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, (1..=25).collect::<Vec<u64>>());
    // page[before] walks back.
    let second: Value = get(&sb, "/api/v2/tickets?page[size]=10")
        .await
        .json()
        .await
        .unwrap();
    let after = second["meta"]["after_cursor"].as_str().unwrap();
    let next: Value = get(
        &sb,
        &format!("/api/v2/tickets?page[size]=10&page[after]={after}"),
    )
    .await
    .json()
    .await
    .unwrap();
    let before = next["meta"]["before_cursor"].as_str().unwrap();
    let back: Value = get(
        &sb,
        &format!("/api/v2/tickets?page[size]=10&page[before]={before}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(back["tickets"], second["tickets"]);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_offset_pagination_stops_after_100_pages() {
    let sb = start(sized(30)).await;
    let r: Value = get(&sb, "/api/v2/users?per_page=10&page=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["count"], 31);
    assert_eq!(r["users"].as_array().unwrap().len(), 10);
    assert!(r["next_page"].as_str().unwrap().contains("page=3"));
    assert!(r["previous_page"].as_str().unwrap().contains("page=1"));
    assert_eq!(
        get(&sb, "/api/v2/users?per_page=100&page=100")
            .await
            .status(),
        200
    );
    let r = get(&sb, "/api/v2/users?per_page=100&page=101").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("cursor pagination"));
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_rate_limit_headers_count_down_then_429_with_retry_after() {
    let mut config = sized(3);
    config.zendesk.requests_per_minute = 3;
    let sb = start(config).await;
    let r = get(&sb, "/api/v2/tickets").await;
    assert_eq!(r.headers()["x-rate-limit"], "3");
    assert_eq!(r.headers()["x-rate-limit-remaining"], "2");
    assert!(r.headers().contains_key("ratelimit-reset"));
    get(&sb, "/api/v2/tickets").await;
    get(&sb, "/api/v2/tickets").await;
    let r = get(&sb, "/api/v2/tickets").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(r.text().await.unwrap().contains("per minute exceeded"));
    sb.advance_clock(Duration::from_secs(61));
    assert_eq!(get(&sb, "/api/v2/tickets").await.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_incremental_ticket_export_walks_cursors_to_end_of_stream() {
    let mut config = sized(12);
    config.zendesk.incremental_page_size = 5;
    let sb = start(config).await;
    let mut r: Value = get(&sb, "/api/v2/incremental/tickets/cursor.json?start_time=0")
        .await
        .json()
        .await
        .unwrap();
    let mut seen: Vec<u64> = Vec::new();
    loop {
        let mut last = 0;
        for t in r["tickets"].as_array().unwrap() {
            seen.push(t["id"].as_u64().unwrap());
            let ts = t["updated_at"].as_str().unwrap().to_string();
            assert!(ts.as_str() >= "2025");
            last += 1;
        }
        assert!(last <= 5);
        if r["end_of_stream"] == true {
            break;
        }
        let after = r["after_url"].as_str().unwrap().to_string();
        r = client()
            .get(after)
            .header("Authorization", basic(&sb))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    assert_eq!(seen, (1..=12).collect::<Vec<u64>>());
    // The stored cursor picks up later changes, including deletions.
    let cursor = r["after_cursor"].as_str().unwrap().to_string();
    send(
        &sb,
        reqwest::Method::PUT,
        "/api/v2/tickets/3.json",
        json!({"ticket": {"priority": "urgent"}}),
    )
    .await;
    let d = client()
        .delete(format!("{}/api/v2/tickets/4", base(&sb)))
        .header("Authorization", basic(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 204);
    let r: Value = get(
        &sb,
        &format!("/api/v2/incremental/tickets/cursor?cursor={cursor}"),
    )
    .await
    .json()
    .await
    .unwrap();
    let changed: Vec<(u64, String)> = r["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_u64().unwrap(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[0].0, 3);
    assert_eq!(changed[1], (4, "deleted".to_string()));
    assert_eq!(r["end_of_stream"], true);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_incremental_export_leaves_out_the_last_minute() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 1,
            size: DemoSize::uniform(2),
        },
        ..SandboxConfig::default()
    })
    .await;
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/tickets",
        json!({"ticket": {"subject": "Fresh", "comment": {"body": "Just now"}}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let new_id = r.json::<Value>().await.unwrap()["ticket"]["id"]
        .as_u64()
        .unwrap();
    let ids = |v: &Value| {
        v["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    let r: Value = get(&sb, "/api/v2/incremental/tickets/cursor?start_time=0")
        .await
        .json()
        .await
        .unwrap();
    assert!(!ids(&r).contains(&new_id));
    let too_recent = get(
        &sb,
        &format!(
            "/api/v2/incremental/tickets/cursor?start_time={}",
            4_000_000_000u64
        ),
    )
    .await;
    assert_eq!(too_recent.status(), 400);
    assert!(
        too_recent
            .text()
            .await
            .unwrap()
            .contains("Too recent start_time")
    );
    sb.advance_clock(Duration::from_secs(61));
    let r: Value = get(&sb, "/api/v2/incremental/tickets/cursor?start_time=0")
        .await
        .json()
        .await
        .unwrap();
    assert!(ids(&r).contains(&new_id));
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_incremental_exports_have_their_own_per_minute_limit() {
    let mut config = sized(3);
    config.zendesk.incremental_per_minute = 2;
    let sb = start(config).await;
    assert_eq!(
        get(&sb, "/api/v2/incremental/users/cursor?start_time=0")
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&sb, "/api/v2/incremental/organizations?start_time=0")
            .await
            .status(),
        200
    );
    let r = get(&sb, "/api/v2/incremental/tickets/cursor?start_time=0").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Ordinary endpoints still answer.
    assert_eq!(get(&sb, "/api/v2/tickets").await.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn an_unthrottled_zendesk_answers_past_both_per_minute_limits() {
    let limits = sized(3).zendesk;
    let sb = start(sized(3).unthrottled()).await;
    let calls = limits
        .requests_per_minute
        .max(limits.incremental_per_minute)
        + 1;
    for _ in 0..calls {
        let r = get(&sb, "/api/v2/incremental/tickets/cursor?start_time=0").await;
        assert_eq!(r.status(), 200);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_time_based_organization_export_reports_end_time() {
    let sb = start(sized(4)).await;
    let r: Value = get(&sb, "/api/v2/incremental/organizations.json?start_time=0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["count"], 4);
    assert_eq!(r["end_of_stream"], true);
    let end = r["end_time"].as_i64().unwrap();
    assert!(
        r["next_page"]
            .as_str()
            .unwrap()
            .ends_with(&format!("start_time={end}"))
    );
    // Resuming at end_time repeats the boundary record, as time-based exports do.
    let again: Value = get(
        &sb,
        &format!("/api/v2/incremental/organizations.json?start_time={end}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(again["count"].as_u64().unwrap() >= 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_ticket_create_update_and_comments_flow_through_ticket_updates() {
    let sb = start(sized(3)).await;
    let r = send(&sb, reqwest::Method::POST, "/api/v2/tickets", json!({"ticket": {"subject": "Printer on fire", "comment": {"body": "The smoke is very colorful."}, "priority": "urgent", "requester": {"name": "Jane", "email": "jane@example.com"}}})).await;
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    let id = t["ticket"]["id"].as_u64().unwrap();
    assert_eq!(t["ticket"]["status"], "new");
    assert_eq!(t["ticket"]["description"], "The smoke is very colorful.");
    assert!(t["audit"]["id"].is_u64());
    let requester = t["ticket"]["requester_id"].as_u64().unwrap();
    let u: Value = get(&sb, &format!("/api/v2/users/{requester}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(u["user"]["email"], "jane@example.com");
    assert_eq!(u["user"]["role"], "end-user");
    let r = send(
        &sb,
        reqwest::Method::PUT,
        &format!("/api/v2/tickets/{id}"),
        json!({"ticket": {"status": "open", "comment": {"body": "We are on it", "public": false}}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let c: Value = get(&sb, &format!("/api/v2/tickets/{id}/comments"))
        .await
        .json()
        .await
        .unwrap();
    let bodies: Vec<&str> = c["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["The smoke is very colorful.", "We are on it"]);
    assert_eq!(c["comments"][1]["public"], false);
    // There is no endpoint that creates a comment directly.
    let r = send(
        &sb,
        reqwest::Method::POST,
        &format!("/api/v2/tickets/{id}/comments"),
        json!({"comment": {"body": "x"}}),
    )
    .await;
    assert_eq!(r.status(), 405);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_ticket_comment_cap_gives_422() {
    let mut config = sized(3);
    config.zendesk.max_comments_per_ticket = 2;
    let sb = start(config).await;
    let t: Value = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/tickets",
        json!({"ticket": {"subject": "Cap", "comment": {"body": "one"}}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = t["ticket"]["id"].as_u64().unwrap();
    assert_eq!(
        send(
            &sb,
            reqwest::Method::PUT,
            &format!("/api/v2/tickets/{id}"),
            json!({"ticket": {"comment": {"body": "two"}}})
        )
        .await
        .status(),
        200
    );
    let r = send(
        &sb,
        reqwest::Method::PUT,
        &format!("/api/v2/tickets/{id}"),
        json!({"ticket": {"comment": {"body": "three"}}}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "RecordInvalid");
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_invalid_records_get_422_record_invalid_with_field_details() {
    let sb = start(sized(3)).await;
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/tickets",
        json!({"ticket": {"subject": "No description"}}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "RecordInvalid");
    assert_eq!(b["description"], "Record validation errors");
    assert_eq!(b["details"]["description"][0]["error"], "BlankValue");
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/tickets",
        json!({"ticket": {"comment": {"body": "x"}, "requester_id": 42}}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["details"]["requester"][0]["description"],
        "Requester: is invalid"
    );
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/users",
        json!({"user": {"name": "Bad", "email": "bad@"}}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["details"]["email"][0]["error"],
        "InvalidFormat"
    );
    let existing: Value = get(&sb, "/api/v2/users?per_page=2")
        .await
        .json()
        .await
        .unwrap();
    let taken = existing["users"][1]["email"].as_str().unwrap();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/users",
        json!({"user": {"name": "Dup", "email": taken}}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["details"]["email"][0]["error"],
        "DuplicateValue"
    );
    let r = get(&sb, "/api/v2/tickets/999999").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "RecordNotFound", "description": "Not found"})
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_closed_ticket_cannot_be_updated() {
    let sb = start(sized(3)).await;
    let t: Value = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/tickets",
        json!({"ticket": {"subject": "Done", "comment": {"body": "x"}, "status": "closed"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = t["ticket"]["id"].as_u64().unwrap();
    let r = send(
        &sb,
        reqwest::Method::PUT,
        &format!("/api/v2/tickets/{id}"),
        json!({"ticket": {"status": "open"}}),
    )
    .await;
    assert_eq!(r.status(), 422);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_user_create_or_update_answers_201_then_200() {
    let sb = start(sized(3)).await;
    let r = send(&sb, reqwest::Method::POST, "/api/v2/users/create_or_update.json", json!({"user": {"email": "jane@example.com", "name": "Jane Smith", "external_id": "crm-42"}})).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["user"]["id"].clone();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/users/create_or_update",
        json!({"user": {"email": "JANE@example.com", "name": "Jane S."}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["user"]["id"], id);
    // external_id wins over a changed email.
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/users/create_or_update",
        json!({"user": {"external_id": "crm-42", "email": "jane.new@example.com", "name": "Jane"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["user"]["id"], id);
    assert_eq!(u["user"]["email"], "jane.new@example.com");
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/organizations/create_or_update",
        json!({"organization": {"name": "Zylker", "external_id": "acc-1"}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/organizations/create_or_update",
        json!({"organization": {"name": "Zylker Corp", "external_id": "acc-1"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_create_or_update_many_job_reports_results_in_input_order() {
    let sb = start(sized(3)).await;
    let existing: Value = get(&sb, "/api/v2/users?per_page=2")
        .await
        .json()
        .await
        .unwrap();
    let known = existing["users"][1]["email"].as_str().unwrap().to_string();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/users/create_or_update_many",
        json!({"users": [{"email": "a@example.com", "name": "A"}, {"email": known, "name": "Renamed"}, {"email": "x is bad", "name": "Bad"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let job: Value = r.json().await.unwrap();
    assert!(matches!(
        job["job_status"]["status"].as_str().unwrap(),
        "queued" | "working"
    ));
    assert_eq!(job["job_status"]["total"], 3);
    let done = wait_job(&sb, job["job_status"]["url"].as_str().unwrap()).await;
    let res = done["results"].as_array().unwrap();
    assert_eq!(res[0]["status"], "Created");
    assert_eq!(res[0]["email"], "a@example.com");
    assert_eq!(res[1]["status"], "Updated");
    assert_eq!(res[1]["email"], known.as_str());
    assert_eq!(res[2]["status"], "Failed");
    assert_eq!(res[2]["error"], "UserUpdateError");
    assert!(
        res[2]["details"]
            .as_str()
            .unwrap()
            .contains("not properly formatted")
    );
    assert_eq!(done["progress"], 3);
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"email": format!("u{i}@example.com"), "name": "U"}))
        .collect();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/users/create_or_update_many",
        json!({"users": too_many}),
    )
    .await;
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_update_many_by_ids_reports_missing_records_and_jobs_expire() {
    let sb = start(sized(5)).await;
    let r: Value = send(
        &sb,
        reqwest::Method::PUT,
        "/api/v2/tickets/update_many.json?ids=1,2,999",
        json!({"ticket": {"status": "solved"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let url = r["job_status"]["url"].as_str().unwrap().to_string();
    let done = wait_job(&sb, &url).await;
    let res = done["results"].as_array().unwrap();
    assert_eq!(res[0]["status"], "Updated");
    assert_eq!(res[1]["status"], "Updated");
    assert_eq!(res[2]["status"], "Failed");
    let t: Value = get(&sb, "/api/v2/tickets/2").await.json().await.unwrap();
    assert_eq!(t["ticket"]["status"], "solved");
    sb.advance_clock(Duration::from_secs(3_601));
    assert_eq!(
        client()
            .get(&url)
            .header("Authorization", basic(&sb))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_demo_users_belong_to_organizations_on_their_domain() {
    let sb = start(sized(6)).await;
    let users: Value = get(&sb, "/api/v2/users?per_page=10")
        .await
        .json()
        .await
        .unwrap();
    let end_user = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["role"] == "end-user")
        .unwrap();
    let org_id = end_user["organization_id"].as_u64().unwrap();
    let org: Value = get(&sb, &format!("/api/v2/organizations/{org_id}"))
        .await
        .json()
        .await
        .unwrap();
    let domain = org["organization"]["domain_names"][0].as_str().unwrap();
    assert!(
        end_user["email"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{domain}"))
    );
    let members: Value = get(&sb, &format!("/api/v2/organizations/{org_id}/users"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        members["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == end_user["id"])
    );
    let t: Value = get(&sb, "/api/v2/tickets/1").await.json().await.unwrap();
    let c: Value = get(&sb, "/api/v2/tickets/1/comments")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["comments"][0]["body"], t["ticket"]["description"]);
    sb.shutdown().await;
}

fn webhook_reply(_: &crate::support::Received) -> Option<(axum::http::StatusCode, String)> {
    None
}

#[tokio::test]
async fn zendesk_webhook_signature_verifies_with_signing_secret() {
    let sb = start(fast_webhooks(sized(3))).await;
    let rx = Receiver::start_with(0, webhook_reply).await;
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/webhooks",
        json!({"webhook": {"name": "Users", "endpoint": format!("{}/zendesk", rx.url), "http_method": "POST", "request_format": "json", "status": "active",
            "subscriptions": ["zen:event-type:user.created"], "authentication": {"type": "bearer_token", "data": {"token": "receiver-secret"}, "add_position": "header"}}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();
    let id = hook["webhook"]["id"].as_str().unwrap();
    let secret: Value = get(&sb, &format!("/api/v2/webhooks/{id}/signing_secret"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(secret["signing_secret"]["algorithm"], "SHA256");
    let secret = secret["signing_secret"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/users",
        json!({"user": {"name": "Hooked", "email": "hooked@example.com"}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let user_id = r.json::<Value>().await.unwrap()["user"]["id"]
        .as_u64()
        .unwrap();
    let got = rx.wait_for(1).await;
    let req = &got[0];
    let ts = req.header("x-zendesk-webhook-signature-timestamp").unwrap();
    let sig = req.header("x-zendesk-webhook-signature").unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = ts.as_bytes().to_vec();
    msg.extend_from_slice(&req.body);
    ring::hmac::verify(&key, &msg, &STANDARD.decode(&sig).unwrap()).expect("signature verifies");
    assert_eq!(
        req.header("authorization").unwrap(),
        "Bearer receiver-secret"
    );
    assert_eq!(req.header("user-agent").unwrap(), "Zendesk Webhook");
    assert_eq!(req.header("x-zendesk-webhook-id").unwrap(), id);
    let body = req.json();
    assert_eq!(body["type"], "zen:event-type:user.created");
    assert_eq!(body["subject"], format!("zen:user:{user_id}"));
    assert_eq!(
        body["detail"]["id"],
        user_id.to_string(),
        "ids inside detail are strings"
    );
    assert_eq!(body["zendesk_event_version"], "2022-06-20");
    // A reset secret no longer verifies old signatures.
    let reset: Value = send(
        &sb,
        reqwest::Method::POST,
        &format!("/api/v2/webhooks/{id}/signing_secret"),
        json!({}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(reset["signing_secret"]["secret"], secret.as_str());
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_webhook_is_retried_after_a_5xx() {
    let sb = start(fast_webhooks(sized(3))).await;
    let rx = Receiver::start(1).await;
    send(&sb, reqwest::Method::POST, "/api/v2/webhooks", json!({"webhook": {"name": "T", "endpoint": rx.url, "http_method": "POST", "request_format": "json", "status": "active", "subscriptions": ["zen:event-type:ticket.created", "zen:event-type:ticket.comment_added"]}})).await;
    send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/tickets",
        json!({"ticket": {"subject": "Hook", "comment": {"body": "x"}}}),
    )
    .await;
    let got = rx.wait_for(2).await;
    assert_eq!(got[0].json()["type"], "zen:event-type:ticket.created");
    assert_eq!(
        got[0].json()["id"],
        got[1].json()["id"],
        "a retry resends the same event"
    );
    send(
        &sb,
        reqwest::Method::PUT,
        "/api/v2/tickets/1",
        json!({"ticket": {"comment": {"body": "follow-up"}}}),
    )
    .await;
    let got = rx.wait_for(3).await;
    assert_eq!(got[2].json()["type"], "zen:event-type:ticket.comment_added");
    assert_eq!(got[2].json()["event"]["comment"]["body"], "follow-up");
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_event_webhooks_must_use_post_and_json() {
    let sb = start(sized(3)).await;
    let r = send(&sb, reqwest::Method::POST, "/api/v2/webhooks", json!({"webhook": {"name": "G", "endpoint": "http://127.0.0.1:9/", "http_method": "GET", "request_format": "json", "status": "active", "subscriptions": ["zen:event-type:user.created"]}})).await;
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["errors"][0]["code"], "InvalidValue");
    let r = send(&sb, reqwest::Method::POST, "/api/v2/webhooks", json!({"webhook": {"name": "U", "endpoint": "http://127.0.0.1:9/", "subscriptions": ["zen:event-type:nonsense"]}})).await;
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_admin_state_shows_webhooks_and_counts() {
    let sb = start(sized(4)).await;
    let s = admin_post(&sb, "/admin/reset", json!({"vendor": "zendesk"})).await;
    assert_eq!(s["reset"], "zendesk");
    let state = crate::support::admin_get(&sb, "/admin/vendors/zendesk/state").await;
    assert_eq!(state["objects"]["tickets"]["records"], 4);
    assert_eq!(state["objects"]["users"]["records"], 5);
    let rec = crate::support::admin_get(&sb, "/admin/vendors/zendesk/records/tickets/1").await;
    assert!(!rec["comments"].as_array().unwrap().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_users_and_organizations_can_be_found_by_email_external_id_and_name() {
    let sb = start(sized(5)).await;
    let users: Value = get(&sb, "/api/v2/users?per_page=3")
        .await
        .json()
        .await
        .unwrap();
    let email = users["users"][1]["email"].as_str().unwrap().to_string();
    let r: Value = get(
        &sb,
        &format!("/api/v2/users/search.json?query=email:{email}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["count"], 1);
    assert_eq!(r["users"][0]["id"], users["users"][1]["id"]);
    send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/users",
        json!({"user": {"name": "Ext", "email": "ext@example.com", "external_id": "crm-7"}}),
    )
    .await;
    let r: Value = get(&sb, "/api/v2/users/search?external_id=crm-7")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["users"][0]["email"], "ext@example.com");
    let orgs: Value = get(&sb, "/api/v2/organizations?per_page=1")
        .await
        .json()
        .await
        .unwrap();
    let name = orgs["organizations"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let r: Value = client()
        .get(format!("{}/api/v2/organizations/search", base(&sb)))
        .query(&[("name", &name)])
        .header("Authorization", basic(&sb))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["organizations"][0]["id"], orgs["organizations"][0]["id"]);
    assert_eq!(
        get(&sb, "/api/v2/users/search?query=role:admin")
            .await
            .status(),
        400
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_trigger_connected_webhook_sends_the_rendered_body_when_conditions_match() {
    let sb = start(fast_webhooks(sized(3))).await;
    let rx = Receiver::start(0).await;
    let hook: Value = send(&sb, reqwest::Method::POST, "/api/v2/webhooks", json!({"webhook": {"name": "Tickets to CRM", "endpoint": rx.url, "http_method": "POST", "request_format": "json", "status": "active", "subscriptions": ["conditional_ticket_events"]}})).await.json().await.unwrap();
    let hook_id = hook["webhook"]["id"].as_str().unwrap().to_string();
    let template = r#"{"id": "{{ticket.id}}", "title": "{{ticket.title}}", "requester": "{{ticket.requester.email}}", "status": "{{ticket.status}}"}"#;
    let r = send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/triggers",
        json!({"trigger": {"title": "Urgent tickets to CRM", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}, {"field": "priority", "operator": "is", "value": "urgent"}]}, "actions": [{"field": "notification_webhook", "value": [hook_id, template]}]}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    send(
        &sb,
        reqwest::Method::POST,
        "/api/v2/tickets",
        json!({"ticket": {"subject": "Calm", "comment": {"body": "x"}, "priority": "low"}}),
    )
    .await;
    let t: Value = send(&sb, reqwest::Method::POST, "/api/v2/tickets", json!({"ticket": {"subject": "Printer \"on\" fire", "comment": {"body": "x"}, "priority": "urgent", "requester": {"name": "Jane", "email": "jane@example.com"}}})).await.json().await.unwrap();
    let got = rx.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.received().len(), 1, "only the urgent ticket matched");
    let body = got[0].json();
    assert_eq!(body["id"], t["ticket"]["id"].to_string());
    assert_eq!(
        body["title"], "Printer \"on\" fire",
        "placeholders are JSON-escaped"
    );
    assert_eq!(body["requester"], "jane@example.com");
    assert!(got[0].header("x-zendesk-webhook-signature").is_some());
    let event_hook: Value = send(&sb, reqwest::Method::POST, "/api/v2/webhooks", json!({"webhook": {"name": "Events", "endpoint": rx.url, "subscriptions": ["zen:event-type:user.created"]}})).await.json().await.unwrap();
    let r = send(&sb, reqwest::Method::POST, "/api/v2/triggers", json!({"trigger": {"title": "Wrong hook", "conditions": {"all": [{"field": "status", "operator": "is", "value": "open"}]}, "actions": [{"field": "notification_webhook", "value": [event_hook["webhook"]["id"], "{}"]}]}})).await;
    assert_eq!(r.status(), 422);
    let r = send(&sb, reqwest::Method::POST, "/api/v2/triggers", json!({"trigger": {"title": "Bad field", "conditions": {"all": [{"field": "satisfaction_score", "operator": "is", "value": "good"}]}, "actions": [{"field": "notification_webhook", "value": [hook_id, "{}"]}]}})).await;
    assert_eq!(r.status(), 422);
    sb.shutdown().await;
}

#[tokio::test]
async fn zendesk_account_settings_show_active_features_with_or_without_json_suffix() {
    let sb = start(sized(2)).await;
    for path in ["/api/v2/account/settings.json", "/api/v2/account/settings"] {
        let r = get(&sb, path).await;
        assert_eq!(r.status(), 200, "{path}");
        let b: Value = r.json().await.unwrap();
        let s = &b["settings"];
        // Airbyte's source refuses to sync unless organization access is an active feature.
        assert_eq!(
            s["active_features"]["organization_access_enabled"], true,
            "{b}"
        );
        assert!(
            s["active_features"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_boolean)
        );
        assert_eq!(s["api"]["api_token_access"], "true");
        assert!(s["tickets"]["maximum_personal_views_to_list"].is_u64());
        assert_eq!(s["localization"]["time_zone"], "UTC");
    }
    let r = client()
        .get(format!("{}/api/v2/account/settings.json", base(&sb)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    sb.shutdown().await;
}
