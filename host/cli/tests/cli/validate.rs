//! `weft validate` and `weft schema`: mistakes pointed at by line and column, secrets a flow
//! needs, the flow files' JSON Schema.

use super::*;

#[test]
fn validate_points_at_the_mistake_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let flow = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/ui/unknown-input.toml"
    );
    let out = weft(dir.path(), &["validate", flow], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: input `tickest` is not a step of this flow"),
        "{err}"
    );
    assert!(err.contains("unknown-input.toml:14:39"), "{err}");
    assert!(err.contains("help: did you mean `tickets`?"), "{err}");
}

#[test]
fn validate_lists_secrets_the_flow_needs_that_are_not_set() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.toml");
    std::fs::write(&flow, FLOW).unwrap();
    let flow = flow.to_str().unwrap();
    let out = weft(
        dir.path(),
        &["validate", "--plugins", weft_tests::WASM_DIR, flow],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("missing: secret `api_token` (connection `api`) is not set for tenant `default`: `weft secret set api_token`"), "{err}");
    assert!(err.contains("missing: environment variable `WEFT_TEST_UNSET_CLIENT_ID` (connection `api`) is not set"), "{err}");
    // An environment whose connection authenticates otherwise needs only what it uses.
    let staging = dir.path().join("staging.toml");
    let with_env = FLOW.replacen("[[steps]]", "[environments.staging.connections.api]\nauth = { kind = \"api-key\", value = \"secret:staging_key\" }\n\n[[steps]]", 1);
    std::fs::write(&staging, with_env).unwrap();
    let out = weft(
        dir.path(),
        &[
            "validate",
            "--plugins",
            weft_tests::WASM_DIR,
            "--env",
            "staging",
            staging.to_str().unwrap(),
        ],
        None,
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("missing: secret `staging_key` (connection `api`)"),
        "{err}"
    );
    assert!(
        !err.contains("api_token") && !err.contains("WEFT_TEST_UNSET_CLIENT_ID"),
        "the production credential is not needed on staging: {err}"
    );
    assert!(
        weft(dir.path(), &["secret", "set", "api_token"], Some("x"))
            .status
            .success()
    );
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_weft"));
    let ok = command
        .args(["validate", "--plugins", weft_tests::WASM_DIR, flow])
        .env("WEFT_DATA_DIR", dir.path())
        .env("WEFT_TEST_UNSET_CLIENT_ID", "id")
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("3 steps in order items -> mapped -> save"),
        "{}",
        text(&ok.stdout)
    );
}

#[test]
fn validate_reports_plugin_level_mistakes_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        FLOW.replace(
            r#"config.fields = { id = "id", name = "name" }"#,
            r#"config.fields = { id = "id", name = "nmae" }"#,
        ),
    )
    .unwrap();
    let out = weft(
        dir.path(),
        &[
            "validate",
            "--plugins",
            weft_tests::WASM_DIR,
            flow.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "error: step `mapped`: `name` maps from `nmae`, which the input does not have"
        ),
        "{err}"
    );
    assert!(err.contains("flow.toml:15:1"), "{err}");
}

#[test]
fn schema_prints_the_flow_file_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(dir.path(), &["schema"], None);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "FlowFile");
}
