//! A connector that tries to reach where it should not. `read` sends the request its options
//! describe (`url`, optional `method`, `headers`) on behalf of the connection and returns what
//! came back as one record, or the error the host gave it; with `remember`, it swaps a value
//! in its state instead, and with `fill` it stores values until the host refuses one.
//! `check` reports whether the token leaks through `token_info`.

use serde::Deserialize;
use weft_sdk::state::StateError;
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, Page, ReadRequest, Record, Result, Stream,
    Value, authorization_header, json,
};

#[derive(Deserialize)]
struct Probe {
    /// Stores this under the state key `memo` after returning the previous value.
    #[serde(default)]
    remember: Option<String>,
    /// Stores values into state, to find where the host's limits are.
    #[serde(default)]
    fill: Option<Fill>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

/// `keys` distinct keys of `key_bytes` bytes, each with a value of `value_bytes` bytes.
#[derive(Deserialize)]
struct Fill {
    keys: usize,
    key_bytes: usize,
    value_bytes: usize,
}

impl Fill {
    /// Stores the values in order until the host refuses one, and reports how many it stored
    /// and the refusal as the host typed it (`{"kind": ..., "limit": ...}`), or null.
    fn run(&self) -> Record {
        let value = vec![b'v'; self.value_bytes];
        let mut refused = Value::Null;
        let mut stored = 0;
        for i in 0..self.keys {
            let mut key = format!("k{i}-");
            key.extend(std::iter::repeat_n(
                'x',
                self.key_bytes.saturating_sub(key.len()),
            ));
            match weft_sdk::state::set(&key, &value) {
                Ok(()) => stored += 1,
                Err(e) => {
                    refused = refusal(&e);
                    break;
                }
            }
        }
        let mut record = Record::new();
        record.insert("stored".into(), json!(stored));
        record.insert("refused".into(), refused);
        record
    }
}

/// A state refusal as the plugin sees its type: which case, and the limit it carries.
fn refusal(e: &StateError) -> Value {
    match e {
        StateError::KeyEmpty => json!({"kind": "key-empty"}),
        StateError::KeyTooLong { limit } => json!({"kind": "key-too-long", "limit": limit}),
        StateError::ValueTooLarge { limit } => json!({"kind": "value-too-large", "limit": limit}),
        StateError::TooManyKeys { limit } => json!({"kind": "too-many-keys", "limit": limit}),
        StateError::Unavailable(reason) => json!({"kind": "unavailable", "reason": reason}),
    }
}

pub struct Trespasser;

impl Connector for Trespasser {
    fn describe() -> ConnectorInfo {
        ConnectorInfo::new("trespasser", "0.1.0")
            .description("Sends whatever request it is told to, for egress tests.")
            .stream(Stream::new("probe", json!({"type": "object"})))
            .auth(AuthKind::None, authorization_header("Bearer"))
            .auth(AuthKind::Bearer, authorization_header("Bearer"))
            .oauth(
                AuthKind::Oauth2ClientCredentials,
                authorization_header("Bearer"),
                "{base_url}/oauth/token",
            )
            .host("{base_url}")
    }

    fn check(conn: &Connection) -> Result<()> {
        let info = conn.token_info()?;
        weft_sdk::log::info(
            "token info",
            &[(
                "fields",
                &info.keys().cloned().collect::<Vec<_>>().join(","),
            )],
        );
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        let probe: Probe = serde_json::from_value(req.options.clone())?;
        if let Some(fill) = probe.fill {
            return Ok(Page::last::<()>(vec![fill.run()], None));
        }
        if let Some(memo) = probe.remember {
            let previous =
                weft_sdk::state::get("memo")?.map(|v| String::from_utf8_lossy(&v).into_owned());
            weft_sdk::state::set("memo", memo.as_bytes())?;
            let mut record = Record::new();
            record.insert("previous".into(), json!(previous));
            return Ok(Page::last::<()>(vec![record], None));
        }
        let mut request = match probe.method.as_deref() {
            Some("POST") => conn.post(&probe.url),
            _ => conn.get(&probe.url),
        };
        for (name, value) in &probe.headers {
            request = request.header(name, value);
        }
        let response = request.send()?;
        let info: Vec<(String, String)> = conn
            .token_info()
            .map(|i| i.into_iter().collect())
            .unwrap_or_default();
        let mut record = Record::new();
        record.insert("status".into(), json!(response.status));
        record.insert("body".into(), json!(response.text()));
        record.insert("token_info".into(), json!(info));
        record.insert("env".into(), json!(std::env::vars().count()));
        Ok(Page::last::<()>(vec![record], None))
    }
}

weft_sdk::export_connector!(Trespasser);
