//! Dataset writes through the store: `cargo bench -p weft-store --bench datasets`.
//!
//! 100,000 records upserted into a dataset on a SQLite file in pages of 500 (what a write step
//! hands the store per batch): first as new records, then unchanged, then all updated. Prints
//! records/s for each pass. Compare passes within one run; absolute numbers on a shared machine
//! are noise.

use std::time::Instant;

use weft_store::{Store, Upserted};

const TOTAL: usize = 100_000;
const PAGE: usize = 500;

async fn pass(store: &Store, label: &str, version: u32, expect: Upserted) {
    let started = Instant::now();
    for page in 0..TOTAL / PAGE {
        let rows: Vec<(String, String)> = (page * PAGE..(page + 1) * PAGE)
            .map(|i| {
                (
                    format!("[\"{i:06}\"]"),
                    format!("{{\"id\":\"{i:06}\",\"name\":\"person {i}\",\"v\":{version}}}"),
                )
            })
            .collect();
        let outcomes = store
            .dataset_upsert("default", "people", &rows)
            .await
            .expect("upsert");
        assert!(
            outcomes.iter().all(|o| *o == expect),
            "{label}: {:?}",
            outcomes.iter().find(|o| **o != expect)
        );
    }
    let took = started.elapsed();
    println!(
        "{label:<10} {TOTAL} records in {:>6.2} s  {:>9.0} records/s",
        took.as_secs_f64(),
        TOTAL as f64 / took.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("weft.db"))
        .await
        .unwrap();
    pass(&store, "created", 1, Upserted::Created).await;
    pass(&store, "unchanged", 1, Upserted::Unchanged).await;
    pass(&store, "updated", 2, Upserted::Updated).await;
}
