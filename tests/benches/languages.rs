//! The same `map`-like transform in Rust, JavaScript and Python, each made from
//! `weft plugin new`'s template and built by its own toolchain, measured through the host:
//! `cargo bench -p weft-tests --bench languages` (add `--profile dev` with
//! `CARGO_PROFILE_DEV_OPT_LEVEL=3` for an optimised host without a release build).
//!
//! - size: the component's bytes;
//! - compile: Cranelift compiling the component and its first `describe`, no cache;
//! - instantiation: a fresh instance from the pre-linked component, as every call makes;
//! - call: a whole `process` of one record (instantiate, call, drop);
//! - records/s: `process` of batches of 1,000 records.
//!
//! The projects are kept in `target/bench-languages/` and built once (the JavaScript and
//! Python builds need Node.js and Python: `.ci/plugin-toolchains` warms their caches).
//! Medians of several rounds; compare ratios within one run, not absolute times across runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_authoring::{Kind, Language, Manifest};
use weft_runtime::{Batch, CallContext, Limits, Runtime, RuntimeConfig, TransformPlugin};

const ROUNDS: usize = 7;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn config() -> String {
    json!({
        "fields": {"user_id": "id", "full_name": "name", "email": "email", "city": "address.city"},
        "required": ["user_id"]
    })
    .to_string()
}

fn records(n: usize) -> String {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": i,
                "name": format!("Person number {i}"),
                "email": if i % 7 == 0 { Value::Null } else { json!(format!("person{i}@example.com")) },
                "address": {"city": format!("City {}", i % 50), "zip": format!("{:05}", i)},
                "tags": ["customer", "newsletter"],
            })
        })
        .collect();
    Value::Array(records).to_string()
}

/// The template's project for `language`, built unless it was already.
fn built(language: Language) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-languages");
    let dir = root.join(language.slug());
    if !dir.join(weft_authoring::MANIFEST).is_file() {
        weft_authoring::create(&dir, "bench-map", Kind::Transform, language)
            .unwrap_or_else(|e| panic!("making the {language} project: {e}"));
    }
    let manifest = Manifest::load(&dir).unwrap();
    let output = dir.join(&manifest.build.output);
    if output.is_file() {
        return output;
    }
    let started = Instant::now();
    let output = weft_authoring::build(&dir, &manifest)
        .unwrap_or_else(|e| panic!("building the {language} project: {e}"));
    eprintln!(
        "built {language} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    output
}

struct Measured {
    language: Language,
    size: u64,
    compile: Duration,
    instantiate: Duration,
    call: Duration,
    per_record: Duration,
}

async fn measure(language: Language, file: &Path) -> Measured {
    let runtime = Runtime::new(RuntimeConfig {
        limits: Limits {
            instances: 16,
            ..Limits::default()
        },
        cache_dir: None,
    })
    .unwrap();
    let started = Instant::now();
    let plugin: TransformPlugin = runtime
        .load_file(file)
        .await
        .unwrap()
        .into_transform()
        .unwrap();
    let compile = started.elapsed();
    let ctx = CallContext::default();

    for _ in 0..20 {
        plugin.instantiate_once().await.unwrap();
    }
    let mut instantiate = Vec::new();
    for _ in 0..ROUNDS {
        let n = 50;
        let t = Instant::now();
        for _ in 0..n {
            plugin.instantiate_once().await.unwrap();
        }
        instantiate.push(t.elapsed() / n);
    }

    let one = records(1);
    let mut call = Vec::new();
    for _ in 0..ROUNDS {
        let n = 20;
        let t = Instant::now();
        for _ in 0..n {
            let batch = Batch {
                config: config(),
                records: one.clone(),
                lookup: None,
            };
            plugin.process(&ctx, batch).await.unwrap();
        }
        call.push(t.elapsed() / n);
    }

    let thousand = records(1_000);
    let mut per_batch = Vec::new();
    for _ in 0..ROUNDS {
        let batch = Batch {
            config: config(),
            records: thousand.clone(),
            lookup: None,
        };
        let t = Instant::now();
        let result = plugin.process(&ctx, batch).await.unwrap();
        per_batch.push(t.elapsed());
        let out: Vec<Value> = serde_json::from_str(&result.records).unwrap();
        assert_eq!(out.len(), 1_000, "{language}: every record mapped");
    }
    Measured {
        language,
        size: std::fs::metadata(file).unwrap().len(),
        compile,
        instantiate: median(instantiate),
        call: median(call),
        per_record: median(per_batch) / 1_000,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let languages = [Language::Rust, Language::Js, Language::Python];
    let files: Vec<PathBuf> = languages.iter().map(|l| built(*l)).collect();
    let mut results = Vec::new();
    for (language, file) in languages.iter().zip(&files) {
        results.push(measure(*language, file).await);
    }
    let rust = &results[0];
    println!(
        "{:<8} {:>10} {:>10} {:>13} {:>12} {:>12}   (ratio to Rust)",
        "language", "size MB", "compile s", "instantiate", "call", "records/s"
    );
    for m in &results {
        let rate = 1.0 / m.per_record.as_secs_f64();
        let rust_rate = 1.0 / rust.per_record.as_secs_f64();
        println!(
            "{:<8} {:>10.2} {:>10.2} {:>10.0} µs {:>9.2} ms {:>12.0}   size {:.0}×, compile {:.1}×, instantiate {:.1}×, call {:.1}×, records/s {:.2}×",
            m.language.to_string(),
            m.size as f64 / 1e6,
            m.compile.as_secs_f64(),
            m.instantiate.as_secs_f64() * 1e6,
            m.call.as_secs_f64() * 1e3,
            rate,
            m.size as f64 / rust.size as f64,
            m.compile.as_secs_f64() / rust.compile.as_secs_f64(),
            m.instantiate.as_secs_f64() / rust.instantiate.as_secs_f64(),
            m.call.as_secs_f64() / rust.call.as_secs_f64(),
            rate / rust_rate,
        );
    }
}
