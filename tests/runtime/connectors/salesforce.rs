//! The `salesforce` connector against the Salesforce emulator: the conformance suite, then what
//! the suite does not cover (the JWT bearer exchange with the sandbox's demo key, instance_url
//! from the token response, composite partial failures and upserts, split query batches, the
//! daily limit).

use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::bindings::{PluginError, SyncMode, WriteMode};
use weft_runtime::{Verification, WriteStatus};
use weft_tests::conformance::{self, Case, Harness, PartialBatch, Sandbox, SandboxConfig, Vendor};

pub struct SalesforceCase;

fn literal(text: &str) -> SecretRef {
    SecretRef::Literal(Secret::new(text))
}

/// The JWT bearer credential a flow would configure, for `subject`.
fn jwt(sandbox: &Sandbox, subject: &str) -> AuthSpec {
    let sf = sandbox.vendor(Vendor::Salesforce).expect("salesforce runs");
    let c = sf.credentials();
    AuthSpec::JwtBearer {
        token_url: format!("{}/services/oauth2/token", sf.base_url()),
        issuer: c.client_id.clone(),
        subject: subject.into(),
        audience: c.extra["jwt_audience"].clone(),
        private_key: literal(&c.extra["jwt_private_key_pem"]),
        lifetime: None,
    }
}

async fn contacts(h: &Harness) -> Vec<Value> {
    h.read_all("Contact", SyncMode::Full, None, 200).await.0
}

impl Case for SalesforceCase {
    const PLUGIN: &'static str = weft_tests::SALESFORCE;
    const VENDOR: Vendor = Vendor::Salesforce;
    const STREAM: &'static str = "Contact";
    const PAGE_SIZE: u32 = 20;
    /// `REQUEST_LIMIT_EXCEEDED` (403) names no wait: the allocation is a rolling 24 hours.
    const RATE_LIMIT_HAS_WAIT: bool = false;
    /// Salesforce has no signed HTTP webhooks for record changes and the emulator sends none.
    const WEBHOOKS: bool = false;

    fn config(_sandbox: &Sandbox) -> Value {
        // No instance_url: it comes from the token response, as in production.
        json!({"custom_fields": {"Contact": ["External_Id__c"]}})
    }

    fn unreachable_config(_sandbox: &Sandbox, dead: &str) -> Value {
        json!({"instance_url": dead})
    }

    fn auth(sandbox: &Sandbox) -> AuthSpec {
        let user = sandbox
            .vendor(Vendor::Salesforce)
            .unwrap()
            .credentials()
            .username;
        jwt(sandbox, &user)
    }

    fn bad_auth(sandbox: &Sandbox) -> AuthSpec {
        jwt(sandbox, "stranger@example.com")
    }

    async fn expected_total(h: &Harness) -> usize {
        h.sandbox.data().size.contacts as usize
    }

    fn id(record: &Value) -> String {
        record["Id"].as_str().unwrap_or_default().to_owned()
    }

    async fn change(h: &Harness, n: usize) -> Vec<String> {
        let ids: Vec<String> = contacts(h).await.iter().take(n).map(Self::id).collect();
        let batch = PartialBatch {
            stream: "Contact",
            mode: WriteMode::Update,
            key: vec!["Id".into()],
            records: ids
                .iter()
                .map(|id| json!({"Id": id, "Title": "Changed upstream"}))
                .collect(),
            invalid: vec![],
        };
        let outcomes = h.write(&batch).await.expect("update");
        assert!(
            outcomes.iter().all(|o| o.status == WriteStatus::Updated),
            "{outcomes:?}"
        );
        ids
    }

    fn stale_cursor(_h: &Harness) -> String {
        json!({"stamp": "2000-01-01T00:00:00Z"}).to_string()
    }

    fn future_cursor(_h: &Harness) -> String {
        json!({"stamp": "2100-01-01T00:00:00Z"}).to_string()
    }

