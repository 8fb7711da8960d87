//! The built-in transforms as WebAssembly components, through the host.

use serde_json::{Value, json};
use weft_runtime::bindings::PluginError;
use weft_runtime::{Batch, BatchResult, CallContext, CallError};
use weft_tests::*;

async fn process(
    plugin: &str,
    config: Value,
    records: Value,
    lookup: Option<Value>,
) -> Result<(Value, Vec<(u32, String)>), CallError> {
    let rt = runtime(|_| {});
    let t = transform(&rt, plugin).await;
    let batch = Batch {
        config: config.to_string(),
        records: records.to_string(),
        lookup: lookup.map(|l| l.to_string()),
    };
    let BatchResult { records, rejects } = t.process(&CallContext::default(), batch).await?;
    Ok((
        serde_json::from_str(&records).unwrap(),
        rejects.into_iter().map(|r| (r.index, r.reason)).collect(),
    ))
}

async fn schema_error(plugin: &str, config: Value, input: Value, lookup: Option<Value>) -> String {
    let rt = runtime(|_| {});
    let t = transform(&rt, plugin).await;
    match t
        .output_schema(&CallContext::default(), &config, &input, lookup.as_ref())
        .await
    {
        Err(CallError::Plugin {
            error: PluginError::Config(m),
            ..
        }) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

fn accounts() -> Value {
    json!([{"id": "A1", "Name": "Acme", "Country": "DE"}, {"id": "A2", "Name": "Globex", "Country": "US"}])
}

#[tokio::test]
async fn merge_inner_join_drops_unmatched_and_nests_the_match() {
    let deals = json!([{"deal": 1, "account_id": "A1"}, {"deal": 2, "account_id": "A9"}, {"deal": 3, "account_id": "A2"}]);
    let (out, rejects) = process(
        "weft_plugin_merge",
        json!({"on": {"account_id": "id"}, "into": "account", "fields": ["Name"]}),
        deals,
        Some(accounts()),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([{"deal": 1, "account_id": "A1", "account": {"Name": "Acme"}}, {"deal": 3, "account_id": "A2", "account": {"Name": "Globex"}}])
    );
    assert!(rejects.is_empty());
}

#[tokio::test]
async fn merge_left_join_keeps_unmatched_and_prefix_flattens() {
    let deals = json!([{"deal": 1, "account_id": "A1"}, {"deal": 2, "account_id": "A9"}]);
    let (out, _) = process(
        "weft_plugin_merge",
        json!({"on": {"account_id": "id"}, "join": "left", "prefix": "Account_"}),
        deals,
        Some(accounts()),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([{"deal": 1, "account_id": "A1", "Account_id": "A1", "Account_Name": "Acme", "Account_Country": "DE"}, {"deal": 2, "account_id": "A9"}])
    );
}

#[tokio::test]
async fn merge_can_log_unmatched_records() {
    let deals = json!([{"deal": 2, "account_id": "A9"}]);
    let (out, rejects) = process(
        "weft_plugin_merge",
        json!({"on": {"account_id": "id"}, "reject_unmatched": true}),
        deals,
        Some(accounts()),
    )
    .await
    .unwrap();
    assert_eq!(out, json!([]));
    assert_eq!(
        rejects,
        [(0, "no lookup record matches on account_id".to_owned())]
    );
}

#[tokio::test]
async fn merge_names_a_join_field_the_input_lacks() {
    let input = json!({"type": "object", "properties": {"deal": {}, "account_id": {}}});
    let lookup = json!({"type": "object", "properties": {"id": {}, "Name": {}}});
    let message = schema_error(
        "weft_plugin_merge",
        json!({"on": {"acount_id": "id"}}),
        input,
        Some(lookup),
    )
    .await;
    assert_eq!(
        message,
        "`on` names `acount_id`, which the input does not have; it has: account_id, deal"
    );
}

#[tokio::test]
async fn lookup_fills_an_id_matching_several_columns_and_refuses_ambiguity() {
    let lookup = json!([
        {"id": "A1", "Name": "Acme", "Country": "DE"},
        {"id": "A2", "Name": "Acme", "Country": "US"},
        {"id": "A3", "Name": "Initech", "Country": "US"},
        {"id": "A4", "Name": "Initech", "Country": "US"}
    ]);
    let contacts = json!([
        {"email": "a@acme.de", "Company": "ACME ", "Country": "de"},
        {"email": "b@initech.com", "Company": "Initech", "Country": "US"},
        {"email": "c@nowhere.com", "Company": "Nowhere", "Country": "FR"}
    ]);
    let config = json!({"set": "Account_Id", "value": "id", "match": {"Company": "Name", "Country": "Country"}, "ignore_case": true});
    let (out, rejects) = process("weft_plugin_lookup", config, contacts, Some(lookup))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!([{"email": "a@acme.de", "Company": "ACME ", "Country": "de", "Account_Id": "A1"}])
    );
    assert_eq!(
        rejects,
        [
            (
                1,
                "2 lookup records match on Company, Country: ambiguous".to_owned()
            ),
            (2, "no lookup record matches on Company, Country".to_owned())
        ]
    );
}

#[tokio::test]
async fn lookup_matches_on_at_most_six_columns() {
    let pairs: serde_json::Map<String, Value> = (0..7)
        .map(|i| (format!("f{i}"), json!(format!("g{i}"))))
        .collect();
    let err = process(
        "weft_plugin_lookup",
        json!({"set": "x", "value": "id", "match": pairs}),
        json!([]),
        Some(json!([])),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err.plugin_error(), Some(PluginError::Config(m)) if m == "`match` has 7 pairs; a lookup matches on at most 6 columns"),
        "{err}"
    );
}

