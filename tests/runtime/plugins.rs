//! The first-party plugins through the host: the map transform and the http-json connector.

use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::bindings::{PluginError, SyncMode, WriteMode};
use weft_runtime::{
    Batch, CallContext, CallError, InboundRequest, ReadRequest, Verification, WriteRequest,
    WriteStatus,
};
use weft_tests::upstream::Upstream;
use weft_tests::*;

fn items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("{i:05}"), "name": format!("item {i}"), "updated_at": format!("2026-01-01T00:{:02}:00Z", i % 60)}))
        .collect()
}

#[tokio::test]
async fn map_maps_fields_constants_and_cases_and_rejects_unmatched() {
    let rt = runtime(|_| {});
    let map = transform(&rt, MAP).await;
    assert_eq!(map.info().name, "map");
    let config = json!({
        "fields": {"Subject": "subject", "City": "address.city", "Tag": "tags.1"},
        "constants": {"Source": "zendesk"},
        "case": {"Status": {"from": "status", "map": {"new": "Active", "open": "Active", "closed": "Inactive"}}}
    });
    let records = json!([
        {"subject": "Printer on fire", "address": {"city": "Oslo"}, "tags": ["a", "urgent"], "status": "new"},
        {"subject": "Refund", "address": {"city": "Lima"}, "status": "closed"},
        {"subject": "???", "status": "haunted"}
    ]);
    let result = map
        .process(
            &CallContext::default(),
            Batch {
                config: config.to_string(),
                records: records.to_string(),
                lookup: None,
            },
        )
        .await
        .unwrap();
    let out: Value = serde_json::from_str(&result.records).unwrap();
    assert_eq!(
        out,
        json!([
            {"Subject": "Printer on fire", "City": "Oslo", "Tag": "urgent", "Source": "zendesk", "Status": "Active"},
            {"Subject": "Refund", "City": "Lima", "Tag": null, "Source": "zendesk", "Status": "Inactive"}
        ])
    );
    assert_eq!(result.rejects.len(), 1);
    assert_eq!(result.rejects[0].index, 2);
    assert_eq!(result.rejects[0].field.as_deref(), Some("Status"));
}

#[tokio::test]
async fn map_output_schema_names_a_field_the_input_lacks() {
    let rt = runtime(|_| {});
    let map = transform(&rt, MAP).await;
    let input = json!({"type": "object", "properties": {"subject": {"type": "string"}, "id": {"type": "integer"}}});
    let ok = map
        .output_schema(
            &CallContext::default(),
            &json!({"fields": {"Subject": "subject"}}),
            &input,
            None,
        )
        .await
        .unwrap();
    assert_eq!(ok["properties"]["Subject"], json!({"type": "string"}));
    let err = map
        .output_schema(
            &CallContext::default(),
            &json!({"fields": {"Subject": "subjekt"}}),
            &input,
            None,
        )
        .await
        .unwrap_err();
    match err {
        CallError::Plugin {
            error: PluginError::Config(message),
            ..
        } => {
            assert_eq!(
                message,
                "`Subject` maps from `subjekt`, which the input does not have; it has: id, subject"
            )
        }
        other => panic!("expected a config error, got {other}"),
    }
}

#[tokio::test]
async fn map_refuses_a_config_with_unknown_keys() {
    let rt = runtime(|_| {});
    let map = transform(&rt, MAP).await;
    let err = map
        .process(
            &CallContext::default(),
            Batch {
                config: json!({"feilds": {}}).to_string(),
                records: "[]".into(),
                lookup: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.plugin_error(), Some(PluginError::Config(m)) if m.contains("unknown field `feilds`")),
        "{err}"
    );
}

async fn http_json(
    upstream: &Upstream,
    auth: AuthSpec,
) -> (weft_runtime::ConnectorPlugin, CallContext, Value) {
    let rt = runtime(|_| {});
    let plugin = connector(&rt, HTTP_JSON).await;
    let config = json!({"base_url": upstream.url()});
    let secrets = secrets().await;
    let connections = connections(
        &plugin,
        "api",
        config.clone(),
        auth,
        vec![loopback_rule(upstream.addr)],
        &secrets,
        |_| {},
    )
    .await;
    (
        plugin,
        CallContext::new("default").with_connections(connections),
        config,
    )
}

fn read(mode: SyncMode, cursor: Option<String>) -> ReadRequest {
    ReadRequest {
        stream: "items".into(),
        mode,
        cursor,
        page_size: Some(100),
        options: "{}".into(),
    }
}

