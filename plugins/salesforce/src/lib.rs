//! `salesforce`: the Salesforce REST API (crm-apis.md §3) as weft streams.
//!
//! **Reads** `Account`, `Contact`, `Lead`, `Opportunity`, `Task`, `Campaign` and
//! `CampaignMember` (which has no `OwnerId`) with SOQL, full and
//! incremental alike: `SELECT … FROM {object} WHERE (SystemModstamp > :t) OR (SystemModstamp = :t
//! AND Id > :id) ORDER BY SystemModstamp ASC, Id ASC LIMIT {page}`. The cursor is that keyset
//! (the last record's `SystemModstamp` and `Id`), a value rather than a server-side locator, so a
//! cursor committed days ago still resumes exactly after the last record delivered, ties on
//! `SystemModstamp` included. When Salesforce answers a batch smaller than the `LIMIT` ("based on
//! the size and complexity of records queried") the cursor also carries `nextRecordsUrl`, which
//! the next page follows; a locator that has expired (`INVALID_QUERY_LOCATOR`) falls back to the
//! keyset. Pages are at most 2,000 records (`page_size` lowers it); the first page of a full read
//! carries the record count (`SELECT COUNT()`). A changed record moves to the
//! end of the order, so a record changed during a read may arrive twice — never not at all.
//! `limits` reads `/limits` (`DailyApiRequests` and the rest: `Max`, `Remaining`), what an import
//! estimate is compared with.
//!
//! **Writes** through sObject collections (`/composite/sobjects`), 200 records per call with
//! `allOrNone=false`, one outcome per record in order: `create` (POST), `update` (PATCH, records
//! carry `Id`), `upsert` (PATCH `/composite/sobjects/{object}/{key}` with an external-ID key field;
//! with key `Id` records with an `Id` are updated and the rest created) and `delete`.
//! `Task` is how activities are written back to a matched record (`WhoId`, `WhatId`).
//!
//! **Errors**: 401 `INVALID_SESSION_ID` is `auth` (the host re-mints the JWT once first), 403
//! `REQUEST_LIMIT_EXCEEDED` is `rate-limited` (Salesforce states no wait: the allocation is a
//! rolling 24 hours), `MALFORMED_QUERY`/`INVALID_FIELD`/`INVALID_TYPE` on a query are `config`
//! (usually a `custom_fields` entry the org lacks), 5xx `upstream`.
//!
//! **Webhooks**: Salesforce has no signed HTTP webhook for record changes (Change Data Capture
//! is consumed over the Pub/Sub API or CometD, Outbound Messages are SOAP), so `verify` rejects
//! every delivery and says so.
//!
//! **Config** (all optional):
//! - `instance_url`: the org's REST host, e.g. `https://acme.my.salesforce.com`. Normally it comes
//!   from the token response (`token-info` → `instance_url`); set it to override, e.g. the
//!   sandbox emulator's `http://127.0.0.1:PORT`.
//! - `api_version`: default `66.0`.
//! - `custom_fields`: per object, custom fields to read as well, e.g.
//!   `{ Opportunity = ["Sync_with_Partner_Center__c", "External_Id__c"] }`.
//!
//! **Auth**: `jwt-bearer` (server to server, no refresh token: the host signs a new assertion when
//! the session ends) or `oauth2-refresh`, both applied as `Authorization: Bearer {token}`; the
//! token endpoint is the login host's `/services/oauth2/token` (`https://login.salesforce.com`,
//! `https://test.salesforce.com` for sandboxes, or the org's My Domain).
//!
//! **Egress**: the connector derives `login.salesforce.com` and `test.salesforce.com`. The instance
//! host is only known from the token response, and egress templates substitute config keys
//! only (wildcards such as `*.my.salesforce.com` are refused), so a production connection lists
//! its instance explicitly: `egress = [{ host = "acme.my.salesforce.com" }]` (and a My Domain login
//! host if it uses one).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weft_sdk::http::{Response, percent_encode};
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, Error, InboundRequest, Page, ReadRequest,
    Record, Result, Stream, Value, Verification, WriteMode, WriteOutcome, WriteRequest,
    authorization_header, json,
};