#[tokio::test]
async fn validate_rejects_each_broken_rule_with_its_reason() {
    let rules = json!({"rules": [
        {"field": "Name", "check": "required"},
        {"field": "BillingCountry", "check": "country"},
        {"field": "CurrencyIsoCode", "check": "currency"},
        {"field": "Amount", "check": "non-zero"},
        {"field": "Stage", "check": "enum", "values": ["Open", "Won"]},
        {"field": "Email", "check": "pattern", "pattern": "^[^@ ]+@[^@ ]+$"}
    ]});
    let good = json!({"Name": "Deal", "BillingCountry": "DE", "CurrencyIsoCode": "EUR", "Amount": 10.5, "Stage": "Open", "Email": "a@b.c"});
    let records = json!([
        good,
        {"Name": " ", "BillingCountry": "Germany", "CurrencyIsoCode": "EURO", "Amount": 0, "Stage": "Lost", "Email": "nope"},
        {"Name": "x", "BillingCountry": "US", "CurrencyIsoCode": "USD", "Amount": "", "Stage": "Won", "Email": "x@y.z"}
    ]);
    let (out, rejects) = process("weft_plugin_validate", rules, records, None)
        .await
        .unwrap();
    assert_eq!(out, json!([good]));
    assert_eq!(rejects.len(), 2);
    assert_eq!(
        rejects[0].1,
        "`Name` is required; `BillingCountry` is `Germany`, not an ISO 3166-1 alpha-2 country code (like `DE` or `US`); \
         `CurrencyIsoCode` is `EURO`, not an ISO 4217 currency code (like `EUR` or `USD`); `Amount` is zero; \
         `Stage` is `\"Lost\"`, not one of `\"Open\"`, `\"Won\"`; `Email` does not match `^[^@ ]+@[^@ ]+$`"
    );
    assert_eq!(
        rejects[1],
        (2, "`Amount` needs a number other than zero".to_owned())
    );
}

#[tokio::test]
async fn filter_keeps_records_a_cel_condition_holds_for() {
    let deals = json!([
        {"Stage": "Open", "Amount": 100},
        {"Stage": "Closed Lost", "Amount": 100},
        {"Stage": "Open", "Amount": 0},
        {"Stage": "Open"}
    ]);
    let (out, rejects) = process(
        "weft_plugin_filter",
        json!({"when": "record.Stage != 'Closed Lost' && record.Amount > 0"}),
        deals,
        None,
    )
    .await
    .unwrap();
    assert_eq!(out, json!([{"Stage": "Open", "Amount": 100}]));
    assert_eq!(
        rejects.len(),
        1,
        "the record without Amount cannot be evaluated: {rejects:?}"
    );
    assert_eq!(rejects[0].0, 3);
}

#[tokio::test]
async fn filter_refuses_a_condition_that_is_not_cel() {
    let message = schema_error(
        "weft_plugin_filter",
        json!({"when": "record.Stage =="}),
        json!({}),
        None,
    )
    .await;
    assert!(
        message.starts_with("`when` is not a valid CEL condition: "),
        "{message}"
    );
}

#[tokio::test]
async fn map_domain_conversion_takes_a_websites_bare_host() {
    let sites = json!([{"w": "https://www.Acme.example/about?x=1"}, {"w": "globex.example"}, {"w": "http://user@shop.initech.example:8080"}, {"w": "not a site"}]);
    let (out, rejects) = process(
        "weft_plugin_map",
        json!({"fields": {"domain": {"from": "w", "type": "domain"}}}),
        sites,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([{"domain": "acme.example"}, {"domain": "globex.example"}, {"domain": "shop.initech.example"}])
    );
    assert_eq!(
        rejects,
        [(
            3,
            "`w`: `\"not a site\"` cannot be converted to domain".to_owned()
        )]
    );
}

