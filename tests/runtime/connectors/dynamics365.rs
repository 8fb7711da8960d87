//! The `dynamics365` connector against the Dataverse emulator: the conformance suite, then what
//! it does not cover (delta links and deletions, alternate-key upserts, webhook keys).

use std::time::Duration;

use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::bindings::{PluginError, SyncMode, WriteMode};
use weft_runtime::{InboundRequest, Verification, WriteStatus};
use weft_tests::conformance::{CONNECTION, Case, Harness, PartialBatch, Receiver, Sandbox, Vendor};

pub struct Dynamics365;

const SECRET: &str = "dynamics-conformance-webhook-secret";

fn literal(s: &str) -> SecretRef {
    SecretRef::Literal(Secret::new(s))
}

fn base(sandbox: &Sandbox) -> String {
    sandbox
        .vendor(Vendor::Dataverse)
        .expect("dataverse runs")
        .base_url()
        .to_owned()
}

fn api(sandbox: &Sandbox) -> String {
    format!("{}/api/data/v9.2", base(sandbox))
}

/// A client-credentials token from the emulator, for changing records behind the connector.
async fn token(sandbox: &Sandbox) -> String {
    let c = sandbox.vendor(Vendor::Dataverse).unwrap().credentials();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("scope", c.extra["scope"].as_str()),
    ];
    let r: Value = reqwest::Client::new()
        .post(&c.extra["token_url"])
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().expect("a token").to_owned()
}

