//! `monday`: monday.com boards and items through the GraphQL API (`POST https://api.monday.com/v2`).
//!
//! **Reads** the stream `items`: every item of the boards in `board_ids` (or the read option
//! `board_id`), one board after the other, with `boards(ids) { items_page(limit) }` for a
//! board's first page and `next_items_page(cursor)` after it; a `null` cursor ends the board.
//! Each record carries the item's id, name, board, group, timestamps and its
//! `column_values` keyed by column id (`{"type", "text", "value"}`, `value` parsed from
//! monday's JSON string). The stream `boards` lists the boards; `updates` the account's updates
//! (an item's comments), newest first, `updates(limit, page)` at most 100 a page.
//!
//! monday has no changes feed, so incremental reads ask the server for items updated since the
//! day of the last read (`query_params` rule on `__last_updated__`, the documented date form)
//! and keep those whose `updated_at` is after the cursor's instant. The cursor holds the board
//! being read, monday's page cursor, the instant this pass reads from and the newest
//! `updated_at` seen; a page cursor monday no longer accepts (they live 60 minutes) restarts
//! that board. Timestamps have one-second resolution, so a change in the same second as the
//! newest one already read waits for the next change of that item.
//!
//! **Writes** to `items` send up to 25 mutations per request as aliases (`r0: create_item(…)`,
//! `r1: change_multiple_column_values(…)`), about 250,000 complexity points, so one request
//! stays far below the 5M per-query limit; errors come back per alias and fail only their
//! record. A record is `{"board_id"?, "name", "group_id"?, "column_values": {column: value}}`
//! (`board_id` defaults to the only board in `board_ids`); update and delete need `id`; upsert
//! matches on `id`, or on one column named as the key (found with an `any_of` rule). Writing
//! to `updates` (`{"item_id", "body"}`, create only) posts `create_update` mutations the same way.
//!
//! **Errors**: `COMPLEXITY_BUDGET_EXHAUSTED`, `DAILY_LIMIT_EXCEEDED`, per-minute and concurrency
//! limits are `rate-limited` with `retry_in_seconds` / `Retry-After`; 401 and
//! `UserUnauthorizedException` are auth errors.
//!
//! **Webhooks**: `subscribe` calls `create_webhook` for every board in `board_ids` and every
//! event (default `create_item` and `change_column_value`); monday first POSTs
//! `{"challenge"}`, which `verify` answers by echoing it. Deliveries carry a JWT (HS256 under
//! the app's signing secret, the connection's webhook secret) in `Authorization`; `verify`
//! checks its MAC through the host and its `exp`. The JWT does not cover the body.
//!
//! Config: `board_ids` (list), `api_url` (default `https://api.monday.com/v2`), `api_version`
//! (default `2025-07`). Authentication: the API token, sent raw as `Authorization: {token}`.

use serde::{Deserialize, Serialize};
use weft_sdk::serde_json::Map;
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, CredentialPlacement, Error, Event,
    HeaderTemplate, InboundRequest, MacAlgorithm, Page, ReadRequest, Record, Reply, Result, Stream,
    Subscription, SyncMode, Value, Verification, WriteMode, WriteOutcome, WriteRequest,
    constant_time_eq, json,
};

const DEFAULT_API: &str = "https://api.monday.com/v2";
const DEFAULT_VERSION: &str = "2025-07";
const DEFAULT_PAGE_SIZE: u32 = 100;
/// `items_page` returns at most 500 items.
const MAX_PAGE_SIZE: u32 = 500;
/// Mutations per request: ~10,000 points each, far below the 5M per-query limit.
const MUTATIONS_PER_REQUEST: usize = 25;
/// monday pages updates by at most 100.
const MAX_UPDATES_PAGE: u32 = 100;
const ITEM_FIELDS: &str = "id name state created_at updated_at creator_id url group { id } board { id } column_values { id type text value }";

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    board_ids: Vec<Value>,
    #[serde(default = "default_api")]
    api_url: String,
    #[serde(default = "default_version")]
    api_version: String,
}

fn default_api() -> String {
    DEFAULT_API.into()
}

fn default_version() -> String {
    DEFAULT_VERSION.into()
}

/// A board or item id as monday's `ID` scalar: digits, sent as a string.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

impl Config {
    fn of(conn: &Connection) -> Result<Config> {
        let c: Config = conn.config_as()?;
        if let Some(bad) = c.board_ids.iter().find(|b| id_text(b).is_none()) {
            return Err(Error::config(format!(
                "connection `{}`: board id {bad} is not a monday id (digits)",
                conn.name()
            )));
        }
        Ok(c)
    }

