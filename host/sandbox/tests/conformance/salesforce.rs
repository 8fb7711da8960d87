//! Salesforce emulator conformance (crm-apis.md §3 and §8 "Salesforce").

use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use weft_sandbox::{DemoData, DemoSize, Sandbox, SandboxConfig, SandboxError, Vendor};

use crate::support::{client, header_names, raw_response_head, start};

const V: &str = "/services/data/v66.0";

fn base(sb: &Sandbox) -> String {
    sb.vendor(Vendor::Salesforce)
        .unwrap()
        .base_url()
        .to_string()
}

fn sized(n: u64) -> SandboxConfig {
    SandboxConfig {
        data: DemoData {
            seed: 5,
            size: DemoSize::uniform(n),
        },
        ..SandboxConfig::default()
    }
}

fn now_s(sb: &Sandbox) -> i64 {
    sb.now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An RS256 JWT signed with the sandbox's published demo key.
fn jwt(sb: &Sandbox, claims: Value) -> String {
    let pem =
        sb.vendor(Vendor::Salesforce).unwrap().credentials().extra["jwt_private_key_pem"].clone();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).unwrap();
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims(sb: &Sandbox) -> Value {
    let c = sb.vendor(Vendor::Salesforce).unwrap().credentials();
    json!({"iss": c.client_id, "sub": c.username, "aud": "https://login.salesforce.com", "exp": now_s(sb) + 120})
}

async fn jwt_token(sb: &Sandbox, assertion: &str) -> reqwest::Response {
    client()
        .post(format!("{}/services/oauth2/token", base(sb)))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ])
        .send()
        .await
        .unwrap()
}

