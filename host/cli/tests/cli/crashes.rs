//! Runs under stress, as processes: SIGKILLs mid-run losing and duplicating nothing, one run
//! per flow at a time, a killed run's lease lapsing and the next run taking over.

use super::*;

/// The promise of at-least-once reads with idempotent writes: kill the engine with SIGKILL at
/// several points of a 50,000-record run, restart it each time, and the target ends up with
/// every record exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn resumes_after_sigkill_without_losing_or_duplicating_records() {
    const TOTAL: usize = 50_000;
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..TOTAL).map(|i| serde_json::json!({"id": format!("{i:06}"), "name": format!("item {i}"), "updated_at": "2026-01-01T00:00:00Z"})),
    );
    let dir = tempfile::tempdir().unwrap();
    let flow = copy_flow(dir.path(), &upstream, "bulk", 500);
    let spawn = resuming_run(dir.path(), &flow);
    let kills = kill_at(&upstream, &spawn, &[5_000, 20_000, 35_000]).await;
    assert!(
        kills >= 2,
        "the run finished before it could be killed twice"
    );
    let mut last = spawn();
    let finished = tokio::task::spawn_blocking(move || last.wait().unwrap())
        .await
        .unwrap();
    assert!(finished.success());

    let contacts = upstream.records("contacts");
    assert_eq!(contacts.len(), TOTAL, "every record arrives");
    let ids: std::collections::BTreeSet<&str> =
        contacts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), TOTAL, "and exactly once");
    assert_eq!(contacts[12_345]["name"], "item 12345");
    // Later runs resumed from the committed cursor instead of starting over: each kill costs at
    // most the page that was in flight (starting over would read about twice as many pages).
    let pages_read = upstream
        .seen()
        .iter()
        .filter(|s| s.path == "/items")
        .count();
    assert!(
        pages_read <= TOTAL / 500 + 2 * kills + 1,
        "{pages_read} pages read for {} pages after {kills} kills",
        TOTAL / 500
    );
}