    fn boards(&self) -> Vec<String> {
        self.board_ids.iter().filter_map(id_text).collect()
    }
}

/// One GraphQL call: HTTP errors and `errors[]` that concern the whole request become
/// [`Error`]s; the rest of the answer (with any per-field errors) is returned.
fn graphql(conn: &Connection, config: &Config, query: &str, variables: Value) -> Result<Value> {
    let resp = conn
        .post(&config.api_url)
        .header("API-Version", &config.api_version)
        .json(&json!({"query": query, "variables": variables}))?
        .send()?;
    let body: Option<Value> = weft_sdk::serde_json::from_slice(&resp.body).ok();
    if let Some(e) = body
        .as_ref()
        .and_then(|b| request_error(b, resp.retry_after()))
    {
        return Err(e);
    }
    let resp = resp.error_for_status()?;
    body.ok_or_else(|| Error::upstream(resp.status, &resp.body))
}

/// The error of an answer that failed as a whole: throttling, authentication, or the legacy
/// `error_code` shape.
fn request_error(body: &Value, retry_after: Option<std::time::Duration>) -> Option<Error> {
    if let Some(code) = body.get("error_code").and_then(Value::as_str) {
        let message = body
            .get("error_message")
            .and_then(Value::as_str)
            .unwrap_or(code)
            .to_owned();
        if code == "ComplexityException"
            || body.get("status_code").and_then(Value::as_u64) == Some(429)
        {
            let wait = message
                .split("reset in ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<u64>().ok());
            return Some(Error::rate_limited(
                wait.map(std::time::Duration::from_secs).or(retry_after),
                message,
            ));
        }
        return Some(Error::upstream(
            body.get("status_code")
                .and_then(Value::as_u64)
                .unwrap_or(500) as u16,
            message.as_bytes(),
        ));
    }
    for e in body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let code = e
            .pointer("/extensions/code")
            .and_then(Value::as_str)
            .unwrap_or("");
        let message = e.get("message").and_then(Value::as_str).unwrap_or(code);
        let wait = e
            .pointer("/extensions/retry_in_seconds")
            .and_then(Value::as_u64)
            .map(std::time::Duration::from_secs)
            .or(retry_after);
        match code {
            "COMPLEXITY_BUDGET_EXHAUSTED"
            | "DAILY_LIMIT_EXCEEDED"
            | "RATE_LIMIT_EXCEEDED"
            | "maxConcurrencyExceeded"
            | "IP_RATE_LIMIT_EXCEEDED" => {
                return Some(Error::rate_limited(wait, format!("{code}: {message}")));
            }
            "UNAUTHENTICATED" | "UserUnauthorizedException" => {
                return Some(Error::auth(format!("{code}: {message}")));
            }
            "GRAPHQL_PARSE_FAILED" | "maxComplexityExceeded" => {
                return Some(Error::internal(format!(
                    "monday refused the query: {message}"
                )));
            }
            _ => {}
        }
    }
    None
}

/// The error monday reported for the field under `alias`, if any.
fn field_error(body: &Value, alias: &str) -> Option<(String, String)> {
    body.get("errors")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|e| {
            let path = e.get("path").and_then(Value::as_array)?;
            (path.first().and_then(Value::as_str) == Some(alias)).then(|| {
                let code = e
                    .pointer("/extensions/code")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                (
                    code,
                    e.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("monday refused the mutation")
                        .to_owned(),
                )
            })
        })
}

fn item_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "board_id": {"type": "string"},
            "group_id": {"type": ["string", "null"]},
            "state": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "creator_id": {"type": ["string", "null"]},
            "url": {"type": "string"},
            "column_values": {
                "type": "object",
                "description": "by column id: {type, text, value}; value is the column's JSON value, parsed",
                "additionalProperties": {"type": "object", "properties": {"type": {"type": "string"}, "text": {"type": ["string", "null"]}, "value": {}}}
            }
        }
    })
}

