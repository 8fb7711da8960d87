//! Vendors' own client libraries and popular third-party ones, unmodified, against the
//! emulators: an emulator that other people's clients cannot use is not faithful. Each Python
//! client is pinned in `tests/official_clients/requirements/<client>.txt` and installed into a
//! virtualenv of its own under Cargo's test scratch directory on first use (needs `python3` and
//! access to PyPI); two clients can ship the same package (Zoho's SDKs for API v7 and v8 are
//! both `zohocrmsdk`).
//!
//! Clients that hard-code the vendor's https hosts (zenpy, simple-salesforce) reach the
//! emulators through the sandbox's HTTPS proxy, with only `HTTPS_PROXY` and
//! `REQUESTS_CA_BUNDLE` set. monday.py talks through urllib3, which reads no proxy settings, so
//! its resources' endpoint attribute is set instead. No client code is patched.
//!
//! monday.com's client is an npm package (`tests/official_clients/package.json`), installed
//! with `npm` the same way (needs `node` 18+ and the npm registry).
//!
//! Not exercised: Microsoft's MSAL refuses non-https authorities and the sandbox serves plain
//! HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use weft_sandbox::{DemoData, DemoSize, Proxy, ProxyCa, Sandbox, SandboxConfig, Vendor};

use crate::support::start;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official_clients")
}

/// The python of `client`'s virtualenv, created and filled from `requirements/<client>.txt`
/// when missing or stale.
fn python(client: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("official-clients")
        .join(client);
    let py = venv.join("bin/python");
    let requirements = clients_dir()
        .join("requirements")
        .join(format!("{client}.txt"));
    let stamp = venv.join("installed-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .unwrap_or_else(|e| panic!("{}: {e}", requirements.display()));
    let ready =
        || std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && py.exists();
    if ready() {
        return py;
    }
    // Tests run in parallel processes: one installs, the others wait for its stamp.
    let _lock = match InstallLock::take(&venv.with_extension("lock")) {
        Some(lock) => lock,
        None => {
            for _ in 0..600 {
                if ready() {
                    return py;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            panic!(
                "another test has been installing {client} for 5 minutes; remove {} if it died",
                venv.with_extension("lock").display()
            );
        }
    };
    if ready() {
        return py;
    }
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&system)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "could not create a virtualenv with {system}; install python3 (with venv) or set PYTHON"
    );
    let out = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements)
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip could not install {client} (PyPI must be reachable): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&stamp, wanted).expect("write stamp");
    py
}

/// A directory used as a cross-process lock (creating a directory is atomic).
struct InstallLock(PathBuf);

