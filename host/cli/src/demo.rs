//! `weft demo`: every scenario of `examples/`, on this machine and nothing else. It builds the
//! first-party plugins, starts the sandbox emulators in-process with their demo data, runs each
//! example's flows (those its `demo.toml` lists, else the directory's flows in job-chain order;
//! on the flow's `sandbox` environment when it has one, pointed at this sandbox through the
//! `{vendor}_url` / `{vendor}_host` variables), and ends with a summary per scenario and where
//! to look at the results.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::{PlanOptions, PluginDirectory, RunOptions};
use weft_flow::Flow;
use weft_sandbox::{Sandbox, SandboxConfig};

#[derive(Args)]
pub struct DemoArgs {
    /// Use the components in this directory instead of building `plugins/`.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Where the example scenarios are (one directory of flow files each).
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Run only the scenarios whose directory name contains this.
    #[arg(long)]
    only: Option<String>,
}

/// The checkout this binary was built from: `plugins/` and `examples/` live there.
fn checkout() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    path.canonicalize().unwrap_or(path)
}

/// `path` as the person running the demo would type it: relative to where they are, if it is
/// below that.
fn shown(path: &Path) -> String {
    let here = std::env::current_dir()
        .ok()
        .and_then(|d| d.canonicalize().ok());
    match here.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

fn build_plugins() -> anyhow::Result<PathBuf> {
    let workspace = checkout().join("plugins");
    let started = Instant::now();
    eprintln!("building plugins in {} ...", workspace.display());
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&workspace)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .status()
        .context("running cargo to build the plugins")?;
    if !status.success() {
        bail!(
            "building the plugins failed (see above); is the target installed? `rustup target add wasm32-wasip2`"
        );
    }
    eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(workspace.join("target/wasm32-wasip2/release"))
}

/// One example directory: the datasets to seed and the flows to run, in order.
struct Scenario {
    name: String,
    seeds: Vec<Seed>,
    runs: Vec<DemoRun>,
    /// Files that are not runnable here, with why.
    skipped: Vec<(PathBuf, String)>,
}

struct DemoRun {
    flow: Flow,
    /// Variables set as `--var` would, over what the demo sets for the sandbox.
    variables: Vec<(String, String)>,
}

/// An example's `demo.toml`: what the demo runs of it, when the directory's flows in job-chain
/// order are not enough (flows in subdirectories, a flow run once per CRM with a variable,
/// datasets another product would fill).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    seed: Vec<Seed>,
    #[serde(default)]
    run: Vec<ManifestRun>,
}

/// JSON Lines upserted into a dataset before the first run, as `weft dataset import` does.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Seed {
    dataset: String,
    file: PathBuf,
    key: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestRun {
    flow: PathBuf,
    #[serde(default)]
    vars: std::collections::BTreeMap<String, String>,
}

/// Whether the flow is triggered by its vendor's webhooks. The demo runs such a flow by hand,
/// as its initial sync: its read steps on the webhook connection read the upstream instead of
/// taking events (what they do under `weft serve`).
fn webhook_triggered(flow: &Flow) -> bool {
    flow.file
        .trigger
        .as_ref()
        .is_some_and(|t| t.get_ref().webhook.is_some())
}