const DEFAULT_API_VERSION: &str = "66.0";
/// Salesforce's largest query batch.
const MAX_PAGE: u32 = 2_000;
/// Records per sObject-collection call.
const COLLECTION_LIMIT: usize = 200;
const TOKEN_URL: &str = "https://login.salesforce.com/services/oauth2/token";

/// A field of an sObject and its JSON Schema type.
#[derive(Clone, Copy)]
enum Kind {
    Id,
    Text,
    Email,
    Number,
    Integer,
    Date,
    DateTime,
    Boolean,
}

struct SObject {
    name: &'static str,
    description: &'static str,
    /// Standard fields every org has; SOQL selects them all.
    fields: &'static [(&'static str, Kind)],
    /// Fields that exist only in some orgs (custom fields weft's scenarios use, multi-currency's
    /// `CurrencyIsoCode`): in the schema, selected only when `custom_fields` lists them.
    optional: &'static [(&'static str, Kind)],
    /// Whether records have an owner (`OwnerId`); a CampaignMember does not.
    owned: bool,
}

impl SObject {
    /// The system fields this object has.
    fn system(&self) -> impl Iterator<Item = &'static (&'static str, Kind)> + use<> {
        let owned = self.owned;
        SYSTEM
            .iter()
            .filter(move |(name, _)| owned || *name != "OwnerId")
    }
}

const SYSTEM: &[(&str, Kind)] = &[
    ("Id", Kind::Id),
    ("OwnerId", Kind::Id),
    ("IsDeleted", Kind::Boolean),
    ("CreatedDate", Kind::DateTime),
    ("CreatedById", Kind::Id),
    ("LastModifiedDate", Kind::DateTime),
    ("LastModifiedById", Kind::Id),
    ("SystemModstamp", Kind::DateTime),
];

/// Audit fields no write may set; dropped from written records so a record read from
/// Salesforce can be written back.
const READ_ONLY: &[&str] = &[
    "attributes",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
];

const EXTERNAL_ID: (&str, Kind) = ("External_Id__c", Kind::Text);