impl InstallLock {
    fn take(path: &Path) -> Option<InstallLock> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::create_dir(path)
            .ok()
            .map(|_| InstallLock(path.to_path_buf()))
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `node_modules` with the pinned npm clients, installed when missing or stale.
fn node_modules() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("official-clients-node");
    let package =
        std::fs::read_to_string(clients_dir().join("package.json")).expect("package.json");
    let stamp = dir.join("installed-package.json");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(package.as_str()) {
        return dir.join("node_modules");
    }
    std::fs::create_dir_all(&dir).expect("create npm dir");
    std::fs::write(dir.join("package.json"), &package).expect("write package.json");
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent"])
        .current_dir(&dir)
        .output()
        .expect("run npm (install node and npm)");
    assert!(
        out.status.success(),
        "npm could not install the official clients (the npm registry must be reachable): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&stamp, package).expect("write stamp");
    dir.join("node_modules")
}

fn run_node(script: &str, args: &[&str]) -> Value {
    let modules = node_modules();
    // Node resolves bare imports from the script's directory upwards, so run a copy beside
    // the installed modules.
    let copy = modules.parent().expect("npm dir").join(script);
    std::fs::copy(clients_dir().join(script), &copy).expect("copy script");
    let out = Command::new("node")
        .arg(&copy)
        .args(args)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `script` with `client`'s python; the script prints one JSON object.
fn run(client: &str, script: &str, args: &[&str]) -> Value {
    run_with(client, script, args, &[])
}

/// Runs `script` with `client`'s python and extra environment variables.
fn run_with(client: &str, script: &str, args: &[&str], env: &[(&str, String)]) -> Value {
    let mut cmd = Command::new(python(client));
    cmd.arg(clients_dir().join(script)).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn hubspot_official_python_client_pages_creates_searches_upserts_and_reads_errors() {
    let mut config = SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(20),
        },
        ..SandboxConfig::default()
    };
    config.hubspot.search_index_lag = std::time::Duration::ZERO;
    let sb = start(config).await;
    let h = sb.vendor(Vendor::HubSpot).unwrap();
    let c = h.credentials();
    let base = h.base_url().to_string();
    let refresh = c.refresh_token.clone().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        run(
            "hubspot",
            "hubspot_client.py",
            &[&base, &c.client_id, &c.client_secret, &refresh],
        )
    })
    .await
    .unwrap();
    assert_eq!(out["expires_in"], 1800);
    assert_eq!(out["refresh_token_kept"], true);
    assert_eq!(out["listed"], 20);
    assert_eq!(out["distinct"], 20);
    assert_eq!(out["pages"], 3);
    assert_eq!(out["created_email"], "official.client@example.com");
    assert_eq!(out["created_object_id"], true);
    assert_eq!(out["created_has_dates"], true);
    assert_eq!(out["search_total"], 1);
    assert_eq!(out["search_id_matches"], true);
    assert_eq!(out["upsert_new_flags"], serde_json::json!([false, true]));
    assert_eq!(out["upsert_object_ids"], true);
    assert_eq!(
        out["property_types"],
        serde_json::json!({"email": "string", "createdate": "datetime", "lifecyclestage": "enumeration"})
    );
    assert_eq!(out["custom_schemas"], 0);
    assert_eq!(out["not_found_status"], 404);
    assert_eq!(out["not_found_category"], "OBJECT_NOT_FOUND");
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_official_client_runs_its_operations_pages_and_reads_errors() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(10),
        },
        ..SandboxConfig::default()
    })
    .await;
    let m = sb.vendor(Vendor::Monday).unwrap();
    let base = m.base_url().to_string();
    let token = m.credentials().api_token.unwrap();
    let out = tokio::task::spawn_blocking(move || {
        run_node("monday_client.mjs", &[&base, &token, "1234567003"])
    })
    .await
    .unwrap();
    assert_eq!(out["me"], "Weft Demo");
    assert_eq!(out["paged"], 10);
    assert_eq!(out["created"], "From the official client");
    assert_eq!(out["values"]["deal_value"], "\"77\"");
    assert_eq!(out["values"]["status"], "{\"index\":4}");
    assert_eq!(out["board_page"], 11);
    assert_eq!(out["error_code"], "InvalidColumnIdException");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_official_python_sdk_refreshes_pages_with_tokens_creates_and_upserts() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(20),
        },
        ..SandboxConfig::default()
    })
    .await;
    let z = sb.vendor(Vendor::Zoho).unwrap();
    let c = z.credentials();
    let base = z.base_url().to_string();
    let refresh = c.refresh_token.clone().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        run(
            "zoho7",
            "zoho_client.py",
            &[&base, &c.client_id, &c.client_secret, &refresh],
        )
    })
    .await
    .unwrap();
    assert_eq!(out["listed"], 20);
    assert_eq!(out["pages"], 5);
    assert_eq!(out["create_status"], 207);
    assert_eq!(
        out["create_codes"],
        serde_json::json!(["SUCCESS", "MANDATORY_NOT_FOUND"])
    );
    assert_eq!(out["upsert_code"], "SUCCESS");
    assert_eq!(out["upsert_action"], "update");
    assert_eq!(out["upsert_duplicate_field"], "Email");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_v8_python_sdk_pages_writes_and_reads_the_org_and_record_count() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(20),
        },
        ..SandboxConfig::default()
    })
    .await;
    let z = sb.vendor(Vendor::Zoho).unwrap();
    let c = z.credentials();
    let base = z.base_url().to_string();
    let refresh = c.refresh_token.clone().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        run(
            "zoho8",
            "zoho_client.py",
            &[&base, &c.client_id, &c.client_secret, &refresh],
        )
    })
    .await
    .unwrap();
    assert_eq!(out["listed"], 20);
    assert_eq!(
        out["create_codes"],
        serde_json::json!(["SUCCESS", "MANDATORY_NOT_FOUND"])
    );
    assert_eq!(out["upsert_action"], "update");
    assert!(
        out["org_zgid"].as_str().is_some_and(|z| !z.is_empty()),
        "{out}"
    );
    assert_eq!(out["count_status"], 200);
    // 20 demo leads and the one the SDK created (the upsert updated it).
    assert_eq!(out["count"], 21);
    sb.shutdown().await;
}

/// The CA every test's proxy signs with, kept under Cargo's scratch directory: one CA for the
/// whole run (and the next), so a client's trust store needs it added once.
fn ca_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-ca")
}

