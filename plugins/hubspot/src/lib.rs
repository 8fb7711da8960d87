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

/// A HubSpot object as the API returns it.
#[derive(Deserialize)]
struct ApiObject {
    id: String,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
    #[serde(default, rename = "createdAt")]
    created_at: Option<String>,
    #[serde(default, rename = "updatedAt")]
    updated_at: Option<String>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    associations: BTreeMap<String, AssociationList>,
    #[serde(default, rename = "new")]
    is_new: Option<bool>,
}

#[derive(Deserialize, Default)]
struct AssociationList {
    #[serde(default)]
    results: Vec<AssociatedId>,
}

#[derive(Deserialize)]
struct AssociatedId {
    id: Value,
}

fn flatten(o: ApiObject) -> Record {
    let mut r = Record::new();
    r.insert("id".into(), json!(o.id));
    for (k, v) in o.properties {
        r.insert(k, v);
    }
    r.insert("createdAt".into(), json!(o.created_at));
    r.insert("updatedAt".into(), json!(o.updated_at));
    r.insert("archived".into(), json!(o.archived));
    r
}

#[derive(Deserialize, Default)]
struct Paging {
    #[serde(default)]
    next: Option<NextPage>,
}

#[derive(Deserialize)]
struct NextPage {
    after: Value,
}

impl Paging {
    fn after(&self) -> Option<String> {
        self.next.as_ref().map(|n| match &n.after {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    results: Vec<ApiObject>,
    #[serde(default)]
    paging: Paging,
    #[serde(default)]
    total: Option<u64>,
}

/// Where a read resumes.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Resume {
    /// The list endpoint's opaque cursor (full reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// The lower bound (epoch ms, inclusive) of the current search query (incremental reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<i64>,
    /// The offset within the current search query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    /// Records already delivered whose modification time is exactly `since`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    skip: Vec<String>,
}

fn modified_ms(record: &Record, t: &ObjectType) -> Option<i64> {
    record
        .get(t.modified)
        .or_else(|| record.get("updatedAt"))
        .and_then(Value::as_str)
        .and_then(weft_sdk::time::parse_rfc3339_ms)
}

/// A HubSpot object of a list page, its values left as the JSON text HubSpot sent.
#[derive(Deserialize)]
struct RawObject<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(default, borrow, deserialize_with = "raw_members")]
    properties: Vec<(Cow<'a, str>, &'a RawValue)>,
    #[serde(default, borrow, rename = "createdAt")]
    created_at: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "updatedAt")]
    updated_at: Option<&'a RawValue>,
    #[serde(default, borrow)]
    archived: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawListAnswer<'a> {
    #[serde(default, borrow)]
    results: Vec<RawObject<'a>>,
    #[serde(default)]
    paging: Paging,
}

/// Appends `o` flattened as [`flatten`] does (its properties beside `id`, `createdAt`,
/// `updatedAt` and `archived`, in name order), writing the values' text as received instead of
/// building a [`Record`]: a list page is the bulk of a full read.
fn push_flattened(records: &mut RecordsJson, o: &RawObject<'_>) {
    let mut members: Vec<(&str, &str)> = Vec::with_capacity(o.properties.len() + 4);
    members.push(("id", o.id.get()));
    members.extend(
        o.properties
            .iter()
            .map(|(name, value)| (name.as_ref(), value.get())),
    );
    // As `flatten`: absent is null, and archived false.
    members.push(("createdAt", o.created_at.map_or("null", |v| v.get())));
    members.push(("updatedAt", o.updated_at.map_or("null", |v| v.get())));
    members.push(("archived", o.archived.map_or("false", |v| v.get())));
    // In name order, and of a name given twice the later (a property named `id` replaces the
    // object's id; the envelope's own members replace properties of their names), as inserting
    // into `flatten`'s map does. The sort is stable, so equal names keep the order given.
    members.sort_by(|a, b| a.0.cmp(b.0));
    let mut kept: Vec<(&str, &str)> = Vec::with_capacity(members.len());
    for member in members {
        match kept.last_mut() {
            Some(last) if last.0 == member.0 => *last = member,
            _ => kept.push(member),
        }
    }
    records.push(kept);
}

