//! Flows run end to end: a real upstream on loopback, real components, a real SQLite store.

use std::path::PathBuf;

use serde_json::{Value, json};
use weft_engine::{PluginDirectory, RetryPolicy, RunOptions, RunReport};
use weft_store::Store;
use weft_tests::upstream::Upstream;
use weft_tests::*;

fn flow_text(source: &Upstream, target: &str, sync: &str) -> String {
    format!(
        r#"name = "items-to-contacts"

[connections.source]
plugin = "http-json"
config = {{ base_url = "{source}" }}
egress = [{{ host = "{source_host}", allow_http = true, allow_private = true }}]

[connections.target]
plugin = "http-json"
config = {{ base_url = "{target}" }}
egress = [{{ host = "{target_host}", allow_http = true, allow_private = true }}]

[environments.broken.connections.target]
config = {{ base_url = "http://127.0.0.1:9" }}
egress = [{{ host = "127.0.0.1:9", allow_http = true, allow_private = true }}]

[[steps]]
id = "items"
read = {{ connection = "source", stream = "items", sync = "{sync}", page_size = 40 }}

[[steps]]
id = "contacts"
transform = {{ plugin = "map", input = "items" }}
config.fields = {{ id = "email", name = "name", updated_at = "updated_at" }}
config.constants = {{ status = "imported" }}

[[steps]]
id = "save"
write = {{ connection = "target", stream = "contacts", input = "contacts", mode = "upsert", key = ["id"] }}
"#,
        source = source.url(),
        source_host = source.addr,
        target_host = target.trim_start_matches("http://"),
    )
}

fn items(n: usize, without_email: &[usize]) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut item = json!({"id": format!("{i:04}"), "name": format!("item {i}"), "updated_at": "2026-01-01T00:00:00Z"});
            if !without_email.contains(&i) {
                item["email"] = json!(format!("c-{i:04}"));
            }
            item
        })
        .collect()
}

struct Harness {
    dir: tempfile::TempDir,
    store: Store,
    secrets: weft_capabilities::Secrets,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("weft.db"))
            .await
            .unwrap();
        let secrets = weft_capabilities::Secrets::new(
            store.clone(),
            weft_capabilities::MasterKey::generate("test"),
        );
        Harness {
            dir,
            store,
            secrets,
        }
    }

    async fn run(&self, text: &str, env: Option<&str>) -> RunReport {
        self.run_with_plugins(text, env, PathBuf::from(WASM_DIR))
            .await
    }

    async fn run_with_plugins(&self, text: &str, env: Option<&str>, dir: PathBuf) -> RunReport {
        self.run_watched(text, env, dir, None).await
    }

    async fn run_watched(
        &self,
        text: &str,
        env: Option<&str>,
        dir: PathBuf,
        watch: Option<std::sync::Arc<dyn weft_engine::Watch>>,
    ) -> RunReport {
        let path = self.dir.path().join("flow.toml");
        std::fs::write(&path, text).unwrap();
        let flow = weft_flow::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let rt = runtime(|_| {});
        let plugins = PluginDirectory::new([dir]);
        let plan = weft_engine::plan(&flow, env, "default", &plugins, &rt)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let options = RunOptions {
            environment: env.map(str::to_owned),
            retry: RetryPolicy {
                attempts: 3,
                base: std::time::Duration::from_millis(10),
                ..RetryPolicy::default()
            },
            watch,
            ..RunOptions::default()
        };
        weft_engine::run(
            &flow,
            &plan,
            &self.store,
            &self.secrets,
            &options,
            &mut |_: &weft_engine::Progress<'_>| {},
        )
        .await
        .unwrap()
    }
}

fn step<'a>(report: &'a RunReport, id: &str) -> &'a weft_store::StepRunRecord {
    report.steps.iter().find(|s| s.step == id).unwrap()
}

