//! `zendesk`: the Zendesk Support API (v2) as weft streams.
//!
//! **Reads.** `tickets`, `users` and `organizations` read in full with cursor pagination
//! (`GET /api/v2/{kind}.json?page[size]=N&page[after]=C`, at most 100 a page, following
//! `meta.has_more`). Incremental reads use the incremental export APIs: tickets and users the
//! cursor-based export (`/api/v2/incremental/{kind}/cursor.json`, `start_time` on a first read,
//! then `cursor`, up to 1,000 a page, until `end_of_stream`; the last `after_cursor` is kept for
//! the next run), organizations the time-based export (`/api/v2/incremental/organizations.json`,
//! `start_time` then `end_time`; the records of the boundary second already returned are
//! remembered in the cursor and dropped, since time-based exports repeat that second).
//! Zendesk leaves out the last minute and refuses a `start_time` less than a minute old: such a
//! read answers an empty page and keeps its cursor. `ticket_comments` reads every ticket's
//! comments (`/api/v2/tickets/{id}/comments.json`), each with its `ticket_id`, in full. Read
//! option `id` reads one ticket, user or organization (`/api/v2/{kind}/{id}.json`), what a
//! for-each over webhook events does.
//!
//! **Writes.** Batches go to the bulk endpoints, 100 records per job: `create` to
//! `{kind}/create_many`, `update` to `{kind}/update_many` (each record carries `id`), `upsert`
//! (users and organizations) to `{kind}/create_or_update_many`, which matches on `id`,
//! `external_id` and the email (users) or name (organizations) — the write's key must be among
//! those. Bulk writes are asynchronous: the connector polls `job_statuses/{id}` until the job is
//! done and maps its `results` (in request order) to one outcome per record. `delete` (records
//! carry `id`) goes to `{kind}/destroy_many?ids=…`, also a job; a record already gone counts as
//! deleted. Comments are added
//! through ticket updates (`comment` on a ticket record), as Zendesk has no comment endpoint.
//!
//! **Errors.** 429 is `rate-limited` with `Retry-After`; 401 `auth`; 5xx `upstream`
//! (retryable); an export or page cursor Zendesk refuses is a `config` error.
//!
//! **Webhooks.** `subscribe` creates a webhook subscribed to Zendesk events (`POST
//! /api/v2/webhooks`). With a `webhook_secret` on the connection it authenticates with a bearer
//! token: base64(HMAC-SHA256(that secret, a fixed label)), computed by the host's
//! `webhook-keys`, so the plugin never holds the secret. Zendesk mints the webhook's signing
//! secret itself and weft has nowhere to keep it for the host, so a registered webhook is
//! verified by its token (TLS covers the body in transit). A webhook made without a secret, or
//! by hand, is verified by its signature,
//! `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(secret, timestamp + body)), when the
//! connection's `webhook_secret` is its signing secret
//! (`GET /api/v2/webhooks/{id}/signing_secret`).
//!
//! **Config.** `subdomain` (required: `https://{subdomain}.zendesk.com`) and `base_url`, an
//! explicit API root that replaces it (the local sandbox, a proxy). Auth: `basic` with user
//! `{email}/token` and the API token as password, or OAuth (`bearer`, `oauth2-refresh`,
//! `oauth2-client-credentials` at `/oauth/tokens`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sdk::http::Response;
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, CredentialPlacement, Error, Event,
    InboundRequest, MacAlgorithm, Page, ReadRequest, Record, Result, Stream, Subscription,
    SyncMode, Value, Verification, WriteMode, WriteOutcome, WriteRequest, authorization_header,
    constant_time_eq, json,
};

/// Cursor pagination allows at most 100 records a page on list endpoints.
const MAX_LIST_PAGE: u32 = 100;
/// Incremental exports return up to 1,000 records a page.
const MAX_EXPORT_PAGE: u32 = 1_000;
/// The bulk endpoints take at most 100 records a job.
const MAX_BULK: usize = 100;
/// How long a write waits for its bulk jobs before giving up.
const JOB_WAIT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    subdomain: String,
    #[serde(default)]
    base_url: Option<String>,
}

impl Config {
    fn of(conn: &Connection) -> Result<Self> {
        let config: Config = conn.config_as()?;
        if config.subdomain.trim().is_empty() {
            return Err(Error::config(format!(
                "connection `{}`: `subdomain` is empty",
                conn.name()
            )));
        }
        Ok(config)
    }