    fn partial_batch() -> PartialBatch {
        PartialBatch {
            stream: "Contact",
            mode: WriteMode::Create,
            key: vec![],
            records: vec![
                json!({"FirstName": "Ada", "LastName": "Valid", "Email": "ada@example.com"}),
                json!({"FirstName": "No", "Email": "no-last-name@example.com"}),
                json!({"LastName": "BadEmail", "Email": "not an address"}),
                json!({"LastName": "AlsoValid"}),
            ],
            invalid: vec![1, 2],
        }
    }

    async fn written(h: &Harness, stream: &str, id: &str) -> bool {
        h.read_all(stream, SyncMode::Full, None, 200)
            .await
            .0
            .iter()
            .any(|r| Self::id(r) == id)
    }
}

weft_tests::conformance!(suite, SalesforceCase);

fn sized(contacts: u64, batch: u64) -> SandboxConfig {
    let mut config = SandboxConfig::default();
    config.data.size.contacts = contacts;
    config.salesforce.query_batch_size = batch;
    config
}

async fn harness_with(config: SandboxConfig) -> Harness {
    Harness::start_with::<SalesforceCase>(config).await
}

fn path(r: &weft_sandbox::LoggedRequest) -> &str {
    r.uri.split('?').next().unwrap_or_default()
}

