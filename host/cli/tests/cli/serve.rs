//! `weft serve` as a process: schedules and chains until SIGTERM, a broken flow refusing the
//! start, webhook deliveries across a crash, registration with the sandbox's vendors.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_scheduled_flows_and_their_chains_until_stopped() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..5).map(|i| serde_json::json!({"id": format!("{i}"), "email": format!("p{i}@x.io")})),
    );
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    let connection = format!(
        "[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\n\n[connections.store]\nplugin = \"dataset\"\n",
        upstream.url(),
        upstream.addr
    );
    std::fs::write(
        flows.join("collect.toml"),
        format!("name = \"collect\"\n\n[trigger]\nschedule = {{ every = \"1s\" }}\n\n{connection}\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"keep\"\nwrite = {{ connection = \"store\", stream = \"people\", input = \"items\", mode = \"upsert\", key = [\"email\"] }}\n"),
    )
    .unwrap();
    std::fs::write(
        flows.join("publish.toml"),
        format!("name = \"publish\"\nafter = [\"collect\"]\n\n{connection}\n[[steps]]\nid = \"people\"\nread = {{ connection = \"store\", stream = \"people\" }}\n\n[[steps]]\nid = \"save\"\nwrite = {{ connection = \"api\", stream = \"contacts\", input = \"people\", mode = \"upsert\", key = [\"id\"] }}\n"),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "--flows",
            flows.to_str().unwrap(),
            "--plugins",
            weft_tests::WASM_DIR,
            "--listen",
            "127.0.0.1:0",
        ])
        .env("WEFT_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until collect ran twice on its schedule and publish after each, however slow the machine
    // is to start the server.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let runs = match weft_store::Store::open_sqlite(dir.path().join("weft.db")).await {
            Ok(store) => store.runs_list("default", 100).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let done = |flow: &str| {
            runs.iter()
                .filter(|r| r.flow == flow && r.status.completed())
                .count()
        };
        if (done("collect") >= 2 && done("publish") >= 2) || std::time::Instant::now() > deadline {
            break;
        }
    }
    // SIGTERM: the server finishes what it is running and stops.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        text(&out.stderr).ends_with("stopped\n"),
        "{}",
        text(&out.stderr)
    );
    let collected = stdout
        .lines()
        .filter(|l| l.contains("flow collect run") && l.contains("succeeded: 5 read, 5 written"))
        .count();
    let published = stdout
        .lines()
        .filter(|l| l.contains("flow publish run") && l.contains("succeeded: 5 read, 5 written"))
        .count();
    assert!(
        collected >= 2,
        "the schedule ran collect {collected} times in a minute:\n{stdout}"
    );
    // A collect that ended after the SIGTERM has its publish at the next start.
    assert!(
        published == collected || published + 1 == collected,
        "publish follows every successful collect:\n{stdout}"
    );
    let first_collect = stdout
        .lines()
        .position(|l| l.contains("flow collect"))
        .unwrap();
    let first_publish = stdout
        .lines()
        .position(|l| l.contains("flow publish"))
        .unwrap();
    assert!(first_collect < first_publish, "{stdout}");
    assert_eq!(upstream.records("contacts").len(), 5);
}

