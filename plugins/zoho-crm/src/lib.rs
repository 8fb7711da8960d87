//! `zoho-crm`: Zoho CRM's REST API (v7 by default) as weft streams, one per module.
//!
//! **Streams.** The standard modules `Leads`, `Contacts`, `Accounts` and `Deals`, and the two
//! custom modules weft's Zendesk integration package installs in an org: `Zendesk_Tickets`
//! (subject as `Name`, `Zendesk_Ticket_Id` unique, status, priority, type, tags, requester and
//! assignee emails, lookups `Account`, `Contact`, `Lead`) and `Zendesk_Comments` (`Ticket`
//! lookup, `Zendesk_Comment_Id` unique, body, author, public).
//!
//! **Reads.** Every module lists with
//! `GET {api}/crm/v7/{module}?fields=…&per_page=N` (`fields` is mandatory, at most 50; `per_page`
//! at most 200). A full read (by `id`) follows `info.next_page_token` as `page_token`: plain
//! `page` numbers stop at 2,000 records, page tokens reach 100,000; a token that expired (24 h)
//! or no longer fits the request restarts the pass, which at worst repeats records.
//! Incremental reads are sorted by `Modified_Time` and continue by keyset: every page sends
//! `If-Modified-Since` a second before the newest `Modified_Time` read so far (the previous
//! pass's, on a first page) and drops what it read already (records before that second, and
//! the ids read at it). Zoho's pages shift when records change during a read; keyset
//! continuation reads an edited record again at the end instead of skipping another one. A
//! page token is followed only through a second holding more than a page of records. Zoho
//! answers 304 when nothing changed. Read option `fields` (array) adds custom fields.
//!
//! **Writes.** At most 100 records per call, one `data[]` entry per record in order, mixed
//! results answered 207: `create` is `POST /{module}`, `update` `PUT /{module}` (each record
//! carries `id`), `upsert` `POST /{module}/upsert` with `duplicate_check_fields` set to the
//! write's key (`id` alone matches by record id), `delete` `DELETE /{module}?ids=…`.
//!
//! **Errors.** 429 `TOO_MANY_REQUESTS` is `rate-limited` (Zoho gives no wait); 401 `auth`
//! (the host refreshes the token once and retries first); 5xx `upstream`; a cursor Zoho refuses
//! is a `config` error.
//!
//! **Notifications.** `subscribe` enables a watch channel (`POST /actions/watch`, events such
//! as `Leads.create` or a module name for all of its events, expiring after at most a week;
//! renew by subscribing again). Zoho does not sign callbacks: it echoes the channel's `token`.
//! The connector derives that token from the channel id with the host's `webhook-keys` MAC
//! (HMAC-SHA256 under the connection's `webhook_secret`), so `verify` recomputes it without any
//! stored state and without seeing the secret. A callback whose body was altered elsewhere than
//! in `channel_id` and `token` cannot be told apart: Zoho offers nothing to check it with.
//!
//! **Config.** `data_center` (`us`, `eu`, `in`, `au`, `jp`, `ca`, `cn`, `sa`, `uk`, `ae`;
//! required unless `api_url` is given: it is what allows the data centre's hosts), `environment` (`production`, `sandbox`, `developer`), `api_version` (`v7`), and the
//! explicit overrides `api_url` (replaces the data centre's API domain, e.g. the local sandbox)
//! and `accounts_url` (the OAuth host, for the connection's token URL). Auth is `oauth2-refresh`
//! with `Authorization: Zoho-oauthtoken {token}`, the token URL on the data centre's accounts
//! host (`https://accounts.zoho.eu/oauth/v2/token`, ...).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sdk::http::Response;
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, Error, Event, InboundRequest, MacAlgorithm,
    Page, ReadRequest, Record, Result, Stream, Subscription, SyncMode, Value, Verification,
    WriteMode, WriteOutcome, WriteRequest, authorization_header, constant_time_eq, json,
};

const MAX_PER_PAGE: u32 = 200;
const MAX_FIELDS: usize = 50;
const MAX_WRITE: usize = 100;

