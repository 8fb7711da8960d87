//! The server in-process: schedules, job chains, webhook endpoints and their event queue,
//! registrations with the vendor, loading a directory of flows. Real components, a real store,
//! real HTTP on loopback; time is passed to `tick`, so nothing waits for a clock.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use weft_capabilities::{MasterKey, Secret, Secrets};
use weft_engine::{PluginDirectory, RetryPolicy, RunOptions};
use weft_server::{Cause, Event, LoadError, LoadOptions, Registration, ServedFlow, Server};
use weft_store::Store;
use weft_tests::upstream::Upstream;

struct Harness {
    dir: tempfile::TempDir,
    store: Store,
    secrets: Secrets,
    runtime: weft_runtime::Runtime,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("flows")).unwrap();
        let store = Store::open_sqlite(dir.path().join("weft.db"))
            .await
            .unwrap();
        let secrets = Secrets::new(store.clone(), MasterKey::generate("test"));
        secrets
            .set("default", "hook", &Secret::new("hook-secret"))
            .await
            .unwrap();
        Harness {
            dir,
            store,
            secrets,
            runtime: weft_tests::runtime(|_| {}),
        }
    }

    fn flows(&self) -> std::path::PathBuf {
        self.dir.path().join("flows")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.flows().join(format!("{name}.toml")), text).unwrap();
    }

    async fn load(&self, variables: &[(String, String)]) -> Result<Vec<ServedFlow>, LoadError> {
        let plugins = PluginDirectory::new([std::path::PathBuf::from(weft_tests::WASM_DIR)]);
        let options = LoadOptions {
            tenant: "default",
            environment: None,
            variables,
            plugins: &plugins,
            runtime: &self.runtime,
        };
        weft_server::load(&self.flows(), &options).await
    }

    /// A server over the directory's flows, and what it tells.
    async fn server(&self) -> (Server, Told) {
        let flows = self.load(&[]).await.unwrap_or_else(|e| match e {
            LoadError::Problems { problems, .. } => panic!("{problems}"),
            e => panic!("{e}"),
        });
        let told = Told::default();
        let sink = told.clone();
        let options = RunOptions {
            lease: Duration::from_secs(5),
            retry: RetryPolicy {
                attempts: 2,
                base: Duration::from_millis(10),
                max_wait: Duration::from_millis(50),
            },
            ..RunOptions::default()
        };
        let server = Server::new(flows, self.store.clone(), self.secrets.clone(), options)
            .on_event(move |e| sink.0.lock().unwrap().push(said(e)));
        (server, told)
    }
}

/// The server's events, as `flow cause status` lines.
#[derive(Clone, Default)]
struct Told(Arc<Mutex<Vec<String>>>);

