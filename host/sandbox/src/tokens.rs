//! OAuth state shared by the emulators: authorization codes, access tokens and refresh tokens.
//! Vendor modules decide lifetimes, rotation and error shapes; this module only remembers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use ring::rand::{SecureRandom, SystemRandom};

use crate::vendor::Vendor;

#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub vendor: Vendor,
    pub client_id: String,
    pub user: String,
    pub scope: String,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub grant: Grant,
    pub expires_ms: i64,
    /// The refresh token this access token was minted from, so rotation can revoke both.
    pub refresh: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshToken {
    pub grant: Grant,
    pub expires_ms: i64,
    /// Mint times of access tokens from this refresh token (Zoho's 10-per-10-minutes rule).
    pub minted: VecDeque<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub grant: Grant,
    pub redirect_uri: String,
    pub expires_ms: i64,
    /// Zoho `access_type=offline`: whether the exchange also returns a refresh token.
    pub offline: bool,
    pub code_challenge: Option<String>,
}

pub(crate) enum TokenCheck {
    Valid(AccessToken),
    Expired,
    Unknown,
}

pub(crate) struct TokenStore {
    inner: Mutex<Inner>,
    rng: SystemRandom,
}

impl Default for TokenStore {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            rng: SystemRandom::new(),
        }
    }
}

#[derive(Default)]
struct Inner {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    codes: HashMap<String, AuthCode>,
}

impl TokenStore {
    /// Hex string of `bytes` random bytes.
    pub(crate) fn random_hex(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.rng.fill(&mut buf).expect("system random source");
        buf.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn put_code(&self, code: String, value: AuthCode) {
        self.inner.lock().expect("tokens").codes.insert(code, value);
    }

    /// Codes are single use: taking one removes it.
    pub(crate) fn take_code(&self, code: &str) -> Option<AuthCode> {
        self.inner.lock().expect("tokens").codes.remove(code)
    }

    pub(crate) fn put_access(&self, token: String, value: AccessToken) {
        self.inner
            .lock()
            .expect("tokens")
            .access
            .insert(token, value);
    }

    pub(crate) fn put_refresh(&self, token: String, value: RefreshToken) {
        self.inner
            .lock()
            .expect("tokens")
            .refresh
            .insert(token, value);
    }

    pub(crate) fn refresh(&self, token: &str) -> Option<RefreshToken> {
        self.inner
            .lock()
            .expect("tokens")
            .refresh
            .get(token)
            .cloned()
    }

    /// Records an access-token mint against a refresh token; returns how many were minted in
    /// the window ending now, including this one.
    pub(crate) fn note_mint(&self, refresh: &str, now_ms: i64, window_ms: i64) -> usize {
        let mut inner = self.inner.lock().expect("tokens");
        let Some(r) = inner.refresh.get_mut(refresh) else {
            return 0;
        };
        while r.minted.front().is_some_and(|t| *t <= now_ms - window_ms) {
            r.minted.pop_front();
        }
        r.minted.push_back(now_ms);
        r.minted.len()
    }

    pub(crate) fn minted_in_window(&self, refresh: &str, now_ms: i64, window_ms: i64) -> usize {
        let inner = self.inner.lock().expect("tokens");
        inner
            .refresh
            .get(refresh)
            .map(|r| r.minted.iter().filter(|t| **t > now_ms - window_ms).count())
            .unwrap_or(0)
    }

    /// Removes a refresh token and every access token minted from it (Zendesk rotation,
    /// revocation).
    pub(crate) fn revoke_refresh(&self, token: &str) {
        let mut inner = self.inner.lock().expect("tokens");
        inner.refresh.remove(token);
        inner
            .access
            .retain(|_, a| a.refresh.as_deref() != Some(token));
    }

    pub(crate) fn revoke_access(&self, token: &str) -> bool {
        self.inner
            .lock()
            .expect("tokens")
            .access
            .remove(token)
            .is_some()
    }

    pub(crate) fn check(&self, vendor: Vendor, token: &str, now_ms: i64) -> TokenCheck {
        let inner = self.inner.lock().expect("tokens");
        match inner.access.get(token) {
            Some(a) if a.grant.vendor == vendor && a.expires_ms > now_ms => {
                TokenCheck::Valid(a.clone())
            }
            Some(a) if a.grant.vendor == vendor => TokenCheck::Expired,
            _ => TokenCheck::Unknown,
        }
    }

    /// Makes every live access token of `vendor` (or all vendors) expire now; returns how many.
    pub(crate) fn expire_all(&self, vendor: Option<Vendor>, now_ms: i64) -> usize {
        let mut inner = self.inner.lock().expect("tokens");
        let mut n = 0;
        for a in inner.access.values_mut() {
            if vendor.is_none_or(|v| a.grant.vendor == v) && a.expires_ms > now_ms {
                a.expires_ms = now_ms;
                n += 1;
            }
        }
        n
    }

    pub(crate) fn forget_vendor(&self, vendor: Vendor) {
        let mut inner = self.inner.lock().expect("tokens");
        inner.access.retain(|_, a| a.grant.vendor != vendor);
        inner.refresh.retain(|_, r| r.grant.vendor != vendor);
        inner.codes.retain(|_, c| c.grant.vendor != vendor);
    }

    pub(crate) fn live_access_count(&self, vendor: Vendor, now_ms: i64) -> usize {
        self.inner
            .lock()
            .expect("tokens")
            .access
            .values()
            .filter(|a| a.grant.vendor == vendor && a.expires_ms > now_ms)
            .count()
    }
}
