//! `dynamics365`: Microsoft Dynamics 365 (Dataverse Web API v9.x).
//!
//! **Reads** the tables `accounts`, `contacts`, `leads`, `opportunities` and `phonecalls` (the
//! activity a call is logged as, regarding a record) with
//! `GET {organization_url}/api/data/{api_version}/{set}?$select=…` and
//! `Prefer: odata.maxpagesize=N`, following `@odata.nextLink` unchanged (its `$skiptoken` is an
//! opaque paging cookie). Incremental reads use Dataverse change tracking, which Microsoft
//! recommends for synchronising with external systems: the first read sends
//! `Prefer: odata.track-changes` and keeps the `@odata.deltaLink` of its last page as the
//! cursor; later reads GET that link and return new and changed rows, plus deleted rows as
//! `{"<key>": id, "deleted": true}`. A delta token Dataverse no longer accepts (too old) starts
//! a new tracked full read. The cursor holds either the next page's link or the delta link.
//!
//! **Writes** go in one `$batch` per up to 1,000 records, each record its own request outside
//! any changeset (with `Prefer: odata.continue-on-error`), so one bad record fails alone:
//! create is `POST /{set}`, update `PATCH /{set}(key)` with `If-Match: *` (a missing row fails),
//! upsert `PATCH /{set}(key)` without conditions (creates or updates; `return=representation`
//! tells which), delete `DELETE /{set}(key)` (an already missing row counts as deleted, so a
//! replay is harmless). The key is the table's id column (`accountid`, ...) or an alternate key
//! (`accountnumber='A-1'`), as the write step's `key` says. Lookups are written the OData way,
//! `"parentcustomerid_account@odata.bind": "/accounts(<guid>)"`.
//!
//! **Webhooks**: `subscribe` creates a webhook service endpoint with `HttpHeader` authentication
//! and one step per event (`account.Create`, `contact.Update`, ...; every table's Create,
//! Update and Delete by default). Dataverse does not sign deliveries: it sends the configured
//! header back. The header value is a MAC (of a fixed label) under the connection's webhook
//! secret, so the plugin never holds the secret and `verify` recomputes and compares it. A
//! delivery's body (`RemoteExecutionContext`) is not covered by anything, so a tampered body
//! with a genuine header cannot be told apart: that is the vendor's design. `unsubscribe`
//! deletes the endpoint's steps, then the endpoint.
//!
//! Config: `organization_url` (required, e.g. `https://contoso.crm.dynamics.com`; the sandbox's
//! base URL for tests), `api_version` (default `v9.2`), `tenant_id` (for the default Entra ID
//! token URL). Authentication is Entra ID client credentials with scope
//! `{organization_url}/.default`, applied as `Authorization: Bearer`. Read options:
//! `select` (a list of columns, replacing the stream's default columns).

use serde::{Deserialize, Serialize};
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, Error, Event, InboundRequest, MacAlgorithm,
    Page, ReadRequest, Record, Result, Stream, Subscription, SyncMode, Value, Verification,
    WriteMode, WriteOutcome, WriteRequest, authorization_header, constant_time_eq, json,
};

/// Most operations one `$batch` may hold.
const MAX_BATCH: usize = 1_000;
const DEFAULT_PAGE_SIZE: u32 = 500;
/// Dataverse's largest page; larger requests are capped by the server anyway.
const MAX_PAGE_SIZE: u32 = 5_000;
/// The header Dataverse echoes on webhook deliveries, holding the MAC `verify` checks.
const WEBHOOK_HEADER: &str = "x-weft-webhook-key";
/// The error code of a delta token Dataverse no longer accepts.
const EXPIRED_DELTA: &str = "0x80044352";

struct Table {
    set: &'static str,
    logical: &'static str,
    key: &'static str,
    description: &'static str,
    /// Column name and JSON Schema type of the columns read by default.
    columns: &'static [(&'static str, &'static str)],
}

const COMMON: &[(&str, &str)] = &[
    ("createdon", "date-time"),
    ("modifiedon", "date-time"),
    ("versionnumber", "integer"),
    ("statecode", "integer"),
    ("statuscode", "integer"),
    ("_ownerid_value", "string"),
];

