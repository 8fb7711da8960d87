//! `weft serve`: runs scheduled flows and their job chains until stopped.
//!
//! Every `*.toml` in the flows directory is checked and planned at start (a broken flow stops
//! the server before anything runs). A scheduled flow that never ran starts at once (the full
//! sync) and then follows its schedule; a flow with `after = [...]` runs once every flow it
//! names has succeeded since its own last run. Ctrl-C or SIGTERM lets the running flow finish,
//! then stops.
//!
//! Webhook-triggered flows get an endpoint, `POST /hooks/{flow}`. The flow's connector verifies
//! each delivery (signature, vendor handshake); accepted events are written to the store
//! *before* the sender gets its 2xx, so a crash loses nothing, and a redelivered event id is
//! dropped. Events are then processed in arrival order: the flow's read steps on the webhook
//! connection take the events of their stream instead of reading the upstream, and events are
//! marked done only when that run succeeded. With `--public-url`, each endpoint is registered
//! with its vendor at start and kept registered (see `webhook.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::{Plan, RunOptions, schedule};
use weft_flow::Flow;
use weft_store::{RunStatus, Store};

#[derive(Args)]
pub struct ServeArgs {
    /// The directory of flow files to serve.
    #[arg(long, default_value = "flows")]
    flows: PathBuf,
    /// Run with this environment's variables and connections.
    #[arg(long)]
    env: Option<String>,
    /// Where plugins named in flows are found (repeatable).
    #[arg(long = "plugins")]
    plugin_dirs: Vec<PathBuf>,
    /// A variable's value, over the environment's and the default (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::parse_var)]
    vars: Vec<(String, String)>,
    /// Address the webhook endpoints listen on (when a flow has a webhook trigger).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// The URL vendors reach the webhook endpoints at (e.g. `https://weft.example.com`, in
    /// front of `--listen`). When given, each webhook-triggered flow's endpoint is registered
    /// with its vendor at start, for the trigger's events, and kept registered.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

struct Served {
    flow: Flow,
    plan: Plan,
}

impl Served {
    fn name(&self) -> String {
        self.flow.file.name.get_ref().to_string()
    }

