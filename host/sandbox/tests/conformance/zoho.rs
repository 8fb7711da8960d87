//! Zoho CRM emulator conformance (crm-apis.md §1 and §8 "Zoho CRM").

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use weft_sandbox::{DemoData, DemoSize, FaultConfig, Sandbox, SandboxConfig, Vendor};

use crate::support::{Receiver, admin_post, client, fast_webhooks, start};

const CLIENT_ID: &str = "1000.WEFTSANDBOXZOHOCLIENT0000000";

fn base(sb: &Sandbox) -> String {
    sb.vendor(Vendor::Zoho).unwrap().base_url().to_string()
}

/// An access token from the demo refresh token.
pub async fn access_token(sb: &Sandbox) -> String {
    let c = sb.vendor(Vendor::Zoho).unwrap().credentials();
    let r = client()
        .post(format!("{}/oauth/v2/token", base(sb)))
        .query(&[
            ("grant_type", "refresh_token"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("refresh_token", c.refresh_token.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn get(sb: &Sandbox, token: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", base(sb)))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap()
}

async fn send(
    sb: &Sandbox,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    client()
        .request(method, format!("{}{path}", base(sb)))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn sized(n: u64) -> SandboxConfig {
    SandboxConfig {
        data: DemoData {
            seed: 7,
            size: DemoSize::uniform(n),
        },
        ..SandboxConfig::default()
    }
}

/// Runs the consent page like a browser would and returns the redirect's query parameters.
async fn approve(sb: &Sandbox, scope: &str, access_type: &str) -> Vec<(String, String)> {
    let page = client()
        .get(format!("{}/oauth/v2/auth", base(sb)))
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("scope", scope),
            ("redirect_uri", "http://localhost:9/callback"),
            ("access_type", access_type),
            ("state", "xyz"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form") && html.contains("decision"),
        "{html}"
    );
    let r = client()
        .post(format!("{}/oauth/v2/auth/approve", base(sb)))
        .form(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("scope", scope),
            ("redirect_uri", "http://localhost:9/callback"),
            ("access_type", access_type),
            ("state", "xyz"),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://localhost:9/callback?"),
        "{location}"
    );
    let q = location.split_once('?').unwrap().1;
    serde_urlencoded::from_str(q).unwrap()
}

fn param<'a>(p: &'a [(String, String)], k: &str) -> &'a str {
    p.iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {k} in {p:?}"))
}

async fn exchange(sb: &Sandbox, code: &str, redirect: &str) -> Value {
    let c = sb.vendor(Vendor::Zoho).unwrap().credentials();
    client()
        .post(format!("{}/oauth/v2/token", base(sb)))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("redirect_uri", redirect),
            ("code", code),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn zoho_consent_approval_redirects_with_code_location_and_accounts_server() {
    let sb = start(SandboxConfig::default()).await;
    let p = approve(&sb, "ZohoCRM.modules.ALL", "offline").await;
    assert_eq!(param(&p, "state"), "xyz");
    assert_eq!(param(&p, "location"), "us");
    assert_eq!(param(&p, "accounts-server"), base(&sb));
    let tokens = exchange(&sb, param(&p, "code"), "http://localhost:9/callback").await;
    assert!(
        tokens["access_token"]
            .as_str()
            .unwrap()
            .starts_with("1000.")
    );
    assert!(
        tokens["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("1000.")
    );
    assert_eq!(tokens["api_domain"], base(&sb));
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    // Codes are single use.
    let again = exchange(&sb, param(&p, "code"), "http://localhost:9/callback").await;
    assert_eq!(again, json!({"error": "invalid_code"}));
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_online_access_type_gets_no_refresh_token() {
    let sb = start(SandboxConfig::default()).await;
    let p = approve(&sb, "ZohoCRM.modules.ALL", "online").await;
    let tokens = exchange(&sb, param(&p, "code"), "http://localhost:9/callback").await;
    assert!(tokens["access_token"].is_string());
    assert!(tokens.get("refresh_token").is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_consent_rejection_redirects_with_access_denied() {
    let sb = start(SandboxConfig::default()).await;
    let r = client()
        .post(format!("{}/oauth/v2/auth/approve", base(&sb)))
        .form(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "http://localhost:9/cb"),
            ("decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "http://localhost:9/cb?error=access_denied"
    );
    let bad = client()
        .get(format!(
            "{}/oauth/v2/auth?response_type=code&client_id=nope&redirect_uri=http://x/cb",
            base(&sb)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("unknown client_id"));
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_token_errors_come_back_as_http_200_with_an_error_field() {
    let sb = start(SandboxConfig::default()).await;
    let tokens = exchange(&sb, "1000.bogus", "http://localhost:9/callback").await;
    assert_eq!(tokens, json!({"error": "invalid_code"}));
    let p = approve(&sb, "ZohoCRM.modules.ALL", "offline").await;
    let wrong_redirect = exchange(&sb, param(&p, "code"), "http://localhost:9/other").await;
    assert_eq!(wrong_redirect, json!({"error": "invalid_redirect_uri"}));
    let r = client()
        .post(format!("{}/oauth/v2/token?grant_type=refresh_token&client_id={CLIENT_ID}&client_secret=wrong&refresh_token=x", base(&sb)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "invalid_client_secret"})
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_refresh_does_not_rotate_the_refresh_token() {
    let sb = start(SandboxConfig::default()).await;
    let c = sb.vendor(Vendor::Zoho).unwrap().credentials();
    let refresh = c.refresh_token.clone().unwrap();
    for _ in 0..2 {
        let r: Value = client()
            .post(format!("{}/oauth/v2/token", base(&sb)))
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
        assert!(r["access_token"].is_string());
        assert!(
            r.get("refresh_token").is_none(),
            "Zoho does not send a new refresh token: {r}"
        );
        assert_eq!(r["api_domain"], base(&sb));
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_refresh_token_mints_at_most_the_configured_tokens_per_window() {
    let mut config = SandboxConfig::default();
    config.zoho.tokens_per_window = 3;
    let sb = start(config).await;
    for _ in 0..3 {
        access_token(&sb).await;
    }
    let c = sb.vendor(Vendor::Zoho).unwrap().credentials();
    let r = client()
        .post(format!("{}/oauth/v2/token", base(&sb)))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", &c.client_secret),
            ("refresh_token", c.refresh_token.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Access Denied");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("too many requests")
    );
    // The block lasts for the rest of the ten minutes.
    sb.advance_clock(Duration::from_secs(601));
    access_token(&sb).await;
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_requires_the_zoho_oauthtoken_scheme() {
    let sb = start(SandboxConfig::default()).await;
    let token = access_token(&sb).await;
    let r = client()
        .get(format!("{}/crm/v7/Leads?fields=Last_Name", base(&sb)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "INVALID_TOKEN");
    let r = client()
        .get(format!("{}/crm/v7/Leads?fields=Last_Name", base(&sb)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "AUTHENTICATION_FAILURE"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_expired_token_gets_401_invalid_token() {
    let sb = start(SandboxConfig::default()).await;
    let token = access_token(&sb).await;
    assert_eq!(
        get(&sb, &token, "/crm/v7/Leads?fields=Last_Name")
            .await
            .status(),
        200
    );
    let expired = admin_post(&sb, "/admin/tokens/expire", json!({"vendor": "zoho"})).await;
    assert_eq!(expired["expired"], 1);
    let r = get(&sb, &token, "/crm/v7/Leads?fields=Last_Name").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"})
    );
    // A fresh token works again; tokens also lapse after an hour on the sandbox clock.
    let fresh = access_token(&sb).await;
    assert_eq!(
        get(&sb, &fresh, "/crm/v7/Leads?fields=Last_Name")
            .await
            .status(),
        200
    );
    sb.advance_clock(Duration::from_secs(3_601));
    assert_eq!(
        get(&sb, &fresh, "/crm/v7/Leads?fields=Last_Name")
            .await
            .status(),
        401
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_injected_token_expiry_answers_401() {
    let sb = start(SandboxConfig::default()).await;
    let token = access_token(&sb).await;
    sb.set_faults(
        Some(Vendor::Zoho),
        FaultConfig {
            token_expired: 1.0,
            ..FaultConfig::default()
        },
    );
    let r = get(&sb, &token, "/crm/v7/Leads?fields=Last_Name").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "INVALID_TOKEN");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_scope_mismatch_is_401_oauth_scope_mismatch() {
    let sb = start(SandboxConfig::default()).await;
    let p = approve(&sb, "ZohoCRM.modules.Leads.READ", "offline").await;
    let tokens = exchange(&sb, param(&p, "code"), "http://localhost:9/callback").await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        get(&sb, token, "/crm/v7/Leads?fields=Last_Name")
            .await
            .status(),
        200
    );
    let r = get(&sb, token, "/crm/v7/Contacts?fields=Last_Name").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "OAUTH_SCOPE_MISMATCH"
    );
    let w = send(
        &sb,
        token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": [{"Last_Name": "X"}]}),
    )
    .await;
    assert_eq!(w.status(), 401);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_list_requires_fields_and_at_most_50() {
    let sb = start(SandboxConfig::default()).await;
    let token = access_token(&sb).await;
    let r = get(&sb, &token, "/crm/v7/Contacts").await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "REQUIRED_PARAM_MISSING");
    assert_eq!(body["details"]["param_name"], "fields");
    let many: Vec<String> = (0..51).map(|i| format!("F{i}")).collect();
    let r = get(
        &sb,
        &token,
        &format!("/crm/v7/Contacts?fields={}", many.join(",")),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "LIMIT_EXCEEDED");
    // v2 did not require fields.
    assert_eq!(get(&sb, &token, "/crm/v2/Contacts").await.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_unknown_module_and_path_use_zoho_errors() {
    let sb = start(SandboxConfig::default()).await;
    let token = access_token(&sb).await;
    let r = get(&sb, &token, "/crm/v7/Widgets?fields=Name").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "INVALID_MODULE");
    let r = get(&sb, &token, "/crm/v99/Leads").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "INVALID_URL_PATTERN"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_records_are_cross_referenced_and_shaped_like_zoho() {
    let sb = start(sized(10)).await;
    let token = access_token(&sb).await;
    let r: Value = get(
        &sb,
        &token,
        "/crm/v7/Contacts?fields=Email,Account_Name,Last_Name,Modified_Time&per_page=3",
    )
    .await
    .json()
    .await
    .unwrap();
    let c = &r["data"][0];
    let id = c["id"].as_str().unwrap();
    assert!(
        id.len() == 19 && id.chars().all(|ch| ch.is_ascii_digit()),
        "{id}"
    );
    let account_id = c["Account_Name"]["id"].as_str().unwrap();
    let acc: Value = get(&sb, &token, &format!("/crm/v7/Accounts/{account_id}"))
        .await
        .json()
        .await
        .unwrap();
    let website = acc["data"][0]["Website"].as_str().unwrap();
    let domain = website.trim_start_matches("https://www.");
    assert!(
        c["Email"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{domain}"))
    );
    assert_eq!(c["Account_Name"]["name"], acc["data"][0]["Account_Name"]);
    let modified = c["Modified_Time"].as_str().unwrap();
    assert!(
        modified.ends_with("+00:00") && modified.contains('T'),
        "{modified}"
    );
    // Default order is id descending.
    let ids: Vec<u64> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_pages_stop_at_2000_records_with_page_token() {
    let mut config = sized(2_300);
    config.data.size = DemoSize {
        contacts: 2_300,
        ..DemoSize::default()
    };
    let sb = start(config).await;
    let token = access_token(&sb).await;
    let mut seen = HashSet::new();
    let mut last_info = Value::Null;
    for page in 1..=10 {
        let r: Value = get(
            &sb,
            &token,
            &format!("/crm/v7/Contacts?fields=Last_Name&per_page=200&page={page}"),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(r["data"].as_array().unwrap().len(), 200);
        for d in r["data"].as_array().unwrap() {
            assert!(seen.insert(d["id"].as_str().unwrap().to_string()));
        }
        last_info = r["info"].clone();
    }
    assert_eq!(last_info["more_records"], true);
    let r = get(
        &sb,
        &token,
        "/crm/v7/Contacts?fields=Last_Name&per_page=200&page=11",
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    );
    // The page token from page 10 continues past 2,000.
    let mut next = last_info["next_page_token"].as_str().unwrap().to_string();
    assert!(last_info["page_token_expiry"].is_string());
    loop {
        let r: Value = get(
            &sb,
            &token,
            &format!("/crm/v7/Contacts?fields=Last_Name&per_page=200&page_token={next}"),
        )
        .await
        .json()
        .await
        .unwrap();
        for d in r["data"].as_array().unwrap() {
            assert!(seen.insert(d["id"].as_str().unwrap().to_string()));
        }
        if r["info"]["more_records"] == false {
            assert!(r["info"]["next_page_token"].is_null());
            break;
        }
        next = r["info"]["next_page_token"].as_str().unwrap().to_string();
    }
    assert_eq!(seen.len(), 2_300);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_page_token_is_bound_to_parameters_and_exclusive_with_page() {
    let sb = start(sized(50)).await;
    let token = access_token(&sb).await;
    let r: Value = get(&sb, &token, "/crm/v7/Leads?fields=Last_Name&per_page=10")
        .await
        .json()
        .await
        .unwrap();
    let pt = r["info"]["next_page_token"].as_str().unwrap();
    let r = get(
        &sb,
        &token,
        &format!("/crm/v7/Leads?fields=Email&per_page=10&page_token={pt}"),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "TOKEN_BOUND_DATA_MISMATCH"
    );
    let r = get(
        &sb,
        &token,
        &format!("/crm/v7/Leads?fields=Last_Name&per_page=10&page=2&page_token={pt}"),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "AMBIGUITY_DURING_PROCESSING"
    );
    let r = get(
        &sb,
        &token,
        "/crm/v7/Leads?fields=Last_Name&per_page=10&page_token=made-up",
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "INVALID_DATA");
    assert_eq!(
        get(
            &sb,
            &token,
            &format!("/crm/v7/Leads?fields=Last_Name&per_page=10&page_token={pt}")
        )
        .await
        .status(),
        200
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_page_token_expires_after_24_hours() {
    let sb = start(sized(50)).await;
    let token = access_token(&sb).await;
    let r: Value = get(&sb, &token, "/crm/v7/Leads?fields=Last_Name&per_page=10")
        .await
        .json()
        .await
        .unwrap();
    let pt = r["info"]["next_page_token"].as_str().unwrap().to_string();
    sb.advance_clock(Duration::from_secs(24 * 3_600 + 1));
    let token = access_token(&sb).await;
    let r = get(
        &sb,
        &token,
        &format!("/crm/v7/Leads?fields=Last_Name&per_page=10&page_token={pt}"),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "EXPIRED_VALUE");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_page_tokens_stop_at_the_record_limit() {
    let mut config = sized(100);
    config.zoho.page_token_records = 30;
    let sb = start(config).await;
    let token = access_token(&sb).await;
    let mut r: Value = get(&sb, &token, "/crm/v7/Leads?fields=Last_Name&per_page=10")
        .await
        .json()
        .await
        .unwrap();
    let mut got = r["data"].as_array().unwrap().len();
    while got < 30 {
        let pt = r["info"]["next_page_token"].as_str().unwrap().to_string();
        r = get(
            &sb,
            &token,
            &format!("/crm/v7/Leads?fields=Last_Name&per_page=10&page_token={pt}"),
        )
        .await
        .json()
        .await
        .unwrap();
        got += r["data"].as_array().unwrap().len();
    }
    let pt = r["info"]["next_page_token"].as_str().unwrap().to_string();
    let r = get(
        &sb,
        &token,
        &format!("/crm/v7/Leads?fields=Last_Name&per_page=10&page_token={pt}"),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "PAGINATION_LIMIT_EXCEEDED"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_if_modified_since_returns_changes_only_and_304_when_none() {
    let sb = start(sized(30)).await;
    let token = access_token(&sb).await;
    let since = "2030-01-01T00:00:00+00:00";
    let r = client()
        .get(format!("{}/crm/v7/Deals?fields=Deal_Name", base(&sb)))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .header("If-Modified-Since", since)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // Everything is "modified" after 2025-06-01 from the middle of the demo year on.
    let r: Value = client()
        .get(format!(
            "{}/crm/v7/Deals?fields=Deal_Name,Modified_Time&sort_order=asc",
            base(&sb)
        ))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .header("If-Modified-Since", "2025-07-01T00:00:00+00:00")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = r["data"].as_array().unwrap().len();
    assert!(n > 0 && n < 30, "{n}");
    for d in r["data"].as_array().unwrap() {
        assert!(d["Modified_Time"].as_str().unwrap() > "2025-07-01");
    }
    // A write now shows up for a recent If-Modified-Since.
    sb.advance_clock(Duration::from_secs(10 * 365 * 86_400));
    let token = access_token(&sb).await;
    let first_id = r["data"][0]["id"].as_str().unwrap();
    let w = send(
        &sb,
        &token,
        reqwest::Method::PUT,
        &format!("/crm/v7/Deals/{first_id}"),
        json!({"data": [{"Amount": 1234}]}),
    )
    .await;
    assert_eq!(w.status(), 200);
    let r: Value = client()
        .get(format!(
            "{}/crm/v7/Deals?fields=Deal_Name,Amount",
            base(&sb)
        ))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .header("If-Modified-Since", since)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    assert_eq!(r["data"][0]["Amount"], 1234);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_insert_batch_partial_failure_returns_207_with_per_record_entries() {
    let sb = start(sized(5)).await;
    let token = access_token(&sb).await;
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": [
            {"Last_Name": "Boyle", "First_Name": "Patricia", "Company": "Zylker", "Email": "p.boyle@zylker.example"},
            {"First_Name": "NoLastName"},
            {"Last_Name": "Bad", "Email": "not-an-email"},
        ], "trigger": ["workflow"]}),
    )
    .await;
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.unwrap();
    let d = body["data"].as_array().unwrap();
    assert_eq!(d[0]["code"], "SUCCESS");
    assert_eq!(d[0]["message"], "record added");
    assert!(d[0]["details"]["id"].is_string() && d[0]["details"]["Created_Time"].is_string());
    assert_eq!(d[1]["code"], "MANDATORY_NOT_FOUND");
    assert_eq!(d[1]["details"]["api_name"], "Last_Name");
    assert_eq!(d[1]["details"]["json_path"], "$.data[1].Last_Name");
    assert_eq!(d[2]["code"], "INVALID_DATA");
    assert_eq!(d[2]["details"]["api_name"], "Email");
    assert_eq!(d[2]["status"], "error");
    // All success is 201; all failure is 400.
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": [{"Last_Name": "Ok"}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": [{"First_Name": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_write_over_100_records_is_limit_exceeded() {
    let sb = start(sized(5)).await;
    let token = access_token(&sb).await;
    let records: Vec<Value> = (0..101)
        .map(|i| json!({"Last_Name": format!("L{i}")}))
        .collect();
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": records}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "LIMIT_EXCEEDED");
    let ids: Vec<String> = (0..101)
        .map(|i| (4_876_876_004_000_000_000u64 + i).to_string())
        .collect();
    let r = client()
        .delete(format!("{}/crm/v7/Leads?ids={}", base(&sb), ids.join(",")))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "LIMIT_EXCEEDED");
    assert!(body["message"].as_str().unwrap().contains("100 record ids"));
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_lookup_to_missing_account_is_invalid_data() {
    let sb = start(sized(5)).await;
    let token = access_token(&sb).await;
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Contacts",
        json!({"data": [{"Last_Name": "A", "Account_Name": {"id": "4876876001000999999"}}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["code"], "INVALID_DATA");
    assert_eq!(body["data"][0]["details"]["api_name"], "Account_Name");
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Contacts",
        json!({"data": [{"Last_Name": "A", "Account_Name": {"id": "4876876001000000001"}}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_upsert_matches_on_system_field_then_duplicate_check_fields() {
    let sb = start(sized(5)).await;
    let token = access_token(&sb).await;
    let existing: Value = get(
        &sb,
        &token,
        "/crm/v7/Contacts?fields=Email,Phone&per_page=1",
    )
    .await
    .json()
    .await
    .unwrap();
    let email = existing["data"][0]["Email"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let id = existing["data"][0]["id"].as_str().unwrap().to_string();
    let r = send(&sb, &token, reqwest::Method::POST, "/crm/v7/Contacts/upsert", json!({"data": [{"Last_Name": "Updated", "Email": email}, {"Last_Name": "New", "Email": "new.person@example.org"}]})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["action"], "update");
    assert_eq!(body["data"][0]["duplicate_field"], "Email");
    assert_eq!(body["data"][0]["message"], "record updated");
    assert_eq!(body["data"][0]["details"]["id"], id.as_str());
    assert_eq!(body["data"][1]["action"], "insert");
    assert!(body["data"][1]["duplicate_field"].is_null());
    assert_eq!(body["data"][1]["message"], "record added");
    // With duplicate_check_fields that omit Email, Email is ignored.
    let phone = existing["data"][0]["Phone"].as_str().unwrap();
    let r: Value = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Contacts/upsert",
        json!({"data": [{"Last_Name": "ByPhone", "Email": "new.person@example.org", "Phone": phone}], "duplicate_check_fields": ["Phone"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["data"][0]["action"], "update");
    assert_eq!(r["data"][0]["duplicate_field"], "Phone");
    assert_eq!(r["data"][0]["details"]["id"], id.as_str());
    let r: Value = send(&sb, &token, reqwest::Method::POST, "/crm/v7/Contacts/upsert", json!({"data": [{"Last_Name": "Nobody", "Email": "new.person@example.org"}], "duplicate_check_fields": ["Phone"]})).await.json().await.unwrap();
    assert_eq!(r["data"][0]["action"], "insert");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_stale_if_unmodified_since_gives_412_already_modified() {
    let sb = start(sized(5)).await;
    let token = access_token(&sb).await;
    let existing: Value = get(&sb, &token, "/crm/v7/Leads?fields=Email&per_page=1")
        .await
        .json()
        .await
        .unwrap();
    let email = existing["data"][0]["Email"].as_str().unwrap();
    let r = client()
        .post(format!("{}/crm/v7/Leads/upsert", base(&sb)))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .header("If-Unmodified-Since", "2024-01-01T00:00:00+00:00")
        .json(&json!({"data": [{"Last_Name": "Stale", "Email": email}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"][0]["code"],
        "ALREADY_MODIFIED"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_update_and_delete_report_unknown_ids_per_record() {
    let sb = start(sized(5)).await;
    let token = access_token(&sb).await;
    let r = send(&sb, &token, reqwest::Method::PUT, "/crm/v7/Leads", json!({"data": [{"id": "4876876004000000001", "Last_Name": "Ok"}, {"id": "123", "Last_Name": "No"}]})).await;
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["message"], "record updated");
    assert_eq!(body["data"][1]["code"], "INVALID_DATA");
    assert_eq!(body["data"][1]["details"]["id"], "123");
    let r = client()
        .delete(format!(
            "{}/crm/v7/Leads?ids=4876876004000000002,4876876004000999999",
            base(&sb)
        ))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["message"], "record deleted");
    assert_eq!(body["data"][1]["message"], "record not deleted");
    assert_eq!(
        get(&sb, &token, "/crm/v7/Leads/4876876004000000002")
            .await
            .status(),
        204
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_deleted_records_feed_lists_deletions_since_a_time() {
    let sb = start(sized(5)).await;
    let token = access_token(&sb).await;
    assert_eq!(
        get(&sb, &token, "/crm/v7/Accounts/deleted?type=all")
            .await
            .status(),
        204
    );
    let r = client()
        .delete(format!("{}/crm/v7/Accounts/4876876001000000003", base(&sb)))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = get(&sb, &token, "/crm/v7/Accounts/deleted?type=recycle")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"][0]["id"], "4876876001000000003");
    assert_eq!(r["data"][0]["type"], "recycle");
    assert!(r["data"][0]["display_name"].as_str().unwrap().len() > 3);
    assert!(r["data"][0]["deleted_time"].is_string());
    assert_eq!(
        get(&sb, &token, "/crm/v7/Accounts/deleted?type=permanent")
            .await
            .status(),
        204
    );
    let r = client()
        .get(format!("{}/crm/v7/Accounts/deleted", base(&sb)))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .header("If-Modified-Since", "2099-01-01T00:00:00+00:00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_search_by_email_and_criteria() {
    let sb = start(sized(20)).await;
    let token = access_token(&sb).await;
    let one: Value = get(
        &sb,
        &token,
        "/crm/v7/Contacts?fields=Email,Last_Name&per_page=1",
    )
    .await
    .json()
    .await
    .unwrap();
    let email = one["data"][0]["Email"].as_str().unwrap();
    let last = one["data"][0]["Last_Name"].as_str().unwrap();
    let r: Value = get(
        &sb,
        &token,
        &format!("/crm/v7/Contacts/search?email={email}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    assert_eq!(r["data"][0]["id"], one["data"][0]["id"]);
    let r: Value = get(
        &sb,
        &token,
        &format!(
            "/crm/v7/Contacts/search?criteria=((Last_Name:equals:{last})and(Email:starts_with:{}))",
            &email[..3]
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        r["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == one["data"][0]["id"])
    );
    assert_eq!(
        get(
            &sb,
            &token,
            "/crm/v7/Contacts/search?email=nobody@nowhere.example"
        )
        .await
        .status(),
        204
    );
    let r = get(&sb, &token, "/crm/v7/Contacts/search?criteria=Last_Name=x").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "INVALID_QUERY");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_watch_channel_calls_back_with_token_until_it_expires() {
    let sb = start(fast_webhooks(sized(5))).await;
    let token = access_token(&sb).await;
    let rx = Receiver::start(0).await;
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/actions/watch",
        json!({"watch": [{"channel_id": "1000000068001", "events": ["Leads.create", "Leads.edit"], "notify_url": format!("{}/zoho?key=val", rx.url), "token": "TOKEN_FOR_VERIFICATION", "return_affected_field_values": true}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["watch"][0]["code"], "SUCCESS");
    assert_eq!(
        body["watch"][0]["details"]["events"][0]["channel_id"],
        "1000000068001"
    );
    let created: Value = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": [{"Last_Name": "Watch"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["data"][0]["details"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = rx.wait_for(1).await;
    let n = got[0].json();
    assert_eq!(n["operation"], "insert");
    assert_eq!(n["module"], "Leads");
    assert_eq!(n["ids"], json!([id]));
    assert_eq!(n["token"], "TOKEN_FOR_VERIFICATION");
    assert_eq!(n["channel_id"], "1000000068001");
    assert_eq!(n["query_params"]["key"], "val");
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].uri, "/zoho?key=val");
    assert!(got[0].header("x-zoho-signature").is_none());
    send(
        &sb,
        &token,
        reqwest::Method::PUT,
        &format!("/crm/v7/Leads/{id}"),
        json!({"data": [{"Company": "Zylker"}]}),
    )
    .await;
    let got = rx.wait_for(2).await;
    let n = got[1].json();
    assert_eq!(n["operation"], "update");
    assert_eq!(n["affected_values"][0]["values"]["Company"], "Zylker");
    // Contacts are not watched.
    send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Contacts",
        json!({"data": [{"Last_Name": "Quiet"}]}),
    )
    .await;
    // The default expiry is one hour.
    sb.advance_clock(Duration::from_secs(3_601));
    let token = access_token(&sb).await;
    send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": [{"Last_Name": "Late"}]}),
    )
    .await;
    assert_eq!(
        get(&sb, &token, "/crm/v7/actions/watch").await.status(),
        204
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.received().len(), 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_watch_patch_removes_events_and_delete_disables() {
    let sb = start(sized(5)).await;
    let token = access_token(&sb).await;
    let r = send(&sb, &token, reqwest::Method::POST, "/crm/v7/actions/watch", json!({"watch": [{"channel_id": 77, "events": ["Deals.all", "Leads.create"], "notify_url": "http://127.0.0.1:9/x"}]})).await;
    assert_eq!(r.status(), 200);
    let r = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        "/crm/v7/actions/watch",
        json!({"watch": [{"channel_id": "77", "events": ["Deals.all"], "_delete_events": true}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let list: Value = get(&sb, &token, "/crm/v7/actions/watch")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["watch"][0]["events"], json!(["Leads.create"]));
    let bad = send(&sb, &token, reqwest::Method::POST, "/crm/v7/actions/watch", json!({"watch": [{"channel_id": "abc", "events": ["Leads.create"], "notify_url": "http://x/"}]})).await;
    assert_eq!(bad.status(), 400);
    let r = client()
        .delete(format!("{}/crm/v7/actions/watch?channel_ids=77", base(&sb)))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get(&sb, &token, "/crm/v7/actions/watch").await.status(),
        204
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_notification_delivery_is_retried_and_recorded() {
    let sb = start(fast_webhooks(sized(5))).await;
    let token = access_token(&sb).await;
    let rx = Receiver::start(2).await;
    send(&sb, &token, reqwest::Method::POST, "/crm/v7/actions/watch", json!({"watch": [{"channel_id": "5", "events": ["Leads.create"], "notify_url": rx.url, "token": "t"}]})).await;
    send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": [{"Last_Name": "Retry"}]}),
    )
    .await;
    let got = rx.wait_for(3).await;
    assert_eq!(got[0].body, got[2].body);
    let mut delivered = Value::Null;
    for _ in 0..100 {
        delivered = crate::support::admin_get(&sb, "/admin/webhooks?vendor=zoho").await;
        if delivered["deliveries"][0]["state"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = &delivered["deliveries"][0];
    assert_eq!(d["state"], "delivered");
    let statuses: Vec<u64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_daily_credits_run_out_with_429_and_remaining_header_after_half() {
    let mut config = sized(5);
    config.zoho.daily_credits = 4;
    let sb = start(config).await;
    let token = access_token(&sb).await;
    let a = get(&sb, &token, "/crm/v7/Leads?fields=Last_Name").await;
    assert!(a.headers().get("x-api-credits-remaining").is_none());
    get(&sb, &token, "/crm/v7/Leads?fields=Last_Name").await;
    let c = get(&sb, &token, "/crm/v7/Leads?fields=Last_Name").await;
    assert_eq!(c.headers()["x-api-credits-remaining"], "1");
    assert_eq!(
        get(&sb, &token, "/crm/v7/Leads?fields=Last_Name")
            .await
            .status(),
        200
    );
    let r = get(&sb, &token, "/crm/v7/Leads?fields=Last_Name").await;
    assert_eq!(r.status(), 429);
    assert!(
        r.headers().get("retry-after").is_none(),
        "Zoho sends no Retry-After"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "TOO_MANY_REQUESTS"
    );
    // The window is a rolling 24 hours.
    sb.advance_clock(Duration::from_secs(86_401));
    let token = access_token(&sb).await;
    assert_eq!(
        get(&sb, &token, "/crm/v7/Leads?fields=Last_Name")
            .await
            .status(),
        200
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_concurrency_limit_throttles_parallel_calls() {
    let mut config = sized(5);
    config.zoho.concurrency = 1;
    let sb = start(config).await;
    let token = access_token(&sb).await;
    sb.set_faults(
        Some(Vendor::Zoho),
        FaultConfig {
            slow: 1.0,
            slow_delay_ms: 300,
            ..FaultConfig::default()
        },
    );
    let (a, b) = tokio::join!(
        get(&sb, &token, "/crm/v7/Leads?fields=Last_Name"),
        get(&sb, &token, "/crm/v7/Leads?fields=Last_Name")
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 429]);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_coql_selects_filters_orders_and_pages() {
    let sb = start(sized(30)).await;
    let token = access_token(&sb).await;
    let coql = |q: String| {
        let url = format!("{}/crm/v7/coql", base(&sb));
        let token = token.clone();
        async move {
            client()
                .post(url)
                .header("Authorization", format!("Zoho-oauthtoken {token}"))
                .json(&json!({"select_query": q}))
                .send()
                .await
                .unwrap()
        }
    };
    let r: Value = coql("select Last_Name, Email, Account_Name from Contacts where Email like '%.example' and Last_Name is not null order by Last_Name asc limit 0, 5".into()).await.json().await.unwrap();
    let rows = r["data"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(r["info"]["more_records"], true);
    let names: Vec<&str> = rows
        .iter()
        .map(|x| x["Last_Name"].as_str().unwrap())
        .collect();
    assert!(
        names
            .windows(2)
            .all(|w| w[0].to_lowercase() <= w[1].to_lowercase())
    );
    assert!(
        rows[0]["Account_Name"]["id"].is_string(),
        "lookups come back as {{id}}"
    );
    let account = rows[0]["Account_Name"]["id"].as_str().unwrap().to_string();
    let r: Value = coql(format!(
        "select Last_Name from Contacts where Account_Name = '{account}'"
    ))
    .await
    .json()
    .await
    .unwrap();
    assert!(
        r["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == rows[0]["id"])
    );
    let r: Value =
        coql("select Deal_Name, Amount from Deals where Amount between 1000 and 20000".into())
            .await
            .json()
            .await
            .unwrap();
    assert!(
        r["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| (1_000.0..=20_000.0).contains(&d["Amount"].as_f64().unwrap()))
    );
    let r = coql("select Nope from Leads where Last_Name is not null".into()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "INVALID_QUERY");
    let r = coql("select from where".into()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "SYNTAX_ERROR");
    assert_eq!(
        coql("select Last_Name from Leads where Last_Name = 'Nobody-at-all'".into())
            .await
            .status(),
        204
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_notification_gives_up_after_its_attempts_and_records_failure() {
    let mut config = fast_webhooks(sized(3));
    config.zoho.notification_attempts = 2;
    let sb = start(config).await;
    let token = access_token(&sb).await;
    let rx = Receiver::start(usize::MAX).await;
    send(&sb, &token, reqwest::Method::POST, "/crm/v7/actions/watch", json!({"watch": [{"channel_id": "9", "events": ["Leads.create"], "notify_url": rx.url, "token": "t"}]})).await;
    send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Leads",
        json!({"data": [{"Last_Name": "Never"}]}),
    )
    .await;
    rx.wait_for(2).await;
    let mut d = Value::Null;
    for _ in 0..100 {
        d = crate::support::admin_get(&sb, "/admin/webhooks?vendor=zoho").await["deliveries"][0]
            .clone();
        if d["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d["state"], "failed");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(rx.received().len(), 2, "no attempt after the last one");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_current_user_and_org_need_a_settings_scope() {
    let sb = start(sized(2)).await;
    let token = access_token(&sb).await;
    let me: Value = get(&sb, &token, "/crm/v7/users?type=CurrentUser")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["users"][0]["email"], "demo@weft-sandbox.example");
    let org: Value = get(&sb, &token, "/crm/v7/org").await.json().await.unwrap();
    assert!(org["org"][0]["time_zone"].is_string());
    let p = approve(&sb, "ZohoCRM.modules.ALL", "online").await;
    let narrow = exchange(&sb, param(&p, "code"), "http://localhost:9/callback").await;
    let r = get(
        &sb,
        narrow["access_token"].as_str().unwrap(),
        "/crm/v7/users?type=CurrentUser",
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "OAUTH_SCOPE_MISMATCH"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_org_carries_the_zoho_group_id() {
    let sb = start(sized(3)).await;
    let token = access_token(&sb).await;
    for version in ["v2", "v7", "v8"] {
        let org: Value = get(&sb, &token, &format!("/crm/{version}/org"))
            .await
            .json()
            .await
            .unwrap();
        let org = &org["org"][0];
        let zgid = org["zgid"]
            .as_str()
            .unwrap_or_else(|| panic!("{version}: no zgid in {org}"));
        assert!(
            !zgid.is_empty() && zgid.bytes().all(|b| b.is_ascii_digit()),
            "{zgid}"
        );
        assert_eq!(org["domain_name"], format!("org{zgid}"));
        assert!(
            org["primary_zuid"].is_string() && org["currency_symbol"].is_string(),
            "{org}"
        );
        assert!(org["license_details"]["paid_type"].is_string());
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_record_count_counts_a_module_or_what_a_search_selects() {
    let sb = start(sized(12)).await;
    let token = access_token(&sb).await;
    let count = |body: Value| {
        body["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("count is not a number: {body}"))
    };
    let all = count(
        get(&sb, &token, "/crm/v7/Contacts/actions/count")
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(all, 12);
    // Writes move the count.
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        "/crm/v7/Contacts",
        json!({"data": [{"Last_Name": "Counted", "Email": "counted@example.org"}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        count(
            get(&sb, &token, "/crm/v8/Contacts/actions/count")
                .await
                .json()
                .await
                .unwrap()
        ),
        13
    );
    // Search parameters narrow it, as on the search API.
    assert_eq!(
        count(
            get(
                &sb,
                &token,
                "/crm/v7/Contacts/actions/count?email=counted@example.org"
            )
            .await
            .json()
            .await
            .unwrap()
        ),
        1
    );
    assert_eq!(
        count(
            get(
                &sb,
                &token,
                "/crm/v7/Contacts/actions/count?criteria=(Last_Name:equals:Counted)"
            )
            .await
            .json()
            .await
            .unwrap()
        ),
        1
    );
    assert_eq!(
        count(
            get(
                &sb,
                &token,
                "/crm/v7/Contacts/actions/count?word=no-such-word-anywhere"
            )
            .await
            .json()
            .await
            .unwrap()
        ),
        0
    );
    let r = get(
        &sb,
        &token,
        "/crm/v7/Contacts/actions/count?criteria=Last_Name",
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "INVALID_QUERY");
    // The endpoint arrived in v2.1; v2 has no such URL.
    assert_eq!(
        get(&sb, &token, "/crm/v2/Contacts/actions/count")
            .await
            .status(),
        404
    );
    assert_eq!(
        count(
            get(&sb, &token, "/crm/v2.1/Contacts/actions/count")
                .await
                .json()
                .await
                .unwrap()
        ),
        13
    );
    let r = get(&sb, &token, "/crm/v7/Unicorns/actions/count").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "INVALID_MODULE");
    assert_eq!(
        client()
            .get(format!("{}/crm/v7/Contacts/actions/count", base(&sb)))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    sb.shutdown().await;
}
