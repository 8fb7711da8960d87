//! A flow run end to end: `cargo bench -p weft-tests --bench flow`.
//!
//! 100,000 records read from a JSON API on loopback (pages of 1,000), mapped by the `map`
//! plugin and upserted back in batches of 500, through the engine with a SQLite store. Prints
//! records/s and the growth of the process's peak resident memory during the run (the upstream
//! shares the process: it holds the 100,000 source records before the run starts and
//! acknowledges writes without keeping them, so the growth is the engine's).

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;
use weft_engine::{PluginDirectory, RunOptions};
use weft_store::Store;
use weft_tests::upstream::Upstream;
use weft_tests::{WASM_DIR, runtime};

const TOTAL: usize = 100_000;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let upstream = Upstream::start().await;
    upstream.seed(
        "items",
        (0..TOTAL).map(|i| {
            json!({"id": format!("{i:06}"), "name": format!("item {i}"), "email": format!("person{i}@example.com"),
                   "status": if i % 3 == 0 { "open" } else { "new" }, "amount": i as f64 * 1.5, "updated_at": "2026-01-01T00:00:00Z"})
        }),
    );
    upstream.forget_writes();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "bench"
[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items", page_size = 1000 }}

[[steps]]
id = "mapped"
transform = {{ plugin = "map", input = "items" }}
config.fields = {{ id = "id", name = "name", email = "email", amount = "amount" }}
config.case.status = {{ from = "status", map = {{ new = "Active", open = "Active" }}, default = "Inactive" }}

[[steps]]
id = "save"
write = {{ connection = "api", stream = "contacts", input = "mapped", mode = "upsert", key = ["id"], batch_size = 500 }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    let flow = weft_flow::load(&path).unwrap();
    let rt = runtime(|_| {});
    let plan = weft_engine::plan(
        &flow,
        None,
        "default",
        &PluginDirectory::new([PathBuf::from(WASM_DIR)]),
        &rt,
    )
    .await
    .unwrap();
    let store = Store::open_sqlite(dir.path().join("weft.db"))
        .await
        .unwrap();
    let secrets = weft_capabilities::Secrets::new(
        store.clone(),
        weft_capabilities::MasterKey::generate("bench"),
    );
    let before = peak_rss_kib();
    let started = Instant::now();
    let report = weft_engine::run(
        &flow,
        &plan,
        &store,
        &secrets,
        &RunOptions::default(),
        &mut |_: &weft_engine::Progress<'_>| {},
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(report.completed());
    assert_eq!(upstream.written(), TOTAL);
    let after = peak_rss_kib();
    println!(
        "read -> map -> write of {TOTAL} records: {:.2} s, {:.0} records/s",
        took.as_secs_f64(),
        TOTAL as f64 / took.as_secs_f64()
    );
    println!(
        "peak RSS: {} MiB before the run, {} MiB after (growth {} MiB)",
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / 1024
    );
}