impl Told {
    /// What was told since the last look.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

fn said(event: &Event) -> String {
    match event {
        Event::RunEnded(run) => {
            let cause = match &run.cause {
                Cause::Schedule => "schedule".to_owned(),
                Cause::Chain { after } => format!("after {after}"),
                Cause::Webhook { events } => format!("{events} events"),
                Cause::Requested => "requested".to_owned(),
                Cause::Retry { of } => format!("retry of {of}"),
            };
            format!(
                "{} {cause} {}: {} read, {} written",
                run.flow, run.status, run.read, run.written
            )
        }
        Event::Deferred {
            flow,
            error,
            retry_at,
            ..
        } => {
            let at = retry_at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
            format!("{flow} deferred to {}: {error}", at.as_secs())
        }
        Event::Registered {
            flow,
            registration: Registration::Kept(s),
            ..
        } => format!("{flow} kept {}", s.subscription_id),
        Event::Registered {
            flow,
            registration: Registration::Made(s),
            ..
        } => format!("{flow} made {}", s.subscription_id),
    }
}

fn api(upstream: &Upstream, name: &str) -> String {
    format!(
        "[connections.{name}]\nplugin = \"http-json\"\nconfig = {{ base_url = \"{}\" }}\negress = [{{ host = \"{}\", allow_http = true, allow_private = true }}]\nwebhook_secret = \"secret:hook\"\n",
        upstream.url(),
        upstream.addr
    )
}

const DATASET: &str = "[connections.store]\nplugin = \"dataset\"\n";

const HOURLY: &str = "schedule = { every = \"1h\" }";

/// `name` reads `stream` of `upstream` into the dataset `people`, on `trigger`.
fn collect(upstream: &Upstream, name: &str, stream: &str, trigger: &str) -> String {
    format!(
        "name = \"{name}\"\n\n[trigger]\n{trigger}\n\n{}\n{DATASET}\n[[steps]]\nid = \"items\"\nread = {{ connection = \"api\", stream = \"{stream}\" }}\n\n[[steps]]\nid = \"keep\"\nwrite = {{ connection = \"store\", stream = \"people\", input = \"items\", mode = \"upsert\", key = [\"email\"] }}\n",
        api(upstream, "api")
    )
}

/// `publish` writes the dataset `people` to `contacts` upstream, after `after`.
fn publish(upstream: &Upstream, after: &[&str]) -> String {
    format!(
        "name = \"publish\"\nafter = {after:?}\n\n{}\n{DATASET}\n[[steps]]\nid = \"people\"\nread = {{ connection = \"store\", stream = \"people\" }}\n\n[[steps]]\nid = \"save\"\nwrite = {{ connection = \"api\", stream = \"contacts\", input = \"people\", mode = \"upsert\", key = [\"id\"] }}\n",
        api(upstream, "api")
    )
}

fn people(n: usize) -> impl Iterator<Item = Value> {
    (0..n).map(|i| json!({"id": format!("{i}"), "email": format!("p{i}@x.io")}))
}

/// One turn of the server at `now`, and the runs it started (and the chains after them) to
/// their end.
async fn turn(server: &mut Server, now: SystemTime) {
    server.tick(now).await;
    server.settle(now).await;
}

#[tokio::test]
async fn a_flow_that_never_ran_starts_at_once_then_follows_its_schedule_and_its_chain_after_it() {
    let upstream = Upstream::start().await;
    upstream.seed("items", people(5));
    let h = Harness::new().await;
    h.write("collect", &collect(&upstream, "collect", "items", HOURLY));
    h.write("publish", &publish(&upstream, &["collect"]));
    let (mut server, told) = h.server().await;

    let now = SystemTime::now();
    turn(&mut server, now).await;
    assert_eq!(
        told.take(),
        [
            "collect schedule succeeded: 5 read, 5 written",
            "publish after collect succeeded: 5 read, 5 written"
        ]
    );
    assert_eq!(upstream.records("contacts").len(), 5);

    // Not due again within the hour: nothing runs.
    turn(&mut server, now + Duration::from_secs(60)).await;
    assert_eq!(told.take(), Vec::<String>::new());

    // Due an hour after it last started: it runs, and the chain after it.
    upstream.seed("items", people(7));
    turn(&mut server, SystemTime::now() + Duration::from_secs(3_601)).await;
    assert_eq!(
        told.take(),
        [
            "collect schedule succeeded: 7 read, 7 written",
            "publish after collect succeeded: 7 read, 7 written"
        ]
    );
    assert_eq!(upstream.records("contacts").len(), 7);
}

#[tokio::test]
async fn a_chained_flow_waits_until_every_flow_it_runs_after_has_completed() {
    let upstream = Upstream::start().await;
    upstream.seed("items", people(3));
    // b-second reads another upstream, down for longer than the retries last.
    let down = Upstream::start().await;
    down.seed("items", people(3));
    down.fail_next(std::iter::repeat_n((503, None), 20));
    let h = Harness::new().await;
    h.write("a-first", &collect(&upstream, "a-first", "items", HOURLY));
    h.write("b-second", &collect(&down, "b-second", "items", HOURLY));
    h.write("publish", &publish(&upstream, &["a-first", "b-second"]));
    let (mut server, told) = h.server().await;

    // The two run at once, and end in either order.
    turn(&mut server, SystemTime::now()).await;
    let mut lines = told.take();
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "a-first schedule succeeded: 3 read, 3 written");
    assert!(
        lines[1].starts_with("b-second schedule failed"),
        "{lines:?}"
    );
    assert!(upstream.records("contacts").is_empty());