#[tokio::test]
async fn runs_read_map_write_and_logs_the_records_that_failed() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(100, &[7, 55]));
    let h = Harness::new().await;
    let report = h
        .run(&flow_text(&upstream, &upstream.url(), "full"), None)
        .await;
    // Every step ran to its end, two records did not make it: partial, not succeeded.
    assert_eq!(report.status, weft_store::RunStatus::Partial, "{report:?}");
    assert!(report.completed(), "{report:?}");
    assert_eq!(step(&report, "items").records_in, 100);
    assert_eq!(step(&report, "items").pages, 3);
    assert_eq!(step(&report, "contacts").records_out, 100);
    assert_eq!(
        (
            step(&report, "save").records_out,
            step(&report, "save").failed
        ),
        (98, 2)
    );

    let written = upstream.records("contacts");
    assert_eq!(written.len(), 98);
    assert_eq!(
        Value::Object(written[0].clone()),
        json!({"id": "c-0000", "name": "item 0", "updated_at": "2026-01-01T00:00:00Z", "status": "imported"})
    );

    let errors = h.store.run_errors(&report.id).await.unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].step, "save");
    assert_eq!(errors[0].error, "invalid record: id is required");
    let record: Value = serde_json::from_str(errors[0].record.as_deref().unwrap()).unwrap();
    assert_eq!(record["name"], "item 7");

    let (run, steps) = h
        .store
        .run_get("default", &report.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status.as_str(), "partial");
    assert_eq!(steps.len(), 3);
}

#[tokio::test]
async fn incremental_rerun_moves_only_what_changed() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(60, &[]));
    let h = Harness::new().await;
    let text = flow_text(&upstream, &upstream.url(), "incremental");
    let first = h.run(&text, None).await;
    assert_eq!(step(&first, "save").records_out, 60);

    let second = h.run(&text, None).await;
    assert_eq!(
        step(&second, "items").records_in,
        0,
        "nothing changed upstream"
    );

    upstream.seed("items", [json!({"id": "0003", "email": "c-0003", "name": "renamed", "updated_at": "2026-02-01T00:00:00Z"})]);
    let third = h.run(&text, None).await;
    assert_eq!(step(&third, "items").records_in, 1);
    assert_eq!(step(&third, "save").records_out, 1);
    let renamed = upstream
        .records("contacts")
        .into_iter()
        .find(|c| c["id"] == "c-0003")
        .unwrap();
    assert_eq!(renamed["name"], "renamed");
}

#[tokio::test]
async fn a_failed_write_keeps_the_cursor_so_nothing_is_lost() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(50, &[]));
    let h = Harness::new().await;
    let text = flow_text(&upstream, &upstream.url(), "incremental");

    // The target is unreachable: the write fails after its retries, the run fails, and the
    // read's cursor is not committed.
    let broken = h.run(&text, Some("broken")).await;
    assert!(!broken.completed());
    // The second page, read ahead while the first went downstream, is dropped, not handed on.
    let items = step(&broken, "items");
    assert_eq!((items.pages, items.records_in), (1, 40), "{items:?}");
    assert_eq!(step(&broken, "save").status.as_str(), "failed");
    assert!(
        step(&broken, "save")
            .error
            .as_deref()
            .unwrap()
            .contains("unavailable"),
        "{:?}",
        step(&broken, "save")
    );
    assert_eq!(
        h.store
            .cursor_get("default", "items-to-contacts", "items")
            .await
            .unwrap(),
        None
    );

    // The target is back: the same pages are read again and every record arrives once.
    let fixed = h.run(&text, None).await;
    assert!(fixed.completed(), "{fixed:?}");
    assert_eq!(step(&fixed, "save").records_out, 50);
    assert_eq!(upstream.records("contacts").len(), 50);
    let run = h
        .store
        .run_get("default", &broken.id)
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(run.status.as_str(), "failed");
    let error = run.error.unwrap();
    assert!(
        error.contains("items: stopped because step `save` failed") && error.contains("save: "),
        "{error}"
    );
}

/// Stops a run once it read `after` records, saying so.
#[derive(Debug)]
struct StopAfter {
    after: u64,
    began: std::sync::Mutex<Option<String>>,
}

impl weft_engine::Watch for StopAfter {
    fn began(&self, run: &str) {
        *self.began.lock().unwrap() = Some(run.to_owned());
    }

    fn halt(&self, used: &weft_store::RunUsage) -> Option<weft_engine::Halt> {
        (used.records_read >= self.after).then(|| weft_engine::Halt {
            status: weft_store::RunStatus::Cancelled,
            reason: "asked to stop".into(),
        })
    }
}

