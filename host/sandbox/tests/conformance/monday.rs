//! monday.com emulator conformance (crm-apis.md §6 and §8 "monday.com").

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use weft_sandbox::{DemoData, DemoSize, Sandbox, SandboxConfig, Vendor};

use crate::support::{Received, Receiver, client, fast_webhooks, start};

const DEALS: u64 = 1_234_567_003;

fn sized(n: u64) -> SandboxConfig {
    SandboxConfig {
        data: DemoData {
            seed: 4,
            size: DemoSize::uniform(n),
        },
        ..SandboxConfig::default()
    }
}

async fn gql_raw(sb: &Sandbox, token: &str, query: &str, variables: Value) -> reqwest::Response {
    let m = sb.vendor(Vendor::Monday).unwrap();
    client()
        .post(format!("{}/v2", m.base_url()))
        .header("Authorization", token)
        .header("API-Version", "2025-07")
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
}

async fn gql(sb: &Sandbox, query: &str) -> Value {
    let token = sb
        .vendor(Vendor::Monday)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    let r = gql_raw(sb, &token, query, json!({})).await;
    assert_eq!(r.status(), 200, "application errors are HTTP 200");
    r.json().await.unwrap()
}

#[tokio::test]
async fn monday_takes_the_raw_token_and_rejects_others() {
    let sb = start(sized(3)).await;
    let me = gql(&sb, "{ me { id name email } }").await;
    assert_eq!(me["data"]["me"]["name"], "Weft Demo");
    assert!(me["extensions"]["request_id"].is_string());
    let r = gql_raw(&sb, "wrong-token", "{ me { id } }", json!({})).await;
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["errors"][0]["message"].is_string());
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_boards_page_with_limit_and_page() {
    let sb = start(sized(3)).await;
    let ids = |v: &Value| {
        v["data"]["boards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let all = ids(&gql(&sb, "{ boards { id } }").await);
    assert_eq!(all.len(), 3);
    let first = ids(&gql(&sb, "{ boards(limit: 2, page: 1) { id } }").await);
    let second = ids(&gql(&sb, "{ boards(limit: 2, page: 2) { id } }").await);
    assert_eq!((first.len(), second.len()), (2, 1));
    assert_eq!([first, second].concat(), all);
    assert!(ids(&gql(&sb, "{ boards(limit: 2, page: 3) { id } }").await).is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_items_page_cursor_ends_with_null_via_next_items_page() {
    let sb = start(sized(12)).await;
    let r = gql(&sb, &format!("{{ boards(ids: [{DEALS}]) {{ id name items_page(limit: 5) {{ cursor items {{ id name column_values {{ id type text value }} }} }} }} }}")).await;
    let page = &r["data"]["boards"][0]["items_page"];
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let status = page["items"][0]["column_values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "status")
        .unwrap();
    assert!(status["text"].is_string());
    let raw: Value =
        serde_json::from_str(status["value"].as_str().unwrap()).expect("value is a JSON string");
    assert!(raw["index"].is_u64());
    let mut cursor = page["cursor"].as_str().unwrap().to_string();
    loop {
        let r = gql(
            &sb,
            &format!(
                "{{ next_items_page(cursor: \"{cursor}\", limit: 5) {{ cursor items {{ id }} }} }}"
            ),
        )
        .await;
        let p = &r["data"]["next_items_page"];
        ids.extend(
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string()),
        );
        match p["cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(ids.len(), 12);
    let r = gql(
        &sb,
        &format!("{{ boards(ids: [{DEALS}]) {{ items_page(limit: 501) {{ cursor }} }} }}"),
    )
    .await;
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("500"));
    assert!(
        r["data"]["boards"].is_null(),
        "partial data: the failing field is null"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_cursors_expire_after_60_minutes() {
    let sb = start(sized(12)).await;
    let r = gql(
        &sb,
        &format!("{{ boards(ids: [{DEALS}]) {{ items_page(limit: 2) {{ cursor }} }} }}"),
    )
    .await;
    let cursor = r["data"]["boards"][0]["items_page"]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    sb.advance_clock(Duration::from_secs(3_601));
    let r = gql(
        &sb,
        &format!("{{ next_items_page(cursor: \"{cursor}\") {{ cursor }} }}"),
    )
    .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "CursorExpiredError");
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_query_params_filter_on_the_server_including_last_updated() {
    let sb = start(sized(30)).await;
    let r = gql(&sb, &format!("{{ boards(ids: [{DEALS}]) {{ items_page(limit: 100, query_params: {{rules: [{{column_id: \"status\", compare_value: [1], operator: any_of}}]}}) {{ items {{ id column_values(ids: [\"status\"]) {{ text }} }} }} }} }}")).await;
    let items = r["data"]["boards"][0]["items_page"]["items"]
        .as_array()
        .unwrap();
    assert!(!items.is_empty() && items.len() < 30);
    assert!(
        items
            .iter()
            .all(|i| i["column_values"][0]["text"] == "Closed Won")
    );
    // Incremental: only items updated after a point in time.
    sb.advance_clock(Duration::from_secs(2 * 365 * 86_400));
    let id = items[0]["id"].as_str().unwrap();
    let r = gql(&sb, &format!("mutation {{ change_simple_column_value(board_id: {DEALS}, item_id: {id}, column_id: \"deal_value\", value: \"4242\") {{ id }} }}")).await;
    assert!(r.get("errors").is_none(), "{r}");
    let r = gql(&sb, &format!("{{ boards(ids: [{DEALS}]) {{ items_page(limit: 100, query_params: {{rules: [{{column_id: \"__last_updated__\", compare_value: [\"EXACT\", \"2027-01-01\"], operator: greater_than}}]}}) {{ items {{ id }} }} }} }}")).await;
    let changed: Vec<&str> = r["data"]["boards"][0]["items_page"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(changed, [id]);
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_create_item_parses_column_values_and_reports_bad_shapes() {
    let sb = start(sized(3)).await;
    let r = gql(
        &sb,
        &format!(r#"mutation {{ create_item(board_id: {DEALS}, group_id: "topics", item_name: "Acme renewal", column_values: "{{\"status\":{{\"label\":\"Proposal\"}},\"close_date\":{{\"date\":\"2026-08-14\"}},\"deal_value\":\"1200\"}}") {{ id name column_values(ids: ["status", "close_date", "deal_value"]) {{ id text value }} }} }}"#),
    )
    .await;
    assert!(r.get("errors").is_none(), "{r}");
    let item = &r["data"]["create_item"];
    assert_eq!(item["name"], "Acme renewal");
    let col = |id: &str| {
        item["column_values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(col("status")["text"], "Proposal");
    assert_eq!(col("close_date")["text"], "2026-08-14");
    assert_eq!(col("close_date")["value"], "{\"date\":\"2026-08-14\"}");
    assert_eq!(col("deal_value")["text"], "1200");
    let bad = gql(&sb, &format!(r#"mutation {{ create_item(board_id: {DEALS}, item_name: "Bad", column_values: "{{\"close_date\":{{\"day\":\"tomorrow\"}}}}") {{ id }} }}"#)).await;
    assert!(bad["data"]["create_item"].is_null());
    assert_eq!(
        bad["errors"][0]["extensions"]["code"],
        "ColumnValueException"
    );
    assert_eq!(bad["errors"][0]["path"], json!(["create_item"]));
    let unknown = gql(&sb, &format!(r#"mutation {{ create_item(board_id: {DEALS}, item_name: "X", column_values: "{{\"status\":{{\"label\":\"Brand new\"}}}}") {{ id }} }}"#)).await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"],
        "ColumnValueException"
    );
    let created = gql(&sb, &format!(r#"mutation {{ create_item(board_id: {DEALS}, item_name: "X", create_labels_if_missing: true, column_values: "{{\"status\":{{\"label\":\"Brand new\"}}}}") {{ column_values(ids: ["status"]) {{ text }} }} }}"#)).await;
    assert_eq!(
        created["data"]["create_item"]["column_values"][0]["text"],
        "Brand new"
    );
    let missing = gql(
        &sb,
        r#"mutation { create_item(board_id: 42, item_name: "X") { id } }"#,
    )
    .await;
    assert_eq!(
        missing["errors"][0]["extensions"]["code"],
        "InvalidBoardIdException"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_variables_and_multiple_column_changes() {
    let sb = start(sized(3)).await;
    let token = sb
        .vendor(Vendor::Monday)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    let r: Value = gql_raw(
        &sb,
        &token,
        "query ($ids: [ID!]) { items(ids: $ids) { id name board { id } } }",
        json!({"ids": ["30000000001"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(r["data"]["items"][0]["board"]["id"], DEALS.to_string());
    let r = gql(&sb, &format!(r#"mutation {{ change_multiple_column_values(board_id: {DEALS}, item_id: 30000000001, column_values: "{{\"name\":\"Renamed\",\"deal_value\":\"99\"}}") {{ name column_values(ids: ["deal_value"]) {{ text }} }} }}"#)).await;
    assert_eq!(
        r["data"]["change_multiple_column_values"]["name"],
        "Renamed"
    );
    assert_eq!(
        r["data"]["change_multiple_column_values"]["column_values"][0]["text"],
        "99"
    );
    let r = gql(&sb, "mutation { delete_item(item_id: 30000000001) { id } }").await;
    assert_eq!(r["data"]["delete_item"]["id"], "30000000001");
    let r = gql(
        &sb,
        "mutation { archive_item(item_id: 30000000001) { id } }",
    )
    .await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"],
        "InvalidItemIdException"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_complexity_is_reported_and_the_budget_runs_out_with_429() {
    let mut config = sized(3);
    config.monday.complexity_per_minute = 25_000;
    let sb = start(config).await;
    let r = gql(&sb, &format!(r#"mutation {{ complexity {{ before after query reset_in_x_seconds }} create_item(board_id: {DEALS}, item_name: "A") {{ id }} }}"#)).await;
    let c = &r["data"]["complexity"];
    assert_eq!(c["before"], 25_000);
    assert_eq!(c["query"], 10_000);
    assert_eq!(c["after"], 15_000);
    gql(
        &sb,
        &format!(r#"mutation {{ create_item(board_id: {DEALS}, item_name: "B") {{ id }} }}"#),
    )
    .await;
    let token = sb
        .vendor(Vendor::Monday)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    let r = gql_raw(
        &sb,
        &token,
        &format!(r#"mutation {{ create_item(board_id: {DEALS}, item_name: "C") {{ id }} }}"#),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["errors"][0]["extensions"]["code"],
        "COMPLEXITY_BUDGET_EXHAUSTED"
    );
    assert!(
        b["errors"][0]["extensions"]["retry_in_seconds"]
            .as_i64()
            .unwrap()
            >= 1
    );
    sb.advance_clock(Duration::from_secs(60));
    assert!(
        gql(
            &sb,
            &format!(r#"mutation {{ create_item(board_id: {DEALS}, item_name: "D") {{ id }} }}"#)
        )
        .await
        .get("errors")
        .is_none()
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_query_complexity_cap_and_daily_limit() {
    let mut config = sized(3);
    config.monday.max_complexity_per_query = 1_000;
    config.monday.daily_calls = 3;
    let sb = start(config).await;
    let r = gql(
        &sb,
        &format!(
            "{{ boards(ids: [{DEALS}]) {{ items_page(limit: 500) {{ items {{ id name }} }} }} }}"
        ),
    )
    .await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"],
        "maxComplexityExceeded"
    );
    let parse = gql(&sb, "{ boards { id ").await;
    assert!(
        parse["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Parse error")
    );
    gql(&sb, "{ me { id } }").await;
    let token = sb
        .vendor(Vendor::Monday)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    let r = gql_raw(&sb, &token, "{ me { id } }", json!({})).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("ratelimit"));
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"],
        "DAILY_LIMIT_EXCEEDED"
    );
    sb.shutdown().await;
}

fn echo_challenge(r: &Received) -> Option<(axum::http::StatusCode, String)> {
    let v: Value = serde_json::from_slice(&r.body).ok()?;
    v.get("challenge").map(|c| {
        (
            axum::http::StatusCode::OK,
            json!({"challenge": c}).to_string(),
        )
    })
}

#[tokio::test]
async fn monday_create_webhook_needs_the_challenge_echo_and_events_carry_a_jwt() {
    let sb = start(fast_webhooks(sized(3))).await;
    let silent = Receiver::start(0).await;
    let r = gql(&sb, &format!(r#"mutation {{ create_webhook(board_id: {DEALS}, url: "{}", event: create_item) {{ id }} }}"#, silent.url)).await;
    assert!(
        r["data"]["create_webhook"].is_null(),
        "a receiver that does not echo the challenge is refused"
    );
    let rx = Receiver::start_with(0, echo_challenge).await;
    let r = gql(&sb, &format!(r#"mutation {{ create_webhook(board_id: {DEALS}, url: "{}/monday", event: create_item) {{ id board_id }} }}"#, rx.url)).await;
    assert!(r.get("errors").is_none(), "{r}");
    assert_eq!(r["data"]["create_webhook"]["board_id"], DEALS.to_string());
    assert!(rx.received()[0].json()["challenge"].is_string());
    gql(
        &sb,
        &format!(r#"mutation {{ create_item(board_id: {DEALS}, item_name: "Hooked") {{ id }} }}"#),
    )
    .await;
    let got = rx.wait_for(2).await;
    let ev = got[1].json();
    assert_eq!(
        ev["event"]["type"], "create_pulse",
        "event types differ from the subscription enum"
    );
    assert_eq!(ev["event"]["pulseName"], "Hooked");
    assert_eq!(ev["event"]["boardId"], DEALS);
    let jwt = got[1].header("authorization").unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let secret = sb.vendor(Vendor::Monday).unwrap().credentials().extra["signing_secret"].clone();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(
        &key,
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
        &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    )
    .expect("HS256 with the signing secret");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert!(claims["accountId"].is_u64() && claims["exp"].is_i64());
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_concurrency_limit_answers_429() {
    let mut config = sized(3);
    config.monday.concurrent_requests = 1;
    let sb = start(config).await;
    sb.set_faults(
        Some(Vendor::Monday),
        weft_sandbox::FaultConfig {
            slow: 1.0,
            slow_delay_ms: 300,
            ..weft_sandbox::FaultConfig::default()
        },
    );
    let token = sb
        .vendor(Vendor::Monday)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    let (a, b) = tokio::join!(
        gql_raw(&sb, &token, "{ me { id } }", json!({})),
        gql_raw(&sb, &token, "{ me { id } }", json!({}))
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 429]);
    let limited = if a.status() == 429 { a } else { b };
    assert_eq!(
        limited.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"],
        "maxConcurrencyExceeded"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_unknown_fields_fail_validation_with_undefined_field() {
    let sb = start(sized(3)).await;
    let r = gql(&sb, &format!("query {{ boards(ids: [{DEALS}]) {{ id pos items_page(limit: 1) {{ items {{ id colour }} }} }} }}")).await;
    // Validation fails the whole document: no data, one error per unknown field.
    assert!(r.get("data").is_none(), "{r}");
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{r}");
    assert_eq!(
        errors[0]["message"],
        "Field 'pos' doesn't exist on type 'Board'"
    );
    assert_eq!(errors[0]["path"], json!(["query", "boards", "pos"]));
    assert_eq!(
        errors[0]["extensions"],
        json!({"code": "undefinedField", "typeName": "Board", "fieldName": "pos"})
    );
    assert_eq!(errors[0]["locations"][0]["line"], 1);
    assert_eq!(
        errors[1]["path"],
        json!(["query", "boards", "items_page", "items", "colour"])
    );
    assert_eq!(errors[1]["extensions"]["typeName"], "Item");
    let root = gql(&sb, "mutation { launch_rocket(id: 1) { id } }").await;
    assert_eq!(
        root["errors"][0]["extensions"],
        json!({"code": "undefinedField", "typeName": "Mutation", "fieldName": "launch_rocket"})
    );
    // __typename and fields of ColumnValue's implementations (selected through inline
    // fragments) are part of the schema.
    let ok = gql(&sb, &format!("{{ boards(ids: [{DEALS}]) {{ __typename items_page(limit: 1) {{ items {{ column_values {{ id ... on StatusValue {{ label }} }} }} }} }} }}")).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_create_board_group_and_column_then_write_and_read_items() {
    let sb = start(sized(3)).await;
    let r = gql(&sb, r#"mutation { create_board(board_name: "Renewals", board_kind: public, description: "From the API") { id name board_kind description columns { id type } groups { id title } } }"#).await;
    assert!(r.get("errors").is_none(), "{r}");
    let board = &r["data"]["create_board"];
    assert_eq!(board["name"], "Renewals");
    assert_eq!(board["board_kind"], "public");
    assert_eq!(board["columns"], json!([{"id": "name", "type": "name"}]));
    let board_id = board["id"].as_str().unwrap().to_string();
    // The new board is listed with the others.
    let all = gql(&sb, "{ boards(limit: 50) { id } }").await;
    assert!(
        all["data"]["boards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == board_id.as_str())
    );

    let g = gql(&sb, &format!(r#"mutation {{ create_group(board_id: {board_id}, group_name: "Q3") {{ id title color }} }}"#)).await;
    let group_id = g["data"]["create_group"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(g["data"]["create_group"]["title"], "Q3");
    let groups = gql(
        &sb,
        &format!("{{ boards(ids: [{board_id}]) {{ groups {{ id }} }} }}"),
    )
    .await;
    assert_eq!(
        groups["data"]["boards"][0]["groups"][0]["id"],
        group_id.as_str(),
        "new groups go to the top"
    );

    let c = gql(&sb, &format!(r#"mutation {{ create_column(board_id: {board_id}, title: "Stage", column_type: status) {{ id title type }} }}"#)).await;
    let status_col = c["data"]["create_column"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(status_col.starts_with("status_"), "{c}");
    let c = gql(&sb, &format!(r#"mutation {{ create_column(board_id: {board_id}, id: "notes", title: "Notes", column_type: long_text, after_column_id: "name") {{ id }} }}"#)).await;
    assert_eq!(c["data"]["create_column"]["id"], "notes");
    let dup = gql(&sb, &format!(r#"mutation {{ create_column(board_id: {board_id}, id: "notes", title: "Again", column_type: text) {{ id }} }}"#)).await;
    assert!(
        dup["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{dup}"
    );
    let untyped = gql(
        &sb,
        &format!(
            r#"mutation {{ create_column(board_id: {board_id}, title: "Untyped") {{ id }} }}"#
        ),
    )
    .await;
    assert_eq!(
        untyped["errors"][0]["extensions"]["code"],
        "missingRequiredArguments"
    );
    let columns = gql(
        &sb,
        &format!("{{ boards(ids: [{board_id}]) {{ columns {{ id }} }} }}"),
    )
    .await;
    let ids: Vec<&str> = columns["data"]["boards"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["name", "notes", status_col.as_str()]);

    let values = json!({status_col.clone(): {"label": "Proposal"}, "notes": {"text": "Call back"}})
        .to_string();
    let item = gql_with(&sb, &format!(r#"mutation ($v: JSON!) {{ create_item(board_id: {board_id}, group_id: "{group_id}", item_name: "Acme", column_values: $v) {{ id group {{ id title }} board {{ id }} column_values {{ id text }} }} }}"#), json!({"v": values})).await;
    assert!(item.get("errors").is_none(), "{item}");
    let created = &item["data"]["create_item"];
    assert_eq!(created["group"], json!({"id": group_id, "title": "Q3"}));
    assert_eq!(created["board"]["id"], board_id.as_str());
    assert_eq!(
        created["column_values"],
        json!([{"id": "notes", "text": "Call back"}, {"id": status_col, "text": "Proposal"}])
    );
    let page = gql(
        &sb,
        &format!(
            "{{ boards(ids: [{board_id}]) {{ items_count items_page {{ items {{ name }} }} }} }}"
        ),
    )
    .await;
    assert_eq!(page["data"]["boards"][0]["items_count"], 1);
    assert_eq!(
        page["data"]["boards"][0]["items_page"]["items"],
        json!([{"name": "Acme"}])
    );
    sb.shutdown().await;
}

async fn gql_with(sb: &Sandbox, query: &str, variables: Value) -> Value {
    let token = sb
        .vendor(Vendor::Monday)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    gql_raw(sb, &token, query, variables)
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn monday_items_page_by_column_values_matches_any_value_per_column_and_pages() {
    let sb = start(sized(30)).await;
    let all = gql(&sb, &format!("{{ boards(ids: [{DEALS}]) {{ items_page(limit: 100) {{ items {{ id column_values(ids: [\"status\"]) {{ text }} }} }} }} }}")).await;
    let items = all["data"]["boards"][0]["items_page"]["items"]
        .as_array()
        .unwrap()
        .clone();
    let with = |label: &str| {
        items
            .iter()
            .filter(|i| i["column_values"][0]["text"] == label)
            .count()
    };
    let expected = with("Proposal") + with("Negotiation");
    assert!(expected > 2, "the demo data should hold several such deals");

    let q = |cursor: Option<&str>| match cursor {
        None => format!(
            r#"{{ items_page_by_column_values(limit: 2, board_id: {DEALS}, columns: [{{column_id: "status", column_values: ["Proposal", "Negotiation"]}}]) {{ cursor items {{ id column_values(ids: ["status"]) {{ text }} }} }} }}"#
        ),
        Some(c) => format!(
            r#"{{ items_page_by_column_values(limit: 2, cursor: "{c}") {{ cursor items {{ id column_values(ids: ["status"]) {{ text }} }} }} }}"#
        ),
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let r = gql(&sb, &q(cursor.as_deref())).await;
        assert!(r.get("errors").is_none(), "{r}");
        let page = &r["data"]["items_page_by_column_values"];
        for i in page["items"].as_array().unwrap() {
            let text = i["column_values"][0]["text"].as_str().unwrap();
            assert!(text == "Proposal" || text == "Negotiation", "{i}");
            seen.push(i["id"].clone());
        }
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), expected);
    // Two columns must both match.
    let both = gql(&sb, &format!(r#"{{ items_page_by_column_values(limit: 50, board_id: {DEALS}, columns: [{{column_id: "status", column_values: ["Proposal"]}}, {{column_id: "name", column_values: ["no such deal"]}}]) {{ items {{ id }} }} }}"#)).await;
    assert_eq!(
        both["data"]["items_page_by_column_values"]["items"],
        json!([])
    );
    let bad = gql(&sb, &format!(r#"{{ items_page_by_column_values(limit: 5, board_id: {DEALS}, columns: [{{column_id: "nope", column_values: ["x"]}}]) {{ items {{ id }} }} }}"#)).await;
    assert_eq!(
        bad["errors"][0]["extensions"]["code"],
        "InvalidColumnIdException"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_items_show_their_updates() {
    let sb = start(sized(3)).await;
    let item = gql(
        &sb,
        &format!("{{ boards(ids: [{DEALS}]) {{ items_page(limit: 1) {{ items {{ id }} }} }} }}"),
    )
    .await;
    let id = item["data"]["boards"][0]["items_page"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for body in ["first", "second"] {
        let r = gql(
            &sb,
            &format!(r#"mutation {{ create_update(item_id: {id}, body: "{body}") {{ id }} }}"#),
        )
        .await;
        assert!(r.get("errors").is_none(), "{r}");
    }
    let r = gql(
        &sb,
        &format!("{{ items(ids: [{id}]) {{ updates {{ body }} }} }}"),
    )
    .await;
    assert_eq!(
        r["data"]["items"][0]["updates"],
        json!([{"body": "second"}, {"body": "first"}])
    );
    sb.shutdown().await;
}
