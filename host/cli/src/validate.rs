//! `weft validate FLOW`: everything that can be checked without running anything.
//!
//! The file itself (syntax, unknown keys, names, references, cycles, one-of choices), then the
//! flow bound to its plugins (streams, sync and write modes, auth kinds, field references
//! through each transform's output schema), then the secrets and environment variables it needs.

use std::path::Path;

use anyhow::bail;
use weft_engine::{PlanOptions, PluginDirectory};

pub async fn run(data_dir: &Path, file: &Path, options: &PlanOptions, plugins: &PluginDirectory) -> anyhow::Result<()> {
    let tenant = options.tenant.as_str();
    let flow = match weft_flow::load(file) {
        Ok(flow) => flow,
        Err(error) => {
            eprint!("{error}");
            bail!("{} has {} problem(s)", file.display(), error.diagnostics.len());
        }
    };
    let runtime = crate::runtime(data_dir)?;
    if let Err(error) = weft_engine::plan_with(&flow, options, plugins, &runtime).await {
        eprint!("{error}");
        bail!("{} has {} problem(s) with its plugins", file.display(), error.diagnostics.len());
    }
    let mut missing = Vec::new();
    let known: Vec<String> = crate::store(data_dir).await?.secret_list(tenant).await?.into_iter().map(|e| e.name).collect();
    for (name, _) in &flow.references.secrets {
        if !known.contains(name) {
            missing.push(format!("secret `{name}` is not set for tenant `{tenant}`: `weft secret set {name}`"));
        }
    }
    for (name, _) in &flow.references.env {
        if std::env::var_os(name).is_none() {
            missing.push(format!("environment variable `{name}` is not set"));
        }
    }
    let f = &flow.file;
    println!("flow `{}`: {} steps in order {}", f.name.get_ref(), flow.order.len(), flow.order.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" -> "));
    println!("connections: {}", f.connections.keys().map(|k| k.get_ref().to_string()).collect::<Vec<_>>().join(", "));
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("missing: {m}");
        }
        bail!("{} needs {} value(s) that are not set", file.display(), missing.len());
    }
    println!("ok");
    Ok(())
}