/// Starts the sandbox's HTTPS proxy and returns it with the environment a Python `requests`
/// client needs to use it: `HTTPS_PROXY` and `REQUESTS_CA_BUNDLE`.
async fn proxy_env(sb: &Sandbox) -> (Proxy, Vec<(&'static str, String)>) {
    let ca = ProxyCa::load_or_create(&ca_dir()).expect("sandbox CA");
    let proxy = sb
        .start_proxy(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), ca)
        .await
        .expect("proxy starts");
    let ca = ProxyCa::cert_path(&ca_dir());
    // Both spellings: Python prefers the lower-case variables when both are set.
    let env = vec![
        ("HTTPS_PROXY", proxy.url()),
        ("https_proxy", proxy.url()),
        ("NO_PROXY", String::new()),
        ("no_proxy", String::new()),
        ("REQUESTS_CA_BUNDLE", ca.display().to_string()),
    ];
    (proxy, env)
}

#[tokio::test]
async fn zenpy_lists_creates_updates_and_exports_tickets() {
    let mut config = SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(12),
        },
        ..SandboxConfig::default()
    };
    config.zendesk.incremental_lag = std::time::Duration::ZERO;
    let sb = start(config).await;
    let z = sb.vendor(Vendor::Zendesk).unwrap();
    let c = z.credentials();
    let subdomain = c.extra["subdomain"].clone();
    let token = c.api_token.clone().unwrap();
    let (proxy, env) = proxy_env(&sb).await;
    let out = tokio::task::spawn_blocking(move || {
        run_with(
            "zenpy",
            "zenpy_client.py",
            &[&subdomain, &c.username, &token],
            &env,
        )
    })
    .await
    .unwrap();
    proxy.shutdown().await;
    assert!(out["users"].as_u64().unwrap() >= 12, "{out}");
    let tickets = out["tickets"].as_u64().unwrap();
    assert!(tickets > 0, "{out}");
    assert_eq!(out["created_subject"], "From zenpy");
    assert_eq!(out["updated_status"], "solved");
    // The export holds every ticket, the one zenpy created included.
    assert_eq!(out["incremental"], tickets + 1, "{out}");
    sb.shutdown().await;
}

#[tokio::test]
async fn simple_salesforce_logs_in_with_a_jwt_and_queries_and_writes() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(15),
        },
        ..SandboxConfig::default()
    })
    .await;
    let s = sb.vendor(Vendor::Salesforce).unwrap();
    let c = s.credentials();
    let key = c.extra["jwt_private_key_pem"].clone();
    let (proxy, env) = proxy_env(&sb).await;
    let out = tokio::task::spawn_blocking(move || {
        run_with(
            "simple_salesforce",
            "simple_salesforce_client.py",
            &[&c.username, &c.client_id, &key],
            &env,
        )
    })
    .await
    .unwrap();
    proxy.shutdown().await;
    assert_eq!(out["accounts"], 15);
    assert_eq!(out["created"], true);
    assert_eq!(out["read_back"], "Renamed by simple-salesforce");
    assert_eq!(out["describe_has_name"], true);
    sb.shutdown().await;
}

#[tokio::test]
async fn monday_py_creates_boards_groups_columns_and_finds_items_by_column_value() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(5),
        },
        ..SandboxConfig::default()
    })
    .await;
    let m = sb.vendor(Vendor::Monday).unwrap();
    let base = m.base_url().to_string();
    let token = m.credentials().api_token.unwrap();
    let out =
        tokio::task::spawn_blocking(move || run("monday", "monday_py_client.py", &[&base, &token]))
            .await
            .unwrap();
    assert_eq!(out["columns"], out["column_ids"], "{out}");
    assert_eq!(out["found"], serde_json::json!(["Acme"]));
    assert_eq!(out["found_group"], "Renewals");
    assert_eq!(
        out["unknown_field"],
        "Field 'pos' doesn't exist on type 'Board'"
    );
    sb.shutdown().await;
}

/// Writes an Airbyte source's config where the source can read it.
fn airbyte_config(name: &str, config: &Value) -> String {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("airbyte-{name}-{}.json", std::process::id()));
    std::fs::write(&path, config.to_string()).expect("write config");
    path.display().to_string()
}

/// Runs `airbyte_source.py` for `source` through the proxy and checks what every source must
/// do: spec, a passing check, discovery of `streams`, and a read of them.
async fn run_airbyte(
    sb: &Sandbox,
    client: &'static str,
    source: &'static str,
    config: Value,
    streams: &'static [&'static str],
) -> Value {
    let config = airbyte_config(client, &config);
    let (proxy, env) = proxy_env(sb).await;
    let out = tokio::task::spawn_blocking(move || {
        run_with(
            client,
            "airbyte_source.py",
            &[source, &config, &streams.join(",")],
            &env,
        )
    })
    .await
    .unwrap();
    proxy.shutdown().await;
    assert_eq!(out["spec"], true, "{out}");
    assert_eq!(out["check"], "SUCCEEDED", "{out}");
    assert_eq!(out["errors"], serde_json::json!([]), "{out}");
    for s in streams {
        assert!(
            out["discovered"].as_array().unwrap().iter().any(|d| d == s),
            "{s} not discovered: {out}"
        );
    }
    out
}

