//! The `hubspot` connector against the HubSpot emulator: the conformance suite, then what the
//! suite does not cover (private-app tokens, upserts, associations written, the 10,000-result
//! search window, the search rate limit, webhook timestamps, the daily limit).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::bindings::{PluginError, SyncMode, WriteMode};
use weft_runtime::{InboundRequest, Verification, WriteStatus};
use weft_tests::conformance::{
    self, Case, Harness, PartialBatch, Receiver, Sandbox, SandboxConfig, Vendor,
};

pub struct HubSpotCase;

fn literal(text: &str) -> SecretRef {
    SecretRef::Literal(Secret::new(text))
}

fn credentials(sandbox: &Sandbox) -> weft_sandbox::Credentials {
    sandbox
        .vendor(Vendor::HubSpot)
        .expect("hubspot runs")
        .credentials()
}

async fn contacts(h: &Harness) -> Vec<Value> {
    h.read_all("contacts", SyncMode::Full, None, 100).await.0
}

fn update(ids: &[String], firstname: &str) -> PartialBatch {
    PartialBatch {
        stream: "contacts",
        mode: WriteMode::Update,
        key: vec!["id".into()],
        records: ids
            .iter()
            .map(|id| json!({"id": id, "firstname": firstname}))
            .collect(),
        invalid: vec![],
    }
}

impl Case for HubSpotCase {
    const PLUGIN: &'static str = weft_tests::HUBSPOT;
    const VENDOR: Vendor = Vendor::HubSpot;
    const STREAM: &'static str = "contacts";
    const PAGE_SIZE: u32 = 20;

    fn config(sandbox: &Sandbox) -> Value {
        json!({"base_url": sandbox.vendor(Vendor::HubSpot).unwrap().base_url(), "app_id": credentials(sandbox).extra["app_id"]})
    }

    fn unreachable_config(_sandbox: &Sandbox, dead: &str) -> Value {
        json!({"base_url": dead})
    }

    /// OAuth, as scenario 3 connects HubSpot: the host refreshes the 30-minute access token.
    fn auth(sandbox: &Sandbox) -> AuthSpec {
        let c = credentials(sandbox);
        AuthSpec::OAuth2Refresh {
            token_url: c.extra["token_url"].clone(),
            client_id: literal(&c.client_id),
            client_secret: literal(&c.client_secret),
            refresh_token: literal(c.refresh_token.as_deref().unwrap()),
            scope: None,
        }
    }

    fn bad_auth(_sandbox: &Sandbox) -> AuthSpec {
        AuthSpec::Bearer {
            token: literal("pat-na1-not-a-token-of-this-portal"),
        }
    }

    /// HubSpot signs deliveries with the app's client secret.
    fn webhook_secret(sandbox: &Sandbox) -> Option<String> {
        Some(credentials(sandbox).client_secret)
    }

    async fn expected_total(h: &Harness) -> usize {
        h.sandbox.data().size.contacts as usize
    }

    async fn change(h: &Harness, n: usize) -> Vec<String> {
        let ids: Vec<String> = contacts(h)
            .await
            .iter()
            .skip(5)
            .take(n)
            .map(Self::id)
            .collect();
        let outcomes = h.write(&update(&ids, "Changed")).await.expect("update");
        assert!(
            outcomes.iter().all(|o| o.status == WriteStatus::Updated),
            "{outcomes:?}"
        );
        ids
    }

    fn stale_cursor(_h: &Harness) -> String {
        json!({"since": 946_684_800_000i64}).to_string()
    }

    fn future_cursor(_h: &Harness) -> String {
        json!({"since": 4_102_444_800_000i64}).to_string()
    }

    fn partial_batch() -> PartialBatch {
        PartialBatch {
            stream: "contacts",
            mode: WriteMode::Create,
            key: vec![],
            records: vec![
                json!({"email": "ada@example.com", "firstname": "Ada"}),
                json!({"email": "not an address", "firstname": "Bad"}),
                json!({"email": "grace@example.com", "favourite_colour": "teal"}),
                json!({"email": "alan@example.com", "firstname": "Alan", "lastname": "T"}),
            ],
            invalid: vec![1, 2],
        }
    }

    async fn written(h: &Harness, stream: &str, id: &str) -> bool {
        h.read_all(stream, SyncMode::Full, None, 100)
            .await
            .0
            .iter()
            .any(|r| Self::id(r) == id)
    }

