//! The run loop without WebAssembly: an in-memory connector and transform behind the engine's
//! plugin seam, on SQLite and on PostgreSQL (127.0.0.1:5432, or `WEFT_TEST_POSTGRES`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::plan::{BoundConnector, ReadWork, Reader, TransformWork, Variables, WriteWork};
use weft_engine::plugins::Call;
use weft_engine::{
    Connector, Datasets, Plan, PlannedStep, RetryPolicy, RunOptions, RunReport, Transformer, Work,
};
use weft_flow::model::Branch;
use weft_flow::{Flow, StepKind};
use weft_runtime::bindings::PluginError;
use weft_runtime::{
    Batch, BatchResult, CallContext, CallError, Page, ReadRequest, Reject, WriteOutcome,
    WriteRequest, WriteStatus,
};
use weft_store::{RunStatus, Store};

/// A connector over in-memory streams: reads pages by offset, keeps what is written. A record
/// with `"refuse": true` is refused by the upstream; with `writes_left` set, the write calls
/// after that many fail as an unreachable upstream's would.
#[derive(Default)]
struct Memory {
    streams: BTreeMap<String, Vec<Value>>,
    written: Mutex<Vec<Value>>,
    writes_left: Mutex<Option<u32>>,
}

impl Connector for Memory {
    fn read<'a>(
        &'a self,
        _: &'a CallContext,
        _: &'a str,
        _: &'a Value,
        request: ReadRequest,
    ) -> Call<'a, Page> {
        Box::pin(async move {
            let all = self
                .streams
                .get(&request.stream)
                .cloned()
                .unwrap_or_default();
            let from: usize = request.cursor.as_deref().map_or(0, |c| c.parse().unwrap());
            let size = request.page_size.unwrap_or(10) as usize;
            let page: Vec<&Value> = all.iter().skip(from).take(size).collect();
            let next = from + page.len();
            Ok(Page {
                records: serde_json::to_string(&page).unwrap(),
                next_cursor: Some(next.to_string()),
                done: next >= all.len(),
                total: Some(all.len() as u64),
            })
        })
    }

    fn write<'a>(
        &'a self,
        _: &'a CallContext,
        _: &'a str,
        _: &'a Value,
        request: WriteRequest,
        _: usize,
    ) -> Call<'a, Vec<WriteOutcome>> {
        Box::pin(async move {
            if let Some(left) = self.writes_left.lock().unwrap().as_mut() {
                if *left == 0 {
                    return Err(CallError::Plugin {
                        plugin: "memory".into(),
                        error: PluginError::Unavailable("connection refused".into()),
                    });
                }
                *left -= 1;
            }
            let records: Vec<Value> = serde_json::from_str(&request.records).unwrap();
            let mut written = self.written.lock().unwrap();
            Ok(records
                .into_iter()
                .map(|record| {
                    if record["refuse"] == json!(true) {
                        return WriteOutcome {
                            status: WriteStatus::Failed,
                            id: None,
                            error: Some(PluginError::InvalidRecord("refused upstream".into())),
                        };
                    }
                    let id = record["id"].as_str().map(str::to_owned);
                    written.push(record);
                    WriteOutcome {
                        status: WriteStatus::Created,
                        id,
                        error: None,
                    }
                })
                .collect())
        })
    }
}

/// Upper-cases `name`; rejects a record without one.
struct Shout;

impl Transformer for Shout {
    fn process<'a>(&'a self, _: &'a CallContext, batch: Batch) -> Call<'a, BatchResult> {
        Box::pin(async move {
            let records: Vec<Value> = serde_json::from_str(&batch.records).unwrap();
            let (mut out, mut rejects) = (Vec::new(), Vec::new());
            for (i, mut record) in records.into_iter().enumerate() {
                match record["name"].as_str().map(str::to_uppercase) {
                    Some(name) => {
                        record["name"] = json!(name);
                        out.push(record);
                    }
                    None => rejects.push(Reject {
                        index: i as u32,
                        reason: "no name".into(),
                        field: Some("name".into()),
                    }),
                }
            }
            Ok(BatchResult {
                records: serde_json::to_string(&out).unwrap(),
                rejects,
            })
        })
    }
}

const FLOW: &str = r#"name = "shout"

[connections.api]
plugin = "memory"

[[steps]]
id = "people"
read = { connection = "api", stream = "people", sync = "incremental", page_size = 4 }

[[steps]]
id = "loud"
transform = { plugin = "shout", input = "people" }

[[steps]]
id = "save"
write = { connection = "api", stream = "contacts", input = "loud", mode = "upsert", key = ["id"], batch_size = 2 }
"#;

