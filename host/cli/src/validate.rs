//! `weft validate FLOW`: everything that can be checked without running anything.
//!
//! The file itself (syntax, unknown keys, names, references, cycles, one-of choices), then the
//! flow bound to its plugins (streams, sync and write modes, auth kinds, field references
//! through each transform's output schema), then the secrets and environment variables it needs.

use std::path::Path;

use anyhow::bail;
use weft_capabilities::SecretRef;
use weft_engine::{PlanOptions, PluginDirectory};

pub async fn run(
    data_dir: &Path,
    file: &Path,
    options: &PlanOptions,
    plugins: &PluginDirectory,
) -> anyhow::Result<()> {
    let tenant = options.tenant.as_str();
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
    let plan = match weft_engine::plan_with(&flow, options, plugins, &runtime).await {
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
    // What the connections of the chosen environment use: an environment that replaces a
    // connection's auth does not need the production secrets.
    let mut missing = Vec::new();
    let known: Vec<String> = crate::store(data_dir)
        .await?
        .secret_list(tenant)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for bound in plan.connections.values() {
        let refs = bound
            .spec
            .auth
            .references()
            .into_iter()
            .chain(bound.spec.webhook_secret.as_ref());
        for reference in refs {
            match reference {
                SecretRef::Stored(name)
                    if !known.contains(name) && seen.insert(("secret", name.clone())) =>
                {
                    missing.push(format!("secret `{name}` (connection `{}`) is not set for tenant `{tenant}`: `weft secret set {name}`", bound.spec.name));
                }
                SecretRef::Env(name)
                    if std::env::var_os(name).is_none() && seen.insert(("env", name.clone())) =>
                {
                    missing.push(format!(
                        "environment variable `{name}` (connection `{}`) is not set",
                        bound.spec.name
                    ));
                }
                _ => {}
            }
        }
    }
    let f = &flow.file;
    out!(
        "flow `{}`: {} steps in order {}",
        f.name.get_ref(),
        flow.order.len(),
        flow.order
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" -> ")
    )?;
    out!(
        "connections: {}",
        f.connections
            .keys()
            .map(|k| k.get_ref().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    for (name, bound) in &plan.connections {
        out!("  {name} ({}) reaches:", bound.plugin.info().name)?;
        put!("{}", crate::hosts::describe(&bound.spec))?;
    }
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("missing: {m}");
        }
        bail!(
            "{} needs {} value(s) that are not set",
            file.display(),
            missing.len()
        );
    }
    out!("ok")?;
    Ok(())
}
