//! Webhook intake under load: `cargo bench -p weft-tests --bench webhooks [-- SECONDS RATE...]`
//! (10 s at 200, 1,000 and 2,000 deliveries a second by default).
//!
//! One server (its loop as `weft serve` runs it, the embedded SQLite store) with one
//! webhook-triggered flow: each delivery is one signed event, verified by the `http-json`
//! connector, kept in the store before the answer, then written by the flow into a dataset.
//! Deliveries are sent open-loop, each at its planned time whatever the answers before it
//! (late answers do not slow the sender down, so the latency counts the queueing), over a
//! keep-alive client on loopback. Prints, per rate: deliveries accepted and refused, the rate
//! achieved, HTTP latency p50/p99/max from each delivery's planned time, and when every event
//! reached the dataset, delivery-to-target p50/p99. The sender shares the machine's cores with
//! the server: the figures are the server's and the sender's together.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use weft_capabilities::{MasterKey, Secret, Secrets};
use weft_engine::{PluginDirectory, RunOptions};
use weft_server::{LoadOptions, Server};
use weft_store::Store;
use weft_tests::{WASM_DIR, runtime};

const FLOW: &str = r#"name = "hooks"

[trigger]
webhook = { connection = "api" }

[connections.api]
plugin = "http-json"
config = { base_url = "http://127.0.0.1:9" }
egress = [{ host = "127.0.0.1:9", allow_http = true, allow_private = true }]
webhook_secret = "secret:hook"

[connections.store]
plugin = "dataset"

[[steps]]
id = "changed"
read = { connection = "api", stream = "items" }

[[steps]]
id = "keep"
write = { connection = "store", stream = "events", input = "changed", mode = "upsert", key = ["id"] }
"#;

const SECRET: &str = "bench-hook-secret";

fn signature(body: &str) -> String {
    weft_tests::webhook_signature(SECRET, body.as_bytes())
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What one delivery got: its HTTP latency from its planned time, and whether it was taken.
struct Answer {
    latency: Duration,
    accepted: bool,
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(10);
    let rates: Vec<u64> = match args.get(1..) {
        Some(rates) if !rates.is_empty() => rates.to_vec(),
        _ => vec![200, 1_000, 2_000],
    };

    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(flows.join("hooks.toml"), FLOW).unwrap();
    let store = Store::open_sqlite(dir.path().join("weft.db"))
        .await
        .unwrap();
    let secrets = Secrets::new(store.clone(), MasterKey::generate("bench"));
    secrets
        .set("default", "hook", &Secret::new(SECRET))
        .await
        .unwrap();
    let runtime = runtime(|limits| limits.instances = 64);
    let plugins = PluginDirectory::new([std::path::PathBuf::from(WASM_DIR)]);
    let options = LoadOptions {
        tenant: "default",
        environment: None,
        variables: &[],
        plugins: &plugins,
        runtime: &runtime,
    };
    let served = weft_server::load(&flows, &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::new(served, store.clone(), secrets, RunOptions::default());
    let address = server.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let url = format!("http://{address}/hooks/hooks");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    println!("{seconds} s at each rate; the server and the sender share this machine's cores");

    let mut next_id = 0u64;
    for rate in rates {
        let count = rate * seconds;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let first_id = next_id;
        next_id += count;
        let started = Instant::now();
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..count {
            let planned = started + interval.mul_f64(i as f64);
            tokio::time::sleep_until(planned.into()).await;
            let id = format!("e-{}", first_id + i);
            let body = json!({"events": [{
                "id": id,
                "stream": "items",
                "action": "updated",
                "record": {"id": id, "sent_ms": millis(SystemTime::now())},
            }]})
            .to_string();
            let request = client
                .post(&url)
                .header("X-Signature", signature(&body))
                .body(body);
            sends.spawn(async move {
                let accepted = match request.send().await {
                    Ok(response) => response.status().is_success(),
                    Err(_) => false,
                };
                Answer {
                    latency: planned.elapsed(),
                    accepted,
                }
            });
        }
        let mut latencies = Vec::with_capacity(count as usize);
        let mut accepted = 0u64;
        while let Some(answer) = sends.join_next().await {
            let answer = answer.unwrap();
            accepted += u64::from(answer.accepted);
            latencies.push(answer.latency);
        }
        let sent_in = started.elapsed();
        latencies.sort();
        println!(
            "{rate}/s offered: {accepted} of {count} accepted ({:.0}/s); HTTP latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            accepted as f64 / sent_in.as_secs_f64(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or_default()),
        );

        // Every accepted event into the dataset, then how long each took to get there.
        let deadline = Instant::now() + Duration::from_secs(120);
        let targets = loop {
            let targets = reached(dir.path(), first_id, count).await;
            if targets.len() as u64 >= accepted || Instant::now() > deadline {
                break targets;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut delays: Vec<Duration> = targets
            .iter()
            .map(|(sent, written)| Duration::from_millis((written - sent).max(0) as u64))
            .collect();
        delays.sort();
        println!(
            "  {} in the dataset {:.1} s after the last was sent; delivery to target p50 {:.0} ms, p99 {:.0} ms",
            targets.len(),
            (started.elapsed() - sent_in).as_secs_f64(),
            ms(percentile(&delays, 0.5)),
            ms(percentile(&delays, 0.99)),
        );
    }
    let _ = stop.send(());
    let _ = serving.await;
}

/// For each event of ids `first..first + count` in the dataset: when it was sent and when it
/// was written, in milliseconds.
async fn reached(dir: &std::path::Path, first: u64, count: u64) -> Vec<(i64, i64)> {
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.join("weft.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT record, updated_at FROM dataset_records WHERE dataset = 'events'")
            .fetch_all(&mut db)
            .await
            .unwrap();
    rows.into_iter()
        .filter_map(|(record, written)| {
            let record: serde_json::Value = serde_json::from_str(&record).ok()?;
            let n: u64 = record["id"].as_str()?.strip_prefix("e-")?.parse().ok()?;
            (first..first + count)
                .contains(&n)
                .then_some((record["sent_ms"].as_i64()?, written))
        })
        .collect()
}
