//! `weft connections`: each connection's check and token; tokens kept from the terminal and
//! the store.

use super::*;

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
