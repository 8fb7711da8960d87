//! `weft serve`: runs scheduled flows and their job chains until stopped.
//!
//! Every `*.toml` in the flows directory is checked and planned at start (a broken flow stops
//! the server before anything runs). A scheduled flow that never ran starts at once (the full
//! sync) and then follows its schedule; a flow with `after = [...]` runs once every flow it
//! names has succeeded since its own last run. Ctrl-C or SIGTERM lets the running flow finish,
//! then stops.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::{Plan, RunOptions, schedule};
use weft_flow::Flow;
use weft_store::Store;

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
}

struct Served {
    flow: Flow,
    plan: Plan,
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
    for file in flow_files(&args.flows)? {
        match weft_flow::load(&file) {
            Err(e) => {
                eprint!("{e}");
                problems += e.diagnostics.len();
            }
            Ok(flow) => match weft_engine::plan(&flow, args.env.as_deref(), tenant, &plugins, &runtime).await {
                Ok(plan) => served.push(Served { flow, plan }),
                Err(e) => {
                    eprint!("{e}");
                    problems += e.diagnostics.len();
                }
            },
        }
    }
    if problems > 0 {
        bail!("{problems} problem(s) in the flows of {}; nothing was started", args.flows.display());
    }
    if served.is_empty() {
        bail!("no flow files (*.toml) in {}", args.flows.display());
    }
    let store = Store::open_sqlite(data_dir.join("weft.db")).await.context("opening the store")?;
    let secrets = Secrets::new(store.clone(), MasterKey::load(data_dir).context("loading the master key")?);
    let options = RunOptions { tenant: tenant.to_owned(), environment: args.env.clone(), ..RunOptions::default() };
    eprintln!("serving {} flow(s) from {}; Ctrl-C stops", served.len(), args.flows.display());

    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let now = SystemTime::now();
        let mut next_wake = now + Duration::from_secs(1);
        for i in 0..served.len() {
            let name = served[i].flow.file.name.get_ref().to_string();
            let last = store.flow_runs(tenant, &name, None, 1).await?.into_iter().next().map(|r| r.started_at);
            match schedule::next_due(&served[i].flow, last, now) {
                Some(due) if due <= now => {
                    if run_one(&served[i], &store, &secrets, &options).await? {
                        run_chain(&served, &name, &store, &secrets, &options, tenant).await?;
                    }
                }
                Some(due) => next_wake = next_wake.min(due),
                None => {}
            }
        }
        let wait = next_wake.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    eprintln!("stopped");
    Ok(())
}

/// Runs one flow and prints a line about it; whether it succeeded.
async fn run_one(served: &Served, store: &Store, secrets: &Secrets, options: &RunOptions) -> anyhow::Result<bool> {
    let name = served.flow.file.name.get_ref().to_string();
    let report = weft_engine::run(&served.flow, &served.plan, store, secrets, options, &mut |_| {}).await?;
    let (read, written, failed) = report.steps.iter().fold((0, 0, 0), |(r, w, f), s| {
        let is_read = served.flow.file.steps.iter().any(|st| st.get_ref().id.get_ref().as_str() == s.step && st.get_ref().read.is_some());
        let is_write = served.flow.file.steps.iter().any(|st| st.get_ref().id.get_ref().as_str() == s.step && st.get_ref().write.is_some());
        (r + if is_read { s.records_out } else { 0 }, w + if is_write { s.records_out } else { 0 }, f + s.failed)
    });
    println!(
        "{} flow {name} run {} {}: {read} read, {written} written, {failed} failed ({:.1} s)",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        report.id,
        if report.succeeded { "succeeded" } else { "failed" },
        report.took.as_secs_f64()
    );
    Ok(report.succeeded)
}

/// Runs the flows chained after `name` whose every predecessor has succeeded since their own
/// last run, and theirs in turn.
async fn run_chain(served: &[Served], name: &str, store: &Store, secrets: &Secrets, options: &RunOptions, tenant: &str) -> anyhow::Result<()> {
    let mut pending = vec![name.to_owned()];
    while let Some(done) = pending.pop() {
        for next in served.iter().filter(|s| s.flow.file.after.iter().any(|a| a.get_ref().as_str() == done)) {
            let next_name = next.flow.file.name.get_ref().to_string();
            let last = store.flow_runs(tenant, &next_name, None, 1).await?.into_iter().next().map(|r| r.started_at);
            let mut ready = true;
            for before in &next.flow.file.after {
                let succeeded = store.flow_runs(tenant, before.get_ref().as_str(), Some("succeeded"), 1).await?;
                ready &= succeeded.first().is_some_and(|r| last.is_none_or(|l| r.started_at >= l));
            }
            if ready && run_one(next, store, secrets, options).await? {
                pending.push(next_name);
            }
        }
    }
    Ok(())
}
