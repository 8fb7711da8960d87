//! The authorization-code consent page every OAuth vendor shows. A person approves it in a
//! browser; a test approves it by POSTing the form it contains (`decision=approve`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::tokens::{AuthCode, Grant, TokenStore};
use crate::vendor::Vendor;

/// Query of the vendor's authorize URL (and the hidden fields of the consent form).
#[derive(Debug, Clone, Deserialize, Default)]
pub(crate) struct AuthorizeParams {
    #[serde(default)]
    pub response_type: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub state: Option<String>,
    /// Zoho: `offline` asks for a refresh token.
    #[serde(default)]
    pub access_type: Option<String>,
    #[serde(default)]
    pub code_challenge: Option<String>,
    /// Set by the consent form: `approve` or `deny`.
    #[serde(default)]
    pub decision: Option<String>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Checks the request and renders the consent page, or explains what is wrong with it.
pub(crate) fn consent_page(
    vendor: Vendor,
    form_action: &str,
    known_client: &str,
    p: &AuthorizeParams,
) -> Response {
    if let Err(msg) = validate(known_client, p) {
        return (
            StatusCode::BAD_REQUEST,
            Html(format!(
                "<h1>{}</h1><p>{}</p>",
                vendor.display_name(),
                escape(&msg)
            )),
        )
            .into_response();
    }
    let hidden = [
        ("response_type", p.response_type.as_str()),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", p.state.as_deref().unwrap_or("")),
        ("access_type", p.access_type.as_deref().unwrap_or("")),
        ("code_challenge", p.code_challenge.as_deref().unwrap_or("")),
    ]
    .iter()
    .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
    .collect::<String>();
    Html(format!(
        r#"<!doctype html><html><head><title>{name} (weft sandbox) - authorize</title></head><body>
<h1>{name} (weft sandbox)</h1>
<p>The application <b>{client}</b> asks for access to your demo data with scope <code>{scope}</code>.</p>
<form method="post" action="{form_action}">{hidden}
<button type="submit" name="decision" value="approve">Accept</button>
<button type="submit" name="decision" value="deny">Reject</button>
</form></body></html>"#,
        name = vendor.display_name(),
        client = escape(&p.client_id),
        scope = escape(&p.scope),
    ))
    .into_response()
}

fn validate(known_client: &str, p: &AuthorizeParams) -> Result<(), String> {
    if p.response_type != "code" {
        return Err(format!(
            "response_type must be \"code\", got {:?}",
            p.response_type
        ));
    }
    if p.client_id != known_client {
        return Err(format!(
            "unknown client_id {:?}; use the demo client id the sandbox printed",
            p.client_id
        ));
    }
    if !(p.redirect_uri.starts_with("http://") || p.redirect_uri.starts_with("https://")) {
        return Err(format!(
            "redirect_uri must be an absolute http(s) URL, got {:?}",
            p.redirect_uri
        ));
    }
    Ok(())
}

/// Who is consenting to what: the vendor's one demo client and demo user.
#[derive(Clone, Copy)]
pub(crate) struct Consent<'a> {
    pub vendor: Vendor,
    pub known_client: &'a str,
    pub user: &'a str,
    pub code_lifetime_ms: i64,
    /// Vendors' codes look different (`1000.` for Zoho); only cosmetic.
    pub code_prefix: &'a str,
}

/// Handles the consent form: issues a code and redirects back, as the vendor would.
/// `extra` is appended to the redirect (Zoho adds `location` and `accounts-server`).
pub(crate) fn decide(
    c: &Consent<'_>,
    tokens: &TokenStore,
    now_ms: i64,
    p: &AuthorizeParams,
    extra: &[(&str, String)],
) -> Response {
    let Consent {
        vendor,
        known_client,
        user,
        code_lifetime_ms,
        code_prefix,
    } = *c;
    if let Err(msg) = validate(known_client, p) {
        return (StatusCode::BAD_REQUEST, Html(escape(&msg))).into_response();
    }
    let sep = if p.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut location = p.redirect_uri.clone();
    let state = p
        .state
        .as_deref()
        .map(|s| format!("&state={}", encode(s)))
        .unwrap_or_default();
    if p.decision.as_deref() != Some("approve") {
        location.push_str(&format!("{sep}error=access_denied{state}"));
    } else {
        let code = format!("{code_prefix}{}", tokens.random_hex(20));
        tokens.put_code(
            code.clone(),
            AuthCode {
                grant: Grant {
                    vendor,
                    client_id: p.client_id.clone(),
                    user: user.to_string(),
                    scope: p.scope.clone(),
                },
                redirect_uri: p.redirect_uri.clone(),
                expires_ms: now_ms + code_lifetime_ms,
                offline: p.access_type.as_deref() == Some("offline"),
                code_challenge: p.code_challenge.clone().filter(|c| !c.is_empty()),
            },
        );
        location.push_str(&format!("{sep}code={}{state}", encode(&code)));
        for (k, v) in extra {
            location.push_str(&format!("&{k}={}", encode(v)));
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
