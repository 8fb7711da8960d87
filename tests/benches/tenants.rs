//! Many tenants on one server: `cargo bench -p weft-tests --bench tenants [-- TENANTS FLOWS DUE
//! WORKERS]` (1,000 tenants × 10 scheduled flows, 500 falling due at once, `weft serve`'s 4
//! workers, by default).
//!
//! Every flow is deployed to the embedded SQLite store and has run within its hour, so the
//! server starts with nothing due. Prints: start-up (the first turn plans every deployed flow),
//! resident memory after it, the CPU the server spends over 10 s of idling (its loop as `weft
//! serve` runs it), then, with `DUE` flows of different tenants made due at once (each reads
//! one record from a JSON API on loopback into a dataset), the lag from when each fell due to
//! when its run started, p50 and p99, and how long the burst took.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio::sync::Notify;
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::{PluginDirectory, RunOptions};
use weft_server::{Server, TenantPlugins, TenantPolicy};
use weft_store::{RunStatus, Store};
use weft_tests::upstream::Upstream;
use weft_tests::{WASM_DIR, runtime};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of the process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the state.
    let clock = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1_000 / clock)
}

fn flow_text(upstream: &Upstream, name: &str) -> String {
    format!(
        r#"name = "{name}"
[trigger]
schedule = {{ every = "1h" }}

[connections.api]
plugin = "http-json"
config = {{ base_url = "{url}" }}
egress = [{{ host = "{host}", allow_http = true, allow_private = true }}]

[connections.store]
plugin = "dataset"

[[steps]]
id = "items"
read = {{ connection = "api", stream = "items" }}

[[steps]]
id = "keep"
write = {{ connection = "store", stream = "items", input = "items", mode = "upsert", key = ["id"] }}
"#,
        url = upstream.url(),
        host = upstream.addr
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let tenants = args.first().copied().unwrap_or(1_000);
    let flows = args.get(1).copied().unwrap_or(10);
    let due = args.get(2).copied().unwrap_or(500).min(tenants * flows);
    let workers = args.get(3).copied().unwrap_or(weft_server::DEFAULT_WORKERS);

    let upstream = Upstream::start().await;
    upstream.seed("items", [json!({"id": "1", "email": "a@x.io"})]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("weft.db"))
        .await
        .unwrap();
    let secrets = Secrets::new(store.clone(), MasterKey::generate("bench"));

    // The flows that fall due together later: `due` of them, of different tenants.
    let chosen: Vec<(String, String)> = (0..due)
        .map(|i| {
            (
                format!("t{:04}", i % tenants),
                format!("f{}", (i / tenants) % flows),
            )
        })
        .collect();

    // Every flow deployed, and run 10 minutes ago (the chosen ones 30): nothing is due at
    // start.
    let seeded = Instant::now();
    for t in 0..tenants {
        let tenant = format!("t{t:04}");
        store.tenant_create(&tenant).await.unwrap();
        for f in 0..flows {
            let name = format!("f{f}");
            let text = flow_text(&upstream, &name);
            store
                .flow_deploy(
                    &tenant,
                    &name,
                    &text,
                    "{}",
                    &format!("d{t}-{f}"),
                    &format!("ep-{t}-{f}"),
                )
                .await
                .unwrap();
            let id = format!("seed-{tenant}-{name}");
            store.run_start(&id, &tenant, &name, None).await.unwrap();
            store
                .run_finish(&id, RunStatus::Succeeded, None)
                .await
                .unwrap();
        }
    }
    shift(dir.path(), None, Duration::from_secs(600)).await;
    shift(dir.path(), Some(&chosen), Duration::from_secs(1_200)).await;
    println!(
        "{tenants} tenants × {flows} flows deployed and run once in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let rss_before = status_kib("VmRSS:");
    let plugins = PluginDirectory::new([std::path::PathBuf::from(WASM_DIR)]);
    let runtime = runtime(|_| {});
    let started = Instant::now();
    let mut server = Server::new(Vec::new(), store.clone(), secrets, RunOptions::default())
        .with_deployed(
            plugins,
            TenantPlugins::new(store.clone(), dir.path().join("tenant-plugins")),
            runtime,
            TenantPolicy {
                allow_private_egress: true,
            },
            Arc::new(Notify::new()),
        )
        .with_workers(workers);
    server.tick(SystemTime::now()).await;
    let startup = started.elapsed();
    let serving = server.flows().len();
    let rss = status_kib("VmRSS:");
    println!(
        "start-up: {:.2} s to plan and serve {serving} flows; RSS {} MiB ({} MiB before the server)",
        startup.as_secs_f64(),
        rss / 1024,
        rss_before / 1024
    );

    // Idle: the loop as `weft serve` runs it, for 10 s.
    let cpu = cpu_time();
    let idle = Duration::from_secs(10);
    let until = Instant::now() + idle;
    while Instant::now() < until {
        let next = server.tick(SystemTime::now()).await;
        let wait = next
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(Duration::from_secs(1));
        tokio::time::sleep(wait.min(until.saturating_duration_since(Instant::now()))).await;
    }
    let spent = cpu_time().saturating_sub(cpu);
    println!(
        "idle: {:.0} ms CPU over {} s ({:.2}% of one core); RSS {} MiB",
        spent.as_millis(),
        idle.as_secs(),
        spent.as_secs_f64() * 100.0 / idle.as_secs_f64(),
        status_kib("VmRSS:") / 1024
    );

    // A burst: the server's clock jumps 30 minutes ahead, where the chosen flows (and only
    // they) are due; lags are measured in real time from the jump.
    let ahead = Duration::from_secs(1_800) + Duration::from_secs(1);
    let made_due = SystemTime::now();
    let burst = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut checked = Instant::now();
    loop {
        server.tick(SystemTime::now() + ahead).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        if checked.elapsed() > Duration::from_millis(250) {
            checked = Instant::now();
            if started_since(dir.path(), made_due).await.len() >= due || Instant::now() > deadline {
                break;
            }
        }
    }
    server.settle(SystemTime::now() + ahead).await;
    let took = burst.elapsed();
    let mut lags: Vec<Duration> = started_since(dir.path(), made_due)
        .await
        .into_iter()
        .map(|at| at.duration_since(made_due).unwrap_or_default())
        .collect();
    lags.sort();
    println!(
        "burst: {} of {due} due runs started; lag p50 {:.0} ms, p99 {:.0} ms (from falling due to starting); all done in {:.1} s",
        lags.len(),
        percentile(&lags, 0.5).as_secs_f64() * 1e3,
        percentile(&lags, 0.99).as_secs_f64() * 1e3,
        took.as_secs_f64()
    );
}

/// When each run started since `since` started (the first of each flow).
async fn started_since(dir: &std::path::Path, since: SystemTime) -> Vec<SystemTime> {
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.join("weft.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let since = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT MIN(started_at) FROM runs WHERE started_at >= ? GROUP BY tenant, flow",
    )
    .bind(since)
    .fetch_all(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();
    rows.into_iter()
        .map(|(ms,)| SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .collect()
}

/// Moves the starts of the runs of `flows` (every run's, when `None`) `by` earlier.
async fn shift(dir: &std::path::Path, flows: Option<&[(String, String)]>, by: Duration) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.join("weft.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let by = by.as_millis() as i64;
    let sql = "UPDATE runs SET started_at = started_at - ?, finished_at = finished_at - ?";
    match flows {
        None => {
            sqlx::query(sql)
                .bind(by)
                .bind(by)
                .execute(&mut db)
                .await
                .unwrap();
        }
        Some(flows) => {
            let sql = format!("{sql} WHERE tenant = ? AND flow = ?");
            for (tenant, flow) in flows {
                sqlx::query(&sql)
                    .bind(by)
                    .bind(by)
                    .bind(tenant)
                    .bind(flow)
                    .execute(&mut db)
                    .await
                    .unwrap();
            }
        }
    }
    db.close().await.unwrap();
}
