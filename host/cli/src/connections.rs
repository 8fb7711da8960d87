//! `weft connections FLOW`: the status of each of a flow's connections, as an operator checks a
//! CRM connection: whether the connector's `check` passes with the credential (reachable, token
//! accepted), which credential kind it uses, and when its current token expires. weft renews
//! tokens itself before they expire; a failing check says what to fix.

use std::path::Path;
use std::time::SystemTime;

use anyhow::bail;
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::{PlanOptions, TokenState, check_connections};

fn token(state: &TokenState) -> String {
    match state {
        TokenState::Expires(at) => expiry(*at),
        TokenState::NoLifetime => "token with no stated lifetime (e.g. a Salesforce session); weft gets a new one when it is refused".into(),
        TokenState::Missing(why) => format!("no token: {why}"),
        TokenState::Static => "static credential, no expiry".into(),
        TokenState::Datasets => "weft's own store".into(),
    }
}

fn expiry(at: SystemTime) -> String {
    let left = at
        .duration_since(SystemTime::now())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (hours, minutes) = (left / 3_600, left % 3_600 / 60);
    let left = if hours > 0 {
        format!("{hours} h {minutes} min")
    } else {
        format!("{minutes} min")
    };
    format!(
        "expires {} (in {left}); weft renews it before then",
        humantime::format_rfc3339_seconds(at)
    )
}

pub async fn run(
    data_dir: &Path,
    file: &Path,
    options: &PlanOptions,
    plugins: &weft_engine::PluginDirectory,
) -> anyhow::Result<()> {
    let flow = weft_flow::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = crate::runtime(data_dir)?;
    let plan = weft_engine::plan_with(&flow, options, plugins, &runtime)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = crate::store(data_dir).await?;
    let secrets = Secrets::new(store, MasterKey::load(data_dir)?);
    let name = flow.file.name.get_ref().to_string();
    let rows = check_connections(&plan, &secrets, &options.tenant, &name).await?;
    out!(
        "{:<20} {:<16} {:<28} {:<7} token",
        "connection",
        "plugin",
        "auth",
        "status"
    )?;
    let mut failed = 0;
    for row in &rows {
        let status = if row.check.is_ok() { "ok" } else { "failed" };
        out!(
            "{:<20} {:<16} {:<28} {:<7} {}",
            row.name,
            row.plugin,
            row.auth,
            status,
            token(&row.token)
        )?;
        if let Err(e) = &row.check {
            failed += 1;
            out!("  {e}")?;
        }
        if let Some(bound) = plan.connections.get(&row.name) {
            out!("  reaches:")?;
            put!("{}", crate::hosts::describe(&bound.spec))?;
        }
    }
    if failed > 0 {
        bail!("{failed} connection(s) of flow `{name}` failed their check");
    }
    Ok(())
}