/// An item as monday answers it, reshaped into a record.
fn record_of(item: &Value) -> Record {
    let mut r = Record::new();
    for k in [
        "id",
        "name",
        "state",
        "created_at",
        "updated_at",
        "creator_id",
        "url",
    ] {
        r.insert(k.into(), item.get(k).cloned().unwrap_or(Value::Null));
    }
    r.insert(
        "board_id".into(),
        item.pointer("/board/id").cloned().unwrap_or(Value::Null),
    );
    r.insert(
        "group_id".into(),
        item.pointer("/group/id").cloned().unwrap_or(Value::Null),
    );
    let mut columns = Map::new();
    for c in item
        .get("column_values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = c.get("id").and_then(Value::as_str) else {
            continue;
        };
        let value = match c.get("value") {
            Some(Value::String(s)) => {
                weft_sdk::serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
            }
            Some(other) => other.clone(),
            None => Value::Null,
        };
        columns.insert(
            id.into(),
            json!({"type": c.get("type"), "text": c.get("text"), "value": value}),
        );
    }
    r.insert("column_values".into(), Value::Object(columns));
    r
}

/// Where an `items` read resumes.
#[derive(Serialize, Deserialize, Default)]
struct Resume {
    /// Index into the boards being read.
    #[serde(default)]
    board: usize,
    /// monday's `items_page` cursor within that board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    /// Incremental: only items updated after this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// The newest `updated_at` seen in this pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest: Option<String>,
}

/// Whether `text` is an RFC 3339 UTC instant as monday writes them (`2026-05-21T14:00:00Z`).
fn is_instant(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && text.ends_with('Z')
        && b[..4].iter().all(u8::is_ascii_digit)
}

pub struct Monday;

impl Monday {
    fn read_items(conn: &Connection, config: &Config, req: &ReadRequest) -> Result<Page> {
        let boards = match req.options.get("board_id") {
            Some(b) => vec![id_text(b).ok_or_else(|| {
                Error::config(format!("read option board_id {b} is not a monday id"))
            })?],
            None => config.boards(),
        };
        if boards.is_empty() {
            return Err(Error::config(
                "no board to read: set `board_ids` in the connection's config or `board_id` in the read options",
            ));
        }
        let mut resume: Resume = req.cursor_state()?.unwrap_or_default();
        if req.mode == SyncMode::Full {
            resume.since = None;
        }
        if let Some(s) = resume
            .since
            .as_deref()
            .or(resume.newest.as_deref())
            .filter(|s| !is_instant(s))
        {
            return Err(Error::config(format!(
                "the stored cursor's instant `{s}` is not RFC 3339; reset the flow's cursor"
            )));
        }
        if resume.board >= boards.len() {
            return Err(Error::config(
                "the stored cursor names a board this read does not have; reset the flow's cursor",
            ));
        }
        let limit = req
            .page_size
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .clamp(1, MAX_PAGE_SIZE);
        let board = &boards[resume.board];
        let query_params = resume.since.as_deref().map(|since| {
            json!({"rules": [{"column_id": "__last_updated__", "compare_value": ["EXACT", &since[..10]], "operator": "greater_than_or_equals"}]})
        });
        let first_page = |conn: &Connection| -> Result<(Value, Value)> {
            let q = format!(
                "query ($board: [ID!], $limit: Int!, $qp: ItemsQuery) {{ boards(ids: $board) {{ items_page(limit: $limit, query_params: $qp) {{ cursor items {{ {ITEM_FIELDS} }} }} }} }}"
            );
            let body = graphql(
                conn,
                config,
                &q,
                json!({"board": [board], "limit": limit, "qp": query_params}),
            )?;
            let page = body
                .pointer("/data/boards/0/items_page")
                .cloned()
                .unwrap_or(Value::Null);
            Ok((body, page))
        };
        let (body, page) = match &resume.page {
            None => first_page(conn)?,
            Some(cursor) => {
                let q = format!(
                    "query ($cursor: String!, $limit: Int!) {{ next_items_page(cursor: $cursor, limit: $limit) {{ cursor items {{ {ITEM_FIELDS} }} }} }}"
                );
                let body = graphql(conn, config, &q, json!({"cursor": cursor, "limit": limit}))?;
                match field_error(&body, "next_items_page") {
                    Some((code, _)) if code.contains("Cursor") => {
                        weft_sdk::log::warn(
                            "monday no longer accepts the page cursor; reading the board again",
                            &[("board", board)],
                        );
                        first_page(conn)?
                    }
                    _ => {
                        let page = body
                            .pointer("/data/next_items_page")
                            .cloned()
                            .unwrap_or(Value::Null);
                        (body, page)
                    }
                }
            }
        };
        if page.is_null() {
            let why = body
                .get("errors")
                .map(Value::to_string)
                .unwrap_or_else(|| format!("board {board} was not found"));
            return Err(Error::config(format!(
                "monday answered no items page for board {board}: {why}"
            )));
        }
        let mut records = Vec::new();
        for item in page
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = record_of(item);
            let updated = r
                .get("updated_at")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if resume
                .since
                .as_deref()
                .is_some_and(|s| updated.as_str() <= s)
            {
                continue;
            }
            if resume
                .newest
                .as_deref()
                .is_none_or(|n| updated.as_str() > n)
                && is_instant(&updated)
            {
                resume.newest = Some(updated);
            }
            records.push(r);
        }
        let next_page = page
            .get("cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(match next_page {
            Some(c) => Page::more(
                records,
                &Resume {
                    page: Some(c),
                    ..resume
                },
            ),
            None if resume.board + 1 < boards.len() => Page::more(
                records,
                &Resume {
                    board: resume.board + 1,
                    page: None,
                    ..resume
                },
            ),
            None => {
                // The pass is over: the next one reads what changed after the newest update seen.
                let since = resume.newest.clone().or(resume.since.clone());
                Page::last(
                    records,
                    Some(&Resume {
                        board: 0,
                        page: None,
                        since,
                        newest: resume.newest,
                    }),
                )
            }
        })
    }

    fn board_of(config: &Config, record: &Record) -> Result<String> {
        match record.get("board_id") {
            Some(b) => id_text(b)
                .ok_or_else(|| Error::invalid_record(format!("board_id {b} is not a monday id"))),
            None => match config.boards().as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(Error::invalid_record(
                    "the record has no board_id and the connection has not exactly one board",
                )),
            },
        }
    }
}