#[tokio::test]
async fn a_run_stopped_between_pages_keeps_what_it_committed_and_the_next_goes_on_from_there() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(150, &[]));
    let h = Harness::new().await;
    let text = flow_text(&upstream, &upstream.url(), "incremental");
    let watch = std::sync::Arc::new(StopAfter {
        after: 80,
        began: Default::default(),
    });
    let stopped = h
        .run_watched(&text, None, PathBuf::from(WASM_DIR), Some(watch.clone()))
        .await;
    assert_eq!(
        watch.began.lock().unwrap().as_deref(),
        Some(stopped.id.as_str())
    );
    assert_eq!(stopped.status, weft_store::RunStatus::Cancelled);
    assert!(!stopped.completed());
    // Two whole pages went through and were written; the third, read ahead, was dropped.
    let items_step = step(&stopped, "items");
    assert_eq!(
        (items_step.pages, items_step.records_in),
        (2, 80),
        "{items_step:?}"
    );
    assert_eq!(
        items_step.error.as_deref(),
        Some("stopped after page 2: asked to stop")
    );
    assert_eq!(step(&stopped, "save").records_out, 80);
    assert_eq!(upstream.records("contacts").len(), 80);
    let (run, _) = h
        .store
        .run_get("default", &stopped.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status.as_str(), "cancelled");
    assert_eq!(run.error.as_deref(), Some("asked to stop"));

    // The next run goes on after the second page: every record arrives once.
    let next = h.run(&text, None).await;
    assert!(next.completed(), "{next:?}");
    assert_eq!(step(&next, "items").records_in, 70);
    assert_eq!(upstream.records("contacts").len(), 150);
}

#[tokio::test]
async fn datasets_keep_records_by_key_for_later_flows() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(30, &[2]));
    let h = Harness::new().await;
    let into_dataset = format!(
        r#"name = "collect"
[connections.source]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.warehouse]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "source", stream = "items" }}

[[steps]]
id = "people"
transform = {{ plugin = "map", input = "items" }}
config.fields = {{ email = "email", name = "name" }}

[[steps]]
id = "keep"
write = {{ connection = "warehouse", stream = "people", input = "people", mode = "upsert", key = ["email"] }}
"#,
        url = upstream.url(),
        host = upstream.addr
    );
    let first = h.run(&into_dataset, None).await;
    assert!(first.completed(), "{first:?}");
    assert_eq!(
        (
            step(&first, "keep").records_out,
            step(&first, "keep").failed
        ),
        (29, 1)
    );
    let errors = h.store.run_errors(&first.id).await.unwrap();
    // Refused as any connector refuses a record it cannot take.
    assert_eq!(
        errors[0].error,
        "invalid record: key field `email` is missing or null"
    );
    // Upserted by key: a second run leaves 29 records, not 58.
    h.run(&into_dataset, None).await;
    let datasets = h.store.dataset_list("default").await.unwrap();
    assert_eq!(
        (datasets[0].name.as_str(), datasets[0].records),
        ("people", 29)
    );

    // A later flow reads the dataset back out.
    let out_of_dataset = format!(
        r#"name = "publish"
[connections.warehouse]
plugin = "dataset"

[connections.target]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[[steps]]
id = "people"
read = {{ connection = "warehouse", stream = "people", page_size = 10 }}

[[steps]]
id = "as-contacts"
transform = {{ plugin = "map", input = "people" }}
config.fields = {{ id = "email", name = "name" }}

[[steps]]
id = "save"
write = {{ connection = "target", stream = "contacts", input = "as-contacts", mode = "upsert", key = ["id"] }}
"#,
        url = upstream.url(),
        host = upstream.addr
    );
    let published = h.run(&out_of_dataset, None).await;
    assert!(published.completed(), "{published:?}");
    assert_eq!(step(&published, "people").pages, 3);
    assert_eq!(upstream.records("contacts").len(), 29);
}

