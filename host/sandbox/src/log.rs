//! The log of requests each emulator received, for tests that assert on what a connector sent
//! and for people debugging a flow (`GET /admin/log`). Credentials are never stored.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use crate::vendor::Vendor;

/// Entries kept; older ones are dropped first.
const CAPACITY: usize = 20_000;
/// Request bodies are kept up to this size.
const BODY_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub seq: u64,
    pub vendor: Vendor,
    pub method: String,
    /// Path and query, as received.
    pub uri: String,
    /// Request headers, with credentials replaced by their scheme (`Bearer ***`).
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    /// What fault injection did to this request, if anything.
    pub fault: Option<&'static str>,
    pub at: String,
    pub duration_ms: u64,
}

impl Serialize for Vendor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.slug())
    }
}

#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<LoggedRequest>>,
}

impl RequestLog {
    pub(crate) fn push(&self, entry: LoggedRequest) {
        let mut e = self.entries.lock().expect("log lock");
        if e.len() == CAPACITY {
            e.pop_front();
        }
        e.push_back(entry);
    }

    pub(crate) fn query(
        &self,
        vendor: Option<Vendor>,
        after_seq: u64,
        limit: usize,
    ) -> Vec<LoggedRequest> {
        let e = self.entries.lock().expect("log lock");
        e.iter()
            .filter(|r| r.seq > after_seq && vendor.is_none_or(|v| r.vendor == v))
            .take(limit)
            .cloned()
            .collect()
    }

    pub(crate) fn clear(&self, vendor: Option<Vendor>) {
        self.entries
            .lock()
            .expect("log lock")
            .retain(|r| vendor.is_some_and(|v| r.vendor != v));
    }
}

/// Form and JSON fields whose values are credentials.
const SECRET_FIELDS: [&str; 9] = [
    "client_secret",
    "password",
    "refresh_token",
    "access_token",
    "code",
    "assertion",
    "code_verifier",
    "token",
    "signing_secret",
];

fn mask_pairs(text: &str) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_FIELDS.contains(&k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Path and query with credential parameters masked (Zoho takes secrets in the query).
pub(crate) fn loggable_uri(uri: &str) -> String {
    match uri.split_once('?') {
        Some((path, query)) => format!("{path}?{}", mask_pairs(query)),
        None => uri.to_string(),
    }
}

/// The body as text with credential fields masked, cut to `BODY_LIMIT`.
pub(crate) fn loggable_body(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(BODY_LIMIT)];
    if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        for k in SECRET_FIELDS {
            if let Some(v) = m.get_mut(k).filter(|v| !v.is_null()) {
                *v = serde_json::Value::String("***".into());
            }
        }
        return serde_json::Value::Object(m).to_string();
    }
    let text = String::from_utf8_lossy(cut);
    let looks_like_form = !text.is_empty()
        && !text.starts_with(['{', '[', '<', '-'])
        && text.contains('=')
        && !text.contains(['\n', ' ']);
    if looks_like_form {
        return mask_pairs(&text);
    }
    let mut s = text.into_owned();
    if bytes.len() > BODY_LIMIT {
        s.push_str("…(truncated)");
    }
    s
}

pub(crate) fn redact_header(name: &str, value: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n == "authorization" || n == "proxy-authorization" {
        let scheme = value.split_whitespace().next().unwrap_or("");
        // monday sends the raw token with no scheme.
        if scheme.len() == value.len() {
            "***".to_string()
        } else {
            format!("{scheme} ***")
        }
    } else if n == "cookie" || n.contains("api-key") || n.contains("secret") {
        "***".to_string()
    } else {
        value.to_string()
    }
}