/// One record's mutation, or why it cannot be sent.
enum Mutation {
    Send {
        field: String,
        variables: Vec<(String, &'static str, Value)>,
        existing: bool,
    },
    Refused(Error),
}

fn column_values(record: &Record) -> Result<Map<String, Value>> {
    let mut values = match record.get("column_values") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(Error::invalid_record(format!(
                "column_values must be an object by column id, got {other}"
            )));
        }
    };
    // Records read from this connector carry {type, text, value}; write back the value.
    for v in values.values_mut() {
        if let Value::Object(o) = v
            && o.contains_key("type")
            && o.contains_key("text")
        {
            *v = o.get("value").cloned().unwrap_or(Value::Null);
        }
    }
    Ok(values)
}

fn mutation(
    n: usize,
    config: &Config,
    mode: WriteMode,
    record: &Record,
    found: Option<&String>,
) -> Mutation {
    let build = || -> Result<Mutation> {
        let alias = format!("r{n}");
        let id = record
            .get("id")
            .and_then(id_text)
            .or_else(|| found.cloned());
        let name = record.get("name").and_then(Value::as_str);
        let mut values = column_values(record)?;
        let create =
            matches!(mode, WriteMode::Create) || (mode == WriteMode::Upsert && id.is_none());
        if create {
            let board = Monday::board_of(config, record)?;
            let name = name.ok_or_else(|| Error::invalid_record("a new item needs a `name`"))?;
            let mut vars = vec![
                (format!("b{n}"), "ID!", json!(board)),
                (format!("n{n}"), "String!", json!(name)),
                (
                    format!("c{n}"),
                    "JSON",
                    json!(Value::Object(values).to_string()),
                ),
            ];
            let group = record.get("group_id").and_then(Value::as_str).map(|g| {
                vars.push((format!("g{n}"), "String", json!(g)));
                format!(", group_id: $g{n}")
            });
            let field = format!(
                "{alias}: create_item(board_id: $b{n}, item_name: $n{n}, column_values: $c{n}{}) {{ id }}",
                group.unwrap_or_default()
            );
            return Ok(Mutation::Send {
                field,
                variables: vars,
                existing: false,
            });
        }
        let id = id.ok_or_else(|| Error::invalid_record("the record has no item `id`"))?;
        if mode == WriteMode::Delete {
            return Ok(Mutation::Send {
                field: format!("{alias}: delete_item(item_id: $i{n}) {{ id }}"),
                variables: vec![(format!("i{n}"), "ID!", json!(id))],
                existing: true,
            });
        }
        let board = Monday::board_of(config, record)?;
        if let Some(name) = name {
            values.insert("name".into(), json!(name));
        }
        let field = format!(
            "{alias}: change_multiple_column_values(board_id: $b{n}, item_id: $i{n}, column_values: $c{n}) {{ id }}"
        );
        let vars = vec![
            (format!("b{n}"), "ID!", json!(board)),
            (format!("i{n}"), "ID!", json!(id)),
            (
                format!("c{n}"),
                "JSON!",
                json!(Value::Object(values).to_string()),
            ),
        ];
        Ok(Mutation::Send {
            field,
            variables: vars,
            existing: true,
        })
    };
    build().unwrap_or_else(Mutation::Refused)
}

