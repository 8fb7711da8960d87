//! `weft serve` for many tenants, as processes: tenants made with `weft tenant` deploy and run
//! flows through a running server's API, and the remote CLI (`--server`, `WEFT_TOKEN`) works as
//! its tenant and sees nothing of another's.

use super::*;

/// Starts `weft serve` with no flows directory (only what tenants deploy), and waits for its
/// API's address.
fn serve_api(data: &std::path::Path, extra: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "--plugins",
            weft_tests::WASM_DIR,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("WEFT_DATA_DIR", data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("serve printed its API address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("API on ") {
            break rest
                .split(' ')
                .next()
                .unwrap()
                .trim_end_matches("/api/v1")
                .to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

/// Makes tenant `name` in the data directory `data`; the API token printed for it.
fn tenant_token(data: &std::path::Path, name: &str) -> String {
    let made = weft(data, &["tenant", "create", name], None);
    assert!(made.status.success(), "{}", text(&made.stderr));
    text(&made.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_made_on_the_command_line_deploy_and_run_flows_on_a_running_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..4).map(|i| serde_json::json!({"id": format!("{i}"), "email": format!("p{i}@x.io")})),
    );
    let dir = tempfile::tempdir().unwrap();
    let made = weft(dir.path(), &["tenant", "create", "acme"], None);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let token = text(&made.stdout).trim().to_owned();
    assert!(token.starts_with("weft_"), "{token}");
    assert!(text(&made.stderr).contains("shown this once"));
    let again = weft(dir.path(), &["tenant", "create", "acme"], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("exists already"),
        "{}",
        text(&again.stderr)
    );
    let listed = weft(dir.path(), &["tenant", "list"], None);
    assert!(
        text(&listed.stdout).starts_with("acme\tactive\t"),
        "{}",
        text(&listed.stdout)
    );

    let (mut child, address) = serve_api(dir.path(), &["--tenant-private-egress"]);
    let http = reqwest::Client::new();
    let source = format!(
        "name = \"collect\"\n\n[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\n\n[connections.store]\nplugin = \"dataset\"\n\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"keep\"\nwrite = {{ connection = \"store\", stream = \"people\", input = \"items\", mode = \"upsert\", key = [\"email\"] }}\n",
        upstream.url(),
        upstream.addr
    );
    let deployed = http
        .post(format!("{address}/api/v1/flows"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "source": source }))
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), 201, "{}", deployed.text().await.unwrap());
    let asked = http
        .post(format!("{address}/api/v1/flows/collect/runs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 202);

    // The server picks the request up at once (the API tells it), runs it for the tenant.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let run = loop {
        let runs: serde_json::Value = http
            .get(format!("{address}/api/v1/runs?flow=collect"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if runs[0]["status"] == "succeeded" {
            break runs[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no run: {runs}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // The tenant's own store rows: the CLI sees the run under the tenant, not the default.
    let shown = weft(
        dir.path(),
        &[
            "--tenant",
            "acme",
            "runs",
            "show",
            run["id"].as_str().unwrap(),
        ],
        None,
    );
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let default = weft(dir.path(), &["runs", "list"], None);
    assert!(!text(&default.stdout).contains(run["id"].as_str().unwrap()));

    // Suspended on the command line: the running server refuses the token at once.
    let suspended = weft(dir.path(), &["tenant", "suspend", "acme"], None);
    assert!(suspended.status.success());
    let refused = http
        .get(format!("{address}/api/v1/flows"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    child.kill().unwrap();
    child.wait().unwrap();
    let deleted = weft(dir.path(), &["tenant", "delete", "acme"], None);
    assert_eq!(deleted.status.code(), Some(1), "deleting asks for --yes");
    let deleted = weft(dir.path(), &["tenant", "delete", "acme", "--yes"], None);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let shown = weft(
        dir.path(),
        &[
            "--tenant",
            "acme",
            "runs",
            "show",
            run["id"].as_str().unwrap(),
        ],
        None,
    );
    assert!(!shown.status.success(), "the tenant's runs went with it");
}

/// `weft --server URL ARGS` as the tenant whose token is `token`.
fn remote(address: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .args(["--server", address])
        .args(args)
        // No local data directory is touched in remote mode.
        .env("WEFT_DATA_DIR", "/nonexistent/weft-remote")
        .env_remove("WEFT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("WEFT_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn the_remote_cli_deploys_runs_and_inspects_flows_as_its_tenant() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.require_bearer("s3cret-token");
    upstream.seed(
        "items",
        (0..3).map(|i| serde_json::json!({"id": format!("{i}"), "email": format!("p{i}@x.io")})),
    );
    let dir = tempfile::tempdir().unwrap();
    let acme = tenant_token(dir.path(), "acme");
    let other = tenant_token(dir.path(), "other");
    let (mut child, address) = serve_api(dir.path(), &["--tenant-private-egress"]);
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(
        flows.join("collect.toml"),
        format!(
            "name = \"collect\"\n\n[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\nauth = {{ kind = \"bearer\", token = \"secret:api\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\n\n[connections.store]\nplugin = \"dataset\"\n\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"keep\"\nwrite = {{ connection = \"store\", stream = \"people\", input = \"items\", mode = \"upsert\", key = [\"email\"] }}\n",
            upstream.url(),
            upstream.addr
        ),
    )
    .unwrap();
    std::fs::write(flows.join("broken.toml"), "name = \"broken\"\nsteps = 3\n").unwrap();

    // No token: said, before anything is sent.
    let out = remote(&address, None, &["flows", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("WEFT_TOKEN"),
        "{}",
        text(&out.stderr)
    );

    // A directory: the good flow deployed, the broken one refused with its diagnostics.
    let out = remote(
        &address,
        Some(&acme),
        &["flows", "deploy", flows.to_str().unwrap()],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("deployed") && stderr.contains("flow `collect` (manual)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--> flow.toml:2:"),
        "the diagnostics, with line: {stderr}"
    );
    assert!(stderr.contains("1 flow file(s) refused"), "{stderr}");

    let out = remote(
        &address,
        Some(&acme),
        &["secret", "set", "api"],
        Some("s3cret-token\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = remote(&address, Some(&acme), &["secret", "list"], None);
    assert!(
        text(&out.stdout).starts_with("api\t"),
        "{}",
        text(&out.stdout)
    );

    let out = remote(&address, Some(&acme), &["flows", "run", "collect"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let listed = loop {
        let out = remote(
            &address,
            Some(&acme),
            &["runs", "list", "--flow", "collect"],
            None,
        );
        let stdout = text(&out.stdout);
        if stdout.contains("\tsucceeded\t") {
            break stdout;
        }
        assert!(std::time::Instant::now() < deadline, "{stdout}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let run = listed.split('\t').next().unwrap().to_owned();
    let out = remote(&address, Some(&acme), &["runs", "show", &run], None);
    let shown = text(&out.stdout);
    assert!(shown.contains("of flow `collect`: succeeded"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("keep ") && l.contains(" 3 ")),
        "{shown}"
    );
    let out = remote(&address, Some(&acme), &["flows", "list"], None);
    assert!(
        text(&out.stdout).starts_with(&format!(
            "collect\tenabled\tmanual\tnext -\tlast {run} succeeded"
        )),
        "{}",
        text(&out.stdout)
    );

    // Another tenant's token sees none of it.
    for args in [
        &["runs", "show", run.as_str()][..],
        &["flows", "show", "collect"],
        &["flows", "run", "collect"],
        &["secret", "rm", "api"],
    ] {
        let out = remote(&address, Some(&other), args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("(404 Not Found)"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = remote(&address, Some(&other), &["runs", "list"], None);
    assert_eq!(text(&out.stdout), "");

    let out = remote(
        &address,
        Some(&acme),
        &["flows", "disable", "collect"],
        None,
    );
    assert!(out.status.success());
    let out = remote(&address, Some(&acme), &["flows", "run", "collect"], None);
    assert!(
        text(&out.stderr).contains("is disabled"),
        "{}",
        text(&out.stderr)
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Waits (a minute at most) until `weft runs list --flow FLOW` against the server shows `lines`
/// runs; its output.
async fn runs_listed(address: &str, token: &str, flow: &str, lines: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = remote(
            address,
            Some(token),
            &["runs", "list", "--flow", flow],
            None,
        );
        let stdout = text(&out.stdout);
        if stdout.lines().count() == lines && !stdout.contains("\trunning\t") {
            return stdout;
        }
        assert!(std::time::Instant::now() < deadline, "{stdout}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_remote_cli_retries_the_failed_records_of_a_run_once_they_can_go_through() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..5).map(|i| serde_json::json!({"id": format!("{i}")})),
    );
    upstream.lock(&["2"]);
    let dir = tempfile::tempdir().unwrap();
    let acme = tenant_token(dir.path(), "acme");
    let (mut child, address) = serve_api(dir.path(), &["--tenant-private-egress"]);
    let flow = dir.path().join("contacts.toml");
    std::fs::write(
        &flow,
        format!(
            "name = \"contacts\"\n\n[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\n\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"save\"\nwrite = {{ connection = \"api\", stream = \"contacts\", input = \"items\", mode = \"upsert\", key = [\"id\"] }}\n",
            upstream.url(),
            upstream.addr
        ),
    )
    .unwrap();
    let flow = flow.to_str().unwrap();
    let out = remote(&address, Some(&acme), &["flows", "deploy", flow], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = remote(&address, Some(&acme), &["flows", "run", "contacts"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = runs_listed(&address, &acme, "contacts", 1).await;
    assert!(listed.contains("\tpartial\t"), "{listed}");
    let run = listed.split('\t').next().unwrap().to_owned();
    assert_eq!(upstream.records("contacts").len(), 4);

    // A server retries with the flow deployed to it: a local flow file is refused.
    let out = remote(
        &address,
        Some(&acme),
        &["runs", "retry", &run, "--failed-only", "--flow", flow],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--flow is for local retries"));
    // Cancelling a run that ended says how it ended.
    let out = remote(&address, Some(&acme), &["runs", "cancel", &run], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not running: it ended partial"),
        "{}",
        text(&out.stderr)
    );

    upstream.unlock();
    let out = remote(
        &address,
        Some(&acme),
        &["runs", "retry", &run, "--failed-only"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!(
        "retry of the failed records of run {run} asked for"
    )));
    let listed = runs_listed(&address, &acme, "contacts", 2).await;
    let newest = listed.lines().next().unwrap();
    assert!(newest.contains("\tsucceeded\t"), "{listed}");
    let retry = newest.split('\t').next().unwrap();
    let out = remote(&address, Some(&acme), &["runs", "show", retry], None);
    let shown = text(&out.stdout);
    // Only the failed record went again, straight to the step that failed it.
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("save ") && l.contains(" 1 ")),
        "{shown}"
    );
    assert!(!shown.lines().any(|l| l.starts_with("items ")), "{shown}");
    assert_eq!(upstream.records("contacts").len(), 5);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_remote_cli_installs_and_lists_a_tenants_own_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let acme = tenant_token(dir.path(), "acme");
    let other = tenant_token(dir.path(), "other");
    let (mut child, address) = serve_api(dir.path(), &[]);
    let component = weft_tests::wasm("acme_helpdesk_connector");
    let out = remote(
        &address,
        Some(&acme),
        &["plugin", "install", component.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .starts_with("installed acme-helpdesk 0.1.0 (connector) for the tenant; digest "),
        "{}",
        text(&out.stdout)
    );
    let listed = text(&remote(&address, Some(&acme), &["plugin", "list"], None).stdout);
    let fields: Vec<&str> = listed
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[..3],
        ["acme-helpdesk", "0.1.0", "connector"],
        "{listed}"
    );
    // Another tenant sees none of it.
    let listed = text(&remote(&address, Some(&other), &["plugin", "list"], None).stdout);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    // Something that is not a plugin: the server's reason, said.
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"not a component").unwrap();
    let out = remote(
        &address,
        Some(&acme),
        &["plugin", "install", bogus.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the server refused POST /api/v1/plugins (400"),
        "{}",
        text(&out.stderr)
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
