//! Runtime benchmarks: `cargo bench -p weft-tests --bench runtime`.
//!
//! - instantiation: a fresh instance from the `InstancePre`, as every call makes;
//! - empty call: a whole `describe` call (instantiate, call, drop);
//! - map throughput: the `map` plugin through the host versus the plugin's own mapping code
//!   compiled natively, over the same JSON text (parse, map, serialise), at batch sizes 1, 100
//!   and 1,000.
//!
//! Medians of several rounds; compare ratios within one run, not absolute times across runs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_plugin_map::MapConfig;
use weft_runtime::{Batch, CallContext, Limits, Runtime, RuntimeConfig};
use weft_sdk::{Record, decode_batch, encode_batch};
use weft_tests::{MAP, wasm};

const ROUNDS: usize = 7;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn records(n: usize) -> Vec<Value> {
    let statuses = ["new", "open", "pending", "solved", "closed"];
    (0..n)
        .map(|i| {
            json!({
                "id": i,
                "subject": format!("Ticket number {i} about the printer"),
                "status": statuses[i % statuses.len()],
                "requester": {"email": format!("person{i}@example.com"), "name": format!("Person {i}")},
                "priority": if i % 3 == 0 { "high" } else { "normal" },
            })
        })
        .collect()
}

fn config() -> Value {
    json!({
        "fields": {"Subject": "subject", "Ticket_ID": "id", "Email": "requester.email", "Priority": "priority"},
        "constants": {"Source": "zendesk"},
        "case": {"Status": {"from": "status", "map": {"new": "Active", "open": "Active", "pending": "Active"}, "default": "Inactive"}}
    })
}

/// The same work the guest does for a batch: parse the JSON text, map, serialise.
fn native_batch(config: &MapConfig, text: &str) -> (String, usize) {
    let input: Vec<Record> = decode_batch(text).unwrap();
    let output = config.apply_batch(input);
    (encode_batch(&output.records), output.rejects.len())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runtime = Runtime::new(RuntimeConfig {
        limits: Limits {
            instances: 16,
            ..Limits::default()
        },
        cache_dir: None,
    })
    .unwrap();
    let plugin = runtime
        .load_file(wasm(MAP))
        .await
        .unwrap()
        .into_transform()
        .unwrap();
    let ctx = CallContext::default();

    // Instantiation alone.
    for _ in 0..1_000 {
        plugin.instantiate_once().await.unwrap();
    }
    let mut per_instance = Vec::new();
    for _ in 0..ROUNDS {
        let n = 5_000;
        let started = Instant::now();
        for _ in 0..n {
            plugin.instantiate_once().await.unwrap();
        }
        per_instance.push(started.elapsed() / n);
    }
    let instantiation = median(per_instance);

    // An empty call: instantiate, call `describe`, drop.
    let mut per_call = Vec::new();
    for _ in 0..ROUNDS {
        let n = 2_000;
        let started = Instant::now();
        for _ in 0..n {
            plugin
                .output_schema(&ctx, &json!({}), &json!({}), None)
                .await
                .unwrap();
        }
        per_call.push(started.elapsed() / n);
    }
    let empty_call = median(per_call);

    println!(
        "instantiation per call   {:>8.2} µs (median of {ROUNDS} rounds)",
        instantiation.as_secs_f64() * 1e6
    );
    println!(
        "empty call (output_schema, instantiation included) {:>8.2} µs",
        empty_call.as_secs_f64() * 1e6
    );
    println!();
    println!(
        "{:>6} {:>14} {:>14} {:>10}",
        "batch", "wasm rec/s", "native rec/s", "wasm/native"
    );

    let total = 100_000;
    let config_value = config();
    let config_text = config_value.to_string();
    let native_config: MapConfig = serde_json::from_value(config_value).unwrap();
    for batch_size in [1usize, 100, 1_000] {
        let batches: Vec<String> = records(total)
            .chunks(batch_size)
            .map(|chunk| Value::Array(chunk.to_vec()).to_string())
            .collect();
        let rounds = if batch_size == 1 { 3 } else { ROUNDS };
        let mut wasm_times = Vec::new();
        let mut native_times = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let mut produced = 0;
            for text in &batches {
                let result = plugin
                    .process(
                        &ctx,
                        Batch {
                            config: config_text.clone(),
                            records: text.clone(),
                            lookup: None,
                        },
                    )
                    .await
                    .unwrap();
                produced += result.records.len();
            }
            wasm_times.push(started.elapsed());
            assert!(produced > 0);

            let started = Instant::now();
            let mut produced = 0;
            for text in &batches {
                // The native side parses its config per batch too, as the guest does.
                let config: MapConfig = serde_json::from_str(&config_text).unwrap();
                let (out, _) = native_batch(&config, text);
                produced += out.len();
            }
            native_times.push(started.elapsed());
            assert!(produced > 0);
            let _ = &native_config;
        }
        let wasm_rate = total as f64 / median(wasm_times).as_secs_f64();
        let native_rate = total as f64 / median(native_times).as_secs_f64();
        println!(
            "{batch_size:>6} {wasm_rate:>14.0} {native_rate:>14.0} {:>10.2}",
            wasm_rate / native_rate
        );
    }
}
