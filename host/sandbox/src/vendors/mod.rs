//! One module per emulated vendor, plus the HTTP helpers they share.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::SandboxError;
use crate::config::SandboxConfig;
use crate::server::{Emulator, Hub};

pub(crate) mod dataverse;
pub(crate) mod entra;
pub(crate) mod graphql;
pub(crate) mod hubspot;
pub(crate) mod monday;
pub(crate) mod odata;
pub(crate) mod partner_center;
pub(crate) mod salesforce;
pub(crate) mod soql;
pub(crate) mod zendesk;
pub(crate) mod zoho;

/// Every emulator this build has, in `Vendor::ALL` order.
pub(crate) fn build(
    hub: &Arc<Hub>,
    config: &SandboxConfig,
) -> Result<Vec<Arc<dyn Emulator>>, SandboxError> {
    let zoho: Arc<dyn Emulator> = zoho::Zoho::new(Arc::clone(hub), config);
    let zendesk: Arc<dyn Emulator> = zendesk::Zendesk::new(Arc::clone(hub), config);
    let salesforce: Arc<dyn Emulator> = salesforce::Salesforce::new(Arc::clone(hub), config)?;
    let hubspot: Arc<dyn Emulator> = hubspot::HubSpot::new(Arc::clone(hub), config);
    let dataverse: Arc<dyn Emulator> = dataverse::Dataverse::new(Arc::clone(hub), config);
    let monday: Arc<dyn Emulator> = monday::Monday::new(Arc::clone(hub), config);
    let partner_center: Arc<dyn Emulator> =
        partner_center::PartnerCenter::new(Arc::clone(hub), config);
    Ok(vec![
        zoho,
        zendesk,
        salesforce,
        hubspot,
        dataverse,
        monday,
        partner_center,
    ])
}

/// A one-minute budget window that opens with its first use, so a burst is never split by a
/// wall-clock minute boundary; `used` counts requests or points.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Window {
    start_ms: i64,
    pub used: u64,
}

impl Window {
    pub(crate) const MINUTE: i64 = 60_000;

    /// Starts a new window if this one is over (or was never used).
    pub(crate) fn roll(&mut self, now_ms: i64) {
        if self.used == 0 || now_ms >= self.start_ms + Self::MINUTE {
            self.start_ms = now_ms;
            self.used = 0;
        }
    }

    /// Whole seconds until the window resets, at least 1.
    pub(crate) fn reset_in(&self, now_ms: i64) -> i64 {
        ((self.start_ms + Self::MINUTE - now_ms + 999) / 1_000).max(1)
    }
}

/// JSON response with an explicit status.
pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

pub(crate) fn set_header(r: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        r.headers_mut().insert(name, v);
    }
}

pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `Authorization: <scheme> <token>` with a case-insensitive scheme.
pub(crate) fn auth_token<'a>(h: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = header_str(h, "authorization")?;
    let (s, t) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(t.trim())
}

/// Query string parameters (last one wins), percent-decoded.
pub(crate) fn query_params(query: Option<&str>) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// OAuth token endpoints accept parameters in the query string, a form body or (Zendesk) JSON.
pub(crate) fn token_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> HashMap<String, String> {
    let mut p = query_params(query);
    let is_json = header_str(headers, "content-type").is_some_and(|c| c.contains("json"));
    if is_json {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                p.insert(k, s);
            }
        }
    } else if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        p.extend(pairs);
    }
    p
}

pub(crate) fn parse_json_body(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Err("the request body is empty; send a JSON object".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("the request body is not valid JSON: {e}"))
}

/// A simple email check matching what vendors reject as "not properly formatted".
pub(crate) fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        && !domain.contains('@')
}