const TABLES: &[Table] = &[
    Table {
        set: "accounts",
        logical: "account",
        key: "accountid",
        description: "Accounts (companies). Alternate key: accountnumber.",
        columns: &[
            ("name", "string"),
            ("accountnumber", "string"),
            ("telephone1", "string"),
            ("websiteurl", "string"),
            ("emailaddress1", "string"),
            ("address1_city", "string"),
            ("address1_country", "string"),
            ("numberofemployees", "integer"),
            ("revenue", "number"),
            ("description", "string"),
        ],
    },
    Table {
        set: "contacts",
        logical: "contact",
        key: "contactid",
        description: "Contacts (people), with their parent account in _parentcustomerid_value.",
        columns: &[
            ("firstname", "string"),
            ("lastname", "string"),
            ("fullname", "string"),
            ("emailaddress1", "string"),
            ("telephone1", "string"),
            ("jobtitle", "string"),
            ("address1_city", "string"),
            ("_parentcustomerid_value", "string"),
        ],
    },
    Table {
        set: "leads",
        logical: "lead",
        key: "leadid",
        description: "Leads (prospects not yet qualified).",
        columns: &[
            ("firstname", "string"),
            ("lastname", "string"),
            ("fullname", "string"),
            ("subject", "string"),
            ("companyname", "string"),
            ("emailaddress1", "string"),
            ("telephone1", "string"),
            ("jobtitle", "string"),
        ],
    },
    Table {
        set: "opportunities",
        logical: "opportunity",
        key: "opportunityid",
        description: "Opportunities (deals), with their account and contact lookups.",
        columns: &[
            ("name", "string"),
            ("estimatedvalue", "number"),
            ("estimatedclosedate", "date"),
            ("closeprobability", "integer"),
            ("description", "string"),
            ("stepname", "string"),
            ("_parentaccountid_value", "string"),
            ("_parentcontactid_value", "string"),
        ],
    },
    Table {
        set: "phonecalls",
        logical: "phonecall",
        key: "activityid",
        description: "Phone call activities, regarding a record: write `regardingobjectid_{opportunity|account|lead|contact}@odata.bind` = `/{set}(<guid>)`. Alternate key (an integration's custom column): weft_conversationid.",
        columns: &[
            ("subject", "string"),
            ("description", "string"),
            ("phonenumber", "string"),
            ("scheduledend", "date"),
            ("weft_conversationid", "string"),
            ("_regardingobjectid_value", "string"),
        ],
    },
];

fn table(stream: &str) -> Result<&'static Table> {
    TABLES.iter().find(|t| t.set == stream).ok_or_else(|| {
        let known: Vec<&str> = TABLES.iter().map(|t| t.set).collect();
        Error::config(format!(
            "unknown stream `{stream}`; this connector offers {}",
            known.join(", ")
        ))
    })
}

fn schema(t: &Table) -> Value {
    let mut props = weft_sdk::serde_json::Map::new();
    props.insert(t.key.into(), json!({"type": "string", "format": "uuid"}));
    for (name, kind) in t.columns.iter().chain(COMMON) {
        let s = match *kind {
            "date-time" => json!({"type": ["string", "null"], "format": "date-time"}),
            "date" => json!({"type": ["string", "null"], "format": "date"}),
            other => json!({"type": [other, "null"]}),
        };
        props.insert((*name).into(), s);
    }
    props.insert(
        "deleted".into(),
        json!({"type": "boolean", "description": "true on a row change tracking reports as deleted; such a row carries only its key"}),
    );
    json!({"type": "object", "required": [t.key], "properties": props})
}

#[derive(Deserialize)]
struct Config {
    organization_url: String,
    #[serde(default = "default_api_version")]
    api_version: String,
}

fn default_api_version() -> String {
    "v9.2".into()
}

impl Config {
    fn of(conn: &Connection) -> Result<Config> {
        let mut c: Config = conn.config_as()?;
        c.organization_url = c.organization_url.trim_end_matches('/').to_owned();
        if !c.organization_url.starts_with("https://") && !c.organization_url.starts_with("http://")
        {
            return Err(Error::config(format!(
                "connection `{}`: organization_url must be a URL such as https://contoso.crm.dynamics.com",
                conn.name()
            )));
        }
        Ok(c)
    }

    /// `{organization_url}/api/data/v9.2`
    fn root(&self) -> String {
        format!("{}/api/data/{}", self.organization_url, self.api_version)
    }
}