/// For an upsert keyed on a column: the id of the item holding each record's key value.
fn find_by_column(
    conn: &Connection,
    config: &Config,
    column: &str,
    records: &[Record],
) -> Result<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut vars = Map::new();
    for (n, r) in records.iter().enumerate() {
        let (Ok(board), Some(value)) = (
            Monday::board_of(config, r),
            r.get(column)
                .or_else(|| r.get("column_values").and_then(|c| c.get(column))),
        ) else {
            continue;
        };
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("text")
                .or_else(|| o.get("email"))
                .or_else(|| o.get("label"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            other => other.to_string(),
        };
        fields.push(format!("k{n}: boards(ids: [$b{n}]) {{ items_page(limit: 1, query_params: $q{n}) {{ items {{ id }} }} }}"));
        vars.insert(format!("b{n}"), json!(board));
        vars.insert(format!("q{n}"), json!({"rules": [{"column_id": column, "compare_value": [text], "operator": "any_of"}]}));
    }
    if fields.is_empty() {
        return Ok(vec![None; records.len()]);
    }
    let defs: Vec<String> = vars
        .keys()
        .map(|k| {
            format!(
                "${k}: {}",
                if k.starts_with('b') {
                    "ID!"
                } else {
                    "ItemsQuery"
                }
            )
        })
        .collect();
    let body = graphql(
        conn,
        config,
        &format!("query ({}) {{ {} }}", defs.join(", "), fields.join(" ")),
        Value::Object(vars),
    )?;
    Ok((0..records.len())
        .map(|n| {
            body.pointer(&format!("/data/k{n}/0/items_page/items/0/id"))
                .and_then(id_text)
        })
        .collect())
}

fn write_chunk(
    conn: &Connection,
    config: &Config,
    mode: WriteMode,
    key: &[String],
    records: &[Record],
) -> Result<Vec<WriteOutcome>> {
    let found = match (mode, key) {
        (WriteMode::Upsert, [column]) if column != "id" => {
            find_by_column(conn, config, column, records)?
        }
        _ => vec![None; records.len()],
    };
    let mutations: Vec<Mutation> = records
        .iter()
        .zip(&found)
        .enumerate()
        .map(|(n, (r, f))| mutation(n, config, mode, r, f.as_ref()))
        .collect();
    send_mutations(conn, config, mode, mutations)
}

/// Sends the mutations (aliased `r{n}`) in one request; one outcome per mutation, in order.
fn send_mutations(
    conn: &Connection,
    config: &Config,
    mode: WriteMode,
    mutations: Vec<Mutation>,
) -> Result<Vec<WriteOutcome>> {
    let mut fields = Vec::new();
    let mut defs = Vec::new();
    let mut vars = Map::new();
    for m in &mutations {
        if let Mutation::Send {
            field, variables, ..
        } = m
        {
            fields.push(field.clone());
            for (name, ty, value) in variables {
                defs.push(format!("${name}: {ty}"));
                vars.insert(name.clone(), value.clone());
            }
        }
    }
    let body = if fields.is_empty() {
        Value::Null
    } else {
        graphql(
            conn,
            config,
            &format!("mutation ({}) {{ {} }}", defs.join(", "), fields.join(" ")),
            Value::Object(vars),
        )?
    };
    Ok(mutations
        .into_iter()
        .enumerate()
        .map(|(n, m)| match m {
            Mutation::Refused(e) => WriteOutcome::failed(e),
            Mutation::Send { existing, .. } => {
                let alias = format!("r{n}");
                let id = body.pointer(&format!("/data/{alias}/id")).and_then(id_text);
                match (id, field_error(&body, &alias)) {
                    (Some(id), None) => match (mode, existing) {
                        (WriteMode::Delete, _) => WriteOutcome::deleted(id),
                        (_, true) => WriteOutcome::updated(id),
                        (_, false) => WriteOutcome::created(id),
                    },
                    (_, Some((code, message))) => {
                        WriteOutcome::failed(Error::invalid_record(format!("{code}: {message}")))
                    }
                    (None, None) => WriteOutcome::failed(Error::internal(format!(
                        "monday answered no id for {alias}"
                    ))),
                }
            }
        })
        .collect())
}

