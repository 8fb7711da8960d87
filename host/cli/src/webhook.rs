//! Webhook registrations with vendors. `weft serve --public-url URL` registers each
//! webhook-triggered flow's endpoint (`URL/hooks/{flow}`) with the vendor through the connector's
//! `subscribe`, for the trigger's events, and keeps the registration in the store: a restart with
//! the same URL and events registers nothing again, a changed one replaces it, and one the vendor
//! expires is renewed before it lapses. `weft webhook list` shows them; `weft webhook remove`
//! unsubscribes a flow and forgets it.

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Subcommand;
use weft_capabilities::{Connection, Connections, MasterKey, Secrets};
use weft_engine::{BoundConnection, Plan};
use weft_flow::Flow;
use weft_runtime::CallContext;
use weft_store::{Store, WebhookSubscription};

/// A registration the vendor expires is renewed this long before it does.
pub const RENEW_BEFORE: Duration = Duration::from_secs(3_600);

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// The webhook registrations `weft serve --public-url` made, per flow.
    List,
    /// Unsubscribes a flow's webhook at its vendor and forgets the registration.
    Remove(crate::FlowArgs),
}

/// The flow's webhook connection and the events its trigger asks for.
pub fn trigger(flow: &Flow) -> Option<(String, Vec<String>)> {
    let webhook = flow
        .file
        .trigger
        .as_ref()?
        .get_ref()
        .webhook
        .as_ref()?
        .get_ref();
    Some((
        webhook.connection.get_ref().to_string(),
        webhook.events.clone(),
    ))
}

/// Where the vendor delivers a flow's events, under the public URL of `weft serve`.
pub fn callback_url(public_url: &str, flow: &str) -> String {
    format!("{}/hooks/{flow}", public_url.trim_end_matches('/'))
}

/// A context for calling the plugin of `bound` outside a run: its connection, with its
/// credential, for `flow`.
pub fn call_context(
    bound: &BoundConnection,
    secrets: &Secrets,
    tenant: &str,
    flow: &str,
) -> anyhow::Result<CallContext> {
    let mut connections = Connections::new();
    connections.insert(Connection::new(bound.spec.clone(), secrets.clone())?);
    Ok(CallContext::new(tenant.to_owned())
        .with_connections(connections)
        .in_flow(flow.to_owned()))
}

/// What [`ensure`] did.
pub enum Registration {
    /// The stored registration still holds.
    Kept(WebhookSubscription),
    /// A new one was made (replacing the stored one, if any).
    Made(WebhookSubscription),
}

/// Makes sure the vendor delivers `flow`'s trigger events to `callback`: keeps the stored
/// registration when it is for the same URL, connection and events and does not lapse within
/// [`RENEW_BEFORE`]; otherwise unsubscribes it (a vendor that already dropped it is fine) and
/// subscribes anew.
pub async fn ensure(
    flow: &Flow,
    plan: &Plan,
    store: &Store,
    secrets: &Secrets,
    tenant: &str,
    callback: &str,
) -> anyhow::Result<Registration> {
    let name = flow.file.name.get_ref().to_string();
    let Some((connection, events)) = trigger(flow) else {
        bail!("flow `{name}` has no webhook trigger")
    };
    let bound = plan.connections.get(&connection).with_context(|| {
        format!("the webhook connection `{connection}` of flow `{name}` is not a connector")
    })?;
    let stored = store
        .subscriptions(tenant, Some(&name))
        .await?
        .into_iter()
        .next();
    if let Some(s) = &stored {
        let lapses = s
            .expires_at
            .is_some_and(|at| at <= SystemTime::now() + RENEW_BEFORE);
        if s.callback_url == callback && s.connection == connection && s.events == events && !lapses
        {
            return Ok(Registration::Kept(s.clone()));
        }
    }
    let context = call_context(bound, secrets, tenant, &name)?;
    if let Some(old) = &stored
        && let Err(e) = bound
            .plugin
            .unsubscribe(
                &context,
                &old.connection,
                &bound.config,
                &old.subscription_id,
            )
            .await
    {
        tracing::warn!(flow = %name, subscription = %old.subscription_id, error = %e, "could not remove the old webhook registration; registering anew anyway");
    }
    let made = bound
        .plugin
        .subscribe(&context, &connection, &bound.config, callback, events.clone())
        .await
        .with_context(|| format!("registering the webhook of flow `{name}` at {callback} through connection `{connection}`"))?;
    let expires_at = made.expires_at.as_deref().and_then(|at| match humantime::parse_rfc3339_weak(at) {
        Ok(t) => Some(t),
        Err(_) => {
            tracing::warn!(flow = %name, expires_at = %at, "the vendor's expiry is not RFC 3339; the registration will not be renewed");
            None
        }
    });
    let subscription = WebhookSubscription {
        flow: name,
        connection,
        subscription_id: made.id,
        callback_url: callback.to_owned(),
        events,
        expires_at,
        created_at: SystemTime::now(),
    };
    store.subscription_put(tenant, &subscription).await?;
    Ok(Registration::Made(subscription))
}

/// Unsubscribes `flow` at its vendor and forgets the registration; `false` when there was none.
pub async fn remove(
    flow: &Flow,
    plan: &Plan,
    store: &Store,
    secrets: &Secrets,
    tenant: &str,
) -> anyhow::Result<bool> {
    let name = flow.file.name.get_ref().to_string();
    let Some(stored) = store
        .subscriptions(tenant, Some(&name))
        .await?
        .into_iter()
        .next()
    else {
        return Ok(false);
    };
    let bound = plan.connections.get(&stored.connection).with_context(|| {
        format!(
            "flow `{name}` was registered through connection `{}`, which it no longer has",
            stored.connection
        )
    })?;
    let context = call_context(bound, secrets, tenant, &name)?;
    bound
        .plugin
        .unsubscribe(
            &context,
            &stored.connection,
            &bound.config,
            &stored.subscription_id,
        )
        .await
        .with_context(|| format!("unsubscribing {} of flow `{name}`", stored.subscription_id))?;
    store.subscription_delete(tenant, &name).await?;
    Ok(true)
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
                println!(
                    "{}\t{}\t{}\t{}\t{events}\tsince {}\t{expires}",
                    s.flow,
                    s.connection,
                    s.subscription_id,
                    s.callback_url,
                    when(s.created_at)
                );
            }
        }
        WebhookCommand::Remove(args) => {
            let (file, plugins, options) = args.plan(data_dir, tenant);
            let flow = weft_flow::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let runtime = crate::runtime(data_dir)?;
            let plan = weft_engine::plan_with(&flow, &options, &plugins, &runtime)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let secrets = Secrets::new(
                store.clone(),
                MasterKey::load(data_dir).context("loading the master key")?,
            );
            let name = flow.file.name.get_ref().to_string();
            if remove(&flow, &plan, &store, &secrets, tenant).await? {
                eprintln!("unsubscribed the webhook of flow `{name}`");
            } else {
                bail!("flow `{name}` has no webhook registration (see `weft webhook list`)");
            }
        }
    }
    Ok(())
}
