//! Webhook registrations with vendors. A server with a public URL registers each
//! webhook-triggered flow's endpoint (`URL/hooks/{flow}`) with the vendor through the
//! connector's `subscribe`, for the trigger's events, and keeps the registration in the store: a
//! restart with the same URL and events registers nothing again, a changed one replaces it, and
//! one the vendor expires is renewed before it lapses.

use std::time::{Duration, SystemTime};

use weft_capabilities::{ConnectionError, Secrets};
use weft_runtime::CallError;
use weft_store::{Store, StoreError, WebhookSubscription};

use crate::ServedFlow;

/// A registration the vendor expires is renewed this long before it does.
pub const RENEW_BEFORE: Duration = Duration::from_secs(3_600);

/// Why a registration could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("flow `{flow}` has no webhook trigger")]
    NoTrigger { flow: String },
    #[error("the webhook connection `{connection}` of flow `{flow}` is not a connector")]
    NotAConnector { flow: String, connection: String },
    #[error(
        "flow `{flow}` was registered through connection `{connection}`, which it no longer has"
    )]
    ConnectionGone { flow: String, connection: String },
    #[error("the credential of connection `{connection}` of flow `{flow}`: {source}")]
    Credential {
        flow: String,
        connection: String,
        source: ConnectionError,
    },
    #[error(
        "registering the webhook of flow `{flow}` at {callback} through connection `{connection}`: {source}"
    )]
    Subscribe {
        flow: String,
        callback: String,
        connection: String,
        source: CallError,
    },
    #[error("unsubscribing {subscription} of flow `{flow}`: {source}")]
    Unsubscribe {
        flow: String,
        subscription: String,
        source: CallError,
    },
    #[error("the state database failed: {0}")]
    Store(#[from] StoreError),
}

/// Where the vendor delivers a flow's events, under the server's public URL: `hook` is what
/// its endpoint is reached by ([`ServedFlow::hook_id`](crate::ServedFlow::hook_id)).
pub fn callback_url(public_url: &str, hook: &str) -> String {
    format!("{}/hooks/{hook}", public_url.trim_end_matches('/'))
}

/// What [`ensure`] did.
#[derive(Debug, Clone)]
pub enum Registration {
    /// The stored registration still holds.
    Kept(WebhookSubscription),
    /// A new one was made (replacing the stored one, if any).
    Made(WebhookSubscription),
}

impl Registration {
    pub fn subscription(&self) -> &WebhookSubscription {
        match self {
            Registration::Kept(s) | Registration::Made(s) => s,
        }
    }
}

/// Makes sure the vendor delivers the flow's trigger events to `callback`: keeps the stored
/// registration when it is for the same URL, connection and events and does not lapse within
/// [`RENEW_BEFORE`]; otherwise unsubscribes it (a vendor that already dropped it is fine) and
/// subscribes anew.
pub async fn ensure(
    served: &ServedFlow,
    store: &Store,
    secrets: &Secrets,
    tenant: &str,
    callback: &str,
) -> Result<Registration, RegistrationError> {
    let flow = served.name().to_owned();
    let Some((connection, events)) = served.webhook() else {
        return Err(RegistrationError::NoTrigger { flow });
    };
    let Some(bound) = served.plan.connections.get(connection) else {
        return Err(RegistrationError::NotAConnector {
            flow,
            connection: connection.to_owned(),
        });
    };
    let stored = store
        .subscriptions(tenant, Some(&flow))
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
    let context =
        bound
            .context(secrets, tenant, &flow)
            .map_err(|source| RegistrationError::Credential {
                flow: flow.clone(),
                connection: connection.to_owned(),
                source,
            })?;
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
        tracing::warn!(flow = %flow, subscription = %old.subscription_id, error = %e, "could not remove the old webhook registration; registering anew anyway");
    }
    let made = bound
        .plugin
        .subscribe(
            &context,
            connection,
            &bound.config,
            callback,
            events.to_vec(),
        )
        .await
        .map_err(|source| RegistrationError::Subscribe {
            flow: flow.clone(),
            callback: callback.to_owned(),
            connection: connection.to_owned(),
            source,
        })?;
    let expires_at = made.expires_at.as_deref().and_then(|at| match humantime::parse_rfc3339_weak(at) {
        Ok(t) => Some(t),
        Err(_) => {
            tracing::warn!(flow = %flow, expires_at = %at, "the vendor's expiry is not RFC 3339; the registration will not be renewed");
            None
        }
    });
    let subscription = WebhookSubscription {
        flow,
        connection: connection.to_owned(),
        subscription_id: made.id,
        callback_url: callback.to_owned(),
        events: events.to_vec(),
        expires_at,
        created_at: SystemTime::now(),
    };
    store.subscription_put(tenant, &subscription).await?;
    Ok(Registration::Made(subscription))
}

/// Unsubscribes the flow at its vendor and forgets the registration; `false` when there was
/// none.
pub async fn remove(
    served: &ServedFlow,
    store: &Store,
    secrets: &Secrets,
    tenant: &str,
) -> Result<bool, RegistrationError> {
    let flow = served.name().to_owned();
    let Some(stored) = store
        .subscriptions(tenant, Some(&flow))
        .await?
        .into_iter()
        .next()
    else {
        return Ok(false);
    };
    let Some(bound) = served.plan.connections.get(&stored.connection) else {
        return Err(RegistrationError::ConnectionGone {
            flow,
            connection: stored.connection,
        });
    };
    let context =
        bound
            .context(secrets, tenant, &flow)
            .map_err(|source| RegistrationError::Credential {
                flow: flow.clone(),
                connection: stored.connection.clone(),
                source,
            })?;
    bound
        .plugin
        .unsubscribe(
            &context,
            &stored.connection,
            &bound.config,
            &stored.subscription_id,
        )
        .await
        .map_err(|source| RegistrationError::Unsubscribe {
            flow: flow.clone(),
            subscription: stored.subscription_id.clone(),
            source,
        })?;
    store.subscription_delete(tenant, &flow).await?;
    Ok(true)
}