/// The flow's steps bound to `memory` (connection `api`), weft's datasets (connection
/// `store`) and [`Shout`], as planning binds them to wasm plugins.
fn plan(flow: &Flow, memory: &Arc<Memory>) -> Plan {
    let bound = |connection: &str| BoundConnector {
        connection: connection.into(),
        plugin: match connection {
            "store" => Arc::new(Datasets) as Arc<dyn Connector>,
            _ => Arc::clone(memory) as Arc<dyn Connector>,
        },
        config: json!({}),
    };
    let steps = flow
        .order
        .iter()
        .map(|id| {
            let step = flow.step(id).unwrap();
            let work = match &step.kind {
                StepKind::Read(r) => Work::Read(ReadWork {
                    from: bound(r.get_ref().connection.get_ref().as_str()),
                    stream: r.get_ref().stream.get_ref().clone(),
                    sync: r.get_ref().sync,
                    options: "{}".into(),
                    page_size: r.get_ref().page_size,
                }),
                StepKind::Transform(t) => Work::Transform(TransformWork {
                    input: t.get_ref().input.get_ref().clone(),
                    branch: Branch::Then,
                    plugin: Arc::new(Shout),
                    config: "{}".into(),
                    lookup: None,
                }),
                StepKind::Write(w) => {
                    let w = w.get_ref();
                    Work::Write(WriteWork {
                        input: w.input.get_ref().clone(),
                        branch: Branch::Then,
                        to: bound(w.connection.get_ref().as_str()),
                        stream: w.stream.get_ref().clone(),
                        mode: *w.mode.get_ref(),
                        key: w.key.iter().map(|k| k.get_ref().clone()).collect(),
                        batch_size: w.batch_size.map(|b| b as usize),
                    })
                }
                other => panic!("not used here: {other:?}"),
            };
            let readers = flow
                .steps
                .iter()
                .filter(|s| s.input().is_some_and(|i| i.get_ref() == id))
                .map(|s| Reader {
                    step: s.id.get_ref().clone(),
                    branch: s.branch(),
                })
                .collect();
            PlannedStep {
                id: id.clone(),
                work,
                schema: Value::Null.into(),
                readers,
                timeout: None,
                run_after: Vec::new(),
            }
        })
        .collect();
    Plan {
        connections: BTreeMap::new(),
        datasets: Default::default(),
        steps,
        variables: Variables::new(),
    }
}

fn people(n: usize, nameless: &[usize], refused: &[usize]) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut p = json!({"id": format!("p{i}")});
            if !nameless.contains(&i) {
                p["name"] = json!(format!("person {i}"));
            }
            if refused.contains(&i) {
                p["refuse"] = json!(true);
            }
            p
        })
        .collect()
}

async fn run(store: &Store, flow: &Flow, memory: &Arc<Memory>) -> RunReport {
    let secrets = Secrets::new(store.clone(), MasterKey::generate("test"));
    let options = RunOptions {
        retry: RetryPolicy {
            attempts: 2,
            base: std::time::Duration::from_millis(5),
            max_wait: std::time::Duration::from_millis(20),
        },
        ..RunOptions::default()
    };
    weft_engine::run(
        flow,
        &plan(flow, memory),
        store,
        &secrets,
        &options,
        &mut |_: &weft_engine::Progress<'_>| {},
    )
    .await
    .unwrap()
}

fn step<'r>(report: &'r RunReport, id: &str) -> &'r weft_store::StepRunRecord {
    report.steps.iter().find(|s| s.step == id).unwrap()
}

fn flow() -> Flow {
    parse(FLOW)
}

