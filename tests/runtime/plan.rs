//! Flows bound to real plugins: the checks that need the plugins' own descriptions.

use std::path::PathBuf;

use weft_engine::{PluginDirectory, plan};
use weft_tests::*;

const CONNECTION: &str = r#"
[connections.api]
plugin = "http-json"
config = { base_url = "http://127.0.0.1:9" }
egress = [{ host = "127.0.0.1:9", allow_http = true, allow_private = true }]
"#;

async fn check(body: &str, env: Option<&str>) -> Result<weft_engine::Plan, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.toml");
    std::fs::write(&path, format!("name = \"items\"\n{CONNECTION}\n{body}")).unwrap();
    let flow = weft_flow::load(&path).map_err(|e| e.to_string())?;
    let plugins = PluginDirectory::new([PathBuf::from(WASM_DIR)]);
    let rt = runtime(|_| {});
    plan(&flow, env, "default", &plugins, &rt)
        .await
        .map_err(|e| {
            e.to_string()
                .replace(&path.display().to_string(), "flow.toml")
        })
}

#[tokio::test]
async fn a_sound_flow_carries_schemas_from_stream_through_transform() {
    let plan = check(
        r#"
[[steps]]
id = "items"
read = { connection = "api", stream = "items", sync = "incremental" }

[[steps]]
id = "mapped"
transform = { plugin = "map", input = "items" }
config.fields = { name = "name", id = "id" }

[[steps]]
id = "save"
write = { connection = "api", stream = "contacts", input = "mapped", mode = "upsert", key = ["id"] }
"#,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mapped_id: weft_flow::StepId = "mapped".to_owned().try_into().unwrap();
    let mapped = &plan.step(&mapped_id).unwrap().schema;
    assert_eq!(
        mapped["properties"]["name"],
        serde_json::json!({"type": "string"})
    );
    assert_eq!(
        plan.connections["api"]
            .spec
            .derived_hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>(),
        ["http://127.0.0.1:9"]
    );
}

#[tokio::test]
async fn a_mapping_from_a_field_the_stream_lacks_fails_before_the_run() {
    let err = check(
        r#"
[[steps]]
id = "items"
read = { connection = "api", stream = "items" }

[[steps]]
id = "mapped"
transform = { plugin = "map", input = "items" }
config.fields = { Name = "nmae" }
"#,
        None,
    )
    .await
    .err()
    .expect("the flow must be refused");
    assert!(err.contains("error: step `mapped`: `Name` maps from `nmae`, which the input does not have; it has: amount, email, id, name, status, updated_at"), "{err}");
    assert!(err.contains("--> flow.toml:16:1"), "{err}");
}

#[tokio::test]
async fn unknown_stream_and_unsupported_write_mode_are_named_with_what_exists() {
    let err = check(
        r#"
[[steps]]
id = "items"
read = { connection = "api", stream = "itemz" }

[[steps]]
id = "save"
write = { connection = "api", stream = "contacts", input = "items", mode = "create" }
"#,
        None,
    )
    .await
    .err()
    .expect("the flow must be refused");
    assert!(
        err.contains("error: connector `http-json` has no stream `itemz`"),
        "{err}"
    );
    assert!(err.contains("help: it has: items, contacts"), "{err}");
    assert!(
        err.contains("error: stream `contacts` of `http-json` cannot be written in create mode"),
        "{err}"
    );
    assert!(err.contains("help: it supports: upsert"), "{err}");
}

#[tokio::test]
async fn a_key_field_the_target_stream_lacks_is_refused() {
    let err = check(
        r#"
[[steps]]
id = "items"
read = { connection = "api", stream = "items" }

[[steps]]
id = "mapped"
transform = { plugin = "map", input = "items" }
config.fields = { Ref = "id" }

[[steps]]
id = "save"
write = { connection = "api", stream = "contacts", input = "mapped", mode = "upsert", key = ["Ref"] }
"#,
        None,
    )
    .await
    .err()
    .expect("the flow must be refused");
    assert!(
        err.contains("error: key field `Ref` is not a field of stream `contacts`"),
        "{err}"
    );
    assert!(
        err.contains("help: it has: amount, email, id, name, status, updated_at"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_plugin_lists_what_is_available() {
    let err = check(
        r#"
[[steps]]
id = "items"
read = { connection = "api", stream = "items" }

[[steps]]
id = "mapped"
transform = { plugin = "mapper", input = "items" }
"#,
        None,
    )
    .await
    .err()
    .expect("the flow must be refused");
    assert!(err.contains("error: no plugin `mapper` in "), "{err}");
    assert!(err.contains("available: ") && err.contains("map"), "{err}");
}

#[tokio::test]
async fn environments_change_variables_and_connections_not_steps() {
    let body = r#"
[variables.name_field]
type = "string"
default = "Name"

[environments.staging.variables]
name_field = "Staging_Name"

[environments.staging.connections.api]
config = { base_url = "http://127.0.0.1:10" }
egress = [{ host = "127.0.0.1:10", allow_http = true, allow_private = true }]

[[steps]]
id = "items"
read = { connection = "api", stream = "items" }

[[steps]]
id = "mapped"
transform = { plugin = "map", input = "items" }
config.fields = { "${var.name_field}" = "name" }
"#;
    let mapped: weft_flow::StepId = "mapped".to_owned().try_into().unwrap();
    let production = check(body, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        production.step(&mapped).unwrap().schema["properties"]
            .get("Name")
            .is_some()
    );
    let staging = check(body, Some("staging"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        staging.step(&mapped).unwrap().schema["properties"]
            .get("Staging_Name")
            .is_some()
    );
    assert_eq!(
        staging.connections["api"]
            .spec
            .derived_hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>(),
        ["http://127.0.0.1:10"]
    );
    let err = check(body, Some("prod"))
        .await
        .err()
        .expect("unknown environment");
    assert!(
        err.contains("this flow has no environment `prod`") && err.contains("it has: staging"),
        "{err}"
    );
}

#[tokio::test]
async fn an_auth_kind_the_plugin_does_not_offer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.toml");
    std::fs::write(
        &path,
        r#"name = "x"
[connections.acme]
plugin = "acme_helpdesk_connector"
config = { account = "globex" }
auth = { kind = "bearer", token = "secret:acme" }

[[steps]]
id = "tickets"
read = { connection = "acme", stream = "tickets" }
"#,
    )
    .unwrap();
    let flow = weft_flow::load(&path).unwrap();
    let plugins = PluginDirectory::new([PathBuf::from(WASM_DIR)]);
    let err = plan(&flow, None, "default", &plugins, &runtime(|_| {}))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(
            "plugin `acme-helpdesk` does not support auth kind `bearer`; it supports: api-key"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_flow_sets_the_rate_budget_of_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.toml");
    std::fs::write(
        &path,
        r#"name = "x"
[connections.api]
plugin = "http-json"
config = { base_url = "https://api.example.com" }
rate = { requests = 5, per = "1s" }

[[steps]]
id = "items"
read = { connection = "api", stream = "items" }
"#,
    )
    .unwrap();
    let flow = weft_flow::load(&path).unwrap();
    let plugins = PluginDirectory::new([PathBuf::from(WASM_DIR)]);
    let plan = plan(&flow, None, "default", &plugins, &runtime(|_| {}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.connections["api"].spec.rate,
        Some(weft_capabilities::RateBudget {
            requests: 5,
            per: std::time::Duration::from_secs(1)
        })
    );
}

#[tokio::test]
async fn a_connector_documented_rate_limit_is_the_default_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.toml");
    std::fs::write(
        &path,
        r#"name = "x"
[connections.acme]
plugin = "acme_helpdesk_connector"
config = { account = "globex" }
auth = { kind = "api-key", value = "secret:acme" }

[[steps]]
id = "tickets"
read = { connection = "acme", stream = "tickets" }
"#,
    )
    .unwrap();
    let flow = weft_flow::load(&path).unwrap();
    let plugins = PluginDirectory::new([PathBuf::from(WASM_DIR)]);
    let plan = plan(&flow, None, "default", &plugins, &runtime(|_| {}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.connections["acme"].spec.rate,
        Some(weft_capabilities::RateBudget {
            requests: 100,
            per: std::time::Duration::from_secs(60)
        })
    );
}

async fn check_with_vars(text: &str, vars: &[(&str, &str)]) -> Result<weft_engine::Plan, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.toml");
    std::fs::write(&path, text).unwrap();
    let flow = weft_flow::load(&path).map_err(|e| e.to_string())?;
    let plugins = PluginDirectory::new([PathBuf::from(WASM_DIR)]);
    let rt = runtime(|_| {});
    let options = weft_engine::PlanOptions {
        environment: None,
        tenant: "default".into(),
        variables: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    weft_engine::plan_with(&flow, &options, &plugins, &rt)
        .await
        .map_err(|e| {
            e.to_string()
                .replace(&path.display().to_string(), "flow.toml")
        })
}

const VARIABLE_FLOW: &str = r#"name = "items"

[variables.api_host]
type = "string"
default = "127.0.0.1:9"

[variables.page]
type = "number"
default = 10

[connections.api]
plugin = "http-json"
config = { base_url = "http://${var.api_host}" }
egress = [{ host = "${var.api_host}", allow_http = true, allow_private = true }]

[[steps]]
id = "items"
read = { connection = "api", stream = "items", options = { query = { size = "${var.page}" } } }
"#;

#[tokio::test]
async fn command_line_variables_win_over_defaults_in_config_egress_and_options() {
    let plan = check_with_vars(
        VARIABLE_FLOW,
        &[("api_host", "127.0.0.1:4102"), ("page", "25")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let api = &plan.connections["api"];
    assert_eq!(api.config["base_url"], "http://127.0.0.1:4102");
    assert_eq!(api.spec.egress.len(), 1);
    assert!(
        format!("{:?}", api.spec.egress[0]).contains("port: Some(4102)"),
        "{:?}",
        api.spec.egress
    );
    let items: weft_flow::StepId = "items".to_owned().try_into().unwrap();
    let weft_engine::Work::Read(read) = &plan.step(&items).unwrap().work else {
        panic!("items is a read step")
    };
    let options: serde_json::Value = serde_json::from_str(&read.options).unwrap();
    assert_eq!(
        options["query"]["size"], 25,
        "a number variable stays a number"
    );
}

#[tokio::test]
async fn a_command_line_variable_must_be_declared_and_of_its_type() {
    let err = check_with_vars(VARIABLE_FLOW, &[("api_hots", "x")])
        .await
        .err()
        .expect("an undeclared variable is refused");
    assert!(
        err.contains("`--var api_hots=...` names a variable this flow does not declare"),
        "{err}"
    );
    assert!(err.contains("it declares: api_host, page"), "{err}");
    let err = check_with_vars(VARIABLE_FLOW, &[("page", "ten")])
        .await
        .err()
        .expect("a non-number is refused");
    assert!(err.contains("`--var page`: `ten` is not a number"), "{err}");
}
