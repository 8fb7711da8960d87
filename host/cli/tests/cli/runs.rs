//! `weft run` and `weft runs`: progress, the summary, a run's errors, retrying what failed,
//! many runs sharing one token exchange.

use super::*;

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
fn a_plugin_named_by_a_variable_is_the_one_its_value_names() {
    let dir = tempfile::tempdir().unwrap();
    let people = "{\"id\":\"1\",\"name\":\"Ada\"}\n{\"id\":\"2\",\"name\":\"Grace\"}\n";
    let import = weft(
        dir.path(),
        &["dataset", "import", "people", "--key", "id"],
        Some(people),
    );
    assert!(import.status.success(), "{}", text(&import.stderr));
    let flow = dir.path().join("reshape.toml");
    std::fs::write(
        &flow,
        "name = \"reshape\"\n\n[variables.store]\ntype = \"string\"\ndefault = \"dataset\"\n\n\
         [variables.shape]\ntype = \"string\"\n\n\
         [connections.store]\nplugin = \"${var.store}\"\n\n\
         [[steps]]\nid = \"read\"\nread = { connection = \"store\", stream = \"people\" }\n\n\
         [[steps]]\nid = \"shaped\"\ntransform = { plugin = \"${var.shape}\", input = \"read\" }\n\
         config.fields = { id = \"id\", name = \"name\" }\n\n\
         [[steps]]\nid = \"keep\"\n\
         write = { connection = \"store\", stream = \"shaped\", input = \"shaped\", mode = \"upsert\", key = [\"id\"] }\n",
    )
    .unwrap();
    let flow = flow.to_str().unwrap();

    let run = weft(dir.path(), &["run", flow, "--var", "shape=map"], None);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let shown = weft(dir.path(), &["dataset", "show", "shaped"], None);
    let shown = text(&shown.stdout);
    assert!(shown.contains("Ada") && shown.contains("Grace"), "{shown}");

    // A value naming no plugin is said at the plugin's place in the file, by the name it made.
    let wrong = weft(dir.path(), &["validate", flow, "--var", "shape=mapp"], None);
    assert!(!wrong.status.success());
    let err = text(&wrong.stderr);
    assert!(err.contains("no plugin `mapp`"), "{err}");
    assert!(err.contains("reshape.toml:19:24"), "{err}");
    // A connector where a transform belongs, by the value.
    let connector = weft(
        dir.path(),
        &["validate", flow, "--var", "shape=http-json"],
        None,
    );
    let err = text(&connector.stderr);
    assert!(
        err.contains("plugin `http-json` is a connector, not a transform"),
        "{err}"
    );
}
