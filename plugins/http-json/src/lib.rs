//! `http-json`: a connector for a plain JSON-over-HTTP API, the smallest complete connector.
//!
//! The API it speaks (weft's tests serve it on loopback; any service with this shape works):
//!
//! | call | request | answer |
//! |---|---|---|
//! | check | `GET {base_url}/health` (`check_path`) | any 2xx |
//! | read | `GET {base_url}/{stream}?limit=N[&cursor=C][&updated_since=T]` | `{"data": [...], "next_cursor": "C" or null}` |
//! | write | `POST {base_url}/{stream}/batch` `{"mode", "key", "records"}` | `{"results": [{"status", "id", "error"}]}`, one per record |
//! | subscribe | `POST {base_url}/webhooks` `{"url", "events"}` | `{"id": "..."}` |
//! | unsubscribe | `DELETE {base_url}/webhooks/{id}` | any 2xx |
//!
//! APIs that page differently are read by configuring the connection:
//! `records_field` names the field holding the records (default `data`), `page_size_param`
//! the page-size parameter (default `limit`), and `next_url`, a JSON pointer such as
//! `/next_page` or `/links/next`, makes the connector follow the next-page URL the API returns
//! instead of passing `cursor`. Zendesk's offset pagination, for example, is
//! `{ records_field = "tickets", page_size_param = "per_page", next_url = "/next_page" }`.
//!
//! An incremental pass sends the previous pass's watermark as `updated_since` and pages through
//! it; the watermark it leaves is the newest `updated_at` it read, but never later than a
//! minute before the pass began: a record read early in the pass and edited while it went on
//! has an `updated_at` from after that, so the next pass reads it again (read twice at worst,
//! never lost to a later record's newer time).
//!
//! A read step's `options = { query = { name = "value" } }` adds query parameters to its list
//! requests (a for-each step fills them from each record: `owner = "${record.id}"`).
//!
//! Webhook deliveries carry `X-Signature: sha256=<hex HMAC of the body>` under the
//! connection's webhook secret and a body `{"events": [{"id", "stream", "action", "record"}]}`;
//! a body `{"challenge": "..."}` is a handshake answered by echoing the challenge.

use serde::{Deserialize, Serialize};
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, CredentialPlacement, Error, Event,
    HeaderTemplate, InboundRequest, MacAlgorithm, Page, ReadRequest, Record, Reply, Result, Stream,
    Subscription, SyncMode, Verification, WriteMode, WriteOutcome, WriteRequest,
    authorization_header, constant_time_eq, json,
};

const DEFAULT_PAGE_SIZE: u32 = 100;

#[derive(Deserialize)]
struct Config {
    base_url: String,
    #[serde(default = "default_records_field")]
    records_field: String,
    #[serde(default = "default_page_size_param")]
    page_size_param: String,
    /// JSON pointer to the next page's URL in a list answer.
    #[serde(default)]
    next_url: Option<String>,
    /// What `check` requests, relative to `base_url`.
    #[serde(default = "default_check_path")]
    check_path: String,
}

/// A read step's `options`: `query` adds parameters to every list request of the read, e.g.
/// `options = { query = { owner = "42" } }`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReadOptions {
    #[serde(default)]
    query: std::collections::BTreeMap<String, serde_json::Value>,
}

fn default_check_path() -> String {
    "/health".into()
}

fn default_records_field() -> String {
    "data".into()
}

fn default_page_size_param() -> String {
    "limit".into()
}

fn config(conn: &Connection) -> Result<Config> {
    let mut config: Config = conn.config_as()?;
    config.base_url = config.base_url.trim_end_matches('/').to_owned();
    Ok(config)
}

fn base_url(conn: &Connection) -> Result<String> {
    Ok(config(conn)?.base_url)
}

/// The watermark a finished pass leaves: the newest `updated_at` it read, unless that is later
/// than a minute before the pass began (edits made during the pass are older than it).
fn watermark(newest: Option<String>, started: &str) -> Option<String> {
    let newest = newest?;
    let (Some(n), Some(s)) = (
        weft_sdk::time::parse_rfc3339_ms(&newest),
        weft_sdk::time::parse_rfc3339_ms(started),
    ) else {
        return Some(newest);
    };
    let bound = s - CLOCK_MARGIN_MS;
    Some(if n > bound {
        weft_sdk::time::format_rfc3339_ms(bound)
    } else {
        newest
    })
}

/// How far the API's clock may be behind the host's.
const CLOCK_MARGIN_MS: i64 = 60_000;

/// Where a read resumes.
#[derive(Serialize, Deserialize, Default)]
struct Resume {
    /// The API's cursor within the current pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    /// Lower bound of `updated_at` for this pass (incremental).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// Newest `updated_at` seen so far in this pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest: Option<String>,
    /// When this pass began (RFC 3339, the host's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    /// The next page's URL, for APIs configured with `next_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_url: Option<String>,
}

