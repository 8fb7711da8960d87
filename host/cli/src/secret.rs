//! `weft secret`: secrets sealed in the store with the master key, referred to by flows as
//! `secret:NAME`. Values come from standard input, never from the command line (where shell
//! history and `ps` would see them).

use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use tokio::io::AsyncReadExt;
use weft_capabilities::{MasterKey, Secret, Secrets};

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Store a secret; the value is read from standard input (a trailing newline is dropped).
    Set { name: String },
    /// List secret names and when they changed (never their values).
    List,
    /// Delete a secret.
    Rm { name: String },
}

/// A value read from standard input without its trailing newline.
pub fn trimmed(value: &str) -> &str {
    value
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(value)
}

async fn open(data_dir: &Path) -> anyhow::Result<Secrets> {
    crate::private_data_dir(data_dir)?;
    let store = crate::store(data_dir).await?;
    let key = MasterKey::load(data_dir).context("loading the master key")?;
    Ok(Secrets::new(store, key))
}

pub async fn run(data_dir: &Path, tenant: &str, command: SecretCommand) -> anyhow::Result<()> {
    let secrets = open(data_dir).await?;
    match command {
        SecretCommand::Set { name } => {
            let mut value = String::new();
            tokio::io::stdin()
                .read_to_string(&mut value)
                .await
                .context("reading the secret from standard input")?;
            let value = trimmed(&value);
            if value.is_empty() {
                bail!(
                    "no value on standard input; pipe it in, e.g. `printf %s \"$TOKEN\" | weft secret set {name}`"
                );
            }
            secrets
                .set(tenant, &name, &Secret::new(value))
                .await
                .with_context(|| format!("storing secret `{name}`"))?;
            eprintln!(
                "stored secret `{name}` for tenant `{tenant}`; refer to it as \"secret:{name}\""
            );
        }
        SecretCommand::List => {
            let entries = secrets.list(tenant).await.context("listing secrets")?;
            if entries.is_empty() {
                eprintln!("no secrets for tenant `{tenant}`; add one with `weft secret set NAME`");
            }
            for entry in entries {
                out!(
                    "{}\t{}",
                    entry.name,
                    humantime::format_rfc3339_seconds(entry.updated_at)
                )?;
            }
        }
        SecretCommand::Rm { name } => {
            if !secrets
                .delete(tenant, &name)
                .await
                .with_context(|| format!("deleting secret `{name}`"))?
            {
                bail!("there is no secret `{name}` for tenant `{tenant}` (see `weft secret list`)");
            }
            eprintln!("deleted secret `{name}`");
        }
    }
    Ok(())
}
