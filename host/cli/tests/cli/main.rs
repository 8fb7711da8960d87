//! The `weft` binary as a person uses it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use weft_tests::{HTTP_JSON, MAP, OLD_CONTRACT, wasm};

mod authoring;
mod connections;
mod crashes;
mod datasets;
mod demo;
mod inspect;
mod languages;
mod output;
mod plugins;
mod runs;
mod secrets;
mod serve;
mod state;
mod tenants;
mod validate;

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