#[tokio::test]
async fn http_json_reads_every_page_with_the_credential_attached_by_the_host() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(250));
    upstream.require_bearer("s3cret-token");
    let auth = AuthSpec::Bearer {
        token: SecretRef::Literal(Secret::new("s3cret-token")),
    };
    let (plugin, ctx, config) = http_json(&upstream, auth).await;

    let mut cursor = None;
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = plugin
            .read(&ctx, "api", &config, read(SyncMode::Full, cursor.clone()))
            .await
            .unwrap();
        pages += 1;
        let records: Vec<Value> = serde_json::from_str(&page.records).unwrap();
        ids.extend(records.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        cursor = page.next_cursor;
        if page.done {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 250);
    ids.dedup();
    assert_eq!(ids.len(), 250);
    let data_requests: Vec<_> = upstream
        .seen()
        .into_iter()
        .filter(|s| s.path == "/items")
        .collect();
    assert_eq!(data_requests.len(), 3);
    assert!(
        data_requests
            .iter()
            .all(|s| s.headers["authorization"] == "Bearer s3cret-token")
    );
}

#[tokio::test]
async fn http_json_incremental_read_returns_only_changes_after_the_cursor() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(30));
    let (plugin, ctx, config) = http_json(&upstream, AuthSpec::None).await;
    let first = plugin
        .read(&ctx, "api", &config, read(SyncMode::Incremental, None))
        .await
        .unwrap();
    assert!(first.done);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&first.records)
            .unwrap()
            .len(),
        30
    );

    upstream.seed(
        "items",
        [json!({"id": "00003", "name": "changed", "updated_at": "2026-02-01T00:00:00Z"})],
    );
    let second = plugin
        .read(
            &ctx,
            "api",
            &config,
            read(SyncMode::Incremental, first.next_cursor),
        )
        .await
        .unwrap();
    let changed: Vec<Value> = serde_json::from_str(&second.records).unwrap();
    assert_eq!(
        changed,
        vec![json!({"id": "00003", "name": "changed", "updated_at": "2026-02-01T00:00:00Z"})]
    );
}

#[tokio::test]
async fn http_json_write_reports_one_outcome_per_record() {
    let upstream = Upstream::start().await;
    upstream.seed("items", [json!({"id": "a", "name": "old"})]);
    let (plugin, ctx, config) = http_json(&upstream, AuthSpec::None).await;
    let records = json!([{"id": "a", "name": "new"}, {"name": "no id"}, {"id": "b", "name": "fresh"}, {"id": "a", "name": "new"}]);
    let outcomes = plugin
        .write(
            &ctx,
            "api",
            &config,
            WriteRequest {
                stream: "items".into(),
                mode: WriteMode::Upsert,
                key: vec!["id".into()],
                records: records.to_string(),
            },
            4,
        )
        .await
        .unwrap();
    let statuses: Vec<WriteStatus> = outcomes.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [
            WriteStatus::Updated,
            WriteStatus::Failed,
            WriteStatus::Created,
            WriteStatus::Unchanged
        ]
    );
    assert!(
        matches!(&outcomes[1].error, Some(PluginError::InvalidRecord(m)) if m == "id is required")
    );
    assert_eq!(upstream.records("items").len(), 2);
}

fn signed(body: &[u8], secret: &str) -> String {
    weft_tests::webhook_signature(secret, body)
}

#[tokio::test]
async fn http_json_accepts_a_signed_webhook_and_refuses_a_forged_one() {
    let upstream = Upstream::start().await;
    let rt = runtime(|_| {});
    let plugin = connector(&rt, HTTP_JSON).await;
    let config = json!({"base_url": upstream.url()});
    let secrets = secrets().await;
    let connections = connections(
        &plugin,
        "api",
        config.clone(),
        AuthSpec::None,
        vec![loopback_rule(upstream.addr)],
        &secrets,
        |s| s.webhook_secret = Some(SecretRef::Literal(Secret::new("hook-secret"))),
    )
    .await;
    let ctx = CallContext::new("default").with_connections(connections);
    let body = json!({"events": [{"id": "evt-1", "stream": "items", "action": "updated", "record": {"id": "a"}}]}).to_string();
    let request = |signature: String| InboundRequest {
        method: "POST".into(),
        path: "/hooks/api".into(),
        query: String::new(),
        headers: vec![("X-Signature".into(), signature)],
        body: body.clone().into_bytes(),
    };

    match plugin
        .verify(
            &ctx,
            "api",
            &config,
            request(signed(body.as_bytes(), "hook-secret")),
        )
        .await
        .unwrap()
    {
        Verification::Accepted(events) => {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].id, "evt-1");
        }
        other => panic!("genuine delivery not accepted: {other:?}"),
    }
    match plugin
        .verify(
            &ctx,
            "api",
            &config,
            request(signed(body.as_bytes(), "guessed")),
        )
        .await
        .unwrap()
    {
        Verification::Rejected(reason) => assert_eq!(reason, "signature does not match the body"),
        other => panic!("forged delivery not rejected: {other:?}"),
    }
}

