//! Webhook signature support without handing plugins the webhook secret.
//!
//! Upstreams sign webhook deliveries with a shared secret (Zendesk: HMAC-SHA256, some older
//! services HMAC-SHA1). The plugin knows how the signed message is assembled; the host holds the
//! secret. So the plugin asks the host for the MAC of a message it built, or to verify one.

use ring::hmac;

use crate::connection::Connection;
use crate::http::HttpError;

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

impl Connection {
    /// The MAC of `message` under the connection's webhook secret.
    pub async fn hmac(&self, alg: HmacAlgorithm, message: &[u8]) -> Result<Vec<u8>, HttpError> {
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
    ) -> Result<bool, HttpError> {
        let secret = self.webhook_secret().await?;
        let key = hmac::Key::new(alg.ring(), secret.expose().as_bytes());
        Ok(hmac::verify(&key, message, signature).is_ok())
    }
}