const OBJECTS: &[SObject] = &[
    SObject {
        name: "Account",
        description: "Accounts (companies).",
        fields: &[
            ("Name", Kind::Text),
            ("Type", Kind::Text),
            ("Industry", Kind::Text),
            ("Website", Kind::Text),
            ("Phone", Kind::Text),
            ("NumberOfEmployees", Kind::Integer),
            ("AnnualRevenue", Kind::Number),
            ("BillingCity", Kind::Text),
            ("BillingState", Kind::Text),
            ("BillingCountry", Kind::Text),
            ("Description", Kind::Text),
        ],
        optional: &[EXTERNAL_ID],
        owned: true,
    },
    SObject {
        name: "Contact",
        description: "Contacts, with their AccountId.",
        fields: &[
            ("FirstName", Kind::Text),
            ("LastName", Kind::Text),
            ("Name", Kind::Text),
            ("Email", Kind::Email),
            ("Phone", Kind::Text),
            ("Title", Kind::Text),
            ("AccountId", Kind::Id),
            ("LeadSource", Kind::Text),
            ("MailingCity", Kind::Text),
        ],
        optional: &[EXTERNAL_ID],
        owned: true,
    },
    SObject {
        name: "Lead",
        description: "Leads.",
        fields: &[
            ("FirstName", Kind::Text),
            ("LastName", Kind::Text),
            ("Name", Kind::Text),
            ("Company", Kind::Text),
            ("Email", Kind::Email),
            ("Phone", Kind::Text),
            ("Title", Kind::Text),
            ("Status", Kind::Text),
            ("LeadSource", Kind::Text),
            ("IsConverted", Kind::Boolean),
        ],
        optional: &[EXTERNAL_ID],
        owned: true,
    },
    SObject {
        name: "Opportunity",
        description: "Opportunities, with their AccountId and stage.",
        fields: &[
            ("Name", Kind::Text),
            ("AccountId", Kind::Id),
            ("Amount", Kind::Number),
            ("StageName", Kind::Text),
            ("CloseDate", Kind::Date),
            ("Probability", Kind::Number),
            ("IsClosed", Kind::Boolean),
            ("IsWon", Kind::Boolean),
            ("Type", Kind::Text),
            ("Description", Kind::Text),
        ],
        optional: &[
            ("CurrencyIsoCode", Kind::Text),
            ("Sync_with_Partner_Center__c", Kind::Text),
            EXTERNAL_ID,
            // The Partner Center co-sell fields (scenario 5).
            ("Partner_Center_Co_Sell__c", Kind::Text),
            ("Partner_Center_Solution__c", Kind::Text),
            ("Partner_Center_Contact_Email__c", Kind::Email),
            ("Partner_Center_Referral_Id__c", Kind::Text),
            ("Partner_Center_Referral_Link__c", Kind::Text),
            ("Microsoft_CRM_Id__c", Kind::Text),
            ("Partner_Center_Status__c", Kind::Text),
            ("Partner_Center_Direction__c", Kind::Text),
            ("Partner_Center_Audit__c", Kind::Text),
            ("Partner_Center_Sync_Status__c", Kind::Text),
        ],
        owned: true,
    },
    SObject {
        name: "Task",
        description: "Tasks: activities logged against a contact or lead (WhoId) and a record (WhatId).",
        fields: &[
            ("Subject", Kind::Text),
            ("Status", Kind::Text),
            ("Priority", Kind::Text),
            ("ActivityDate", Kind::Date),
            ("Description", Kind::Text),
            ("WhoId", Kind::Id),
            ("WhatId", Kind::Id),
            ("TaskSubtype", Kind::Text),
        ],
        // An external id on activities makes writing one back idempotent (upsert on it).
        optional: &[EXTERNAL_ID],
        owned: true,
    },
    SObject {
        name: "Campaign",
        description: "Campaigns (webinars, trade shows, emails).",
        fields: &[
            ("Name", Kind::Text),
            ("Type", Kind::Text),
            ("Status", Kind::Text),
            ("IsActive", Kind::Boolean),
            ("StartDate", Kind::Date),
            ("EndDate", Kind::Date),
            ("Description", Kind::Text),
        ],
        optional: &[],
        owned: true,
    },
    SObject {
        name: "CampaignMember",
        description: "Campaign members: a contact (ContactId) or a lead (LeadId) of a campaign (CampaignId).",
        fields: &[
            ("CampaignId", Kind::Id),
            ("ContactId", Kind::Id),
            ("LeadId", Kind::Id),
            ("Status", Kind::Text),
            ("HasResponded", Kind::Boolean),
        ],
        optional: &[],
        owned: false,
    },
];

fn object(stream: &str) -> Result<&'static SObject> {
    OBJECTS.iter().find(|o| o.name == stream).ok_or_else(|| {
        let known: Vec<&str> = OBJECTS.iter().map(|o| o.name).chain(["limits"]).collect();
        Error::config(format!(
            "salesforce has no stream `{stream}`; it has: {}",
            known.join(", ")
        ))
    })
}

fn schema_of(kind: Kind) -> Value {
    match kind {
        Kind::Id | Kind::Text => json!({"type": ["string", "null"]}),
        Kind::Email => json!({"type": ["string", "null"], "format": "email"}),
        Kind::Number => json!({"type": ["number", "null"]}),
        Kind::Integer => json!({"type": ["integer", "null"]}),
        Kind::Date => json!({"type": ["string", "null"], "format": "date"}),
        Kind::DateTime => json!({"type": ["string", "null"], "format": "date-time"}),
        Kind::Boolean => json!({"type": ["boolean", "null"]}),
    }
}