/// A JSON object's members in the order sent, names borrowed from the text where they hold no
/// escapes (serde makes an owned `Cow` of a map key otherwise), values as their text.
fn raw_members<'de, D>(
    deserializer: D,
) -> std::result::Result<Vec<(Cow<'de, str>, &'de RawValue)>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Name<'a>(Cow<'a, str>);
    impl<'de> Deserialize<'de> for Name<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Name<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a property name")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Name<'de>, E> {
                    Ok(Name(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> std::result::Result<Name<'de>, E> {
                    Ok(Name(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(Visit)
        }
    }
    struct Members;
    impl<'de> serde::de::Visitor<'de> for Members {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of properties")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
            while let Some((Name(name), value)) = map.next_entry::<Name<'de>, &'de RawValue>()? {
                members.push((name, value));
            }
            Ok(members)
        }
    }
    deserializer.deserialize_map(Members)
}

fn read_list(conn: &Connection, t: &ObjectType, req: &ReadRequest, resume: Resume) -> Result<Page> {
    let limit = req.page_size.unwrap_or(LIST_LIMIT).clamp(1, LIST_LIMIT);
    let response = checked(
        conn.get(&format!("{}/crm/v3/objects/{}", base_url(conn)?, t.stream))
            .query("limit", limit)
            .query("properties", t.all_properties().join(","))
            .query_opt("after", resume.after.as_deref())
            .send()?,
    )?;
    let answer: RawListAnswer<'_> =
        serde_json::from_slice(&response.body).map_err(|e| Error::Upstream {
            status: response.status,
            body: format!(
                "unexpected response body ({e}): {}",
                String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
            ),
        })?;
    let next = answer.paging.after();
    let mut records = RecordsJson::new();
    for object in &answer.results {
        push_flattened(&mut records, object);
    }
    Ok(match next {
        Some(after) => Page::more_json(
            records,
            &Resume {
                after: Some(after),
                ..Resume::default()
            },
        ),
        None => Page::last_json::<Resume>(records, None),
    })
}

fn read_search(
    conn: &Connection,
    t: &ObjectType,
    req: &ReadRequest,
    resume: Resume,
) -> Result<Page> {
    let limit = req.page_size.unwrap_or(SEARCH_LIMIT).clamp(1, SEARCH_LIMIT);
    let since = resume.since.unwrap_or(0);
    let offset = resume.offset.unwrap_or(0);
    let body = json!({
        "filterGroups": [{"filters": [{"propertyName": t.modified, "operator": "GTE", "value": since.to_string()}]}],
        "sorts": [{"propertyName": t.modified, "direction": "ASCENDING"}],
        "properties": t.all_properties(),
        "limit": limit,
        "after": offset.to_string(),
    });
    let answer: ListAnswer = checked(
        conn.post(&format!(
            "{}/crm/v3/objects/{}/search",
            base_url(conn)?,
            t.stream
        ))
        .json(&body)?
        .send()?,
    )?
    .json()?;
    let next_offset = answer
        .paging
        .after()
        .map(|a| a.parse::<u64>())
        .transpose()
        .map_err(|_| Error::upstream(200, b"search paging.next.after is not a number"))?;
    let total = answer.total;
    let skip: BTreeSet<&str> = resume.skip.iter().map(String::as_str).collect();
    let records: Vec<Record> = answer
        .results
        .into_iter()
        .map(flatten)
        .filter(|r| {
            !(modified_ms(r, t) == Some(since)
                && r.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| skip.contains(id)))
        })
        .collect();
    // The newest modification time delivered so far and the records delivered at exactly it.
    let (mut newest, mut at_newest) = (since, resume.skip.clone());
    for r in &records {
        let (Some(ms), Some(id)) = (modified_ms(r, t), r.get("id").and_then(Value::as_str)) else {
            continue;
        };
        if ms > newest {
            newest = ms;
            at_newest.clear();
        }
        if ms == newest && !at_newest.iter().any(|x| x == id) {
            at_newest.push(id.to_owned());
        }
    }
    let page = match next_offset {
        // By keyset: a new query from the newest time delivered, skipping what was delivered at
        // it. A record edited meanwhile moves past the bound and is read there; paging by
        // offset instead would skip one record for each that moved out of the pages before.
        Some(_) if newest > since => Page::more(
            records,
            &Resume {
                since: Some(newest),
                offset: None,
                skip: at_newest,
                after: None,
            },
        ),
        // More records than a page share one modification time: page through them by offset.
        Some(next) if next + u64::from(limit) <= SEARCH_WINDOW => Page::more(
            records,
            &Resume {
                since: Some(since),
                offset: Some(next),
                skip: at_newest,
                after: None,
            },
        ),
        Some(_) => {
            return Err(Error::internal(format!(
                "more than {SEARCH_WINDOW} {} share the modification time {since}; search cannot page past them",
                t.stream
            )));
        }
        None => {
            // Kept for the next run: never past what search may not have indexed yet.
            let horizon = weft_sdk::time::now_ms() - INDEX_LAG_MS;
            let state = if newest > horizon && horizon >= since {
                Resume {
                    since: Some(horizon),
                    ..Resume::default()
                }
            } else {
                Resume {
                    since: Some(newest),
                    skip: at_newest,
                    ..Resume::default()
                }
            };
            Page::last(records, Some(&state))
        }
    };
    Ok(match total {
        Some(n) => page.with_total(n),
        None => page,
    })
}

