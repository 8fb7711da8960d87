//! The `weft` binary as a person uses it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use weft_tests::{HTTP_JSON, MAP, OLD_CONTRACT, wasm};

mod authoring;
mod crashes;
mod languages;
mod plugins;
mod serve;
mod tenants;

fn weft(data_dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_DATA_DIR", data_dir)
        .env_remove("WEFT_MASTER_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// The checkout this test binary was built from.
fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The caches `.ci/plugin-toolchains` warms (npm's, componentize-py's wheel), used when
/// there: the JavaScript and Python builds then need no registry.
fn toolchain_env() -> Vec<(&'static str, std::path::PathBuf)> {
    let cache = repo().join("target/plugin-toolchains");
    [
        ("npm_config_cache", "npm-cache"),
        ("PIP_FIND_LINKS", "wheels"),
    ]
    .into_iter()
    .map(|(var, dir)| (var, cache.join(dir)))
    .filter(|(_, dir)| dir.is_dir())
    .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspect_describes_every_first_party_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let map = weft(
        dir.path(),
        &["plugin", "inspect", wasm(MAP).to_str().unwrap()],
        None,
    );
    assert!(map.status.success(), "{}", text(&map.stderr));
    let out = text(&map.stdout);
    assert!(out.starts_with("map 0.1.0 (transform)\n"), "{out}");
    assert!(out.contains("contract  weft:plugin@0.2.0"), "{out}");

    let conn = weft(
        dir.path(),
        &["plugin", "inspect", wasm(HTTP_JSON).to_str().unwrap()],
        None,
    );
    assert!(conn.status.success(), "{}", text(&conn.stderr));
    let out = text(&conn.stdout);
    assert!(out.starts_with("http-json 0.1.0 (connector)\n"), "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("{base_url}")
            && l.ends_with("from the connection's config")),
        "{out}"
    );
    assert!(
        out.contains("api-key                    header `X-Api-Key: {token}`"),
        "{out}"
    );
    assert!(out.contains("\n  items\n"), "{out}");
    assert!(out.contains("    cursor       updated_at"), "{out}");
}

#[test]
fn inspect_json_is_machine_readable_and_second_run_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = wasm(HTTP_JSON);
    let first = weft(
        dir.path(),
        &["plugin", "inspect", "--json", file.to_str().unwrap()],
        None,
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(doc["kind"], "connector");
    assert_eq!(doc["streams"][0]["name"], "items");
    assert_eq!(
        doc["streams"][0]["schema"]["properties"]["id"]["type"],
        "string"
    );
    let again = weft(
        dir.path(),
        &["plugin", "inspect", file.to_str().unwrap()],
        None,
    );
    assert!(
        text(&again.stdout).contains("(loaded from cache in"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn inspect_explains_an_incompatible_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(
        dir.path(),
        &["plugin", "inspect", wasm(OLD_CONTRACT).to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("weft:plugin@0.1.0") && err.contains("weft:plugin@0.2.0"),
        "{err}"
    );
}

#[test]
fn secrets_are_set_from_stdin_listed_by_name_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let set = weft(
        dir.path(),
        &["secret", "set", "zendesk_token"],
        Some("very-secret-value\n"),
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    assert!(text(&set.stderr).contains("\"secret:zendesk_token\""));

    let list = weft(dir.path(), &["secret", "list"], None);
    let listed = text(&list.stdout);
    assert!(listed.starts_with("zendesk_token\t"), "{listed}");
    assert!(!listed.contains("very-secret-value"));

    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap_or_default();
        assert!(
            !text(&bytes).contains("very-secret-value"),
            "plaintext on disk"
        );
    }

    assert!(
        weft(dir.path(), &["secret", "rm", "zendesk_token"], None)
            .status
            .success()
    );
    let gone = weft(dir.path(), &["secret", "rm", "zendesk_token"], None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains("there is no secret `zendesk_token`"),
        "{}",
        text(&gone.stderr)
    );
}

#[test]
fn secret_set_refuses_an_empty_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(dir.path(), &["secret", "set", "empty"], Some(""));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no value on standard input"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_runs_each_example_against_its_own_sandbox_and_sums_up() {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(examples.join("tickets")).unwrap();
    std::fs::create_dir_all(examples.join("not-flows/src")).unwrap();
    std::fs::write(
        examples.join("not-flows/Cargo.toml"),
        "[package]\nname = \"x\"\n",
    )
    .unwrap();
    // The examples' convention: production connection on top, the sandbox environment through
    // the `zendesk_url` / `zendesk_host` variables the demo sets for its own sandbox.
    std::fs::write(
        examples.join("tickets/tickets.toml"),
        r#"name = "zendesk-tickets"

[variables.zendesk_url]
type = "string"
default = "http://127.0.0.1:4102"

[variables.zendesk_host]
type = "string"
default = "127.0.0.1:4102"

[connections.zendesk]
plugin = "zendesk"
config = { subdomain = "acme" }
auth = { kind = "basic", username = "ops@acme.example/token", password = "secret:zendesk_token" }

[environments.sandbox.connections.zendesk]
config = { subdomain = "weft-sandbox", base_url = "${var.zendesk_url}" }
auth = { kind = "basic", username = "admin@weft-sandbox.example/token", password = "weftSandboxZendeskApiToken0000000000000000" }
egress = [{ host = "${var.zendesk_host}", allow_http = true, allow_private = true }]

[connections.kept]
plugin = "dataset"

[[steps]]
id = "tickets"
read = { connection = "zendesk", stream = "tickets", page_size = 15 }

[[steps]]
id = "cases"
transform = { plugin = "map", input = "tickets" }
config.fields = { ticket_id = "id", subject = "subject" }

[[steps]]
id = "save"
write = { connection = "kept", stream = "cases", input = "cases", mode = "upsert", key = ["ticket_id"] }
"#,
    )
    .unwrap();
    let out = weft(
        dir.path(),
        &[
            "demo",
            "--plugins",
            weft_tests::WASM_DIR,
            "--examples",
            examples.to_str().unwrap(),
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("== tickets (1 runs)"), "{stdout}");
    assert!(
        !stdout.contains("not-flows"),
        "a directory without flow files is not a scenario: {stdout}"
    );
    let row = stdout
        .lines()
        .skip_while(|l| !l.starts_with("scenario "))
        .find(|l| l.starts_with("tickets "))
        .unwrap_or_else(|| panic!("a summary row: {stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // scenario, runs, failed, read, written, rejected, requests, time, records/s
    assert_eq!(&cells[1..6], ["1", "0", "40", "40", "0"], "{row}");
    assert!(
        cells[6].parse::<u32>().unwrap() >= 3,
        "at least the three pages were requested: {row}"
    );
    // The demo's own tenant, named at the start and in the pointers at the end.
    let tenant = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tenant    "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the demo names its tenant");
    assert!(tenant.starts_with("demo-"), "{stdout}");
    assert!(
        stdout.contains(&format!("weft --tenant {tenant} dataset list")),
        "{stdout}"
    );
    let listed = weft(
        dir.path(),
        &["--tenant", tenant, "dataset", "show", "cases"],
        None,
    );
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(!text(&out.stdout).contains("weftSandboxZendeskApiToken"));
}

/// The README's main command on the checkout's own examples: every scenario runs, none fails,
/// and each reads, writes and calls its vendors.
#[test]
fn demo_runs_all_five_scenarios_of_the_examples_and_again_with_nothing_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo_summary(dir.path());
    let names: Vec<&str> = first.iter().map(|cells| cells[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "conversation-sync",
            "partner-center-salesforce",
            "salesforce-hubspot",
            "zendesk-zoho",
            "zoho-customer-success"
        ],
        "{first:?}"
    );
    for cells in &first {
        // scenario, runs, failed, read, written, rejected, requests, time, records/s
        assert_eq!(cells[2], "0", "{first:?}");
        for (column, what) in [(3, "read"), (4, "written"), (6, "requests")] {
            assert!(
                cells[column].parse::<u64>().unwrap() > 0,
                "{} {what} nothing: {first:?}",
                cells[0]
            );
        }
    }
    // A second demo on the same data directory has a new sandbox: no cursor, dataset or
    // plugin state of the first may reach it, so it runs, reads and writes the same (requests
    // may differ by a token refresh or a retry, which timing decides).
    let second = demo_summary(dir.path());
    let counts = |summary: &[Vec<String>]| -> Vec<Vec<String>> {
        summary.iter().map(|cells| cells[..6].to_vec()).collect()
    };
    assert_eq!(counts(&second), counts(&first));
}

/// Runs the demo on the data directory `dir`; its summary's rows, split into cells.
fn demo_summary(dir: &std::path::Path) -> Vec<Vec<String>> {
    let out = weft(dir, &["demo", "--plugins", weft_tests::WASM_DIR], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("seeded dataset conversations"), "{stdout}");
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("scenario "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

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

const FLOW: &str = r#"name = "items"

[connections.api]
plugin = "http-json"
config = { base_url = "https://api.example.com" }
auth = { kind = "oauth2-client-credentials", token_url = "https://api.example.com/oauth/token", client_id = "env:WEFT_TEST_UNSET_CLIENT_ID", client_secret = "secret:api_token" }

[[steps]]
id = "items"
read = { connection = "api", stream = "items" }

[[steps]]
id = "mapped"
transform = { plugin = "map", input = "items" }
config.fields = { id = "id", name = "name" }

[[steps]]
id = "save"
write = { connection = "api", stream = "contacts", input = "mapped", mode = "upsert", key = ["id"] }
"#;

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

#[tokio::test(flavor = "multi_thread")]
async fn run_shows_progress_and_runs_show_and_errors_explain_it() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..30).map(|i| {
            let mut item =
                serde_json::json!({"id": format!("{i:03}"), "name": format!("item {i}")});
            if i != 4 {
                item["email"] = serde_json::json!(format!("p{i}@example.com"));
            }
            item
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            r#"name = "copy"
[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items" }}

[[steps]]
id = "people"
transform = {{ plugin = "map", input = "items" }}
config.fields = {{ id = "email", name = "name" }}

[[steps]]
id = "save"
write = {{ connection = "api", stream = "contacts", input = "people", mode = "upsert", key = ["id"] }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    let data = dir.path().to_owned();
    let flow_arg = flow.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        weft(
            &data,
            &["run", "--plugins", weft_tests::WASM_DIR, &flow_arg],
            None,
        )
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    // A run that completed with a record in its error log is told apart from a clean one.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains(" partial in "), "{stdout}");
    assert!(
        text(&out.stderr).contains("completed, but 1 record(s) failed: `weft runs errors"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("save                 succeeded      1        30        29       1"),
        "{stdout}"
    );
    // The source said how many records it holds: the progress line shows a bar against it.
    assert!(
        text(&out.stderr).contains("[####################] 100% of 30"),
        "{}",
        text(&out.stderr)
    );
    let run_id = stdout.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(upstream.records("contacts").len(), 29);

    let data = dir.path().to_owned();
    let id = run_id.clone();
    let show = tokio::task::spawn_blocking(move || weft(&data, &["runs", "show", &id], None))
        .await
        .unwrap();
    let shown = text(&show.stdout);
    assert!(
        shown.starts_with(&format!("run {run_id} of flow `copy`: partial")),
        "{shown}"
    );

    let data = dir.path().to_owned();
    let errors = tokio::task::spawn_blocking(move || {
        weft(&data, &["runs", "errors", &run_id, "--format", "csv"], None)
    })
    .await
    .unwrap();
    let csv = text(&errors.stdout);
    assert_eq!(csv.lines().next(), Some("seq,step,error,record"));
    assert!(csv.contains("1,save,invalid record: id is required,\"{\"\"id\"\":null,\"\"name\"\":\"\"item 4\"\"}\""), "{csv}");
}

#[tokio::test(flavor = "multi_thread")]
async fn datasets_can_be_listed_shown_and_exported() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed("items", (0..3).map(|i| serde_json::json!({"id": format!("{i}"), "name": format!("Name, {i}"), "email": format!("p{i}@x.io")})));
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            r#"name = "keep"
[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.store]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items" }}

[[steps]]
id = "keep"
write = {{ connection = "store", stream = "people", input = "items", mode = "upsert", key = ["email"] }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    let data = dir.path().to_owned();
    let flow_arg = flow.to_str().unwrap().to_owned();
    let outputs = tokio::task::spawn_blocking(move || {
        let run = weft(
            &data,
            &["run", "--plugins", weft_tests::WASM_DIR, &flow_arg],
            None,
        );
        assert!(run.status.success(), "{}", text(&run.stderr));
        [
            weft(&data, &["dataset", "list"], None),
            weft(&data, &["dataset", "show", "people", "--limit", "1"], None),
            weft(
                &data,
                &["dataset", "export", "people", "--format", "csv"],
                None,
            ),
            weft(&data, &["dataset", "show", "nobody"], None),
        ]
    })
    .await
    .unwrap();
    assert!(
        text(&outputs[0].stdout).starts_with("people\t3 records\t"),
        "{}",
        text(&outputs[0].stdout)
    );
    assert_eq!(text(&outputs[1].stdout).lines().count(), 1);
    assert_eq!(
        text(&outputs[2].stdout),
        "email,id,name\np0@x.io,0,\"Name, 0\"\np1@x.io,1,\"Name, 1\"\np2@x.io,2,\"Name, 2\"\n"
    );
    assert_eq!(outputs[3].status.code(), Some(1));
    assert!(text(&outputs[3].stderr).contains("dataset `nobody` is empty or does not exist"));
}

#[test]
fn dataset_import_upserts_json_lines_by_key_and_refuses_a_bad_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let first = weft(
        dir.path(),
        &["dataset", "import", "conversations", "--key", "crm,id"],
        Some("{\"crm\":\"sf\",\"id\":\"1\",\"title\":\"a\"}\n\n{\"crm\":\"sf\",\"id\":\"2\"}\n"),
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr).contains("2 records upserted into `conversations`"),
        "{}",
        text(&first.stderr)
    );
    let file = dir.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"crm\":\"sf\",\"id\":\"1\",\"title\":\"replaced\"}\n",
    )
    .unwrap();
    let second = weft(
        dir.path(),
        &[
            "dataset",
            "import",
            "conversations",
            "--key",
            "crm,id",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    let shown = text(&weft(dir.path(), &["dataset", "export", "conversations"], None).stdout);
    assert_eq!(
        shown,
        "{\"crm\":\"sf\",\"id\":\"1\",\"title\":\"replaced\"}\n{\"crm\":\"sf\",\"id\":\"2\"}\n"
    );

    // A line without a key field, or not an object: nothing of the file is written.
    std::fs::write(&file, "{\"crm\":\"sf\",\"id\":\"3\"}\n{\"crm\":\"sf\"}\n").unwrap();
    let missing = weft(
        dir.path(),
        &[
            "dataset",
            "import",
            "conversations",
            "--key",
            "crm,id",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr)
            .contains("more.jsonl:2: key field `id` is missing or null (the key is crm, id)"),
        "{}",
        text(&missing.stderr)
    );
    let not_object = weft(
        dir.path(),
        &["dataset", "import", "conversations", "--key", "id"],
        Some("[1, 2]\n"),
    );
    assert!(
        text(&not_object.stderr)
            .contains("standard input:1: a record must be a JSON object, not `[1, 2]`"),
        "{}",
        text(&not_object.stderr)
    );
    let list = text(&weft(dir.path(), &["dataset", "list"], None).stdout);
    assert!(list.starts_with("conversations\t2 records\t"), "{list}");
}

#[test]
fn schema_prints_the_flow_file_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(dir.path(), &["schema"], None);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "FlowFile");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_retry_failed_only_resends_what_failed() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..10).map(|i| serde_json::json!({"id": format!("{i}"), "email": format!("p{i}@x.io")})),
    );
    upstream.lock(&["p4@x.io"]);
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            "name = \"copy\"\n[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\n\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"people\"\ntransform = {{ plugin = \"map\", input = \"items\" }}\nconfig.fields = {{ id = \"email\" }}\n\n[[steps]]\nid = \"save\"\nwrite = {{ connection = \"api\", stream = \"contacts\", input = \"people\", mode = \"upsert\", key = [\"id\"] }}\n",
            upstream.url(),
            upstream.addr
        ),
    )
    .unwrap();
    let (data, flow_arg) = (dir.path().to_owned(), flow.to_str().unwrap().to_owned());
    let first = {
        let (data, flow_arg) = (data.clone(), flow_arg.clone());
        tokio::task::spawn_blocking(move || {
            weft(
                &data,
                &["run", "--plugins", weft_tests::WASM_DIR, &flow_arg],
                None,
            )
        })
        .await
        .unwrap()
    };
    let run_id = text(&first.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(upstream.records("contacts").len(), 9);
    upstream.unlock();
    let retry = tokio::task::spawn_blocking(move || {
        weft(
            &data,
            &[
                "runs",
                "retry",
                &run_id,
                "--failed-only",
                "--flow",
                &flow_arg,
                "--plugins",
                weft_tests::WASM_DIR,
            ],
            None,
        )
    })
    .await
    .unwrap();
    let out = text(&retry.stdout);
    assert!(retry.status.success(), "{out}\n{}", text(&retry.stderr));
    assert!(
        out.contains("save                 succeeded         1 in         1 out       0 failed"),
        "{out}"
    );
    assert_eq!(upstream.records("contacts").len(), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn weft_database_url_keeps_state_in_postgresql() {
    use sqlx::Connection;
    let admin = std::env::var("WEFT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let schema = format!("weft_cli_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (.ci/run starts it)");
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let url = format!("{admin}?options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let url_for_child = url.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str], stdin: Option<&str>| {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
                .args(args)
                .env("WEFT_DATA_DIR", &data)
                .env("WEFT_DATABASE_URL", &url_for_child)
                .env_remove("WEFT_MASTER_KEY")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            if let Some(input) = stdin {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            drop(child.stdin.take());
            child.wait_with_output().unwrap()
        };
        let set = run(&["secret", "set", "crm_token"], Some("t0ken"));
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
        run(&["secret", "list"], None)
    })
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).starts_with("crm_token\t"));
    let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {schema}.secrets"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the secret went to PostgreSQL");
    assert!(
        !dir.path().join("weft.db").exists(),
        "no SQLite file was made"
    );
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// `--var NAME=VALUE` for each variable of the sandbox that the flow file declares.
fn sandbox_vars(sandbox: &weft_sandbox::Sandbox, file: &std::path::Path) -> Vec<String> {
    let flow = weft_flow::load(file).unwrap();
    let mut vars = Vec::new();
    for (name, value) in sandbox.flow_variables() {
        if flow
            .file
            .variables
            .keys()
            .any(|k| k.get_ref().as_str() == name)
        {
            vars.extend(["--var".into(), format!("{name}={value}")]);
        }
    }
    vars
}

/// Scenario 3's connection status: each connection's check, credential kind and token expiry,
/// and a failing check named with what to fix.
#[tokio::test(flavor = "multi_thread")]
async fn connections_shows_each_connections_check_and_token_expiry() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = weft_sandbox::Sandbox::start(weft_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/conversation-sync/salesforce/sync.toml");
    let mut args = vec![
        "connections".to_string(),
        file.to_str().unwrap().into(),
        "--env".into(),
        "sandbox".into(),
        "--plugins".into(),
        weft_tests::WASM_DIR.into(),
    ];
    args.extend(sandbox_vars(&sandbox, &file));
    let key = sandbox
        .vendor(weft_sandbox::Vendor::Salesforce)
        .unwrap()
        .credentials()
        .extra["jwt_private_key_pem"]
        .clone();
    let data = dir.path().to_owned();
    let (missing, set, ok) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let missing = weft(&data, &args, None);
        let set = weft(
            &data,
            &["secret", "set", "salesforce_sandbox_jwt_key"],
            Some(&key),
        );
        (missing, set, weft(&data, &args, None))
    })
    .await
    .unwrap();
    // Without the JWT key the Salesforce check fails, and says which secret is missing.
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stdout));
    let out = text(&missing.stdout);
    assert!(
        out.lines().any(|l| l.starts_with("salesforce ")
            && l.contains("jwt-bearer")
            && l.contains(" failed ")),
        "{out}"
    );
    assert!(out.contains("salesforce_sandbox_jwt_key"), "{out}");
    assert!(
        text(&missing.stderr)
            .contains("1 connection(s) of flow `ci-sync-salesforce` failed their check"),
        "{}",
        text(&missing.stderr)
    );
    assert!(set.status.success());
    // With it: the check passes; a Salesforce session states no lifetime.
    assert!(
        ok.status.success(),
        "{}\n{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    let out = text(&ok.stdout);
    let row = out
        .lines()
        .find(|l| l.starts_with("salesforce "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains(" ok ") && row.contains("no stated lifetime"),
        "{row}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(" dataset ") && l.contains("weft's own store")),
        "{out}"
    );

    // Zoho's access tokens last an hour; Zendesk's API token does not expire.
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/zendesk-zoho/people-to-users.toml");
    let mut args = vec![
        "connections".to_string(),
        file.to_str().unwrap().into(),
        "--env".into(),
        "sandbox".into(),
        "--plugins".into(),
        weft_tests::WASM_DIR.into(),
    ];
    args.extend(sandbox_vars(&sandbox, &file));
    let data = dir.path().to_owned();
    let both = tokio::task::spawn_blocking(move || {
        weft(
            &data,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
        )
    })
    .await
    .unwrap();
    let out = text(&both.stdout);
    assert!(both.status.success(), "{out}\n{}", text(&both.stderr));
    let zoho = out
        .lines()
        .find(|l| l.starts_with("zoho "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        zoho.contains("oauth2-refresh")
            && zoho.contains(" ok ")
            && zoho.contains("(in 59 min); weft renews it before then"),
        "{zoho}"
    );
    let zendesk = out
        .lines()
        .find(|l| l.starts_with("zendesk "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        zendesk.contains("basic") && zendesk.contains("static credential, no expiry"),
        "{zendesk}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_a_plugin_echoes_reaches_neither_the_terminal_nor_the_store() {
    const TOKEN: &str = "live-api-token-7f3a9c";
    let upstream = weft_tests::upstream::Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let set = weft(&data, &["secret", "set", "api_token"], Some(TOKEN));
    assert!(set.status.success(), "{}", text(&set.stderr));
    let flow = dir.path().join("leaky.toml");
    // The impostor fetches an upstream that echoes the request's headers (its own credential
    // among them) and puts the answer, after forged terminal output, into a log line and into
    // the error it fails with.
    std::fs::write(
        &flow,
        format!(
            r#"name = "leaky"
[connections.api]
plugin = "weft_guest_impostor"
config = {{ base_url = "{url}" }}
auth = {{ kind = "bearer", token = "secret:api_token" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[[steps]]
id = "attempt"
read = {{ connection = "api", stream = "attempt", options = {{ op = "leak", url = "{url}/echo-headers", text = "\u001b[2J\r\nrun r0000000000000000 succeeded\u0000 " }} }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    let (d, f) = (data.clone(), flow.to_str().unwrap().to_owned());
    let run = tokio::task::spawn_blocking(move || {
        weft(&d, &["run", "--plugins", weft_tests::WASM_DIR, &f], None)
    })
    .await
    .unwrap();
    assert!(!run.status.success(), "the leaky step fails");
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(
        upstream.seen().iter().any(|s| s.path == "/echo-headers"),
        "the plugin reached its upstream"
    );
    for (what, output) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!output.contains(TOKEN), "the token is on {what}: {output}");
        assert!(
            !output.contains('\x1b') && !output.contains('\0'),
            "control bytes reach the terminal on {what}: {output:?}"
        );
        assert!(
            !output
                .lines()
                .any(|l| l.starts_with("run r0000000000000000 succeeded")),
            "a forged line on {what}: {output}"
        );
    }
    assert!(stdout.contains("<redacted>"), "{stdout}");
    let run_id = stdout.split_whitespace().nth(1).unwrap().to_owned();

    let d = data.clone();
    let show = tokio::task::spawn_blocking(move || weft(&d, &["runs", "show", &run_id], None))
        .await
        .unwrap();
    let shown = text(&show.stdout);
    assert!(
        shown.contains("upstream said") && shown.contains("<redacted>"),
        "{shown}"
    );
    assert!(
        !shown.contains(TOKEN) && !shown.contains('\x1b'),
        "{shown:?}"
    );

    // Nothing the run stored holds the token in clear (the secret itself is sealed).
    for file in ["weft.db", "weft.db-wal"] {
        if let Ok(bytes) = std::fs::read(data.join(file)) {
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "{file} holds the token in clear"
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn the_data_directory_and_the_database_are_private_even_when_an_older_version_left_them_open() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let list = weft(&data, &["secret", "list"], None);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(mode(&data), 0o700);
    for file in ["weft.db", "weft.db-wal", "weft.db-shm"] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    // As an older weft left them.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("weft.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let list = weft(&data, &["secret", "list"], None);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("weft.db")), 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_runs_back_to_back_share_one_token_exchange() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..3).map(
            |i| serde_json::json!({"id": format!("{i}"), "updated_at": "2026-01-01T00:00:00Z"}),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let set = weft(
        &data,
        &["secret", "set", "api_client_secret"],
        Some("client-secret-value"),
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let flow = dir.path().join("tokened.toml");
    std::fs::write(
        &flow,
        format!(
            r#"name = "tokened"
[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
auth = {{ kind = "oauth2-client-credentials", token_url = "{url}/oauth/token", client_id = "weft", client_secret = "secret:api_client_secret" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items" }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    let (d, f) = (data.clone(), flow.to_str().unwrap().to_owned());
    tokio::task::spawn_blocking(move || {
        for i in 0..30 {
            let run = weft(&d, &["run", "--plugins", weft_tests::WASM_DIR, &f], None);
            assert!(run.status.success(), "run {i}: {}", text(&run.stderr));
        }
    })
    .await
    .unwrap();
    // Each process found the token the first one kept (sealed) in the store.
    assert_eq!(upstream.tokens_issued(), 1);
    assert_eq!(
        upstream
            .seen()
            .iter()
            .filter(|s| s.path == "/items")
            .count(),
        30
    );
}

/// Zoho mints ten access tokens per refresh token in ten minutes: thirty `weft run` processes
/// back to back against the sandbox's Zoho exchange the refresh token once, the first process
/// keeping the token (sealed) in the store for the others. The emulator's request log shows it.
#[tokio::test(flavor = "multi_thread")]
async fn thirty_runs_against_zoho_exchange_its_refresh_token_once() {
    let sandbox = weft_sandbox::Sandbox::start(weft_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/zoho-customer-success/accounts.toml");
    let vars = sandbox_vars(&sandbox, &example);
    let data = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        for i in 0..30 {
            let mut args = vec![
                "run".to_owned(),
                "--plugins".into(),
                weft_tests::WASM_DIR.into(),
                "--env".into(),
                "sandbox".into(),
            ];
            args.extend(vars.iter().cloned());
            args.push(example.to_str().unwrap().to_owned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = weft(&data, &args, None);
            assert!(run.status.success(), "run {i}: {}", text(&run.stderr));
        }
    })
    .await
    .unwrap();
    let exchanges = sandbox
        .requests(Some(weft_sandbox::Vendor::Zoho))
        .into_iter()
        .filter(|r| r.uri.contains("/oauth/v2/token"))
        .count();
    assert_eq!(exchanges, 1, "thirty runs, {exchanges} token exchanges");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..20_000)
        .map(|i| format!("{{\"id\":\"{i}\",\"name\":\"person {i}\"}}\n"))
        .collect();
    let import = weft(
        dir.path(),
        &["dataset", "import", "people", "--key", "id"],
        Some(&lines),
    );
    assert!(import.status.success(), "{}", text(&import.stderr));
    // `weft dataset export people | head -1`
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["dataset", "export", "people", "--format", "jsonl"])
        .env("WEFT_DATA_DIR", dir.path())
        .env_remove("WEFT_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone now.
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn every_command_that_prints_ends_quietly_when_its_output_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let set = weft(dir.path(), &["secret", "set", "api_key"], Some("s3cret"));
    assert!(set.status.success(), "{}", text(&set.stderr));
    let people = "{\"id\":\"1\"}\n{\"id\":\"2\"}\n";
    let import = weft(
        dir.path(),
        &["dataset", "import", "people", "--key", "id"],
        Some(people),
    );
    assert!(import.status.success(), "{}", text(&import.stderr));
    let map = wasm(MAP);
    let flow = dir.path().join("copy.toml");
    std::fs::write(
        &flow,
        "name = \"copy\"\n[connections.store]\nplugin = \"dataset\"\n\
         [[steps]]\nid = \"read\"\nread = { connection = \"store\", stream = \"people\" }\n\
         [[steps]]\nid = \"keep\"\n\
         write = { connection = \"store\", stream = \"copies\", input = \"read\", mode = \"upsert\", key = [\"id\"] }\n",
    )
    .unwrap();
    let flow = flow.to_str().unwrap();
    for args in [
        vec!["schema"],
        vec!["secret", "list"],
        vec!["validate", flow],
        vec!["run", flow],
        vec!["runs", "list"],
        vec!["plugin", "inspect", map.to_str().unwrap()],
        vec!["dataset", "list"],
    ] {
        // A pipe whose reader is gone before weft starts: every write to stdout fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(&args)
            .env("WEFT_DATA_DIR", dir.path())
            .env_remove("WEFT_MASTER_KEY")
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "weft {args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "weft {args:?}: {err}");
        assert!(out.status.success(), "weft {args:?}: {err}");
    }
}