fn record_schema(o: &SObject) -> Value {
    let mut props = serde_json::Map::new();
    for (name, kind) in o.system().chain(o.fields).chain(o.optional) {
        props.insert((*name).into(), schema_of(*kind));
    }
    props.insert(
        "Id".into(),
        json!({"type": "string", "description": "18-character record ID"}),
    );
    json!({"type": "object", "required": ["Id", "SystemModstamp"], "properties": props})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    instance_url: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    custom_fields: BTreeMap<String, Vec<String>>,
}

/// Where a connection's REST API lives.
struct Api {
    instance: String,
    root: String,
    config: Config,
}

impl Api {
    fn of(conn: &Connection) -> Result<Api> {
        let config: Config = conn.config_as()?;
        let version = config
            .api_version
            .as_deref()
            .unwrap_or(DEFAULT_API_VERSION)
            .trim_start_matches('v')
            .to_owned();
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(Error::config(format!(
                "connection `{}`: api_version `{version}` is not a version like 66.0",
                conn.name()
            )));
        }
        let instance = match &config.instance_url {
            Some(url) => url.clone(),
            None => conn.token_info()?.remove("instance_url").ok_or_else(|| {
                Error::config(format!(
                    "connection `{}`: the token response carried no instance_url; set `instance_url` in the connection's config",
                    conn.name()
                ))
            })?,
        };
        let instance = instance.trim_end_matches('/').to_owned();
        let root = format!("{instance}/services/data/v{version}");
        Ok(Api {
            instance,
            root,
            config,
        })
    }

    /// The fields a query of `o` selects: the standard ones plus the configured custom ones.
    fn fields(&self, o: &SObject) -> Result<Vec<String>> {
        let mut fields: Vec<String> = o
            .system()
            .chain(o.fields)
            .map(|(n, _)| (*n).to_owned())
            .collect();
        for extra in self.config.custom_fields.get(o.name).into_iter().flatten() {
            if extra.is_empty() || !extra.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::config(format!(
                    "custom_fields.{}: `{extra}` is not a field name",
                    o.name
                )));
            }
            if !fields.contains(extra) {
                fields.push(extra.clone());
            }
        }
        Ok(fields)
    }
}

/// Salesforce errors are JSON arrays of `{message, errorCode, fields}`.
#[derive(Deserialize)]
struct ApiError {
    #[serde(default, rename = "errorCode")]
    code: String,
    #[serde(default)]
    message: String,
}

/// The response when its status is a success, otherwise the error it means.
fn checked(resp: Response) -> Result<Response> {
    if resp.is_success() {
        return Ok(resp);
    }
    let first = serde_json::from_slice::<Vec<ApiError>>(&resp.body)
        .ok()
        .and_then(|e| e.into_iter().next());
    let (code, message) = first.map(|e| (e.code, e.message)).unwrap_or_default();
    match (resp.status, code.as_str()) {
        (401, _) => Err(Error::auth(format!(
            "Salesforce refused the session ({code}: {message})"
        ))),
        (403, "REQUEST_LIMIT_EXCEEDED") => Err(Error::rate_limited(
            resp.retry_after(),
            format!(
                "Salesforce's API request limit is used up ({message}); it is a rolling 24-hour allocation"
            ),
        )),
        (400, "MALFORMED_QUERY" | "INVALID_FIELD" | "INVALID_TYPE") => Err(Error::config(format!(
            "Salesforce refused the query ({code}): {message}. Check `custom_fields` in the connection's config"
        ))),
        _ => resp.error_for_status(),
    }
}

/// Where a read resumes: after the record with this `SystemModstamp` and `Id`.
#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Resume {
    /// `SystemModstamp` of the last record delivered (any RFC 3339 form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stamp: Option<String>,
    /// Its `Id`, breaking ties on `stamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// The rest of the current query's answer, when Salesforce split it into batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

