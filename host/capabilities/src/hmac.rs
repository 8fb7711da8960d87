//! Webhook signature support without handing plugins the webhook secret.
//!
//! Upstreams sign webhook deliveries with a shared secret (Zendesk: HMAC-SHA256, some older
//! services HMAC-SHA1). The plugin knows how the signed message is assembled; the host holds the
//! secret. So the plugin asks the host for the MAC of a message it built, or to verify one.

use ring::hmac;

use crate::connection::Connection;
use crate::secrets::SecretError;

/// The MAC algorithms a webhook may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    /// HMAC-SHA1, for services that still sign with it.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
}

impl HmacAlgorithm {
    fn ring(self) -> hmac::Algorithm {
        match self {
            HmacAlgorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            HmacAlgorithm::Sha256 => hmac::HMAC_SHA256,
        }
    }
}

/// Why no MAC was computed. Each names the connection and says what an operator can do; only
/// [`MacError::is_host_fault`] ones are the host's own failure rather than the configuration's.
#[derive(Debug, thiserror::Error)]
pub enum MacError {
    /// The connection has no webhook secret configured.
    #[error(
        "connection {connection:?} has no webhook secret; set webhook_secret = \"secret:NAME\" on the connection in the flow file"
    )]
    NoSecret {
        /// The connection's name.
        connection: String,
    },
    /// The webhook secret is configured but could not be resolved.
    #[error("connection {connection:?} (webhook_secret): {source}")]
    Secret {
        /// The connection's name.
        connection: String,
        /// Why resolving it failed.
        #[source]
        source: SecretError,
    },
}

impl MacError {
    /// Whether the host itself failed (the state database holding the secret), as opposed to
    /// a secret that is missing or unreadable, which an operator fixes in the configuration.
    pub fn is_host_fault(&self) -> bool {
        matches!(
            self,
            MacError::Secret {
                source: SecretError::Store(_),
                ..
            }
        )
    }
}

impl Connection {
    /// The MAC of `message` under the connection's webhook secret.
    pub async fn hmac(&self, alg: HmacAlgorithm, message: &[u8]) -> Result<Vec<u8>, MacError> {
        let secret = self.webhook_secret().await?;
        let key = hmac::Key::new(alg.ring(), secret.expose().as_bytes());
        Ok(hmac::sign(&key, message).as_ref().to_vec())
    }

    /// Whether `signature` is the MAC of `message` under the webhook secret, compared in constant
    /// time (a plugin comparing MACs itself might not).
    pub async fn hmac_verify(
        &self,
        alg: HmacAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, MacError> {
        let secret = self.webhook_secret().await?;
        let key = hmac::Key::new(alg.ring(), secret.expose().as_bytes());
        Ok(hmac::verify(&key, message, signature).is_ok())
    }
}
