//! `weft plugin new`, `build` and `test` as a plugin author outside this checkout uses them:
//! a project from each template built, checked, installed and run in a flow; the conformance
//! report on first-party plugins that pass it and hostile ones that do not.

use std::path::{Path, PathBuf};

use serde_json::Value;
use weft_sandbox::{Sandbox, SandboxConfig, Vendor};
use weft_tests::{HOSTILE_TRANSFORM, MAP, ZENDESK, wasm};

use super::{text, toolchain_env, weft};

/// Every connector check, in the order the report lists them.
const CONNECTOR_CHECKS: [&str; 10] = [
    "describe_is_valid",
    "check_accepts_the_credential",
    "check_refuses_a_wrong_credential",
    "check_reports_an_unreachable_host",
    "full_read_returns_every_record_once",
    "a_read_resumes_from_any_page",
    "incremental_read_from_its_last_cursor_returns_nothing_older",
    "a_garbage_cursor_is_a_config_error",
    "throttling_is_rate_limited_and_the_read_recovers",
    "an_unsigned_webhook_is_refused",
];

/// Every transform check, in the order the report lists them.
const TRANSFORM_CHECKS: [&str; 7] = [
    "describe_is_valid",
    "output_schema_accepts_the_config",
    "output_schema_refuses_a_config_of_the_wrong_shape",
    "output_honours_its_schema",
    "rejects_are_indexed",
    "output_is_deterministic",
    "no_state_between_batches",
];

/// The report's checks by name, with their outcome.
fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("a report: {report}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn report_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "a JSON report ({e}):\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

#[test]
fn plugin_test_passes_the_zendesk_connector_against_its_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(
        dir.path(),
        &[
            "plugin",
            "test",
            wasm(ZENDESK).to_str().unwrap(),
            "--against",
            "sandbox:zendesk",
            "--config",
            r#"{"subdomain": "weft-sandbox", "base_url": "{url}"}"#,
            "--stream",
            "users",
            "--json",
        ],
        None,
    );
    let report = report_of(&out);
    assert!(out.status.success(), "{report:#}");
    let outcomes = outcomes(&report);
    let names: Vec<&str> = outcomes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, CONNECTOR_CHECKS, "{report:#}");
    // Against the sandbox nothing is skipped: throttling is injected, the host is known.
    for (name, outcome) in &outcomes {
        assert_eq!(outcome, "passed", "{name}: {report:#}");
    }
    assert_eq!(report["plugin"], "zendesk 0.1.0 (connector)");
}