    /// The connection a webhook trigger names, if the flow has one.
    fn webhook_connection(&self) -> Option<String> {
        crate::webhook::trigger(&self.flow).map(|(connection, _)| connection)
    }
}

/// What the webhook endpoints share.
struct Hooks {
    served: Arc<Vec<Served>>,
    store: Store,
    secrets: Secrets,
    tenant: String,
    wake: Arc<tokio::sync::Notify>,
}

async fn receive(
    axum::extract::State(hooks): axum::extract::State<Arc<Hooks>>,
    axum::extract::Path(flow): axum::extract::Path<String>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let Some(served) = hooks
        .served
        .iter()
        .find(|s| s.name() == flow && s.webhook_connection().is_some())
    else {
        return (
            StatusCode::NOT_FOUND,
            format!("no webhook-triggered flow `{flow}`"),
        )
            .into_response();
    };
    let connection = served.webhook_connection().expect("checked above");
    let Some(bound) = served.plan.connections.get(&connection) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the webhook connection is not a connector",
        )
            .into_response();
    };
    let (parts, body) = request.into_parts();
    // The listener has read the whole body already, within its cap and deadline.
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return (
            StatusCode::BAD_REQUEST,
            "the delivery's body could not be read",
        )
            .into_response();
    };
    let inbound = weft_runtime::InboundRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let context = match crate::webhook::call_context(bound, &hooks.secrets, &hooks.tenant, &flow) {
        Ok(context) => context,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    match bound
        .plugin
        .verify(&context, &connection, &bound.config, inbound)
        .await
    {
        Ok(weft_runtime::Verification::Accepted(events)) => {
            let (mut kept, mut duplicates) = (0, 0);
            for e in &events {
                let stored = weft_store::StoredEvent {
                    event_id: e.id.clone(),
                    seq: 0,
                    stream: e.stream.clone(),
                    action: e.action.clone(),
                    record: e.record.clone(),
                };
                match hooks.store.event_put(&hooks.tenant, &flow, &stored).await {
                    Ok(true) => kept += 1,
                    Ok(false) => duplicates += 1,
                    // Not kept: the sender must deliver again.
                    Err(e) => {
                        return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
                    }
                }
            }
            hooks.wake.notify_one();
            axum::Json(serde_json::json!({"accepted": kept, "duplicates": duplicates}))
                .into_response()
        }
        Ok(weft_runtime::Verification::Handshake(reply)) => {
            let mut response = (
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
                reply.body,
            )
                .into_response();
            for (k, v) in reply.headers {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::try_from(k),
                    axum::http::HeaderValue::try_from(v),
                ) {
                    response.headers_mut().insert(k, v);
                }
            }
            response
        }
        Ok(weft_runtime::Verification::Rejected(reason)) => {
            tracing::warn!(flow = %flow, %reason, "webhook delivery rejected");
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": reason})),
            )
                .into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// Runs a webhook flow over its pending events; marks them done when the run succeeded.
async fn process_events(
    served: &Served,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
) -> anyhow::Result<()> {
    let Some(connection) = served.webhook_connection() else {
        return Ok(());
    };
    let name = served.name();
    let events = store.events_pending(&options.tenant, &name, 1_000).await?;
    if events.is_empty() {
        return Ok(());
    }
    let mut injected: std::collections::BTreeMap<weft_flow::StepId, Vec<serde_json::Value>> =
        Default::default();
    for step in &served.flow.steps {
        if let weft_flow::StepKind::Read(read) = &step.kind
            && let read = read.get_ref()
            && read.connection.get_ref().as_str() == connection
        {
            let records = events
                .iter()
                .filter(|e| &e.stream == read.stream.get_ref())
                .filter_map(|e| serde_json::from_str(&e.record).ok())
                .collect();
            injected.insert(step.id.get_ref().clone(), records);
        }
    }
    let report = match weft_engine::run_with_events(
        &served.flow,
        &served.plan,
        store,
        secrets,
        options,
        injected,
        &mut |_: &weft_engine::Progress<'_>| {},
    )
    .await
    {
        Ok(report) => report,
        // Another run of the flow (a `weft run` beside the server) holds it: the events wait.
        Err(e @ weft_engine::RunError::FlowBusy { .. }) => {
            tracing::info!(flow = %name, "{e}; its webhook events wait for the next turn");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "{} flow {name} run {} {} for {} webhook event(s)",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        report.id,
        report.status,
        events.len()
    );
    // Records of the events that failed are in the run's error log, to retry from there.
    if report.status.completed() {
        let ids: Vec<String> = events.into_iter().map(|e| e.event_id).collect();
        store.events_done(&options.tenant, &name, &ids).await?;
    }
    Ok(())
}

/// How `flow` is planned: the server's environment and the `--var`s the flow declares (noted
/// in `used`).
fn plan_options(
    flow: &Flow,
    args: &ServeArgs,
    tenant: &str,
    used: &mut std::collections::BTreeSet<String>,
) -> weft_engine::PlanOptions {
    let declared = |name: &str| {
        flow.file
            .variables
            .keys()
            .any(|k| k.get_ref().as_str() == name)
    };
    let variables: std::collections::BTreeMap<String, String> = args
        .vars
        .iter()
        .filter(|(name, _)| declared(name))
        .cloned()
        .collect();
    used.extend(variables.keys().cloned());
    weft_engine::PlanOptions {
        environment: args.env.clone(),
        tenant: tenant.to_owned(),
        variables,
    }
}

fn flow_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the flows directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

pub async fn run(data_dir: &Path, tenant: &str, args: ServeArgs) -> anyhow::Result<()> {
    let plugins = crate::plugin_directory(data_dir, args.plugin_dirs.clone());
    let runtime = crate::runtime(data_dir)?;
    let mut served = Vec::new();
    let mut problems = 0;
    let mut used: std::collections::BTreeSet<String> = Default::default();
    for file in flow_files(&args.flows)? {
        match weft_flow::load(&file) {
            Err(e) => {
                eprint!("{e}");
                problems += e.diagnostics.len();
            }
            // Each flow gets the `--var`s it declares; one that no flow declares is refused below.
            Ok(flow) => match weft_engine::plan_with(
                &flow,
                &plan_options(&flow, &args, tenant, &mut used),
                &plugins,
                &runtime,
            )
            .await
            {
                Ok(plan) => served.push(Served { flow, plan }),
                Err(e) => {
                    eprint!("{e}");
                    problems += e.diagnostics.len();
                }
            },
        }
    }
    for (name, _) in args.vars.iter().filter(|(name, _)| !used.contains(name)) {
        eprintln!(
            "error: `--var {name}=...` names a variable no flow in {} declares",
            args.flows.display()
        );
        problems += 1;
    }
    if problems > 0 {
        bail!(
            "{problems} problem(s) in the flows of {}; nothing was started",
            args.flows.display()
        );
    }
    if served.is_empty() {
        bail!("no flow files (*.toml) in {}", args.flows.display());
    }
    let store = crate::store(data_dir).await?;
    let secrets = Secrets::new(
        store.clone(),
        MasterKey::load(data_dir).context("loading the master key")?,
    );
    let options = RunOptions {
        tenant: tenant.to_owned(),
        environment: args.env.clone(),
        lease: crate::run::lease(),
        ..RunOptions::default()
    };
    eprintln!(
        "serving {} flow(s) from {}; Ctrl-C stops",
        served.len(),
        args.flows.display()
    );

    let served = Arc::new(served);
    let wake = Arc::new(tokio::sync::Notify::new());
    if served.iter().any(|s| s.webhook_connection().is_some()) {
        let hooks = Arc::new(Hooks {
            served: Arc::clone(&served),
            store: store.clone(),
            secrets: secrets.clone(),
            tenant: tenant.to_owned(),
            wake: Arc::clone(&wake),
        });
        let app = axum::Router::new()
            .route("/hooks/{flow}", axum::routing::any(receive))
            .with_state(hooks);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        eprintln!(
            "webhooks on http://{}/hooks/{{flow}}",
            listener.local_addr()?
        );
        tokio::spawn(async move {
            if let Err(e) =
                weft_listener::serve(listener, app, weft_listener::Limits::default()).await
            {
                tracing::error!(error = %e, "the webhook server stopped");
            }
        });
    }

    // Registered once the endpoints listen, so that a vendor's verification call on
    // registration (a handshake) is answered.
    let mut renewals: Vec<(usize, Option<SystemTime>)> = Vec::new();
    if let Some(public_url) = &args.public_url {
        for (i, s) in served
            .iter()
            .enumerate()
            .filter(|(_, s)| s.webhook_connection().is_some())
        {
            renewals.push((i, register(s, &store, &secrets, tenant, public_url).await?));
        }
    } else if served.iter().any(|s| s.webhook_connection().is_some()) {
        eprintln!(
            "webhook endpoints are not registered with their vendors (no --public-url): register them by hand or restart with it"
        );
    }

    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let now = SystemTime::now();
        let mut next_wake = now + Duration::from_secs(1);
        if let Some(public_url) = &args.public_url {
            for renewal in renewals.iter_mut() {
                if renewal
                    .1
                    .is_some_and(|lapses| lapses <= now + crate::webhook::RENEW_BEFORE)
                {
                    match register(&served[renewal.0], &store, &secrets, tenant, public_url).await {
                        Ok(next) => renewal.1 = next,
                        // Tried again at the next wake: the registration has not lapsed yet.
                        Err(e) => {
                            tracing::error!(flow = %served[renewal.0].name(), error = %e, "renewing the webhook registration failed")
                        }
                    }
                }
            }
        }
        for i in 0..served.len() {
            let name = served[i].flow.file.name.get_ref().to_string();
            let last = store
                .flow_runs(tenant, &name, None, 1)
                .await?
                .into_iter()
                .next()
                .map(|r| r.started_at);
            match schedule::next_due(&served[i].flow, last, now) {
                Some(due)
                    if due <= now && run_one(&served[i], &store, &secrets, &options).await? =>
                {
                    run_chain(&served, &name, &store, &secrets, &options, tenant).await?;
                }
                Some(due) => next_wake = next_wake.min(due),
                None => {}
            }
        }
        for flow in served.iter() {
            process_events(flow, &store, &secrets, &options).await?;
        }
        let wait = next_wake
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::select! {
            _ = &mut stop => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    eprintln!("stopped");
    Ok(())
}

/// Registers a webhook flow's endpoint with its vendor (or keeps the registration it has) and
/// says so; when the registration lapses, if it does.
async fn register(
    served: &Served,
    store: &Store,
    secrets: &Secrets,
    tenant: &str,
    public_url: &str,
) -> anyhow::Result<Option<SystemTime>> {
    let name = served.name();
    let callback = crate::webhook::callback_url(public_url, &name);
    let subscription = match crate::webhook::ensure(
        &served.flow,
        &served.plan,
        store,
        secrets,
        tenant,
        &callback,
    )
    .await?
    {
        crate::webhook::Registration::Kept(s) => {
            eprintln!(
                "webhook of flow {name}: registered already ({}) at {callback}",
                s.subscription_id
            );
            s
        }
        crate::webhook::Registration::Made(s) => {
            eprintln!(
                "webhook of flow {name}: registered ({}) at {callback}",
                s.subscription_id
            );
            s
        }
    };
    Ok(subscription.expires_at)
}

/// Runs one flow and prints a line about it; whether it succeeded.
async fn run_one(
    served: &Served,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
) -> anyhow::Result<bool> {
    let name = served.flow.file.name.get_ref().to_string();
    let report = match weft_engine::run(
        &served.flow,
        &served.plan,
        store,
        secrets,
        options,
        &mut |_: &weft_engine::Progress<'_>| {},
    )
    .await
    {
        Ok(report) => report,
        // Never an overlapping run: the flow is tried again when it is next due.
        Err(e @ weft_engine::RunError::FlowBusy { .. }) => {
            tracing::info!(flow = %name, "{e}; not started");
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    let (read, written, failed) = report.steps.iter().fold((0, 0, 0), |(r, w, f), s| {
        let kind = served
            .flow
            .steps
            .iter()
            .find(|st| st.id.get_ref().as_str() == s.step)
            .map(|st| &st.kind);
        let is_read = matches!(kind, Some(weft_flow::StepKind::Read(_)));
        let is_write = matches!(kind, Some(weft_flow::StepKind::Write(_)));
        (
            r + if is_read { s.records_out } else { 0 },
            w + if is_write { s.records_out } else { 0 },
            f + s.failed,
        )
    });
    println!(
        "{} flow {name} run {} {}: {read} read, {written} written, {failed} failed ({:.1} s)",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        report.id,
        report.status,
        report.took.as_secs_f64()
    );
    Ok(report.status.completed())
}

/// Runs the flows chained after `name` whose every predecessor has succeeded since their own
/// last run, and theirs in turn.
async fn run_chain(
    served: &[Served],
    name: &str,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
    tenant: &str,
) -> anyhow::Result<()> {
    let mut pending = vec![name.to_owned()];
    while let Some(done) = pending.pop() {
        for next in served.iter().filter(|s| {
            s.flow
                .file
                .after
                .iter()
                .any(|a| a.get_ref().as_str() == done)
        }) {
            let next_name = next.flow.file.name.get_ref().to_string();
            let last = store
                .flow_runs(tenant, &next_name, None, 1)
                .await?
                .into_iter()
                .next()
                .map(|r| r.started_at);
            let mut ready = true;
            for before in &next.flow.file.after {
                // Ran to its end since: succeeded, or partial (its failed records are in its
                // error log, not in the way of what comes after).
                let mut completed = Vec::new();
                for status in [RunStatus::Succeeded, RunStatus::Partial] {
                    completed.extend(
                        store
                            .flow_runs(tenant, before.get_ref().as_str(), Some(status), 1)
                            .await?,
                    );
                }
                ready &= completed
                    .iter()
                    .any(|r| last.is_none_or(|l| r.started_at >= l));
            }
            if ready && run_one(next, store, secrets, options).await? {
                pending.push(next_name);
            }
        }
    }
    Ok(())
}