#[tokio::test]
async fn lookup_on_an_input_of_unknown_shape_leaves_it_unknown() {
    let rt = runtime(|_| {});
    let t = transform(&rt, "weft_plugin_lookup").await;
    let lookup = json!({"type": "object", "properties": {"id": {"type": "string"}, "key": {"type": "string"}}});
    let config = json!({"set": "call_id", "value": "id", "match": {"conversation_id": "key"}});
    let schema = t
        .output_schema(
            &CallContext::default(),
            &config,
            &json!({"type": "object"}),
            Some(&lookup),
        )
        .await
        .unwrap();
    assert_eq!(
        schema,
        json!({"type": "object"}),
        "a dataset's records may have any field, so later steps may name any"
    );
}

#[tokio::test]
async fn merge_with_a_lookup_of_unknown_shape_brings_the_fields_it_names() {
    let rt = runtime(|_| {});
    let t = transform(&rt, "weft_plugin_merge").await;
    let input = json!({"type": "object", "properties": {"account_id": {"type": "string"}}});
    let dataset = json!({"type": "object"});
    let config = json!({"on": {"account_id": "account_id"}, "join": "left", "prefix": "opportunity_", "fields": ["id", "name"]});
    let schema = t
        .output_schema(&CallContext::default(), &config, &input, Some(&dataset))
        .await
        .unwrap();
    let fields: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    assert_eq!(fields, ["account_id", "opportunity_id", "opportunity_name"]);
}