#[tokio::test]
async fn retries_rate_limits_and_server_errors_honouring_retry_after() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(20, &[]));
    // The first read gets a 429 asking for 1 s, the retry a 503; then the upstream recovers.
    upstream.fail_next([(429, Some(1)), (503, None)]);
    let h = Harness::new().await;
    let started = std::time::Instant::now();
    let report = h
        .run(&flow_text(&upstream, &upstream.url(), "full"), None)
        .await;
    let took = started.elapsed();
    assert!(report.completed(), "{report:?}");
    assert_eq!(step(&report, "save").records_out, 20);
    assert!(
        took >= std::time::Duration::from_millis(950),
        "Retry-After: 1 was not honoured ({took:?})"
    );
    let reads = upstream
        .seen()
        .into_iter()
        .filter(|s| s.path == "/items")
        .count();
    assert_eq!(reads, 3, "one 429, one 503, one success");
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(5, &[]));
    upstream.fail_next([(400, None)]);
    let h = Harness::new().await;
    let report = h
        .run(&flow_text(&upstream, &upstream.url(), "full"), None)
        .await;
    assert!(!report.completed());
    assert!(
        step(&report, "items")
            .error
            .as_deref()
            .unwrap()
            .contains("upstream answered 400"),
        "{report:?}"
    );
    assert_eq!(
        upstream
            .seen()
            .into_iter()
            .filter(|s| s.path == "/items")
            .count(),
        1
    );
}

#[tokio::test]
async fn retrying_a_run_resends_only_the_records_that_failed() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(40, &[]));
    upstream.lock(&["c-0003", "c-0017"]);
    let h = Harness::new().await;
    let text = flow_text(&upstream, &upstream.url(), "full");
    let first = h.run(&text, None).await;
    assert_eq!(step(&first, "save").failed, 2);
    assert_eq!(upstream.records("contacts").len(), 38);

    upstream.unlock();
    let writes_before = upstream
        .seen()
        .iter()
        .filter(|s| s.path == "/contacts/batch")
        .count();
    let reads_before = upstream
        .seen()
        .iter()
        .filter(|s| s.path == "/items")
        .count();
    let path = h.dir.path().join("flow.toml");
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
    let retry = weft_engine::retry_failed(
        &flow,
        &plan,
        &h.store,
        &h.secrets,
        &RunOptions::default(),
        &first.id,
        &mut |_: &weft_engine::Progress<'_>| {},
    )
    .await
    .unwrap();
    assert!(retry.completed(), "{retry:?}");
    assert_eq!(
        (
            step(&retry, "save").records_in,
            step(&retry, "save").records_out
        ),
        (2, 2)
    );
    assert!(
        retry.steps.iter().all(|s| s.step == "save"),
        "only the failed step ran: {:?}",
        retry.steps
    );
    assert_eq!(upstream.records("contacts").len(), 40);
    assert_eq!(
        upstream
            .seen()
            .iter()
            .filter(|s| s.path == "/contacts/batch")
            .count(),
        writes_before + 1
    );
    assert_eq!(
        upstream
            .seen()
            .iter()
            .filter(|s| s.path == "/items")
            .count(),
        reads_before,
        "the source is not read again"
    );
}

#[tokio::test]
async fn a_step_over_its_timeout_fails_with_the_limit_named() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(10, &[]));
    upstream.delay_data(std::time::Duration::from_secs(5));
    let h = Harness::new().await;
    let text = flow_text(&upstream, &upstream.url(), "incremental")
        .replace("page_size = 40 }\n", "page_size = 40 }\ntimeout = \"1s\"\n");
    assert!(text.contains("timeout = \"1s\""));
    let report = h.run(&text, None).await;
    let took = report.took;
    assert!(!report.completed(), "{report:?}");
    let error = step(&report, "items").error.as_deref().unwrap_or_default();
    assert!(
        error.contains("the step's timeout of 1 s ran out"),
        "{error}"
    );
    assert!(
        took < std::time::Duration::from_secs(4),
        "the step stopped at its timeout, not the upstream's answer ({took:?})"
    );
    assert!(
        upstream.records("contacts").is_empty(),
        "nothing was written"
    );
    assert_eq!(
        h.store
            .cursor_get("default", "items-to-contacts", "items")
            .await
            .unwrap(),
        None,
        "no cursor was committed"
    );
}

fn dataset_records(rows: Vec<(String, String)>) -> Vec<Value> {
    rows.into_iter()
        .map(|(_, r)| serde_json::from_str(&r).unwrap())
        .collect()
}