fn records(page: &weft_runtime::Page) -> Vec<Value> {
    serde_json::from_str(&page.records).expect("records are JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_with_the_demo_key_gets_a_session_and_the_instance_from_the_token_response() {
    let h = Harness::start::<SalesforceCase>().await;
    h.plugin
        .check(&h.context, conformance::CONNECTION, &h.config)
        .await
        .expect("check");
    let log = h.sandbox.requests(Some(Vendor::Salesforce));
    let token = log
        .iter()
        .find(|r| path(r) == "/services/oauth2/token")
        .expect("the host exchanged a JWT");
    assert_eq!(token.method, "POST");
    // The config names no instance: the request went to the instance_url of the token answer.
    assert!(
        log.iter()
            .any(|r| path(r) == "/services/data/v66.0/limits" && r.status == 200),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_assertion_is_an_auth_error_naming_the_grant() {
    let h = Harness::start::<SalesforceCase>().await;
    let bad = h
        .context_for::<SalesforceCase>(SalesforceCase::bad_auth(&h.sandbox), h.config.clone())
        .await;
    let err = h
        .plugin
        .read(
            &bad,
            conformance::CONNECTION,
            &h.config,
            Harness::request("Account", SyncMode::Full, None, 10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.plugin_error(), Some(PluginError::Auth(_))),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_partial_failures_land_on_the_right_records_and_upserts_say_created_or_updated() {
    let h = Harness::start::<SalesforceCase>().await;
    let outcomes = h.write(&SalesforceCase::partial_batch()).await.unwrap();
    let failure = |i: usize| {
        outcomes[i]
            .error
            .as_ref()
            .map(|e| e.message())
            .unwrap_or_default()
    };
    assert!(
        failure(1).contains("REQUIRED_FIELD_MISSING") && failure(1).contains("LastName"),
        "{}",
        failure(1)
    );
    assert!(
        failure(2).contains("INVALID_EMAIL_ADDRESS"),
        "{}",
        failure(2)
    );
    assert_eq!(outcomes[0].status, WriteStatus::Created);
    assert_eq!(outcomes[3].status, WriteStatus::Created);
    let requests = h.sandbox.requests(Some(Vendor::Salesforce));
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| path(r).ends_with("/composite/sobjects"))
        .collect();
    assert_eq!(writes.len(), 1, "four records, one collection call");

    // Upsert on the external ID: the existing CON-000001 is updated, a new value created, a
    // record without the key refused without a call for it.
    let upsert = PartialBatch {
        stream: "Contact",
        mode: WriteMode::Upsert,
        key: vec!["External_Id__c".into()],
        records: vec![
            json!({"External_Id__c": "CON-000001", "Title": "Upserted"}),
            json!({"LastName": "Fresh", "External_Id__c": "CON-NEW-1"}),
            json!({"LastName": "Keyless"}),
        ],
        invalid: vec![2],
    };
    let outcomes = h.write(&upsert).await.unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.status).collect::<Vec<_>>(),
        vec![
            WriteStatus::Updated,
            WriteStatus::Created,
            WriteStatus::Failed
        ]
    );
    assert!(
        h.sandbox
            .requests(Some(Vendor::Salesforce))
            .iter()
            .any(
                |r| path(r).ends_with("/composite/sobjects/Contact/External_Id__c")
                    && r.method == "PATCH"
            )
    );
    let all = contacts(&h).await;
    let updated = all
        .iter()
        .find(|r| r["External_Id__c"] == "CON-000001")
        .expect("the upserted contact");
    assert_eq!(updated["Title"], "Upserted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_in_collections_of_at_most_200() {
    let h = Harness::start::<SalesforceCase>().await;
    let batch = PartialBatch {
        stream: "Account",
        mode: WriteMode::Create,
        key: vec![],
        records: (0..450)
            .map(|i| json!({"Name": format!("Bulk {i}")}))
            .collect(),
        invalid: vec![],
    };
    let outcomes = h.write(&batch).await.unwrap();
    assert_eq!(outcomes.len(), 450);
    assert!(outcomes.iter().all(|o| o.status == WriteStatus::Created));
    let calls = h
        .sandbox
        .requests(Some(Vendor::Salesforce))
        .iter()
        .filter(|r| path(r).ends_with("/composite/sobjects"))
        .count();
    assert_eq!(calls, 3, "200 + 200 + 50");
    let ids: std::collections::BTreeSet<_> = outcomes.iter().filter_map(|o| o.id.clone()).collect();
    assert_eq!(ids.len(), 450, "every record its own id, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_split_by_salesforce_are_followed_through_next_records_url() {
    // The emulator answers at most 15 records a batch, fewer than the page asks for.
    let h = harness_with(sized(70, 15)).await;
    let first = h
        .read_page(Harness::request("Contact", SyncMode::Full, None, 40))
        .await
        .unwrap();
    assert_eq!(records(&first).len(), 15);
    let cursor: Value = serde_json::from_str(first.next_cursor.as_deref().unwrap()).unwrap();
    assert!(
        cursor["next"].as_str().unwrap().contains("/query/01g"),
        "{cursor}"
    );
    let (rest, _) = h
        .read_all("Contact", SyncMode::Full, first.next_cursor.clone(), 40)
        .await;
    let mut ids: Vec<String> = records(&first)
        .iter()
        .chain(&rest)
        .map(SalesforceCase::id)
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((n, ids.len()), (70, 70));
    assert!(
        h.sandbox
            .requests(Some(Vendor::Salesforce))
            .iter()
            .any(|r| path(r).contains("/query/01g")),
        "nextRecordsUrl was followed"
    );
    assert_eq!(
        first.total,
        Some(70),
        "the first page of a full read counts the records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_by_anything_but_id_are_refused_whole() {
    let h = Harness::start::<SalesforceCase>().await;
    let batch = PartialBatch {
        stream: "Contact",
        mode: WriteMode::Update,
        key: vec!["Email".into()],
        records: vec![json!({"Email": "x@example.com", "Title": "T"})],
        invalid: vec![0],
    };
    let err = h.write(&batch).await.unwrap_err();
    assert!(
        matches!(err.plugin_error(), Some(PluginError::Config(m)) if m.contains("by Id")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_query_locator_resumes_from_the_keyset() {
    let h = harness_with(sized(40, 10)).await;
    let first = h
        .read_page(Harness::request("Contact", SyncMode::Full, None, 30))
        .await
        .unwrap();
    // Locators live 15 minutes.
    h.sandbox
        .advance_clock(std::time::Duration::from_secs(16 * 60));
    let (rest, _) = h
        .read_all("Contact", SyncMode::Full, first.next_cursor.clone(), 30)
        .await;
    let mut ids: Vec<String> = records(&first)
        .iter()
        .chain(&rest)
        .map(SalesforceCase::id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sharing_a_system_modstamp_are_neither_lost_nor_repeated() {
    let h = Harness::start::<SalesforceCase>().await;
    // One collection call stamps all 30 records with the same SystemModstamp.
    let ids: Vec<String> = contacts(&h)
        .await
        .iter()
        .take(30)
        .map(SalesforceCase::id)
        .collect();
    let (_, cursor) = h.read_all("Contact", SyncMode::Incremental, None, 20).await;
    let batch = PartialBatch {
        stream: "Contact",
        mode: WriteMode::Update,
        key: vec!["Id".into()],
        records: ids
            .iter()
            .map(|id| json!({"Id": id, "Title": "Same instant"}))
            .collect(),
        invalid: vec![],
    };
    h.write(&batch).await.unwrap();
    let (changed, _) = h
        .read_all("Contact", SyncMode::Incremental, cursor, 7)
        .await;
    let mut got: Vec<String> = changed.iter().map(SalesforceCase::id).collect();
    let n = got.len();
    got.sort();
    got.dedup();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        n, 30,
        "pages of 7 through 30 equal stamps, nothing repeated"
    );
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_stream_reports_the_remaining_daily_api_requests() {
    let h = Harness::start::<SalesforceCase>().await;
    let page = h
        .read_page(Harness::request("limits", SyncMode::Full, None, 100))
        .await
        .unwrap();
    let limits = records(&page);
    let daily = limits
        .iter()
        .find(|r| r["name"] == "DailyApiRequests")
        .expect("DailyApiRequests");
    assert_eq!(daily["max"], 100_000);
    let remaining = daily["remaining"].as_u64().unwrap();
    assert!(
        remaining < 100_000 && remaining > 99_000,
        "the calls made so far count: {remaining}"
    );
    assert!(page.done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_limit_is_rate_limited_and_a_bad_query_field_is_a_config_error() {
    let mut config = SandboxConfig::default();
    config.salesforce.daily_api_requests = 3;
    let h = harness_with(config).await;
    let mut last = None;
    for _ in 0..5 {
        last = Some(
            h.plugin
                .read(
                    &h.context,
                    conformance::CONNECTION,
                    &h.config,
                    Harness::request("Account", SyncMode::Full, None, 5),
                )
                .await,
        );
    }
    let err = last.unwrap().unwrap_err();
    assert!(
        matches!(err.plugin_error(), Some(PluginError::RateLimited(_))),
        "{err}"
    );

    let h = Harness::start::<SalesforceCase>().await;
    let config = json!({"custom_fields": {"Account": ["No_Such_Field__c"]}});
    let err = h
        .plugin
        .read(
            &h.context,
            conformance::CONNECTION,
            &config,
            Harness::request("Account", SyncMode::Full, None, 5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.plugin_error(), Some(PluginError::Config(m)) if m.contains("No_Such_Field__c")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_log_activities_against_a_contact() {
    let h = Harness::start::<SalesforceCase>().await;
    let contact = SalesforceCase::id(&contacts(&h).await[0]);
    let batch = PartialBatch {
        stream: "Task",
        mode: WriteMode::Create,
        key: vec![],
        records: vec![
            json!({"Subject": "Call: pricing review", "WhoId": contact, "Status": "Completed", "TaskSubtype": "Call"}),
        ],
        invalid: vec![],
    };
    let outcomes = h.write(&batch).await.unwrap();
    assert_eq!(outcomes[0].status, WriteStatus::Created);
    let (tasks, _) = h.read_all("Task", SyncMode::Full, None, 50).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["WhoId"], contact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_says_salesforce_sends_no_webhooks() {
    let h = Harness::start::<SalesforceCase>().await;
    let request = weft_runtime::InboundRequest {
        method: "POST".into(),
        path: "/hooks".into(),
        query: String::new(),
        headers: vec![],
        body: b"{}".to_vec(),
    };
    match h.verify(request).await.unwrap() {
        Verification::Rejected(reason) => assert!(reason.contains("Salesforce"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
