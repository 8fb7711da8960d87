//! How a plan's connections stand, as an operator checks a CRM connection: whether the
//! connector's `check` passes with the credential (reachable, token accepted), which credential
//! kind it uses, and when its current token expires (weft renews tokens itself before then).
//! `weft connections FLOW` prints it; the API answers it for a deployed flow.

use std::time::SystemTime;

use weft_capabilities::{ConnectionError, Secrets};

use crate::plan::Plan;

/// One connection of a plan, checked.
#[derive(Debug)]
pub struct ConnectionStatus {
    /// The connection's name in the flow.
    pub name: String,
    /// The plugin behind it (`dataset` for weft's own datasets).
    pub plugin: String,
    /// The credential kind: `none`, `api-key`, `oauth2-refresh`, ...
    pub auth: &'static str,
    /// What the connector's check said: fine, or why not.
    pub check: Result<(), String>,
    pub token: TokenState,
}

/// Where a connection's token stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// A renewable token that expires then.
    Expires(SystemTime),
    /// A renewable token the vendor states no lifetime for (e.g. a Salesforce session): a new
    /// one is fetched when it is refused.
    NoLifetime,
    /// A renewable credential that could not get a token, with why.
    Missing(String),
    /// A static credential (or none): nothing expires.
    Static,
    /// weft's own store.
    Datasets,
}

/// Checks every connection of `plan` of `flow` for `tenant`: each connector's `check` is
/// called with its credential, and each renewable credential asked for its token.
pub async fn check_connections(
    plan: &Plan,
    secrets: &Secrets,
    tenant: &str,
    flow: &str,
) -> Result<Vec<ConnectionStatus>, ConnectionError> {
    let mut rows = Vec::new();
    for (connection, bound) in &plan.connections {
        let context = bound.context(secrets, tenant, flow)?;
        let check = bound
            .plugin
            .check(&context, connection, &bound.config)
            .await
            .map_err(|e| e.to_string());
        let token = match context.connections.get(connection) {
            Some(c) if bound.spec.auth.is_renewable() => match c.token_expiry().await {
                Ok(Some(at)) => TokenState::Expires(at),
                Ok(None) => TokenState::NoLifetime,
                Err(e) => TokenState::Missing(e.to_string()),
            },
            _ => TokenState::Static,
        };
        rows.push(ConnectionStatus {
            name: connection.clone(),
            plugin: bound.plugin.info().name.clone(),
            auth: bound.spec.auth.kind(),
            check,
            token,
        });
    }
    for dataset in &plan.datasets {
        rows.push(ConnectionStatus {
            name: dataset.clone(),
            plugin: "dataset".into(),
            auth: "none",
            check: Ok(()),
            token: TokenState::Datasets,
        });
    }
    Ok(rows)
}
