//! What the host refuses to load, and why it says so.

use weft_runtime::{CONTRACT_VERSION, LoadError, PluginKind};
use weft_tests::*;

#[tokio::test]
async fn refuses_a_plugin_built_against_another_contract_version_naming_both() {
    let rt = runtime(|_| {});
    let err = rt
        .load_file(wasm(OLD_CONTRACT))
        .await
        .err()
        .expect("an old-contract plugin must be refused");
    assert!(
        matches!(err, LoadError::IncompatibleContract { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{OLD_CONTRACT}.wasm was built against weft:plugin@0.1.0, but this host implements weft:plugin@{CONTRACT_VERSION}; \
             rebuild the plugin with a weft-sdk for contract {CONTRACT_VERSION}"
        )
    );
}

#[tokio::test]
async fn refuses_bytes_that_are_not_a_component() {
    let rt = runtime(|_| {});
    let err = rt
        .load("junk.wasm", b"\0asm garbage".to_vec())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err}");
    assert!(
        err.to_string().contains("wasm32-wasip2"),
        "the error should say how to build a plugin: {err}"
    );
}

#[tokio::test]
async fn refuses_a_missing_file_naming_it() {
    let rt = runtime(|_| {});
    let err = rt
        .load_file("/nonexistent/plugin.wasm")
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("cannot read plugin /nonexistent/plugin.wasm: "),
        "{err}"
    );
}

#[tokio::test]
async fn tells_connectors_from_transforms() {
    let rt = runtime(|_| {});
    assert_eq!(
        rt.load_file(wasm(MAP)).await.unwrap().kind(),
        PluginKind::Transform
    );
    assert_eq!(
        rt.load_file(wasm(HTTP_JSON)).await.unwrap().kind(),
        PluginKind::Connector
    );
}

/// The SDK's crate carries the contract it is generated from, so a plugin builds against it
/// outside this checkout: every WIT file is in what `cargo package` would ship.
#[test]
fn the_sdk_crate_ships_the_whole_contract() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listed = std::process::Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(root.join("sdk"))
        .env(
            "CARGO_TARGET_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-package"),
        )
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut contract: Vec<String> = std::fs::read_dir(root.join("wit"))
        .unwrap()
        .map(|e| format!("wit/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    contract.sort();
    assert!(contract.len() >= 8, "{contract:?}");
    for file in &contract {
        assert!(
            listed.lines().any(|l| l == file),
            "{file} is not in the SDK's package:\n{listed}"
        );
    }
}
