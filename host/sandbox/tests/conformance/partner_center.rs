//! Partner Center referrals emulator conformance (crm-apis.md §7 and §8 "Partner Center").

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use weft_sandbox::{DemoData, DemoSize, Sandbox, SandboxConfig, Vendor};

use crate::support::{Receiver, admin_post, client, fast_webhooks, start};

fn base(sb: &Sandbox) -> String {
    sb.vendor(Vendor::PartnerCenter)
        .unwrap()
        .base_url()
        .to_string()
}

fn sized(n: u64) -> SandboxConfig {
    SandboxConfig {
        data: DemoData {
            seed: 21,
            size: DemoSize::uniform(n),
        },
        ..SandboxConfig::default()
    }
}

async fn user_token(sb: &Sandbox) -> String {
    let c = sb.vendor(Vendor::PartnerCenter).unwrap().credentials();
    let r: Value = client()
        .post(format!("{}/common/oauth2/token", base(sb)))
        .form(&[
            ("resource", "https://api.partner.microsoft.com"),
            ("grant_type", "password"),
            ("scope", "openid"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("username", &c.username),
            ("password", &c.extra["password"]),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["expires_in"], "3599",
        "expires_in is a string on this endpoint"
    );
    assert_eq!(r["resource"], "https://api.partner.microsoft.com");
    r["access_token"].as_str().unwrap().to_string()
}

async fn get(sb: &Sandbox, t: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", base(sb)))
        .bearer_auth(t)
        .send()
        .await
        .unwrap()
}

fn new_referral() -> Value {
    json!({"name": "Contoso Test Deal - [Private]", "qualification": "SalesQualified", "type": "Independent",
        "customerProfile": {"name": "Contoso Customer Inc", "size": "10to50employees", "address": {"addressLine1": "One Microsoft Way", "city": "Redmond", "state": "WA", "postalCode": "98052", "country": "US"},
            "team": [{"firstName": "Jane", "lastName": "Smith", "email": "jane@contoso.example", "phoneNumber": "+12065550100"}]},
        "consent": {"consentToShareReferralWithMicrosoftSellers": false},
        "details": {"dealValue": 120000, "currency": "USD", "closingDateTime": "2026-12-31T00:00:00Z", "notes": "Cloud migration"}})
}

#[tokio::test]
async fn partner_center_listing_needs_an_app_plus_user_token() {
    let sb = start(sized(4)).await;
    let c = sb.vendor(Vendor::PartnerCenter).unwrap().credentials();
    let app: Value = client()
        .post(format!(
            "{}/{}/oauth2/token",
            base(&sb),
            c.extra["tenant_id"]
        ))
        .form(&[
            ("resource", "https://api.partner.microsoft.com"),
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = get(
        &sb,
        app["access_token"].as_str().unwrap(),
        "/v1.0/engagements/referrals",
    )
    .await;
    assert_eq!(r.status(), 403);
    let bad = client()
        .post(format!("{}/common/oauth2/token", base(&sb)))
        .form(&[
            ("resource", "https://api.partner.microsoft.com"),
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("username", &c.username),
            ("password", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error_codes"],
        json!([50126])
    );
    let t = user_token(&sb).await;
    let r: Value = get(&sb, &t, "/v1.0/engagements/referrals")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["@odata.count"], 4);
    assert!(r["value"][0]["eTag"].is_string());
    assert!(
        r["value"][0]["links"]["self"]["uri"]
            .as_str()
            .unwrap()
            .contains("/v1.0/engagements/referrals/")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn partner_center_demo_refresh_token_gives_app_plus_user_tokens_and_survives_reset() {
    let sb = start(sized(3)).await;
    let c = sb.vendor(Vendor::PartnerCenter).unwrap().credentials();
    let refresh = c
        .refresh_token
        .clone()
        .expect("a demo refresh token is published");
    let exchange = || async {
        client()
            .post(format!(
                "{}/{}/oauth2/token",
                base(&sb),
                c.extra["tenant_id"]
            ))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ])
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let t = exchange().await;
    let r = get(
        &sb,
        t["access_token"].as_str().unwrap(),
        "/v1.0/engagements/referrals",
    )
    .await;
    assert_eq!(
        r.status(),
        200,
        "a token refreshed from the demo grant is App+User and may list"
    );
    admin_post(&sb, "/admin/reset", json!({"vendor": "partner-center"})).await;
    assert!(
        exchange().await["access_token"].is_string(),
        "a reset issues the demo refresh token again"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn partner_center_list_filters_nested_paths_lambdas_and_pages() {
    let sb = start(sized(10)).await;
    let t = user_token(&sb).await;
    let all: Value = get(&sb, &t, "/v1.0/engagements/referrals")
        .await
        .json()
        .await
        .unwrap();
    let first = &all["value"][0];
    let country = first["customerProfile"]["address"]["country"]
        .as_str()
        .unwrap();
    let r: Value = client()
        .get(format!("{}/v1.0/engagements/referrals", base(&sb)))
        .query(&[(
            "$filter",
            format!(
                "customerProfile/address/country eq '{country}' and status eq '{}'",
                first["status"].as_str().unwrap()
            ),
        )])
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        r["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["customerProfile"]["address"]["country"] == country)
    );
    assert!(
        r["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == first["id"])
    );
    let r: Value = client()
        .get(format!("{}/v1.0/engagements/referrals", base(&sb)))
        .query(&[("$filter", "team/any(t:t/email eq 'nobody@nowhere.example')")])
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["@odata.count"], 0);
    let r: Value = client()
        .get(format!("{}/v1.0/engagements/referrals", base(&sb)))
        .query(&[("$orderby", "createdDateTime desc"), ("$top", "3")])
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dates: Vec<&str> = r["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["createdDateTime"].as_str().unwrap())
        .collect();
    assert_eq!(dates.len(), 3);
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    let next = r["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$skiptoken="));
    let r2: Value = client()
        .get(next)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(r2["value"][0]["id"], r["value"][0]["id"]);
    let bad = client()
        .get(format!("{}/v1.0/engagements/referrals", base(&sb)))
        .query(&[("$orderby", "name")])
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn partner_center_create_validates_required_fields_and_codes() {
    let sb = start(sized(2)).await;
    let t = user_token(&sb).await;
    let post = |body: Value| {
        let url = format!("{}/v1.0/engagements/referrals", base(&sb));
        let t = t.clone();
        async move {
            client()
                .post(url)
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let mut missing = new_referral();
    missing.as_object_mut().unwrap().remove("consent");
    let r = post(missing).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["description"]
            .as_str()
            .unwrap()
            .contains("consent")
    );
    let mut alpha3 = new_referral();
    alpha3["customerProfile"]["address"]["country"] = json!("USA");
    assert_eq!(post(alpha3).await.status(), 400);
    let mut bad_type = new_referral();
    bad_type["type"] = json!("Private");
    assert_eq!(post(bad_type).await.status(), 400);
    let r = post(new_referral()).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], "New");
    assert_eq!(created["substatus"], "Pending");
    assert_eq!(created["direction"], "Outgoing");
    assert!(created["engagementId"].is_string());
    sb.shutdown().await;
}

#[tokio::test]
async fn partner_center_patch_enforces_if_match_json_patch_and_the_state_machine() {
    let sb = start(sized(2)).await;
    let t = user_token(&sb).await;
    let created: Value = client()
        .post(format!("{}/v1.0/engagements/referrals", base(&sb)))
        .bearer_auth(&t)
        .json(&new_referral())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let etag = created["eTag"].as_str().unwrap().to_string();
    let patch = |ops: Value, etag: Option<String>, representation: bool| {
        let url = format!("{}/v1.0/engagements/referrals/{id}", base(&sb));
        let t = t.clone();
        async move {
            let mut r = client().patch(url).bearer_auth(t).json(&ops);
            if let Some(e) = etag {
                r = r.header("If-Match", e);
            }
            if representation {
                r = r.header("Prefer", "return=representation");
            }
            r.send().await.unwrap()
        }
    };
    let r = patch(json!([{"op": "replace", "path": "/status", "value": "Active"}, {"op": "replace", "path": "/substatus", "value": "Accepted"}, {"op": "replace", "path": "/details/dealValue", "value": 10000}, {"op": "add", "path": "/team/-", "value": {"email": "jane.doe@contoso.example", "firstName": "Jane", "lastName": "Doe"}}]), Some(etag.clone()), true).await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["status"], "Active");
    assert!(updated["acceptedDateTime"].is_string());
    assert_eq!(updated["details"]["dealValue"], 10000);
    assert_eq!(
        updated["team"][0]["email"], "jane.doe@contoso.example",
        "add /team/- appends to the partner team"
    );
    assert_ne!(
        updated["eTag"],
        etag.as_str(),
        "the eTag changes on every update"
    );
    let stale = patch(
        json!([{"op": "replace", "path": "/details/notes", "value": "x"}]),
        Some(etag),
        false,
    )
    .await;
    assert_eq!(stale.status(), 412);
    let back = patch(json!([{"op": "replace", "path": "/status", "value": "New"}, {"op": "replace", "path": "/substatus", "value": "Pending"}]), None, false).await;
    assert_eq!(back.status(), 400);
    assert_eq!(
        back.json::<Value>().await.unwrap()["code"],
        "InvalidStatusTransition"
    );
    let wrong_sub = patch(
        json!([{"op": "replace", "path": "/substatus", "value": "Won"}]),
        None,
        false,
    )
    .await;
    assert_eq!(wrong_sub.status(), 400);
    let remove = patch(
        json!([{"op": "remove", "path": "/details/notes"}]),
        None,
        false,
    )
    .await;
    assert_eq!(remove.status(), 400);
    let close = patch(json!([{"op": "replace", "path": "/status", "value": "Closed"}, {"op": "replace", "path": "/substatus", "value": "Won"}]), None, false).await;
    assert_eq!(close.status(), 204);
    let after: Value = get(&sb, &t, &format!("/v1.0/engagements/referrals/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(after["closedDateTime"].is_string());
    let reopen = patch(json!([{"op": "replace", "path": "/status", "value": "Active"}, {"op": "replace", "path": "/substatus", "value": "Accepted"}]), None, false).await;
    assert_eq!(reopen.status(), 400, "Closed is final");
    sb.shutdown().await;
}

#[tokio::test]
async fn partner_center_unanswered_incoming_referral_expires_after_14_days() {
    let sb = start(sized(1)).await;
    let t = user_token(&sb).await;
    let incoming = admin_post(
        &sb,
        "/admin/vendors/partner-center/actions/incoming-referral",
        json!({"name": "From Microsoft"}),
    )
    .await;
    assert_eq!(incoming["direction"], "Incoming");
    let id = incoming["id"].as_str().unwrap().to_string();
    sb.advance_clock(Duration::from_secs(15 * 24 * 3_600));
    let t2 = user_token(&sb).await;
    let _ = t;
    let r: Value = get(&sb, &t2, &format!("/v1.0/engagements/referrals/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "Closed");
    assert_eq!(r["substatus"], "Expired");
    assert!(r["closedDateTime"].is_string());
    sb.shutdown().await;
}

#[tokio::test]
async fn partner_center_webhooks_register_once_and_send_signed_pointers() {
    let sb = start(fast_webhooks(sized(2))).await;
    let t = user_token(&sb).await;
    let rx = Receiver::start(0).await;
    let reg = json!({"WebhookUrl": format!("{}/pc", rx.url), "WebhookEvents": ["referral-created", "referral-updated", "related-referral-created", "related-referral-updated"]});
    let r = client()
        .post(format!("{}/webhooks/v1/registration", base(&sb)))
        .bearer_auth(&t)
        .json(&reg)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["SubscriberId"].is_string());
    let again = client()
        .post(format!("{}/webhooks/v1/registration", base(&sb)))
        .bearer_auth(&t)
        .json(&reg)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        409,
        "one registration per partner; replace it with PUT"
    );
    let r = client()
        .put(format!("{}/webhooks/v1/registration", base(&sb)))
        .bearer_auth(&t)
        .json(&reg)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bad = client()
        .put(format!("{}/webhooks/v1/registration", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"WebhookUrl": rx.url, "WebhookEvents": ["opportunity-won"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let created: Value = client()
        .post(format!("{}/v1.0/engagements/referrals", base(&sb)))
        .bearer_auth(&t)
        .json(&new_referral())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got = rx.wait_for(1).await;
    let ev = got[0].json();
    assert_eq!(ev["EventName"], "referral-created");
    assert_eq!(ev["ResourceName"], "referral");
    assert!(
        ev["ResourceUri"]
            .as_str()
            .unwrap()
            .ends_with(created["id"].as_str().unwrap()),
        "events carry a pointer, not the referral"
    );
    assert!(ev.get("status").is_none());
    assert_eq!(
        got[0].header("x-ms-signature-algorithm").unwrap(),
        "rsa-sha256"
    );
    let sig = got[0].header("authorization").unwrap();
    let sig = STANDARD
        .decode(sig.strip_prefix("Signature ").unwrap())
        .unwrap();
    let cert_url = got[0].header("x-ms-certificate-url").unwrap();
    let cert = client()
        .get(&cert_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        weft_sandbox::verify::rsa_sha256(&cert, &got[0].body, &sig).unwrap(),
        "signature verifies with the certificate at X-MS-Certificate-Url"
    );
    assert!(!weft_sandbox::verify::rsa_sha256(&cert, b"tampered", &sig).unwrap());
    let ca = sb
        .vendor(Vendor::PartnerCenter)
        .unwrap()
        .credentials()
        .extra["webhook_test_ca_pem"]
        .clone();
    assert!(ca.contains("BEGIN CERTIFICATE"));
    let r = client()
        .delete(format!("{}/webhooks/v1/registration", base(&sb)))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    sb.shutdown().await;
}

#[tokio::test]
async fn partner_center_validation_events_are_throttled_and_report_delivery() {
    let sb = start(fast_webhooks(sized(1))).await;
    let t = user_token(&sb).await;
    let rx = Receiver::start(0).await;
    let r = client()
        .post(format!(
            "{}/webhooks/v1/registration/validationEvents",
            base(&sb)
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "needs a test-created registration");
    client()
        .post(format!("{}/webhooks/v1/registration", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"WebhookUrl": rx.url, "WebhookEvents": ["test-created"]}))
        .send()
        .await
        .unwrap();
    let first: Value = client()
        .post(format!(
            "{}/webhooks/v1/registration/validationEvents",
            base(&sb)
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    client()
        .post(format!(
            "{}/webhooks/v1/registration/validationEvents",
            base(&sb)
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let third = client()
        .post(format!(
            "{}/webhooks/v1/registration/validationEvents",
            base(&sb)
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
    rx.wait_for(2).await;
    let id = first["correlationId"].as_str().unwrap();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = get(
            &sb,
            &t,
            &format!("/webhooks/v1/registration/validationEvents/{id}"),
        )
        .await
        .json()
        .await
        .unwrap();
        if status["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status["status"], "completed");
    assert_eq!(status["results"][0]["responseCode"], "200");
    assert_eq!(rx.received()[0].json()["EventName"], "test-created");
    sb.shutdown().await;
}

#[tokio::test]
async fn partner_center_expired_token_gets_401() {
    let sb = start(sized(1)).await;
    let t = user_token(&sb).await;
    assert_eq!(
        get(&sb, &t, "/v1.0/engagements/referrals").await.status(),
        200
    );
    sb.advance_clock(Duration::from_secs(3_600));
    let r = get(&sb, &t, "/v1.0/engagements/referrals").await;
    assert_eq!(r.status(), 401);
    assert!(
        r.json::<Value>().await.unwrap()["description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    sb.shutdown().await;
}