/// Data centres: code, API domain suffix, accounts host.
const DATA_CENTERS: [(&str, &str, &str); 10] = [
    ("us", "zohoapis.com", "accounts.zoho.com"),
    ("eu", "zohoapis.eu", "accounts.zoho.eu"),
    ("in", "zohoapis.in", "accounts.zoho.in"),
    ("au", "zohoapis.com.au", "accounts.zoho.com.au"),
    ("jp", "zohoapis.jp", "accounts.zoho.jp"),
    ("ca", "zohoapis.ca", "accounts.zohocloud.ca"),
    ("cn", "zohoapis.com.cn", "accounts.zoho.com.cn"),
    ("sa", "zohoapis.sa", "accounts.zoho.sa"),
    ("uk", "zohoapis.uk", "accounts.zoho.uk"),
    ("ae", "zohoapis.ae", "accounts.zoho.ae"),
];
const ENVIRONMENTS: [(&str, &str); 3] = [
    ("production", "www"),
    ("sandbox", "sandbox"),
    ("developer", "developer"),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Required unless `api_url` is given: it decides which hosts the connection may reach.
    #[serde(default)]
    data_center: Option<String>,
    #[serde(default = "default_environment")]
    environment: String,
    #[serde(default = "default_version")]
    api_version: String,
    /// Zoho calls the API host the `api_domain` (its token responses carry one).
    #[serde(default, alias = "api_domain")]
    api_url: Option<String>,
    /// Only the connection's token URL uses it; the plugin itself never calls the accounts host.
    #[serde(default)]
    #[allow(dead_code)]
    accounts_url: Option<String>,
}

fn default_environment() -> String {
    "production".into()
}
fn default_version() -> String {
    "v7".into()
}

impl Config {
    fn of(conn: &Connection) -> Result<Self> {
        let config: Config = conn.config_as()?;
        config.api_root(conn.name())?;
        if !config.api_version.starts_with('v') {
            return Err(Error::config(format!(
                "connection `{}`: api_version looks like `v7`",
                conn.name()
            )));
        }
        Ok(config)
    }

    fn api_root(&self, connection: &str) -> Result<String> {
        if let Some(url) = &self.api_url {
            return Ok(url.trim_end_matches('/').to_owned());
        }
        let known: Vec<&str> = DATA_CENTERS.iter().map(|d| d.0).collect();
        let Some(dc) = &self.data_center else {
            return Err(Error::config(format!(
                "connection `{connection}`: set data_center ({}) so weft knows which Zoho hosts the connection reaches, or api_url",
                known.join(", ")
            )));
        };
        // A data centre is named by its code (`eu`) or its API domain's suffix (`com.au`).
        let dc = dc.trim().to_ascii_lowercase();
        let Some((_, domain, _)) = DATA_CENTERS.iter().find(|(code, domain, _)| {
            *code == dc || domain.strip_prefix("zohoapis.") == Some(dc.as_str())
        }) else {
            return Err(Error::config(format!(
                "connection `{connection}`: unknown data_center `{dc}`; use one of {}",
                known.join(", ")
            )));
        };
        let Some((_, prefix)) = ENVIRONMENTS
            .iter()
            .find(|(name, _)| *name == self.environment)
        else {
            return Err(Error::config(format!(
                "connection `{connection}`: environment is production, sandbox or developer, not `{}`",
                self.environment
            )));
        };
        Ok(format!("https://{prefix}.{domain}"))
    }

    fn url(&self, path: &str) -> String {
        // `of` has checked the root already.
        format!(
            "{}/crm/{}/{path}",
            self.api_root("").unwrap_or_default(),
            self.api_version
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Module {
    Leads,
    Contacts,
    Accounts,
    Deals,
    /// The custom modules of weft's Zendesk integration package, which an org installs with it:
    /// Zendesk tickets, related to a lead, contact or account, and their comments.
    ZendeskTickets,
    ZendeskComments,
}

impl Module {
    const ALL: [Module; 6] = [
        Module::Leads,
        Module::Contacts,
        Module::Accounts,
        Module::Deals,
        Module::ZendeskTickets,
        Module::ZendeskComments,
    ];

    fn parse(name: &str) -> Result<Module> {
        Module::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            Error::config(format!("zoho-crm has no stream `{name}`; it has Leads, Contacts, Accounts, Deals, Zendesk_Tickets and Zendesk_Comments"))
        })
    }

    fn name(self) -> &'static str {
        match self {
            Module::Leads => "Leads",
            Module::Contacts => "Contacts",
            Module::Accounts => "Accounts",
            Module::Deals => "Deals",
            Module::ZendeskTickets => "Zendesk_Tickets",
            Module::ZendeskComments => "Zendesk_Comments",
        }
    }

