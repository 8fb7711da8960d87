//! The `zoho-crm` connector against the Zoho CRM emulator: the conformance suite, then what it
//! does not cover — page tokens past the 2,000 records `page` reaches, writes split at 100,
//! upsert by the write's key, and watch channels.

use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::bindings::{SyncMode, WriteMode};
use weft_runtime::{InboundRequest, Verification, WriteStatus};
use weft_tests::conformance::{
    CONNECTION, Case, Harness, PartialBatch, Receiver, Sandbox, SandboxConfig, Vendor,
};

pub struct ZohoCase;

const WEBHOOK_SECRET: &str = "zoho-channel-secret-chosen-by-the-operator";

fn base(sb: &Sandbox) -> String {
    sb.vendor(Vendor::Zoho)
        .expect("zoho runs")
        .base_url()
        .to_owned()
}

fn literal(s: &str) -> SecretRef {
    SecretRef::Literal(Secret::new(s))
}

fn oauth(sb: &Sandbox, refresh_token: &str) -> AuthSpec {
    let c = sb.vendor(Vendor::Zoho).expect("zoho runs").credentials();
    AuthSpec::OAuth2Refresh {
        token_url: format!("{}/oauth/v2/token", base(sb)),
        client_id: literal(&c.client_id),
        client_secret: literal(&c.client_secret),
        refresh_token: literal(refresh_token),
        scope: None,
    }
}

