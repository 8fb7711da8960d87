//! Tokens from token endpoints, shared by every connection of this process whose credential
//! resolves to the same values (tenant, token URL, client, secret, refresh token or signing
//! key): a run does not exchange again what an earlier run of any flow got, which matters
//! where vendors cap exchanges (Zoho mints ten access tokens per refresh token in ten minutes).
//! Keyed by a digest of the values, so a changed secret is a different entry; a token the
//! upstream rejects is forgotten for everyone.
//!
//! Kept in memory for this process and, sealed, in the store for every other one.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use crate::secrets::Secret;

pub(crate) type Key = [u8; 32];

#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) token: Secret,
    pub(crate) renew_at: Option<Instant>,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) info: Vec<(String, String)>,
}

fn cache() -> std::sync::MutexGuard<'static, HashMap<Key, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Cached>>> = OnceLock::new();
    CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn key(parts: &[&str]) -> Key {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(part.as_bytes());
        ctx.update(&[0x1f]);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// The cached token for `key`, unless it is due for renewal.
pub(crate) fn get(key: &Key) -> Option<Cached> {
    let mut cache = cache();
    match cache.get(key) {
        Some(c) if c.renew_at.is_none_or(|at| Instant::now() < at) => Some(c.clone()),
        Some(_) => {
            cache.remove(key);
            None
        }
        None => None,
    }
}

pub(crate) fn put(key: Key, cached: Cached) {
    let mut cache = cache();
    let now = Instant::now();
    cache.retain(|_, c| c.renew_at.is_none_or(|at| now < at));
    cache.insert(key, cached);
}

/// The key as the store names it.
pub(crate) fn hex(key: &Key) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps of a token (sealed): the token, its non-secret fields, and when it
/// is renewed and expires, as wall-clock milliseconds so another process can read them.
pub(crate) fn envelope(cached: &Cached) -> Vec<u8> {
    let wall = |at: Instant| SystemTime::now() + at.saturating_duration_since(Instant::now());
    let ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    serde_json::json!({
        "token": cached.token.expose(),
        "info": cached.info,
        "renew_at": cached.renew_at.map(|at| ms(wall(at))),
        "expires_at": cached.expires_at.map(ms),
    })
    .to_string()
    .into_bytes()
}

/// The token an [`envelope`] holds, unless it is due for renewal by now.
pub(crate) fn from_envelope(bytes: &[u8]) -> Option<Cached> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let at = |field: &str| {
        value
            .get(field)
            .and_then(serde_json::Value::as_u64)
            .map(|ms| SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms))
    };
    let renew_at = match at("renew_at") {
        Some(wall) => Some(Instant::now() + wall.duration_since(SystemTime::now()).ok()?),
        None => None,
    };
    let info = value
        .get("info")
        .and_then(|i| serde_json::from_value::<Vec<(String, String)>>(i.clone()).ok())
        .unwrap_or_default();
    Some(Cached {
        token: Secret::new(value.get("token")?.as_str()?),
        renew_at,
        expires_at: at("expires_at"),
        info,
    })
}

/// Forgets the token kept under `key`, under whichever keys it is kept.
pub(crate) fn forget(key: &Key) {
    let mut cache = cache();
    if let Some(gone) = cache.remove(key) {
        cache.retain(|_, c| c.token != gone.token);
    }
}