    /// `https://{subdomain}.zendesk.com`, or the explicit `base_url`.
    fn base(&self) -> String {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://{}.zendesk.com", self.subdomain),
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v2/{path}", self.base())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tickets,
    Users,
    Organizations,
    Comments,
}

impl Kind {
    fn parse(stream: &str) -> Result<Kind> {
        match stream {
            "tickets" => Ok(Kind::Tickets),
            "users" => Ok(Kind::Users),
            "organizations" => Ok(Kind::Organizations),
            "ticket_comments" => Ok(Kind::Comments),
            other => Err(Error::config(format!(
                "zendesk has no stream `{other}`; it has tickets, users, organizations and ticket_comments"
            ))),
        }
    }

    /// The path segment and the answer's root key.
    fn plural(self) -> &'static str {
        match self {
            Kind::Tickets => "tickets",
            Kind::Users => "users",
            Kind::Organizations => "organizations",
            Kind::Comments => "comments",
        }
    }
}

/// Where a read resumes. Full reads use `after`; incremental reads `cursor` (cursor-based
/// exports) or `start_time` and `seen` (the time-based organization export).
#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Resume {
    /// `page[after]` of cursor pagination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// The export's `after_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    /// Unix seconds to start an export at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_time: Option<i64>,
    /// Ids already returned whose change falls in the second `start_time` names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<String>,
    /// `ticket_comments`: tickets whose comments are still to read, and the page within the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tickets: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comments_after: Option<String>,
    /// `ticket_comments`: every ticket has been listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tickets_done: bool,
}

/// The error an unsuccessful answer stands for.
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