/// Posts updates as aliased `create_update` mutations, one outcome per record.
fn post_updates(
    conn: &Connection,
    config: &Config,
    records: &[Record],
) -> Result<Vec<WriteOutcome>> {
    let mutations = records
        .iter()
        .enumerate()
        .map(|(n, r)| {
            match (
                r.get("item_id").and_then(id_text),
                r.get("body")
                    .and_then(Value::as_str)
                    .filter(|b| !b.trim().is_empty()),
            ) {
                (Some(item), Some(body)) => Mutation::Send {
                    field: format!("r{n}: create_update(item_id: $i{n}, body: $b{n}) {{ id }}"),
                    variables: vec![
                        (format!("i{n}"), "ID!", json!(item)),
                        (format!("b{n}"), "String!", json!(body)),
                    ],
                    existing: false,
                },
                _ => Mutation::Refused(Error::invalid_record(
                    "an update needs `item_id` and a non-empty `body`",
                )),
            }
        })
        .collect();
    send_mutations(conn, config, WriteMode::Create, mutations)
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Checks the HS256 JWT monday puts in `Authorization`; the claims when genuine.
fn verify_jwt(conn: &Connection, token: &str) -> Result<std::result::Result<Value, String>> {
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Ok(Err("Authorization is not a JWT".into()));
    };
    let header: Value =
        match base64url(header).and_then(|b| weft_sdk::serde_json::from_slice(&b).ok()) {
            Some(h) => h,
            None => return Ok(Err("the JWT header is not base64url JSON".into())),
        };
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Ok(Err(format!(
            "the JWT is signed with {}, not HS256",
            header.get("alg").unwrap_or(&Value::Null)
        )));
    }
    let Some(signature) = base64url(signature) else {
        return Ok(Err("the JWT signature is not base64url".into()));
    };
    let expected = conn.webhook_mac(
        MacAlgorithm::HmacSha256,
        format!("{}.{claims}", parts[0]).as_bytes(),
    )?;
    if !constant_time_eq(&expected, &signature) {
        return Ok(Err(
            "the JWT is not signed with this connection's signing secret".into(),
        ));
    }
    let Some(claims) =
        base64url(claims).and_then(|b| weft_sdk::serde_json::from_slice::<Value>(&b).ok())
    else {
        return Ok(Err("the JWT claims are not base64url JSON".into()));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // A minute of leeway for clock skew between monday and this host.
    if claims
        .get("exp")
        .and_then(Value::as_u64)
        .is_some_and(|exp| exp + 60 < now)
    {
        return Ok(Err("the JWT has expired".into()));
    }
    Ok(Ok(claims))
}

