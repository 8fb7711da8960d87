//! A connector that tries to act beyond its own connection and to smuggle what it learns out
//! through the host's side channels. `read`'s options choose the attempt (`op`):
//!
//! - `send`, `token_info`, `mac`: call the `http` or `webhook-keys` import naming the
//!   connection `as` (another connection of the flow, or its own), and report the answer (for
//!   `mac`, also which refusal the host typed it as);
//! - `leak`: fetch `url` on its own connection (an upstream that echoes request headers, so
//!   the answer carries the credential), then print what came back into a log line and into the
//!   error it fails with, after `text` (control bytes, say);
//! - `flood`: log `lines` lines of `bytes` bytes each, then succeed;
//! - `say`: fail with `text` as the error message.
//!
//! It also declares a host of its own choosing, `https://exfil.example`, to see whether the
//! host lets a plugin widen its egress.

use serde::Deserialize;
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, Error, MacAlgorithm, MacError, Page,
    ReadRequest, Record, Result, Stream, authorization_header, json,
};

#[derive(Deserialize)]
struct Attempt {
    op: String,
    #[serde(default, rename = "as")]
    act_as: Option<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    lines: usize,
    #[serde(default)]
    bytes: usize,
}

pub struct Impostor;

fn one(record: weft_sdk::Value) -> Result<Page> {
    let record: Record = match record {
        weft_sdk::Value::Object(map) => map,
        other => Record::from_iter([("value".to_owned(), other)]),
    };
    Ok(Page::last::<()>(vec![record], None))
}

/// Which case of the contract's `mac-error` the host answered with.
fn mac_refusal(e: &MacError) -> &'static str {
    match e {
        MacError::NotOwnConnection(_) => "not-own-connection",
        MacError::NoSecret(_) => "no-secret",
        MacError::SecretUnavailable(_) => "secret-unavailable",
    }
}

impl Connector for Impostor {
    fn describe() -> ConnectorInfo {
        ConnectorInfo::new("impostor", "0.1.0")
            .description("Acts for other connections and leaks what it learns, for sandbox tests.")
            .stream(Stream::new("attempt", json!({"type": "object"})))
            .auth(AuthKind::None, authorization_header("Bearer"))
            .auth(AuthKind::Bearer, authorization_header("Bearer"))
            .oauth(
                AuthKind::Oauth2ClientCredentials,
                authorization_header("Bearer"),
                "{base_url}/oauth/token",
            )
            .host("{base_url}")
            .host("https://exfil.example")
    }

    fn check(_conn: &Connection) -> Result<()> {
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        let attempt: Attempt = serde_json::from_value(req.options.clone())?;
        let target = Connection::new(
            attempt.act_as.as_deref().unwrap_or(conn.name()),
            conn.config().clone(),
        );
        match attempt.op.as_str() {
            "send" => match target.get(&attempt.url).send() {
                Ok(response) => one(json!({"status": response.status, "body": response.text()})),
                Err(e) => one(json!({"error": e.to_string()})),
            },
            "token_info" => match target.token_info() {
                Ok(info) => one(json!({"info": info})),
                Err(e) => one(json!({"error": e.to_string()})),
            },
            "mac" => match target.webhook_mac(MacAlgorithm::HmacSha256, b"forged delivery") {
                Ok(mac) => one(json!({"mac": weft_sdk::base64::encode(&mac)})),
                Err(e) => one(json!({"error": e.to_string(), "refused": mac_refusal(&e)})),
            },
            "leak" => {
                let echoed = conn.get(&attempt.url).send()?.text();
                weft_sdk::log::warn(
                    &format!("{}upstream said {echoed}", attempt.text),
                    &[("echo", &echoed)],
                );
                Err(Error::internal(format!(
                    "{}upstream said {echoed}",
                    attempt.text
                )))
            }
            "flood" => {
                let line = "z".repeat(attempt.bytes);
                for _ in 0..attempt.lines {
                    weft_sdk::log::info(&line, &[]);
                }
                one(json!({"logged": attempt.lines}))
            }
            "say" => Err(Error::internal(attempt.text)),
            other => Err(Error::config(format!("unknown op {other}"))),
        }
    }
}

weft_sdk::export_connector!(Impostor);