/// The scenario of `dir`: its `demo.toml` when it has one, else its flow files ordered so that
/// every flow comes after the flows it names in `after`.
fn scenario(dir: &Path) -> anyhow::Result<Option<Scenario>> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest_path = dir.join("demo.toml");
    if manifest_path.exists() {
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let manifest: Manifest = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", manifest_path.display()))?;
        let mut runs = Vec::new();
        let skipped = Vec::new();
        for entry in manifest.run {
            let path = dir.join(&entry.flow);
            let flow = weft_flow::load(&path).map_err(|e| {
                anyhow::anyhow!(
                    "{} names {}, which does not load:\n{e}",
                    manifest_path.display(),
                    path.display()
                )
            })?;
            runs.push(DemoRun {
                flow,
                variables: entry.vars.into_iter().collect(),
            });
        }
        let seeds = manifest
            .seed
            .into_iter()
            .map(|s| Seed {
                file: dir.join(s.file),
                ..s
            })
            .collect();
        return Ok(Some(Scenario {
            name,
            seeds,
            runs,
            skipped,
        }));
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_name().is_some_and(|n| n != "Cargo.toml")
        })
        .collect();
    if paths.is_empty() {
        return Ok(None);
    }
    paths.sort();
    let mut flows = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        match weft_flow::load(&path) {
            Ok(flow) => flows.push(flow),
            Err(e) => skipped.push((path, format!("does not parse:\n{e}"))),
        }
    }
    // Job-chain order: repeatedly take the flows whose predecessors are all placed.
    let mut ordered: Vec<Flow> = Vec::new();
    while !flows.is_empty() {
        let placed: Vec<String> = ordered
            .iter()
            .map(|f| f.file.name.get_ref().to_string())
            .collect();
        let in_dir: Vec<String> = flows
            .iter()
            .map(|f| f.file.name.get_ref().to_string())
            .collect();
        let ready = flows
            .iter()
            .position(|f| {
                f.file.after.iter().all(|a| {
                    placed.contains(&a.get_ref().to_string())
                        || !in_dir.contains(&a.get_ref().to_string())
                })
            })
            .unwrap_or(0);
        ordered.push(flows.remove(ready));
    }
    let runs = ordered
        .into_iter()
        .map(|flow| DemoRun {
            flow,
            variables: Vec::new(),
        })
        .collect();
    Ok(Some(Scenario {
        name,
        seeds: Vec::new(),
        runs,
        skipped,
    }))
}

/// What one scenario did, for the closing table.
#[derive(Default)]
struct Tally {
    runs: usize,
    failed_runs: usize,
    read: u64,
    written: u64,
    rejected: u64,
    requests: usize,
    took: Duration,
}