impl Resume {
    /// Checks what goes into SOQL: a cursor is stored text, not trusted.
    fn validated(self) -> Result<Resume> {
        let bad = |what: &str| {
            Error::config(format!(
                "the stored cursor's {what} is not valid; reset the flow's cursor to read from the beginning"
            ))
        };
        if let Some(stamp) = &self.stamp
            && weft_sdk::time::parse_rfc3339_ms(stamp).is_none()
        {
            return Err(bad("SystemModstamp"));
        }
        if let Some(id) = &self.id
            && (!(id.len() == 15 || id.len() == 18)
                || !id.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(bad("Id"));
        }
        if let Some(next) = &self.next
            && !next.starts_with("/services/data/")
        {
            return Err(bad("nextRecordsUrl"));
        }
        Ok(self)
    }
}

/// A SOQL datetime literal for `stamp`, exact to the millisecond.
fn soql_datetime(stamp: &str) -> Result<String> {
    let ms = weft_sdk::time::parse_rfc3339_ms(stamp)
        .ok_or_else(|| Error::internal(format!("not a timestamp: {stamp}")))?;
    let text = weft_sdk::time::format_rfc3339_ms(ms);
    // Whole seconds (Salesforce's own precision) in the documented `…ssZ` form.
    Ok(match text.strip_suffix(".000Z") {
        Some(seconds) => format!("{seconds}Z"),
        None => text,
    })
}

fn soql(o: &SObject, fields: &[String], after: &Resume, limit: u32) -> Result<String> {
    let filter = match (&after.stamp, &after.id) {
        (Some(stamp), Some(id)) => {
            let t = soql_datetime(stamp)?;
            format!(" WHERE (SystemModstamp > {t}) OR (SystemModstamp = {t} AND Id > '{id}')")
        }
        (Some(stamp), None) => format!(" WHERE SystemModstamp > {}", soql_datetime(stamp)?),
        _ => String::new(),
    };
    Ok(format!(
        "SELECT {} FROM {}{filter} ORDER BY SystemModstamp ASC, Id ASC LIMIT {limit}",
        fields.join(", "),
        o.name
    ))
}

#[derive(Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    done: bool,
    #[serde(default, rename = "nextRecordsUrl")]
    next_records_url: Option<String>,
    #[serde(default)]
    records: Vec<Record>,
}

fn read_object(conn: &Connection, api: &Api, o: &SObject, req: &ReadRequest) -> Result<Page> {
    let resume: Resume = req
        .cursor_state::<Resume>()?
        .unwrap_or_default()
        .validated()?;
    let limit = req.page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let fields = api.fields(o)?;
    let from_locator = match &resume.next {
        Some(next) => {
            let resp = conn.get(&format!("{}{next}", api.instance)).send()?;
            let expired = resp.status == 400
                && serde_json::from_slice::<Vec<ApiError>>(&resp.body)
                    .is_ok_and(|e| e.iter().any(|e| e.code == "INVALID_QUERY_LOCATOR"));
            if expired {
                weft_sdk::log::info(
                    "query locator expired; resuming from the keyset",
                    &[("object", o.name)],
                );
                None
            } else {
                Some(checked(resp)?.json::<QueryAnswer>()?)
            }
        }
        None => None,
    };
    let (answer, limited) = match from_locator {
        Some(answer) => (answer, false),
        None => {
            let q = soql(o, &fields, &resume, limit)?;
            let answer = checked(
                conn.get(&format!("{}/query", api.root))
                    .query("q", &q)
                    .send()?,
            )?
            .json::<QueryAnswer>()?;
            (answer, true)
        }
    };
    // The first page of a full read says how many records the read will bring (one COUNT()
    // query), so progress and import estimates have a total.
    let total = match (&req.mode, &req.cursor) {
        (weft_sdk::SyncMode::Full, None) => Some(count(conn, api, o)?),
        _ => None,
    };
    let mut records = answer.records;
    for r in &mut records {
        r.remove("attributes");
    }
    let last = records.last().map(|r| Resume {
        stamp: r
            .get("SystemModstamp")
            .and_then(Value::as_str)
            .map(str::to_owned),
        id: r.get("Id").and_then(Value::as_str).map(str::to_owned),
        next: None,
    });
    let mut position = last.unwrap_or(Resume {
        next: None,
        ..resume
    });
    if position.stamp.is_none() && records.last().is_some() {
        return Err(Error::upstream(
            200,
            b"a queried record carries no SystemModstamp",
        ));
    }
    if !answer.done {
        position.next = answer.next_records_url.clone();
        if position.next.is_none() {
            return Err(Error::upstream(
                200,
                b"the query answer is not done but has no nextRecordsUrl",
            ));
        }
        return Ok(with_total(Page::more(records, &position), total));
    }
    // A batch that filled its LIMIT may have more behind it; a shorter one ended the stream.
    // After following a locator the LIMIT is not known here, so ask once more.
    if !limited || records.len() as u32 >= limit {
        return Ok(with_total(Page::more(records, &position), total));
    }
    Ok(with_total(Page::last(records, Some(&position)), total))
}