/// The vendor's API, called directly (not through the connector) with a fresh access token.
async fn api(
    sb: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = sb.vendor(Vendor::Zoho).expect("zoho runs").credentials();
    let client = reqwest::Client::new();
    let token: Value = client
        .post(format!("{}/oauth/v2/token", base(sb)))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("refresh_token", c.refresh_token.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let mut request = client
        .request(method, format!("{}{path}", base(sb)))
        .header("Authorization", format!("Zoho-oauthtoken {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("the emulator answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

impl Case for ZohoCase {
    const PLUGIN: &'static str = weft_tests::ZOHO_CRM;
    const VENDOR: Vendor = Vendor::Zoho;
    const STREAM: &'static str = "Contacts";
    /// The demo data has 50 contacts.
    const PAGE_SIZE: u32 = 20;
    /// Zoho's 429 `TOO_MANY_REQUESTS` documents no wait and sends no `Retry-After`
    /// (crm-apis.md §1.8): the connector can only say `rate-limited`, not for how long.
    const RATE_LIMIT_HAS_WAIT: bool = false;

    fn config(sandbox: &Sandbox) -> Value {
        json!({"api_url": base(sandbox), "accounts_url": base(sandbox)})
    }

    fn unreachable_config(sandbox: &Sandbox, dead: &str) -> Value {
        json!({"api_url": dead, "accounts_url": base(sandbox)})
    }

    fn auth(sandbox: &Sandbox) -> AuthSpec {
        let c = sandbox
            .vendor(Vendor::Zoho)
            .expect("zoho runs")
            .credentials();
        oauth(sandbox, &c.refresh_token.expect("a refresh token"))
    }

    fn bad_auth(sandbox: &Sandbox) -> AuthSpec {
        oauth(sandbox, "1000.not.a.refresh.token")
    }

    fn webhook_secret(_sandbox: &Sandbox) -> Option<String> {
        Some(WEBHOOK_SECRET.into())
    }

    async fn expected_total(h: &Harness) -> usize {
        h.sandbox.data().size.contacts as usize
    }

    async fn change(h: &Harness, n: usize) -> Vec<String> {
        let (_, list) = api(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/crm/v7/Contacts?fields=Last_Name&per_page={n}&sort_by=id&sort_order=asc"),
            None,
        )
        .await;
        let ids: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let data: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "Title": "Changed upstream"}))
            .collect();
        let (status, _) = api(
            &h.sandbox,
            reqwest::Method::PUT,
            "/crm/v7/Contacts",
            Some(json!({"data": data})),
        )
        .await;
        assert_eq!(status, 200);
        ids
    }

    fn stale_cursor(_h: &Harness) -> String {
        json!({"since": "2000-01-01T00:00:00+00:00"}).to_string()
    }

    fn future_cursor(_h: &Harness) -> String {
        json!({"since": "2100-01-01T00:00:00+00:00"}).to_string()
    }

    fn partial_batch() -> PartialBatch {
        PartialBatch {
            stream: "Contacts",
            mode: WriteMode::Create,
            key: Vec::new(),
            records: vec![
                json!({"First_Name": "Ada", "Last_Name": "Conformance", "Email": "ada.conformance@example.com"}),
                json!({"Last_Name": "Bad Email", "Email": "not an email"}),
                json!({"First_Name": "No Last Name"}),
                json!({"First_Name": "Grace", "Last_Name": "Conformance", "Email": "grace.conformance@example.com"}),
            ],
            invalid: vec![1, 2],
        }
    }

    async fn written(h: &Harness, stream: &str, id: &str) -> bool {
        let (status, body) = api(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/crm/v7/{stream}/{id}"),
            None,
        )
        .await;
        status == 200 && body["data"][0]["id"] == id
    }

    async fn genuine_delivery(h: &Harness, receiver: &Receiver) -> InboundRequest {
        h.plugin
            .subscribe(
                &h.context,
                CONNECTION,
                &h.config,
                &receiver.url,
                vec!["Contacts.create".into()],
            )
            .await
            .expect("the connector enables a watch channel");
        let (status, _) = api(
            &h.sandbox,
            reqwest::Method::POST,
            "/crm/v7/Contacts",
            Some(json!({"data": [{"Last_Name": "Hook", "Email": "hook@example.com"}]})),
        )
        .await;
        assert_eq!(status, 201);
        receiver.next().await
    }
}

weft_tests::conformance!(suite, ZohoCase);

async fn write(
    h: &Harness,
    stream: &'static str,
    mode: WriteMode,
    key: &[&str],
    records: Vec<Value>,
) -> Vec<weft_runtime::WriteOutcome> {
    let batch = PartialBatch {
        stream,
        mode,
        key: key.iter().map(|k| k.to_string()).collect(),
        records,
        invalid: Vec::new(),
    };
    h.write(&batch).await.expect("the batch is written")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_past_the_2000_records_page_numbers_reach_with_page_tokens() {
    let mut config = SandboxConfig::default();
    config.data.size.leads = 2_150;
    let h = Harness::start_with::<ZohoCase>(config).await;
    let (records, _) = h.read_all("Leads", SyncMode::Full, None, 200).await;
    let ids: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        records.len(),
        2_150,
        "every lead, past the 2,000 that page numbers reach"
    );
    assert_eq!(ids.len(), 2_150, "no lead twice");
    let lists: Vec<_> = h
        .sandbox
        .requests(Some(Vendor::Zoho))
        .into_iter()
        .filter(|r| r.uri.starts_with("/crm/v7/Leads?"))
        .collect();
    assert_eq!(lists.len(), 11, "200 a page");
    let numbered = |uri: &str| uri.contains("?page=") || uri.contains("&page=");
    assert!(
        lists
            .iter()
            .skip(1)
            .all(|r| r.uri.contains("page_token=") && !numbered(&r.uri)),
        "pages after the first follow page tokens"
    );
    assert!(lists.iter().all(|r| r.status == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_read_with_nothing_changed_reads_nothing() {
    let h = Harness::start::<ZohoCase>().await;
    let (first, cursor) = h.read_all("Deals", SyncMode::Incremental, None, 200).await;
    assert_eq!(first.len(), h.sandbox.data().size.deals as usize);
    let (again, _) = h
        .read_all("Deals", SyncMode::Incremental, cursor, 200)
        .await;
    // Zoho compares If-Modified-Since (whole seconds) with the exact modification time, so it
    // answers the newest record again; the cursor's ids at that second drop it.
    assert!(
        again.is_empty(),
        "the newest record is not read again: {again:?}"
    );
    let last = h.sandbox.requests(Some(Vendor::Zoho)).pop().unwrap();
    assert!(
        last.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("if-modified-since")),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_more_than_100_records_in_calls_of_100() {
    let h = Harness::start::<ZohoCase>().await;
    let records: Vec<Value> = (0..150)
        .map(|i| json!({"Last_Name": format!("Bulk {i:03}"), "Company": "Bulk Co"}))
        .collect();
    let outcomes = write(&h, "Leads", WriteMode::Create, &[], records).await;
    assert!(outcomes.iter().all(|o| o.status == WriteStatus::Created));
    let calls: Vec<_> = h
        .sandbox
        .requests(Some(Vendor::Zoho))
        .into_iter()
        .filter(|r| r.method == "POST" && r.uri == "/crm/v7/Leads")
        .collect();
    assert_eq!(calls.len(), 2);
    for i in [0usize, 99, 100, 149] {
        let (_, lead) = api(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/crm/v7/Leads/{}", outcomes[i].id.as_deref().unwrap()),
            None,
        )
        .await;
        assert_eq!(
            lead["data"][0]["Last_Name"],
            format!("Bulk {i:03}"),
            "outcome {i} belongs to record {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_with_the_write_key_as_duplicate_check_fields() {
    let h = Harness::start::<ZohoCase>().await;
    let (_, list) = api(
        &h.sandbox,
        reqwest::Method::GET,
        "/crm/v7/Contacts?fields=Email,Last_Name&per_page=1&sort_by=id&sort_order=asc",
        None,
    )
    .await;
    let existing = list["data"][0].clone();
    let outcomes = write(
        &h,
        "Contacts",
        WriteMode::Upsert,
        &["Email"],
        vec![
            json!({"Email": existing["Email"], "Last_Name": "Upserted", "Title": "Matched by email"}),
            json!({"Email": "fresh.upsert@example.com", "Last_Name": "Fresh"}),
            json!({"Last_Name": "Keyless"}),
        ],
    )
    .await;
    assert_eq!(outcomes[0].status, WriteStatus::Updated);
    assert_eq!(outcomes[0].id.as_deref(), existing["id"].as_str());
    assert_eq!(outcomes[1].status, WriteStatus::Created);
    assert_eq!(
        outcomes[2].status,
        WriteStatus::Failed,
        "a record without the key is not sent"
    );
    let call = h
        .sandbox
        .requests(Some(Vendor::Zoho))
        .into_iter()
        .find(|r| r.uri == "/crm/v7/Contacts/upsert")
        .expect("an upsert call");
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["duplicate_check_fields"], json!(["Email"]));
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_for_a_channel_the_connection_did_not_make_is_rejected() {
    let h = Harness::start::<ZohoCase>().await;
    let receiver = Receiver::start().await;
    let genuine = ZohoCase::genuine_delivery(&h, &receiver).await;
    match h.verify(genuine.clone()).await.unwrap() {
        Verification::Accepted(events) => {
            assert_eq!(events.len(), 1);
            assert_eq!(
                (events[0].stream.as_str(), events[0].action.as_str()),
                ("Contacts", "insert")
            );
        }
        other => panic!("accepted, got {other:?}"),
    }
    // The same callback under another connection's secret is not this connection's channel.
    let other = h
        .context_with::<ZohoCase>(
            ZohoCase::auth(&h.sandbox),
            h.config.clone(),
            Some("another secret".into()),
        )
        .await;
    assert!(matches!(
        h.verify_in(&other, genuine).await.unwrap(),
        Verification::Rejected(_)
    ));
    let sub = h
        .plugin
        .subscribe(
            &h.context,
            CONNECTION,
            &h.config,
            &receiver.url,
            vec!["Leads".into()],
        )
        .await
        .unwrap();
    assert!(sub.expires_at.is_some(), "Zoho channels expire");
    h.plugin
        .unsubscribe(&h.context, CONNECTION, &h.config, &sub.id)
        .await
        .unwrap();
    let (_, state) = api(
        &h.sandbox,
        reqwest::Method::GET,
        "/crm/v7/actions/watch",
        None,
    )
    .await;
    assert!(
        state.is_null() || state["watch"].as_array().is_none_or(|w| w.is_empty()),
        "unsubscribed: {state}"
    );
}