    /// The module's own fields, by API name, with their JSON Schemas.
    fn fields(self) -> Vec<(&'static str, Value)> {
        let text = || json!({"type": "string"});
        let email = || json!({"type": "string", "format": "email"});
        let lookup = |module: &str| json!({"type": "object", "description": format!("lookup to {module}"), "properties": {"id": {"type": "string"}, "name": {"type": "string"}}});
        match self {
            Module::Leads => vec![
                ("First_Name", text()),
                ("Last_Name", text()),
                ("Full_Name", text()),
                ("Email", email()),
                ("Phone", text()),
                ("Mobile", text()),
                ("Title", text()),
                ("Company", text()),
                ("Lead_Status", text()),
                ("Lead_Source", text()),
                ("Industry", text()),
                ("City", text()),
                ("State", text()),
                ("Country", text()),
                ("Description", text()),
            ],
            Module::Contacts => vec![
                ("First_Name", text()),
                ("Last_Name", text()),
                ("Full_Name", text()),
                ("Email", email()),
                ("Phone", text()),
                ("Mobile", text()),
                ("Title", text()),
                ("Department", text()),
                ("Account_Name", lookup("Accounts")),
                ("Lead_Source", text()),
                ("Mailing_City", text()),
                ("Mailing_State", text()),
                ("Mailing_Country", text()),
                ("Description", text()),
            ],
            Module::Accounts => vec![
                ("Account_Name", text()),
                ("Account_Number", text()),
                ("Website", text()),
                ("Phone", text()),
                ("Industry", text()),
                ("Employees", json!({"type": "integer"})),
                ("Annual_Revenue", json!({"type": "number"})),
                ("Account_Type", text()),
                ("Parent_Account", lookup("Accounts")),
                ("Billing_Street", text()),
                ("Billing_City", text()),
                ("Billing_State", text()),
                ("Billing_Code", text()),
                ("Billing_Country", text()),
                ("Description", text()),
            ],
            Module::Deals => vec![
                ("Deal_Name", text()),
                ("Amount", json!({"type": "number"})),
                ("Stage", text()),
                ("Closing_Date", json!({"type": "string", "format": "date"})),
                ("Account_Name", lookup("Accounts")),
                ("Contact_Name", lookup("Contacts")),
                ("Pipeline", text()),
                ("Probability", json!({"type": "number"})),
                ("Type", text()),
                ("Lead_Source", text()),
                ("Description", text()),
            ],
            Module::ZendeskTickets => vec![
                ("Name", text()),
                ("Zendesk_Ticket_Id", text()),
                ("Status", text()),
                ("Priority", text()),
                ("Type", text()),
                ("Description", text()),
                (
                    "Tags",
                    json!({"type": "array", "items": {"type": "string"}}),
                ),
                ("Requester_Email", email()),
                ("Assignee_Email", email()),
                ("Account", lookup("Accounts")),
                ("Contact", lookup("Contacts")),
                ("Lead", lookup("Leads")),
                (
                    "Zendesk_Updated_At",
                    json!({"type": "string", "format": "date-time"}),
                ),
            ],
            Module::ZendeskComments => vec![
                ("Name", text()),
                ("Zendesk_Comment_Id", text()),
                ("Ticket", lookup("Zendesk_Tickets")),
                ("Body", text()),
                ("Author_Email", email()),
                ("Public", json!({"type": "boolean"})),
                (
                    "Zendesk_Created_At",
                    json!({"type": "string", "format": "date-time"}),
                ),
            ],
        }
    }