#[tokio::test]
async fn a_condition_sends_matching_records_one_way_and_the_rest_the_other() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(20, &[7]));
    let h = Harness::new().await;
    let text = format!(
        r#"name = "route-items"

[connections.source]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.kept]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "source", stream = "items", page_size = 6 }}

[[steps]]
id = "vip"
condition = {{ input = "items", when = "record.email == 'c-0001' || record.email == 'c-0002'" }}

[[steps]]
id = "save-vip"
write = {{ connection = "kept", stream = "vip", input = "vip", mode = "upsert", key = ["id"] }}

[[steps]]
id = "save-rest"
write = {{ connection = "kept", stream = "rest", input = "vip", branch = "else", mode = "upsert", key = ["id"] }}
"#,
        url = upstream.url(),
        host = upstream.addr,
    );
    let report = h.run(&text, None).await;
    assert!(report.completed(), "{report:?}");
    let vip = dataset_records(
        h.store
            .dataset_page("default", "vip", None, 100)
            .await
            .unwrap(),
    );
    let rest = dataset_records(
        h.store
            .dataset_page("default", "rest", None, 100)
            .await
            .unwrap(),
    );
    let vip_ids: Vec<&str> = vip.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(vip_ids, ["0001", "0002"]);
    assert_eq!(
        rest.len(),
        17,
        "every other record but the one the condition cannot be evaluated on"
    );
    assert!(
        rest.iter()
            .all(|r| !["0001", "0002", "0007"].contains(&r["id"].as_str().unwrap()))
    );
    // Item 7 has no email: the condition fails on it, and it is logged once, not per branch.
    let errors = h.store.run_errors(&report.id).await.unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].step, "vip");
    assert!(errors[0].record.as_deref().unwrap().contains("\"0007\""));
    assert_eq!(
        (
            step(&report, "vip").records_in,
            step(&report, "vip").records_out
        ),
        (20, 19)
    );
}

#[tokio::test]
async fn a_condition_whose_filter_names_impossible_positions_fails_its_step() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(5, &[]));
    // The hostile transform stands in for the filter that evaluates conditions.
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(wasm(HOSTILE_TRANSFORM), plugins.path().join("filter.wasm")).unwrap();
    std::fs::copy(wasm(HTTP_JSON), plugins.path().join("http-json.wasm")).unwrap();
    for answer in [
        "positions-backwards",
        "positions-repeated",
        "positions-past-the-end",
        "positions-of-rejected",
    ] {
        let h = Harness::new().await;
        let text = format!(
            r#"name = "route-items"

[connections.source]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.kept]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "source", stream = "items" }}

[[steps]]
id = "vip"
condition = {{ input = "items", when = "{answer}" }}

[[steps]]
id = "save-vip"
write = {{ connection = "kept", stream = "vip", input = "vip", mode = "upsert", key = ["id"] }}
"#,
            url = upstream.url(),
            host = upstream.addr,
        );
        let report = h
            .run_with_plugins(&text, None, plugins.path().to_owned())
            .await;
        assert_eq!(report.status, weft_store::RunStatus::Failed, "{answer}");
        let (run, _) = h
            .store
            .run_get("default", &report.id)
            .await
            .unwrap()
            .unwrap();
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("out of order, repeated, rejected or out of range"),
            "{answer}: {error}"
        );
        let kept = h.store.dataset_page("default", "vip", None, 100).await;
        assert!(
            kept.map(|p| dataset_records(p).is_empty()).unwrap_or(true),
            "{answer}: nothing goes on from a step that failed"
        );
    }
}

#[tokio::test]
async fn a_transforms_rejects_flow_on_the_rejected_branch_with_the_reason() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(10, &[3, 8]));
    let h = Harness::new().await;
    let text = format!(
        r#"name = "checked-items"

[connections.source]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.kept]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "source", stream = "items", page_size = 4 }}

[[steps]]
id = "checked"
transform = {{ plugin = "validate", input = "items" }}
config.rules = [{{ field = "email", check = "required" }}]

[[steps]]
id = "save-good"
write = {{ connection = "kept", stream = "good", input = "checked", mode = "upsert", key = ["id"] }}

[[steps]]
id = "marks"
transform = {{ plugin = "map", input = "checked", branch = "rejected" }}
config.fields = {{ id = "id", why = "_rejected.reason", field = "_rejected.field" }}

