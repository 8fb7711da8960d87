//! Compiled components survive a restart.

use weft_runtime::{Batch, CacheOutcome, CallContext, Limits, Runtime, RuntimeConfig};
use weft_tests::*;

fn cached_runtime(dir: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        limits: Limits {
            instances: 4,
            ..Limits::default()
        },
        cache_dir: Some(dir.to_owned()),
    })
    .unwrap()
}

async fn works(rt: &Runtime) -> CacheOutcome {
    let plugin = rt.load_file(wasm(MAP)).await.unwrap();
    let outcome = plugin.load_report().outcome;
    plugin
        .into_transform()
        .unwrap()
        .process(
            &CallContext::default(),
            Batch {
                config: "{}".into(),
                records: "[]".into(),
                lookup: None,
            },
        )
        .await
        .unwrap();
    outcome
}

#[tokio::test]
async fn second_start_loads_the_compiled_component_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        works(&cached_runtime(dir.path())).await,
        CacheOutcome::Compiled
    );
    // A new runtime is a restart: same directory, new engine.
    assert_eq!(
        works(&cached_runtime(dir.path())).await,
        CacheOutcome::Cached
    );
}

#[tokio::test]
async fn corrupt_cache_entry_is_replaced_by_a_fresh_compilation() {
    let dir = tempfile::tempdir().unwrap();
    works(&cached_runtime(dir.path())).await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not a compiled component").unwrap();
    }
    assert_eq!(
        works(&cached_runtime(dir.path())).await,
        CacheOutcome::Compiled
    );
    assert_eq!(
        works(&cached_runtime(dir.path())).await,
        CacheOutcome::Cached
    );
}