/// The records under `key` of an answer.
fn records(answer: &mut Value, key: &str) -> Result<Vec<Record>> {
    match answer.get_mut(key).map(Value::take) {
        Some(Value::Array(items)) => Ok(items
            .into_iter()
            .filter_map(|item| match item {
                Value::Object(record) => Some(record),
                _ => None,
            })
            .collect()),
        _ => Err(Error::upstream(
            200,
            format!("the answer has no `{key}` array").as_bytes(),
        )),
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Zendesk refuses an export `start_time` less than a minute old: nothing to read yet.
fn too_recent(resp: &Response) -> bool {
    matches!(resp.status, 400 | 422) && resp.text().contains("Too recent start_time")
}

fn read_full(
    conn: &Connection,
    config: &Config,
    kind: Kind,
    resume: Resume,
    size: u32,
) -> Result<Page> {
    let resp = conn
        .get(&config.api(&format!("{}.json", kind.plural())))
        .query("page[size]", size.clamp(1, MAX_LIST_PAGE))
        .query_opt("page[after]", resume.after.as_deref())
        .send()?;
    if resp.status == 400 && resume.after.is_some() {
        return Err(Error::config(format!(
            "Zendesk refused the stored page cursor ({}); reset the flow's cursor",
            resp.text()
        )));
    }
    if !resp.is_success() {
        return Err(failure(resp));
    }
    let mut answer: Value = resp.json()?;
    let data = records(&mut answer, kind.plural())?;
    let has_more = answer
        .pointer("/meta/has_more")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let after = answer
        .pointer("/meta/after_cursor")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match (has_more, after) {
        (true, Some(after)) => Ok(Page::more(
            data,
            &Resume {
                after: Some(after),
                ..Resume::default()
            },
        )),
        _ => Ok(Page::last(data, None::<&Resume>)),
    }
}

/// The bearer token a webhook weft registers authenticates with: a MAC of a fixed label under
/// the connection's webhook secret, computed by the host.
fn bearer_token(conn: &Connection) -> Result<String> {
    Ok(weft_sdk::base64::encode(&conn.webhook_mac(
        MacAlgorithm::HmacSha256,
        b"weft zendesk webhook bearer token",
    )?))
}

/// `options.id`: one record by id (a for-each over webhook events reads each one).
fn read_one(conn: &Connection, config: &Config, kind: Kind, id: &Value) -> Result<Page> {
    let id = id_text(id).ok_or_else(|| {
        Error::config(format!(
            "read option `id` must be a {} id, not {id}",
            kind.plural()
        ))
    })?;
    let resp = conn
        .get(&config.api(&format!(
            "{}/{}.json",
            kind.plural(),
            weft_sdk::http::percent_encode(&id)
        )))
        .send()?;
    if !resp.is_success() {
        return Err(failure(resp));
    }
    let mut answer: Value = resp.json()?;
    let singular = kind.plural().trim_end_matches('s');
    let record = answer
        .get_mut(singular)
        .map(Value::take)
        .filter(Value::is_object)
        .ok_or_else(|| Error::upstream(resp.status, b"the answer holds no record"))?;
    let Value::Object(record) = record else {
        unreachable!("checked to be an object")
    };
    Ok(Page::last(vec![record], None::<&Resume>))
}

/// The cursor-based incremental export of tickets or users.
fn read_export(
    conn: &Connection,
    config: &Config,
    kind: Kind,
    resume: Resume,
    size: u32,
) -> Result<Page> {
    let request = conn
        .get(&config.api(&format!("incremental/{}/cursor.json", kind.plural())))
        .query("per_page", size.clamp(1, MAX_EXPORT_PAGE));
    let request = match &resume.cursor {
        Some(cursor) => request.query("cursor", cursor),
        None => request.query("start_time", resume.start_time.unwrap_or(0).max(0)),
    };
    let resp = request.send()?;
    if too_recent(&resp) {
        return Ok(Page::last(Vec::new(), Some(&resume)));
    }
    if matches!(resp.status, 400 | 422) {
        return Err(Error::config(format!(
            "Zendesk refused the stored export position ({}); reset the flow's cursor",
            weft_sdk::Error::upstream(resp.status, &resp.body)
        )));
    }
    if !resp.is_success() {
        return Err(failure(resp));
    }
    let mut answer: Value = resp.json()?;
    let data = records(&mut answer, kind.plural())?;
    let end = answer
        .get("end_of_stream")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let cursor = answer
        .get("after_cursor")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(resume.cursor.clone());
    let next = Resume {
        cursor,
        start_time: if cursor_missing(&answer) {
            resume.start_time
        } else {
            None
        },
        ..Resume::default()
    };
    Ok(if end {
        Page::last(data, Some(&next))
    } else {
        Page::more(data, &next)
    })
}

fn cursor_missing(answer: &Value) -> bool {
    answer.get("after_cursor").and_then(Value::as_str).is_none()
}

/// The time-based organization export: resumes at `end_time`, dropping the records of that
/// second it already returned.
fn read_org_export(conn: &Connection, config: &Config, resume: Resume) -> Result<Page> {
    let start = resume.start_time.unwrap_or(0).max(0);
    let resp = conn
        .get(&config.api("incremental/organizations.json"))
        .query("start_time", start)
        .send()?;
    if too_recent(&resp) {
        return Ok(Page::last(Vec::new(), Some(&resume)));
    }
    if matches!(resp.status, 400 | 422) {
        return Err(Error::config(format!(
            "Zendesk refused the stored export position: {}",
            resp.text()
        )));
    }
    if !resp.is_success() {
        return Err(failure(resp));
    }
    let mut answer: Value = resp.json()?;
    let data = records(&mut answer, "organizations")?;
    let end = answer
        .get("end_of_stream")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let end_time = answer
        .get("end_time")
        .and_then(Value::as_i64)
        .unwrap_or(start);
    let second_of = |r: &Record| {
        r.get("updated_at")
            .and_then(Value::as_str)
            .and_then(|t| weft_sdk::time::parse_rfc3339_ms(t).map(|ms| ms.div_euclid(1_000)))
    };
    let id_of = |r: &Record| r.get("id").and_then(id_text).unwrap_or_default();
    let fresh: Vec<Record> = data
        .into_iter()
        .filter(|r| !(second_of(r) == Some(start) && resume.seen.contains(&id_of(r))))
        .collect();
    let mut seen: Vec<String> = if end_time == start {
        resume.seen.clone()
    } else {
        Vec::new()
    };
    seen.extend(
        fresh
            .iter()
            .filter(|r| second_of(r) == Some(end_time))
            .map(id_of),
    );
    let next = Resume {
        start_time: Some(end_time),
        seen,
        ..Resume::default()
    };
    // A page that moved nothing forward ends the pass rather than asking again forever.
    Ok(if end || (fresh.is_empty() && end_time == start) {
        Page::last(fresh, Some(&next))
    } else {
        Page::more(fresh, &next)
    })
}

/// Every ticket's comments: one ticket (or one page of its comments) per read.
fn read_comments(
    conn: &Connection,
    config: &Config,
    mut resume: Resume,
    size: u32,
) -> Result<Page> {
    if resume.tickets.is_empty() {
        if resume.tickets_done {
            return Ok(Page::last(Vec::new(), None::<&Resume>));
        }
        let resp = send(
            conn.get(&config.api("tickets.json"))
                .query("page[size]", MAX_LIST_PAGE)
                .query_opt("page[after]", resume.after.as_deref()),
        )?;
        let mut answer: Value = resp.json()?;
        let tickets = records(&mut answer, "tickets")?;
        resume.tickets = tickets
            .iter()
            .filter_map(|t| t.get("id").and_then(Value::as_u64))
            .collect();
        let has_more = answer
            .pointer("/meta/has_more")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        resume.after = answer
            .pointer("/meta/after_cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        resume.tickets_done = !has_more || resume.after.is_none();
        resume.comments_after = None;
        if resume.tickets.is_empty() {
            return Ok(Page::last(Vec::new(), None::<&Resume>));
        }
    }
    let ticket = resume.tickets[0];
    let resp = conn
        .get(&config.api(&format!("tickets/{ticket}/comments.json")))
        .query("page[size]", size.clamp(1, MAX_LIST_PAGE))
        .query_opt("page[after]", resume.comments_after.as_deref())
        .send()?;
    let mut comments = if resp.status == 404 {
        // A ticket deleted since it was listed has no comments to read.
        resume.tickets.remove(0);
        resume.comments_after = None;
        Vec::new()
    } else {
        let resp = if resp.is_success() {
            resp
        } else {
            return Err(failure(resp));
        };
        let mut answer: Value = resp.json()?;
        let comments = records(&mut answer, "comments")?;
        let has_more = answer
            .pointer("/meta/has_more")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        resume.comments_after = answer
            .pointer("/meta/after_cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if !has_more || resume.comments_after.is_none() {
            resume.tickets.remove(0);
            resume.comments_after = None;
        }
        comments
    };
    for c in &mut comments {
        c.insert("ticket_id".into(), json!(ticket));
    }
    if resume.tickets.is_empty() && resume.tickets_done {
        Ok(Page::last(comments, None::<&Resume>))
    } else {
        Ok(Page::more(comments, &resume))
    }
}

// ---------------------------------------------------------------- writes

#[derive(Deserialize)]
struct JobAnswer {
    job_status: Job,
}

#[derive(Deserialize)]
struct Job {
    id: String,
    status: String,
    #[serde(default)]
    results: Option<Vec<Value>>,
    #[serde(default)]
    message: Option<String>,
}

fn start_job(
    conn: &Connection,
    config: &Config,
    kind: Kind,
    mode: WriteMode,
    records: &[Record],
) -> Result<String> {
    let (path, request) = match mode {
        WriteMode::Create => (
            "create_many",
            conn.post(&config.api(&format!("{}/create_many.json", kind.plural()))),
        ),
        WriteMode::Update => (
            "update_many",
            conn.put(&config.api(&format!("{}/update_many.json", kind.plural()))),
        ),
        WriteMode::Upsert => (
            "create_or_update_many",
            conn.post(&config.api(&format!("{}/create_or_update_many.json", kind.plural()))),
        ),
        WriteMode::Delete => {
            let ids: Vec<String> = records
                .iter()
                .filter_map(|r| r.get("id").and_then(id_text))
                .collect();
            (
                "destroy_many",
                conn.delete(&config.api(&format!("{}/destroy_many.json", kind.plural())))
                    .query("ids", ids.join(",")),
            )
        }
    };
    let resp = if mode == WriteMode::Delete {
        request.send()?
    } else {
        request.json(&json!({ kind.plural(): records }))?.send()?
    };
    if !resp.is_success() {
        let error = failure(resp);
        return Err(match error {
            Error::Upstream { status, body } if status == 400 || status == 422 => {
                Error::invalid_record(format!(
                    "Zendesk refused the {path} batch ({status}): {body}"
                ))
            }
            other => other,
        });
    }
    let answer: JobAnswer = resp.json()?;
    Ok(answer.job_status.id)
}

/// Polls a bulk job until Zendesk reports it finished.
fn wait_job(conn: &Connection, config: &Config, id: &str) -> Result<Job> {
    let mut waited = Duration::ZERO;
    let mut delay = Duration::from_millis(20);
    loop {
        let job: JobAnswer = conn
            .get(&config.api(&format!("job_statuses/{id}.json")))
            .send_json()?;
        match job.job_status.status.as_str() {
            "completed" | "failed" | "killed" => return Ok(job.job_status),
            _ => {}
        }
        if waited >= JOB_WAIT {
            return Err(Error::Timeout(format!(
                "Zendesk job {id} was still `{}` after {}s",
                job.job_status.status,
                JOB_WAIT.as_secs()
            )));
        }
        std::thread::sleep(delay);
        waited += delay;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// One outcome per record of the job, from its `results` in request order.
fn job_outcomes(job: &Job, mode: WriteMode, count: usize) -> Vec<WriteOutcome> {
    if job.status != "completed" {
        let why = job
            .message
            .clone()
            .unwrap_or_else(|| format!("the job ended `{}`", job.status));
        return (0..count)
            .map(|_| {
                WriteOutcome::failed(Error::invalid_record(format!(
                    "Zendesk job {}: {why}",
                    job.id
                )))
            })
            .collect();
    }
    let results = job.results.clone().unwrap_or_default();
    let mut slots: Vec<Option<WriteOutcome>> = vec![None; count];
    for (position, result) in results.iter().enumerate() {
        // Failed entries name their index; successful ones come in request order.
        let index = result
            .get("index")
            .and_then(Value::as_u64)
            .map(|i| i as usize)
            .unwrap_or(position);
        let Some(slot) = slots.get_mut(index) else {
            continue;
        };
        let status = result.get("status").and_then(Value::as_str).unwrap_or("");
        let failed = status.eq_ignore_ascii_case("failed")
            || result.get("error").is_some()
            || result.get("success").and_then(Value::as_bool) == Some(false);
        let id = result.get("id").and_then(id_text);
        let error = result.get("error").and_then(Value::as_str);
        *slot = Some(match (failed, id) {
            // Deleting what is already gone counts as deleted, so a replay is harmless.
            (_, Some(id))
                if mode == WriteMode::Delete && (!failed || error == Some("RecordNotFound")) =>
            {
                WriteOutcome::deleted(id)
            }
            (false, Some(id)) if status.eq_ignore_ascii_case("created") => {
                WriteOutcome::created(id)
            }
            (false, Some(id))
                if status.eq_ignore_ascii_case("updated") || mode == WriteMode::Update =>
            {
                WriteOutcome::updated(id)
            }
            (false, Some(id)) => WriteOutcome::created(id),
            _ => {
                let error = result
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("Failed");
                let details = result.get("details").map(|d| {
                    d.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| d.to_string())
                });
                WriteOutcome::failed(Error::invalid_record(match details {
                    Some(d) => format!("{error}: {d}"),
                    None => error.to_owned(),
                }))
            }
        });
    }
    slots
        .into_iter()
        .map(|s| {
            s.unwrap_or_else(|| {
                WriteOutcome::failed(Error::invalid_record(format!(
                    "Zendesk job {} reported no result for this record",
                    job.id
                )))
            })
        })
        .collect()
}

/// The fields `create_or_update_many` matches on, per kind.
fn upsert_keys(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Users => &["id", "external_id", "email"],
        Kind::Organizations => &["id", "external_id", "name"],
        _ => &[],
    }
}

// ---------------------------------------------------------------- describe

fn schema(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn ticket_schema() -> Value {
    schema(
        json!({
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "external_id": {"type": "string"},
            "type": {"type": "string", "enum": ["question", "incident", "problem", "task", null]},
            "subject": {"type": "string"},
            "raw_subject": {"type": "string"},
            "description": {"type": "string"},
            "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent", null]},
            "status": {"type": "string", "enum": ["new", "open", "pending", "hold", "solved", "closed", "deleted"]},
            "requester_id": {"type": "integer"},
            "submitter_id": {"type": "integer"},
            "assignee_id": {"type": "integer"},
            "organization_id": {"type": "integer"},
            "group_id": {"type": "integer"},
            "brand_id": {"type": "integer"},
            "collaborator_ids": {"type": "array", "items": {"type": "integer"}},
            "follower_ids": {"type": "array", "items": {"type": "integer"}},
            "email_cc_ids": {"type": "array", "items": {"type": "integer"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "custom_fields": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "value": {}}}},
            "due_at": {"type": "string", "format": "date-time"},
            "is_public": {"type": "boolean"},
            "via": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "generated_timestamp": {"type": "integer"},
            "comment": {"type": "object", "description": "write only: a comment added by this create or update", "properties": {"body": {"type": "string"}, "html_body": {"type": "string"}, "public": {"type": "boolean"}, "author_id": {"type": "integer"}}},
            "requester": {"type": "object", "description": "write only: the requester, found or created by email", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}
        }),
        &["id"],
    )
}

fn user_schema() -> Value {
    schema(
        json!({
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "name": {"type": "string"},
            "email": {"type": "string", "format": "email"},
            "role": {"type": "string", "enum": ["end-user", "agent", "admin"]},
            "phone": {"type": "string"},
            "organization_id": {"type": "integer"},
            "external_id": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "active": {"type": "boolean"},
            "verified": {"type": "boolean"},
            "suspended": {"type": "boolean"},
            "time_zone": {"type": "string"},
            "locale": {"type": "string"},
            "details": {"type": "string"},
            "notes": {"type": "string"},
            "user_fields": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"}
        }),
        &["id"],
    )
}

fn organization_schema() -> Value {
    schema(
        json!({
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "name": {"type": "string"},
            "external_id": {"type": "string"},
            "domain_names": {"type": "array", "items": {"type": "string"}},
            "details": {"type": "string"},
            "notes": {"type": "string"},
            "group_id": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "organization_fields": {"type": "object"},
            "shared_tickets": {"type": "boolean"},
            "shared_comments": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "deleted_at": {"type": "string", "format": "date-time"}
        }),
        &["id"],
    )
}

fn comment_schema() -> Value {
    schema(
        json!({
            "id": {"type": "integer"},
            "ticket_id": {"type": "integer"},
            "type": {"type": "string"},
            "author_id": {"type": "integer"},
            "body": {"type": "string"},
            "html_body": {"type": "string"},
            "plain_body": {"type": "string"},
            "public": {"type": "boolean"},
            "audit_id": {"type": "integer"},
            "attachments": {"type": "array"},
            "via": {"type": "object"},
            "metadata": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"}
        }),
        &["id", "ticket_id"],
    )
}

/// How far a signed delivery's timestamp may be from now (inferred, see `verify`).
const MAX_SIGNATURE_AGE_MS: i64 = 5 * 60 * 1_000;

pub struct Zendesk;

impl Connector for Zendesk {
    fn describe() -> ConnectorInfo {
        let bearer = authorization_header("Bearer");
        let token_url = "https://{subdomain}.zendesk.com/oauth/tokens";
        ConnectorInfo::new("zendesk", env!("CARGO_PKG_VERSION"))
            .description("Zendesk Support: tickets, users, organizations and comments; incremental exports, bulk jobs, signed webhooks.")
            .config_schema(json!({
                "type": "object",
                "required": ["subdomain"],
                "additionalProperties": false,
                "properties": {
                    "subdomain": {"type": "string", "description": "The account's subdomain: the API is https://{subdomain}.zendesk.com/api/v2"},
                    "base_url": {"type": "string", "format": "uri", "description": "An explicit API root replacing https://{subdomain}.zendesk.com, e.g. the local sandbox (http://127.0.0.1:4102); its host must be on the connection's egress list"}
                }
            }))
            .stream(
                Stream::new("tickets", ticket_schema())
                    .description("Tickets; incremental through the cursor-based ticket export.")
                    .incremental("updated_at")
                    .writable(&[WriteMode::Create, WriteMode::Update, WriteMode::Delete]),
            )
            .stream(
                Stream::new("users", user_schema())
                    .description("Users (end users, agents, admins); incremental through the cursor-based user export.")
                    .incremental("updated_at")
                    .writable(&[WriteMode::Create, WriteMode::Update, WriteMode::Upsert, WriteMode::Delete]),
            )
            .stream(
                Stream::new("organizations", organization_schema())
                    .description("Organizations; incremental through the time-based organization export.")
                    .incremental("updated_at")
                    .writable(&[WriteMode::Create, WriteMode::Update, WriteMode::Upsert, WriteMode::Delete]),
            )
            .stream(
                Stream::new("ticket_comments", comment_schema())
                    .description("Every ticket's comments, with ticket_id; written through ticket updates (`comment`)."),
            )
            // `{email}/token` as the user name and the API token as the password.
            .auth(AuthKind::Basic, CredentialPlacement::Basic)
            .auth(AuthKind::Bearer, bearer.clone())
            .oauth(AuthKind::Oauth2Refresh, bearer.clone(), token_url)
            .oauth(AuthKind::Oauth2ClientCredentials, bearer, token_url)
            .host("https://{subdomain}.zendesk.com")
            // The smallest plan's account limit (Team: 200 a minute); higher plans set `rate`.
            .rate_limit(200, Duration::from_secs(60))
    }

    fn check(conn: &Connection) -> Result<()> {
        let config = Config::of(conn)?;
        send(conn.get(&config.api("users/me.json")))?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        let config = Config::of(conn)?;
        let kind = Kind::parse(&req.stream)?;
        let resume: Resume = req.cursor_state()?.unwrap_or_default();
        if let Some(id) = req
            .options
            .get("id")
            .filter(|v| !v.is_null() && kind != Kind::Comments)
        {
            return read_one(conn, &config, kind, id);
        }
        match (kind, req.mode) {
            (Kind::Comments, _) => read_comments(
                conn,
                &config,
                resume,
                req.page_size.unwrap_or(MAX_LIST_PAGE),
            ),
            (_, SyncMode::Full) => read_full(
                conn,
                &config,
                kind,
                resume,
                req.page_size.unwrap_or(MAX_LIST_PAGE),
            ),
            (Kind::Organizations, SyncMode::Incremental) => read_org_export(conn, &config, resume),
            (_, SyncMode::Incremental) => read_export(
                conn,
                &config,
                kind,
                resume,
                req.page_size.unwrap_or(MAX_EXPORT_PAGE),
            ),
        }
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        let config = Config::of(conn)?;
        let kind = Kind::parse(&req.stream)?;
        match (kind, req.mode) {
            (Kind::Comments, _) => {
                return Err(Error::config(
                    "ticket_comments is read-only: add a comment with `comment` on a ticket update",
                ));
            }
            (_, WriteMode::Delete) if !(req.key.is_empty() || req.key == ["id"]) => {
                return Err(Error::config(format!(
                    "deletes from {} match on `id`; the write's key is {:?}",
                    req.stream, req.key
                )));
            }
            (Kind::Tickets, WriteMode::Upsert) => {
                return Err(Error::config(
                    "Zendesk has no create-or-update for tickets: write them with mode create or update",
                ));
            }
            _ => {}
        }
        let key: Vec<String> = if req.key.is_empty() {
            vec!["id".into()]
        } else {
            req.key.clone()
        };
        match req.mode {
            WriteMode::Update if key != ["id"] => {
                return Err(Error::config(format!(
                    "updates to {} match on `id`; the write's key is {key:?}",
                    req.stream
                )));
            }
            WriteMode::Upsert => {
                if let Some(bad) = key
                    .iter()
                    .find(|k| !upsert_keys(kind).contains(&k.as_str()))
                {
                    return Err(Error::config(format!(
                        "Zendesk matches {} on {}; it cannot upsert on `{bad}`",
                        req.stream,
                        upsert_keys(kind).join(", ")
                    )));
                }
            }
            _ => {}
        }
        // Records that cannot be sent fail alone; the rest go out in jobs of 100.
        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; req.records.len()];
        let mut sendable: Vec<(usize, Record)> = Vec::new();
        for (i, record) in req.records.into_iter().enumerate() {
            let missing = match req.mode {
                WriteMode::Create => None,
                _ => (!key
                    .iter()
                    .any(|k| record.get(k).is_some_and(|v| !v.is_null())))
                .then(|| key.join(" or ")),
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
        let mut jobs = Vec::new();
        for chunk in sendable.chunks(MAX_BULK) {
            let batch: Vec<Record> = chunk.iter().map(|(_, r)| r.clone()).collect();
            let positions: Vec<usize> = chunk.iter().map(|(i, _)| *i).collect();
            match start_job(conn, &config, kind, req.mode, &batch) {
                Ok(id) => jobs.push((id, positions)),
                Err(Error::InvalidRecord(why)) => {
                    for i in positions {
                        outcomes[i] =
                            Some(WriteOutcome::failed(Error::invalid_record(why.clone())));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        for (id, positions) in jobs {
            let job = wait_job(conn, &config, &id)?;
            for (i, outcome) in positions
                .iter()
                .zip(job_outcomes(&job, req.mode, positions.len()))
            {
                outcomes[*i] = Some(outcome);
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| WriteOutcome::failed(Error::internal("no outcome"))))
            .collect())
    }

    fn verify(conn: &Connection, req: InboundRequest) -> Result<Verification> {
        // A webhook weft registered carries the bearer token it was given; one made by hand is
        // verified by its signature, when the connection's webhook secret is its signing secret.
        let bearer = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer ").map(str::trim));
        let by_token = match bearer {
            Some(token) => constant_time_eq(bearer_token(conn)?.as_bytes(), token.as_bytes()),
            None => false,
        };
        if !by_token {
            let (Some(signature), Some(timestamp)) = (
                req.header("x-zendesk-webhook-signature"),
                req.header("x-zendesk-webhook-signature-timestamp"),
            ) else {
                return Ok(Verification::Rejected("no bearer token weft registered, and no X-Zendesk-Webhook-Signature with its timestamp".into()));
            };
            let mut message = timestamp.as_bytes().to_vec();
            message.extend_from_slice(&req.body);
            let expected =
                weft_sdk::base64::encode(&conn.webhook_mac(MacAlgorithm::HmacSha256, &message)?);
            if !constant_time_eq(expected.as_bytes(), signature.trim().as_bytes()) {
                let why = if bearer.is_some() {
                    "neither the bearer token nor the signature matches"
                } else {
                    "the signature does not match the timestamp and body"
                };
                return Ok(Verification::Rejected(why.into()));
            }
            // The timestamp is signed so that an old delivery cannot be replayed once its event
            // id is forgotten. Zendesk documents the purpose but no window; five minutes either
            // way is the common convention (HubSpot documents it for its v3 signatures).
            let Some(signed_ms) = weft_sdk::time::parse_rfc3339_ms(timestamp.trim()) else {
                return Ok(Verification::Rejected(
                    "X-Zendesk-Webhook-Signature-Timestamp is not an RFC 3339 timestamp".into(),
                ));
            };
            let age = weft_sdk::time::now_ms() - signed_ms;
            if !(-MAX_SIGNATURE_AGE_MS..=MAX_SIGNATURE_AGE_MS).contains(&age) {
                return Ok(Verification::Rejected(format!(
                    "the delivery was signed {} s from now; at most {} s either way is accepted (a replayed or delayed delivery)",
                    age / 1_000,
                    MAX_SIGNATURE_AGE_MS / 1_000
                )));
            }
        }
        let body: Value = serde_json::from_slice(&req.body)
            .map_err(|e| Error::invalid_record(format!("the webhook body is not JSON: {e}")))?;
        let Value::Object(payload) = body else {
            return Ok(Verification::Rejected(
                "the webhook body is not a JSON object".into(),
            ));
        };
        Ok(Verification::Accepted(vec![event(&req, payload)]))
    }

    fn subscribe(conn: &Connection, callback_url: &str, events: &[String]) -> Result<Subscription> {
        let config = Config::of(conn)?;
        let subscriptions: Vec<String> = if events.is_empty() {
            DEFAULT_EVENTS.iter().map(|e| (*e).to_owned()).collect()
        } else {
            events
                .iter()
                .map(|e| {
                    if e.starts_with("zen:") || e == "conditional_ticket_events" {
                        e.clone()
                    } else {
                        format!("zen:event-type:{e}")
                    }
                })
                .collect()
        };
        // Zendesk mints the webhook's signing secret, which weft cannot store for the host; with
        // a webhook secret on the connection, the webhook authenticates with a bearer token
        // derived from it instead (so `verify` recomputes it, and the plugin never holds the
        // secret). Without one, the operator stores the minted signing secret as it.
        let token = match bearer_token(conn) {
            Ok(token) => Some(token),
            Err(Error::Config(_)) => None,
            Err(e) => return Err(e),
        };
        let mut webhook = json!({
            "name": format!("weft {}", conn.name()), "endpoint": callback_url, "http_method": "POST",
            "request_format": "json", "status": "active", "subscriptions": subscriptions,
        });
        if let Some(token) = &token {
            webhook["authentication"] =
                json!({"type": "bearer_token", "add_position": "header", "data": {"token": token}});
        }
        let answer: Value = send(
            conn.post(&config.api("webhooks.json"))
                .json(&json!({"webhook": webhook}))?,
        )?
        .json()?;
        let id = answer
            .pointer("/webhook/id")
            .and_then(id_text)
            .ok_or_else(|| {
                Error::upstream(
                    201,
                    format!("the webhook answer has no id: {answer}").as_bytes(),
                )
            })?;
        if token.is_none() {
            weft_sdk::log::info(
                "Zendesk webhook created without a webhook secret on the connection; store its signing secret (GET /api/v2/webhooks/{id}/signing_secret) as the connection's webhook_secret",
                &[("webhook", &id)],
            );
        }
        Ok(Subscription {
            id,
            expires_at: None,
        })
    }

    fn unsubscribe(conn: &Connection, subscription_id: &str) -> Result<()> {
        let config = Config::of(conn)?;
        let id = weft_sdk::http::percent_encode(subscription_id);
        let resp = conn.delete(&config.api(&format!("webhooks/{id}"))).send()?;
        // Already gone is what unsubscribing wants.
        if resp.is_success() || resp.status == 404 {
            Ok(())
        } else {
            Err(failure(resp))
        }
    }
}

/// The Zendesk event types a subscription without a list gets.
const DEFAULT_EVENTS: [&str; 9] = [
    "zen:event-type:user.created",
    "zen:event-type:user.deleted",
    "zen:event-type:user.name_changed",
    "zen:event-type:organization.created",
    "zen:event-type:organization.deleted",
    "zen:event-type:ticket.created",
    "zen:event-type:ticket.status_changed",
    "zen:event-type:ticket.comment_added",
    "zen:event-type:ticket.deleted",
];

/// A verified delivery as an event: Zendesk's event envelope, or a trigger's own body.
fn event(req: &InboundRequest, payload: Record) -> Event {
    let kind = payload
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match kind {
        Some(kind) => {
            let action = kind
                .strip_prefix("zen:event-type:")
                .unwrap_or(&kind)
                .to_owned();
            let stream = match action.split('.').next() {
                Some("user") => "users",
                Some("organization") => "organizations",
                _ => "tickets",
            };
            let record = match payload.get("detail") {
                Some(Value::Object(detail)) => {
                    let mut record = detail.clone();
                    if let Some(change) = payload
                        .get("event")
                        .filter(|e| e.as_object().is_some_and(|o| !o.is_empty()))
                    {
                        record.insert("event".into(), change.clone());
                    }
                    record
                }
                _ => Record::new(),
            };
            let id = payload
                .get("id")
                .and_then(id_text)
                .unwrap_or_else(|| invocation(req));
            Event {
                id,
                stream: stream.into(),
                action,
                record,
                occurred_at: payload
                    .get("time")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }
        }
        // Trigger-connected webhooks send the body the trigger defines.
        None => Event {
            id: invocation(req),
            stream: "tickets".into(),
            action: "trigger".into(),
            record: payload,
            occurred_at: None,
        },
    }
}

fn invocation(req: &InboundRequest) -> String {
    req.header("x-zendesk-webhook-invocation-id")
        .or_else(|| req.header("x-zendesk-webhook-signature"))
        .unwrap_or_default()
        .to_owned()
}

weft_sdk::export_connector!(Zendesk);