/// Where a read resumes: the next page of the current pass, or (between incremental passes)
/// the delta link Dataverse handed out at the end of the last one.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Resume {
    Next(String),
    Delta(String),
}

fn headers(req: weft_sdk::http::RequestBuilder<'_>) -> weft_sdk::http::RequestBuilder<'_> {
    req.header("Accept", "application/json")
        .header("OData-MaxVersion", "4.0")
        .header("OData-Version", "4.0")
}

/// A Dataverse error answer as the SDK's error, keeping `{"error":{"code","message"}}` readable.
fn failure(status: u16, body: &[u8], retry_after: Option<std::time::Duration>) -> Error {
    let message = weft_sdk::serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            Some(format!(
                "{}: {}",
                e.get("code")?.as_str()?,
                e.get("message")?.as_str()?
            ))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    match status {
        401 => Error::auth(format!("Dataverse refused the credential: {message}")),
        // Service protection: 429 with Retry-After in seconds.
        429 => Error::rate_limited(retry_after, message),
        400 | 404 | 409 | 412 | 413 | 422 => Error::invalid_record(message),
        _ => Error::upstream(status, body),
    }
}

fn send_checked(req: weft_sdk::http::RequestBuilder<'_>) -> Result<weft_sdk::http::Response> {
    let resp = req.send()?;
    if resp.is_success() {
        return Ok(resp);
    }
    Err(match resp.status {
        401 | 429 => failure(resp.status, &resp.body, resp.retry_after()),
        _ => Error::upstream(resp.status, &resp.body),
    })
}

/// A row as a record: annotations dropped, deletions reduced to key plus `deleted`.
fn record_of(t: &Table, row: Value) -> Result<Record> {
    let Value::Object(mut row) = row else {
        return Err(Error::upstream(200, b"a row in `value` is not an object"));
    };
    if row.get("reason").and_then(Value::as_str) == Some("deleted")
        && row
            .get("@odata.context")
            .and_then(Value::as_str)
            .is_some_and(|c| c.ends_with("$deletedEntity"))
    {
        let mut r = Record::new();
        r.insert(t.key.into(), row.remove("id").unwrap_or(Value::Null));
        r.insert("deleted".into(), Value::Bool(true));
        return Ok(r);
    }
    row.retain(|k, _| !k.contains('@'));
    Ok(row)
}

pub struct Dynamics365;

impl Dynamics365 {
    fn select(t: &Table, options: &Value) -> Result<String> {
        match options.get("select") {
            None | Some(Value::Null) => Ok(t
                .columns
                .iter()
                .chain(COMMON)
                .map(|c| c.0)
                .collect::<Vec<_>>()
                .join(",")),
            Some(Value::Array(cols)) => {
                let cols: Option<Vec<&str>> = cols.iter().map(Value::as_str).collect();
                cols.filter(|c| !c.is_empty())
                    .map(|c| c.join(","))
                    .ok_or_else(|| {
                        Error::config(
                            "read option `select` must be a non-empty list of column names",
                        )
                    })
            }
            Some(_) => Err(Error::config(
                "read option `select` must be a list of column names",
            )),
        }
    }

    /// GETs one page (a first query or a link Dataverse gave), restarting a tracked read when
    /// the delta token has expired.
    fn page(
        conn: &Connection,
        config: &Config,
        t: &Table,
        req: &ReadRequest,
        url: &str,
        tracking: bool,
    ) -> Result<Value> {
        let size = req
            .page_size
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        let prefer = if tracking {
            format!("odata.track-changes,odata.maxpagesize={size}")
        } else {
            format!("odata.maxpagesize={size}")
        };
        let resp = headers(conn.get(url)).header("Prefer", &prefer).send()?;
        if resp.status == 400
            && tracking
            && String::from_utf8_lossy(&resp.body).contains(EXPIRED_DELTA)
        {
            weft_sdk::log::warn(
                "the delta token expired; reading the table in full again",
                &[("stream", t.set)],
            );
            let fresh = format!(
                "{}/{}?$select={}",
                config.root(),
                t.set,
                Self::select(t, &req.options)?
            );
            return send_checked(headers(conn.get(&fresh)).header("Prefer", &prefer))?.json();
        }
        if !resp.is_success() {
            return Err(match resp.status {
                401 | 429 => failure(resp.status, &resp.body, resp.retry_after()),
                400 => Error::config(format!(
                    "Dataverse refused the query for `{}`: {}",
                    t.set,
                    failure(400, &resp.body, None)
                )),
                status => Error::upstream(status, &resp.body),
            });
        }
        resp.json()
    }
}

impl Connector for Dynamics365 {
    fn describe() -> ConnectorInfo {
        let bearer = authorization_header("Bearer");
        let mut info = ConnectorInfo::new("dynamics365", env!("CARGO_PKG_VERSION"))
            .description("Microsoft Dynamics 365 / Dataverse: accounts, contacts, leads and opportunities; change tracking; $batch writes.")
            .config_schema(json!({
                "type": "object",
                "required": ["organization_url"],
                "properties": {
                    "organization_url": {"type": "string", "format": "uri", "description": "The environment URL, e.g. https://contoso.crm.dynamics.com; the token scope is {organization_url}/.default"},
                    "api_version": {"type": "string", "default": "v9.2"},
                    "tenant_id": {"type": "string", "description": "Entra ID tenant, for the default token URL"}
                }
            }))
            .oauth(AuthKind::Oauth2ClientCredentials, bearer.clone(), "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token")
            .oauth(AuthKind::Oauth2Refresh, bearer, "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token")
            .host("{organization_url}")
            .host("https://login.microsoftonline.com")
            // Service protection: 6,000 requests per user per 5-minute sliding window.
            .rate_limit(6_000, std::time::Duration::from_secs(300));
        for t in TABLES {
            info = info.stream(
                Stream::new(t.set, schema(t))
                    .description(t.description)
                    .primary_key(&[t.key])
                    .incremental("modifiedon")
                    .writable(&[
                        WriteMode::Create,
                        WriteMode::Update,
                        WriteMode::Upsert,
                        WriteMode::Delete,
                    ]),
            );
        }
        info
    }

    fn check(conn: &Connection) -> Result<()> {
        let config = Config::of(conn)?;
        send_checked(headers(conn.get(&format!("{}/WhoAmI", config.root()))))?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        let config = Config::of(conn)?;
        let t = table(&req.stream)?;
        let root = config.root();
        let tracking = req.mode == SyncMode::Incremental;
        let resume: Option<Resume> = req.cursor_state()?;
        let url = match resume {
            Some(Resume::Next(link)) => link,
            Some(Resume::Delta(link)) if tracking => link,
            // A full read starts over whatever the last incremental pass left.
            Some(Resume::Delta(_)) | None => format!(
                "{root}/{}?$select={}",
                t.set,
                Self::select(t, &req.options)?
            ),
        };
        if !url.starts_with(&format!("{root}/{}", t.set)) {
            return Err(Error::config(format!(
                "the stored cursor points at {url}, not at this connection's `{}` table; reset the flow's cursor",
                t.set
            )));
        }
        let mut answer = Self::page(conn, &config, t, &req, &url, tracking)?;
        let rows = match answer.get_mut("value").map(Value::take) {
            Some(Value::Array(rows)) => rows,
            _ => return Err(Error::upstream(200, b"the answer has no `value` array")),
        };
        let records = rows
            .into_iter()
            .map(|r| record_of(t, r))
            .collect::<Result<Vec<_>>>()?;
        let link = |k: &str| answer.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(match (link("@odata.nextLink"), link("@odata.deltaLink")) {
            (Some(next), _) => Page::more(records, &Resume::Next(next)),
            (None, Some(delta)) if tracking => Page::last(records, Some(&Resume::Delta(delta))),
            _ => Page::last::<Resume>(records, None),
        })
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        let config = Config::of(conn)?;
        let t = table(&req.stream)?;
        let key: Vec<String> = if req.key.is_empty() {
            vec![t.key.to_owned()]
        } else {
            req.key.clone()
        };
        let mut outcomes = Vec::with_capacity(req.records.len());
        for chunk in req.records.chunks(MAX_BATCH) {
            outcomes.extend(batch::write(conn, &config, t, req.mode, &key, chunk)?);
        }
        Ok(outcomes)
    }

    fn verify(conn: &Connection, req: InboundRequest) -> Result<Verification> {
        let Some(given) = req.header(WEBHOOK_HEADER) else {
            return Ok(Verification::Rejected(format!(
                "the delivery has no {WEBHOOK_HEADER} header"
            )));
        };
        let expected = webhook_key(conn)?;
        if !constant_time_eq(expected.as_bytes(), given.trim().as_bytes()) {
            return Ok(Verification::Rejected(format!(
                "{WEBHOOK_HEADER} does not match this connection's webhook secret"
            )));
        }
        let ctx: Value = weft_sdk::serde_json::from_slice(&req.body).map_err(|e| {
            Error::invalid_record(format!("the delivery is not a RemoteExecutionContext: {e}"))
        })?;
        let entity = ctx
            .get("PrimaryEntityName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(t) = TABLES.iter().find(|t| t.logical == entity) else {
            return Ok(Verification::Accepted(Vec::new()));
        };
        let mut record = Record::new();
        record.insert(
            t.key.into(),
            ctx.get("PrimaryEntityId").cloned().unwrap_or(Value::Null),
        );
        let target = ctx
            .get("InputParameters")
            .and_then(Value::as_array)
            .and_then(|p| {
                p.iter()
                    .find(|x| x.get("key").and_then(Value::as_str) == Some("Target"))
                    .and_then(|x| x.get("value"))
            });
        if let Some(attrs) = target
            .and_then(|v| v.get("Attributes"))
            .and_then(Value::as_array)
        {
            for a in attrs {
                if let (Some(k), Some(v)) = (a.get("key").and_then(Value::as_str), a.get("value")) {
                    record.insert(k.to_owned(), v.clone());
                }
            }
        }
        let message = ctx
            .get("MessageName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if message == "delete" {
            record.insert("deleted".into(), Value::Bool(true));
        }
        let id = ctx
            .get("RequestId")
            .or_else(|| ctx.get("CorrelationId"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| req.header("x-request-id").map(str::to_owned))
            .ok_or_else(|| Error::invalid_record("the delivery carries no RequestId"))?;
        let occurred_at = ctx
            .get("OperationCreatedOn")
            .and_then(Value::as_str)
            .and_then(wcf_date);
        Ok(Verification::Accepted(vec![Event {
            id,
            stream: t.set.into(),
            action: message,
            record,
            occurred_at,
        }]))
    }

    fn subscribe(conn: &Connection, callback_url: &str, events: &[String]) -> Result<Subscription> {
        let config = Config::of(conn)?;
        let root = config.root();
        let key = webhook_key(conn)?;
        let endpoint = send_checked(headers(conn.post(&format!("{root}/serviceendpoints"))).json(&json!({
            "name": format!("weft {callback_url}"),
            "url": callback_url,
            "contract": 8,
            "authtype": 5,
            "authvalue": format!("<settings><setting name=\"{WEBHOOK_HEADER}\" value=\"{key}\" /></settings>"),
        }))?)?;
        let endpoint_id = entity_id(&endpoint).ok_or_else(|| {
            Error::upstream(
                endpoint.status,
                b"no OData-EntityId for the service endpoint",
            )
        })?;
        let wanted: Vec<(String, String)> = if events.is_empty() {
            TABLES
                .iter()
                .flat_map(|t| {
                    ["Create", "Update", "Delete"].map(|m| (t.logical.to_owned(), m.to_owned()))
                })
                .collect()
        } else {
            events
                .iter()
                .map(|e| {
                    let (entity, message) = e.split_once('.').ok_or_else(|| {
                        Error::config(format!(
                            "webhook event `{e}` must be TABLE.MESSAGE, e.g. account.Update"
                        ))
                    })?;
                    let entity = TABLES
                        .iter()
                        .find(|t| t.logical == entity || t.set == entity)
                        .map(|t| t.logical)
                        .ok_or_else(|| {
                            Error::config(format!("webhook event `{e}` names an unknown table"))
                        })?;
                    Ok((entity.to_owned(), message.to_owned()))
                })
                .collect::<Result<_>>()?
        };
        let messages: Value =
            send_checked(headers(conn.get(&format!("{root}/sdkmessages"))))?.json()?;
        let filters: Value =
            send_checked(headers(conn.get(&format!("{root}/sdkmessagefilters"))))?.json()?;
        let rows = |v: &Value| {
            v.get("value")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let (messages, filters) = (rows(&messages), rows(&filters));
        for (entity, message) in wanted {
            let message_id = messages
                .iter()
                .find(|m| {
                    m.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(&message))
                })
                .and_then(|m| m.get("sdkmessageid").and_then(Value::as_str))
                .ok_or_else(|| Error::config(format!("Dataverse has no message `{message}`")))?;
            let filter_id = filters
                .iter()
                .find(|f| {
                    f.get("primaryobjecttypecode").and_then(Value::as_str) == Some(entity.as_str())
                        && f.get("_sdkmessageid_value").and_then(Value::as_str) == Some(message_id)
                })
                .and_then(|f| f.get("sdkmessagefilterid").and_then(Value::as_str))
                .ok_or_else(|| {
                    Error::config(format!(
                        "Dataverse has no `{message}` filter for `{entity}`"
                    ))
                })?;
            send_checked(headers(conn.post(&format!("{root}/sdkmessageprocessingsteps"))).json(&json!({
                "name": format!("weft {entity} {message}"),
                "stage": 40,
                "mode": 1,
                "sdkmessageid@odata.bind": format!("/sdkmessages({message_id})"),
                "sdkmessagefilterid@odata.bind": format!("/sdkmessagefilters({filter_id})"),
                "eventhandler_serviceendpoint@odata.bind": format!("/serviceendpoints({endpoint_id})"),
            }))?)?;
        }
        Ok(Subscription {
            id: endpoint_id,
            expires_at: None,
        })
    }

    /// Deletes the endpoint's steps, then the endpoint (Dataverse keeps an endpoint that steps
    /// still use). Rows already gone count as deleted.
    fn unsubscribe(conn: &Connection, subscription_id: &str) -> Result<()> {
        let config = Config::of(conn)?;
        let root = config.root();
        let id = weft_sdk::http::percent_encode(subscription_id);
        let steps: Value = send_checked(
            headers(conn.get(&format!("{root}/sdkmessageprocessingsteps"))).query(
                "$filter",
                format!("_eventhandler_value eq {subscription_id}"),
            ),
        )?
        .json()?;
        let step_ids = steps
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("sdkmessageprocessingstepid").and_then(Value::as_str));
        let urls: Vec<String> = step_ids
            .map(|s| {
                format!(
                    "{root}/sdkmessageprocessingsteps({})",
                    weft_sdk::http::percent_encode(s)
                )
            })
            .chain([format!("{root}/serviceendpoints({id})")])
            .collect();
        for url in urls {
            let resp = headers(conn.delete(&url)).send()?;
            if !resp.is_success() && resp.status != 404 {
                return Err(failure(resp.status, &resp.body, resp.retry_after()));
            }
        }
        Ok(())
    }
}

/// The header value Dataverse sends back on deliveries: hex HMAC-SHA256 of a fixed label under
/// the connection's webhook secret, so the secret itself never leaves the host.
fn webhook_key(conn: &Connection) -> Result<String> {
    let mac = conn.webhook_mac(MacAlgorithm::HmacSha256, b"weft dynamics365 webhook key")?;
    Ok(mac.iter().map(|b| format!("{b:02x}")).collect())
}

/// The id in an `OData-EntityId: …/set(<id>)` header.
fn entity_id(resp: &weft_sdk::http::Response) -> Option<String> {
    id_in(resp.header("OData-EntityId")?)
}

fn id_in(entity_url: &str) -> Option<String> {
    let (_, rest) = entity_url.trim().rsplit_once('(')?;
    Some(rest.trim_end_matches(')').to_owned())
}

/// WCF `/Date(1506384247000)/` as RFC 3339.
fn wcf_date(text: &str) -> Option<String> {
    let ms: i64 = text
        .trim_matches('/')
        .strip_prefix("Date(")?
        .split([')', '+', '-'])
        .next()?
        .parse()
        .ok()?;
    Some(rfc3339(ms))
}

fn rfc3339(ms: i64) -> String {
    // `2025-01-31T12:34:56Z`: the SDK's form, to the second.
    format!("{}Z", &weft_sdk::time::format_rfc3339_ms(ms)[..19])
}

mod batch;

weft_sdk::export_connector!(Dynamics365);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wcf_dates_become_rfc3339() {
        assert_eq!(
            wcf_date("/Date(1506384247000)/").as_deref(),
            Some("2017-09-26T00:04:07Z")
        );
        assert_eq!(wcf_date("nonsense"), None);
    }
}