    /// Subscribes through the connector (a connection with the app's developer key), then
    /// changes a contact so the emulator delivers a signed batch.
    async fn genuine_delivery(h: &Harness, receiver: &Receiver) -> InboundRequest {
        let developer = AuthSpec::ApiKey {
            value: literal(&credentials(&h.sandbox).extra["developer_api_key"]),
        };
        let app = h
            .context_for::<HubSpotCase>(developer, h.config.clone())
            .await;
        let events = vec!["contact.propertyChange".to_owned()];
        let subscription = h
            .plugin
            .subscribe(
                &app,
                conformance::CONNECTION,
                &h.config,
                &receiver.url,
                events,
            )
            .await
            .expect("subscribe");
        assert!(!subscription.id.is_empty());
        let id = Self::id(&contacts(h).await[0]);
        h.write(&update(&[id], "Webhooked")).await.expect("update");
        receiver.next().await
    }
}

weft_tests::conformance!(suite, HubSpotCase);

fn records(page: &weft_runtime::Page) -> Vec<Value> {
    serde_json::from_str(&page.records).expect("records are JSON")
}

fn path(r: &weft_sandbox::LoggedRequest) -> &str {
    r.uri.split('?').next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_app_token_reads_without_any_exchange() {
    let h = Harness::start::<HubSpotCase>().await;
    let token = AuthSpec::Bearer {
        token: literal(credentials(&h.sandbox).api_token.as_deref().unwrap()),
    };
    let context = h.context_for::<HubSpotCase>(token, h.config.clone()).await;
    let page = h
        .plugin
        .read(
            &context,
            conformance::CONNECTION,
            &h.config,
            Harness::request("companies", SyncMode::Full, None, 100),
        )
        .await
        .unwrap();
    let companies = records(&page);
    assert_eq!(companies.len(), h.sandbox.data().size.companies as usize);
    assert!(
        companies[0]["name"].is_string() && companies[0]["domain"].is_string(),
        "properties are flattened: {}",
        companies[0]
    );
    assert!(
        h.sandbox
            .requests(Some(Vendor::HubSpot))
            .iter()
            .all(|r| !path(r).starts_with("/oauth"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_errors_carry_their_record_and_upserts_report_new() {
    let h = Harness::start::<HubSpotCase>().await;
    let outcomes = h.write(&HubSpotCase::partial_batch()).await.unwrap();
    let message = |i: usize| {
        outcomes[i]
            .error
            .as_ref()
            .map(|e| e.message())
            .unwrap_or_default()
    };
    assert!(message(1).contains("not an address"), "{}", message(1));
    assert!(message(2).contains("favourite_colour"), "{}", message(2));
    assert_eq!(
        h.sandbox
            .requests(Some(Vendor::HubSpot))
            .iter()
            .filter(|r| path(r).ends_with("/batch/create"))
            .count(),
        1
    );

    let existing = contacts(&h).await[0]["email"].as_str().unwrap().to_owned();
    let upsert = PartialBatch {
        stream: "contacts",
        mode: WriteMode::Upsert,
        key: vec!["email".into()],
        records: vec![
            json!({"email": "brand-new@example.com", "firstname": "New"}),
            json!({"email": existing, "jobtitle": "Upserted"}),
            json!({"firstname": "No key"}),
        ],
        invalid: vec![2],
    };
    let outcomes = h.write(&upsert).await.unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.status).collect::<Vec<_>>(),
        vec![
            WriteStatus::Created,
            WriteStatus::Updated,
            WriteStatus::Failed
        ]
    );
    let all = contacts(&h).await;
    assert_eq!(
        all.iter()
            .find(|c| c["email"] == existing.as_str())
            .unwrap()["jobtitle"],
        "Upserted"
    );

    // Update by email, with one unknown address: the miss lands on its own record.
    let by_email = PartialBatch {
        stream: "contacts",
        mode: WriteMode::Update,
        key: vec!["email".into()],
        records: vec![
            json!({"email": "nobody@nowhere.example", "firstname": "X"}),
            json!({"email": existing, "firstname": "ByEmail"}),
        ],
        invalid: vec![0],
    };
    let outcomes = h.write(&by_email).await.unwrap();
    assert_eq!(outcomes[0].status, WriteStatus::Failed);
    assert_eq!(outcomes[1].status, WriteStatus::Updated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_in_batches_of_at_most_100() {
    let h = Harness::start::<HubSpotCase>().await;
    let batch = PartialBatch {
        stream: "companies",
        mode: WriteMode::Create,
        key: vec![],
        records: (0..250)
            .map(|i| json!({"name": format!("Bulk {i}"), "domain": format!("bulk-{i}.example")}))
            .collect(),
        invalid: vec![],
    };
    let outcomes = h.write(&batch).await.unwrap();
    assert!(outcomes.iter().all(|o| o.status == WriteStatus::Created));
    assert_eq!(
        outcomes
            .iter()
            .filter_map(|o| o.id.clone())
            .collect::<BTreeSet<_>>()
            .len(),
        250
    );
    assert_eq!(
        h.sandbox
            .requests(Some(Vendor::HubSpot))
            .iter()
            .filter(|r| path(r).ends_with("/companies/batch/create"))
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_end_up_associated_with_their_company() {
    let h = Harness::start::<HubSpotCase>().await;
    let company = PartialBatch {
        stream: "companies",
        mode: WriteMode::Create,
        key: vec![],
        records: vec![json!({"name": "Imported Inc", "domain": "imported.example"})],
        invalid: vec![],
    };
    let company_id = h.write(&company).await.unwrap()[0].id.clone().unwrap();
    let people = PartialBatch {
        stream: "contacts",
        mode: WriteMode::Create,
        key: vec![],
        records: vec![
            json!({"email": "one@imported.example"}),
            json!({"email": "two@imported.example"}),
        ],
        invalid: vec![],
    };
    let contact_ids: Vec<String> = h
        .write(&people)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id.unwrap())
        .collect();
    let links = PartialBatch {
        stream: "contact_companies",
        mode: WriteMode::Create,
        key: vec!["contact_id".into(), "company_id".into()],
        records: vec![
            json!({"contact_id": contact_ids[0], "company_id": company_id}),
            json!({"contact_id": contact_ids[1], "company_id": company_id}),
            json!({"contact_id": "5999999999", "company_id": company_id}),
        ],
        invalid: vec![2],
    };
    let outcomes = h.write(&links).await.unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.status).collect::<Vec<_>>(),
        vec![
            WriteStatus::Created,
            WriteStatus::Created,
            WriteStatus::Failed
        ]
    );
    assert!(
        h.sandbox
            .requests(Some(Vendor::HubSpot))
            .iter()
            .any(|r| path(r) == "/crm/v4/associations/contacts/companies/batch/associate/default")
    );
    let (pairs, _) = h
        .read_all("contact_companies", SyncMode::Full, None, 100)
        .await;
    for contact in &contact_ids {
        assert!(
            pairs
                .iter()
                .any(|p| p["contact_id"] == contact.as_str()
                    && p["company_id"] == company_id.as_str()),
            "{contact} is associated: {pairs:?}"
        );
    }
    // The demo data's own associations are there too: contact j works at company j % companies.
    assert!(pairs.len() >= h.sandbox.data().size.contacts as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_reads_start_new_searches_before_the_10000_result_window() {
    let mut config = SandboxConfig::default();
    config.data.size.contacts = 10_250;
    config.hubspot.search_per_second = 10_000;
    config.hubspot.burst = 10_000;
    let h = Harness::start_with::<HubSpotCase>(config).await;
    let (all, cursor) = h
        .read_all("contacts", SyncMode::Incremental, None, 200)
        .await;
    let ids: BTreeSet<String> = all.iter().map(HubSpotCase::id).collect();
    assert_eq!(
        (all.len(), ids.len()),
        (10_250, 10_250),
        "every contact once, past the window"
    );
    assert!(cursor.is_some());
    // No search asked for results past 10,000.
    for r in h
        .sandbox
        .requests(Some(Vendor::HubSpot))
        .iter()
        .filter(|r| path(r).ends_with("/search"))
    {
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let after: u64 = body["after"].as_str().unwrap().parse().unwrap();
        assert!(after + body["limit"].as_u64().unwrap() <= 10_000, "{body}");
        assert!(r.status == 200, "{} {}", r.status, r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_rate_limit_is_rate_limited_for_a_second() {
    let mut config = SandboxConfig::default();
    config.hubspot.search_per_second = 1;
    let h = Harness::start_with::<HubSpotCase>(config).await;
    let read = || {
        h.plugin.read(
            &h.context,
            conformance::CONNECTION,
            &h.config,
            Harness::request("contacts", SyncMode::Incremental, None, 10),
        )
    };
    read().await.expect("the first search");
    let err = read()
        .await
        .expect_err("the second search in the same second");
    match err.plugin_error() {
        Some(PluginError::RateLimited(r)) => {
            assert_eq!(r.retry_after_ms, Some(1_000), "{}", r.message)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_signed_more_than_five_minutes_away_is_refused() {
    let h = Harness::start::<HubSpotCase>().await;
    let receiver = Receiver::start().await;
    // The emulator's clock runs ten minutes ahead, so its signed timestamp is too far off.
    h.sandbox.advance_clock(std::time::Duration::from_secs(600));
    let delivery = HubSpotCase::genuine_delivery(&h, &receiver).await;
    match h.verify(delivery).await.unwrap() {
        Verification::Rejected(reason) => assert!(reason.contains("300 s"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_events_name_their_stream_object_and_property() {
    let h = Harness::start::<HubSpotCase>().await;
    let receiver = Receiver::start().await;
    let delivery = HubSpotCase::genuine_delivery(&h, &receiver).await;
    let Verification::Accepted(events) = h.verify(delivery).await.unwrap() else {
        panic!("accepted")
    };
    let e = &events[0];
    assert_eq!(
        (e.stream.as_str(), e.action.as_str()),
        ("contacts", "contact.propertyChange")
    );
    let record: Value = serde_json::from_str(&e.record).unwrap();
    assert_eq!(record["propertyName"], "firstname");
    assert_eq!(record["propertyValue"], "Webhooked");
    assert!(e.occurred_at.as_deref().is_some_and(|t| t.ends_with('Z')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_stream_reports_the_daily_allocation() {
    let h = Harness::start::<HubSpotCase>().await;
    let page = h
        .read_page(Harness::request("limits", SyncMode::Full, None, 10))
        .await
        .unwrap();
    let limits = records(&page);
    let daily = limits.iter().find(|r| r["name"] == "daily").unwrap();
    assert_eq!(daily["max"], 250_000);
    assert_eq!(daily["remaining"], 250_000 - 1);
    let burst = limits.iter().find(|r| r["name"] == "interval").unwrap();
    assert_eq!(burst["interval_ms"], 10_000);
}

/// A list page as an upstream may send it, odd corners included: a property named like an
/// envelope member, a property given twice, a name written with an escape, nested values.
const ODD_LIST_PAGE: &str = r#"{"results": [
  {"id": "7", "properties": {"zeta": 1, "id": "shadow", "alpha": "a", "na\u006de": "escaped",
   "dup": "first", "dup": "second", "archived": "property", "nested": {"x": [1, 2.5, null]},
   "quote\"d": "q"},
   "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00Z", "archived": true},
  {"id": "8", "properties": {}}
], "paging": {"next": {"after": "9", "link": "ignored"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_page_is_flattened_as_a_record_would_be_whatever_its_members_are() {
    // The list read writes each object's text as received instead of building records; what
    // comes out must be the flattened record, member for member: properties beside the envelope,
    // a later member of a name replacing an earlier one, as inserting into a map would.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/crm/v3/objects/contacts",
        axum::routing::get(move |uri: axum::http::Uri| async move {
            log.lock()
                .unwrap()
                .push(uri.query().unwrap_or_default().to_owned());
            ([("content-type", "application/json")], ODD_LIST_PAGE)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let h = Harness::start::<HubSpotCase>().await;
    let config = json!({"base_url": format!("http://{addr}")});
    let connections = weft_tests::connections(
        &h.plugin,
        conformance::CONNECTION,
        config.clone(),
        AuthSpec::Bearer {
            token: literal("pat-odd"),
        },
        vec![weft_tests::loopback_rule(addr)],
        &h.secrets,
        |_| {},
    )
    .await;
    let context = weft_runtime::CallContext::new("default").with_connections(connections);
    let page = h
        .plugin
        .read(
            &context,
            conformance::CONNECTION,
            &config,
            Harness::request("contacts", SyncMode::Full, None, 100),
        )
        .await
        .unwrap();
    assert_eq!(
        records(&page),
        vec![
            json!({
                // Properties replace the object's id; the envelope's members replace properties.
                "id": "shadow", "zeta": 1, "alpha": "a", "name": "escaped", "dup": "second",
                "nested": {"x": [1, 2.5, null]}, "quote\"d": "q",
                "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02T00:00:00Z",
                "archived": true,
            }),
            json!({"id": "8", "createdAt": null, "updatedAt": null, "archived": false}),
        ]
    );
    // Members in name order, each once, as a record's map writes them.
    let first = page.records.split("},{").next().unwrap();
    let names: Vec<usize> = [
        "\"alpha\"",
        "\"archived\"",
        "\"createdAt\"",
        "\"dup\"",
        "\"id\"",
        "\"name\"",
    ]
    .iter()
    .map(|n| first.find(n).unwrap_or_else(|| panic!("{n} in {first}")))
    .collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{first}");
    assert_eq!(first.matches("\"dup\"").count(), 1, "{first}");
    assert!(!page.done, "paging.next means more");

    // The next page is asked for with the `after` given.
    let next = Harness::request("contacts", SyncMode::Full, page.next_cursor.clone(), 100);
    h.plugin
        .read(&context, conformance::CONNECTION, &config, next)
        .await
        .unwrap();
    let queries = seen.lock().unwrap().clone();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert!(!queries[0].contains("after="), "{}", queries[0]);
    assert!(queries[1].contains("after=9"), "{}", queries[1]);
}