async fn api_call(
    sandbox: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .request(method, format!("{}{path}", api(sandbox)))
        .bearer_auth(token(sandbox).await);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn contact_ids(sandbox: &Sandbox, n: usize) -> Vec<String> {
    let r: Value = api_call(
        sandbox,
        reqwest::Method::GET,
        &format!("/contacts?$select=lastname&$top={n}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    r["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["contactid"].as_str().unwrap().to_owned())
        .collect()
}

/// `%`-encoding for a delta token in a link.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A cursor holding a delta link whose token marks `ms` (the emulator's `<ms>_<row>!<stamp>`).
fn delta_cursor(h: &Harness, ms: i64) -> String {
    let token = format!("{ms}_{}!01/01/2000 00:00:00", u64::MAX);
    json!({"delta": format!("{}/contacts?$select=lastname&$deltatoken={}", api(&h.sandbox), encode(&token))}).to_string()
}

fn now_ms(sandbox: &Sandbox) -> i64 {
    sandbox
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Case for Dynamics365 {
    const PLUGIN: &'static str = weft_tests::DYNAMICS365;
    const VENDOR: Vendor = Vendor::Dataverse;
    const STREAM: &'static str = "contacts";
    const PAGE_SIZE: u32 = 20;

    fn config(sandbox: &Sandbox) -> Value {
        json!({"organization_url": base(sandbox)})
    }

    fn unreachable_config(_sandbox: &Sandbox, dead: &str) -> Value {
        json!({"organization_url": dead})
    }

    fn auth(sandbox: &Sandbox) -> AuthSpec {
        let c = sandbox.vendor(Vendor::Dataverse).unwrap().credentials();
        AuthSpec::OAuth2ClientCredentials {
            token_url: c.extra["token_url"].clone(),
            client_id: literal(&c.client_id),
            client_secret: literal(&c.client_secret),
            scope: Some(c.extra["scope"].clone()),
        }
    }

    fn bad_auth(sandbox: &Sandbox) -> AuthSpec {
        let c = sandbox.vendor(Vendor::Dataverse).unwrap().credentials();
        AuthSpec::OAuth2ClientCredentials {
            token_url: c.extra["token_url"].clone(),
            client_id: literal(&c.client_id),
            client_secret: literal("not-the-secret"),
            scope: Some(c.extra["scope"].clone()),
        }
    }

    fn webhook_secret(_sandbox: &Sandbox) -> Option<String> {
        Some(SECRET.into())
    }

    async fn expected_total(h: &Harness) -> usize {
        h.sandbox.data().size.contacts as usize
    }

    fn id(record: &Value) -> String {
        record["contactid"].as_str().unwrap_or_default().to_owned()
    }

    async fn change(h: &Harness, n: usize) -> Vec<String> {
        // Change tracking orders by modification time: let the clock pass the delta token.
        h.sandbox.advance_clock(Duration::from_secs(2));
        let ids = contact_ids(&h.sandbox, n).await;
        for id in &ids {
            let r = api_call(
                &h.sandbox,
                reqwest::Method::PATCH,
                &format!("/contacts({id})"),
                Some(json!({"jobtitle": "Changed upstream"})),
            )
            .await;
            assert_eq!(r.status(), 204);
        }
        ids
    }

    /// A delta token from 1970: Dataverse no longer honours it, so the connector reads the
    /// table again in full (everything changed since, here everything).
    fn stale_cursor(h: &Harness) -> String {
        delta_cursor(h, 1_000)
    }

    fn future_cursor(h: &Harness) -> String {
        delta_cursor(h, now_ms(&h.sandbox) + 365 * 86_400_000)
    }

    fn partial_batch() -> PartialBatch {
        PartialBatch {
            stream: "accounts",
            mode: WriteMode::Upsert,
            key: vec!["accountnumber".into()],
            records: vec![
                json!({"accountnumber": "W-0001", "name": "Weft One", "numberofemployees": 12}),
                json!({"accountnumber": "W-0002", "name": "Weft Two", "revenue": "a lot"}),
                json!({"accountnumber": "W-0003", "name": "Weft Three", "no_such_column": 1}),
                json!({"accountnumber": "W-0004", "name": "Weft Four"}),
            ],
            invalid: vec![1, 2],
        }
    }

    async fn written(h: &Harness, stream: &str, id: &str) -> bool {
        api_call(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/{stream}({id})"),
            None,
        )
        .await
        .status()
            == 200
    }

    async fn genuine_delivery(h: &Harness, receiver: &Receiver) -> InboundRequest {
        h.plugin
            .subscribe(
                &h.context,
                CONNECTION,
                &h.config,
                &format!("{}/dynamics", receiver.url),
                vec!["contact.Update".into()],
            )
            .await
            .expect("subscribe");
        let id = contact_ids(&h.sandbox, 1).await.remove(0);
        api_call(
            &h.sandbox,
            reqwest::Method::PATCH,
            &format!("/contacts({id})"),
            Some(json!({"lastname": "Hooked"})),
        )
        .await;
        receiver.next().await
    }

    /// Dataverse authenticates a delivery by a static key header, not a signature over the
    /// body: a forger without the key sends a wrong one.
    fn forge(genuine: &InboundRequest) -> InboundRequest {
        let mut forged = genuine.clone();
        for (k, v) in forged.headers.iter_mut() {
            if k == "x-weft-webhook-key" {
                *v = "0".repeat(v.len());
            }
        }
        forged
    }
}

weft_tests::conformance!(suite, Dynamics365);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_link_returns_changes_and_deletions_then_nothing() {
    let h = Harness::start::<Dynamics365>().await;
    let (first, cursor) = h.read_all("accounts", SyncMode::Incremental, None, 7).await;
    assert_eq!(first.len(), 20);
    let cursor = cursor.expect("a delta link");
    assert!(
        cursor.contains("$deltatoken"),
        "the cursor is the delta link: {cursor}"
    );
    h.sandbox.advance_clock(Duration::from_secs(2));
    let ids: Vec<String> = first
        .iter()
        .take(2)
        .map(|r| r["accountid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        api_call(
            &h.sandbox,
            reqwest::Method::PATCH,
            &format!("/accounts({})", ids[0]),
            Some(json!({"name": "Renamed"}))
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        api_call(
            &h.sandbox,
            reqwest::Method::DELETE,
            &format!("/accounts({})", ids[1]),
            None
        )
        .await
        .status(),
        204
    );
    let (changes, next) = h
        .read_all("accounts", SyncMode::Incremental, Some(cursor), 7)
        .await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0]["accountid"], ids[0].as_str());
    assert_eq!(changes[0]["name"], "Renamed");
    assert!(
        changes[0]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with('@')),
        "annotations are dropped"
    );
    assert_eq!(changes[1], json!({"accountid": ids[1], "deleted": true}));
    let (again, _) = h.read_all("accounts", SyncMode::Incremental, next, 7).await;
    assert!(
        again.is_empty(),
        "nothing changed since the last delta link"
    );
    // Every request of a tracked read asked for change tracking and the page size.
    let tracked = h
        .sandbox
        .requests(Some(Vendor::Dataverse))
        .into_iter()
        .filter(|r| r.uri.contains("/accounts?"))
        .collect::<Vec<_>>();
    assert!(
        tracked
            .iter()
            .all(|r| r.headers.iter().any(|(k, v)| k == "prefer"
                && v.contains("odata.track-changes")
                && v.contains("odata.maxpagesize=7")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_for_another_table_or_host_is_a_config_error() {
    let h = Harness::start::<Dynamics365>().await;
    let (_, cursor) = h
        .read_all("accounts", SyncMode::Incremental, None, 50)
        .await;
    let err = h
        .read_page(Harness::request(
            "contacts",
            SyncMode::Incremental,
            cursor,
            50,
        ))
        .await
        .expect_err("refused");
    assert!(
        matches!(err.plugin_error(), Some(PluginError::Config(_))),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_create_update_upsert_and_delete_with_one_outcome_each() {
    let h = Harness::start::<Dynamics365>().await;
    let h = &h;
    let write = |mode, key: Vec<&str>, records: Vec<Value>| {
        let batch = PartialBatch {
            stream: "contacts",
            mode,
            key: key.into_iter().map(String::from).collect(),
            records,
            invalid: vec![],
        };
        async move { h.write(&batch).await.expect("write") }
    };
    let created = write(
        WriteMode::Create,
        vec![],
        vec![
            json!({"firstname": "Ada", "lastname": "Lovelace"}),
            json!({"lastname": "Bad", "revenue": 1}),
        ],
    )
    .await;
    assert_eq!(created[0].status, WriteStatus::Created);
    assert_eq!(created[1].status, WriteStatus::Failed);
    let id = created[0].id.clone().unwrap();
    let updated = write(
        WriteMode::Update,
        vec!["contactid"],
        vec![
            json!({"contactid": id, "jobtitle": "Countess"}),
            json!({"contactid": "acc00002-0000-4000-8000-00000000ffff", "jobtitle": "Nobody"}),
        ],
    )
    .await;
    assert_eq!(updated[0].status, WriteStatus::Updated);
    assert_eq!(
        updated[1].status,
        WriteStatus::Failed,
        "update does not create a missing row"
    );
    let row: Value = api_call(
        &h.sandbox,
        reqwest::Method::GET,
        &format!("/contacts({id})"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(row["jobtitle"], "Countess");
    let new_id = "acc00002-0000-4000-8000-0000000abcde";
    let upserted = write(
        WriteMode::Upsert,
        vec!["contactid"],
        vec![
            json!({"contactid": new_id, "lastname": "New"}),
            json!({"contactid": id, "lastname": "Byron"}),
        ],
    )
    .await;
    assert_eq!(
        (upserted[0].status, upserted[0].id.as_deref()),
        (WriteStatus::Created, Some(new_id))
    );
    assert_eq!(upserted[1].status, WriteStatus::Updated);
    let deleted = write(
        WriteMode::Delete,
        vec!["contactid"],
        vec![json!({"contactid": new_id}), json!({"contactid": new_id})],
    )
    .await;
    assert!(
        deleted.iter().all(|o| o.status == WriteStatus::Deleted),
        "a replayed delete is harmless: {deleted:?}"
    );
    assert_eq!(
        api_call(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/contacts({new_id})"),
            None
        )
        .await
        .status(),
        404
    );
    let batches = h
        .sandbox
        .requests(Some(Vendor::Dataverse))
        .into_iter()
        .filter(|r| r.uri.ends_with("/$batch"))
        .count();
    assert_eq!(batches, 4, "one $batch per write call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_by_alternate_key_creates_once_then_updates() {
    let h = Harness::start::<Dynamics365>().await;
    let batch = |name: &str| PartialBatch {
        stream: "accounts",
        mode: WriteMode::Upsert,
        key: vec!["accountnumber".into()],
        records: vec![json!({"accountnumber": "ALT-1", "name": name})],
        invalid: vec![],
    };
    let first = h.write(&batch("First")).await.unwrap();
    let second = h.write(&batch("Second")).await.unwrap();
    assert_eq!(first[0].status, WriteStatus::Created);
    assert_eq!(second[0].status, WriteStatus::Updated);
    assert_eq!(first[0].id, second[0].id);
    let rows: Value = api_call(
        &h.sandbox,
        reqwest::Method::GET,
        "/accounts?$filter=accountnumber eq 'ALT-1'",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rows["value"].as_array().unwrap().len(), 1);
    assert_eq!(rows["value"][0]["name"], "Second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_protection_429_is_rate_limited_with_retry_after() {
    let h = Harness::start::<Dynamics365>().await;
    // A token first: the Entra endpoint is throttled by the same fault.
    h.plugin
        .check(&h.context, CONNECTION, &h.config)
        .await
        .unwrap();
    h.sandbox.set_faults(
        Some(Vendor::Dataverse),
        weft_tests::conformance::FaultConfig {
            rate_limited: 1.0,
            ..Default::default()
        },
    );
    let err = h
        .plugin
        .check(&h.context, CONNECTION, &h.config)
        .await
        .expect_err("throttled");
    match err.plugin_error() {
        Some(PluginError::RateLimited(r)) => {
            assert_eq!(r.retry_after_ms, Some(30_000));
            assert!(r.message.contains("0x80072322"), "{}", r.message);
        }
        other => panic!("expected rate-limited, got {other:?}"),
    }
}

async fn delivery(h: &Harness) -> InboundRequest {
    let receiver = Receiver::start().await;
    Dynamics365::genuine_delivery(h, &receiver).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_key_accepts_the_registered_key_and_turns_the_context_into_an_event() {
    let h = Harness::start::<Dynamics365>().await;
    let genuine = delivery(&h).await;
    let key = genuine
        .headers
        .iter()
        .find(|(k, _)| k == "x-weft-webhook-key")
        .map(|(_, v)| v.clone())
        .expect("the key header comes back");
    assert!(
        !key.contains(SECRET),
        "the secret itself never leaves the host"
    );
    match h.verify(genuine).await.unwrap() {
        Verification::Accepted(events) => {
            assert_eq!(events.len(), 1);
            let e = &events[0];
            assert_eq!(
                (e.stream.as_str(), e.action.as_str()),
                ("contacts", "update")
            );
            let record: Value = serde_json::from_str(&e.record).unwrap();
            assert_eq!(record["lastname"], "Hooked");
            assert!(record["contactid"].is_string());
            assert!(e.occurred_at.as_deref().is_some_and(|t| t.ends_with('Z')));
        }
        other => panic!("accepted, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_key_refuses_a_wrong_or_missing_key() {
    let h = Harness::start::<Dynamics365>().await;
    let genuine = delivery(&h).await;
    let mut wrong = genuine.clone();
    for (k, v) in wrong.headers.iter_mut() {
        if k == "x-weft-webhook-key" {
            *v = "0".repeat(v.len());
        }
    }
    let mut missing = genuine.clone();
    missing.headers.retain(|(k, _)| k != "x-weft-webhook-key");
    for forged in [wrong, missing] {
        assert!(matches!(
            h.verify(forged).await.unwrap(),
            Verification::Rejected(_)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_removes_the_steps_and_the_endpoint() {
    let h = Harness::start::<Dynamics365>().await;
    let receiver = Receiver::start().await;
    let sub = h
        .plugin
        .subscribe(&h.context, CONNECTION, &h.config, &receiver.url, vec![])
        .await
        .unwrap();
    let state = || async {
        reqwest::get(format!(
            "{}/admin/vendors/dataverse/state",
            h.sandbox.admin_url()
        ))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
    };
    let registered = state().await;
    assert_eq!(
        registered["steps"].as_array().unwrap().len(),
        15,
        "Create, Update and Delete of five tables"
    );
    assert_eq!(registered["service_endpoints"][0]["id"], sub.id.as_str());
    h.plugin
        .unsubscribe(&h.context, CONNECTION, &h.config, &sub.id)
        .await
        .unwrap();
    let after = state().await;
    assert!(
        after["steps"].as_array().unwrap().is_empty()
            && after["service_endpoints"].as_array().unwrap().is_empty(),
        "{after}"
    );
    h.plugin
        .unsubscribe(&h.context, CONNECTION, &h.config, &sub.id)
        .await
        .expect("unsubscribing twice is harmless");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_reads_in_full_with_its_schema_columns() {
    let h = Harness::start::<Dynamics365>().await;
    let size = h.sandbox.data().size;
    for (stream, key, expected) in [
        ("accounts", "accountid", size.companies),
        ("contacts", "contactid", size.contacts),
        ("leads", "leadid", size.leads),
        ("opportunities", "opportunityid", size.deals),
    ] {
        let (records, _) = h.read_all(stream, SyncMode::Full, None, 15).await;
        assert_eq!(records.len() as u64, expected, "{stream}");
        let schema: Value = serde_json::from_str(&h.plugin.stream(stream).unwrap().schema).unwrap();
        let props = schema["properties"].as_object().unwrap();
        for r in &records {
            assert!(r[key].is_string(), "{stream}: {r}");
            assert!(
                r.as_object().unwrap().keys().all(|k| props.contains_key(k)),
                "{stream}: every field is in the schema: {r}"
            );
        }
    }
}