/// Live records of `object` in an emulator, from the admin API's state.
async fn seeded(sb: &Sandbox, vendor: &str, pointer: &str) -> u64 {
    let state = crate::support::admin_get(sb, &format!("/admin/vendors/{vendor}/state")).await;
    state
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {pointer} in {state}"))
}

#[tokio::test]
async fn airbyte_zendesk_support_source_checks_discovers_and_reads() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(12),
        },
        ..SandboxConfig::default()
    })
    .await;
    let c = sb.vendor(Vendor::Zendesk).unwrap().credentials();
    let config = serde_json::json!({
        "subdomain": c.extra["subdomain"], "start_date": "2020-01-01T00:00:00Z",
        "credentials": {"credentials": "api_token", "email": c.username, "api_token": c.api_token},
    });
    let out = run_airbyte(
        &sb,
        "airbyte_zendesk",
        "source-zendesk-support",
        config,
        &["tickets", "users", "organizations"],
    )
    .await;
    assert_eq!(
        out["records"]["tickets"],
        seeded(&sb, "zendesk", "/objects/tickets/records").await,
        "{out}"
    );
    assert_eq!(
        out["records"]["users"],
        seeded(&sb, "zendesk", "/objects/users/records").await,
        "{out}"
    );
    assert_eq!(
        out["records"]["organizations"],
        seeded(&sb, "zendesk", "/objects/organizations/records").await,
        "{out}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn airbyte_hubspot_source_checks_discovers_and_reads() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(12),
        },
        ..SandboxConfig::default()
    })
    .await;
    let token = sb
        .vendor(Vendor::HubSpot)
        .unwrap()
        .credentials()
        .api_token
        .unwrap();
    let config = serde_json::json!({"start_date": "2020-01-01T00:00:00Z", "credentials": {"credentials_title": "Private App Credentials", "access_token": token}});
    let out = run_airbyte(
        &sb,
        "airbyte_hubspot",
        "source-hubspot",
        config,
        &["contacts", "companies", "deals"],
    )
    .await;
    assert_eq!(
        out["records"]["contacts"],
        seeded(&sb, "hubspot", "/objects/contacts/records").await,
        "{out}"
    );
    assert_eq!(
        out["records"]["companies"],
        seeded(&sb, "hubspot", "/objects/companies/records").await,
        "{out}"
    );
    assert_eq!(
        out["records"]["deals"],
        seeded(&sb, "hubspot", "/objects/deals/records").await,
        "{out}"
    );
    sb.shutdown().await;
}

/// A Salesforce refresh token from the web-server flow, approved on the consent page.
async fn salesforce_refresh_token(sb: &Sandbox) -> String {
    let s = sb.vendor(Vendor::Salesforce).unwrap();
    let c = s.credentials();
    let http = crate::support::client();
    let r = http
        .post(format!("{}/services/oauth2/authorize", s.base_url()))
        .form(&[
            ("response_type", "code"),
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", "http://localhost:9/cb"),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(location.split_once('?').expect("a query in the redirect").1)
            .unwrap();
    let code = query
        .into_iter()
        .find(|(k, _)| k == "code")
        .expect("code in the redirect")
        .1;
    let t: Value = http
        .post(format!("{}/services/oauth2/token", s.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("redirect_uri", "http://localhost:9/cb"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    t["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token: {t}"))
        .to_string()
}

#[tokio::test]
async fn airbyte_salesforce_source_checks_discovers_and_reads_with_bulk_api() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 8,
            size: DemoSize::uniform(12),
        },
        ..SandboxConfig::default()
    })
    .await;
    let c = sb.vendor(Vendor::Salesforce).unwrap().credentials();
    let refresh = salesforce_refresh_token(&sb).await;
    let config = serde_json::json!({"client_id": c.client_id, "client_secret": c.client_secret, "refresh_token": refresh, "start_date": "2020-01-01T00:00:00Z", "is_sandbox": false, "auth_type": "Client"});
    let out = run_airbyte(
        &sb,
        "airbyte_salesforce",
        "source-salesforce",
        config,
        &["Account", "Contact", "Opportunity"],
    )
    .await;
    assert_eq!(
        out["records"]["Account"],
        seeded(&sb, "salesforce", "/objects/Account/records").await,
        "{out}"
    );
    assert_eq!(
        out["records"]["Contact"],
        seeded(&sb, "salesforce", "/objects/Contact/records").await,
        "{out}"
    );
    assert_eq!(
        out["records"]["Opportunity"],
        seeded(&sb, "salesforce", "/objects/Opportunity/records").await,
        "{out}"
    );
    sb.shutdown().await;
}
