//! `hubspot`: the HubSpot CRM API (v3 objects, v4 associations; crm-apis.md §4) as weft streams.
//!
//! **Reads** `contacts`, `companies` and `deals`, each record flattened: `id`, every property
//! (`email`, `firstname`, …; HubSpot sends every value as a string or null), `createdAt`,
//! `updatedAt`, `archived`.
//! - Full reads page the list endpoint (`GET /crm/v3/objects/{type}?limit=&after=&properties=`)
//!   with its opaque `paging.next.after`, at most 100 records a page.
//! - Incremental reads use the search API: `{type}/search` filtered on the modification
//!   property (`lastmodifieddate` for contacts, `hs_lastmodifieddate` for companies and deals)
//!   `GTE` the watermark, sorted ascending on it, at most 200 a page. Each page is a new query
//!   from the last modification time delivered (keyset), skipping the records delivered at
//!   exactly that time, so a record edited during the read is read again later and never makes
//!   the offset-paged results shift past an unread one; the numeric `after` pages only through
//!   more records than a page sharing one time (within search's 10,000-result window). The watermark kept between
//!   runs never passes "now minus 60 s": search indexes new objects with a delay, and a record
//!   indexed late must not fall behind the watermark (it may be read twice, never lost).
//! - `calls` are call engagements (`hs_timestamp`, `hs_call_title`, `hs_call_body`,
//!   `hs_call_status`, …, and the custom unique property `weft_conversation_id` an integration
//!   logging calls upserts on).
//! - `contact_companies` lists contact→company associations (`contact_id`, `company_id`), read
//!   through the contacts list with `associations=companies`; `call_contacts`,
//!   `call_companies` and `call_deals` likewise for calls (`call_id` and the other's id).
//! - `limits` reports the daily and ten-second allocations from the `X-HubSpot-RateLimit-*`
//!   headers (`daily`: `max`, `remaining`), what an import estimate is compared with.
//!
//! **Writes** use the batch endpoints, 100 inputs per call, one outcome per record in order:
//! `create` (`batch/create`), `update` (`batch/update`, by `id` or by a unique property given
//! as the key, e.g. `email`), `upsert` (`batch/upsert` with `idProperty` = the key; results
//! carry `new`) and `delete` (`batch/archive`). A 207 answer lists the failures with their
//! `context`; each is mapped back to its record (by id, key value or `objectWriteTraceId`).
//! The association streams write associations (`create`/`upsert`: the default association
//! through `v4 associations/{from}/{to}/batch/associate/default`; `delete`: `batch/archive`).
//!
//! **Errors**: 429 is `rate-limited` with the wait HubSpot's policy implies (`Retry-After` when
//! sent; `TEN_SECONDLY_ROLLING`: the interval header or 10 s; the search "secondly" limit: 1 s;
//! `DAILY`: no wait is stated, it resets at midnight in the account's time zone); 401 is `auth`;
//! 5xx `upstream`; a cursor this connector did not write is `config`.
//!
//! **Webhooks**: `verify` checks signature v3 (`X-HubSpot-Signature-v3`: base64 HMAC-SHA256
//! under the app's client secret — the connection's `webhook_secret` — of method, URI, body and
//! `X-HubSpot-Request-Timestamp`, computed by the host) and refuses deliveries older than five
//! minutes. The URI is `webhook_url` from the config, or rebuilt from the `Host` header (and
//! `X-Forwarded-Proto`). Events become `{object}.creation|propertyChange|deletion` events of
//! the object's stream, with `eventId` as their id. `subscribe` sets the app's target URL and
//! subscribes the event types asked for; it needs a connection authorised with the app's
//! developer API key (`api-key`, sent as `hapikey`) and `app_id` in the config, since
//! subscriptions are app settings rather than portal data.
//!
//! **Config** (all optional): `base_url` (default `https://api.hubapi.com`; the sandbox's
//! emulator URL locally), `app_id` (for `subscribe`), `webhook_url` (the public URL HubSpot
//! delivers to, when a proxy changes the `Host`).
//!
//! **Auth**: a private-app token (`bearer`) or OAuth (`oauth2-refresh`, token endpoint
//! `https://api.hubapi.com/oauth/v1/token`; access tokens last 30 minutes), both as
//! `Authorization: Bearer {token}`; `api-key` is the developer key, for subscriptions only.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use weft_sdk::http::Response;
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, CredentialPlacement, Error, Event,
    InboundRequest, MacAlgorithm, Page, ReadRequest, Record, RecordsJson, Result, Stream,
    Subscription, SyncMode, Value, Verification, WriteMode, WriteOutcome, WriteRequest,
    authorization_header, constant_time_eq, json,
};