[[steps]]
id = "save-bad"
write = {{ connection = "kept", stream = "bad", input = "marks", mode = "upsert", key = ["id"] }}
"#,
        url = upstream.url(),
        host = upstream.addr,
    );
    let report = h.run(&text, None).await;
    assert!(report.completed(), "{report:?}");
    let good = dataset_records(
        h.store
            .dataset_page("default", "good", None, 100)
            .await
            .unwrap(),
    );
    let bad = dataset_records(
        h.store
            .dataset_page("default", "bad", None, 100)
            .await
            .unwrap(),
    );
    assert_eq!(good.len(), 8);
    let bad_ids: Vec<&str> = bad.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        bad_ids,
        ["0003", "0008"],
        "only the rejects take the rejected branch"
    );
    assert_eq!(bad[0]["field"], "email");
    assert!(
        bad[0]["why"].as_str().unwrap().contains("required"),
        "{}",
        bad[0]
    );
    // Rejects are still in the error log, once each.
    assert_eq!(h.store.run_errors(&report.id).await.unwrap().len(), 2);
    assert_eq!(
        (
            step(&report, "marks").records_in,
            step(&report, "save-bad").records_out
        ),
        (2, 2)
    );

    // The rejected branch is a transform's: from a read step it is refused, pointing at it.
    let wrong = text.replace(
        r#"input = "checked", branch = "rejected""#,
        r#"input = "items", branch = "rejected""#,
    );
    let flow = weft_flow::parse(std::path::Path::new("wrong.toml"), &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        flow.contains("step `marks` takes the `rejected` branch, but its input is not a transform"),
        "{flow}"
    );
}

#[tokio::test]
async fn what_a_write_accepted_flows_on_the_written_branch_with_the_upstreams_id() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(6, &[]));
    // The upstream refuses one record of the batch.
    upstream.lock(&["c-0002"]);
    let h = Harness::new().await;
    let text = format!(
        r#"name = "copy-and-record"

[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.kept]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items" }}

[[steps]]
id = "people"
transform = {{ plugin = "map", input = "items" }}
config.fields = {{ id = "email", name = "name" }}

[[steps]]
id = "save"
write = {{ connection = "api", stream = "contacts", input = "people", mode = "upsert", key = ["id"] }}

[[steps]]
id = "receipts"
transform = {{ plugin = "map", input = "save", branch = "written" }}
config.fields = {{ email = "id", upstream_id = "_written.id", status = "_written.status" }}

[[steps]]
id = "keep-receipts"
write = {{ connection = "kept", stream = "receipts", input = "receipts", mode = "upsert", key = ["email"] }}
"#,
        url = upstream.url(),
        host = upstream.addr,
    );
    let report = h.run(&text, None).await;
    assert!(report.completed(), "{report:?}");
    let receipts = dataset_records(
        h.store
            .dataset_page("default", "receipts", None, 100)
            .await
            .unwrap(),
    );
    let emails: Vec<&str> = receipts
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["c-0000", "c-0001", "c-0003", "c-0004", "c-0005"],
        "the refused record has no receipt"
    );
    assert!(
        receipts
            .iter()
            .all(|r| r["upstream_id"].is_string() && r["status"] == "created"),
        "{receipts:?}"
    );
    assert_eq!(h.store.run_errors(&report.id).await.unwrap().len(), 1);

    // Anything but the written branch of a write is refused, pointing at the step.
    let wrong = text.replace(r#"input = "save", branch = "written""#, r#"input = "save""#);
    let err = weft_flow::parse(std::path::Path::new("wrong.toml"), &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("input `save` is a write step, which produces no records"),
        "{err}"
    );
    assert!(err.contains("branch = \"written\""), "{err}");
}

#[tokio::test]
async fn a_step_that_is_also_a_lookup_input_still_feeds_its_other_readers() {
    let upstream = Upstream::start().await;
    upstream.seed("items", items(7, &[]));
    let h = Harness::new().await;
    let text = format!(
        r#"name = "rows-used-twice"

[connections.source]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.kept]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "source", stream = "items", page_size = 3 }}

[[steps]]
id = "rows"
transform = {{ plugin = "map", input = "items" }}
config.fields = {{ id = "id", email = "email" }}