fn read_associations(
    conn: &Connection,
    a: &Association,
    req: &ReadRequest,
    resume: Resume,
) -> Result<Page> {
    let limit = req.page_size.unwrap_or(LIST_LIMIT).clamp(1, LIST_LIMIT);
    let answer: ListAnswer = checked(
        conn.get(&format!("{}/crm/v3/objects/{}", base_url(conn)?, a.from))
            .query("limit", limit)
            .query("properties", "hs_object_id")
            .query("associations", a.to)
            .query_opt("after", resume.after.as_deref())
            .send()?,
    )?
    .json()?;
    let next = answer.paging.after();
    let mut records = Vec::new();
    for object in answer.results {
        let targets = object
            .associations
            .get(a.to)
            .map(|x| x.results.as_slice())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for target in targets {
            let id = match &target.id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if seen.insert(id.clone()) {
                let mut r = Record::new();
                r.insert(a.from_field.into(), json!(object.id));
                r.insert(a.to_field.into(), json!(id));
                records.push(r);
            }
        }
    }
    Ok(match next {
        Some(after) => Page::more(
            records,
            &Resume {
                after: Some(after),
                ..Resume::default()
            },
        ),
        None => Page::last::<Resume>(records, None),
    })
}

fn read_limits(conn: &Connection) -> Result<Page> {
    let resp = checked(
        conn.get(&format!("{}/account-info/v3/details", base_url(conn)?))
            .send()?,
    )?;
    let number = |name: &str| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let mut daily = Record::new();
    daily.insert("name".into(), json!("daily"));
    daily.insert("max".into(), json!(number("x-hubspot-ratelimit-daily")));
    daily.insert(
        "remaining".into(),
        json!(number("x-hubspot-ratelimit-daily-remaining")),
    );
    daily.insert("interval_ms".into(), json!(86_400_000u64));
    let mut burst = Record::new();
    burst.insert("name".into(), json!("interval"));
    burst.insert("max".into(), json!(number("x-hubspot-ratelimit-max")));
    burst.insert(
        "remaining".into(),
        json!(number("x-hubspot-ratelimit-remaining")),
    );
    burst.insert(
        "interval_ms".into(),
        json!(number("x-hubspot-ratelimit-interval-milliseconds")),
    );
    Ok(Page::last::<()>(vec![daily, burst], None))
}

// ---------------------------------------------------------------- writes

/// A 207's failure entry.
#[derive(Deserialize)]
struct BatchError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, Vec<Value>>,
}

impl BatchError {
    fn error(&self) -> Error {
        Error::invalid_record(format!(
            "{}: {}",
            self.category.as_deref().unwrap_or("error"),
            self.message
        ))
    }