#[test]
fn serve_refuses_to_start_with_a_broken_flow() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/ui/unknown-input.toml"
        ),
        flows.join("broken.toml"),
    )
    .unwrap();
    let out = weft(
        dir.path(),
        &[
            "serve",
            "--flows",
            flows.to_str().unwrap(),
            "--plugins",
            weft_tests::WASM_DIR,
            "--listen",
            "127.0.0.1:0",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("input `tickest` is not a step of this flow"),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
}

fn sign(body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hook-secret");
    format!(
        "sha256={}",
        ring::hmac::sign(&key, body.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Starts `weft serve` and waits for the address of its webhook endpoints.
fn serve_with_hooks(
    data: &std::path::Path,
    flows: &std::path::Path,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "--flows",
            flows.to_str().unwrap(),
            "--plugins",
            weft_tests::WASM_DIR,
            "--listen",
            "127.0.0.1:0",
        ])
        .env("WEFT_DATA_DIR", data)
        .env("WEFT_RUN_LEASE", "1")
        .env("WEFT_TEST_HOOK_SECRET", "hook-secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("serve printed its webhook address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("webhooks on ") {
            break rest.trim_end_matches("/hooks/{flow}").to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_events_are_kept_before_the_reply_and_processed_once_across_a_crash() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(
        flows.join("hooks.toml"),
        format!(
            r#"name = "hooks"

[trigger]
webhook = {{ connection = "api" }}

[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]
webhook_secret = "env:WEFT_TEST_HOOK_SECRET"

[[steps]]
id = "changed"
read = {{ connection = "api", stream = "items" }}

[[steps]]
id = "save"
write = {{ connection = "api", stream = "contacts", input = "changed", mode = "upsert", key = ["id"] }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    let delivery = |ids: &[&str]| {
        let events: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({"id": format!("evt-{id}"), "stream": "items", "action": "updated", "record": {"id": id, "name": format!("changed {id}")}}))
            .collect();
        serde_json::json!({ "events": events }).to_string()
    };
    // Plain http to loopback; reqwest still wants a TLS provider chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let post = |url: String, body: String, signature: String| {
        let client = client.clone();
        async move {
            client
                .post(url)
                .header("X-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };

    let (mut server, address) = {
        let (d, f) = (dir.path().to_owned(), flows.clone());
        tokio::task::spawn_blocking(move || serve_with_hooks(&d, &f))
            .await
            .unwrap()
    };
    let url = format!("{address}/hooks/hooks");
    let body = delivery(&["a", "b"]);
    let accepted = post(url.clone(), body.clone(), sign(&body)).await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&accepted.text().await.unwrap()).unwrap(),
        serde_json::json!({"accepted": 2, "duplicates": 0})
    );
    // The vendor delivers evt-a again: it is dropped.
    let again = delivery(&["a"]);
    let duplicate = post(url.clone(), again.clone(), sign(&again)).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&duplicate.text().await.unwrap()).unwrap(),
        serde_json::json!({"accepted": 0, "duplicates": 1})
    );
    // A forged delivery is refused.
    let forged = post(url.clone(), delivery(&["x"]), sign("something else")).await;
    assert_eq!(forged.status(), 401);

    // The next event is acknowledged, then the server dies at once.
    let body = delivery(&["c"]);
    assert_eq!(
        post(url.clone(), body.clone(), sign(&body)).await.status(),
        200
    );
    server.kill().unwrap();
    server.wait().unwrap();

    // Restarted, it processes whatever was kept and not yet done.
    let (mut server, _) = {
        let (d, f) = (dir.path().to_owned(), flows.clone());
        tokio::task::spawn_blocking(move || serve_with_hooks(&d, &f))
            .await
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while upstream.records("contacts").len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "events were lost: {:?}",
            upstream.records("contacts")
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    server.wait().unwrap();

    let contacts = upstream.records("contacts");
    let ids: Vec<&str> = contacts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(!ids.contains(&"x"));
    let store = weft_store::Store::open_sqlite(dir.path().join("weft.db"))
        .await
        .unwrap();
    assert!(
        store
            .events_pending("default", "hooks", 10)
            .await
            .unwrap()
            .is_empty(),
        "every kept event was processed"
    );
    // The redelivered evt-a started no run of its own: at most one write per run (a, b), (c),
    // and (c) again if the crash came between its write and its marking as done.
    let batch_writes = upstream
        .seen()
        .iter()
        .filter(|s| s.path == "/contacts/batch")
        .count();
    assert!(
        batch_writes <= 3,
        "{batch_writes} batch writes for 3 events"
    );
}

/// Starts `weft serve` on the `sandbox` environment of `flows`, listening on `port` and
/// registering its webhooks at `http://127.0.0.1:{port}`, and waits for the line saying what
/// happened to the registration.
fn serve_public(
    data: &std::path::Path,
    flows: &std::path::Path,
    port: u16,
    vars: &[String],
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "serve",
            "--flows",
            flows.to_str().unwrap(),
            "--plugins",
            weft_tests::WASM_DIR,
            "--env",
            "sandbox",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(vars)
        .env("WEFT_DATA_DIR", data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let registered = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("serve stopped before registering"))
            .unwrap();
        if line.starts_with("webhook of flow ") || line.starts_with("error") {
            break line;
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, registered)
}

/// A port nothing listens on now, for a server that must know its address before it starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Partner Center emulator's webhook registration, as its API shows it (404: none).
async fn partner_center_registration(sandbox: &weft_sandbox::Sandbox) -> reqwest::Response {
    let pc = sandbox.vendor(weft_sandbox::Vendor::PartnerCenter).unwrap();
    let token = weft_tests::vendor::refreshed_token(
        sandbox,
        weft_sandbox::Vendor::PartnerCenter,
        &pc.credentials().extra["token_url"],
    )
    .await;
    reqwest::Client::new()
        .get(format!("{}/webhooks/v1/registration", pc.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Scenario 5's webhook path end to end: `weft serve --public-url` registers the flow's
/// endpoint for its four referral events with Partner Center, the emulator's signed delivery of
/// a new referral becomes an opportunity in Salesforce, a restart registers nothing again, and
/// `weft webhook remove` unsubscribes.
#[tokio::test(flavor = "multi_thread")]
async fn serve_registers_the_webhook_and_a_signed_referral_event_becomes_an_opportunity() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = weft_sandbox::Sandbox::start(weft_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/partner-center-salesforce/1-referrals-to-opportunities.toml");
    let flow_file = flows.join("1-referrals-to-opportunities.toml");
    std::fs::copy(&example, &flow_file).unwrap();
    let key = sandbox
        .vendor(weft_sandbox::Vendor::Salesforce)
        .unwrap()
        .credentials()
        .extra["jwt_private_key_pem"]
        .clone();
    let data = dir.path().to_owned();
    let set = tokio::task::spawn_blocking(move || {
        weft(
            &data,
            &["secret", "set", "salesforce_sandbox_jwt_key"],
            Some(&key),
        )
    })
    .await
    .unwrap();
    assert!(set.status.success(), "{}", text(&set.stderr));

    let vars = sandbox_vars(&sandbox, &flow_file);
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let serve = {
        let (data, flows, vars) = (dir.path().to_owned(), flows.clone(), vars.clone());
        move || serve_public(&data, &flows, port, &vars)
    };
    let (server, registered) = tokio::task::spawn_blocking(serve.clone()).await.unwrap();
    let callback = format!("{public}/hooks/partner-referrals-to-opportunities");
    assert!(
        registered.starts_with("webhook of flow partner-referrals-to-opportunities: registered ("),
        "{registered}"
    );
    assert!(
        registered.ends_with(&format!("at {callback}")),
        "{registered}"
    );
    let registration: serde_json::Value = partner_center_registration(&sandbox)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(registration["WebhookUrl"], callback.as_str());
    assert_eq!(
        registration["WebhookEvents"],
        serde_json::json!([
            "referral-created",
            "referral-updated",
            "related-referral-created",
            "related-referral-updated"
        ])
    );

    // Microsoft shares a referral: the emulator signs and delivers the event to weft.
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/admin/vendors/partner-center/actions/incoming-referral",
            sandbox.admin_url()
        ))
        .json(&serde_json::json!({"name": "Fabrikam - shared by Microsoft"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let (token, root) = weft_tests::vendor::salesforce_session(&sandbox).await;
    let query = format!(
        "SELECT Id, Name, StageName, Partner_Center_Sync_Status__c FROM Opportunity WHERE Partner_Center_Referral_Id__c = '{id}'"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let opportunity = loop {
        let found: serde_json::Value = reqwest::Client::new()
            .get(format!("{root}/query"))
            .query(&[("q", &query)])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(o) = found["records"].as_array().and_then(|r| r.first()) {
            break o.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no opportunity for referral {id} within a minute: {found}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(opportunity["Name"], "Fabrikam - shared by Microsoft");
    assert_eq!(
        opportunity["StageName"], "Qualification",
        "the waiting stage"
    );
    assert_eq!(opportunity["Partner_Center_Sync_Status__c"], "✔");
    let stop = |child: std::process::Child| {
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || stop(server))
        .await
        .unwrap();
    assert!(
        text(&out.stdout).contains("flow partner-referrals-to-opportunities run"),
        "{}",
        text(&out.stdout)
    );

    // A restart with the same URL and events keeps the registration.
    let (server, registered) = tokio::task::spawn_blocking(serve).await.unwrap();
    assert!(
        registered.contains(": registered already ("),
        "{registered}"
    );
    tokio::task::spawn_blocking(move || stop(server))
        .await
        .unwrap();
    let data = dir.path().to_owned();
    let listed = tokio::task::spawn_blocking(move || weft(&data, &["webhook", "list"], None))
        .await
        .unwrap();
    let listed = text(&listed.stdout);
    assert!(
        listed.starts_with(&"partner-referrals-to-opportunities\tpc-events\t".to_string()),
        "{listed}"
    );
    assert!(listed.contains(&format!("\t{callback}\treferral-created,referral-updated,related-referral-created,related-referral-updated\t")), "{listed}");

    // Removed: unsubscribed at the vendor, forgotten by weft.
    let (data, file) = (
        dir.path().to_owned(),
        flow_file.to_str().unwrap().to_owned(),
    );
    let removed = tokio::task::spawn_blocking(move || {
        let mut args = vec![
            "webhook".to_string(),
            "remove".into(),
            file,
            "--env".into(),
            "sandbox".into(),
            "--plugins".into(),
            weft_tests::WASM_DIR.into(),
        ];
        args.extend(vars);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (
            weft(&data, &args, None),
            weft(&data, &["webhook", "list"], None),
        )
    })
    .await
    .unwrap();
    assert!(removed.0.status.success(), "{}", text(&removed.0.stderr));
    assert!(
        text(&removed.0.stderr)
            .contains("unsubscribed the webhook of flow `partner-referrals-to-opportunities`")
    );
    assert_eq!(text(&removed.1.stdout), "");
    assert_eq!(partner_center_registration(&sandbox).await.status(), 404);
}

/// Scenario 2's near-real-time path: `weft serve --public-url` registers the Zendesk webhook
/// (bearer-token authenticated), a ticket created in Zendesk arrives as a delivery, and the
/// ticket lands in Zoho's Zendesk_Tickets; a delivery without the token is refused.
#[tokio::test(flavor = "multi_thread")]
async fn serve_receives_zendesk_ticket_events_and_writes_the_tickets_into_zoho() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = weft_sandbox::Sandbox::start(weft_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/zendesk-zoho/ticket-events-to-zoho.toml");
    std::fs::copy(&example, flows.join("ticket-events-to-zoho.toml")).unwrap();
    let data = dir.path().to_owned();
    let set = tokio::task::spawn_blocking(move || {
        weft(
            &data,
            &["secret", "set", "zendesk_webhook_key"],
            Some("a-random-webhook-key"),
        )
    })
    .await
    .unwrap();
    assert!(set.status.success(), "{}", text(&set.stderr));
    let vars = sandbox_vars(&sandbox, &example);
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let (mut server, registered) = {
        let (data, flows) = (dir.path().to_owned(), flows.clone());
        tokio::task::spawn_blocking(move || serve_public(&data, &flows, port, &vars))
            .await
            .unwrap()
    };
    assert!(registered.contains(": registered ("), "{registered}");
    let zendesk = sandbox.vendor(weft_sandbox::Vendor::Zendesk).unwrap();
    let c = zendesk.credentials();
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{}/api/v2/tickets.json", zendesk.base_url()))
        .basic_auth(format!("{}/token", c.username), c.api_token.as_deref())
        .json(&serde_json::json!({"ticket": {"subject": "Printer on fire", "comment": {"body": "Smoke everywhere."}, "priority": "urgent"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket_id = created["ticket"]["id"].to_string();

    // A delivery without the registered token is refused.
    let forged = http
        .post(format!("{public}/hooks/zendesk-ticket-events-to-zoho"))
        .bearer_auth("guessed")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let zoho = sandbox.vendor(weft_sandbox::Vendor::Zoho).unwrap();
    let bearer = format!(
        "Zoho-oauthtoken {}",
        weft_tests::vendor::refreshed_token(
            &sandbox,
            weft_sandbox::Vendor::Zoho,
            &format!("{}/oauth/v2/token", zoho.base_url())
        )
        .await
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let record = loop {
        let resp = http
            .get(format!(
                "{}/crm/v7/Zendesk_Tickets?fields=Name,Zendesk_Ticket_Id,Priority",
                zoho.base_url()
            ))
            .header("Authorization", &bearer)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            let page: serde_json::Value = resp.json().await.unwrap();
            if let Some(r) = page["data"].as_array().and_then(|d| {
                d.iter()
                    .find(|r| r["Zendesk_Ticket_Id"] == ticket_id.as_str())
            }) {
                break r.clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ticket {ticket_id} did not reach Zoho within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        (&record["Name"], &record["Priority"]),
        (
            &serde_json::json!("Printer on fire"),
            &serde_json::json!("urgent")
        )
    );
    std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_the_run_under_way_finish_and_the_next_start_runs_the_chain_after_it() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..5).map(|i| serde_json::json!({"id": format!("{i}"), "email": format!("p{i}@x.io")})),
    );
    // Every page takes a while: the SIGTERM lands in the middle of the run.
    upstream.delay_data(std::time::Duration::from_millis(1_500));
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    let connection = format!(
        "[connections.api]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\n\n[connections.store]\nplugin = \"dataset\"\n",
        upstream.url(),
        upstream.addr
    );
    std::fs::write(
        flows.join("collect.toml"),
        format!("name = \"collect\"\n\n[trigger]\nschedule = {{ every = \"1h\" }}\n\n{connection}\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"keep\"\nwrite = {{ connection = \"store\", stream = \"people\", input = \"items\", mode = \"upsert\", key = [\"email\"] }}\n"),
    )
    .unwrap();
    std::fs::write(
        flows.join("publish.toml"),
        format!("name = \"publish\"\nafter = [\"collect\"]\n\n{connection}\n[[steps]]\nid = \"people\"\nread = {{ connection = \"store\", stream = \"people\" }}\n\n[[steps]]\nid = \"save\"\nwrite = {{ connection = \"api\", stream = \"contacts\", input = \"people\", mode = \"upsert\", key = [\"id\"] }}\n"),
    )
    .unwrap();
    let serve = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["serve", "--flows", flows.to_str().unwrap()])
            .args(["--plugins", weft_tests::WASM_DIR, "--listen", "127.0.0.1:0"])
            .env("WEFT_DATA_DIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let stop = |child: std::process::Child| async move {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap()
    };

    let child = serve();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while upstream.seen().is_empty() {
        assert!(std::time::Instant::now() < deadline, "collect never asked");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = stop(child).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("stopping: starting nothing more"),
        "{stderr}"
    );
    assert!(
        stdout.contains("flow collect run") && stdout.contains("succeeded: 5 read, 5 written"),
        "the run under way finished:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("flow publish"),
        "nothing new started:\n{stdout}"
    );
    assert!(upstream.records("contacts").is_empty());

    // The next start runs the chain the stop left, at once; collect is not due for an hour.
    upstream.delay_data(std::time::Duration::ZERO);
    let child = serve();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while upstream.records("contacts").len() < 5 {
        assert!(std::time::Instant::now() < deadline, "publish never ran");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = stop(child).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("flow publish run") && !stdout.contains("flow collect run"),
        "{stdout}"
    );
}
