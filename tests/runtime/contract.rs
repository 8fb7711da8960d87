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
