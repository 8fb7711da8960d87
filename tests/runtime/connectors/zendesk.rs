//! The `zendesk` connector against the Zendesk emulator: the conformance suite, then what it
//! does not cover — bulk jobs split at 100 and mapped back in order, upserts, ticket comments,
//! the time-based organization export's repeated boundary second.

use std::time::Duration;

use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::bindings::{SyncMode, WriteMode};
use weft_runtime::{InboundRequest, WriteStatus};
use weft_tests::conformance::{
    CONNECTION, Case, Harness, PartialBatch, Receiver, Sandbox, SandboxConfig, Vendor,
};

pub struct ZendeskCase;

fn base(sb: &Sandbox) -> String {
    sb.vendor(Vendor::Zendesk)
        .expect("zendesk runs")
        .base_url()
        .to_owned()
}

fn subdomain(sb: &Sandbox) -> String {
    sb.vendor(Vendor::Zendesk)
        .expect("zendesk runs")
        .credentials()
        .extra["subdomain"]
        .clone()
}

/// The vendor's API, called directly (not through the connector) with the demo API token.
async fn api(
    sb: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = sb
        .vendor(Vendor::Zendesk)
        .expect("zendesk runs")
        .credentials();
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", base(sb)))
        .basic_auth(format!("{}/token", c.username), c.api_token.clone());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("the emulator answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

impl Case for ZendeskCase {
    const PLUGIN: &'static str = weft_tests::ZENDESK;
    const VENDOR: Vendor = Vendor::Zendesk;
    const STREAM: &'static str = "tickets";
    /// The demo data has 40 tickets; 15 a page spans three pages and keeps the incremental
    /// export under its 10 requests a minute.
    const PAGE_SIZE: u32 = 15;

    fn config(sandbox: &Sandbox) -> Value {
        json!({"subdomain": subdomain(sandbox), "base_url": base(sandbox)})
    }

    fn unreachable_config(sandbox: &Sandbox, dead: &str) -> Value {
        json!({"subdomain": subdomain(sandbox), "base_url": dead})
    }

    fn auth(sandbox: &Sandbox) -> AuthSpec {
        let c = sandbox
            .vendor(Vendor::Zendesk)
            .expect("zendesk runs")
            .credentials();
        AuthSpec::Basic {
            username: format!("{}/token", c.username),
            password: SecretRef::Literal(Secret::new(c.api_token.expect("an API token"))),
        }
    }

    fn bad_auth(sandbox: &Sandbox) -> AuthSpec {
        let c = sandbox
            .vendor(Vendor::Zendesk)
            .expect("zendesk runs")
            .credentials();
        AuthSpec::Basic {
            username: format!("{}/token", c.username),
            password: SecretRef::Literal(Secret::new("not-the-token")),
        }
    }

    async fn expected_total(h: &Harness) -> usize {
        h.sandbox.data().size.tickets as usize
    }

    async fn change(h: &Harness, n: usize) -> Vec<String> {
        // Closed tickets cannot be updated; change the first `n` others.
        let (_, list) = api(
            &h.sandbox,
            reqwest::Method::GET,
            "/api/v2/tickets.json?page[size]=100",
            None,
        )
        .await;
        let ids: Vec<u64> = list["tickets"]
            .as_array()
            .expect("tickets")
            .iter()
            .filter(|t| t["status"] != "closed")
            .filter_map(|t| t["id"].as_u64())
            .take(n)
            .collect();
        for id in &ids {
            let (status, _) = api(
                &h.sandbox,
                reqwest::Method::PUT,
                &format!("/api/v2/tickets/{id}.json"),
                Some(json!({"ticket": {"tags": ["changed"]}})),
            )
            .await;
            assert_eq!(status, 200, "ticket {id} updated");
        }
        // Incremental exports leave out the last minute.
        h.sandbox.advance_clock(Duration::from_secs(61));
        ids.iter().map(u64::to_string).collect()
    }

    fn stale_cursor(_h: &Harness) -> String {
        json!({"start_time": 1}).to_string()
    }

    fn future_cursor(h: &Harness) -> String {
        let now = h
            .sandbox
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({"start_time": now + 365 * 86_400}).to_string()
    }

    fn partial_batch() -> PartialBatch {
        PartialBatch {
            stream: "users",
            mode: WriteMode::Create,
            key: Vec::new(),
            records: vec![
                json!({"name": "Ada Conformance", "email": "ada.conformance@example.com"}),
                json!({"name": "Bad Email", "email": "not an email"}),
                json!({"name": "Grace Conformance", "email": "grace.conformance@example.com"}),
            ],
            invalid: vec![1],
        }
    }

    async fn written(h: &Harness, stream: &str, id: &str) -> bool {
        api(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/api/v2/{stream}/{id}.json"),
            None,
        )
        .await
        .0 == 200
    }

    async fn genuine_delivery(h: &Harness, receiver: &Receiver) -> InboundRequest {
        h.plugin
            .subscribe(
                &h.context,
                CONNECTION,
                &h.config,
                &receiver.url,
                vec!["user.created".into()],
            )
            .await
            .expect("the connector creates the webhook");
        let (status, _) = api(
            &h.sandbox,
            reqwest::Method::POST,
            "/api/v2/users.json",
            Some(json!({"user": {"name": "Hook Test", "email": "hook.test@example.com"}})),
        )
        .await;
        assert_eq!(status, 201);
        receiver.next().await
    }

    /// Zendesk mints each webhook's signing secret; the operator reads it once and stores it.
    async fn issued_webhook_secret(h: &Harness) -> Option<String> {
        let (_, hooks) = api(&h.sandbox, reqwest::Method::GET, "/api/v2/webhooks", None).await;
        let id = hooks["webhooks"][0]["id"]
            .as_str()
            .expect("the webhook the connector created")
            .to_owned();
        let (_, secret) = api(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/api/v2/webhooks/{id}/signing_secret"),
            None,
        )
        .await;
        secret["signing_secret"]["secret"]
            .as_str()
            .map(str::to_owned)
    }
}

weft_tests::conformance!(suite, ZendeskCase);

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
async fn writes_more_than_100_records_as_several_bulk_jobs_in_order() {
    let h = Harness::start::<ZendeskCase>().await;
    let records: Vec<Value> = (0..130)
        .map(|i| json!({"name": format!("Bulk Org {i:03}")}))
        .collect();
    let outcomes = write(&h, "organizations", WriteMode::Create, &[], records).await;
    assert_eq!(outcomes.len(), 130);
    assert!(
        outcomes.iter().all(|o| o.status == WriteStatus::Created),
        "{:?}",
        outcomes.iter().find(|o| o.status != WriteStatus::Created)
    );
    let jobs = h
        .sandbox
        .requests(Some(Vendor::Zendesk))
        .into_iter()
        .filter(|r| r.uri.contains("organizations/create_many"))
        .count();
    assert_eq!(jobs, 2, "130 records are two jobs of at most 100");
    // Outcome i is record i: its id names the organization written from it.
    for i in [0usize, 99, 100, 129] {
        let id = outcomes[i].id.as_deref().unwrap();
        let (_, org) = api(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/api/v2/organizations/{id}.json"),
            None,
        )
        .await;
        assert_eq!(org["organization"]["name"], format!("Bulk Org {i:03}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_users_through_create_or_update_many_and_maps_each_result() {
    let h = Harness::start::<ZendeskCase>().await;
    let (_, existing) = api(
        &h.sandbox,
        reqwest::Method::GET,
        "/api/v2/users.json?page[size]=5",
        None,
    )
    .await;
    let user = existing["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["role"] == "end-user")
        .unwrap()
        .clone();
    let outcomes = write(
        &h,
        "users",
        WriteMode::Upsert,
        &["email"],
        vec![
            json!({"email": user["email"], "name": "Renamed By Upsert"}),
            json!({"email": "brand.new@example.com", "name": "Brand New"}),
            json!({"email": "broken", "name": "Broken"}),
            json!({"name": "No Key"}),
        ],
    )
    .await;
    assert_eq!(outcomes[0].status, WriteStatus::Updated);
    assert_eq!(
        outcomes[0].id.as_deref(),
        Some(user["id"].to_string().as_str())
    );
    assert_eq!(outcomes[1].status, WriteStatus::Created);
    assert_eq!(outcomes[2].status, WriteStatus::Failed);
    assert!(
        outcomes[2]
            .error
            .as_ref()
            .unwrap()
            .message()
            .contains("not properly formatted"),
        "{:?}",
        outcomes[2].error
    );
    assert_eq!(
        outcomes[3].status,
        WriteStatus::Failed,
        "a record without the key is not sent"
    );
    assert!(
        h.sandbox
            .requests(Some(Vendor::Zendesk))
            .iter()
            .any(|r| r.uri.contains("users/create_or_update_many"))
    );
    assert!(
        h.sandbox
            .requests(Some(Vendor::Zendesk))
            .iter()
            .any(|r| r.uri.contains("job_statuses/")),
        "the job's status is polled"
    );
    let (_, after) = api(
        &h.sandbox,
        reqwest::Method::GET,
        &format!("/api/v2/users/{}.json", user["id"]),
        None,
    )
    .await;
    assert_eq!(after["user"]["name"], "Renamed By Upsert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_refuses_a_key_zendesk_cannot_match_on() {
    let h = Harness::start::<ZendeskCase>().await;
    let batch = PartialBatch {
        stream: "users",
        mode: WriteMode::Upsert,
        key: vec!["phone".into()],
        records: vec![json!({"phone": "1"})],
        invalid: vec![],
    };
    let err = h.write(&batch).await.expect_err("phone is no upsert key");
    assert!(
        matches!(
            err.plugin_error(),
            Some(weft_runtime::bindings::PluginError::Config(_))
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_tickets_comments() {
    let mut config = SandboxConfig::default();
    config.data.size.tickets = 7;
    let h = Harness::start_with::<ZendeskCase>(config).await;
    let mut expected = 0;
    for id in 1..=7 {
        let (_, c) = api(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/api/v2/tickets/{id}/comments.json"),
            None,
        )
        .await;
        expected += c["count"].as_u64().unwrap() as usize;
    }
    assert!(expected > 0);
    let (comments, _) = h.read_all("ticket_comments", SyncMode::Full, None, 2).await;
    assert_eq!(comments.len(), expected);
    assert!(
        comments
            .iter()
            .all(|c| c["ticket_id"].is_u64() && c["body"].is_string())
    );
    let ids: std::collections::BTreeSet<String> =
        comments.iter().map(|c| c["id"].to_string()).collect();
    assert_eq!(ids.len(), expected, "no comment twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_export_drops_the_repeated_boundary_second() {
    let h = Harness::start::<ZendeskCase>().await;
    let total = h.sandbox.data().size.companies as usize;
    let (first, cursor) = h
        .read_all("organizations", SyncMode::Incremental, None, 100)
        .await;
    assert_eq!(first.len(), total);
    // The time-based export starts again at the last second it returned: nothing new.
    let (again, cursor) = h
        .read_all("organizations", SyncMode::Incremental, cursor, 100)
        .await;
    assert!(
        again.is_empty(),
        "the boundary second is not returned twice: {again:?}"
    );
    let id = first[3]["id"].as_u64().unwrap();
    let (status, _) = api(
        &h.sandbox,
        reqwest::Method::PUT,
        &format!("/api/v2/organizations/{id}.json"),
        Some(json!({"organization": {"notes": "changed"}})),
    )
    .await;
    assert_eq!(status, 200);
    h.sandbox.advance_clock(Duration::from_secs(61));
    let (changed, _) = h
        .read_all("organizations", SyncMode::Incremental, cursor, 100)
        .await;
    assert_eq!(
        changed
            .iter()
            .map(|o| o["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![id]
    );
}

/// A delivery verified by its signature (not the bearer token weft registers): `genuine` with
/// the bearer removed, checked under the signing secret Zendesk issued.
async fn verify_by_signature(h: &Harness, genuine: InboundRequest) -> weft_runtime::Verification {
    let secret = ZendeskCase::issued_webhook_secret(h)
        .await
        .expect("Zendesk issued a signing secret");
    let context = h
        .context_with::<ZendeskCase>(
            ZendeskCase::auth(&h.sandbox),
            h.config.clone(),
            Some(secret),
        )
        .await;
    let mut delivery = genuine;
    delivery
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
    h.verify_in(&context, delivery)
        .await
        .expect("verify answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_signed_now_is_accepted_by_its_signature() {
    let h = Harness::start::<ZendeskCase>().await;
    let receiver = Receiver::start().await;
    let genuine = ZendeskCase::genuine_delivery(&h, &receiver).await;
    let verification = verify_by_signature(&h, genuine).await;
    assert!(
        matches!(verification, weft_runtime::Verification::Accepted(_)),
        "{verification:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_signed_delivery_is_refused_as_a_replay() {
    let h = Harness::start::<ZendeskCase>().await;
    let receiver = Receiver::start().await;
    // The emulator's clock runs ten minutes ahead, so the timestamp it signs is ten minutes
    // away from the receiver's now: what a replay of a captured delivery looks like.
    h.sandbox.advance_clock(Duration::from_secs(600));
    let genuine = ZendeskCase::genuine_delivery(&h, &receiver).await;
    match verify_by_signature(&h, genuine).await {
        weft_runtime::Verification::Rejected(reason) => {
            assert!(reason.contains("at most 300 s"), "{reason}")
        }
        other => panic!("a delivery signed ten minutes away was accepted: {other:?}"),
    }
}