# `rows` is written, and is also the lookup of a step on another branch.
[[steps]]
id = "save-rows"
write = {{ connection = "kept", stream = "rows", input = "rows", mode = "upsert", key = ["id"] }}

[[steps]]
id = "again"
read = {{ connection = "source", stream = "items" }}

[[steps]]
id = "with-email"
transform = {{ plugin = "lookup", input = "again", lookup = "rows" }}
config.set = "found"
config.value = "email"
config.match = {{ id = "id" }}

[[steps]]
id = "save-found"
write = {{ connection = "kept", stream = "found", input = "with-email", mode = "upsert", key = ["id"] }}
"#,
        url = upstream.url(),
        host = upstream.addr,
    );
    let report = h.run(&text, None).await;
    assert!(report.completed(), "{report:?}");
    let rows = dataset_records(
        h.store
            .dataset_page("default", "rows", None, 100)
            .await
            .unwrap(),
    );
    assert_eq!(
        rows.len(),
        7,
        "the lookup input's other reader got every record: {report:#?}"
    );
    let found = dataset_records(
        h.store
            .dataset_page("default", "found", None, 100)
            .await
            .unwrap(),
    );
    assert!(
        found.len() == 7 && found.iter().all(|r| r["found"] == r["email"]),
        "{found:?}"
    );
    assert_eq!(step(&report, "save-rows").records_out, 7);
}

#[tokio::test]
async fn for_each_reads_once_per_record_with_options_from_the_record() {
    let owners = Upstream::start().await;
    owners.seed("items", items(6, &[4]));
    let details = Upstream::start().await;
    // Two contacts per owner email, for owners 0..5; none for the others.
    details.seed(
        "contacts",
        (0..5).flat_map(|i| (0..2).map(move |j| json!({"id": format!("d-{i}-{j}"), "owner": format!("c-{i:04}"), "name": format!("detail {j}"), "updated_at": "2026-01-01T00:00:00Z"}))),
    );
    details.delay_data(std::time::Duration::from_millis(500));
    let h = Harness::new().await;
    let text = format!(
        r#"name = "fan-out"

[connections.owners]
plugin = "http-json"
config = {{ base_url = "{owners}" }}
egress = [{{ host = "{owners_host}", allow_http = true, allow_private = true }}]

[connections.details]
plugin = "http-json"
config = {{ base_url = "{details}" }}
egress = [{{ host = "{details_host}", allow_http = true, allow_private = true }}]

[connections.kept]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "owners", stream = "items" }}

[[steps]]
id = "contacts"
for_each = {{ input = "items", connection = "details", stream = "contacts", options = {{ query = {{ owner = "${{record.email}}" }} }}, concurrency = 3, parent_field = "owner_item" }}

[[steps]]
id = "save"
write = {{ connection = "kept", stream = "contacts", input = "contacts", mode = "upsert", key = ["id"] }}
"#,
        owners = owners.url(),
        owners_host = owners.addr,
        details = details.url(),
        details_host = details.addr,
    );
    let report = h.run(&text, None).await;
    let took = report.took;
    assert!(report.completed(), "{report:?}");
    let saved = dataset_records(
        h.store
            .dataset_page("default", "contacts", None, 100)
            .await
            .unwrap(),
    );
    // Owners 0..3 have two contacts each; owner 4 has no email; owner 5 has none upstream.
    let ids: Vec<&str> = saved.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "d-0-0", "d-0-1", "d-1-0", "d-1-1", "d-2-0", "d-2-1", "d-3-0", "d-3-1"
        ]
    );
    assert!(
        saved.iter().all(|r| r["owner_item"]["email"] == r["owner"]),
        "each record carries the record it was read for"
    );
    let errors = h.store.run_errors(&report.id).await.unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].error.contains("no field `email`"),
        "{}",
        errors[0].error
    );
    let reads: Vec<_> = details
        .seen()
        .into_iter()
        .filter(|s| s.path == "/contacts")
        .collect();
    assert_eq!(reads.len(), 5, "one read per record that has an email");
    // Five reads of 500 ms each, three at a time: two rounds (1 s), not five (2.5 s).
    assert!(
        took < std::time::Duration::from_millis(2_200),
        "reads ran concurrently ({took:?})"
    );
}
