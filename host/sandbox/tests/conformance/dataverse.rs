//! Dataverse (Dynamics 365) emulator conformance (crm-apis.md §5 and §8 "Dataverse").

use std::time::Duration;

use serde_json::{Value, json};
use weft_sandbox::{DemoData, DemoSize, FaultConfig, Sandbox, SandboxConfig, Vendor};

use crate::support::{Receiver, client, fast_webhooks, start};

const API: &str = "/api/data/v9.2";

fn base(sb: &Sandbox) -> String {
    sb.vendor(Vendor::Dataverse).unwrap().base_url().to_string()
}

fn sized(n: u64) -> SandboxConfig {
    SandboxConfig {
        data: DemoData {
            seed: 9,
            size: DemoSize::uniform(n),
        },
        ..SandboxConfig::default()
    }
}

async fn token_response(sb: &Sandbox, form: &[(&str, &str)], v2: bool) -> reqwest::Response {
    let c = sb.vendor(Vendor::Dataverse).unwrap().credentials();
    let path = if v2 {
        "oauth2/v2.0/token"
    } else {
        "oauth2/token"
    };
    client()
        .post(format!("{}/{}/{path}", base(sb), c.extra["tenant_id"]))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn token(sb: &Sandbox) -> String {
    let c = sb.vendor(Vendor::Dataverse).unwrap().credentials();
    let scope = c.extra["scope"].clone();
    let r = token_response(
        sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("scope", &scope),
        ],
        true,
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn get(sb: &Sandbox, t: &str, path: &str, prefer: Option<&str>) -> reqwest::Response {
    let mut r = client()
        .get(format!("{}{API}{path}", base(sb)))
        .bearer_auth(t);
    if let Some(p) = prefer {
        r = r.header("Prefer", p);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn dataverse_client_credentials_for_the_org_scope_and_aadsts_errors() {
    let sb = start(sized(3)).await;
    let c = sb.vendor(Vendor::Dataverse).unwrap().credentials();
    let scope = c.extra["scope"].clone();
    let r: Value = token_response(
        &sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("scope", "https://weft-sandbox.crm.dynamics.com/.default"),
        ],
        true,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["token_type"], "Bearer");
    assert_eq!(r["expires_in"], 3599);
    assert!(r.get("refresh_token").is_none());
    assert_eq!(
        r["access_token"].as_str().unwrap().split('.').count(),
        3,
        "Entra access tokens are JWTs"
    );
    let r = token_response(
        &sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", "wrong"),
            ("scope", &scope),
        ],
        true,
    )
    .await;
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"], "invalid_client");
    assert_eq!(b["error_codes"], json!([7000215]));
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    let r: Value = token_response(
        &sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("scope", "https://other.crm.dynamics.com/.default"),
        ],
        true,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["error"], "invalid_scope");
    let r: Value = token_response(
        &sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("resource", &base(&sb)),
        ],
        false,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        r["expires_in"], "3599",
        "the v1 endpoint writes numbers as strings"
    );
    let me: Value = get(&sb, r["access_token"].as_str().unwrap(), "/WhoAmI", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(me["UserId"].is_string() && me["OrganizationId"].is_string());
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_expired_token_gets_401_with_www_authenticate() {
    let sb = start(sized(3)).await;
    let t = token(&sb).await;
    assert_eq!(get(&sb, &t, "/accounts", None).await.status(), 200);
    sb.advance_clock(Duration::from_secs(3_600));
    let r = get(&sb, &t, "/accounts", None).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=invalid_token")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_maxpagesize_pages_with_skiptoken_and_rejects_skip() {
    let sb = start(sized(12)).await;
    let t = token(&sb).await;
    let mut url = format!("{}{API}/accounts?$select=name,accountnumber", base(&sb));
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let r = client()
            .get(&url)
            .bearer_auth(&t)
            .header("Prefer", "odata.maxpagesize=5")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["preference-applied"], "odata.maxpagesize=5");
        let b: Value = r.json().await.unwrap();
        pages += 1;
        for row in b["value"].as_array().unwrap() {
            assert!(row["@odata.etag"].as_str().unwrap().starts_with("W/\""));
            assert!(row["accountid"].is_string());
            names.push(row["name"].as_str().unwrap().to_string());
        }
        match b.get("@odata.nextLink") {
            Some(n) => {
                let n = n.as_str().unwrap();
                assert!(n.contains("$skiptoken=%3Ccookie"), "{n}");
                url = n.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 12);
    let r = get(&sb, &t, "/accounts", Some("odata.maxpagesize=10000")).await;
    assert_eq!(
        r.headers()["preference-applied"],
        "odata.maxpagesize=5000",
        "larger page sizes are capped, not rejected"
    );
    let r = get(&sb, &t, "/accounts?$skip=5", None).await;
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["error"]["code"]
            .as_str()
            .unwrap()
            .starts_with("0x")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_filter_orderby_top_and_count() {
    let sb = start(sized(20)).await;
    let t = token(&sb).await;
    let r: Value = get(&sb, &t, "/contacts?$select=fullname,emailaddress1&$filter=contains(emailaddress1,'.example')&$orderby=emailaddress1 desc&$top=4&$count=true", None).await.json().await.unwrap();
    let emails: Vec<&str> = r["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["emailaddress1"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 4);
    assert!(
        emails
            .windows(2)
            .all(|w| w[0].to_lowercase() >= w[1].to_lowercase())
    );
    assert_eq!(r["@odata.count"], 20);
    assert!(r.get("@odata.nextLink").is_none(), "$top ends the result");
    let r = get(&sb, &t, "/contacts?$filter=nosuchcolumn eq 'x'", None).await;
    assert_eq!(r.status(), 400);
    let r = get(&sb, &t, "/contacts?$filter=lastname eq", None).await;
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_create_answers_204_with_entity_id_or_201_with_representation() {
    let sb = start(sized(3)).await;
    let t = token(&sb).await;
    let r = client()
        .post(format!("{}{API}/accounts", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"name": "Contoso"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let entity_id = r.headers()["odata-entityid"].to_str().unwrap().to_string();
    assert!(entity_id.starts_with(&format!("{}{API}/accounts(", base(&sb))));
    let r = client()
        .get(&entity_id)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Contoso");
    let accounts: Value = get(&sb, &t, "/accounts?$top=1", None)
        .await
        .json()
        .await
        .unwrap();
    let acc = accounts["value"][0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client()
        .post(format!("{}{API}/contacts", base(&sb)))
        .bearer_auth(&t)
        .header("Prefer", "return=representation")
        .json(&json!({"firstname": "Jane", "lastname": "Smith", "emailaddress1": "jane@contoso.example", "parentcustomerid_account@odata.bind": format!("/accounts({acc})")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#contacts/$entity")
    );
    assert_eq!(b["_parentcustomerid_value"], acc.as_str());
    assert_eq!(b["fullname"], "Jane Smith");
    let r = client().post(format!("{}{API}/contacts", base(&sb))).bearer_auth(&t).json(&json!({"lastname": "X", "parentcustomerid_account@odata.bind": "/accounts(acc00001-0000-4000-8000-00000000ffff)"})).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "0x80040217"
    );
    let r = client()
        .post(format!("{}{API}/accounts", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"nonsense": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .post(format!("{}{API}/accounts", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"revenue": "lots"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_patch_upserts_and_honours_if_match_and_if_none_match() {
    let sb = start(sized(3)).await;
    let t = token(&sb).await;
    let patch = |path: String, body: Value, headers: Vec<(&'static str, String)>| {
        let t = t.clone();
        let url = format!("{}{API}{path}", base(&sb));
        async move {
            let mut r = client().patch(url).bearer_auth(&t).json(&body);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.send().await.unwrap()
        }
    };
    let new_id = "acc00001-0000-4000-8000-000000abcdef";
    assert_eq!(
        patch(
            format!("/accounts({new_id})"),
            json!({"name": "Must exist"}),
            vec![("If-Match", "*".into())]
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        patch(
            format!("/accounts({new_id})"),
            json!({"name": "Upserted"}),
            vec![]
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        patch(
            format!("/accounts({new_id})"),
            json!({"name": "No update"}),
            vec![("If-None-Match", "*".into())]
        )
        .await
        .status(),
        412
    );
    let r = patch(
        format!("/accounts({new_id})"),
        json!({"telephone1": "1"}),
        vec![
            ("If-Match", "*".into()),
            ("Prefer", "return=representation".into()),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let row: Value = r.json().await.unwrap();
    assert_eq!(row["name"], "Upserted");
    let etag = row["@odata.etag"].as_str().unwrap().to_string();
    assert_eq!(
        patch(
            format!("/accounts({new_id})"),
            json!({"telephone1": "2"}),
            vec![("If-Match", etag.clone())]
        )
        .await
        .status(),
        204
    );
    let r = patch(
        format!("/accounts({new_id})"),
        json!({"telephone1": "3"}),
        vec![("If-Match", etag)],
    )
    .await;
    assert_eq!(r.status(), 412, "the etag changed with the last update");
    // Upsert by alternate key: create, then update without duplicating.
    assert_eq!(
        patch(
            "/accounts(accountnumber='A-NEW-1')".into(),
            json!({"name": "By key"}),
            vec![]
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        patch(
            "/accounts(accountnumber='A-NEW-1')".into(),
            json!({"name": "By key again"}),
            vec![]
        )
        .await
        .status(),
        204
    );
    let r: Value = get(
        &sb,
        &t,
        "/accounts?$filter=accountnumber eq 'A-NEW-1'",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["value"].as_array().unwrap().len(), 1);
    assert_eq!(r["value"][0]["name"], "By key again");
    let r = client()
        .post(format!("{}{API}/accounts", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"name": "Dup", "accountnumber": "A-NEW-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "0x80060892"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_change_tracking_returns_changes_and_deletions_through_delta_links() {
    let sb = start(sized(6)).await;
    let t = token(&sb).await;
    let r = get(
        &sb,
        &t,
        "/accounts?$select=name",
        Some("odata.track-changes,odata.maxpagesize=4"),
    )
    .await;
    assert!(
        r.headers()["preference-applied"]
            .to_str()
            .unwrap()
            .contains("odata.track-changes")
    );
    let first: Value = r.json().await.unwrap();
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();
    let second: Value = client()
        .get(&next)
        .bearer_auth(&t)
        .header("Prefer", "odata.track-changes,odata.maxpagesize=4")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["value"].as_array().unwrap().len() + second["value"].as_array().unwrap().len(),
        6
    );
    let delta = second["@odata.deltaLink"].as_str().unwrap().to_string();
    assert!(delta.contains("$deltatoken="));
    let ids: Vec<String> = first["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["accountid"].as_str().unwrap().to_string())
        .collect();
    sb.advance_clock(Duration::from_secs(1));
    client()
        .patch(format!("{}{API}/accounts({})", base(&sb), ids[0]))
        .bearer_auth(&t)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    client()
        .delete(format!("{}{API}/accounts({})", base(&sb), ids[1]))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let changes: Value = client()
        .get(&delta)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        changes["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/$delta")
    );
    let rows = changes["value"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "Renamed");
    assert_eq!(rows[1]["id"], ids[1].as_str());
    assert_eq!(rows[1]["reason"], "deleted");
    assert!(
        rows[1]["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("accounts/$deletedEntity")
    );
    let again: Value = client()
        .get(changes["@odata.deltaLink"].as_str().unwrap())
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["value"].as_array().unwrap().len(),
        0,
        "nothing changed since"
    );
    let r = get(
        &sb,
        &t,
        "/accounts?$filter=name eq 'x'",
        Some("odata.track-changes"),
    )
    .await;
    assert_eq!(r.status(), 400);
    let mut config_age = sized(2);
    config_age.dataverse.delta_token_max_age = Duration::from_secs(60);
    let sb2 = start(config_age).await;
    let t2 = token(&sb2).await;
    let r: Value = get(&sb2, &t2, "/accounts", Some("odata.track-changes"))
        .await
        .json()
        .await
        .unwrap();
    let delta = r["@odata.deltaLink"].as_str().unwrap().to_string();
    sb2.advance_clock(Duration::from_secs(120));
    let t2 = token(&sb2).await;
    let r = client().get(&delta).bearer_auth(&t2).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("full synchronisation"));
    sb.shutdown().await;
    sb2.shutdown().await;
}

#[tokio::test]
async fn dataverse_service_protection_answers_429_with_retry_after_and_code() {
    let mut config = sized(3);
    config.dataverse.requests_per_window = 3;
    let sb = start(config).await;
    let t = token(&sb).await;
    let r = get(&sb, &t, "/accounts", None).await;
    assert_eq!(
        r.headers()["x-ms-ratelimit-burst-remaining-xrm-requests"],
        "2"
    );
    assert!(
        r.headers()
            .contains_key("x-ms-ratelimit-time-remaining-xrm-requests")
    );
    get(&sb, &t, "/accounts", None).await;
    get(&sb, &t, "/accounts", None).await;
    let r = get(&sb, &t, "/accounts", None).await;
    assert_eq!(r.status(), 429);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry));
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "0x80072322");
    assert!(b.get("error").unwrap().get("innererror").is_none());
    sb.advance_clock(Duration::from_secs(301));
    let t = token(&sb).await;
    assert_eq!(get(&sb, &t, "/accounts", None).await.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_execution_time_and_concurrency_limits_use_their_own_codes() {
    let mut config = sized(3);
    config.dataverse.execution_time_per_window = Duration::from_millis(250);
    config.dataverse.concurrent_requests = 1;
    let sb = start(config).await;
    let t = token(&sb).await;
    sb.set_faults(
        Some(Vendor::Dataverse),
        FaultConfig {
            slow: 1.0,
            slow_delay_ms: 300,
            ..FaultConfig::default()
        },
    );
    let (a, b) = tokio::join!(
        get(&sb, &t, "/accounts", None),
        get(&sb, &t, "/accounts", None)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 429]);
    let limited = if a.status() == 429 { a } else { b };
    assert_eq!(
        limited.json::<Value>().await.unwrap()["error"]["code"],
        "0x80072326"
    );
    sb.set_faults(Some(Vendor::Dataverse), FaultConfig::default());
    let r = get(&sb, &t, "/accounts", None).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "0x80072321",
        "300 ms of handling used up the 250 ms budget"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_create_multiple_is_all_or_nothing() {
    let sb = start(sized(3)).await;
    let t = token(&sb).await;
    let url = format!(
        "{}{API}/accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        base(&sb)
    );
    let r = client().post(&url).bearer_auth(&t).json(&json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "A"}, {"@odata.type": "Microsoft.Dynamics.CRM.account", "revenue": "bad"}]})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let count = |sb: &Sandbox, t: &str| {
        let url = format!("{}{API}/accounts/$count", base(sb));
        let t = t.to_string();
        async move {
            client()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(count(&sb, &t).await, "3");
    let r = client().post(&url).bearer_auth(&t).json(&json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "A"}, {"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "B"}]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["Ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(count(&sb, &t).await, "5");
    let r = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&json!({"Targets": [{"name": "untyped"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_webhook_step_posts_remote_execution_context_with_headers() {
    let sb = start(fast_webhooks(sized(3))).await;
    let t = token(&sb).await;
    let rx = Receiver::start(0).await;
    let post = |path: &str, body: Value| {
        let url = format!("{}{API}{path}", base(&sb));
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
    let r = post("/serviceendpoints", json!({"name": "weft", "url": format!("{}/dv", rx.url), "contract": 8, "authtype": 5, "authvalue": "<settings><setting name=\"x-weft-key\" value=\"s3cret\" /></settings>"})).await;
    assert_eq!(r.status(), 204);
    let endpoint = r.headers()["odata-entityid"]
        .to_str()
        .unwrap()
        .rsplit_once('(')
        .unwrap()
        .1
        .trim_end_matches(')')
        .to_string();
    let msgs: Value = get(&sb, &t, "/sdkmessages?$filter=name eq 'Update'", None)
        .await
        .json()
        .await
        .unwrap();
    let msg = msgs["value"][0]["sdkmessageid"]
        .as_str()
        .unwrap()
        .to_string();
    let filters: Value = get(&sb, &t, &format!("/sdkmessagefilters?$filter=primaryobjecttypecode eq 'account' and _sdkmessageid_value eq {msg}"), None).await.json().await.unwrap();
    let filter = filters["value"][0]["sdkmessagefilterid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        "/sdkmessageprocessingsteps",
        json!({"name": "account update", "stage": 40, "mode": 1, "filteringattributes": "name", "sdkmessageid@odata.bind": format!("/sdkmessages({msg})"), "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter})"), "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({endpoint})")}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let accounts: Value = get(&sb, &t, "/accounts?$top=1", None)
        .await
        .json()
        .await
        .unwrap();
    let id = accounts["value"][0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    // Not a filtering attribute: no call.
    client()
        .patch(format!("{}{API}/accounts({id})", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"telephone1": "0"}))
        .send()
        .await
        .unwrap();
    client()
        .patch(format!("{}{API}/accounts({id})", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    let got = rx.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.received().len(), 1);
    let req = &got[0];
    assert_eq!(req.header("x-weft-key").unwrap(), "s3cret");
    assert_eq!(req.header("x-ms-dynamics-entity-name").unwrap(), "account");
    assert_eq!(req.header("x-ms-dynamics-request-name").unwrap(), "update");
    assert!(req.header("x-ms-correlation-request-id").is_some());
    let ctx = req.json();
    assert_eq!(ctx["MessageName"], "Update");
    assert_eq!(ctx["PrimaryEntityName"], "account");
    assert_eq!(ctx["PrimaryEntityId"], id.as_str());
    assert!(
        ctx["OperationCreatedOn"]
            .as_str()
            .unwrap()
            .starts_with("/Date(")
    );
    assert_eq!(
        ctx["InputParameters"][0]["value"]["Attributes"][0]["value"],
        "Renamed"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_batch_runs_requests_and_rolls_back_a_failing_changeset() {
    let sb = start(sized(3)).await;
    let t = token(&sb).await;
    let batch = |body: String| {
        let url = format!("{}{API}/$batch", base(&sb));
        let t = t.clone();
        async move {
            client()
                .post(url)
                .bearer_auth(t)
                .header("Content-Type", "multipart/mixed; boundary=batch_AAA")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let ok = "--batch_AAA\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /api/data/v9.2/accounts?$select=name HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--batch_AAA\r\nContent-Type: multipart/mixed; boundary=changeset_BBB\r\n\r\n--changeset_BBB\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPOST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Batch A\"}\r\n--changeset_BBB\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\nPATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"telephone1\":\"555\"}\r\n--changeset_BBB--\r\n--batch_AAA--\r\n".to_string();
    let r = batch(ok).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/mixed; boundary=batchresponse_")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 2, "{text}");
    assert!(text.contains("OData-EntityId: "));
    let r: Value = get(&sb, &t, "/accounts?$filter=name eq 'Batch A'", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["value"][0]["telephone1"], "555",
        "$1 referred to the row created by Content-ID 1"
    );
    let failing = "--batch_AAA\r\nContent-Type: multipart/mixed; boundary=changeset_CCC\r\n\r\n--changeset_CCC\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPOST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"Rolled back\"}\r\n--changeset_CCC\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\nPOST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"nonsense\":1}\r\n--changeset_CCC--\r\n--batch_AAA--\r\n".to_string();
    let text = batch(failing).await.text().await.unwrap();
    assert!(text.contains("HTTP/1.1 400 Bad Request"), "{text}");
    assert!(
        !text.contains("204"),
        "a failed changeset answers with its failure only"
    );
    let r: Value = get(&sb, &t, "/accounts?$filter=name eq 'Rolled back'", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["value"].as_array().unwrap().len(),
        0,
        "the changeset was rolled back"
    );
    let mut too_many = String::new();
    for _ in 0..1_001 {
        too_many.push_str("--batch_AAA\r\nContent-Type: application/http\r\n\r\nGET /api/data/v9.2/accounts HTTP/1.1\r\n\r\n\r\n");
    }
    too_many.push_str("--batch_AAA--\r\n");
    assert_eq!(batch(too_many).await.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_expand_follows_single_valued_lookups() {
    let sb = start(sized(4)).await;
    let t = token(&sb).await;
    let r: Value = get(&sb, &t, "/contacts?$select=fullname,emailaddress1,_parentcustomerid_value&$expand=parentcustomerid_account($select=name,websiteurl)&$top=2", None).await.json().await.unwrap();
    let c = &r["value"][0];
    let acc = &c["parentcustomerid_account"];
    assert_eq!(acc["accountid"], c["_parentcustomerid_value"]);
    assert!(acc["name"].is_string());
    let domain = acc["websiteurl"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://www.");
    assert!(c["emailaddress1"].as_str().unwrap().ends_with(domain));
    let r: Value = get(
        &sb,
        &t,
        "/opportunities?$expand=parentaccountid,parentcontactid&$top=1",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(r["value"][0]["parentaccountid"]["name"].is_string());
    let r = get(&sb, &t, "/accounts?$expand=contact_customer_accounts", None).await;
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_authorization_code_and_refresh_keep_the_old_refresh_token_valid() {
    let sb = start(sized(2)).await;
    let c = sb.vendor(Vendor::Dataverse).unwrap().credentials();
    let tenant = c.extra["tenant_id"].clone();
    let scope = c.extra["scope"].clone();
    let page = client()
        .get(format!("{}/{tenant}/oauth2/v2.0/authorize", base(&sb)))
        .query(&[
            ("response_type", "code"),
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", "http://localhost:9/cb"),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let r = client()
        .post(format!("{}/{tenant}/oauth2/v2.0/authorize", base(&sb)))
        .form(&[
            ("response_type", "code"),
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", "http://localhost:9/cb"),
            ("scope", scope.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(loc.split_once('?').unwrap().1).unwrap();
    let code = q.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let t: Value = token_response(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("code", &code),
            ("redirect_uri", "http://localhost:9/cb"),
            ("scope", &scope),
        ],
        true,
    )
    .await
    .json()
    .await
    .unwrap();
    let first = t["refresh_token"].as_str().unwrap().to_string();
    let r: Value = token_response(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("refresh_token", &first),
            ("scope", &scope),
        ],
        true,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(
        r["refresh_token"],
        first.as_str(),
        "Entra returns a new refresh token"
    );
    let again: Value = token_response(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("refresh_token", &first),
            ("scope", &scope),
        ],
        true,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        again["access_token"].is_string(),
        "and the previous one stays valid"
    );
    assert_eq!(
        get(
            &sb,
            again["access_token"].as_str().unwrap(),
            "/WhoAmI",
            None
        )
        .await
        .status(),
        200
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_upsert_multiple_updates_by_alternate_key_and_creates_the_rest() {
    let sb = start(sized(3)).await;
    let t = token(&sb).await;
    let url = format!(
        "{}{API}/accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        base(&sb)
    );
    let new_id = "acc00001-0000-4000-8000-0000000fffff";
    let r = client()
        .post(&url)
        .bearer_auth(&t)
        .json(&json!({"Targets": [
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": "accounts(accountnumber='A-0000001')", "name": "Updated by key"},
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": "accounts(accountnumber='A-NEW-9')", "name": "Created by key"},
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": new_id, "name": "Created by id"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "UpsertMultiple answers 204 with no body");
    let count = client()
        .get(format!("{}{API}/accounts/$count", base(&sb)))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "5");
    let r: Value = get(
        &sb,
        &t,
        "/accounts?$filter=accountnumber eq 'A-0000001'",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["value"][0]["name"], "Updated by key");
    let r: Value = get(&sb, &t, &format!("/accounts({new_id})"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["name"], "Created by id");
    let r = client().post(&url).bearer_auth(&t).json(&json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "Unidentified"}]})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_webhook_registrations_are_deleted_steps_first() {
    let sb = start(fast_webhooks(sized(3))).await;
    let t = token(&sb).await;
    let rx = Receiver::start(0).await;
    let post = |path: &str, body: Value| {
        let url = format!("{}{API}{path}", base(&sb));
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
    let delete = |path: String| {
        let url = format!("{}{API}{path}", base(&sb));
        let t = t.clone();
        async move {
            client()
                .delete(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let id_of = |r: &reqwest::Response| {
        r.headers()["odata-entityid"]
            .to_str()
            .unwrap()
            .rsplit_once('(')
            .unwrap()
            .1
            .trim_end_matches(')')
            .to_string()
    };
    let r = post("/serviceendpoints", json!({"name": "weft", "url": format!("{}/dv", rx.url), "contract": 8, "authtype": 5, "authvalue": "<settings><setting name=\"k\" value=\"v\" /></settings>"})).await;
    let endpoint = id_of(&r);
    let msgs: Value = get(&sb, &t, "/sdkmessages?$filter=name eq 'Update'", None)
        .await
        .json()
        .await
        .unwrap();
    let msg = msgs["value"][0]["sdkmessageid"]
        .as_str()
        .unwrap()
        .to_string();
    let filters: Value = get(&sb, &t, &format!("/sdkmessagefilters?$filter=primaryobjecttypecode eq 'account' and _sdkmessageid_value eq {msg}"), None).await.json().await.unwrap();
    let filter = filters["value"][0]["sdkmessagefilterid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post("/sdkmessageprocessingsteps", json!({"name": "s", "sdkmessageid@odata.bind": format!("/sdkmessages({msg})"), "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter})"), "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({endpoint})")})).await;
    let step = id_of(&r);
    assert_eq!(
        delete(format!("/serviceendpoints({endpoint})")).await,
        400,
        "an endpoint with steps is refused"
    );
    assert_eq!(
        delete(format!("/sdkmessageprocessingsteps({step})")).await,
        204
    );
    assert_eq!(delete(format!("/serviceendpoints({endpoint})")).await, 204);
    assert_eq!(delete(format!("/serviceendpoints({endpoint})")).await, 404);
    let accounts: Value = get(&sb, &t, "/accounts?$top=1", None)
        .await
        .json()
        .await
        .unwrap();
    let id = accounts["value"][0]["accountid"]
        .as_str()
        .unwrap()
        .to_string();
    client()
        .patch(format!("{}{API}/accounts({id})", base(&sb)))
        .bearer_auth(&t)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rx.received().is_empty(),
        "nothing is delivered after unregistering"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn dataverse_batch_stops_at_the_first_failure_unless_asked_to_continue() {
    let sb = start(sized(3)).await;
    let t = token(&sb).await;
    let body = |tag: &str| {
        let post = |name: &str, field: &str| {
            format!(
                "--batch_D\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPOST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"{field}\":\"{name}\"}}\r\n"
            )
        };
        format!(
            "{}{}{}--batch_D--\r\n",
            post(&format!("{tag} one"), "name"),
            post("x", "nonsense"),
            post(&format!("{tag} three"), "name")
        )
    };
    let send = |body: String, prefer: Option<&'static str>| {
        let url = format!("{}{API}/$batch", base(&sb));
        let t = t.clone();
        async move {
            let mut r = client()
                .post(url)
                .bearer_auth(t)
                .header("Content-Type", "multipart/mixed; boundary=batch_D")
                .body(body);
            if let Some(p) = prefer {
                r = r.header("Prefer", p);
            }
            r.send().await.unwrap().text().await.unwrap()
        }
    };
    let count = |name: &'static str| {
        let t = t.clone();
        let sb = &sb;
        async move {
            get(sb, &t, &format!("/accounts?$filter=name eq '{name}'"), None)
                .await
                .json::<Value>()
                .await
                .unwrap()["value"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    let stopped = send(body("Stop"), None).await;
    assert_eq!(
        stopped.matches("HTTP/1.1 ").count(),
        2,
        "the request after the failure is not run: {stopped}"
    );
    assert_eq!((count("Stop one").await, count("Stop three").await), (1, 0));
    let continued = send(body("Go"), Some("odata.continue-on-error")).await;
    assert_eq!(continued.matches("HTTP/1.1 ").count(), 3, "{continued}");
    assert_eq!((count("Go one").await, count("Go three").await), (1, 1));
    sb.shutdown().await;
}