#[test]
fn plugin_test_reports_a_connector_pointed_at_the_wrong_upstream_check_by_check() {
    let dir = tempfile::tempdir().unwrap();
    // The zendesk connector against HubSpot's emulator: it answers, but not as Zendesk does.
    let out = weft(
        dir.path(),
        &[
            "plugin",
            "test",
            wasm(ZENDESK).to_str().unwrap(),
            "--against",
            "sandbox:hubspot",
            "--config",
            r#"{"subdomain": "weft-sandbox", "base_url": "{url}"}"#,
            "--auth",
            r#"{"kind": "basic", "username": "someone/token", "password": "not-a-token"}"#,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    assert!(
        report.starts_with("zendesk 0.1.0 (connector)\n"),
        "{report}"
    );
    assert!(report.contains("  ok   describe_is_valid"), "{report}");
    assert!(
        report.contains("  FAIL check_accepts_the_credential"),
        "{report}"
    );
    assert!(report.contains("the plugin does not conform"), "{report}");
    assert!(
        text(&out.stderr).contains("conformance check(s) failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plugin_test_passes_the_map_transform_and_fails_a_hostile_one_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(
        &input,
        r#"[{"id": 1, "name": "Ada", "email": "ada@example.com"}, {"id": 2, "name": "Grace", "email": null}]"#,
    )
    .unwrap();
    let map = weft(
        dir.path(),
        &[
            "plugin",
            "test",
            wasm(MAP).to_str().unwrap(),
            "--config",
            r#"{"fields": {"key": "id", "who": "name"}}"#,
            "--input",
            input.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    let report = report_of(&map);
    assert!(map.status.success(), "{report:#}");
    let outcomes = outcomes(&report);
    let names: Vec<&str> = outcomes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, TRANSFORM_CHECKS, "{report:#}");
    assert!(outcomes.iter().all(|(_, o)| o != "failed"), "{report:#}");

    // The hostile transform, doing `mode`.
    let run = |mode: &str| {
        weft(
            dir.path(),
            &[
                "plugin",
                "test",
                wasm(HOSTILE_TRANSFORM).to_str().unwrap(),
                "--config",
                &format!(r#"{{"do": "{mode}"}}"#),
                "--input",
                input.to_str().unwrap(),
            ],
            None,
        )
    };
    // Its rejects name records the batch does not have.
    let hostile = run("misindex");
    assert_eq!(hostile.status.code(), Some(1), "{}", text(&hostile.stdout));
    let report = text(&hostile.stdout);
    assert!(
        report.contains("  FAIL output_honours_its_schema"),
        "{report}"
    );
    assert!(report.contains("a reject names record"), "{report}");

    // One that panics: a trap, reported, not a crash of weft.
    let panics = run("panic");
    assert_eq!(panics.status.code(), Some(1), "{}", text(&panics.stdout));
    assert!(
        text(&panics.stdout).contains("  FAIL rejects_are_indexed"),
        "{}",
        text(&panics.stdout)
    );
}

#[test]
fn plugin_test_without_a_project_or_an_upstream_says_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(dir.path(), &["plugin", "test"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("name the component to check"),
        "{}",
        text(&out.stderr)
    );
    let out = weft(
        dir.path(),
        &["plugin", "test", wasm(ZENDESK).to_str().unwrap()],
        None,
    );
    assert!(
        text(&out.stderr).contains("--against sandbox:VENDOR"),
        "{}",
        text(&out.stderr)
    );
    let out = weft(
        dir.path(),
        &[
            "plugin",
            "test",
            wasm(ZENDESK).to_str().unwrap(),
            "--against",
            "sandbox:jira",
        ],
        None,
    );
    assert!(
        text(&out.stderr).contains("the sandbox has no `jira` emulator"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `weft` with the project directory as the working directory, as an author would.
fn weft_in(project: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(project)
        .env("WEFT_DATA_DIR", data)
        .env_remove("WEFT_MASTER_KEY")
        .envs(toolchain_env())
        .output()
        .expect("weft runs");
    assert!(
        out.status.success(),
        "weft {args:?} in {}:\n{}\n{}",
        project.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// `weft plugin new` in `root`, then in the project `build`, `test` (every check passing or
/// skipped) and `install` of what the build made.
fn new_build_test_install(root: &Path, data: &Path, name: &str, kind: &str, language: &str) {
    weft_in(
        root,
        data,
        &["plugin", "new", name, "--kind", kind, "--lang", language],
    );
    let project = root.join(name);
    let built = weft_in(&project, data, &["plugin", "build"]);
    // weft's own line comes last, after the toolchain's output.
    let output = text(&built.stdout)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("built ").map(str::to_owned))
        .unwrap_or_else(|| panic!("{}", text(&built.stdout)));
    let tested = weft_in(&project, data, &["plugin", "test", "--json"]);
    let report = report_of(&tested);
    for (check, outcome) in outcomes(&report) {
        assert_ne!(outcome, "failed", "{language} {kind} {check}: {report:#}");
    }
    weft_in(&project, data, &["plugin", "install", &output]);
}

/// A flow reading the sandbox's Zendesk users through `connector`, renamed by `transform`,
/// into the dataset `dataset`.
fn users_flow(
    dir: &Path,
    sandbox: &Sandbox,
    connector: &str,
    transform: &str,
    dataset: &str,
) -> PathBuf {
    let zendesk = sandbox.vendor(Vendor::Zendesk).unwrap();
    let c = zendesk.credentials();
    let url = zendesk.base_url();
    let host = url.trim_start_matches("http://");
    let flow = format!(
        r#"name = "{flow_name}"

[connections.helpdesk]
plugin = "{connector}"
config = {{ base_url = "{url}" }}
auth = {{ kind = "basic", username = "{user}", password = "{token}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.store]
plugin = "dataset"

[[steps]]
id = "users"
read = {{ connection = "helpdesk", stream = "users", sync = "full" }}

[[steps]]
id = "renamed"
transform = {{ plugin = "{transform}", input = "users" }}
config = {{ fields = {{ id = "id", full_name = "name", contact = "email" }} }}

[[steps]]
id = "save"
write = {{ connection = "store", stream = "{dataset}", input = "renamed", mode = "upsert", key = ["id"] }}
"#,
        flow_name = dataset.replace('_', "-"),
        user = c.extra["basic_auth_user"],
        token = c.api_token.unwrap(),
    );
    let path = dir.join(format!("{dataset}.toml"));
    std::fs::write(&path, flow).unwrap();
    path
}

/// How many users the sandbox's Zendesk holds.
async fn zendesk_users(sandbox: &Sandbox) -> usize {
    let state: Value = reqwest::get(format!(
        "{}/admin/vendors/zendesk/state",
        sandbox.admin_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let users = state["objects"]["users"]["records"].as_u64().unwrap() as usize;
    assert!(users > 25, "the demo users span pages: {state}");
    users
}

/// Runs each flow and checks its dataset holds every user, renamed.
fn run_and_count(root: &Path, data: &Path, flows: &[(PathBuf, &str)], users: usize) {
    for (flow, dataset) in flows {
        let run = weft_in(root, data, &["run", flow.to_str().unwrap()]);
        let export = weft_in(root, data, &["dataset", "export", dataset]);
        let rows: Vec<Value> = text(&export.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), users, "{dataset}: {}", text(&run.stdout));
        for row in &rows {
            assert!(
                row["id"].is_number() && row["full_name"].is_string(),
                "{dataset}: {row}"
            );
        }
    }
}

/// From an empty directory: a connector and a transform made from the Rust templates, each
/// built, checked, installed, and run together in a flow against the sandbox.
#[tokio::test(flavor = "multi_thread")]
async fn rust_plugins_from_the_templates_build_pass_their_checks_and_run_in_a_flow() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let authoring = tempfile::tempdir().unwrap();
    let root = authoring.path().to_owned();
    let data = root.join("data");
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let users = zendesk_users(&sandbox).await;
    let flow = users_flow(&root, &sandbox, "shelf", "tidy", "users_seen");
    tokio::task::spawn_blocking(move || {
        new_build_test_install(&root, &data, "shelf", "connector", "rust");
        new_build_test_install(&root, &data, "tidy", "transform", "rust");
        let listed = text(&weft_in(&root, &data, &["plugin", "list"]).stdout);
        for row in ["shelf ", "tidy "] {
            assert!(
                listed
                    .lines()
                    .any(|l| l.starts_with(row) && l.contains("0.1.0")),
                "{listed}"
            );
        }
        run_and_count(&root, &data, &[(flow, "users_seen")], users);
    })
    .await
    .unwrap();
}

/// The same from the JavaScript and Python templates, mixed: a JavaScript connector feeding
/// a Python transform, and a Python connector feeding a JavaScript transform.
#[tokio::test(flavor = "multi_thread")]
async fn js_and_python_plugins_from_the_templates_build_pass_their_checks_and_run_in_flows() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let authoring = tempfile::tempdir().unwrap();
    let root = authoring.path().to_owned();
    let data = root.join("data");
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let users = zendesk_users(&sandbox).await;
    let flows = [
        (
            users_flow(&root, &sandbox, "reader-js", "tidy-py", "users_js_py"),
            "users_js_py",
        ),
        (
            users_flow(&root, &sandbox, "reader-py", "tidy-js", "users_py_js"),
            "users_py_js",
        ),
    ];
    tokio::task::spawn_blocking(move || {
        for (name, kind, language) in [
            ("reader-js", "connector", "js"),
            ("tidy-py", "transform", "python"),
            ("reader-py", "connector", "python"),
            ("tidy-js", "transform", "js"),
        ] {
            new_build_test_install(&root, &data, name, kind, language);
        }
        run_and_count(&root, &data, &flows, users);
    })
    .await
    .unwrap();
}

/// Against a URL (here the emulator, as any running API would be): the same checks, with the
/// credential given and the throttling check skipped, saying why.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_test_checks_a_connector_against_a_url_with_the_credential_given() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::start(SandboxConfig::default().unthrottled())
        .await
        .unwrap();
    let zendesk = sandbox.vendor(Vendor::Zendesk).unwrap();
    let c = zendesk.credentials();
    let auth = serde_json::json!({
        "kind": "basic",
        "username": c.extra["basic_auth_user"],
        "password": c.api_token.unwrap(),
    })
    .to_string();
    let url = zendesk.base_url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        weft(
            &data,
            &[
                "plugin",
                "test",
                wasm(ZENDESK).to_str().unwrap(),
                "--against",
                &url,
                "--config",
                r#"{"subdomain": "weft-sandbox", "base_url": "{url}"}"#,
                "--auth",
                &auth,
                "--stream",
                "tickets",
                "--json",
            ],
            None,
        )
    })
    .await
    .unwrap();
    let report = report_of(&out);
    assert!(out.status.success(), "{report:#}");
    for (name, outcome) in outcomes(&report) {
        let expected = if name == "throttling_is_rate_limited_and_the_read_recovers" {
            "skipped"
        } else {
            "passed"
        };
        assert_eq!(outcome, expected, "{name}: {report:#}");
    }
    let throttling = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "throttling_is_rate_limited_and_the_read_recovers")
        .unwrap();
    assert!(
        throttling["detail"]
            .as_str()
            .unwrap()
            .contains("sandbox:VENDOR"),
        "{throttling}"
    );
}