impl Connector for Monday {
    fn describe() -> ConnectorInfo {
        ConnectorInfo::new("monday", env!("CARGO_PKG_VERSION"))
            .description("monday.com boards and items over GraphQL: items_page cursors, aliased mutations, JWT-signed webhooks.")
            .config_schema(json!({
                "type": "object",
                "properties": {
                    "board_ids": {"type": "array", "items": {"type": ["string", "integer"]}, "description": "the boards whose items the connection reads and writes"},
                    "api_url": {"type": "string", "format": "uri", "default": DEFAULT_API},
                    "api_version": {"type": "string", "default": DEFAULT_VERSION}
                }
            }))
            .stream(
                Stream::new("items", item_schema())
                    .description("Items of the configured boards, with their column values.")
                    .incremental("updated_at")
                    .writable(&[WriteMode::Create, WriteMode::Update, WriteMode::Upsert, WriteMode::Delete]),
            )
            .stream(Stream::new(
                "boards",
                json!({"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"}, "state": {"type": "string"},
                    "board_kind": {"type": "string"}, "items_count": {"type": "integer"},
                    "columns": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "type": {"type": "string"}}}}
                }}),
            ).description("The boards the token can see, with their columns."))
            .stream(
                Stream::new(
                    "updates",
                    json!({"type": "object", "required": ["id"], "properties": {
                        "id": {"type": "string"}, "item_id": {"type": "string"}, "body": {"type": "string", "description": "HTML"},
                        "text_body": {"type": "string"}, "creator_id": {"type": ["string", "null"]},
                        "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"}
                    }}),
                )
                .description("Updates (the comments of an item's updates section), newest first; writing one posts it on its item_id.")
                .writable(&[WriteMode::Create]),
            )
            .auth(AuthKind::ApiKey, CredentialPlacement::Header(HeaderTemplate { name: "Authorization".into(), value: "{token}".into() }))
            .auth(AuthKind::Bearer, CredentialPlacement::Header(HeaderTemplate { name: "Authorization".into(), value: "{token}".into() }))
            // monday's own host is a literal: a flow allows it in the connection's egress.
            .host("{api_url?}")
            .host("https://api.monday.com")
            // Per-minute query limit of the Pro plan; complexity budgets are enforced by monday
            // and answered as rate-limited.
            .rate_limit(500, std::time::Duration::from_secs(60))
    }

    fn check(conn: &Connection) -> Result<()> {
        let config = Config::of(conn)?;
        let body = graphql(conn, &config, "query { me { id } }", json!({}))?;
        if body.pointer("/data/me/id").is_none() {
            return Err(Error::auth(format!(
                "monday did not say who the token belongs to: {}",
                body.get("errors").unwrap_or(&Value::Null)
            )));
        }
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        let config = Config::of(conn)?;
        match req.stream.as_str() {
            "items" => Self::read_items(conn, &config, &req),
            "boards" => {
                let page: u64 = req.cursor_state()?.unwrap_or(1);
                let limit = req
                    .page_size
                    .unwrap_or(DEFAULT_PAGE_SIZE)
                    .clamp(1, MAX_PAGE_SIZE);
                let body = graphql(
                    conn,
                    &config,
                    "query ($limit: Int!, $page: Int!) { boards(limit: $limit, page: $page) { id name state board_kind items_count columns { id title type } } }",
                    json!({"limit": limit, "page": page}),
                )?;
                let boards: Vec<Record> = body
                    .pointer("/data/boards")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b.as_object().cloned())
                    .collect();
                Ok(if (boards.len() as u32) < limit {
                    Page::last::<u64>(boards, None)
                } else {
                    Page::more(boards, &(page + 1))
                })
            }
            "updates" => {
                let page: u64 = req.cursor_state()?.unwrap_or(1);
                let limit = req
                    .page_size
                    .unwrap_or(MAX_UPDATES_PAGE)
                    .clamp(1, MAX_UPDATES_PAGE);
                let body = graphql(
                    conn,
                    &config,
                    "query ($limit: Int!, $page: Int!) { updates(limit: $limit, page: $page) { id item_id body text_body creator_id created_at updated_at } }",
                    json!({"limit": limit, "page": page}),
                )?;
                let updates: Vec<Record> = body
                    .pointer("/data/updates")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_object().cloned())
                    .collect();
                Ok(if (updates.len() as u32) < limit {
                    Page::last::<u64>(updates, None)
                } else {
                    Page::more(updates, &(page + 1))
                })
            }
            other => Err(Error::config(format!(
                "unknown stream `{other}`; this connector offers items, boards and updates"
            ))),
        }
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        if req.stream == "updates" {
            if req.mode != WriteMode::Create {
                return Err(Error::config(
                    "updates are posted (mode create); monday has no key to update or upsert them on",
                ));
            }
            let config = Config::of(conn)?;
            let mut outcomes = Vec::with_capacity(req.records.len());
            for chunk in req.records.chunks(MUTATIONS_PER_REQUEST) {
                outcomes.extend(post_updates(conn, &config, chunk)?);
            }
            return Ok(outcomes);
        }
        if req.stream != "items" {
            return Err(Error::config(format!(
                "stream `{}` is read-only; write to items or updates",
                req.stream
            )));
        }
        if req.key.len() > 1 {
            return Err(Error::config(
                "monday upserts match on one field: `id` or one column id",
            ));
        }
        let config = Config::of(conn)?;
        let mut outcomes = Vec::with_capacity(req.records.len());
        for (n, chunk) in req.records.chunks(MUTATIONS_PER_REQUEST).enumerate() {
            match write_chunk(conn, &config, req.mode, &req.key, chunk) {
                Ok(o) => outcomes.extend(o),
                // Nothing written yet: the host may retry the whole batch.
                Err(e) if n == 0 => return Err(e),
                // Earlier chunks are written; fail only the records not sent, with the reason.
                Err(e) => outcomes.extend(chunk.iter().map(|_| WriteOutcome::failed(e.clone()))),
            }
        }
        Ok(outcomes)
    }

    fn verify(conn: &Connection, req: InboundRequest) -> Result<Verification> {
        let body: Value = match weft_sdk::serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => return Ok(Verification::Rejected("the body is not JSON".into())),
        };
        // monday's URL check when a webhook is created: echo the challenge. It carries no
        // signature, and answering it processes nothing.
        if let Some(challenge) = body
            .get("challenge")
            .filter(|_| body.get("event").is_none())
        {
            return Ok(Verification::Handshake(Reply {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: json!({"challenge": challenge}).to_string().into_bytes(),
            }));
        }
        let Some(token) = req.header("authorization") else {
            return Ok(Verification::Rejected(
                "the delivery has no Authorization JWT".into(),
            ));
        };
        if let Err(why) = verify_jwt(conn, token)? {
            return Ok(Verification::Rejected(why));
        }
        let Some(e) = body.get("event") else {
            return Ok(Verification::Rejected("the body has no event".into()));
        };
        let text = |k: &str| {
            e.get(k).map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
        };
        let mut record = Record::new();
        record.insert("id".into(), json!(text("pulseId")));
        record.insert("name".into(), json!(text("pulseName")));
        record.insert("board_id".into(), json!(text("boardId")));
        record.insert("group_id".into(), json!(text("groupId")));
        for (from, to) in [
            ("columnId", "column_id"),
            ("columnType", "column_type"),
            ("value", "value"),
            ("previousValue", "previous_value"),
        ] {
            if let Some(v) = e.get(from) {
                record.insert(to.into(), v.clone());
            }
        }
        let id = text("triggerUuid")
            .ok_or_else(|| Error::invalid_record("the event has no triggerUuid"))?;
        Ok(Verification::Accepted(vec![Event {
            id,
            stream: "items".into(),
            action: text("type").unwrap_or_default(),
            record,
            occurred_at: text("triggerTime"),
        }]))
    }

    fn subscribe(conn: &Connection, callback_url: &str, events: &[String]) -> Result<Subscription> {
        let config = Config::of(conn)?;
        let boards = config.boards();
        if boards.is_empty() {
            return Err(Error::config(
                "set `board_ids` to subscribe to their webhooks",
            ));
        }
        let events: Vec<String> = if events.is_empty() {
            vec!["create_item".into(), "change_column_value".into()]
        } else {
            events.to_vec()
        };
        let mut ids = Vec::new();
        for board in &boards {
            for event in &events {
                // One at a time: monday calls the URL with a challenge during each.
                let body = graphql(
                    conn,
                    &config,
                    "mutation ($b: ID!, $u: String!, $e: WebhookEventType!) { create_webhook(board_id: $b, url: $u, event: $e) { id } }",
                    json!({"b": board, "u": callback_url, "e": event}),
                )?;
                match body.pointer("/data/create_webhook/id").and_then(id_text) {
                    Some(id) => ids.push(id),
                    None => {
                        let why = field_error(&body, "create_webhook")
                            .map(|(c, m)| format!("{c}: {m}"))
                            .unwrap_or_default();
                        return Err(Error::config(format!(
                            "monday refused the webhook for board {board}, event {event}: {why}"
                        )));
                    }
                }
            }
        }
        Ok(Subscription {
            id: ids.join(","),
            expires_at: None,
        })
    }

    fn unsubscribe(conn: &Connection, subscription_id: &str) -> Result<()> {
        let config = Config::of(conn)?;
        let ids: Vec<&str> = subscription_id
            .split(',')
            .filter(|s| !s.is_empty())
            .collect();
        let fields: Vec<String> = (0..ids.len())
            .map(|n| format!("d{n}: delete_webhook(id: $i{n}) {{ id }}"))
            .collect();
        let defs: Vec<String> = (0..ids.len()).map(|n| format!("$i{n}: ID!")).collect();
        let vars: Map<String, Value> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| (format!("i{n}"), json!(id)))
            .collect();
        if !fields.is_empty() {
            graphql(
                conn,
                &config,
                &format!("mutation ({}) {{ {} }}", defs.join(", "), fields.join(" ")),
                Value::Object(vars),
            )?;
        }
        Ok(())
    }
}

weft_sdk::export_connector!(Monday);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_decodes_jwt_parts() {
        assert_eq!(
            base64url("eyJhbGciOiJIUzI1NiJ9").unwrap(),
            br#"{"alg":"HS256"}"#
        );
        assert!(base64url("not*base64").is_none());
    }

    #[test]
    fn instants_are_checked() {
        assert!(is_instant("2026-05-21T14:00:00Z"));
        assert!(!is_instant("not a cursor"));
    }
}