mod read;
mod webhooks;
mod write;

use read::{Resume, read_associations, read_limits, read_list, read_search};
use webhooks::{EVENT_TYPES, app_id, verify_delivery};
use write::{id_text, write_associations, write_objects};

const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
const LIST_LIMIT: u32 = 100;
const SEARCH_LIMIT: u32 = 200;
/// Results one search query can page through.
const SEARCH_WINDOW: u64 = 10_000;
const BATCH_LIMIT: usize = 100;
/// How far behind "now" the stored watermark stays, for search's indexing delay.
const INDEX_LAG_MS: i64 = 60_000;
/// Deliveries older than this are refused (HubSpot's SDK uses the same five minutes).
const MAX_DELIVERY_AGE_MS: i64 = 300_000;
/// An association stream: records `{from_field, to_field}` for the default association from
/// objects of `from` to objects of `to`.
struct Association {
    stream: &'static str,
    from: &'static str,
    to: &'static str,
    from_field: &'static str,
    to_field: &'static str,
    description: &'static str,
}

const ASSOCIATIONS: &[Association] = &[
    Association {
        stream: "contact_companies",
        from: "contacts",
        to: "companies",
        from_field: "contact_id",
        to_field: "company_id",
        description: "Contact-to-company associations; writing one associates the contact with the company (default association).",
    },
    Association {
        stream: "call_contacts",
        from: "calls",
        to: "contacts",
        from_field: "call_id",
        to_field: "contact_id",
        description: "Call-to-contact associations: the people a logged call was with.",
    },
    Association {
        stream: "call_companies",
        from: "calls",
        to: "companies",
        from_field: "call_id",
        to_field: "company_id",
        description: "Call-to-company associations: the company a logged call is about.",
    },
    Association {
        stream: "call_deals",
        from: "calls",
        to: "deals",
        from_field: "call_id",
        to_field: "deal_id",
        description: "Call-to-deal associations: the deal a logged call is about.",
    },
];

fn association(stream: &str) -> Option<&'static Association> {
    ASSOCIATIONS.iter().find(|a| a.stream == stream)
}

struct ObjectType {
    stream: &'static str,
    singular: &'static str,
    modified: &'static str,
    /// A property `idProperty` may name.
    unique: Option<&'static str>,
    properties: &'static [&'static str],
    /// Properties HubSpot maintains; dropped from written records.
    read_only: &'static [&'static str],
}

const TYPES: &[ObjectType] = &[
    ObjectType {
        stream: "contacts",
        singular: "contact",
        modified: "lastmodifieddate",
        unique: Some("email"),
        properties: &[
            "email",
            "firstname",
            "lastname",
            "phone",
            "jobtitle",
            "company",
            "lifecyclestage",
            "city",
            "website",
        ],
        read_only: &["createdate", "lastmodifieddate", "hs_object_id"],
    },
    ObjectType {
        stream: "companies",
        singular: "company",
        modified: "hs_lastmodifieddate",
        unique: Some("domain"),
        properties: &[
            "name",
            "domain",
            "industry",
            "phone",
            "city",
            "state",
            "country",
            "numberofemployees",
            "annualrevenue",
            "description",
        ],
        read_only: &["createdate", "hs_lastmodifieddate", "hs_object_id"],
    },
    ObjectType {
        stream: "deals",
        singular: "deal",
        modified: "hs_lastmodifieddate",
        unique: None,
        properties: &[
            "dealname",
            "amount",
            "dealstage",
            "pipeline",
            "closedate",
            "description",
            "dealtype",
        ],
        read_only: &["createdate", "hs_lastmodifieddate", "hs_object_id"],
    },
    ObjectType {
        stream: "calls",
        singular: "call",
        modified: "hs_lastmodifieddate",
        // A custom property with unique values, what an integration logging calls adds.
        unique: Some("weft_conversation_id"),
        properties: &[
            "hs_timestamp",
            "hs_call_title",
            "hs_call_body",
            "hs_call_status",
            "hs_call_direction",
            "hs_call_duration",
            "weft_conversation_id",
        ],
        read_only: &["createdate", "hs_lastmodifieddate", "hs_object_id"],
    },
];

const ENVELOPE: &[&str] = &["id", "createdAt", "updatedAt", "archived"];