    // Once b-second has completed too, publish runs after the last of the two, once.
    down.heal();
    turn(&mut server, SystemTime::now() + Duration::from_secs(3_601)).await;
    let mut lines = told.take();
    let publish = lines.pop().unwrap();
    lines.sort();
    assert_eq!(
        lines,
        [
            "a-first schedule succeeded: 3 read, 3 written",
            "b-second schedule succeeded: 3 read, 3 written",
        ]
    );
    assert!(
        publish.starts_with("publish after ") && publish.ends_with(" succeeded: 3 read, 3 written"),
        "{publish}"
    );
    assert_eq!(upstream.records("contacts").len(), 3);
}

fn sign(body: &str) -> String {
    weft_tests::webhook_signature("hook-secret", body.as_bytes())
}

fn delivery(ids: &[&str]) -> String {
    let events: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": format!("evt-{id}"), "stream": "items", "action": "updated", "record": {"id": id, "name": format!("changed {id}")}}))
        .collect();
    json!({ "events": events }).to_string()
}

fn hooks_flow(upstream: &Upstream) -> String {
    format!(
        "name = \"hooks\"\n\n[trigger]\nwebhook = {{ connection = \"api\" }}\n\n{}\n[[steps]]\nid = \"changed\"\nread = {{ connection = \"api\", stream = \"items\" }}\n\n[[steps]]\nid = \"save\"\nwrite = {{ connection = \"api\", stream = \"contacts\", input = \"changed\", mode = \"upsert\", key = [\"id\"] }}\n",
        api(upstream, "api")
    )
}