    fn schema(self) -> Value {
        let user = json!({"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "email": {"type": "string"}}});
        let mut properties = serde_json::Map::new();
        properties.insert(
            "id".into(),
            json!({"type": "string", "description": "Zoho record id (a long numeric string)"}),
        );
        for (name, schema) in self.fields() {
            properties.insert(name.into(), schema);
        }
        for name in ["Owner", "Created_By", "Modified_By"] {
            properties.insert(name.into(), user.clone());
        }
        for name in ["Created_Time", "Modified_Time"] {
            properties.insert(
                name.into(),
                json!({"type": "string", "format": "date-time"}),
            );
        }
        json!({"type": "object", "required": ["id"], "properties": properties})
    }

    /// The `fields` parameter: every field the schema lists, plus the read's extra ones.
    fn field_list(self, extra: &[String]) -> Result<String> {
        let mut names: Vec<String> = self
            .fields()
            .into_iter()
            .map(|(n, _)| n.to_owned())
            .collect();
        names.extend(
            [
                "Owner",
                "Created_By",
                "Modified_By",
                "Created_Time",
                "Modified_Time",
            ]
            .map(String::from),
        );
        for field in extra {
            if !names.contains(field) {
                names.push(field.clone());
            }
        }
        if names.len() > MAX_FIELDS {
            return Err(Error::config(format!(
                "Zoho lists at most {MAX_FIELDS} fields a read; this read asks for {}",
                names.len()
            )));
        }
        Ok(names.join(","))
    }
}

/// Where a read resumes: the previous pass's watermark, and the position in the current pass.
#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Resume {
    /// Newest `Modified_Time` of the last finished pass: the next pass's `If-Modified-Since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// Ids read at exactly `since`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page_token: Option<String>,
    /// The page size the pass started with: page tokens are bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_page: Option<u32>,
    /// Newest `Modified_Time` of this pass so far, and the ids read at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    newest_ids: Vec<String>,
}

impl Resume {
    /// Takes in a record's modification time, keeping the newest and the ids at it.
    fn note(&mut self, id: &str, modified: &str) {
        let Some(t) = time::unix_seconds(modified) else {
            return;
        };
        match self.newest.as_deref().and_then(time::unix_seconds) {
            Some(n) if n > t => {}
            Some(n) if n == t => {
                if !self.newest_ids.iter().any(|x| x == id) {
                    self.newest_ids.push(id.to_owned());
                }
            }
            _ => {
                self.newest = Some(modified.to_owned());
                self.newest_ids = vec![id.to_owned()];
            }
        }
    }

