//! `weft tenant`: the operator's tenants and API tokens, on the local store (what the API's
//! operator routes do, without a server). A token is printed once, when made; the store keeps
//! only its hash.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;
use weft_api::Api;
use weft_capabilities::{MasterKey, Secrets};
use weft_server::{TenantPlugins, TenantPolicy};
use weft_store::{TenantStatus, TokenHolder};

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Make a tenant and print its first API token (shown this once).
    Create { name: String },
    /// Every tenant, with its status.
    List,
    /// Stop running a tenant's flows and refuse its tokens; nothing is deleted.
    Suspend { name: String },
    /// Serve a suspended tenant again.
    Resume { name: String },
    /// Delete a tenant and everything it owns: flows, runs, error logs, cursors, datasets,
    /// secrets, plugin state, webhook events, tokens. Its flows' webhook registrations are
    /// removed at their vendors first; when one cannot be, nothing is deleted.
    Delete {
        name: String,
        /// Yes, delete all of it.
        #[arg(long)]
        yes: bool,
        /// Delete even when a webhook registration at a vendor cannot be removed (it is left
        /// registered there).
        #[arg(long)]
        force: bool,
        /// Where the flows' plugins are, as `weft serve --plugins` was given (repeatable): the
        /// registrations are removed by the plugins that made them.
        #[arg(long = "plugins")]
        plugin_dirs: Vec<std::path::PathBuf>,
        /// As `weft serve --tenant-private-egress`: the tenant's flows may reach private
        /// addresses (their vendor is a local sandbox).
        #[arg(long)]
        tenant_private_egress: bool,
    },
    /// Make another API token for a tenant (to rotate: make one, then revoke the old).
    Token { name: String },
    /// A tenant's tokens (ids and dates, never the tokens).
    Tokens { name: String },
    /// Revoke one of a tenant's tokens by id, or all of them.
    Revoke {
        name: String,
        /// The token's id (`tok_...`), as `weft tenant tokens` lists it.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// A tenant's own quotas: list them, or set `NAME=VALUE` (`NAME=default` puts one back to
    /// the server's `--quota`).
    Quota {
        name: String,
        #[arg(value_name = "QUOTA=VALUE")]
        set: Vec<String>,
    },
    /// Make an operator token, for the API's tenant routes (`/api/v1/tenants`).
    OperatorToken,
}

pub async fn run(data_dir: &Path, command: TenantCommand) -> anyhow::Result<()> {
    let store = crate::store(data_dir).await?;
    let exists = |name: &str, found: bool| -> anyhow::Result<()> {
        if found {
            Ok(())
        } else {
            bail!("no tenant `{name}` (see `weft tenant list`)")
        }
    };
    match command {
        TenantCommand::Create { name } => {
            if !store.tenant_create(&name).await? {
                bail!("tenant `{name}` exists already (a new token: `weft tenant token {name}`)");
            }
            let token = weft_api::issue_token(&store, &TokenHolder::Tenant(name.clone())).await?;
            eprintln!(
                "created tenant `{name}`; its API token ({}) is shown this once:",
                token.id
            );
            out!("{}", token.token)?;
        }
        TenantCommand::List => {
            for t in store.tenant_list().await? {
                let since = humantime::format_rfc3339_seconds(t.created_at);
                out!("{}\t{}\tsince {since}", t.name, t.status.as_str())?;
            }
        }
        TenantCommand::Suspend { name } => {
            exists(
                &name,
                store
                    .tenant_set_status(&name, TenantStatus::Suspended)
                    .await?,
            )?;
            eprintln!(
                "suspended tenant `{name}`: its flows stop after the runs under way, its tokens are refused"
            );
        }
        TenantCommand::Resume { name } => {
            exists(
                &name,
                store.tenant_set_status(&name, TenantStatus::Active).await?,
            )?;
            eprintln!("resumed tenant `{name}`");
        }
        TenantCommand::Delete {
            name,
            yes,
            force,
            plugin_dirs,
            tenant_private_egress,
        } => {
            if !yes {
                bail!("deleting tenant `{name}` deletes everything it owns; say `--yes` to do it");
            }
            exists(&name, store.tenant_get(&name).await?.is_some())?;
            // What the API's delete does: the same registrations removed, the same refusal.
            let secrets = Secrets::new(store.clone(), MasterKey::load(data_dir)?);
            let api = Api::new(
                store.clone(),
                secrets,
                crate::plugin_directory(data_dir, plugin_dirs),
                TenantPlugins::new(store.clone(), data_dir.join("tenant-plugins")),
                crate::runtime(data_dir)?,
            )
            .with_policy(TenantPolicy {
                allow_private_egress: tenant_private_egress,
            });
            if let Err(e) = api.delete_tenant(&name, force).await {
                bail!("{}", e.into_message());
            }
            eprintln!("deleted tenant `{name}` and everything it owned");
        }
        TenantCommand::Token { name } => {
            exists(&name, store.tenant_get(&name).await?.is_some())?;
            let token = weft_api::issue_token(&store, &TokenHolder::Tenant(name.clone())).await?;
            eprintln!(
                "a new API token for tenant `{name}` ({}), shown this once:",
                token.id
            );
            out!("{}", token.token)?;
        }
        TenantCommand::Tokens { name } => {
            exists(&name, store.tenant_get(&name).await?.is_some())?;
            for t in store.api_token_list(&TokenHolder::Tenant(name)).await? {
                let made = humantime::format_rfc3339_seconds(t.created_at);
                let state = t.revoked_at.map_or_else(
                    || "active".to_owned(),
                    |at| format!("revoked {}", humantime::format_rfc3339_seconds(at)),
                );
                out!("{}\tmade {made}\t{state}", t.id)?;
            }
        }
        TenantCommand::Revoke { name, id, all } => {
            let holder = TokenHolder::Tenant(name.clone());
            let id = if all { None } else { id.as_deref() };
            let revoked = store.api_token_revoke(&holder, id).await?;
            if revoked == 0 {
                bail!(
                    "tenant `{name}` has no such unrevoked token (see `weft tenant tokens {name}`)"
                );
            }
            eprintln!("revoked {revoked} token(s) of tenant `{name}`");
        }
        TenantCommand::Quota { name, set } => {
            exists(&name, store.tenant_get(&name).await?.is_some())?;
            for setting in &set {
                let (quota, value) = match setting.strip_suffix("=default") {
                    Some(quota) => (quota, None),
                    None => {
                        let (quota, value) = weft_server::Quotas::parse_setting(setting)
                            .map_err(|e| anyhow::anyhow!(e))?;
                        (quota.name(), Some(value))
                    }
                };
                if weft_server::Quota::parse(quota).is_none() {
                    bail!("no quota `{quota}`");
                }
                store.quota_set(&name, quota, value).await?;
            }
            for (quota, value) in store.quotas(&name).await? {
                out!("{quota}\t{value}")?;
            }
        }
        TenantCommand::OperatorToken => {
            let token = weft_api::issue_token(&store, &TokenHolder::Operator).await?;
            eprintln!("an operator token ({}), shown this once:", token.id);
            out!("{}", token.token)?;
        }
    }
    Ok(())
}