async fn post(url: &str, body: String, signature: String) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::new()
        .post(url)
        .header("X-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn webhook_events_are_kept_before_the_reply_and_run_once_in_order() {
    let upstream = Upstream::start().await;
    let h = Harness::new().await;
    h.write("hooks", &hooks_flow(&upstream));
    let (mut server, told) = h.server().await;
    assert!(server.has_webhooks());
    let address = server.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{address}/hooks/hooks");

    let body = delivery(&["a", "b"]);
    let signature = sign(&body);
    assert_eq!(
        post(&url, body, signature).await,
        (200, json!({"accepted": 2, "duplicates": 0}))
    );
    // Kept before the reply: in the store now, before any turn of the loop.
    let pending = h
        .store
        .events_pending("default", "hooks", 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    // A redelivery is dropped by event id; a forged delivery and an unknown flow are refused.
    let again = delivery(&["a"]);
    let signature = sign(&again);
    assert_eq!(
        post(&url, again, signature).await,
        (200, json!({"accepted": 0, "duplicates": 1}))
    );
    let (status, _) = post(&url, delivery(&["x"]), sign("something else")).await;
    assert_eq!(status, 401);
    let elsewhere = format!("http://{address}/hooks/nobody");
    let body = delivery(&["y"]);
    let signature = sign(&body);
    assert_eq!(post(&elsewhere, body, signature).await.0, 404);

    turn(&mut server, SystemTime::now()).await;
    assert_eq!(told.take(), ["hooks 2 events succeeded: 2 read, 2 written"]);
    let ids: Vec<Value> = upstream
        .records("contacts")
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!("a"), json!("b")]);
    assert!(
        h.store
            .events_pending("default", "hooks", 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Done events are not run again; a webhook flow has no schedule of its own.
    turn(&mut server, SystemTime::now()).await;
    assert_eq!(told.take(), Vec::<String>::new());
}

#[tokio::test]
async fn webhook_events_of_a_failed_run_wait_for_the_next_look() {
    let upstream = Upstream::start().await;
    let h = Harness::new().await;
    h.write("hooks", &hooks_flow(&upstream));
    let (mut server, told) = h.server().await;
    let address = server.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let body = delivery(&["a"]);
    let signature = sign(&body);
    post(&format!("http://{address}/hooks/hooks"), body, signature).await;

    // The upstream refuses the writes for longer than the retries last: the run fails.
    upstream.fail_next(std::iter::repeat_n((503, None), 20));
    turn(&mut server, SystemTime::now()).await;
    let lines = told.take();
    assert!(lines[0].starts_with("hooks 1 events failed"), "{lines:?}");
    assert!(upstream.records("contacts").is_empty());
    let pending = h
        .store
        .events_pending("default", "hooks", 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "the event waits");

    // Not looked for again at once (no new delivery announced them) ...
    upstream.heal();
    turn(&mut server, SystemTime::now()).await;
    assert_eq!(told.take(), Vec::<String>::new());
    // ... but at the next look, ten seconds on.
    turn(&mut server, SystemTime::now() + Duration::from_secs(11)).await;
    assert_eq!(told.take(), ["hooks 1 events succeeded: 1 read, 1 written"]);
    assert_eq!(upstream.records("contacts").len(), 1);
    let pending = h
        .store
        .events_pending("default", "hooks", 10)
        .await
        .unwrap();
    assert!(pending.is_empty());
}

#[tokio::test]
async fn registrations_are_kept_across_restarts_replaced_when_the_url_changes_and_removed() {
    let upstream = Upstream::start().await;
    let h = Harness::new().await;
    h.write("hooks", &hooks_flow(&upstream));

    let (server, told) = h.server().await;
    let mut server = server.with_public_url("https://weft.example.com/");
    server.register().await.unwrap();
    assert_eq!(told.take(), ["hooks made wh-1"]);
    assert_eq!(
        upstream.webhooks(),
        [json!({"id": "wh-1", "url": "https://weft.example.com/hooks/hooks", "events": []})]
    );

    // A restart with the same URL keeps it: nothing is registered again.
    let (server, told) = h.server().await;
    let mut server = server.with_public_url("https://weft.example.com");
    server.register().await.unwrap();
    assert_eq!(told.take(), ["hooks kept wh-1"]);
    assert_eq!(upstream.webhooks_made(), 1);

    // Another URL replaces it: the old one is unsubscribed.
    let (server, told) = h.server().await;
    let mut server = server.with_public_url("https://hooks.example.org");
    server.register().await.unwrap();
    assert_eq!(told.take(), ["hooks made wh-2"]);
    assert_eq!(
        upstream.webhooks(),
        [json!({"id": "wh-2", "url": "https://hooks.example.org/hooks/hooks", "events": []})]
    );

    let flows = server.flows();
    let served = &flows[0];
    assert!(
        weft_server::registration::remove(served, &h.store, &h.secrets, "default")
            .await
            .unwrap()
    );
    assert_eq!(upstream.webhooks(), Vec::<Value>::new());
    assert!(
        h.store
            .subscriptions("default", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !weft_server::registration::remove(served, &h.store, &h.secrets, "default")
            .await
            .unwrap(),
        "nothing left to remove"
    );
}

#[tokio::test]
async fn loading_says_every_broken_flow_and_every_undeclared_variable_and_starts_nothing() {
    let h = Harness::new().await;
    let empty = h.load(&[]).await.err().unwrap();
    assert!(matches!(empty, LoadError::Empty { .. }), "{empty}");

    std::fs::copy(ui("unknown-input.toml"), h.flows().join("broken.toml")).unwrap();
    std::fs::copy(ui("cycle.toml"), h.flows().join("cycle.toml")).unwrap();
    let upstream = Upstream::start().await;
    h.write("good", &publish(&upstream, &[]));
    let error = h
        .load(&[("colour".to_owned(), "blue".to_owned())])
        .await
        .err()
        .unwrap();
    let LoadError::Problems { problems, .. } = &error else {
        panic!("{error}")
    };
    let text = problems.to_string();
    assert!(
        text.contains("input `tickest` is not a step of this flow"),
        "{text}"
    );
    assert!(text.contains("cycle"), "{text}");
    assert!(
        text.contains("`--var colour=...` names a variable no flow in"),
        "{text}"
    );
    assert_eq!(problems.flows.len(), 2);
    assert!(
        error.to_string().ends_with("; nothing was started"),
        "{error}"
    );
    assert!(h.store.runs_list("default", 10).await.unwrap().is_empty());
}

fn ui(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ui").join(name)
}

/// Renames a table of the store's SQLite file behind the server's back, as a store failing
/// would look to it; `undo` puts it back.
async fn rename_table(dir: &Path, from: &str, to: &str) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.join("weft.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
}

/// Moves the recorded start of run `id` later by `by`, as if it had started then.
async fn shift_run(dir: &Path, id: &str, by: Duration) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.join("weft.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE runs SET started_at = started_at + ? WHERE id = ?")
        .bind(by.as_millis() as i64)
        .bind(id)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_failing_store_defers_the_flow_with_backoff_and_the_server_goes_on() {
    let upstream = Upstream::start().await;
    upstream.seed("items", people(2));
    let h = Harness::new().await;
    h.write("collect", &collect(&upstream, "collect", "items", HOURLY));
    let (mut server, told) = h.server().await;
    let t0 = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
    let secs = |d: u64| {
        (t0 + Duration::from_secs(d))
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };

    rename_table(h.dir.path(), "runs", "runs_away").await;
    turn(&mut server, t0).await;
    let lines = told.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "collect deferred to {}: the state database failed",
            secs(5)
        )),
        "{lines:?}"
    );
    // Resting: not tried again before its time.
    turn(&mut server, t0 + Duration::from_secs(2)).await;
    assert_eq!(told.take(), Vec::<String>::new());
    // Failing again: it rests twice as long.
    turn(&mut server, t0 + Duration::from_secs(6)).await;
    let lines = told.take();
    assert!(
        lines[0].starts_with(&format!("collect deferred to {}:", secs(16))),
        "{lines:?}"
    );

    // The store is back: the flow runs, and its next failure rests it only the first time.
    rename_table(h.dir.path(), "runs_away", "runs").await;
    turn(&mut server, t0 + Duration::from_secs(16)).await;
    assert_eq!(
        told.take(),
        ["collect schedule succeeded: 2 read, 2 written"]
    );
    rename_table(h.dir.path(), "runs", "runs_away").await;
    turn(&mut server, t0 + Duration::from_secs(20)).await;
    let lines = told.take();
    assert!(
        lines[0].starts_with(&format!("collect deferred to {}:", secs(25))),
        "{lines:?}"
    );
}