fn object_type(stream: &str) -> Result<&'static ObjectType> {
    TYPES.iter().find(|t| t.stream == stream).ok_or_else(|| {
        let known: Vec<&str> = TYPES
            .iter()
            .map(|t| t.stream)
            .chain(ASSOCIATIONS.iter().map(|a| a.stream))
            .chain(["limits"])
            .collect();
        Error::config(format!(
            "hubspot has no stream `{stream}`; it has: {}",
            known.join(", ")
        ))
    })
}

impl ObjectType {
    fn all_properties(&self) -> Vec<&'static str> {
        self.properties
            .iter()
            .chain(self.read_only)
            .copied()
            .collect()
    }

    fn schema(&self) -> Value {
        let mut props = serde_json::Map::new();
        props.insert(
            "id".into(),
            json!({"type": "string", "description": "hs_object_id"}),
        );
        for p in self.all_properties() {
            let format = if matches!(p, "createdate" | "lastmodifieddate" | "hs_lastmodifieddate") {
                json!({"format": "date-time"})
            } else {
                json!({})
            };
            let mut schema = json!({"type": ["string", "null"]});
            if let (Value::Object(s), Value::Object(f)) = (&mut schema, format) {
                s.extend(f);
            }
            props.insert(p.into(), schema);
        }
        props.insert(
            "createdAt".into(),
            json!({"type": "string", "format": "date-time"}),
        );
        props.insert(
            "updatedAt".into(),
            json!({"type": "string", "format": "date-time"}),
        );
        props.insert("archived".into(), json!({"type": "boolean"}));
        json!({"type": "object", "required": ["id"], "properties": props})
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    app_id: Option<Value>,
    #[serde(default)]
    webhook_url: Option<String>,
}

fn config(conn: &Connection) -> Result<Config> {
    conn.config_as()
}

fn base_url(conn: &Connection) -> Result<String> {
    Ok(config(conn)?
        .base_url
        .unwrap_or_else(|| DEFAULT_BASE_URL.into())
        .trim_end_matches('/')
        .to_owned())
}

/// HubSpot's error body.
#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default, rename = "policyName")]
    policy: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

/// The response when its status is a success (207 included), otherwise the error it means.
fn checked(resp: Response) -> Result<Response> {
    if resp.is_success() {
        return Ok(resp);
    }
    let body: ApiError = serde_json::from_slice(&resp.body).unwrap_or_default();
    match resp.status {
        429 => {
            let wait = resp.retry_after().or_else(|| match body.policy.as_deref() {
                Some("TEN_SECONDLY_ROLLING") => Some(
                    resp.header("x-hubspot-ratelimit-interval-milliseconds")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_millis)
                        .unwrap_or(Duration::from_secs(10)),
                ),
                Some("SECONDLY") => Some(Duration::from_secs(1)),
                Some(_) => None,
                None if body.message.contains("secondly limit") => Some(Duration::from_secs(1)),
                None => None,
            });
            let policy = body.policy.as_deref().unwrap_or("search");
            Err(Error::rate_limited(
                wait,
                format!("HubSpot rate limit ({policy}): {}", body.message),
            ))
        }
        401 => Err(Error::auth(format!(
            "HubSpot refused the credential ({}): {}",
            body.category.as_deref().unwrap_or("401"),
            body.message
        ))),
        _ => resp.error_for_status(),
    }
}

pub struct HubSpot;

