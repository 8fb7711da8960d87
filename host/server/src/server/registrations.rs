//! Keeping webhook endpoints registered with their vendors, when the server has a public URL:
//! every webhook flow's at start, deployed ones as they come, renewed before they lapse, and
//! unsubscribed when a deployed flow is served no more.

use std::sync::Arc;
use std::time::SystemTime;

use super::{Event, FIRST_REST, ServeError, Server};
use crate::ServedFlow;
use crate::agenda::Followed;
use crate::flows::FlowKey;
use crate::registration::{self, RegistrationError};

impl Server {
    /// Registers every webhook-triggered flow's endpoint with its vendor (or keeps the
    /// registration it has), when the server has a public URL. Call it once the endpoints
    /// listen: a vendor may call them to verify the registration.
    pub async fn register(&mut self) -> Result<(), ServeError> {
        let Some(public_url) = self.public_url.clone() else {
            return Ok(());
        };
        for served in self.shared.flows().iter() {
            if served.webhook().is_some() {
                self.register_one(served, &public_url).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn register_one(
        &mut self,
        served: &ServedFlow,
        public_url: &str,
    ) -> Result<(), RegistrationError> {
        let callback = registration::callback_url(public_url, served.hook_id());
        let made = registration::ensure(
            served,
            &self.shared.store,
            &self.shared.secrets,
            &served.tenant,
            &callback,
        )
        .await?;
        match made.subscription().expires_at {
            Some(at) => self.lapses.insert(served.key().clone(), at),
            None => self.lapses.remove(served.key()),
        };
        (self.report)(&Event::Registered {
            tenant: served.tenant.clone(),
            flow: served.name().to_owned(),
            registration: made,
        });
        Ok(())
    }

    /// Deployed webhook-triggered flows new or deployed again are to be registered with their
    /// vendors, those served no more unsubscribed, when there is a public URL.
    pub(super) fn queue_registrations(&mut self, followed: Followed, now: SystemTime) {
        if self.public_url.is_none() {
            return;
        }
        let deployed_hook = |s: &Arc<ServedFlow>| s.endpoint().is_some() && s.webhook().is_some();
        for served in followed.fresh.iter().filter(|s| deployed_hook(s)) {
            self.retiring.remove(served.key());
            self.unregistered.insert(served.key().clone(), now);
        }
        for served in followed.gone.into_iter().filter(deployed_hook) {
            self.unregistered.remove(served.key());
            self.retiring.insert(served.key().clone(), (served, now));
        }
    }

    /// Registers the endpoints of deployed webhook flows not registered yet (see
    /// [`Server::register`]), and unsubscribes those of deployed flows served no more; one that
    /// fails is tried again after [`FIRST_REST`].
    pub(super) async fn register_deployed(&mut self, now: SystemTime) {
        let Some(public_url) = self.public_url.clone() else {
            return;
        };
        let retire: Vec<FlowKey> = self
            .retiring
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in retire {
            let Some((served, _)) = self.retiring.remove(&key) else {
                continue;
            };
            let (store, secrets) = (&self.shared.store, &self.shared.secrets);
            match registration::remove(&served, store, secrets, &served.tenant).await {
                Ok(_) => {
                    self.lapses.remove(&key);
                }
                Err(e) => {
                    tracing::error!(tenant = %served.tenant, flow = %served.name(), error = %e, "unsubscribing the webhook of a flow served no more failed; trying again later");
                    self.retiring.insert(key, (served, now + FIRST_REST));
                }
            }
        }
        let ready: Vec<FlowKey> = self
            .unregistered
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for key in ready {
            let Some(served) = self.agenda.served(&key).cloned() else {
                // Not served any more.
                self.unregistered.remove(&key);
                continue;
            };
            match self.register_one(&served, &public_url).await {
                Ok(()) => {
                    self.unregistered.remove(&key);
                }
                Err(e) => {
                    tracing::error!(tenant = %served.tenant, flow = %served.name(), error = %e, "registering the webhook endpoint failed; trying again later");
                    let retry_at = now + FIRST_REST;
                    self.unregistered.insert(key, retry_at);
                    (self.report)(&Event::Deferred {
                        tenant: served.tenant.clone(),
                        flow: served.name().to_owned(),
                        error: format!("registering its webhook endpoint failed: {e}"),
                        retry_at,
                    });
                }
            }
        }
    }

    /// Renews the registrations that lapse within [`registration::RENEW_BEFORE`] of `now` (a
    /// look at the registrations that lapse, not at every flow); one that fails is tried again
    /// next turn (it has not lapsed yet).
    pub(super) async fn renew(&mut self, now: SystemTime) {
        let Some(public_url) = self.public_url.clone() else {
            return;
        };
        let due: Vec<Arc<ServedFlow>> = self
            .lapses
            .iter()
            .filter(|(_, lapses)| **lapses <= now + registration::RENEW_BEFORE)
            .filter_map(|(key, _)| self.agenda.served(key).cloned())
            .collect();
        for served in due {
            if let Err(e) = self.register_one(&served, &public_url).await {
                let flow = served.name();
                tracing::error!(flow = %flow, error = %e, "renewing the webhook registration failed");
            }
        }
    }
}