#[tokio::test]
async fn an_idle_flow_costs_no_store_query_and_a_run_elsewhere_is_seen_before_running_again() {
    let upstream = Upstream::start().await;
    upstream.seed("items", people(2));
    let h = Harness::new().await;
    h.write("collect", &collect(&upstream, "collect", "items", HOURLY));
    let (mut server, told) = h.server().await;
    let now = SystemTime::now();
    turn(&mut server, now).await;
    assert_eq!(told.take().len(), 1);
    // The next turn reads when that run started, once.
    turn(&mut server, now + Duration::from_secs(1)).await;

    // With the runs table gone, a turn that asked the store anything would be deferred: an
    // idle flow's turns ask nothing.
    rename_table(h.dir.path(), "runs", "runs_away").await;
    for s in 2..5 {
        turn(&mut server, now + Duration::from_secs(s)).await;
    }
    assert_eq!(told.take(), Vec::<String>::new());
    rename_table(h.dir.path(), "runs_away", "runs").await;

    // Another process runs the flow (its start set half an hour later); when the remembered start makes the flow
    // due, the store is asked again, and the flow is not run before its hour since that run.
    let flows = server.flows();
    let served = &flows[0];
    let elsewhere = weft_engine::run(
        &served.flow,
        &served.plan,
        &h.store,
        &h.secrets,
        &RunOptions::default(),
        &mut |_: &weft_engine::Progress<'_>| {},
    )
    .await
    .unwrap();
    assert!(elsewhere.completed());
    shift_run(h.dir.path(), &elsewhere.id, Duration::from_secs(1_800)).await;
    turn(&mut server, now + Duration::from_secs(3_601)).await;
    assert_eq!(told.take(), Vec::<String>::new(), "ran again too soon");
    let runs = h.store.runs_list("default", 10).await.unwrap();
    assert_eq!(runs.len(), 2);
}