    fn context(&self, key: &str) -> Vec<String> {
        self.context
            .get(key)
            .into_iter()
            .flatten()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<ApiObject>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The properties of a record to write: everything but the envelope and HubSpot's own fields.
fn properties_of(t: &ObjectType, record: &Record) -> serde_json::Map<String, Value> {
    record
        .iter()
        .filter(|(k, _)| !ENVELOPE.contains(&k.as_str()) && !t.read_only.contains(&k.as_str()))
        .map(|(k, v)| {
            (
                k.clone(),
                match v {
                    Value::Null | Value::String(_) => v.clone(),
                    other => json!(other.to_string()),
                },
            )
        })
        .collect()
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (text(a), text(b)) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(&y),
        (None, None) => true,
        _ => false,
    }
}

/// Maps a batch answer back to its inputs: `matches(result, input)` says whether a result is
/// that input's, and `names(input)` the values an error's context may name it by.
fn map_batch(
    answer: BatchAnswer,
    count: usize,
    matches: impl Fn(&ApiObject, usize) -> bool,
    names: impl Fn(usize) -> Vec<String>,
    success: impl Fn(&ApiObject) -> WriteOutcome,
) -> Vec<WriteOutcome> {
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; count];
    for result in &answer.results {
        if let Some(i) = (0..count).find(|i| outcomes[*i].is_none() && matches(result, *i)) {
            outcomes[i] = Some(success(result));
        }
    }
    let mut unclaimed = Vec::new();
    for error in &answer.errors {
        let named: Vec<String> = ["id", "objectWriteTraceId", "fromObjectId", "toObjectId"]
            .iter()
            .flat_map(|k| error.context(k))
            .collect();
        match (0..count).find(|i| {
            outcomes[*i].is_none() && names(*i).iter().any(|n| !n.is_empty() && named.contains(n))
        }) {
            Some(i) => outcomes[i] = Some(WriteOutcome::failed(error.error())),
            None => unclaimed.push(error),
        }
    }
    // Failures no context names: in input order, as HubSpot lists them.
    let mut unclaimed = unclaimed.into_iter();
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| match unclaimed.next() {
                Some(e) => WriteOutcome::failed(e.error()),
                None => WriteOutcome::failed(Error::invalid_record(
                    "HubSpot's batch answer does not mention this record",
                )),
            })
        })
        .collect()
}

fn batch_call(
    conn: &Connection,
    t: &ObjectType,
    action: &str,
    inputs: Vec<Value>,
    extra: Option<(&str, Value)>,
) -> Result<BatchAnswer> {
    let mut body = json!({"inputs": inputs});
    if let Some((k, v)) = extra {
        body[k] = v;
    }
    let resp = checked(
        conn.post(&format!(
            "{}/crm/v3/objects/{}/batch/{action}",
            base_url(conn)?,
            t.stream
        ))
        .json(&body)?
        .send()?,
    )?;
    if resp.status == 204 || resp.body.is_empty() {
        return Ok(BatchAnswer {
            results: Vec::new(),
            errors: Vec::new(),
        });
    }
    resp.json()
}

