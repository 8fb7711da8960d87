//! `weft webhook`: the registrations `weft serve --public-url URL` made with vendors (see
//! `weft_server::registration`). `list` shows them; `remove` unsubscribes a flow and forgets it.

use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Subcommand;
use weft_capabilities::{MasterKey, Secrets};
use weft_server::ServedFlow;

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// The webhook registrations `weft serve --public-url` made, per flow.
    List,
    /// Unsubscribes a flow's webhook at its vendor and forgets the registration.
    Remove(crate::FlowArgs),
}

fn when(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub async fn run(
    data_dir: &std::path::Path,
    tenant: &str,
    command: WebhookCommand,
) -> anyhow::Result<()> {
    let store = crate::store(data_dir).await?;
    match command {
        WebhookCommand::List => {
            let subscriptions = store.subscriptions(tenant, None).await?;
            if subscriptions.is_empty() {
                eprintln!(
                    "no webhook registrations for tenant `{tenant}`; `weft serve --public-url URL` makes them"
                );
            }
            for s in subscriptions {
                let events = if s.events.is_empty() {
                    "all events".to_string()
                } else {
                    s.events.join(",")
                };
                let expires = s
                    .expires_at
                    .map(when)
                    .unwrap_or_else(|| "does not expire".into());
                out!(
                    "{}\t{}\t{}\t{}\t{events}\tsince {}\t{expires}",
                    s.flow,
                    s.connection,
                    s.subscription_id,
                    s.callback_url,
                    when(s.created_at)
                )?;
            }
        }
        WebhookCommand::Remove(args) => {
            let (file, plugins, options) = args.plan(data_dir, tenant).await?;
            let flow = weft_flow::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let runtime = crate::runtime(data_dir)?;
            let plan = weft_engine::plan_with(&flow, &options, &plugins, &runtime)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let secrets = Secrets::new(
                store.clone(),
                MasterKey::load(data_dir).context("loading the master key")?,
            );
            let served = ServedFlow::new(tenant, flow, plan);
            let name = served.name();
            if weft_server::registration::remove(&served, &store, &secrets, tenant).await? {
                eprintln!("unsubscribed the webhook of flow `{name}`");
            } else {
                bail!("flow `{name}` has no webhook registration (see `weft webhook list`)");
            }
        }
    }
    Ok(())
}