    /// The cursor a finished pass leaves for the next one.
    fn finished(self) -> Resume {
        match self.newest {
            None => Resume {
                since: self.since,
                seen: self.seen,
                ..Resume::default()
            },
            Some(newest) => {
                let same = self.since.as_deref().and_then(time::unix_seconds)
                    == time::unix_seconds(&newest);
                let mut seen = if same { self.seen } else { Vec::new() };
                for id in self.newest_ids {
                    if !seen.contains(&id) {
                        seen.push(id);
                    }
                }
                Resume {
                    since: Some(newest),
                    seen,
                    ..Resume::default()
                }
            }
        }
    }
}

/// Zoho's error envelope: `{"code", "message", "details", "status"}`.
fn error_code(resp: &Response) -> Option<String> {
    resp.json::<Value>()
        .ok()?
        .get("code")?
        .as_str()
        .map(str::to_owned)
}

fn failure(resp: Response) -> Error {
    match resp.error_for_status() {
        Ok(resp) => Error::upstream(resp.status, &resp.body),
        Err(e) => e,
    }
}

fn send(request: weft_sdk::http::RequestBuilder<'_>) -> Result<Response> {
    let resp = request.send()?;
    if resp.is_success() {
        Ok(resp)
    } else {
        Err(failure(resp))
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn read_module(
    conn: &Connection,
    config: &Config,
    module: Module,
    req: &ReadRequest,
) -> Result<Page> {
    let mut resume: Resume = req.cursor_state()?.unwrap_or_default();
    let incremental = req.mode == SyncMode::Incremental;
    if let Some(since) = &resume.since
        && time::unix_seconds(since).is_none()
    {
        return Err(Error::config(format!(
            "the stored cursor's time `{since}` is not an ISO 8601 time; reset the flow's cursor"
        )));
    }
    let extra: Vec<String> = match req.options.get("fields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return Err(Error::config(
                "read option `fields` is a list of Zoho field API names",
            ));
        }
    };
    let fields = module.field_list(&extra)?;
    let per_page = resume
        .per_page
        .unwrap_or_else(|| req.page_size.unwrap_or(MAX_PER_PAGE).clamp(1, MAX_PER_PAGE));
    // An incremental pass continues by keyset, not by page token: each page asks again for
    // what changed since the newest time read so far and skips what it read at that second.
    // A record edited during the pass moves to the end and is read there; nothing unread moves
    // before the bound, so no record is skipped however pages shift while data changes. A page
    // token is used only to get past a second holding more records than a page.
    let bound = if incremental {
        resume.newest.clone().or_else(|| resume.since.clone())
    } else {
        None
    };
    let bound_secs = bound.as_deref().and_then(time::unix_seconds);
    let mut bound_ids: Vec<String> = if resume.newest.is_some() {
        resume.newest_ids.clone()
    } else {
        resume.seen.clone()
    };
    if resume.newest.is_some()
        && time::unix_seconds(resume.since.as_deref().unwrap_or_default()) == bound_secs
    {
        bound_ids.extend(resume.seen.iter().cloned());
    }
    // A second early, so a record modified at the bound's exact millisecond is not lost to a
    // strict comparison upstream; what that second returns again is skipped below.
    let if_modified_since = bound_secs.map(|t| time::rfc3339(t - 1));
    let list = |token: Option<&str>| {
        let mut request = conn
            .get(&config.url(module.name()))
            .query("fields", &fields)
            .query("per_page", per_page)
            .query("sort_by", if incremental { "Modified_Time" } else { "id" })
            .query("sort_order", "asc")
            .query_opt("page_token", token);
        if let Some(since) = &if_modified_since {
            request = request.header("If-Modified-Since", since);
        }
        request.send()
    };
    let mut resp = list(resume.page_token.as_deref())?;
    // The token expired or no longer fits the request: in a full read, read the pass again; in
    // an incremental one, carry on from the bound.
    if resp.status == 400
        && resume.page_token.is_some()
        && matches!(
            error_code(&resp).as_deref(),
            Some("EXPIRED_VALUE" | "TOKEN_BOUND_DATA_MISMATCH" | "INVALID_DATA")
        )
    {
        weft_sdk::log::warn(
            "Zoho refused the page token; continuing without it",
            &[("module", module.name())],
        );
        resume.page_token = None;
        if !incremental {
            resume.newest = None;
            resume.newest_ids.clear();
        }
        resp = list(None)?;
    }
    if matches!(resp.status, 204 | 304) {
        return Ok(Page::last(Vec::new(), Some(&resume.finished())));
    }
    if resp.status == 400 && bound.is_some() && error_code(&resp).as_deref() == Some("INVALID_DATA")
    {
        return Err(Error::config(format!(
            "Zoho refused the stored cursor: {}",
            resp.text()
        )));
    }
    if !resp.is_success() {
        return Err(failure(resp));
    }
    let mut answer: Value = resp.json()?;
    let data: Vec<Record> = match answer.get_mut("data").map(Value::take) {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(r) => Some(r),
                _ => None,
            })
            .collect(),
        _ => return Err(Error::upstream(200, b"the answer has no `data` array")),
    };
    let mut records = Vec::with_capacity(data.len());
    for record in data {
        let id = record.get("id").and_then(text_of).unwrap_or_default();
        let modified = record
            .get("Modified_Time")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(modified) = &modified {
            let t = time::unix_seconds(modified);
            // Before the bound: read already (anything unread is at or after it). At it: read
            // already if its id was.
            let repeat = incremental
                && bound_secs.is_some()
                && (t < bound_secs || (t == bound_secs && bound_ids.contains(&id)));
            if repeat {
                continue;
            }
            resume.note(&id, modified);
        }
        records.push(record);
    }
    let more = answer
        .pointer("/info/more_records")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let token = answer
        .pointer("/info/next_page_token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if !more {
        return Ok(Page::last(records, Some(&resume.finished())));
    }
    resume.per_page = Some(per_page);
    resume.page_token = if !incremental || records.is_empty() {
        // A full read pages on; an incremental page of nothing new is a second holding more
        // than a page of records: page through it.
        token
    } else {
        None
    };
    if incremental && records.is_empty() && resume.page_token.is_none() {
        return Err(Error::upstream(
            200,
            b"Zoho said more records follow but gave no page token",
        ));
    }
    Ok(Page::more(records, &resume))
}

// ---------------------------------------------------------------- writes

fn write_chunk(
    conn: &Connection,
    config: &Config,
    module: Module,
    mode: WriteMode,
    key: &[String],
    chunk: &[Record],
) -> Result<Vec<WriteOutcome>> {
    let resp = match mode {
        WriteMode::Create => conn
            .post(&config.url(module.name()))
            .json(&json!({"data": chunk}))?
            .send()?,
        WriteMode::Update => conn
            .put(&config.url(module.name()))
            .json(&json!({"data": chunk}))?
            .send()?,
        WriteMode::Upsert => {
            let checks: Vec<&String> = key.iter().filter(|k| k.as_str() != "id").collect();
            let body = if checks.is_empty() {
                json!({"data": chunk})
            } else {
                json!({"data": chunk, "duplicate_check_fields": checks})
            };
            conn.post(&config.url(&format!("{}/upsert", module.name())))
                .json(&body)?
                .send()?
        }
        WriteMode::Delete => {
            let ids: Vec<String> = chunk
                .iter()
                .filter_map(|r| r.get("id").and_then(text_of))
                .collect();
            conn.delete(&config.url(module.name()))
                .query("ids", ids.join(","))
                .send()?
        }
    };
    // Per-record answers arrive with 200, 201, 202, 207 and, when every record failed, 400.
    let entries = resp
        .json::<Value>()
        .ok()
        .and_then(|v| v.get("data").and_then(Value::as_array).cloned())
        .filter(|entries| {
            entries.len() == chunk.len() && entries.iter().all(|e| e.get("status").is_some())
        });
    let Some(entries) = entries else {
        return Err(if resp.is_success() {
            Error::upstream(
                resp.status,
                format!("expected one data[] entry per record: {}", resp.text()).as_bytes(),
            )
        } else {
            failure(resp)
        });
    };
    Ok(entries.iter().map(|e| outcome(e, mode)).collect())
}

