//! `weft runs`: what ran, how it went, and the records that failed.

use std::path::{Path, PathBuf};
use weft_capabilities::printable;

use anyhow::bail;
use clap::{Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum RunsCommand {
    /// The most recent runs, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only runs of this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Only runs that stand so: running, succeeded, partial, failed, abandoned, refused,
        /// cancelled.
        #[arg(long)]
        status: Option<String>,
    },
    /// One run: its steps with counts, durations, status and errors.
    Show { run: String },
    /// Run again only the records a run logged as failed, through the step that failed them
    /// (against a server: asked for, and run by the server as soon as it can).
    Retry {
        run: String,
        /// Resend only the failed records (the one mode there is; `weft run` reruns everything).
        #[arg(long, required = true)]
        failed_only: bool,
        /// The run's flow file (locally; a server knows the flows deployed to it).
        #[arg(long)]
        flow: Option<PathBuf>,
        /// The environment the run used.
        #[arg(long)]
        env: Option<String>,
        /// Where plugins named in flows are found (repeatable).
        #[arg(long = "plugins")]
        plugin_dirs: Vec<PathBuf>,
    },
    /// Asks a running run to stop after the page it is on; what it committed stays, and the
    /// flow's next run goes on from there. The server carrying it out stops it (a `weft run`
    /// in a terminal stops with Ctrl-C).
    Cancel { run: String },
    /// A run's error log: each failed record with the step and the reason.
    Errors {
        run: String,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

fn when(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub async fn run(data_dir: &Path, tenant: &str, command: RunsCommand) -> anyhow::Result<()> {
    let store = crate::store(data_dir).await?;
    match command {
        RunsCommand::List {
            limit,
            flow,
            status,
        } => {
            store.runs_reap(tenant).await?;
            let status = status
                .map(|s| s.parse::<weft_store::RunStatus>())
                .transpose()
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--status is one of running, succeeded, partial, failed, abandoned, refused, cancelled"
                    )
                })?;
            let filter = weft_store::RunFilter {
                flow: flow.as_deref(),
                status,
                limit,
                ..weft_store::RunFilter::default()
            };
            let runs = store.runs_find(tenant, &filter).await?;
            if runs.is_empty() {
                eprintln!("no runs yet for tenant `{tenant}`; start one with `weft run FLOW`");
            }
            for r in runs {
                out!("{}\t{}\t{}\t{}", r.id, r.flow, r.status, when(r.started_at))?;
            }
        }
        RunsCommand::Show { run } => {
            store.runs_reap(tenant).await?;
            let Some((r, steps)) = store.run_get(tenant, &run).await? else {
                bail!("there is no run `{run}` for tenant `{tenant}` (see `weft runs list`)");
            };
            out!("run {} of flow `{}`: {}", r.id, r.flow, r.status)?;
            if let Some(env) = &r.environment {
                out!("environment {env}")?;
            }
            out!("started {}", when(r.started_at))?;
            if let Some(f) = r.finished_at {
                let took = f.duration_since(r.started_at).unwrap_or_default();
                out!("finished {} ({:.1} s)", when(f), took.as_secs_f64())?;
            }
            if let Some(e) = &r.error {
                // Stored errors are escaped when written; escaped again here for rows an older
                // version wrote.
                out!("error {}", printable(e, usize::MAX))?;
            }
            out!(
                "\n{:<20} {:<9} {:>6} {:>9} {:>9} {:>7} {:>9}",
                "step",
                "status",
                "pages",
                "in",
                "out",
                "failed",
                "seconds"
            )?;
            for s in steps {
                let secs = s
                    .finished_at
                    .and_then(|f| f.duration_since(s.started_at).ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                out!(
                    "{:<20} {:<9} {:>6} {:>9} {:>9} {:>7} {:>9.2}",
                    s.step,
                    s.status,
                    s.pages,
                    s.records_in,
                    s.records_out,
                    s.failed,
                    secs
                )?;
                if let Some(e) = s.error {
                    out!("  error: {}", printable(&e, usize::MAX))?;
                }
            }
        }
        RunsCommand::Retry {
            run,
            failed_only: _,
            flow,
            env,
            plugin_dirs,
        } => {
            let Some((record, _)) = store.run_get(tenant, &run).await? else {
                bail!("there is no run `{run}` for tenant `{tenant}` (see `weft runs list`)");
            };
            let Some(flow) = flow else {
                bail!(
                    "--flow FILE: the flow file of run `{run}` (flow `{}`) is needed to retry it locally",
                    record.flow
                );
            };
            let flow = match weft_flow::load(&flow) {
                Ok(f) => f,
                Err(e) => {
                    eprint!("{e}");
                    bail!("{} has {} problem(s)", flow.display(), e.diagnostics.len());
                }
            };
            if flow.file.name.get_ref().as_str() != record.flow {
                bail!(
                    "run `{run}` is of flow `{}`, but {} is flow `{}`",
                    record.flow,
                    flow.path.display(),
                    flow.file.name.get_ref()
                );
            }
            let plugins = crate::plugin_directory(data_dir, plugin_dirs);
            let runtime = crate::runtime(data_dir)?;
            let plan =
                match weft_engine::plan(&flow, env.as_deref(), tenant, &plugins, &runtime).await {
                    Ok(p) => p,
                    Err(e) => {
                        eprint!("{e}");
                        bail!(
                            "{} has {} problem(s) with its plugins",
                            flow.path.display(),
                            e.diagnostics.len()
                        );
                    }
                };
            let secrets = weft_capabilities::Secrets::new(
                store.clone(),
                weft_capabilities::MasterKey::load(data_dir)?,
            );
            let options = weft_engine::RunOptions {
                tenant: tenant.to_owned(),
                environment: env,
                lease: crate::run::lease(),
                ..Default::default()
            };
            let report = weft_engine::retry_failed(
                &flow,
                &plan,
                &store,
                &secrets,
                &options,
                &run,
                &mut |_: &weft_engine::Progress<'_>| {},
            )
            .await?;
            out!("retry {} of run {run} {}", report.id, report.status)?;
            for s in &report.steps {
                out!(
                    "{:<20} {:<9} {:>9} in {:>9} out {:>7} failed",
                    s.step,
                    s.status,
                    s.records_in,
                    s.records_out,
                    s.failed
                )?;
            }
            crate::outcome::of_run(&report)?;
        }
        RunsCommand::Cancel { run } => match store.run_cancel(tenant, &run).await? {
            None => bail!("there is no run `{run}` for tenant `{tenant}` (see `weft runs list`)"),
            Some(weft_store::RunStatus::Running) => out!(
                "run {run} asked to stop: the `weft serve` carrying it out stops it after its current page (a `weft run` in a terminal stops with Ctrl-C)"
            )?,
            Some(status) => bail!("run `{run}` is not running: it ended {status}"),
        },
        RunsCommand::Errors { run, format } => {
            if store.run_get(tenant, &run).await?.is_none() {
                bail!("there is no run `{run}` for tenant `{tenant}` (see `weft runs list`)");
            }
            let errors = store.run_errors(&run).await?;
            if let Format::Csv = format {
                out!("seq,step,error,record")?;
            }
            for e in errors {
                match format {
                    Format::Jsonl => {
                        let record = e
                            .record
                            .as_deref()
                            .and_then(|r| serde_json::from_str(r).ok())
                            .unwrap_or(serde_json::Value::Null);
                        out!(
                            "{}",
                            serde_json::json!({"seq": e.seq, "step": e.step, "error": e.error, "record": record})
                        )?;
                    }
                    Format::Csv => out!(
                        "{},{},{},{}",
                        e.seq,
                        csv_field(&e.step),
                        csv_field(&printable(&e.error, usize::MAX)),
                        csv_field(e.record.as_deref().unwrap_or(""))
                    )?,
                }
            }
        }
    }
    Ok(())
}