async fn session(sb: &Sandbox) -> String {
    let r = jwt_token(sb, &jwt(sb, claims(sb))).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn get(sb: &Sandbox, token: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", base(sb)))
        .bearer_auth(token)
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
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn soql(sb: &Sandbox, token: &str, q: &str) -> reqwest::Response {
    client()
        .get(format!("{}{V}/query", base(sb)))
        .query(&[("q", q)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn salesforce_jwt_bearer_returns_instance_url_and_no_refresh_token() {
    let sb = start(sized(3)).await;
    let r = jwt_token(&sb, &jwt(&sb, claims(&sb))).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["instance_url"], base(&sb));
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["access_token"].as_str().unwrap().starts_with("00D"));
    assert!(t["id"].as_str().unwrap().contains("/id/00D"));
    assert!(t.get("refresh_token").is_none());
    let me = get(
        &sb,
        t["access_token"].as_str().unwrap(),
        &t["id"].as_str().unwrap().replace(&base(&sb), ""),
    )
    .await;
    assert_eq!(me.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_jwt_exp_may_be_a_string_of_digits_or_fractional() {
    let sb = start(sized(3)).await;
    let exp = now_s(&sb) + 120;
    // simple-salesforce sends `exp` as a string; RFC 7519 allows fractional seconds.
    for form in [
        json!(exp.to_string()),
        json!(exp as f64 + 0.5),
        json!(format!("{exp}.25")),
    ] {
        let mut c = claims(&sb);
        c["exp"] = form.clone();
        let r = jwt_token(&sb, &jwt(&sb, c)).await;
        assert_eq!(r.status(), 200, "exp {form}");
        assert!(r.json::<Value>().await.unwrap()["access_token"].is_string());
    }
    // A string form is still checked as a time, and anything but digits is refused.
    let cases = [
        (
            json!((now_s(&sb) - 10).to_string()),
            "expired authorization code",
        ),
        (json!(format!("{exp}s")), "invalid assertion"),
        (json!(""), "invalid assertion"),
        (json!(" 1"), "invalid assertion"),
    ];
    for (form, description) in cases {
        let mut c = claims(&sb);
        c["exp"] = form.clone();
        let r = jwt_token(&sb, &jwt(&sb, c)).await;
        assert_eq!(r.status(), 400, "exp {form}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error_description"],
            description,
            "exp {form}"
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_jwt_with_bad_audience_issuer_subject_or_expiry_is_refused() {
    let sb = start(sized(3)).await;
    let cases = [
        (
            json!({"aud": "https://example.my.salesforce.com"}),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            json!({"exp": now_s(&sb) - 10}),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            json!({"exp": now_s(&sb) + 3_600}),
            "invalid_grant",
            "invalid assertion",
        ),
        (
            json!({"iss": "3MVG9someoneelse"}),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            json!({"sub": "stranger@example.com"}),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
    ];
    for (patch, error, description) in cases {
        let mut c = claims(&sb);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        let r = jwt_token(&sb, &jwt(&sb, c)).await;
        assert_eq!(r.status(), 400, "{patch}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": error, "error_description": description}),
            "{patch}"
        );
    }
    // A valid assertion whose payload was altered after signing fails the RS256 check.
    let good = jwt(&sb, claims(&sb));
    let parts: Vec<&str> = good.split('.').collect();
    let mut forged_claims = claims(&sb);
    forged_claims["sub"] = json!("admin@weft-sandbox.example");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
        parts[2]
    );
    let r = jwt_token(&sb, &forged).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "invalid assertion"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_jwt_key_is_configurable_and_bad_keys_fail_at_start() {
    let mut config = sized(2);
    config.salesforce_jwt_public_key_pem =
        Some(include_str!("../../src/vendors/salesforce_keys/demo_certificate.pem").to_string());
    let sb = start(config).await;
    assert_eq!(jwt_token(&sb, &jwt(&sb, claims(&sb))).await.status(), 200);
    sb.shutdown().await;
    let mut config = sized(2);
    config.salesforce_jwt_public_key_pem =
        Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into());
    match Sandbox::start(config).await {
        Err(SandboxError::PublicKey(msg)) => assert!(msg.contains("PRIVATE KEY"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a private key must not be accepted as the JWT public key"),
    }
}

#[tokio::test]
async fn salesforce_expired_session_gets_401_invalid_session_id() {
    let sb = start(sized(3)).await;
    let token = session(&sb).await;
    assert_eq!(get(&sb, &token, &format!("{V}/limits")).await.status(), 200);
    sb.advance_clock(Duration::from_secs(2 * 3_600 + 1));
    let r = get(&sb, &token, &format!("{V}/limits")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    let r = get(&sb, "garbage", &format!("{V}/limits")).await;
    assert_eq!(r.status(), 401);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_web_server_flow_refreshes_without_rotation() {
    let sb = start(sized(3)).await;
    let c = sb.vendor(Vendor::Salesforce).unwrap().credentials();
    let page = client()
        .get(format!("{}/services/oauth2/authorize", base(&sb)))
        .query(&[
            ("response_type", "code"),
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", "http://localhost:9/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let r = client()
        .post(format!("{}/services/oauth2/authorize", base(&sb)))
        .form(&[
            ("response_type", "code"),
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", "http://localhost:9/cb"),
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
        .post(format!("{}/services/oauth2/token", base(&sb)))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("redirect_uri", "http://localhost:9/cb"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(t["instance_url"], base(&sb));
    assert!(t["signature"].is_string() && t["issued_at"].is_string());
    for _ in 0..2 {
        let r: Value = client()
            .post(format!("{}/services/oauth2/token", base(&sb)))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(r["access_token"].is_string());
        assert!(r.get("refresh_token").is_none());
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_soql_batches_follow_next_records_url_until_done() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 5,
            size: DemoSize {
                companies: 2_500,
                ..DemoSize::default()
            },
        },
        ..SandboxConfig::default()
    })
    .await;
    let token = session(&sb).await;
    let r: Value = soql(&sb, &token, "SELECT Id, Name FROM Account")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["totalSize"], 2_500);
    assert_eq!(r["done"], false);
    assert_eq!(r["records"].as_array().unwrap().len(), 2_000);
    let next = r["nextRecordsUrl"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{V}/query/01g")) && next.ends_with("-2000"),
        "{next}"
    );
    let rec = &r["records"][0];
    assert_eq!(rec["attributes"]["type"], "Account");
    assert_eq!(
        rec["attributes"]["url"],
        format!("{V}/sobjects/Account/{}", rec["Id"].as_str().unwrap())
    );
    assert_eq!(rec["Id"].as_str().unwrap().len(), 18);
    let r2: Value = get(&sb, &token, next).await.json().await.unwrap();
    assert_eq!(r2["done"], true);
    assert_eq!(
        r2["totalSize"], 2_500,
        "every batch repeats the query's totalSize"
    );
    assert!(r2.get("nextRecordsUrl").is_none());
    let ids: HashSet<String> = r["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r2["records"].as_array().unwrap())
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2_500);
    // A locator is gone once its last batch was read.
    assert_eq!(get(&sb, &token, next).await.status(), 400);
    let small: Value = client()
        .get(format!("{}{V}/query", base(&sb)))
        .query(&[("q", "SELECT Id FROM Account LIMIT 700")])
        .header("Sforce-Query-Options", "batchSize=200")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(small["records"].as_array().unwrap().len(), 200);
    assert_eq!(small["totalSize"], 700);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_soql_incremental_on_systemmodstamp_returns_only_changes() {
    let sb = start(sized(20)).await;
    let token = session(&sb).await;
    let r: Value = soql(&sb, &token, "SELECT Id FROM Contact WHERE SystemModstamp > 2030-01-01T00:00:00Z ORDER BY SystemModstamp").await.json().await.unwrap();
    assert_eq!(r["totalSize"], 0);
    let all: Value = soql(
        &sb,
        &token,
        "SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp ASC",
    )
    .await
    .json()
    .await
    .unwrap();
    let stamps: Vec<&str> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SystemModstamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    assert!(stamps[0].ends_with("+0000"));
    let target = all["records"][3]["Id"].as_str().unwrap().to_string();
    sb.advance_clock(Duration::from_secs(5 * 365 * 86_400));
    let token = session(&sb).await;
    assert_eq!(
        send(
            &sb,
            &token,
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Contact/{target}"),
            json!({"Title": "Changed"})
        )
        .await
        .status(),
        204
    );
    let r: Value = soql(&sb, &token, "SELECT Id, Title, LastModifiedDate FROM Contact WHERE SystemModstamp > 2030-01-01T00:00:00Z ORDER BY SystemModstamp").await.json().await.unwrap();
    assert_eq!(r["totalSize"], 1);
    assert_eq!(r["records"][0]["Id"], target.as_str());
    assert_eq!(r["records"][0]["Title"], "Changed");
    let r: Value = soql(&sb, &token, "SELECT Id FROM Contact WHERE LastModifiedDate >= 2025-06-01T00:00:00.000+0000 AND Title = 'changed'").await.json().await.unwrap();
    assert_eq!(r["totalSize"], 1, "string comparison is case-insensitive");
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_malformed_or_unknown_queries_are_400_with_codes() {
    let sb = start(sized(3)).await;
    let token = session(&sb).await;
    let cases = [
        ("SELECT Id FORM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
        ("SELECT Nope FROM Account", "INVALID_FIELD"),
        (
            "SELECT Id FROM Account OFFSET 2001",
            "NUMBER_OUTSIDE_VALID_RANGE",
        ),
    ];
    for (q, code) in cases {
        let r = soql(&sb, &token, q).await;
        assert_eq!(r.status(), 400, "{q}");
        let b: Value = r.json().await.unwrap();
        assert!(b.is_array(), "errors are arrays");
        assert_eq!(b[0]["errorCode"], code, "{q}");
    }
    let c: Value = soql(&sb, &token, "SELECT COUNT() FROM Lead")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c, json!({"totalSize": 3, "done": true, "records": []}));
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_records_are_cross_referenced_through_parent_fields() {
    let sb = start(sized(6)).await;
    let token = session(&sb).await;
    let r: Value = soql(&sb, &token, "SELECT Id, Email, AccountId, Account.Name, Account.Website FROM Contact ORDER BY Email LIMIT 3").await.json().await.unwrap();
    let c = &r["records"][0];
    assert_eq!(c["Account"]["attributes"]["type"], "Account");
    let domain = c["Account"]["Website"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://www.");
    assert!(c["Email"].as_str().unwrap().ends_with(domain));
    let acc: Value = get(
        &sb,
        &token,
        &format!("{V}/sobjects/Account/{}", c["AccountId"].as_str().unwrap()),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(acc["Name"], c["Account"]["Name"]);
    let emails: Vec<&str> = r["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Email"].as_str().unwrap())
        .collect();
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(emails, sorted);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_crud_answers_with_save_results_and_error_arrays() {
    let sb = start(sized(3)).await;
    let token = session(&sb).await;
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Lead/"),
        json!({"LastName": "Smith", "Company": "Acme", "Email": "jsmith@acme.example"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["success"], true);
    assert_eq!(b["errors"], json!([]));
    let id = b["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("00Q") && id.len() == 18);
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Lead"),
        json!({"Company": "Acme"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}])
    );
    let r = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Lead/{id}"),
        json!({"Email": "nope"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "INVALID_EMAIL_ADDRESS"
    );
    let r = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Lead/{id}"),
        json!({"Name": "x"}),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Contact"),
        json!({"LastName": "X", "AccountId": "001Hs0000zzzzzzAAA"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(matches!(
        r.json::<Value>().await.unwrap()[0]["errorCode"]
            .as_str()
            .unwrap(),
        "INVALID_CROSS_REFERENCE_KEY" | "MALFORMED_ID"
    ));
    let r = get(
        &sb,
        &token,
        &format!("{V}/sobjects/Lead/{id}?fields=LastName,Company"),
    )
    .await;
    let lead: Value = r.json().await.unwrap();
    assert_eq!(lead["LastName"], "Smith");
    assert!(lead.get("Email").is_none());
    assert_eq!(
        client()
            .delete(format!("{}{V}/sobjects/Lead/{id}", base(&sb)))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let r = client()
        .delete(format!("{}{V}/sobjects/Lead/{id}", base(&sb)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "ENTITY_IS_DELETED"
    );
    let r = get(&sb, &token, &format!("{V}/sobjects/Lead/00QHs0000zzzzzz")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "NOT_FOUND"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_upsert_by_external_id_creates_updates_and_reports_ambiguity() {
    let sb = start(sized(3)).await;
    let token = session(&sb).await;
    let path = format!("{V}/sobjects/Account/External_Id__c/EXT-1");
    let r = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &path,
        json!({"Name": "Upserted"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["created"], true);
    let r = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &path,
        json!({"Name": "Upserted again"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["created"], false);
    assert_eq!(updated["id"], created["id"]);
    let old_api = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        "/services/data/v45.0/sobjects/Account/External_Id__c/EXT-1",
        json!({"Phone": "1"}),
    )
    .await;
    assert_eq!(old_api.status(), 204);
    let r = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Account/External_Id__c/EXT-2?updateOnly=true"),
        json!({"Name": "No"}),
    )
    .await;
    assert_eq!(r.status(), 404);
    send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Account"),
        json!({"Name": "Twin", "External_Id__c": "EXT-1"}),
    )
    .await;
    let r = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &path,
        json!({"Name": "Which?"}),
    )
    .await;
    assert_eq!(r.status(), 300);
    assert_eq!(
        r.json::<Value>().await.unwrap().as_array().unwrap().len(),
        2
    );
    let r = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Account/Name/Upserted"),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_collections_return_200_with_per_item_results_in_order() {
    let sb = start(sized(3)).await;
    let token = session(&sb).await;
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/composite/sobjects"),
        json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Account"}, "Name": "A"},
            {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
            {"attributes": {"type": "Contact"}, "LastName": "Ok"},
        ]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b[0]["success"], true);
    assert_eq!(b[1]["success"], false);
    assert_eq!(b[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(b[2]["success"], true);
    let before: Value = soql(&sb, &token, "SELECT COUNT() FROM Account")
        .await
        .json()
        .await
        .unwrap();
    let r: Value = send(&sb, &token, reqwest::Method::POST, &format!("{V}/composite/sobjects"), json!({"allOrNone": true, "records": [{"attributes": {"type": "Account"}, "Name": "B"}, {"attributes": {"type": "Account"}}]})).await.json().await.unwrap();
    assert_eq!(
        r[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(r[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    let after: Value = soql(&sb, &token, "SELECT COUNT() FROM Account")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        before["totalSize"], after["totalSize"],
        "allOrNone rolled everything back"
    );
    let too_many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("N{i}")}))
        .collect();
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/composite/sobjects"),
        json!({"records": too_many}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let chunky: Vec<Value> = (0..11)
        .map(|i| {
            if i % 2 == 0 {
                json!({"attributes": {"type": "Account"}, "Name": "x"})
            } else {
                json!({"attributes": {"type": "Lead"}, "LastName": "x", "Company": "y"})
            }
        })
        .collect();
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/composite/sobjects"),
        json!({"records": chunky}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("chunks"));
    let id = b[0]["id"].as_str().unwrap();
    let r: Value = client()
        .delete(format!(
            "{}{V}/composite/sobjects?ids={id},001Hs0000zzzzzzAAA&allOrNone=false",
            base(&sb)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r[0]["success"], true);
    assert_eq!(r[1]["success"], false);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_collection_upsert_reports_created_per_item() {
    let sb = start(sized(3)).await;
    let token = session(&sb).await;
    let r: Value = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/composite/sobjects/Account/External_Id__c"),
        json!({"allOrNone": false, "records": [{"attributes": {"type": "Account"}, "External_Id__c": "ACC-000001", "Name": "Renamed"}, {"attributes": {"type": "Account"}, "External_Id__c": "NEW-9", "Name": "New"}, {"attributes": {"type": "Contact"}, "External_Id__c": "X", "LastName": "Y"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r[0]["created"], false);
    assert_eq!(r[1]["created"], true);
    assert_eq!(r[2]["success"], false);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_get_updated_and_deleted_enforce_their_windows() {
    let sb = start(sized(4)).await;
    let token = session(&sb).await;
    let all: Value = soql(&sb, &token, "SELECT Id FROM Opportunity")
        .await
        .json()
        .await
        .unwrap();
    let a = all["records"][0]["Id"].as_str().unwrap().to_string();
    let b = all["records"][1]["Id"].as_str().unwrap().to_string();
    send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/sobjects/Opportunity/{a}"),
        json!({"Amount": 10}),
    )
    .await;
    client()
        .delete(format!("{}{V}/sobjects/Opportunity/{b}", base(&sb)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    sb.advance_clock(Duration::from_secs(120));
    let fmt = chrono_like;
    let start_t = fmt(now_s(&sb) - 3_600);
    let end_t = fmt(now_s(&sb) + 3_600);
    let r: Value = client()
        .get(format!("{}{V}/sobjects/Opportunity/updated/", base(&sb)))
        .query(&[("start", &start_t), ("end", &end_t)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ids"], json!([a]));
    assert!(
        r["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    let r: Value = client()
        .get(format!("{}{V}/sobjects/Opportunity/deleted/", base(&sb)))
        .query(&[("start", &start_t), ("end", &end_t)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["deletedRecords"][0]["id"], b.as_str());
    assert!(r["earliestDateAvailable"].is_string());
    let old = fmt(now_s(&sb) - 31 * 86_400);
    let r = client()
        .get(format!("{}{V}/sobjects/Opportunity/updated/", base(&sb)))
        .query(&[("start", &old), ("end", &end_t)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "INVALID_REPLICATION_DATE"
    );
    let old = fmt(now_s(&sb) - 16 * 86_400);
    let r = client()
        .get(format!("{}{V}/sobjects/Opportunity/deleted/", base(&sb)))
        .query(&[("start", &old), ("end", &end_t)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // queryAll sees the deleted row.
    let r: Value = client()
        .get(format!("{}{V}/queryAll", base(&sb)))
        .query(&[(
            "q",
            "SELECT Id, IsDeleted FROM Opportunity WHERE IsDeleted = true",
        )])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["records"][0]["Id"], b.as_str());
    sb.shutdown().await;
}

/// Unix seconds to `YYYY-MM-DDTHH:MM:SS+00:00` without a date crate.
fn chrono_like(s: i64) -> String {
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        sod / 3_600,
        sod % 3_600 / 60,
        sod % 60
    )
}

#[tokio::test]
async fn salesforce_limit_info_counts_calls_and_403_after_the_daily_allocation() {
    let mut config = sized(3);
    config.salesforce.daily_api_requests = 3;
    let sb = start(config).await;
    let token = session(&sb).await;
    let r = get(&sb, &token, &format!("{V}/limits")).await;
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/3");
    let limits: Value = r.json().await.unwrap();
    assert_eq!(limits["DailyApiRequests"]["Max"], 3);
    assert_eq!(limits["DailyApiRequests"]["Remaining"], 2);
    get(&sb, &token, &format!("{V}/limits")).await;
    get(&sb, &token, &format!("{V}/limits")).await;
    let r = get(&sb, &token, &format!("{V}/limits")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "REQUEST_LIMIT_EXCEEDED"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_bulk_ingest_job_moves_through_states_and_reports_per_row_results() {
    let sb = start(sized(3)).await;
    let token = session(&sb).await;
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/jobs/ingest"),
        json!({"object": "Widget__c", "operation": "insert"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let job: Value = send(&sb, &token, reqwest::Method::POST, &format!("{V}/jobs/ingest"), json!({"object": "Account", "operation": "upsert", "externalIdFieldName": "External_Id__c", "contentType": "CSV", "lineEnding": "LF"})).await.json().await.unwrap();
    assert_eq!(job["state"], "Open");
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750") && id.len() == 18);
    let csv = "External_Id__c,Name,AnnualRevenue\nACC-000001,\"Renamed, Inc\",5000\nNEW-1,Brand New,\nNEW-2,,10\n";
    let up = client()
        .put(format!("{}{V}/jobs/ingest/{id}/batches", base(&sb)))
        .bearer_auth(&token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
    let closed: Value = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/jobs/ingest/{id}"),
        json!({"state": "UploadComplete"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(closed["state"], "UploadComplete");
    let late = client()
        .put(format!("{}{V}/jobs/ingest/{id}/batches", base(&sb)))
        .bearer_auth(&token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(
        late.status(),
        409,
        "data can only be uploaded while the job is Open"
    );
    let mut info = Value::Null;
    for _ in 0..100 {
        info = get(&sb, &token, &format!("{V}/jobs/ingest/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if info["state"] == "JobComplete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(info["numberRecordsFailed"], 1);
    let ok = get(
        &sb,
        &token,
        &format!("{V}/jobs/ingest/{id}/successfulResults"),
    )
    .await
    .text()
    .await
    .unwrap();
    let lines: Vec<&str> = ok.lines().collect();
    assert_eq!(
        lines[0],
        "\"sf__Id\",\"sf__Created\",\"External_Id__c\",\"Name\",\"AnnualRevenue\""
    );
    assert!(
        lines[1].contains("\"false\",\"ACC-000001\",\"Renamed, Inc\""),
        "{ok}"
    );
    assert!(lines[2].contains("\"true\",\"NEW-1\""), "{ok}");
    let failed = get(&sb, &token, &format!("{V}/jobs/ingest/{id}/failedResults"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        failed
            .lines()
            .nth(1)
            .unwrap()
            .contains("REQUIRED_FIELD_MISSING"),
        "{failed}"
    );
    let acc: Value = get(
        &sb,
        &token,
        &format!("{V}/sobjects/Account/External_Id__c/ACC-000001"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(acc["Name"], "Renamed, Inc");
    assert_eq!(acc["AnnualRevenue"], 5000.0);
    // An aborted job reports its rows as unprocessed.
    let job: Value = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/jobs/ingest"),
        json!({"object": "Lead", "operation": "insert"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id2 = job["id"].as_str().unwrap();
    client()
        .put(format!("{}{V}/jobs/ingest/{id2}/batches", base(&sb)))
        .bearer_auth(&token)
        .header("Content-Type", "text/csv")
        .body("LastName,Company\nA,B\n")
        .send()
        .await
        .unwrap();
    let aborted: Value = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/jobs/ingest/{id2}"),
        json!({"state": "Aborted"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(aborted["state"], "Aborted");
    let un = get(
        &sb,
        &token,
        &format!("{V}/jobs/ingest/{id2}/unprocessedrecords"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(un, "\"LastName\",\"Company\"\n\"A\",\"B\"\n");
    let bad = send(
        &sb,
        &token,
        reqwest::Method::PATCH,
        &format!("{V}/jobs/ingest/{id2}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_bulk_query_job_pages_csv_results_with_sforce_locator() {
    let sb = start(sized(25)).await;
    let token = session(&sb).await;
    let bad = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/jobs/query"),
        json!({"operation": "query", "query": "SELECT Id FORM Contact"}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()[0]["errorCode"],
        "MALFORMED_QUERY"
    );
    let job: Value = send(&sb, &token, reqwest::Method::POST, &format!("{V}/jobs/query"), json!({"operation": "query", "query": "SELECT Id, Name, Account.Name FROM Contact WHERE Email LIKE '%.example'"})).await.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["jobType"], "V2Query");
    let early = get(&sb, &token, &format!("{V}/jobs/query/{id}/results")).await;
    assert_eq!(early.status(), 400, "results wait for JobComplete");
    for _ in 0..100 {
        let info: Value = get(&sb, &token, &format!("{V}/jobs/query/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if info["state"] == "JobComplete" {
            assert_eq!(info["numberRecordsProcessed"], 25);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut rows = Vec::new();
    let mut locator: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &locator {
            None => format!("{V}/jobs/query/{id}/results?maxRecords=10"),
            Some(l) => format!("{V}/jobs/query/{id}/results?maxRecords=10&locator={l}"),
        };
        let r = get(&sb, &token, &path).await;
        assert_eq!(r.status(), 200);
        let next = r.headers()["sforce-locator"].to_str().unwrap().to_string();
        let n: usize = r.headers()["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let text = r.text().await.unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), "\"Id\",\"Name\",\"Account.Name\"");
        let page: Vec<String> = lines.map(str::to_string).collect();
        assert_eq!(page.len(), n);
        rows.extend(page);
        pages += 1;
        if next == "null" {
            break;
        }
        locator = Some(next);
    }
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 25);
    assert!(
        rows.iter()
            .all(|r| r.split("\",\"").count() == 3 && r.starts_with("\"003"))
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_batch_size_header_with_a_small_configured_batch_answers_instead_of_panicking() {
    let mut config = sized(30);
    config.salesforce.query_batch_size = 10;
    let sb = start(config).await;
    let token = session(&sb).await;
    let r = client()
        .get(format!("{}{V}/query", base(&sb)))
        .query(&[("q", "SELECT Id FROM Account")])
        .header("Sforce-Query-Options", "batchSize=500")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["records"].as_array().unwrap().len(),
        10,
        "the configured batch size caps the requested one"
    );
    assert_eq!(body["done"], false);
    sb.shutdown().await;
}

#[tokio::test]
async fn salesforce_task_links_a_contact_or_lead_and_an_opportunity_or_account() {
    let sb = start(sized(3)).await;
    let token = session(&sb).await;
    let first = |q: &'static str| {
        let (sb, token) = (&sb, &token);
        async move {
            soql(sb, token, q).await.json::<Value>().await.unwrap()["records"][0]["Id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (lead, account, contact) = (
        first("SELECT Id FROM Lead").await,
        first("SELECT Id FROM Account").await,
        first("SELECT Id FROM Contact").await,
    );
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Task"),
        json!({"Subject": "Call", "WhoId": lead}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Task"),
        json!({"Subject": "Call", "WhoId": contact, "WhatId": account, "External_Id__c": "conv-1"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = send(
        &sb,
        &token,
        reqwest::Method::POST,
        &format!("{V}/sobjects/Task"),
        json!({"Subject": "Call", "WhoId": account}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()[0]["errorCode"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
    let r: Value = soql(
        &sb,
        &token,
        "SELECT Id, WhoId, WhatId FROM Task WHERE External_Id__c = 'conv-1'",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (&r["records"][0]["WhoId"], &r["records"][0]["WhatId"]),
        (&json!(contact), &json!(account))
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn responses_name_headers_as_salesforce_does() {
    let sb = start(SandboxConfig::default()).await;
    let token = session(&sb).await;
    let auth = format!("Bearer {token}");
    let head = raw_response_head(
        &base(&sb),
        "GET",
        &format!("{V}/sobjects/Account/describe"),
        &[("Authorization", &auth)],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let names = header_names(&head);
    for wanted in ["Content-Type", "Sforce-Limit-Info", "Date"] {
        assert!(names.contains(&wanted), "no {wanted} in:\n{head}");
    }
    sb.shutdown().await;
}