#[tokio::test]
async fn plugin_state_persists_between_calls_in_its_scope() {
    let rt = runtime(|_| {});
    let plugin = connector(&rt, TRESPASSER).await;
    let secrets = secrets().await;
    let store = secrets.store().clone();
    let config = json!({"base_url": "https://example.invalid"});
    let connections = connections(
        &plugin,
        "c",
        config.clone(),
        AuthSpec::None,
        vec![],
        &secrets,
        |_| {},
    )
    .await;
    let ctx = CallContext::new("default")
        .with_connections(connections)
        .with_store(store)
        .in_flow("flow-a");
    let swap = |memo: &str| ReadRequest {
        stream: "probe".into(),
        mode: SyncMode::Full,
        cursor: None,
        page_size: None,
        options: json!({"remember": memo}).to_string(),
    };
    let first = plugin.read(&ctx, "c", &config, swap("one")).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&first.records).unwrap(),
        json!([{"previous": null}])
    );
    let second = plugin.read(&ctx, "c", &config, swap("two")).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&second.records).unwrap(),
        json!([{"previous": "one"}])
    );
    let other_flow = CallContext {
        flow: Some("flow-b".into()),
        ..ctx.clone()
    };
    let third = plugin
        .read(&other_flow, "c", &config, swap("x"))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&third.records).unwrap(),
        json!([{"previous": null}])
    );
}

#[tokio::test]
async fn map_converts_types_and_rejects_values_that_do_not_convert() {
    let rt = runtime(|_| {});
    let map = transform(&rt, MAP).await;
    let config = json!({"fields": {
        "Amount": {"from": "amount", "type": "number"},
        "Seats": {"from": "seats", "type": "integer"},
        "Active": {"from": "active", "type": "boolean"},
        "Ref": {"from": "ref", "type": "string"}
    }});
    let records = json!([
        {"amount": " 12.50 ", "seats": "3", "active": "Yes", "ref": 42},
        {"amount": "twelve", "seats": 3, "active": true, "ref": "x"}
    ]);
    let result = map
        .process(
            &CallContext::default(),
            Batch {
                config: config.to_string(),
                records: records.to_string(),
                lookup: None,
            },
        )
        .await
        .unwrap();
    let out: Value = serde_json::from_str(&result.records).unwrap();
    assert_eq!(
        out,
        json!([{"Amount": 12.5, "Seats": 3, "Active": true, "Ref": "42"}])
    );
    assert_eq!(result.rejects.len(), 1);
    assert_eq!(
        result.rejects[0].reason,
        "`amount`: `\"twelve\"` cannot be converted to number"
    );
    let schema = map
        .output_schema(
            &CallContext::default(),
            &config,
            &json!({"type": "object"}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(schema["properties"]["Seats"], json!({"type": "integer"}));
}

/// `RecordsJson`, what a connector writes a page's records with when it copies values as the
/// upstream sent them: one object per push, names escaped, the values' text as given.
#[test]
fn records_json_writes_each_record_as_an_object_of_the_text_given() {
    let mut records = weft_sdk::RecordsJson::new();
    assert!(records.is_empty());
    records.push([
        ("id", "\"1\""),
        ("na\"me", "{\"a\": [1, 2]}"),
        ("n", "null"),
    ]);
    records.push([]);
    assert_eq!(records.len(), 2);
    let parsed: Value = serde_json::from_str(&records.to_json()).unwrap();
    assert_eq!(
        parsed,
        json!([{"id": "1", "na\"me": {"a": [1, 2]}, "n": null}, {}])
    );
    // Names are written as JSON strings: escaped where they need it, as serde_json would.
    let names = [
        "plain",
        "quo\"te",
        "back\\slash",
        "tab\there",
        "\u{1}ctl",
        "ünï ☃",
        "\u{7f}",
    ];
    let mut escaped = weft_sdk::RecordsJson::new();
    escaped.push(names.iter().map(|n| (*n, "1")));
    let expected: serde_json::Map<String, Value> =
        names.iter().map(|n| (n.to_string(), json!(1))).collect();
    let text = escaped.to_json();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!([expected])
    );
    for name in names {
        assert!(
            text.contains(&serde_json::to_string(name).unwrap()),
            "{name:?} in {text}"
        );
    }
    let page = weft_sdk::Page::last_json::<()>(records, None);
    assert!(page.records.is_empty(), "the text stands for the records");
    assert!(page.done);
}