fn parse(text: &str) -> Flow {
    weft_flow::parse(Path::new("flow.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

/// A flow named `name` with the in-memory connection `api`, the dataset connection `store`,
/// and `steps`.
fn with_connections(name: &str, steps: &str) -> Flow {
    parse(&format!(
        "name = \"{name}\"\n\n[connections.api]\nplugin = \"memory\"\n\n[connections.store]\nplugin = \"dataset\"\n\n{steps}"
    ))
}

const INTO_DATASET: &str = r#"[[steps]]
id = "people"
read = { connection = "api", stream = "people", page_size = 3 }

[[steps]]
id = "kept"
write = { connection = "store", stream = "people", input = "people", mode = "upsert", key = ["id"] }
"#;

const OUT_OF_DATASET: &str = r#"[[steps]]
id = "people"
read = { connection = "store", stream = "people", page_size = 2 }

[[steps]]
id = "save"
write = { connection = "api", stream = "contacts", input = "people", mode = "upsert", key = ["id"] }
"#;

/// A dataset is a connector like any other: written by key (a record without its key refused
/// into the error log, a second run upserting rather than adding), read back in key order.
async fn a_dataset_keeps_records_by_key_and_gives_them_back_in_pages(store: Store) {
    let memory = Arc::new(Memory {
        streams: BTreeMap::from([("people".into(), {
            let mut people = people(7, &[], &[]);
            people[4].as_object_mut().unwrap().remove("id");
            people
        })]),
        ..Memory::default()
    });
    let keep = with_connections("keep", INTO_DATASET);
    let first = run(&store, &keep, &memory).await;
    assert_eq!(first.status, RunStatus::Partial, "{first:?}");
    assert_eq!(
        (
            step(&first, "kept").records_out,
            step(&first, "kept").failed
        ),
        (6, 1)
    );
    let errors = store.run_errors(&first.id).await.unwrap();
    assert_eq!(
        errors[0].error,
        "invalid record: key field `id` is missing or null"
    );
    let again = run(&store, &keep, &memory).await;
    assert_eq!(step(&again, "kept").records_out, 6);

    let publish = run(
        &store,
        &with_connections("publish", OUT_OF_DATASET),
        &memory,
    )
    .await;
    assert_eq!(publish.status, RunStatus::Succeeded, "{publish:?}");
    let read = step(&publish, "people");
    // 6 records, not 12, in pages of 2, and the empty page that says there is no more.
    assert_eq!((read.pages, read.records_in), (4, 6));
    let ids: Vec<String> = memory
        .written
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["p0", "p1", "p2", "p3", "p5", "p6"]);
}

/// Records go through in pages, rejected and refused ones to the error log, the rest on; the
/// run is partial.
async fn pages_flow_through_and_failures_go_to_the_error_log(store: Store) {
    let memory = Arc::new(Memory {
        streams: BTreeMap::from([("people".into(), people(10, &[3], &[8]))]),
        ..Memory::default()
    });
    let flow = flow();
    let report = run(&store, &flow, &memory).await;
    assert_eq!(report.status, RunStatus::Partial, "{report:?}");
    let people = step(&report, "people");
    assert_eq!((people.pages, people.records_in), (3, 10));
    assert_eq!(step(&report, "loud").records_out, 9);
    let save = step(&report, "save");
    assert_eq!((save.records_out, save.failed), (8, 1));
    let written = memory.written.lock().unwrap().clone();
    assert_eq!(written.len(), 8);
    assert!(
        written
            .iter()
            .all(|r| r["name"].as_str().unwrap().starts_with("PERSON"))
    );
    let errors = store.run_errors(&report.id).await.unwrap();
    let logged: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.step.as_str(), e.error.as_str()))
        .collect();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(
        logged
            .iter()
            .any(|(s, e)| *s == "loud" && e.contains("no name"))
    );
    assert!(
        logged
            .iter()
            .any(|(s, e)| *s == "save" && e.contains("refused upstream"))
    );
}

/// A write that keeps failing fails the run and leaves the cursor where the last acknowledged
/// page ended (the page read ahead meanwhile is dropped); the next run resumes there, and every
/// record is written exactly once.
async fn a_failed_write_keeps_the_cursor_and_the_next_run_resumes(store: Store) {
    let memory = Arc::new(Memory {
        streams: BTreeMap::from([("people".into(), people(10, &[], &[]))]),
        ..Memory::default()
    });
    let flow = flow();
    // Pages of 4 written in batches of 2: the first page's two writes go through, the second
    // page's first write fails on both attempts.
    *memory.writes_left.lock().unwrap() = Some(2);
    let failed = run(&store, &flow, &memory).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    // The second page went downstream and failed there; the third, read ahead, did not.
    assert_eq!(step(&failed, "people").records_in, 8);
    let cursor = store
        .cursor_get("default", "shout", "people")
        .await
        .unwrap();
    assert_eq!(cursor.as_deref(), Some("4"));

    *memory.writes_left.lock().unwrap() = None;
    let resumed = run(&store, &flow, &memory).await;
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed:?}");
    assert_eq!(step(&resumed, "people").records_in, 6);
    let ids: Vec<String> = memory
        .written
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    assert_eq!(ids, expected, "each once, in order");
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = weft_store::Store::open_sqlite(dir.path().join("weft.db"))
                        .await
                        .unwrap();
                    super::$name(store).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name(super::postgres().await).await;
                }
            }
        )*
    };
}

on_both_stores!(
    pages_flow_through_and_failures_go_to_the_error_log,
    a_dataset_keeps_records_by_key_and_gives_them_back_in_pages,
    a_failed_write_keeps_the_cursor_and_the_next_run_resumes,
);

/// A store in a schema of its own on the test PostgreSQL server.
async fn postgres() -> Store {
    use sqlx::Connection;
    static N: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("WEFT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let schema = format!(
        "weft_engine_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut db = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&mut db)
    .await
    .unwrap();
    let separator = if admin.contains('?') { '&' } else { '?' };
    Store::open_postgres(&format!(
        "{admin}{separator}options=-c%20search_path%3D{schema}"
    ))
    .await
    .unwrap()
}