fn outcome(entry: &Value, mode: WriteMode) -> WriteOutcome {
    let id = entry.pointer("/details/id").and_then(text_of);
    match (entry.get("status").and_then(Value::as_str), id) {
        (Some("success"), Some(id)) => match (mode, entry.get("action").and_then(Value::as_str)) {
            (WriteMode::Delete, _) => WriteOutcome::deleted(id),
            (WriteMode::Update, _) | (WriteMode::Upsert, Some("update")) => {
                WriteOutcome::updated(id)
            }
            _ => WriteOutcome::created(id),
        },
        _ => {
            let code = entry.get("code").and_then(Value::as_str).unwrap_or("ERROR");
            let message = entry.get("message").and_then(Value::as_str).unwrap_or("");
            let details = entry
                .get("details")
                .map(Value::to_string)
                .unwrap_or_default();
            WriteOutcome::failed(Error::invalid_record(
                format!("{code}: {message} {details}").trim_end().to_owned(),
            ))
        }
    }
}

// ---------------------------------------------------------------- notifications

/// The token Zoho echoes in a channel's callbacks: a MAC of the channel id under the
/// connection's webhook secret, so only whoever holds the secret could have set it.
fn channel_token(conn: &Connection, channel_id: &str) -> Result<String> {
    let mac = conn.webhook_mac(
        MacAlgorithm::HmacSha256,
        format!("weft zoho channel {channel_id}").as_bytes(),
    )?;
    Ok(mac.iter().take(20).map(|b| format!("{b:02x}")).collect())
}

/// A numeric channel id for `callback_url`; the same callback gets the same channel, so
/// subscribing again renews it.
fn channel_id(conn: &Connection, callback_url: &str) -> Result<String> {
    let mac = conn.webhook_mac(
        MacAlgorithm::HmacSha256,
        format!("weft zoho channel id {callback_url}").as_bytes(),
    )?;
    let n = mac
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Ok((100_000_000_000_000_000 + n % 800_000_000_000_000_000).to_string())
}

/// `Leads` means every event of the module; `Leads.create` one.
fn watch_events(events: &[String]) -> Result<Vec<String>> {
    if events.is_empty() {
        return Ok(Module::ALL
            .iter()
            .map(|m| format!("{}.all", m.name()))
            .collect());
    }
    events
        .iter()
        .map(|e| {
            let (module, op) = e.split_once('.').unwrap_or((e, "all"));
            Module::parse(module)?;
            if !matches!(op, "create" | "edit" | "delete" | "all") {
                return Err(Error::config(format!(
                    "Zoho watch events are {{Module}}.create|edit|delete|all, not `{e}`"
                )));
            }
            Ok(format!("{module}.{op}"))
        })
        .collect()
}

pub struct ZohoCrm;