pub async fn run(data_dir: &Path, args: DemoArgs) -> anyhow::Result<()> {
    let plugin_dir = match args.plugins {
        Some(dir) => dir,
        None => build_plugins()?,
    };
    let examples = args.examples.unwrap_or_else(|| checkout().join("examples"));
    crate::private_data_dir(data_dir)?;

    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .context("starting the sandbox")?;
    println!(
        "sandbox   {} emulators on loopback, admin API at {}",
        sandbox.vendors().count(),
        sandbox.admin_url()
    );
    let variables = sandbox.flow_variables();
    // A tenant of its own each time: the sandbox is new, with new data on new ports, so
    // cursors, datasets and plugin state of an earlier demo (or of the operator's own flows)
    // must not carry over into it.
    let tenant = format!(
        "demo-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    println!("tenant    {tenant} (state of this demo only)");

    let runtime = crate::runtime(data_dir)?;
    let plugins = PluginDirectory::new([plugin_dir]);
    let store = crate::store(data_dir).await?;
    let secrets = Secrets::new(store.clone(), MasterKey::load(data_dir)?);
    // The Salesforce examples sign their JWT with the sandbox's published demo key, which a
    // flow refers to as a secret (a private key is never written into a flow file).
    if let Some(pem) = sandbox
        .vendor(weft_sandbox::Vendor::Salesforce)
        .and_then(|v| v.credentials().extra.get("jwt_private_key_pem").cloned())
    {
        secrets
            .set(
                &tenant,
                "salesforce_sandbox_jwt_key",
                &weft_capabilities::Secret::new(pem),
            )
            .await?;
    }
    // The key the Zendesk webhook's bearer token is derived from: any value the operator
    // chooses; the demo makes one of its own unless there is one.
    if secrets.get(&tenant, "zendesk_webhook_key").await.is_err() {
        let key = MasterKey::generate("the demo's Zendesk webhook key").to_base64();
        secrets
            .set(
                &tenant,
                "zendesk_webhook_key",
                &weft_capabilities::Secret::new(key.as_str()),
            )
            .await?;
    }

    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .with_context(|| format!("reading the examples in {}", examples.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && args.only.as_deref().is_none_or(|o| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains(o))
                })
        })
        .collect();
    dirs.sort();
    let mut tallies: Vec<(String, Tally)> = Vec::new();
    for dir in dirs {
        let Some(scenario) = scenario(&dir)? else {
            continue;
        };
        println!();
        println!("== {} ({} runs)", scenario.name, scenario.runs.len());
        for (path, why) in &scenario.skipped {
            println!("   skipped {}: {why}", shown(path));
        }
        for seed in &scenario.seeds {
            let file = std::fs::File::open(&seed.file)
                .with_context(|| format!("opening {}", seed.file.display()))?;
            let count = crate::dataset::import(
                &store,
                &tenant,
                &seed.dataset,
                &seed.key,
                &seed.file.display().to_string(),
                std::io::BufReader::new(file),
            )
            .await?;
            println!(
                "   seeded dataset {} with {count} records from {}",
                seed.dataset,
                shown(&seed.file)
            );
        }
        let mut tally = Tally::default();
        for DemoRun {
            flow,
            variables: own,
        } in &scenario.runs
        {
            let name = flow.file.name.get_ref().to_string();
            let vars_shown: Vec<String> =
                own.iter().map(|(k, v)| format!(" --var {k}={v}")).collect();
            println!(
                "-- flow {name} ({}{})",
                shown(&flow.path),
                vars_shown.concat()
            );
            if webhook_triggered(flow) {
                println!(
                    "   webhook-triggered: run by hand here, as its initial sync; under `weft serve --public-url` it takes the vendor's events"
                );
            }
            let declared: Vec<String> = flow
                .file
                .variables
                .keys()
                .map(|k| k.get_ref().to_string())
                .collect();
            // The sandbox environment when the flow has one; a flow that only works on weft's
            // datasets has none and runs as it is.
            let environment = flow
                .file
                .environments
                .keys()
                .any(|e| e.get_ref() == "sandbox")
                .then(|| "sandbox".to_string());
            let mut chosen: Vec<(String, String)> = variables
                .iter()
                .filter(|(k, _)| declared.contains(k) && !own.iter().any(|(o, _)| o == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            chosen.extend(own.iter().cloned());
            let options = PlanOptions {
                environment: environment.clone(),
                tenant: tenant.clone(),
                variables: chosen.into_iter().collect(),
            };
            let plan = match weft_engine::plan_with(flow, &options, &plugins, &runtime).await {
                Ok(plan) => plan,
                Err(error) => {
                    eprint!("{error}");
                    tally.runs += 1;
                    tally.failed_runs += 1;
                    continue;
                }
            };
            let before = sandbox.requests(None).len();
            let run_options = RunOptions {
                tenant: tenant.clone(),
                environment,
                ..RunOptions::default()
            };
            let mut progress = crate::run::progress_printer();
            let report =
                weft_engine::run(flow, &plan, &store, &secrets, &run_options, &mut progress)
                    .await?;
            crate::run::print_report(&report)?;
            tally.runs += 1;
            tally.failed_runs += usize::from(!report.status.completed());
            tally.requests += sandbox.requests(None).len().saturating_sub(before);
            tally.took += report.took;
            for step in &report.steps {
                let Some(definition) = flow
                    .steps
                    .iter()
                    .find(|s| s.id.get_ref().as_str() == step.step)
                else {
                    continue;
                };
                match definition.kind {
                    weft_flow::StepKind::Read(_) => tally.read += step.records_out,
                    weft_flow::StepKind::Write(_) => tally.written += step.records_out,
                    _ => {}
                }
                tally.rejected += step.failed;
            }
        }
        tallies.push((scenario.name, tally));
    }

    println!();
    println!(
        "{:<28} {:>5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10}",
        "scenario",
        "runs",
        "failed",
        "read",
        "written",
        "rejected",
        "requests",
        "time",
        "records/s"
    );
    for (name, t) in &tallies {
        let secs = t.took.as_secs_f64();
        println!(
            "{name:<28} {:>5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7.1}s {:>10.0}",
            t.runs,
            t.failed_runs,
            t.read,
            t.written,
            t.rejected,
            t.requests,
            secs,
            t.read as f64 / secs.max(1e-3)
        );
    }
    println!();
    println!("Look further (this demo's tenant is {tenant}):");
    println!(
        "  weft --tenant {tenant} runs list      every run above; then `runs show RUN`, `runs errors RUN`"
    );
    println!(
        "  weft --tenant {tenant} dataset list   what the flows kept; then `dataset show NAME`"
    );
    println!(
        "  weft sandbox                   the emulators on their fixed ports, for `weft run FLOW --env sandbox`"
    );
    sandbox.shutdown().await;
    let failed: usize = tallies.iter().map(|(_, t)| t.failed_runs).sum();
    if tallies.is_empty() {
        bail!("no example flows found in {}", examples.display());
    }
    if failed > 0 {
        bail!("{failed} run(s) failed; see above");
    }
    Ok(())
}