fn with_total(page: Page, total: Option<u64>) -> Page {
    match total {
        Some(n) => page.with_total(n),
        None => page,
    }
}

fn count(conn: &Connection, api: &Api, o: &SObject) -> Result<u64> {
    #[derive(Deserialize)]
    struct Count {
        #[serde(rename = "totalSize")]
        total: u64,
    }
    let q = format!("SELECT COUNT() FROM {}", o.name);
    Ok(checked(
        conn.get(&format!("{}/query", api.root))
            .query("q", &q)
            .send()?,
    )?
    .json::<Count>()?
    .total)
}

#[derive(Deserialize)]
struct Limit {
    #[serde(rename = "Max")]
    max: Option<u64>,
    #[serde(rename = "Remaining")]
    remaining: Option<u64>,
}

fn read_limits(conn: &Connection, api: &Api) -> Result<Page> {
    let answer: BTreeMap<String, Value> =
        checked(conn.get(&format!("{}/limits", api.root)).send()?)?.json()?;
    let records = answer
        .into_iter()
        .filter_map(|(name, v)| {
            let l: Limit = serde_json::from_value(v).ok()?;
            let mut r = Record::new();
            r.insert("name".into(), json!(name));
            r.insert("max".into(), json!(l.max));
            r.insert("remaining".into(), json!(l.remaining));
            Some(r)
        })
        .collect();
    Ok(Page::last::<()>(records, None))
}

/// One SaveResult/UpsertResult/DeleteResult of a collection call.
#[derive(Deserialize)]
struct ItemResult {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<ItemError>,
}

