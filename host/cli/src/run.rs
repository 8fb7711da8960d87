//! `weft run FLOW`: plan the flow, run it once with live progress, and summarise.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::{PlanOptions, PluginDirectory, RunOptions};
use weft_store::StepStatus;

/// How long a run's hold on its flow lasts unless renewed: `WEFT_RUN_LEASE` seconds, 30 by
/// default. A run whose process died is marked `abandoned` once it lapses.
pub fn lease() -> std::time::Duration {
    std::env::var("WEFT_RUN_LEASE")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(
            weft_engine::DEFAULT_LEASE,
            std::time::Duration::from_secs_f64,
        )
}

pub async fn run(
    data_dir: &Path,
    file: &Path,
    plan_options: &PlanOptions,
    plugins: &PluginDirectory,
    wait: bool,
) -> anyhow::Result<()> {
    let flow = match weft_flow::load(file) {
        Ok(flow) => flow,
        Err(error) => {
            eprint!("{error}");
            bail!(
                "{} has {} problem(s)",
                file.display(),
                error.diagnostics.len()
            );
        }
    };
    let runtime = crate::runtime(data_dir)?;
    let plan = match weft_engine::plan_with(&flow, plan_options, plugins, &runtime).await {
        Ok(plan) => plan,
        Err(error) => {
            eprint!("{error}");
            bail!(
                "{} has {} problem(s) with its plugins",
                file.display(),
                error.diagnostics.len()
            );
        }
    };
    let store = crate::store(data_dir).await?;
    let secrets = Secrets::new(
        store.clone(),
        MasterKey::load(data_dir).context("loading the master key")?,
    );
    let options = RunOptions {
        tenant: plan_options.tenant.clone(),
        environment: plan_options.environment.clone(),
        lease: lease(),
        ..RunOptions::default()
    };
    let mut progress = progress_printer();
    let mut said = false;
    let report = loop {
        match weft_engine::run(&flow, &plan, &store, &secrets, &options, &mut progress).await {
            Err(e @ weft_engine::RunError::FlowBusy { .. }) if wait => {
                if !said {
                    eprintln!("{e}\nwaiting for it to end...");
                    said = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => break other?,
        }
    };
    print_report(&report)?;
    crate::outcome::of_run(&report)
}

/// Live progress per step on stderr: records in, out and failed, records/s, and a bar when the
/// source states its total (at a terminal; elsewhere a line per step as it ends).
pub fn progress_printer() -> impl FnMut(&weft_engine::Progress<'_>) + Send {
    let started = std::time::Instant::now();
    // Into a log file or a pipe: one plain line per step when it ends, no carriage returns.
    let live = std::io::IsTerminal::is_terminal(&std::io::stderr());
    move |p: &weft_engine::Progress<'_>| {
        let step = p.step;
        let rate = step.records_in as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let of_total = match p.total {
            Some(total) if total > 0 => {
                let done = (step.records_in as f64 / total as f64).min(1.0);
                let bar = (done * 20.0).round() as usize;
                format!(
                    " [{}{}] {:>3.0}% of {total}",
                    "#".repeat(bar),
                    "-".repeat(20 - bar),
                    done * 100.0
                )
            }
            _ => String::new(),
        };
        let line = format!(
            "  {:<20} {:>9} {:>8} in {:>8} out {:>6} failed {:>9.0} rec/s{of_total}",
            step.step, step.status, step.records_in, step.records_out, step.failed, rate
        );
        if live {
            eprint!("\r{line}   ");
            if step.status != StepStatus::Running {
                eprintln!();
            }
        } else if step.status != StepStatus::Running {
            eprintln!("{line}");
        }
        let _ = std::io::stderr().flush();
    }
}

/// The summary table of a run.
pub fn print_report(report: &weft_engine::RunReport) -> std::io::Result<()> {
    out!(
        "run {} {} in {:.1} s",
        report.id,
        report.status,
        report.took.as_secs_f64()
    )?;
    out!(
        "{:<20} {:<9} {:>6} {:>9} {:>9} {:>7}",
        "step",
        "status",
        "pages",
        "in",
        "out",
        "failed"
    )?;
    for s in &report.steps {
        out!(
            "{:<20} {:<9} {:>6} {:>9} {:>9} {:>7}",
            s.step,
            s.status,
            s.pages,
            s.records_in,
            s.records_out,
            s.failed
        )?;
    }
    for s in report
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
    {
        out!(
            "step {} failed: {}",
            s.step,
            weft_capabilities::printable(
                s.error.as_deref().unwrap_or("no reason recorded"),
                usize::MAX
            )
        )?;
    }
    if report.steps.iter().any(|s| s.failed > 0) {
        out!("failed records: weft runs errors {}", report.id)?;
    }
    Ok(())
}