/// A flow reading a slow upstream, so a run of it lasts a while.
fn slow_flow(dir: &std::path::Path, upstream: &weft_tests::upstream::Upstream) -> String {
    let flow = dir.join("slow.toml");
    std::fs::write(
        &flow,
        format!(
            r#"name = "slow"
[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items" }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    flow.to_str().unwrap().to_owned()
}

fn weft_run(data: &std::path::Path, flow: &str, extra: &[&str], lease: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .args(["run", "--plugins", weft_tests::WASM_DIR, flow])
        .args(extra)
        .env("WEFT_DATA_DIR", data)
        .env("WEFT_RUN_LEASE", lease)
        .env_remove("WEFT_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits until `weft runs list` shows a run of `flow` with `status`; its line.
fn wait_for_run(data: &std::path::Path, status: &str, within: std::time::Duration) -> String {
    let started = std::time::Instant::now();
    loop {
        let list = text(&weft(data, &["runs", "list"], None).stdout);
        if let Some(line) = list.lines().find(|l| l.split('\t').nth(2) == Some(status)) {
            return line.to_owned();
        }
        assert!(
            started.elapsed() < within,
            "no {status} run within {within:?}: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_of_a_running_flow_is_refused_naming_the_holder_or_waits_for_it() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..3).map(
            |i| serde_json::json!({"id": format!("{i}"), "updated_at": "2026-01-01T00:00:00Z"}),
        ),
    );
    upstream.delay_data(std::time::Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let (data, flow) = (dir.path().join("data"), slow_flow(dir.path(), &upstream));
    let first = weft_run(&data, &flow, &[], "30").spawn().unwrap();
    let (d, f) = (data.clone(), flow.clone());
    let second = tokio::task::spawn_blocking(move || {
        let holder = wait_for_run(&d, "running", std::time::Duration::from_secs(30));
        (holder, weft_run(&d, &f, &[], "30").output().unwrap())
    })
    .await
    .unwrap();
    let (holder_line, second) = second;
    let holder = holder_line.split('\t').next().unwrap().to_owned();
    assert!(!second.status.success(), "two runs of one flow at once");
    let stderr = text(&second.stderr);
    assert!(
        stderr.contains(&format!(
            "flow `slow` is running already: run {holder} (process "
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(":{})", first.id())),
        "the message names the holding process: {stderr}"
    );

    let (d, f) = (data.clone(), flow.clone());
    let waited =
        tokio::task::spawn_blocking(move || weft_run(&d, &f, &["--wait"], "30").output().unwrap())
            .await
            .unwrap();
    assert!(waited.status.success(), "{}", text(&waited.stderr));
    assert!(
        text(&waited.stderr).contains("waiting for it to end"),
        "{}",
        text(&waited.stderr)
    );
    let first = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let d = data.clone();
    let list = tokio::task::spawn_blocking(move || text(&weft(&d, &["runs", "list"], None).stdout))
        .await
        .unwrap();
    assert_eq!(
        list.lines().filter(|l| l.contains("\tsucceeded\t")).count(),
        2,
        "{list}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_is_marked_abandoned_once_its_lease_lapses_and_the_next_run_takes_over() {
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..3).map(
            |i| serde_json::json!({"id": format!("{i}"), "updated_at": "2026-01-01T00:00:00Z"}),
        ),
    );
    upstream.delay_data(std::time::Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let (data, flow) = (dir.path().join("data"), slow_flow(dir.path(), &upstream));
    let mut victim = weft_run(&data, &flow, &[], "1").spawn().unwrap();
    let d = data.clone();
    let running = tokio::task::spawn_blocking(move || {
        wait_for_run(&d, "running", std::time::Duration::from_secs(30))
    })
    .await
    .unwrap();
    victim.kill().unwrap(); // SIGKILL: nothing gets to clean up.
    victim.wait().unwrap();
    let id = running.split('\t').next().unwrap().to_owned();
    let d = data.clone();
    let abandoned = tokio::task::spawn_blocking(move || {
        wait_for_run(&d, "abandoned", std::time::Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(abandoned.starts_with(&id), "{abandoned}");
    let d = data.clone();
    let id2 = id.clone();
    let shown =
        tokio::task::spawn_blocking(move || text(&weft(&d, &["runs", "show", &id2], None).stdout))
            .await
            .unwrap();
    assert!(
        shown.contains("abandoned")
            && shown.contains("the next run resumes from the last committed checkpoint"),
        "{shown}"
    );
    // The flow is free again.
    upstream.delay_data(std::time::Duration::ZERO);
    let (d, f) = (data.clone(), flow.clone());
    let next = tokio::task::spawn_blocking(move || weft_run(&d, &f, &[], "1").output().unwrap())
        .await
        .unwrap();
    assert!(next.status.success(), "{}", text(&next.stderr));
}

/// Nothing lost, nothing twice, while the source changes: 20,000 records read incrementally,
/// records edited all along (ones read already and ones not yet), and the reader killed with
/// SIGKILL three times. After the runs, every record is in the target once, with its latest
/// content.
#[tokio::test(flavor = "multi_thread")]
async fn edits_during_reads_and_three_sigkills_lose_and_duplicate_nothing() {
    const TOTAL: usize = 20_000;
    let upstream = weft_tests::upstream::Upstream::start().await;
    upstream.seed(
        "items",
        (0..TOTAL).map(|i| serde_json::json!({"id": format!("{i:06}"), "name": "original", "updated_at": "2026-01-01T00:00:00Z"})),
    );
    let dir = tempfile::tempdir().unwrap();
    let flow = copy_flow(dir.path(), &upstream, "changing", 250);
    // Edits land all along: a record every few milliseconds, spread over the whole id range, so
    // some are read already and some not yet when they change.
    let editing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let editor = {
        let (upstream, editing) = (upstream.clone(), editing.clone());
        tokio::spawn(async move {
            let mut n: usize = 0;
            while editing.load(std::sync::atomic::Ordering::Relaxed) {
                let i = (n * 7_919) % TOTAL;
                // RFC 3339 with milliseconds, comparable as text with the seeded times.
                let stamp =
                    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
                upstream.seed("items", [serde_json::json!({"id": format!("{i:06}"), "name": format!("edit {n}"), "updated_at": stamp})]);
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
            n
        })
    };
    let spawn = resuming_run(dir.path(), &flow);
    let kills = kill_at(&upstream, &spawn, &[3_000, 9_000, 15_000]).await;
    assert!(
        kills >= 2,
        "the run finished before it could be killed twice"
    );
    // A run to the end while edits go on, then edits stop and one more run reads the last ones.
    let mut run = spawn();
    assert!(
        tokio::task::spawn_blocking(move || run.wait().unwrap())
            .await
            .unwrap()
            .success()
    );
    editing.store(false, std::sync::atomic::Ordering::Relaxed);
    let edits = editor.await.unwrap();
    let mut last = spawn();
    assert!(
        tokio::task::spawn_blocking(move || last.wait().unwrap())
            .await
            .unwrap()
            .success()
    );

    let items: std::collections::BTreeMap<String, String> = upstream
        .records("items")
        .into_iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let contacts = upstream.records("contacts");
    assert_eq!(
        contacts.len(),
        TOTAL,
        "every record arrives, once ({kills} kills, {edits} edits)"
    );
    let stale: Vec<String> = contacts
        .iter()
        .filter(|c| items.get(c["id"].as_str().unwrap()).map(String::as_str) != c["name"].as_str())
        .map(|c| {
            format!(
                "{} is {:?}, upstream {:?}",
                c["id"],
                c["name"],
                items.get(c["id"].as_str().unwrap())
            )
        })
        .take(5)
        .collect();
    assert!(
        stale.is_empty(),
        "records with an old version in the target after {edits} edits: {stale:?}"
    );
    assert!(edits > 200, "only {edits} edits happened during the runs");
}

/// A flow copying `items` (incrementally, `page_size` a page) into `contacts` on `upstream`.
fn copy_flow(
    dir: &std::path::Path,
    upstream: &weft_tests::upstream::Upstream,
    name: &str,
    page_size: u32,
) -> String {
    let flow = dir.join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            r#"name = "{name}"
[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items", sync = "incremental", page_size = {page_size} }}

[[steps]]
id = "copies"
transform = {{ plugin = "map", input = "items" }}
config.fields = {{ id = "id", name = "name" }}

[[steps]]
id = "save"
write = {{ connection = "api", stream = "contacts", input = "copies", mode = "upsert", key = ["id"], batch_size = 250 }}
"#,
            url = upstream.url(),
            host = upstream.addr
        ),
    )
    .unwrap();
    flow.to_str().unwrap().to_owned()
}

/// Starts `weft run --wait` of `flow`: a killed run holds its flow until its lease lapses (a
/// second here); the next run waits for that, then resumes from the committed checkpoint.
fn resuming_run(data: &std::path::Path, flow: &str) -> impl Fn() -> std::process::Child + use<> {
    let (flow, data) = (flow.to_owned(), data.to_owned());
    move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["run", "--wait", "--plugins", weft_tests::WASM_DIR, &flow])
            .env("WEFT_DATA_DIR", &data)
            .env("WEFT_RUN_LEASE", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// Runs `spawn` once per threshold and kills it with SIGKILL (no chance to checkpoint or clean
/// up) once `contacts` holds that many records; how many runs were killed before they ended.
async fn kill_at(
    upstream: &weft_tests::upstream::Upstream,
    spawn: &impl Fn() -> std::process::Child,
    thresholds: &[usize],
) -> usize {
    let mut kills = 0;
    for &threshold in thresholds {
        let mut child = spawn();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while upstream.records("contacts").len() < threshold {
            assert!(
                std::time::Instant::now() < deadline,
                "the run stalled before {threshold} records"
            );
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    kills
}