fn write_objects(
    conn: &Connection,
    t: &ObjectType,
    req: &WriteRequest,
) -> Result<Vec<WriteOutcome>> {
    let key = match req.key.as_slice() {
        [] => "id",
        [one] => one.as_str(),
        more => {
            return Err(Error::config(format!(
                "HubSpot matches records on one property, not {}",
                more.join(", ")
            )));
        }
    };
    let by_id = key == "id" || key == "hs_object_id";
    if !by_id && t.unique != Some(key) && req.mode != WriteMode::Create {
        return Err(Error::config(format!(
            "HubSpot {} can be matched on `id`{}, not `{key}`",
            t.stream,
            t.unique.map(|u| format!(" or `{u}`")).unwrap_or_default()
        )));
    }
    let key_value = |r: &Record| {
        r.get(if by_id { "id" } else { key })
            .and_then(text)
            .filter(|s| !s.is_empty())
    };
    let mut outcomes = Vec::with_capacity(req.records.len());
    for chunk in req.records.chunks(BATCH_LIMIT) {
        // Records that cannot be sent fail here; the rest go in one call.
        let mut local: Vec<Option<WriteOutcome>> = vec![None; chunk.len()];
        let mut sent: Vec<usize> = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            if req.mode != WriteMode::Create && key_value(r).is_none() {
                local[i] = Some(WriteOutcome::failed(Error::invalid_record(format!(
                    "the record has no `{}`",
                    if by_id { "id" } else { key }
                ))));
            } else {
                sent.push(i);
            }
        }
        if !sent.is_empty() {
            let records: Vec<&Record> = sent.iter().map(|i| &chunk[*i]).collect();
            let results = match req.mode {
                WriteMode::Create => {
                    let inputs = records.iter().enumerate().map(|(n, r)| json!({"properties": properties_of(t, r), "objectWriteTraceId": n.to_string()})).collect();
                    let answer = batch_call(conn, t, "create", inputs, None)?;
                    map_batch(
                        answer,
                        records.len(),
                        |res, i| {
                            properties_of(t, records[i]).iter().all(|(k, v)| {
                                res.properties.get(k).is_some_and(|x| same_value(x, v))
                            })
                        },
                        |i| vec![i.to_string()],
                        |res| WriteOutcome::created(res.id.clone()),
                    )
                }
                WriteMode::Update => {
                    let inputs = records
                        .iter()
                        .map(|r| {
                            let mut props = properties_of(t, r);
                            if by_id {
                                json!({"id": key_value(r), "properties": props})
                            } else {
                                props.insert(key.to_owned(), json!(key_value(r)));
                                json!({"id": key_value(r), "idProperty": key, "properties": props})
                            }
                        })
                        .collect();
                    let answer = batch_call(conn, t, "update", inputs, None)?;
                    map_batch(
                        answer,
                        records.len(),
                        |res, i| {
                            if by_id {
                                Some(res.id.clone()) == key_value(records[i])
                            } else {
                                res.properties.get(key).and_then(text).is_some_and(|v| {
                                    Some(v.to_lowercase())
                                        == key_value(records[i]).map(|k| k.to_lowercase())
                                })
                            }
                        },
                        |i| key_value(records[i]).into_iter().collect(),
                        |res| WriteOutcome::updated(res.id.clone()),
                    )
                }
                WriteMode::Upsert => {
                    if by_id {
                        return Err(Error::config(
                            "HubSpot upserts on a unique property such as `email`, not on `id`; use update for ids",
                        ));
                    }
                    let inputs = records
                        .iter()
                        .map(|r| {
                            let mut props = properties_of(t, r);
                            props.insert(key.to_owned(), json!(key_value(r)));
                            json!({"id": key_value(r), "idProperty": key, "properties": props})
                        })
                        .collect();
                    let answer = batch_call(conn, t, "upsert", inputs, None)?;
                    map_batch(
                        answer,
                        records.len(),
                        |res, i| {
                            res.properties.get(key).and_then(text).is_some_and(|v| {
                                Some(v.to_lowercase())
                                    == key_value(records[i]).map(|k| k.to_lowercase())
                            })
                        },
                        |i| key_value(records[i]).into_iter().collect(),
                        |res| {
                            if res.is_new == Some(true) {
                                WriteOutcome::created(res.id.clone())
                            } else {
                                WriteOutcome::updated(res.id.clone())
                            }
                        },
                    )
                }
                WriteMode::Delete => {
                    if !by_id {
                        return Err(Error::config("HubSpot archives records by `id`"));
                    }
                    let inputs = records
                        .iter()
                        .map(|r| json!({"id": key_value(r)}))
                        .collect();
                    batch_call(conn, t, "archive", inputs, None)?;
                    records
                        .iter()
                        .map(|r| WriteOutcome::deleted(key_value(r).unwrap_or_default()))
                        .collect()
                }
            };
            for (i, outcome) in sent.into_iter().zip(results) {
                local[i] = Some(outcome);
            }
        }
        outcomes.extend(local.into_iter().map(|o| {
            o.unwrap_or_else(|| WriteOutcome::failed(Error::internal("record was not sent")))
        }));
    }
    Ok(outcomes)
}

