//! The `monday` connector against the monday.com emulator: the conformance suite, then the
//! challenge handshake, JWT checks, complexity budget and aliased writes.

use std::time::Duration;

use base64_url::encode as b64;
use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::bindings::{PluginError, SyncMode, WriteMode};
use weft_runtime::{InboundRequest, Verification, WriteStatus};
use weft_tests::conformance::{
    CONNECTION, Case, Harness, PartialBatch, Receiver, Sandbox, SandboxConfig, Vendor,
};

pub struct Monday;

fn literal(s: &str) -> SecretRef {
    SecretRef::Literal(Secret::new(s))
}

/// The emulator's board id by name (`Deals`), from its published credentials.
fn board(sandbox: &Sandbox, name: &str) -> String {
    let c = sandbox.vendor(Vendor::Monday).unwrap().credentials();
    c.extra["boards"]
        .split(", ")
        .find_map(|b| b.strip_prefix(&format!("{name}=")))
        .expect("board")
        .to_owned()
}

async fn gql(sandbox: &Sandbox, query: &str) -> Value {
    let c = sandbox.vendor(Vendor::Monday).unwrap().credentials();
    reqwest::Client::new()
        .post(&c.extra["api_url"])
        .header("Authorization", c.api_token.unwrap())
        .json(&json!({"query": query}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn item_ids(sandbox: &Sandbox, board_name: &str, n: usize) -> Vec<String> {
    let r = gql(
        sandbox,
        &format!(
            "{{ boards(ids: [{}]) {{ items_page(limit: {n}) {{ items {{ id }} }} }} }}",
            board(sandbox, board_name)
        ),
    )
    .await;
    r["data"]["boards"][0]["items_page"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

mod base64_url {
    pub fn encode(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

/// An HS256 JWT over `claims` under `secret`, as monday signs deliveries.
fn jwt(secret: &str, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "{input}.{}",
        b64(ring::hmac::sign(&key, input.as_bytes()).as_ref())
    )
}

impl Case for Monday {
    const PLUGIN: &'static str = weft_tests::MONDAY;
    const VENDOR: Vendor = Vendor::Monday;
    const STREAM: &'static str = "items";
    const PAGE_SIZE: u32 = 10;

    fn config(sandbox: &Sandbox) -> Value {
        let c = sandbox.vendor(Vendor::Monday).unwrap().credentials();
        json!({"api_url": c.extra["api_url"], "board_ids": [board(sandbox, "Deals")]})
    }

    fn unreachable_config(sandbox: &Sandbox, dead: &str) -> Value {
        json!({"api_url": format!("{dead}/v2"), "board_ids": [board(sandbox, "Deals")]})
    }

    fn auth(sandbox: &Sandbox) -> AuthSpec {
        AuthSpec::ApiKey {
            value: literal(
                &sandbox
                    .vendor(Vendor::Monday)
                    .unwrap()
                    .credentials()
                    .api_token
                    .unwrap(),
            ),
        }
    }

    fn bad_auth(_sandbox: &Sandbox) -> AuthSpec {
        AuthSpec::ApiKey {
            value: literal("not-a-monday-token"),
        }
    }

    fn webhook_secret(sandbox: &Sandbox) -> Option<String> {
        Some(sandbox.vendor(Vendor::Monday).unwrap().credentials().extra["signing_secret"].clone())
    }

    async fn expected_total(h: &Harness) -> usize {
        h.sandbox.data().size.deals as usize
    }

    async fn change(h: &Harness, n: usize) -> Vec<String> {
        // updated_at has one-second resolution: let the clock pass the cursor's instant.
        h.sandbox.advance_clock(Duration::from_secs(2));
        let ids = item_ids(&h.sandbox, "Deals", n).await;
        let deals = board(&h.sandbox, "Deals");
        for id in &ids {
            let r = gql(&h.sandbox, &format!(r#"mutation {{ change_multiple_column_values(board_id: {deals}, item_id: {id}, column_values: "{{\"deal_value\": \"42\"}}") {{ id }} }}"#)).await;
            assert!(r.get("errors").is_none(), "{r}");
        }
        ids
    }

    fn stale_cursor(_h: &Harness) -> String {
        json!({"since": "2000-01-01T00:00:00Z"}).to_string()
    }

    fn future_cursor(_h: &Harness) -> String {
        json!({"since": "2100-01-01T00:00:00Z"}).to_string()
    }

    fn partial_batch() -> PartialBatch {
        PartialBatch {
            stream: "items",
            mode: WriteMode::Create,
            key: vec![],
            records: vec![
                json!({"name": "Weft deal A", "column_values": {"deal_value": "100"}}),
                json!({"name": "Weft deal B", "column_values": {"status": {"label": "No such stage"}}}),
                json!({"name": "Weft deal C", "column_values": {"close_date": {"date": "2026-08-14"}, "status": {"label": "Proposal"}}}),
                json!({"name": "Weft deal D", "column_values": {"deal_value": "lots"}}),
            ],
            invalid: vec![1, 3],
        }
    }

    async fn written(h: &Harness, _stream: &str, id: &str) -> bool {
        let r = gql(
            &h.sandbox,
            &format!("{{ items(ids: [{id}]) {{ id name }} }}"),
        )
        .await;
        r["data"]["items"].as_array().is_some_and(|a| a.len() == 1)
    }

    async fn genuine_delivery(h: &Harness, receiver: &Receiver) -> InboundRequest {
        h.plugin
            .subscribe(
                &h.context,
                CONNECTION,
                &h.config,
                &receiver.url,
                vec!["create_item".into()],
            )
            .await
            .expect("subscribe");
        let challenge = receiver.next().await;
        assert!(
            String::from_utf8_lossy(&challenge.body).contains("challenge"),
            "monday checks the URL first"
        );
        let deals = board(&h.sandbox, "Deals");
        gql(
            &h.sandbox,
            &format!(
                r#"mutation {{ create_item(board_id: {deals}, item_name: "Hooked") {{ id }} }}"#
            ),
        )
        .await;
        receiver.next().await
    }

    /// monday's JWT does not cover the body: a forger without the signing secret cannot make
    /// a valid one, so it alters the signature of the genuine token.
    fn forge(genuine: &InboundRequest) -> InboundRequest {
        let mut forged = genuine.clone();
        for (k, v) in forged.headers.iter_mut() {
            if k.eq_ignore_ascii_case("authorization") {
                // The signature's first character: all six of its bits are signature bits.
                if let Some(at) = v.rfind('.').map(|dot| dot + 1).filter(|at| *at < v.len()) {
                    let swapped = if v.as_bytes()[at] == b'A' { "B" } else { "A" };
                    v.replace_range(at..at + 1, swapped);
                }
            }
        }
        forged
    }
}

weft_tests::conformance!(suite, Monday);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_answers_the_challenge_handshake_by_echoing_it() {
    let h = Harness::start::<Monday>().await;
    let receiver = Receiver::start().await;
    h.plugin
        .subscribe(
            &h.context,
            CONNECTION,
            &h.config,
            &receiver.url,
            vec!["create_item".into()],
        )
        .await
        .expect("subscribe");
    let challenge = receiver.next().await;
    let sent: Value = serde_json::from_slice(&challenge.body).unwrap();
    match h.verify(challenge).await.unwrap() {
        Verification::Handshake(reply) => {
            assert_eq!(reply.status, 200);
            let body: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(body["challenge"], sent["challenge"]);
        }
        other => panic!("a challenge is a handshake, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_signed_delivery_becomes_an_item_event() {
    let h = Harness::start::<Monday>().await;
    let receiver = Receiver::start().await;
    let genuine = Monday::genuine_delivery(&h, &receiver).await;
    match h.verify(genuine).await.unwrap() {
        Verification::Accepted(events) => {
            assert_eq!(events.len(), 1);
            assert_eq!(
                (events[0].stream.as_str(), events[0].action.as_str()),
                ("items", "create_pulse")
            );
            let record: Value = serde_json::from_str(&events[0].record).unwrap();
            assert_eq!(record["name"], "Hooked");
            assert_eq!(record["board_id"], board(&h.sandbox, "Deals"));
        }
        other => panic!("accepted, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_under_another_secret_expired_or_missing_is_rejected() {
    let h = Harness::start::<Monday>().await;
    let receiver = Receiver::start().await;
    let genuine = Monday::genuine_delivery(&h, &receiver).await;
    let secret = Monday::webhook_secret(&h.sandbox).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let with_auth = |token: Option<String>| {
        let mut r = genuine.clone();
        r.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        if let Some(t) = token {
            r.headers.push(("authorization".into(), t));
        }
        r
    };
    // The same claims under the right secret pass: the checks below fail for their own reason.
    assert!(matches!(
        h.verify(with_auth(Some(jwt(
            &secret,
            &json!({"accountId": 1, "exp": now + 300})
        ))))
        .await
        .unwrap(),
        Verification::Accepted(_)
    ));
    for forged in [
        with_auth(Some(jwt(
            "another-app's-secret",
            &json!({"accountId": 1, "exp": now + 300}),
        ))),
        with_auth(Some(jwt(
            &secret,
            &json!({"accountId": 1, "exp": now - 3_600}),
        ))),
        with_auth(None),
    ] {
        match h.verify(forged).await.unwrap() {
            Verification::Rejected(reason) => assert!(!reason.is_empty()),
            other => panic!("rejected, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complexity_budget_exhausted_is_rate_limited_with_the_stated_wait() {
    let mut config = SandboxConfig::default();
    config.monday.complexity_per_minute = 1_000;
    let h = Harness::start_with::<Monday>(config).await;
    let err = h
        .plugin
        .read(
            &h.context,
            CONNECTION,
            &h.config,
            Harness::request("items", SyncMode::Full, None, 100),
        )
        .await
        .expect_err("over budget");
    match err.plugin_error() {
        Some(PluginError::RateLimited(r)) => {
            assert!(
                r.message.contains("COMPLEXITY_BUDGET_EXHAUSTED"),
                "{}",
                r.message
            );
            assert!(
                r.retry_after_ms
                    .is_some_and(|ms| (1_000..=60_000).contains(&ms)),
                "{:?}",
                r.retry_after_ms
            );
        }
        other => panic!("rate-limited, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_send_aliased_mutations_and_upsert_by_column() {
    let h = Harness::start::<Monday>().await;
    let contacts = board(&h.sandbox, "Contacts");
    let h = &h;
    let write = |mode, key: Vec<&str>, records: Vec<Value>| {
        let batch = PartialBatch {
            stream: "items",
            mode,
            key: key.into_iter().map(String::from).collect(),
            records,
            invalid: vec![],
        };
        async move { h.write(&batch).await.expect("write") }
    };
    let records: Vec<Value> = (0..30).map(|i| json!({"board_id": contacts, "name": format!("Person {i}"), "column_values": {"email": {"email": format!("p{i}@weft.example"), "text": format!("p{i}@weft.example")}}})).collect();
    let created = write(WriteMode::Create, vec![], records).await;
    assert!(
        created.iter().all(|o| o.status == WriteStatus::Created),
        "{created:?}"
    );
    let posts = h
        .sandbox
        .requests(Some(Vendor::Monday))
        .into_iter()
        .filter(|r| r.body.contains("create_item"))
        .count();
    assert_eq!(posts, 2, "30 creates go as 25 + 5 aliased mutations");
    let upserted = write(
        WriteMode::Upsert,
        vec!["email"],
        vec![
            json!({"board_id": contacts, "name": "Person 3 renamed", "column_values": {"email": "p3@weft.example", "title": "CTO"}}),
            json!({"board_id": contacts, "name": "Someone new", "column_values": {"email": "new@weft.example"}}),
        ],
    )
    .await;
    assert_eq!(
        (upserted[0].status, upserted[0].id.as_deref()),
        (WriteStatus::Updated, created[3].id.as_deref())
    );
    assert_eq!(upserted[1].status, WriteStatus::Created);
    let id = created[3].id.clone().unwrap();
    let r = gql(
        &h.sandbox,
        &format!("{{ items(ids: [{id}]) {{ name column_values(ids: [\"title\"]) {{ text }} }} }}"),
    )
    .await;
    assert_eq!(r["data"]["items"][0]["name"], "Person 3 renamed");
    assert_eq!(r["data"]["items"][0]["column_values"][0]["text"], "CTO");
    let deleted = write(
        WriteMode::Delete,
        vec!["id"],
        vec![json!({"id": id}), json!({"id": "999"})],
    )
    .await;
    assert_eq!(deleted[0].status, WriteStatus::Deleted);
    assert_eq!(deleted[1].status, WriteStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_carry_column_values_by_id() {
    let h = Harness::start::<Monday>().await;
    let page = h
        .read_page(Harness::request("items", SyncMode::Full, None, 5))
        .await
        .unwrap();
    let records: Vec<Value> = serde_json::from_str(&page.records).unwrap();
    assert_eq!(records.len(), 5);
    let r = &records[0];
    assert_eq!(r["board_id"], board(&h.sandbox, "Deals"));
    assert_eq!(r["column_values"]["status"]["type"], "status");
    assert!(
        r["column_values"]["status"]["value"]["index"].is_number(),
        "value is parsed JSON: {r}"
    );
    assert!(r["column_values"]["deal_value"]["text"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_deletes_every_webhook_subscribe_created() {
    let h = Harness::start::<Monday>().await;
    let receiver = Receiver::start().await;
    let sub = h
        .plugin
        .subscribe(
            &h.context,
            CONNECTION,
            &h.config,
            &receiver.url,
            vec!["create_item".into(), "change_column_value".into()],
        )
        .await
        .unwrap();
    let webhooks = |state: Value| state["webhooks"].as_array().unwrap().len();
    let state = || async {
        reqwest::get(format!(
            "{}/admin/vendors/monday/state",
            h.sandbox.admin_url()
        ))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
    };
    assert_eq!(
        webhooks(state().await),
        2,
        "one webhook per board and event"
    );
    assert_eq!(sub.id.split(',').count(), 2);
    h.plugin
        .unsubscribe(&h.context, CONNECTION, &h.config, &sub.id)
        .await
        .unwrap();
    assert_eq!(webhooks(state().await), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boards_stream_pages_through_the_boards() {
    let h = Harness::start::<Monday>().await;
    let (boards, _) = h.read_all("boards", SyncMode::Full, None, 2).await;
    let ids: Vec<&str> = boards.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.contains(&board(&h.sandbox, "Deals").as_str()));
    assert!(
        boards[0]["columns"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
}