#[derive(Deserialize)]
struct ItemError {
    #[serde(default, rename = "statusCode", alias = "errorCode")]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

fn item_error(errors: &[ItemError]) -> Error {
    let text: Vec<String> = errors
        .iter()
        .map(|e| {
            if e.fields.is_empty() {
                format!("{}: {}", e.code, e.message)
            } else {
                format!("{}: {} ({})", e.code, e.message, e.fields.join(", "))
            }
        })
        .collect();
    Error::invalid_record(if text.is_empty() {
        "Salesforce refused the record without saying why".to_owned()
    } else {
        text.join("; ")
    })
}

fn writable(record: &Record, type_name: &str) -> Record {
    let mut out: Record = record
        .iter()
        .filter(|(k, _)| !READ_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("attributes".into(), json!({"type": type_name}));
    out
}

fn record_id(record: &Record) -> Option<String> {
    record
        .get("Id")
        .or_else(|| record.get("id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Sends one collection call for `records` (at most 200) and maps its per-item results.
fn collection(
    conn: &Connection,
    api: &Api,
    o: &SObject,
    mode: WriteMode,
    key: Option<&str>,
    records: &[Record],
) -> Result<Vec<WriteOutcome>> {
    let resp = match mode {
        WriteMode::Delete => {
            let ids: Vec<String> = records.iter().filter_map(record_id).collect();
            conn.delete(&format!("{}/composite/sobjects", api.root))
                .query("ids", ids.join(","))
                .query("allOrNone", "false")
                .send()?
        }
        _ => {
            let body = json!({"allOrNone": false, "records": records.iter().map(|r| writable(r, o.name)).collect::<Vec<_>>()});
            let url = match key {
                Some(field) => format!(
                    "{}/composite/sobjects/{}/{}",
                    api.root,
                    o.name,
                    percent_encode(field)
                ),
                None => format!("{}/composite/sobjects", api.root),
            };
            let request = match mode {
                WriteMode::Create => conn.post(&url),
                _ => conn.patch(&url),
            };
            request.json(&body)?.send()?
        }
    };
    let results: Vec<ItemResult> = checked(resp)?.json()?;
    if results.len() != records.len() {
        return Err(Error::upstream(
            200,
            format!(
                "Salesforce answered {} results for {} records",
                results.len(),
                records.len()
            )
            .as_bytes(),
        ));
    }
    Ok(results
        .into_iter()
        .map(|r| match (r.success, r.id) {
            (true, Some(id)) => match mode {
                WriteMode::Create => WriteOutcome::created(id),
                WriteMode::Delete => WriteOutcome::deleted(id),
                WriteMode::Upsert if r.created == Some(true) => WriteOutcome::created(id),
                _ => WriteOutcome::updated(id),
            },
            (true, None) => {
                WriteOutcome::failed(Error::internal("Salesforce reported success without an id"))
            }
            (false, _) => WriteOutcome::failed(item_error(&r.errors)),
        })
        .collect())
}

fn write_object(
    conn: &Connection,
    api: &Api,
    o: &SObject,
    req: &WriteRequest,
) -> Result<Vec<WriteOutcome>> {
    let key = match req.key.as_slice() {
        [] => None,
        [one] => Some(one.as_str()),
        more => {
            return Err(Error::config(format!(
                "Salesforce matches records on one field, not {}: {}",
                more.len(),
                more.join(", ")
            )));
        }
    };
    // Each record either goes to one of these calls or fails here; outcomes keep input order.
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; req.records.len()];
    let mut calls: Vec<(WriteMode, Vec<usize>)> = Vec::new();
    let lane = |mode: WriteMode, index: usize, calls: &mut Vec<(WriteMode, Vec<usize>)>| match calls
        .iter_mut()
        .find(|(m, _)| *m == mode)
    {
        Some((_, list)) => list.push(index),
        None => calls.push((mode, vec![index])),
    };
    let key_is_id = key.is_none_or(|k| k.eq_ignore_ascii_case("Id"));
    if matches!(req.mode, WriteMode::Update | WriteMode::Delete) && !key_is_id {
        return Err(Error::config(format!(
            "Salesforce updates and deletes records by Id; the key is `{}` (upsert matches on an external ID)",
            key.unwrap_or_default()
        )));
    }
    let mut external: Vec<usize> = Vec::new();
    for (i, record) in req.records.iter().enumerate() {
        let has_id = record_id(record).is_some();
        match req.mode {
            WriteMode::Create => lane(WriteMode::Create, i, &mut calls),
            WriteMode::Update | WriteMode::Delete if !has_id => {
                outcomes[i] = Some(WriteOutcome::failed(Error::invalid_record(
                    "the record has no Id",
                )));
            }
            WriteMode::Update => lane(WriteMode::Update, i, &mut calls),
            WriteMode::Delete => lane(WriteMode::Delete, i, &mut calls),
            WriteMode::Upsert if key_is_id => lane(
                if has_id {
                    WriteMode::Update
                } else {
                    WriteMode::Create
                },
                i,
                &mut calls,
            ),
            WriteMode::Upsert => {
                let field = key.unwrap_or_default();
                if record
                    .get(field)
                    .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
                {
                    outcomes[i] = Some(WriteOutcome::failed(Error::invalid_record(format!(
                        "the record has no value for the external ID `{field}`"
                    ))));
                } else {
                    external.push(i);
                }
            }
        }
    }
    let mut planned: Vec<(WriteMode, Option<String>, Vec<usize>)> =
        calls.into_iter().map(|(m, l)| (m, None, l)).collect();
    if !external.is_empty() {
        planned.push((WriteMode::Upsert, key.map(str::to_owned), external));
    }
    for (mode, key, indices) in planned {
        for chunk in indices.chunks(COLLECTION_LIMIT) {
            let records: Vec<Record> = chunk.iter().map(|i| req.records[*i].clone()).collect();
            let results = collection(conn, api, o, mode, key.as_deref(), &records)?;
            for (i, outcome) in chunk.iter().zip(results) {
                outcomes[*i] = Some(outcome);
            }
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| WriteOutcome::failed(Error::internal("record was not sent"))))
        .collect())
}

pub struct Salesforce;

impl Connector for Salesforce {
    fn describe() -> ConnectorInfo {
        let bearer = authorization_header("Bearer");
        let mut info = ConnectorInfo::new("salesforce", env!("CARGO_PKG_VERSION"))
            .description("Salesforce REST API: SOQL reads by SystemModstamp keyset and nextRecordsUrl, sObject-collection writes, the daily API limit.")
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "instance_url": {"type": "string", "format": "uri", "description": "The org's REST host; default: instance_url from the token response"},
                    "api_version": {"type": "string", "default": DEFAULT_API_VERSION, "pattern": "^v?[0-9]+\\.[0-9]+$"},
                    "custom_fields": {
                        "type": "object",
                        "description": "Custom fields to read per object, e.g. {\"Opportunity\": [\"Sync_with_Partner_Center__c\"]}",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}}
                    }
                }
            }))
            .oauth(AuthKind::JwtBearer, bearer.clone(), TOKEN_URL)
            .oauth(AuthKind::Oauth2Refresh, bearer, TOKEN_URL)
            // The instance from the config; without it, the token response's instance_url,
            // which the flow lists in the connection's egress. The login hosts are reached as
            // the auth's token_url.
            .host("{instance_url?}")
            .host("https://login.salesforce.com")
            .host("https://test.salesforce.com")
            // The base daily allocation over a rolling 24 hours (more with licences and add-ons).
            .rate_limit(100_000, std::time::Duration::from_secs(24 * 3_600));
        for o in OBJECTS {
            info = info.stream(
                Stream::new(o.name, record_schema(o))
                    .description(o.description)
                    .primary_key(&["Id"])
                    .incremental("SystemModstamp")
                    .writable(&[
                        WriteMode::Create,
                        WriteMode::Update,
                        WriteMode::Upsert,
                        WriteMode::Delete,
                    ]),
            );
        }
        info.stream(
            Stream::new(
                "limits",
                json!({"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "description": "e.g. DailyApiRequests"},
                    "max": {"type": ["integer", "null"]},
                    "remaining": {"type": ["integer", "null"]}
                }}),
            )
            .description("The org's limits from /limits: DailyApiRequests and the rest, with Max and Remaining.")
            .primary_key(&["name"]),
        )
    }

    fn check(conn: &Connection) -> Result<()> {
        let api = Api::of(conn)?;
        checked(conn.get(&format!("{}/limits", api.root)).send()?)?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        if req.stream == "limits" {
            return read_limits(conn, &Api::of(conn)?);
        }
        let o = object(&req.stream)?;
        read_object(conn, &Api::of(conn)?, o, &req)
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        let o = object(&req.stream)?;
        if req.records.is_empty() {
            return Ok(Vec::new());
        }
        write_object(conn, &Api::of(conn)?, o, &req)
    }

    fn verify(_conn: &Connection, _req: InboundRequest) -> Result<Verification> {
        Ok(Verification::Rejected(
            "Salesforce sends no signed HTTP webhooks for record changes (Change Data Capture needs the Pub/Sub API); read incrementally instead".into(),
        ))
    }
}

weft_sdk::export_connector!(Salesforce);