impl Connector for HubSpot {
    fn describe() -> ConnectorInfo {
        let bearer = authorization_header("Bearer");
        let mut info = ConnectorInfo::new("hubspot", env!("CARGO_PKG_VERSION"))
            .description("HubSpot CRM: contacts, companies and deals by list cursor and search, batch writes, contact-company associations, v3-signed webhooks.")
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "base_url": {"type": "string", "format": "uri", "default": DEFAULT_BASE_URL},
                    "app_id": {"type": ["string", "integer"], "description": "The public app's id, for webhook subscriptions"},
                    "webhook_url": {"type": "string", "format": "uri", "description": "The URL HubSpot delivers webhooks to, as configured in the app"}
                }
            }))
            .auth(AuthKind::Bearer, bearer.clone())
            .oauth(AuthKind::Oauth2Refresh, bearer, "https://api.hubapi.com/oauth/v1/token")
            .auth(AuthKind::ApiKey, CredentialPlacement::Query("hapikey".into()))
            .host("{base_url?}")
            // Without base_url: HubSpot's own host, a literal a flow allows in its egress.
            .host(DEFAULT_BASE_URL)
            // OAuth apps and Free/Starter portals: 100 requests per 10 s (legacy guidelines).
            .rate_limit(100, Duration::from_secs(10));
        for t in TYPES {
            info = info.stream(
                Stream::new(t.stream, t.schema())
                    .description(&format!(
                        "HubSpot {}: list-paged in full, searched on {} incrementally.",
                        t.stream, t.modified
                    ))
                    .incremental(t.modified)
                    .writable(&[
                        WriteMode::Create,
                        WriteMode::Update,
                        WriteMode::Upsert,
                        WriteMode::Delete,
                    ]),
            );
        }
        for a in ASSOCIATIONS {
            info = info.stream(
                Stream::new(
                    a.stream,
                    json!({"type": "object", "required": [a.from_field, a.to_field], "properties": {
                        a.from_field: {"type": "string"},
                        a.to_field: {"type": "string"}
                    }}),
                )
                .description(a.description)
                .primary_key(&[a.from_field, a.to_field])
                .writable(&[
                    WriteMode::Create,
                    WriteMode::Upsert,
                    WriteMode::Delete,
                ]),
            );
        }
        info.stream(
            Stream::new(
                "limits",
                json!({"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "description": "daily or interval"},
                    "max": {"type": ["integer", "null"]},
                    "remaining": {"type": ["integer", "null"]},
                    "interval_ms": {"type": ["integer", "null"]}
                }}),
            )
            .description("The daily and per-interval request allocations and what remains of them.")
            .primary_key(&["name"]),
        )
    }

    fn check(conn: &Connection) -> Result<()> {
        checked(
            conn.get(&format!("{}/account-info/v3/details", base_url(conn)?))
                .send()?,
        )?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        let resume: Resume = req.cursor_state()?.unwrap_or_default();
        match req.stream.as_str() {
            "limits" => read_limits(conn),
            stream if association(stream).is_some() => {
                read_associations(conn, association(stream).expect("checked"), &req, resume)
            }
            stream => {
                let t = object_type(stream)?;
                match (req.mode, &resume) {
                    (SyncMode::Full, r) if r.since.is_none() => read_list(conn, t, &req, resume),
                    (_, r) if r.after.is_some() => Err(Error::config(
                        "the stored cursor is a full read's; reset the flow's cursor",
                    )),
                    _ => read_search(conn, t, &req, resume),
                }
            }
        }
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        if req.records.is_empty() {
            return Ok(Vec::new());
        }
        match req.stream.as_str() {
            stream if association(stream).is_some() => {
                write_associations(conn, association(stream).expect("checked"), &req)
            }
            "limits" => Err(Error::config("stream `limits` is read-only")),
            stream => write_objects(conn, object_type(stream)?, &req),
        }
    }

    fn verify(conn: &Connection, req: InboundRequest) -> Result<Verification> {
        verify_delivery(conn, &req)
    }

    fn subscribe(conn: &Connection, callback_url: &str, events: &[String]) -> Result<Subscription> {
        let app = app_id(conn)?;
        let base = base_url(conn)?;
        let wanted: Vec<&str> = if events.is_empty() {
            EVENT_TYPES.to_vec()
        } else {
            events.iter().map(String::as_str).collect()
        };
        if let Some(unknown) = wanted.iter().find(|e| !EVENT_TYPES.contains(e)) {
            return Err(Error::config(format!(
                "HubSpot has no event type `{unknown}`; it has: {}",
                EVENT_TYPES.join(", ")
            )));
        }
        checked(conn.put(&format!("{base}/webhooks/v3/{app}/settings")).json(&json!({"targetUrl": callback_url, "throttling": {"maxConcurrentRequests": 10, "period": "SECONDLY"}}))?.send()?)?;
        #[derive(Deserialize)]
        struct Created {
            id: Value,
        }
        let mut ids = Vec::new();
        for event in wanted {
            let created: Created = checked(
                conn.post(&format!("{base}/webhooks/v3/{app}/subscriptions"))
                    .json(&json!({"eventType": event, "active": true}))?
                    .send()?,
            )?
            .json()?;
            ids.push(id_text(&created.id));
        }
        Ok(Subscription {
            id: ids.join(","),
            expires_at: None,
        })
    }

    fn unsubscribe(conn: &Connection, subscription_id: &str) -> Result<()> {
        let app = app_id(conn)?;
        let base = base_url(conn)?;
        for id in subscription_id.split(',').filter(|s| !s.is_empty()) {
            if !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(Error::config(format!(
                    "`{id}` is not a HubSpot subscription id"
                )));
            }
            checked(
                conn.delete(&format!("{base}/webhooks/v3/{app}/subscriptions/{id}"))
                    .send()?,
            )?;
        }
        Ok(())
    }
}

weft_sdk::export_connector!(HubSpot);