impl Connector for ZohoCrm {
    fn describe() -> ConnectorInfo {
        let mut info = ConnectorInfo::new("zoho-crm", env!("CARGO_PKG_VERSION"))
            .description("Zoho CRM: Leads, Contacts, Accounts, Deals and the Zendesk integration's ticket and comment modules; page-token paging, If-Modified-Since increments, batch upserts, watch notifications.")
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "data_center": {"type": "string",
                        "description": "Where the org lives, by code or API domain suffix (com, com.au, ...): us www.zohoapis.com (accounts.zoho.com), eu .eu, in .in, au .com.au, jp .jp, ca .ca (accounts.zohocloud.ca), cn .com.cn, sa .sa, uk .uk, ae .ae"},
                    "environment": {"type": "string", "enum": ["production", "sandbox", "developer"], "default": "production",
                        "description": "The org's API host: www., sandbox. or developer.zohoapis..."},
                    "api_version": {"type": "string", "default": "v7"},
                    "api_url": {"type": "string", "format": "uri", "description": "(alias api_domain) An explicit API domain replacing the data centre's, e.g. the local sandbox (http://127.0.0.1:4101); its host must be on the connection's egress list"},
                    "accounts_url": {"type": "string", "format": "uri", "description": "The OAuth (accounts) host, when not the data centre's; the connection's token URL is {accounts_url}/oauth/v2/token"}
                }
            }))
            .oauth(AuthKind::Oauth2Refresh, authorization_header("Zoho-oauthtoken"), "https://accounts.zoho.com/oauth/v2/token")
            // Every paid edition starts at 50,000 credits per rolling day (one per call).
            .rate_limit(50_000, Duration::from_secs(24 * 3_600));
        for module in Module::ALL {
            info = info.stream(
                Stream::new(module.name(), module.schema())
                    .description(&format!(
                        "Zoho CRM {}; incremental on Modified_Time.",
                        module.name()
                    ))
                    .incremental("Modified_Time")
                    .writable(&[
                        WriteMode::Create,
                        WriteMode::Update,
                        WriteMode::Upsert,
                        WriteMode::Delete,
                    ]),
            );
        }
        // The data centre's API hosts, mapped from its code (or domain suffix) by the template,
        // so a connection reaches only its own data centre's. The accounts host is the auth's
        // token_url, which the flow names.
        let data_centers = DATA_CENTERS
            .iter()
            .flat_map(|(code, domain, _)| {
                let suffix = domain.strip_prefix("zohoapis.").unwrap_or(domain);
                [format!("{code}={domain}"), format!("{suffix}={domain}")]
            })
            .collect::<Vec<_>>()
            .join(",");
        for (_, prefix) in ENVIRONMENTS {
            info = info.host(&format!("https://{prefix}.{{data_center?:{data_centers}}}"));
        }
        info.host("{api_url?}").host("{api_domain?}")
    }

    fn check(conn: &Connection) -> Result<()> {
        let config = Config::of(conn)?;
        send(conn.get(&config.url("users")).query("type", "CurrentUser"))?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        let config = Config::of(conn)?;
        let module = Module::parse(&req.stream)?;
        read_module(conn, &config, module, &req)
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        let config = Config::of(conn)?;
        let module = Module::parse(&req.stream)?;
        let key: Vec<String> = if req.key.is_empty() {
            vec!["id".into()]
        } else {
            req.key.clone()
        };
        if matches!(req.mode, WriteMode::Update | WriteMode::Delete) && key != ["id"] {
            return Err(Error::config(format!(
                "Zoho updates and deletes {} by `id`; the write's key is {key:?}",
                req.stream
            )));
        }
        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; req.records.len()];
        let mut sendable: Vec<(usize, Record)> = Vec::new();
        for (i, record) in req.records.into_iter().enumerate() {
            let has = |k: &String| record.get(k).is_some_and(|v| !v.is_null());
            let missing = match req.mode {
                WriteMode::Create => None,
                WriteMode::Upsert => (!key.iter().any(has)).then(|| key.join(" or ")),
                WriteMode::Update | WriteMode::Delete => {
                    (!has(&"id".to_owned())).then(|| "id".to_owned())
                }
            };
            match missing {
                Some(fields) => {
                    outcomes[i] = Some(WriteOutcome::failed(Error::invalid_record(format!(
                        "the record has no {fields}"
                    ))))
                }
                None => sendable.push((i, record)),
            }
        }
        for chunk in sendable.chunks(MAX_WRITE) {
            let records: Vec<Record> = chunk.iter().map(|(_, r)| r.clone()).collect();
            let results = write_chunk(conn, &config, module, req.mode, &key, &records)?;
            for ((i, _), outcome) in chunk.iter().zip(results) {
                outcomes[*i] = Some(outcome);
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| WriteOutcome::failed(Error::internal("no outcome"))))
            .collect())
    }

    fn verify(conn: &Connection, req: InboundRequest) -> Result<Verification> {
        let Ok(Value::Object(payload)) = serde_json::from_slice::<Value>(&req.body) else {
            return Ok(Verification::Rejected(
                "the callback body is not a JSON object".into(),
            ));
        };
        let (Some(channel), Some(token)) = (
            payload.get("channel_id").and_then(text_of),
            payload.get("token").and_then(Value::as_str),
        ) else {
            return Ok(Verification::Rejected(
                "the callback carries no channel_id and token".into(),
            ));
        };
        let expected = channel_token(conn, &channel)?;
        if !constant_time_eq(expected.as_bytes(), token.as_bytes()) {
            return Ok(Verification::Rejected(format!(
                "the token does not belong to channel {channel}"
            )));
        }
        let module = payload
            .get("module")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let operation = payload
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let server_time = payload.get("server_time").and_then(Value::as_i64);
        let values: Vec<(String, Value)> = payload
            .get("affected_values")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|a| {
                        Some((
                            a.get("record_id").and_then(text_of)?,
                            a.get("values").cloned().unwrap_or(Value::Null),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ids: Vec<String> = payload
            .get("ids")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(text_of).collect())
            .unwrap_or_default();
        let events = ids
            .into_iter()
            .map(|id| {
                let mut record = Record::new();
                if let Some((_, Value::Object(changed))) = values.iter().find(|(r, _)| *r == id) {
                    record.extend(changed.clone());
                }
                record.insert("id".into(), json!(id));
                Event {
                    id: format!(
                        "{channel}:{}:{operation}:{id}",
                        server_time.unwrap_or_default()
                    ),
                    stream: module.clone(),
                    action: operation.clone(),
                    record,
                    occurred_at: server_time.map(|ms| time::rfc3339(ms.div_euclid(1_000))),
                }
            })
            .collect();
        Ok(Verification::Accepted(events))
    }

    fn subscribe(conn: &Connection, callback_url: &str, events: &[String]) -> Result<Subscription> {
        let config = Config::of(conn)?;
        let channel = channel_id(conn, callback_url)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // A week is the longest Zoho allows; an hour less leaves room for clock skew.
        let expiry = time::rfc3339(now + 7 * 86_400 - 3_600);
        let body = json!({"watch": [{
            "channel_id": channel, "events": watch_events(events)?, "notify_url": callback_url,
            "token": channel_token(conn, &channel)?, "channel_expiry": expiry, "return_affected_field_values": true,
        }]});
        let mut answer: Value =
            send(conn.post(&config.url("actions/watch")).json(&body)?)?.json()?;
        if answer.pointer("/watch/0/status").and_then(Value::as_str) != Some("success") {
            // The channel exists already: replace its details.
            answer = send(conn.put(&config.url("actions/watch")).json(&body)?)?.json()?;
        }
        let entry = answer.pointer("/watch/0").cloned().unwrap_or(Value::Null);
        if entry.get("status").and_then(Value::as_str) != Some("success") {
            return Err(Error::config(format!(
                "Zoho refused the watch channel: {entry}"
            )));
        }
        let expires_at = entry
            .pointer("/details/events/0/channel_expiry")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Subscription {
            id: channel,
            expires_at,
        })
    }

    fn unsubscribe(conn: &Connection, subscription_id: &str) -> Result<()> {
        let config = Config::of(conn)?;
        let resp = conn
            .delete(&config.url("actions/watch"))
            .query("channel_ids", subscription_id)
            .send()?;
        // An unknown channel (expired already) is as good as removed.
        if resp.is_success() || resp.status == 400 {
            Ok(())
        } else {
            Err(failure(resp))
        }
    }
}