#[tokio::test]
async fn map_format_fills_placeholders_and_rejects_a_record_missing_one() {
    let config = json!({"fields": {"id": "Id"}, "format": {"Name": "{Name} (Partner Center)", "Label": "{{{Id}}} #{Seq}: {owner.name}"}});
    let records = json!([{"Id": "A1", "Name": "Contoso", "Seq": 7, "owner": {"name": "Ada"}}, {"Id": "A2", "Seq": 8, "owner": {"name": "Bo"}}]);
    let (out, rejects) = process(MAP, config.clone(), records, None).await.unwrap();
    assert_eq!(
        out,
        json!([{"id": "A1", "Name": "Contoso (Partner Center)", "Label": "{A1} #7: Ada"}])
    );
    assert_eq!(
        rejects,
        [(
            1,
            "`Name` is missing or null, and `{Name} (Partner Center)` needs it".to_owned()
        )]
    );
    let rt = runtime(|_| {});
    let t = transform(&rt, MAP).await;
    let input = json!({"type": "object", "properties": {"Id": {"type": "string"}, "Name": {"type": "string"}, "Seq": {"type": "integer"}, "owner": {"type": "object", "properties": {"name": {"type": "string"}}}}});
    let schema = t
        .output_schema(&CallContext::default(), &config, &input, None)
        .await
        .unwrap();
    assert_eq!(schema["properties"]["Label"], json!({"type": "string"}));
    let wrong = json!({"format": {"Name": "{Title} !"}});
    let err = t
        .output_schema(&CallContext::default(), &wrong, &input, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`Name` formats `{Title}`, which the input does not have"),
        "{err}"
    );
    let unbalanced = json!({"format": {"Name": "{Name"}});
    let err = t
        .output_schema(&CallContext::default(), &unbalanced, &input, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has a `{` without its `}`"), "{err}");
}

#[tokio::test]
async fn summarize_counts_the_lookup_per_group_with_batches_for_each_input_record() {
    let config = json!({"group_by": ["object"], "count": "objects", "batches": {"calls": 100}});
    let lookup: Vec<Value> = (0..250)
        .map(|i| json!({"object": if i < 130 { "contact" } else { "lead" }, "id": i}))
        .collect();
    let (out, rejects) = process(
        "weft_plugin_summarize",
        config.clone(),
        json!([{"vendor": "hubspot", "remaining": 900}]),
        Some(Value::Array(lookup)),
    )
    .await
    .unwrap();
    assert!(rejects.is_empty());
    assert_eq!(
        out,
        json!([
            {"vendor": "hubspot", "remaining": 900, "object": "contact", "objects": 130, "calls": 2},
            {"vendor": "hubspot", "remaining": 900, "object": "lead", "objects": 120, "calls": 2}
        ])
    );
    // No groups: one total, zero for an empty lookup.
    let (out, _) = process(
        "weft_plugin_summarize",
        json!({"batches": {"calls": 100}}),
        json!([{"x": 1}]),
        Some(json!([])),
    )
    .await
    .unwrap();
    assert_eq!(out, json!([{"x": 1, "count": 0, "calls": 0}]));
    let rt = runtime(|_| {});
    let t = transform(&rt, "weft_plugin_summarize").await;
    let input = json!({"type": "object", "properties": {"vendor": {"type": "string"}}});
    let lookup_schema = json!({"type": "object", "properties": {"id": {"type": "string"}, "object": {"type": "string"}}});
    let schema = t
        .output_schema(
            &CallContext::default(),
            &config,
            &input,
            Some(&lookup_schema),
        )
        .await
        .unwrap();
    assert_eq!(
        schema["properties"]["objects"],
        json!({"type": "integer", "minimum": 0})
    );
    let wrong = json!({"group_by": ["kind"]});
    let err = t
        .output_schema(
            &CallContext::default(),
            &wrong,
            &input,
            Some(&lookup_schema),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`kind` is not a field of the lookup; it has: id, object"),
        "{err}"
    );
}

#[tokio::test]
async fn map_skip_nulls_leaves_out_null_fields_and_objects_left_empty() {
    let config = json!({"nest": true, "skip_nulls": true, "fields": {"Name": "subject", "Account.id": "account_id", "Contact.id": "contact_id", "Note": "note"}});
    let records =
        json!([{"subject": "A", "account_id": "1", "contact_id": null}, {"subject": "B"}]);
    let (out, rejects) = process(MAP, config, records.clone(), None).await.unwrap();
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(
        out,
        json!([{"Name": "A", "Account": {"id": "1"}}, {"Name": "B"}])
    );
    // `clear` writes the nulls TOML cannot: a field cleared on purpose.
    let (out, _) = process(
        MAP,
        json!({"fields": {"id": "account_id"}, "clear": ["external_id"]}),
        json!([{"account_id": "1"}]),
        None,
    )
    .await
    .unwrap();
    assert_eq!(out, json!([{"id": "1", "external_id": null}]));
    // Without it, a missing field is an explicit null.
    let (out, _) = process(
        MAP,
        json!({"nest": true, "fields": {"Name": "subject", "Account.id": "account_id"}}),
        records,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!([{"Name": "A", "Account": {"id": "1"}}, {"Name": "B", "Account": {"id": null}}])
    );
}

#[tokio::test]
async fn map_nests_dotted_output_fields_and_converts_date_times_to_dates() {
    let config = json!({
        "nest": true,
        "fields": {"name": "Name", "details.currency": "Currency", "team.0.email": "Email", "details.closing": {"from": "Close", "type": "date"}},
        "constants": {"consent.contact": true}
    });
    let records = json!([{"Name": "A", "Currency": "EUR", "Email": "a@x.io", "Close": "2026-12-31T00:00:00Z"}, {"Name": "B", "Close": "soon"}]);
    let (out, rejects) = process(MAP, config.clone(), records, None).await.unwrap();
    assert_eq!(
        out,
        json!([{"name": "A", "details": {"currency": "EUR", "closing": "2026-12-31"}, "team": [{"email": "a@x.io"}], "consent": {"contact": true}}])
    );
    assert_eq!(rejects.len(), 1);
    assert!(
        rejects[0].1.contains("cannot be converted to date"),
        "{rejects:?}"
    );
    let rt = runtime(|_| {});
    let input = json!({"type": "object", "properties": {"Name": {"type": "string"}, "Currency": {"type": "string"}, "Email": {"type": "string"}, "Close": {"type": "string"}}});
    let schema = transform(&rt, MAP)
        .await
        .output_schema(&CallContext::default(), &config, &input, None)
        .await
        .unwrap();
    assert_eq!(
        schema["properties"]["details"]["properties"]["closing"],
        json!({"type": "string", "format": "date"})
    );
    assert_eq!(
        schema["properties"]["team"]["items"]["properties"]["email"],
        json!({"type": "string"})
    );
}

#[tokio::test]
async fn filter_names_a_field_the_input_lacks_before_anything_runs() {
    let input = json!({"type": "object", "properties": {"year": {"type": "integer"}, "Stage": {"type": "string"}}});
    let message = schema_error(
        "weft_plugin_filter",
        json!({"when": "record.yeer > 2000"}),
        input,
        None,
    )
    .await;
    assert_eq!(
        message,
        "`when` refers to `record.yeer`, which the input does not have; did you mean `year`? it has: Stage, year"
    );
}
