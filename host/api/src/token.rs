//! API tokens: `weft_` and 43 characters of base64url (32 random bytes), shown once when made.
//! The store keeps their SHA-256 and a public id (`tok_` and 16 hex digits) to list and revoke
//! them by. A token is random enough that a plain hash is the right kind of storage: nothing
//! to brute-force, unlike a password.

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use weft_store::{Store, StoreError, TokenHolder};

/// Every token starts so; anything else is not looked up.
pub const PREFIX: &str = "weft_";

/// A token just made: the only time its text exists outside its holder.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The public id it is listed and revoked by.
    pub id: String,
    /// The token itself, for the `Authorization: Bearer` header.
    pub token: String,
}

/// The hash the store keeps of `token`.
pub fn hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    hex(digest.as_ref())
}

/// Makes a token for `holder` and records its hash.
pub async fn issue_token(store: &Store, holder: &TokenHolder) -> Result<IssuedToken, StoreError> {
    let random = SystemRandom::new();
    let mut secret = [0u8; 32];
    let mut id = [0u8; 8];
    // The system's random source failing is not something to go on without.
    random
        .fill(&mut secret)
        .and_then(|()| random.fill(&mut id))
        .expect("the system's random number generator failed");
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let id = format!("tok_{}", hex(&id));
    store.api_token_add(&id, holder, &hash(&token)).await?;
    Ok(IssuedToken { id, token })
}

/// A new webhook endpoint id: `hk_` and 32 hex digits (16 random bytes), unguessable, and
/// saying nothing of the tenant or the flow it serves.
pub fn endpoint_id_new() -> String {
    let mut id = [0u8; 16];
    SystemRandom::new()
        .fill(&mut id)
        .expect("the system's random number generator failed");
    format!("hk_{}", hex(&id))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