/// Zoho's datetimes over the SDK's RFC 3339 parsing, in whole seconds as Zoho shows them.
mod time {
    /// Unix seconds of an ISO 8601 time with offset (`2019-07-25T15:26:49+05:30`).
    pub fn unix_seconds(text: &str) -> Option<i64> {
        weft_sdk::time::parse_rfc3339_ms(text).map(|ms| ms.div_euclid(1_000))
    }

    /// `YYYY-MM-DDTHH:MM:SS+00:00`, Zoho's datetime format, for Unix seconds.
    pub fn rfc3339(secs: i64) -> String {
        let utc = weft_sdk::time::format_rfc3339_ms(secs * 1_000);
        format!("{}+00:00", &utc[..19])
    }
}

weft_sdk::export_connector!(ZohoCrm);

#[cfg(test)]
mod tests {
    use super::time;

    #[test]
    fn times_round_trip_with_offsets() {
        assert_eq!(
            time::unix_seconds("2019-07-25T15:26:49+05:30"),
            Some(1_564_048_609)
        );
        assert_eq!(time::rfc3339(1_564_048_609), "2019-07-25T09:56:49+00:00");
        assert_eq!(
            time::unix_seconds(&time::rfc3339(1_735_689_600)),
            Some(1_735_689_600)
        );
        assert_eq!(time::unix_seconds("not a time"), None);
    }
}
