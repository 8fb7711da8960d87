//! Flow-file error texts as data: each `tests/ui/NAME.toml` (at the repository root) is a
//! mistake and `NAME.err` the exact message weft prints for it. `WEFT_BLESS=1` rewrites the
//! `.err` files from the current output; review the diff before committing it.

use std::path::{Path, PathBuf};

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/ui")
}

#[test]
fn every_mistake_has_its_pinned_message() {
    let dir = ui_dir();
    let bless = std::env::var_os("WEFT_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "expected at least 15 mistakes in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(case).unwrap();
        let shown = Path::new("tests/ui").join(&name);
        let actual = match weft_flow::parse(&shown, &text) {
            Ok(_) => format!("(no error: {name} parsed and checked fine)\n"),
            Err(e) => e.to_string(),
        };
        let expected_path = case.with_extension("err");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "--- {name}: expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} messages changed (WEFT_BLESS=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_mistake_points_at_a_line_and_column() {
    for entry in std::fs::read_dir(ui_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let err = weft_flow::parse(&path, &text).expect_err(&path.display().to_string());
            assert!(
                err.diagnostics.iter().all(|d| d.span.is_some()),
                "{}: {err}",
                path.display()
            );
        }
    }
}

#[test]
fn valid_flows_parse_with_steps_in_dependency_order() {
    let path = ui_dir().join("ok/zendesk-to-zoho.toml");
    let flow = weft_flow::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let order: Vec<&str> = flow.order.iter().map(|s| s.as_str()).collect();
    assert_eq!(order, ["tickets", "cases", "save", "report-failure"]);
    let secrets: Vec<&str> = flow
        .references
        .secrets
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        secrets,
        ["zendesk_token", "zoho_client_secret", "zoho_refresh"]
    );
    let env: Vec<&str> = flow
        .references
        .env
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(env, ["ZOHO_CLIENT_ID"]);
}

#[test]
fn a_missing_file_is_named() {
    let err = weft_flow::load(Path::new("/nonexistent/flow.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("error: cannot read the flow file: "),
        "{err}"
    );
}

#[test]
fn the_json_schema_describes_flow_files() {
    let schema = weft_flow::json_schema();
    let text = schema.to_string();
    assert_eq!(schema["title"], "FlowFile");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level keys are errors: {text}"
    );
    assert!(schema["properties"]["steps"].is_object(), "{text}");
    assert_eq!(schema["required"], serde_json::json!(["name"]));
    for definition in ["Step", "ReadStep", "WriteStep", "Connection", "StepId"] {
        assert!(
            schema["$defs"][definition].is_object(),
            "no {definition} in {text}"
        );
    }
    assert_eq!(schema["$defs"]["StepId"]["pattern"], "^[a-z][a-z0-9-]*$");
}