#[derive(Deserialize)]
struct AssociationResult {
    #[serde(rename = "fromObjectId", alias = "from")]
    from: Value,
    #[serde(rename = "toObjectId", alias = "to")]
    to: Value,
}

#[derive(Deserialize)]
struct AssociationAnswer {
    #[serde(default)]
    results: Vec<AssociationResult>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

fn id_text(v: &Value) -> String {
    match v {
        Value::Object(o) => o.get("id").map(id_text).unwrap_or_default(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn write_associations(
    conn: &Connection,
    a: &Association,
    req: &WriteRequest,
) -> Result<Vec<WriteOutcome>> {
    let pair = |r: &Record| {
        Some((
            r.get(a.from_field).and_then(text)?,
            r.get(a.to_field).and_then(text)?,
        ))
    };
    let action = match req.mode {
        WriteMode::Create | WriteMode::Upsert => "associate/default",
        WriteMode::Delete => "archive",
        WriteMode::Update => {
            return Err(Error::config(
                "an association has nothing to update; write it with create or delete it",
            ));
        }
    };
    let mut outcomes = Vec::with_capacity(req.records.len());
    for chunk in req.records.chunks(BATCH_LIMIT) {
        let pairs: Vec<Option<(String, String)>> = chunk.iter().map(pair).collect();
        let inputs: Vec<Value> = pairs
            .iter()
            .flatten()
            .map(|(c, co)| json!({"from": {"id": c}, "to": {"id": co}}))
            .collect();
        let answer = if inputs.is_empty() {
            AssociationAnswer {
                results: Vec::new(),
                errors: Vec::new(),
            }
        } else {
            let resp = checked(
                conn.post(&format!(
                    "{}/crm/v4/associations/{}/{}/batch/{action}",
                    base_url(conn)?,
                    a.from,
                    a.to
                ))
                .json(&json!({"inputs": inputs}))?
                .send()?,
            )?;
            if resp.body.is_empty() {
                AssociationAnswer {
                    results: Vec::new(),
                    errors: Vec::new(),
                }
            } else {
                resp.json()?
            }
        };
        let done: BTreeSet<(String, String)> = answer
            .results
            .iter()
            .map(|r| (id_text(&r.from), id_text(&r.to)))
            .collect();
        for p in &pairs {
            let outcome = match p {
                None => WriteOutcome::failed(Error::invalid_record(format!(
                    "an association record needs `{}` and `{}`",
                    a.from_field, a.to_field
                ))),
                Some((c, co)) => {
                    let failed = answer.errors.iter().find(|e| {
                        e.context("fromObjectId").contains(c)
                            || e.context("toObjectId").contains(co)
                    });
                    match failed {
                        Some(e) => WriteOutcome::failed(e.error()),
                        None if action == "archive" => WriteOutcome::deleted(format!("{c}-{co}")),
                        None if done.contains(&(c.clone(), co.clone())) => {
                            WriteOutcome::created(format!("{c}-{co}"))
                        }
                        None => WriteOutcome::failed(Error::invalid_record(
                            "HubSpot's answer does not mention this association",
                        )),
                    }
                }
            };
            outcomes.push(outcome);
        }
    }
    Ok(outcomes)
}

// ---------------------------------------------------------------- webhooks

#[derive(Deserialize)]
struct Delivered {
    #[serde(rename = "eventId")]
    event_id: Value,
    #[serde(default, rename = "subscriptionType")]
    subscription_type: String,
    #[serde(default, rename = "objectId")]
    object_id: Value,
    #[serde(default, rename = "occurredAt")]
    occurred_at: Option<i64>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// The URIs a genuine delivery may have been signed over, most specific first.
fn signed_uris(conn: &Connection, req: &InboundRequest) -> Result<Vec<String>> {
    let query = if req.query.is_empty() {
        String::new()
    } else {
        format!("?{}", req.query)
    };
    if let Some(url) = config(conn)?.webhook_url {
        return Ok(vec![url]);
    }
    let Some(host) = req
        .header("x-forwarded-host")
        .or_else(|| req.header("host"))
    else {
        return Ok(Vec::new());
    };
    let schemes: Vec<&str> = match req.header("x-forwarded-proto") {
        Some(p) => vec![p.split(',').next().unwrap_or(p).trim()],
        None => vec!["https", "http"],
    };
    Ok(schemes
        .into_iter()
        .map(|s| format!("{s}://{host}{}{query}", req.path))
        .collect())
}

fn verify_delivery(conn: &Connection, req: &InboundRequest) -> Result<Verification> {
    let Some(signature) = req.header("x-hubspot-signature-v3") else {
        return Ok(Verification::Rejected(
            "missing X-HubSpot-Signature-v3 (only signature v3 is accepted)".into(),
        ));
    };
    let Some(timestamp) = req.header("x-hubspot-request-timestamp") else {
        return Ok(Verification::Rejected(
            "missing X-HubSpot-Request-Timestamp".into(),
        ));
    };
    let Ok(sent_ms) = timestamp.trim().parse::<i64>() else {
        return Ok(Verification::Rejected(
            "X-HubSpot-Request-Timestamp is not epoch milliseconds".into(),
        ));
    };
    let age = weft_sdk::time::now_ms() - sent_ms;
    if !(-MAX_DELIVERY_AGE_MS..=MAX_DELIVERY_AGE_MS).contains(&age) {
        return Ok(Verification::Rejected(format!(
            "the delivery's timestamp is {} s away from now; at most 300 s is accepted",
            age / 1_000
        )));
    }
    let Some(given) = weft_sdk::base64::decode(signature) else {
        return Ok(Verification::Rejected(
            "X-HubSpot-Signature-v3 is not base64".into(),
        ));
    };
    let uris = signed_uris(conn, req)?;
    if uris.is_empty() {
        return Ok(Verification::Rejected(
            "no Host header and no webhook_url in the config: the signed URI is unknown".into(),
        ));
    }
    let mut genuine = false;
    for uri in uris {
        let mut message =
            Vec::with_capacity(req.method.len() + uri.len() + req.body.len() + timestamp.len());
        message.extend_from_slice(req.method.to_uppercase().as_bytes());
        message.extend_from_slice(uri.as_bytes());
        message.extend_from_slice(&req.body);
        message.extend_from_slice(timestamp.trim().as_bytes());
        let expected = conn.webhook_mac(MacAlgorithm::HmacSha256, &message)?;
        genuine |= constant_time_eq(&expected, &given);
    }
    if !genuine {
        return Ok(Verification::Rejected(
            "X-HubSpot-Signature-v3 does not match the request".into(),
        ));
    }
    let delivered: Vec<Delivered> = serde_json::from_slice(&req.body).map_err(|e| {
        Error::invalid_record(format!("the delivery is not a HubSpot event array: {e}"))
    })?;
    let events = delivered
        .into_iter()
        .map(|d| {
            let prefix = d.subscription_type.split('.').next().unwrap_or("");
            let stream = TYPES
                .iter()
                .find(|t| t.singular == prefix)
                .map(|t| t.stream)
                .unwrap_or(prefix)
                .to_owned();
            let mut record = Record::new();
            record.insert("id".into(), json!(id_text(&d.object_id)));
            record.insert("eventId".into(), d.event_id.clone());
            record.insert("subscriptionType".into(), json!(d.subscription_type));
            for (k, v) in d.rest {
                record.insert(k, v);
            }
            Event {
                id: id_text(&d.event_id),
                stream,
                action: d.subscription_type,
                record,
                occurred_at: d.occurred_at.map(weft_sdk::time::format_rfc3339_ms),
            }
        })
        .collect();
    Ok(Verification::Accepted(events))
}

fn app_id(conn: &Connection) -> Result<String> {
    match config(conn)?.app_id {
        Some(Value::String(s)) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(Error::config(format!(
            "connection `{}`: webhook subscriptions need the app's numeric `app_id` in the config",
            conn.name()
        ))),
    }
}

const EVENT_TYPES: &[&str] = &[
    "contact.creation",
    "contact.propertyChange",
    "contact.deletion",
    "company.creation",
    "company.propertyChange",
    "company.deletion",
    "deal.creation",
    "deal.propertyChange",
    "deal.deletion",
];

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