/// One list answer, picked apart as the connection's config says.
struct ListAnswer {
    data: Vec<Record>,
    next: Option<String>,
    total: Option<u64>,
}

impl ListAnswer {
    fn parse(config: &Config, answer: weft_sdk::Value) -> Result<Self> {
        let mut answer = answer;
        let data = match answer
            .get_mut(&config.records_field)
            .map(weft_sdk::Value::take)
        {
            Some(weft_sdk::Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    weft_sdk::Value::Object(record) => Ok(record),
                    other => Err(Error::upstream(
                        200,
                        format!("a record is not an object: {other}").as_bytes(),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => {
                return Err(Error::config(format!(
                    "the answer has no array `{}`; set `records_field` in the connection's config",
                    config.records_field
                )));
            }
        };
        let text = |v: Option<&weft_sdk::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        let next = match &config.next_url {
            Some(pointer) => text(answer.pointer(pointer)),
            None => text(answer.get("next_cursor")),
        };
        Ok(ListAnswer {
            data,
            next,
            total: answer.get("total").and_then(|t| t.as_u64()),
        })
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    status: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn item_schema() -> weft_sdk::Value {
    json!({
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "email": {"type": "string"},
            "status": {"type": "string"},
            "amount": {"type": "number"},
            "updated_at": {"type": "string", "format": "date-time"}
        }
    })
}

pub struct HttpJson;

impl Connector for HttpJson {
    fn describe() -> ConnectorInfo {
        let bearer = authorization_header("Bearer");
        ConnectorInfo::new("http-json", env!("CARGO_PKG_VERSION"))
            .description("A plain JSON-over-HTTP API: cursor-paged reads, batch upserts, HMAC-signed webhooks.")
            .config_schema(json!({
                "type": "object",
                "required": ["base_url"],
                "properties": {
                    "base_url": {"type": "string", "format": "uri"},
                    "records_field": {"type": "string", "default": "data"},
                    "page_size_param": {"type": "string", "default": "limit"},
                    "next_url": {"type": "string", "description": "JSON pointer to the next page's URL, e.g. /links/next"},
                    "check_path": {"type": "string", "default": "/health"}
                }
            }))
            .stream(
                Stream::new("items", item_schema())
                    .description("Items, paged by cursor, incremental on updated_at.")
                    .incremental("updated_at")
                    .writable(&[WriteMode::Create, WriteMode::Upsert, WriteMode::Update]),
            )
            .stream(
                Stream::new("contacts", item_schema())
                    .description("Contacts, same shape as items.")
                    .incremental("updated_at")
                    .writable(&[WriteMode::Upsert]),
            )
            .auth(AuthKind::None, bearer.clone())
            .auth(AuthKind::Bearer, bearer.clone())
            .auth(
                AuthKind::ApiKey,
                CredentialPlacement::Header(HeaderTemplate { name: "X-Api-Key".into(), value: "{token}".into() }),
            )
            .auth(AuthKind::Basic, CredentialPlacement::Basic)
            .oauth(AuthKind::Oauth2Refresh, bearer.clone(), "{base_url}/oauth/token")
            .oauth(AuthKind::Oauth2ClientCredentials, bearer, "{base_url}/oauth/token")
            .host("{base_url}")
    }

    fn check(conn: &Connection) -> Result<()> {
        let config = config(conn)?;
        conn.get(&format!("{}{}", config.base_url, config.check_path))
            .send()?
            .error_for_status()?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        let config = config(conn)?;
        let base = &config.base_url;
        let resume: Resume = req.cursor_state()?.unwrap_or_default();
        let started = if resume.cursor.is_some() || resume.next_url.is_some() {
            resume.started.clone()
        } else {
            None
        };
        // A stored cursor without an in-pass position starts a new incremental pass from the
        // newest change the previous pass saw.
        let (cursor, since) = match (&req.mode, resume.cursor) {
            (_, Some(c)) => (Some(c), resume.since),
            (SyncMode::Incremental, None) => (None, resume.newest.clone().or(resume.since)),
            (SyncMode::Full, None) => (None, None),
        };
        let options: ReadOptions = match &req.options {
            serde_json::Value::Null => ReadOptions::default(),
            given => serde_json::from_value(given.clone())
                .map_err(|e| Error::config(format!("read options: {e}")))?,
        };
        let request = match &resume.next_url {
            Some(url) => conn.get(url),
            None => {
                let mut request = conn
                    .get(&format!("{base}/{}", req.stream))
                    .query(
                        &config.page_size_param,
                        req.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
                    )
                    .query_opt("cursor", cursor.as_deref())
                    .query_opt("updated_since", since.as_deref());
                for (name, value) in &options.query {
                    request = match value {
                        serde_json::Value::String(text) => request.query(name, text),
                        other => request.query(name, other),
                    };
                }
                request
            }
        };
        let answer = ListAnswer::parse(&config, request.send_json()?)?;
        let newest = answer
            .data
            .iter()
            .filter_map(|r| r.get("updated_at").and_then(|v| v.as_str()))
            .chain(resume.newest.as_deref())
            .max()
            .map(str::to_owned);
        let started =
            started.unwrap_or_else(|| weft_sdk::time::format_rfc3339_ms(weft_sdk::time::now_ms()));
        let page = match (answer.next, &config.next_url) {
            (Some(next), Some(_)) => Page::more(
                answer.data,
                &Resume {
                    next_url: Some(next),
                    since,
                    newest,
                    cursor: None,
                    started: Some(started),
                },
            ),
            (Some(next), None) => Page::more(
                answer.data,
                &Resume {
                    cursor: Some(next),
                    since,
                    newest,
                    next_url: None,
                    started: Some(started),
                },
            ),
            (None, _) => {
                let watermark = watermark(newest, &started);
                Page::last(
                    answer.data,
                    Some(&Resume {
                        cursor: None,
                        since: None,
                        newest: watermark,
                        next_url: None,
                        started: None,
                    }),
                )
            }
        };
        Ok(match answer.total {
            Some(total) => page.with_total(total),
            None => page,
        })
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        let count = req.records.len();
        let answer: BatchAnswer = conn
            .post(&format!("{}/{}/batch", base_url(conn)?, req.stream))
            .json(&json!({"mode": mode_name(req.mode), "key": req.key, "records": req.records}))?
            .send_json()?;
        if answer.results.len() != count {
            return Err(Error::internal(format!(
                "the API answered {} results for a batch of {count} records",
                answer.results.len()
            )));
        }
        Ok(answer
            .results
            .into_iter()
            .map(|r| match (r.status.as_str(), r.id) {
                ("created", Some(id)) => WriteOutcome::created(id),
                ("updated", Some(id)) => WriteOutcome::updated(id),
                ("unchanged", Some(id)) => WriteOutcome::unchanged(id),
                ("deleted", Some(id)) => WriteOutcome::deleted(id),
                (status, _) => WriteOutcome::failed(Error::invalid_record(
                    r.error
                        .unwrap_or_else(|| format!("the API answered status `{status}`")),
                )),
            })
            .collect())
    }

    fn verify(conn: &Connection, req: InboundRequest) -> Result<Verification> {
        #[derive(Deserialize)]
        struct Delivery {
            #[serde(default)]
            challenge: Option<String>,
            #[serde(default)]
            events: Vec<Delivered>,
        }
        #[derive(Deserialize)]
        struct Delivered {
            id: String,
            stream: String,
            action: String,
            record: Record,
        }

        let Some(signature) = req
            .header("x-signature")
            .and_then(|s| s.strip_prefix("sha256="))
        else {
            return Ok(Verification::Rejected("missing X-Signature header".into()));
        };
        let Some(signature) = decode_hex(signature) else {
            return Ok(Verification::Rejected("X-Signature is not hex".into()));
        };
        let expected = conn.webhook_mac(MacAlgorithm::HmacSha256, &req.body)?;
        if !constant_time_eq(&expected, &signature) {
            return Ok(Verification::Rejected(
                "signature does not match the body".into(),
            ));
        }
        let delivery: Delivery = serde_json::from_slice(&req.body)
            .map_err(|e| Error::invalid_record(format!("webhook body is not a delivery: {e}")))?;
        if let Some(challenge) = delivery.challenge {
            return Ok(Verification::Handshake(Reply {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: json!({ "challenge": challenge }).to_string().into_bytes(),
            }));
        }
        Ok(Verification::Accepted(
            delivery
                .events
                .into_iter()
                .map(|e| Event {
                    id: e.id,
                    stream: e.stream,
                    action: e.action,
                    record: e.record,
                    occurred_at: None,
                })
                .collect(),
        ))
    }

    fn subscribe(conn: &Connection, callback_url: &str, events: &[String]) -> Result<Subscription> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let created: Created = conn
            .post(&format!("{}/webhooks", base_url(conn)?))
            .json(&json!({"url": callback_url, "events": events}))?
            .send_json()?;
        Ok(Subscription {
            id: created.id,
            expires_at: None,
        })
    }

    fn unsubscribe(conn: &Connection, subscription_id: &str) -> Result<()> {
        let id = weft_sdk::http::percent_encode(subscription_id);
        conn.delete(&format!("{}/webhooks/{id}", base_url(conn)?))
            .send()?
            .error_for_status()?;
        Ok(())
    }
}

fn mode_name(mode: WriteMode) -> &'static str {
    match mode {
        WriteMode::Create => "create",
        WriteMode::Update => "update",
        WriteMode::Upsert => "upsert",
        WriteMode::Delete => "delete",
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

weft_sdk::export_connector!(HttpJson);
