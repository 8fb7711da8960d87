//! Plugins written in JavaScript and Python, built by their own toolchains and run by `weft`
//! like any other: the hostile guests (`tests/guests-js`, `tests/guests-python`) get exactly
//! the Rust plugins' sandbox, and the examples (`examples/js-helpdesk-connector`,
//! `examples/python-enrich-transform`) run their flows against the sandbox.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use weft_sandbox::{Sandbox, SandboxConfig, Vendor};

use super::{repo, sandbox_vars, text, toolchain_env, weft};

/// Runs a build step in the checkout, with the caches `.ci/plugin-toolchains` warms.
fn build_step(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo())
        .envs(toolchain_env())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn dataset(data: &Path, name: &str) -> Vec<Value> {
    let out = weft(data, &["dataset", "export", name], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each probe's record: refused or empty, but for the control (a request to its own host),
/// which shows the plugin works, so the refusals are the sandbox's.
fn assert_confined(probes: &[Value], expected: &[&str]) {
    let names: Vec<&str> = probes.iter().filter_map(|p| p["probe"].as_str()).collect();
    for probe in expected {
        assert!(names.contains(probe), "probe {probe} ran: {probes:#?}");
    }
    for probe in probes {
        let name = probe["probe"].as_str().unwrap();
        let outcome = probe["outcome"].as_str().unwrap();
        if name == "control-own-host" {
            assert_eq!(outcome, "allowed", "{probe}");
        } else {
            assert!(
                outcome == "refused" || outcome == "empty",
                "{name} escaped the sandbox: {probe}"
            );
        }
    }
    for denied in ["other-connection", "off-list-address", "off-list-host"] {
        let probe = probes.iter().find(|p| p["probe"] == denied).unwrap();
        assert_eq!(probe["outcome"], "refused", "{probe}");
        assert!(
            probe["detail"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("denied"),
            "{probe}"
        );
    }
}

/// The hostile JavaScript guest reaches no environment, file, socket, other connection or
/// unlisted host; `fetch`, kept as a global by componentize-js, traps and sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_plugin_gets_the_same_sandbox_as_a_rust_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let flow = repo().join("tests/guests-js/probes.toml");
    let fetching = dir.path().join("fetch.toml");
    std::fs::write(
        &fetching,
        std::fs::read_to_string(&flow).unwrap().replace(
            r#"read = { connection = "own", stream = "probes" }"#,
            r#"read = { connection = "own", stream = "probes", options = { probe = "fetch" } }"#,
        ),
    )
    .unwrap();
    let (probes, before) = {
        let run = tokio::task::spawn_blocking({
            let (data, flow) = (data.clone(), flow.clone());
            let vars = sandbox_vars(&sandbox, &flow);
            move || {
                build_step(
                    "npm",
                    &[
                        "ci",
                        "--prefix",
                        "tests/guests-js",
                        "--no-audit",
                        "--no-fund",
                    ],
                );
                build_step("node", &["tests/guests-js/build.mjs"]);
                let file = repo().join("target/guests-js/hostile_js.wasm");
                let installed = weft(&data, &["plugin", "install", file.to_str().unwrap()], None);
                assert!(installed.status.success(), "{}", text(&installed.stderr));
                let mut args = vec!["run".to_string(), flow.to_str().unwrap().into()];
                args.extend(vars);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                weft(&data, &args, None)
            }
        })
        .await
        .unwrap();
        assert!(
            run.status.success(),
            "{}\n{}",
            text(&run.stdout),
            text(&run.stderr)
        );
        (
            dataset(&data, "hostile_js_probes"),
            sandbox.requests(Some(Vendor::Zendesk)).len(),
        )
    };
    assert_confined(
        &probes,
        &["env", "args", "file-list", "socket", "other-connection-mac"],
    );

    let vars = sandbox_vars(&sandbox, &fetching);
    let run = tokio::task::spawn_blocking(move || {
        let mut args = vec!["run".to_string(), fetching.to_str().unwrap().into()];
        args.extend(vars);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        weft(&data, &args, None)
    })
    .await
    .unwrap();
    let output = format!("{}{}", text(&run.stdout), text(&run.stderr));
    assert!(!run.status.success(), "fetch must not work: {output}");
    assert!(output.contains("trap"), "{output}");
    assert_eq!(
        sandbox.requests(Some(Vendor::Zendesk)).len(),
        before,
        "fetch sent nothing upstream"
    );
}

/// The hostile Python guest: environment, files (read, list, write), sockets by name and by
/// address, DNS and urllib all refused; other connections and unlisted hosts denied.
#[tokio::test(flavor = "multi_thread")]
async fn a_python_plugin_gets_the_same_sandbox_as_a_rust_one() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let flow = repo().join("tests/guests-python/probes.toml");
    let run = {
        let (sandbox_vars, data, flow) = (sandbox_vars(&sandbox, &flow), data.clone(), flow);
        tokio::task::spawn_blocking(move || {
            build_step("bash", &["tests/guests-python/build.sh"]);
            let file = repo().join("target/guests-python/hostile_python.wasm");
            let installed = weft(&data, &["plugin", "install", file.to_str().unwrap()], None);
            assert!(installed.status.success(), "{}", text(&installed.stderr));
            let mut args = vec!["run".to_string(), flow.to_str().unwrap().into()];
            args.extend(sandbox_vars);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            weft(&data, &args, None)
        })
        .await
        .unwrap()
    };
    assert!(
        run.status.success(),
        "{}\n{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    assert_confined(
        &dataset(&data, "hostile_python_probes"),
        &[
            "env",
            "file-read",
            "file-list",
            "file-write",
            "socket",
            "socket-ip",
            "dns",
            "fetch",
            "other-connection-mac",
        ],
    );
}

/// The JavaScript connector and the Python transform of `examples/`, built from their
/// projects, run their flows against the sandbox.
#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_and_python_examples_run_their_flows_against_the_sandbox() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let examples = repo().join("examples");
    let js = examples.join("js-helpdesk-connector");
    let py = examples.join("python-enrich-transform");
    let js_flow = js.join("flows/helpdesk-to-datasets.toml");
    let py_flow = py.join("flows/users-enriched.toml");
    let runs = {
        let data = data.clone();
        let vars = [
            sandbox_vars(&sandbox, &js_flow),
            sandbox_vars(&sandbox, &py_flow),
        ];
        tokio::task::spawn_blocking(move || {
            let mut runs = Vec::new();
            for ((project, flow), vars) in [(js, js_flow), (py, py_flow)].into_iter().zip(vars) {
                let project = project.join("plugin");
                build_step(
                    env!("CARGO_BIN_EXE_weft"),
                    &["plugin", "build", "--project", project.to_str().unwrap()],
                );
                let manifest = weft_authoring::Manifest::load(&project).unwrap();
                let file = project.join(&manifest.build.output);
                let installed = weft(&data, &["plugin", "install", file.to_str().unwrap()], None);
                assert!(installed.status.success(), "{}", text(&installed.stderr));
                let mut args = vec![
                    "run".to_string(),
                    flow.to_str().unwrap().into(),
                    "--env".into(),
                    "sandbox".into(),
                ];
                args.extend(vars);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                runs.push(weft(&data, &args, None));
            }
            runs
        })
        .await
        .unwrap()
    };
    for run in &runs {
        assert!(
            run.status.success(),
            "{}\n{}",
            text(&run.stdout),
            text(&run.stderr)
        );
    }
    let tickets = dataset(&data, "helpdesk_tickets");
    assert_eq!(tickets.len(), 40, "every demo ticket");
    assert!(tickets.iter().all(|t| t["subject"].is_string()));
    let users = dataset(&data, "helpdesk_users");
    assert!(users.len() > 25, "{}", users.len());
    let enriched_name = std::fs::read_to_string(
        repo().join("examples/python-enrich-transform/flows/users-enriched.toml"),
    )
    .unwrap();
    let stream = enriched_name
        .lines()
        .find_map(|l| {
            l.strip_prefix("write = ")
                .and_then(|w| w.split("stream = \"").nth(1))
                .and_then(|s| s.split('"').next())
        })
        .expect("the flow writes a dataset");
    let enriched = dataset(&data, stream);
    assert_eq!(enriched.len(), users.len(), "every user enriched");
    assert!(
        enriched
            .iter()
            .filter(|u| u["email"].is_string())
            .all(|u| u["email_domain"].is_string()),
        "{enriched:#?}"
    );
}
