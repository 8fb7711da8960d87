//! monday.com GraphQL API v2 (crm-apis.md §6, §8).
//!
//! Faithful points a connector depends on: one `POST /v2` endpoint with the raw token in
//! `Authorization`, application errors as HTTP 200 with `errors[]` and partial `data`,
//! `items_page` cursors (500 per page, null at the end, expiring after 60 minutes) continued
//! with `next_items_page`, server-side `query_params` rules (including `__last_updated__` for
//! incremental reads), column values written as JSON strings and read back as `text` plus a
//! JSON `value`, `create_labels_if_missing`, complexity accounting with the `complexity` field
//! and `COMPLEXITY_BUDGET_EXHAUSTED`, daily and per-minute limits, and webhooks created through a
//! challenge handshake and signed with a JWT in `Authorization`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use super::graphql::{self, Field};
use super::{Window, header_str, json as json_response, set_header};
use crate::clock::{date, parse_iso, rfc3339};
use crate::collection::{Collection, Dir, Fields};
use crate::config::{DemoData, MondayLimits, SandboxConfig};
use crate::demo::{DEMO_EPOCH_MS, Demo, Kind};
use crate::server::{Credentials, Emulator, Hub, RequestCtx};
use crate::vendor::Vendor;
use crate::webhook::{Outgoing, retry_server_errors};

pub(crate) const API_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.weft-sandbox-monday-personal-token.demo";
pub(crate) const SIGNING_SECRET: &str = "weft-sandbox-monday-signing-secret";
const ACCOUNT_ID: u64 = 12_345_678;
const USER_ID: u64 = 32_002_207;
const BOARD_BASE: u64 = 1_234_567_000;
const ITEM_STRIDE: u64 = 10_000_000_000;

/// A board, by its 1-based number in the account; its id is `BOARD_BASE + n` and its items'
/// ids start at `n * ITEM_STRIDE`. The first three are the demo boards; `create_board` adds more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Board(u64);

impl Board {
    const ACCOUNTS: Board = Board(1);
    const CONTACTS: Board = Board(2);
    const DEALS: Board = Board(3);
    const DEMO: [Board; 3] = [Board::ACCOUNTS, Board::CONTACTS, Board::DEALS];

    fn id(self) -> u64 {
        BOARD_BASE + self.0
    }

    fn slot(self) -> usize {
        self.0 as usize - 1
    }
}

/// A board column: its id, type (`text`, `status`, ...) and title.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    id: String,
    kind: String,
    title: String,
    description: Option<String>,
}

impl Column {
    fn new(id: &str, kind: &str, title: &str) -> Column {
        Column {
            id: id.into(),
            kind: kind.into(),
            title: title.into(),
            description: None,
        }
    }

    /// The `name` column every board has, listed first.
    fn name() -> Column {
        Column::new("name", "name", "Name")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    id: String,
    title: String,
    color: String,
}

impl Group {
    fn new(id: &str, title: &str, color: &str) -> Group {
        Group {
            id: id.into(),
            title: title.into(),
            color: color.into(),
        }
    }
}

/// What a board is besides its items: name, kind, columns (after `name`) and groups in order.
#[derive(Debug, Clone)]
struct Layout {
    name: String,
    kind: String,
    description: Option<String>,
    columns: Vec<Column>,
    groups: Vec<Group>,
}

fn demo_layout(b: Board) -> Layout {
    let (name, columns) = match b {
        Board::ACCOUNTS => (
            "Accounts",
            vec![
                Column::new("website", "link", "Website"),
                Column::new("phone", "phone", "Phone"),
                Column::new("industry", "text", "Industry"),
                Column::new("employees", "numbers", "Employees"),
                Column::new("country", "text", "Country"),
            ],
        ),
        Board::CONTACTS => (
            "Contacts",
            vec![
                Column::new("email", "email", "Email"),
                Column::new("phone", "phone", "Phone"),
                Column::new("title", "text", "Title"),
                Column::new("account", "board_relation", "Account"),
            ],
        ),
        _ => (
            "Deals",
            vec![
                Column::new("status", "status", "Stage"),
                Column::new("deal_value", "numbers", "Deal value"),
                Column::new("close_date", "date", "Close date"),
                Column::new("account", "board_relation", "Account"),
                Column::new("contact", "board_relation", "Contact"),
            ],
        ),
    };
    Layout {
        name: name.into(),
        kind: "public".into(),
        description: None,
        columns,
        groups: vec![
            Group::new("topics", "Active", "#579bfc"),
            Group::new("closed", "Closed", "#00c875"),
        ],
    }
}

fn item_id(b: Board, i: u64) -> u64 {
    b.0 * ITEM_STRIDE + i + 1
}

const DEFAULT_LABELS: [&str; 6] = [
    "Qualification",
    "Closed Won",
    "Closed Lost",
    "Needs Analysis",
    "Proposal",
    "Negotiation",
];

fn generated(demo: &Demo, b: Board, i: u64) -> Fields {
    let rel = |board: Board, idx: u64| json!({"linkedPulseIds": [{"linkedPulseId": item_id(board, idx)}]});
    let v = match b {
        Board::ACCOUNTS => {
            let c = demo.company(i);
            json!({"name": c.name, "group": "topics", "website": {"url": format!("https://www.{}", c.domain), "text": c.domain}, "phone": {"phone": c.phone, "countryShortName": c.country}, "industry": c.industry, "employees": c.employees.to_string(), "country": c.country})
        }
        Board::CONTACTS => {
            let p = demo.contact(i);
            json!({"name": format!("{} {}", p.first, p.last), "group": "topics", "email": {"email": p.email, "text": p.email}, "phone": {"phone": p.phone, "countryShortName": "US"}, "title": p.title, "account": p.company.map(|c| rel(Board::ACCOUNTS, c))})
        }
        _ => {
            let d = demo.deal(i);
            // Stage order maps onto the board's status labels.
            let index = [0, 3, 4, 5, 1, 2][d.stage];
            json!({
                "name": d.name, "group": if d.stage >= 4 { "closed" } else { "topics" }, "status": {"index": index},
                "deal_value": d.amount.to_string(), "close_date": {"date": date(DEMO_EPOCH_MS + d.close_day * 86_400_000)},
                "account": rel(Board::ACCOUNTS, d.company), "contact": d.contact.map(|c| rel(Board::CONTACTS, c)),
            })
        }
    };
    v.as_object().cloned().unwrap_or_default()
}

fn build_collections(demo: Demo) -> Vec<Collection> {
    Board::DEMO
        .into_iter()
        .map(|b| {
            let (kind, n) = match b {
                Board::ACCOUNTS => (Kind::Company, demo.size.companies),
                Board::CONTACTS => (Kind::Contact, demo.size.contacts),
                _ => (Kind::Deal, demo.size.deals),
            };
            Collection::new(
                n,
                move |i| generated(&demo, b, i),
                move |i| demo.times(kind, i, n),
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
struct ItemsCursor {
    board: Board,
    query_params: Option<Value>,
    /// Index order: the last index served; ordered queries: how many were served.
    after: Option<u64>,
    offset: usize,
    expires_ms: i64,
}

#[derive(Debug, Clone)]
struct Webhook {
    id: u64,
    board: Board,
    url: String,
    event: String,
    config: Option<Value>,
}

/// An update (a comment in an item's updates section), newest last.
#[derive(Debug, Clone)]
struct Update {
    id: u64,
    board: Board,
    item: u64,
    body: String,
    created_ms: i64,
}

struct MondayState {
    demo: Demo,
    /// Items of each board, by `Board::slot`.
    boards: Vec<Collection>,
    /// Columns and groups of each board, by `Board::slot`.
    layouts: Vec<Layout>,
    updates: Vec<Update>,
    status_labels: BTreeMap<u64, String>,
    cursors: HashMap<String, ItemsCursor>,
    webhooks: BTreeMap<u64, Webhook>,
    /// Complexity points and calls in the current minute window; calls per UTC day.
    budget: Window,
    minute_calls: Window,
    daily: (i64, u64),
    next_id: u64,
}

pub(crate) struct Monday {
    hub: Arc<Hub>,
    base: OnceLock<String>,
    limits: MondayLimits,
    state: Mutex<MondayState>,
}

impl MondayState {
    /// The board a `board_id` argument names, if it exists.
    fn board(&self, v: &Value) -> Option<Board> {
        let n = v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
        let b = Board(n.checked_sub(BOARD_BASE)?);
        (b.0 >= 1 && b.slot() < self.layouts.len()).then_some(b)
    }

    /// The board and index of an item id, if its board exists (the item may be gone).
    fn item_ref(&self, v: &Value) -> Option<(Board, u64)> {
        let n = v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
        let b = Board(n / ITEM_STRIDE);
        (b.0 >= 1 && b.slot() < self.layouts.len()).then_some(())?;
        Some((b, (n % ITEM_STRIDE).checked_sub(1)?))
    }

    fn all_boards(&self) -> impl Iterator<Item = Board> + use<> {
        (1..=self.layouts.len() as u64).map(Board)
    }

    fn layout(&self, b: Board) -> &Layout {
        &self.layouts[b.slot()]
    }

    /// A column of `b` by id, `name` included.
    fn column(&self, b: Board, id: &str) -> Option<Column> {
        if id == "name" {
            return Some(Column::name());
        }
        self.layout(b).columns.iter().find(|c| c.id == id).cloned()
    }

    fn group_title(&self, b: Board, id: &str) -> String {
        self.layout(b)
            .groups
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.title.clone())
            .unwrap_or_default()
    }
}

/// A GraphQL error: message, `extensions.code`, and an optional status code.
#[derive(Debug)]
struct GqlError {
    message: String,
    code: &'static str,
    status_code: Option<u16>,
    data: Value,
}

impl GqlError {
    fn new(message: impl Into<String>, code: &'static str) -> Self {
        Self {
            message: message.into(),
            code,
            status_code: None,
            data: json!({}),
        }
    }
}

/// A write to report to webhooks.
struct Event {
    board: Board,
    item: u64,
    kind: &'static str,
    column: Option<(String, Value, Value)>,
}

impl Monday {
    pub(crate) fn new(hub: Arc<Hub>, config: &SandboxConfig) -> Arc<Self> {
        let demo = Demo::from(config.data);
        Arc::new(Self {
            limits: config.monday,
            state: Mutex::new(Self::fresh(demo)),
            hub,
            base: OnceLock::new(),
        })
    }

    fn fresh(demo: Demo) -> MondayState {
        MondayState {
            demo,
            boards: build_collections(demo),
            layouts: Board::DEMO.into_iter().map(demo_layout).collect(),
            updates: Vec::new(),
            status_labels: DEFAULT_LABELS
                .iter()
                .enumerate()
                .map(|(i, l)| (i as u64, l.to_string()))
                .collect(),
            cursors: HashMap::new(),
            webhooks: BTreeMap::new(),
            budget: Window::default(),
            minute_calls: Window::default(),
            daily: (0, 0),
            next_id: 1,
        }
    }

    fn base(&self) -> &str {
        self.base.get().map(String::as_str).unwrap_or("")
    }

    fn now(&self) -> i64 {
        self.hub.now_ms()
    }

    /// The display text of a stored column value.
    fn text(&self, st: &MondayState, kind: &str, v: &Value) -> Value {
        if v.is_null() {
            return Value::Null;
        }
        let s = match kind {
            "status" => v
                .get("index")
                .and_then(Value::as_u64)
                .and_then(|i| st.status_labels.get(&i).cloned())
                .unwrap_or_default(),
            "email" => v
                .get("text")
                .or_else(|| v.get("email"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            "phone" => v
                .get("phone")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            "date" => v
                .get("date")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            "long_text" => v
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            "checkbox" => {
                if v.get("checked").is_some_and(|c| c == "true" || c == true) {
                    "v".into()
                } else {
                    String::new()
                }
            }
            "link" => format!(
                "{} - {}",
                v.get("text").and_then(Value::as_str).unwrap_or(""),
                v.get("url").and_then(Value::as_str).unwrap_or("")
            ),
            "board_relation" => v
                .get("linkedPulseIds")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|x| st.item_ref(&x["linkedPulseId"]))
                        .filter_map(|(b, i)| {
                            st.boards[b.slot()].get(i).and_then(|r| {
                                r.fields
                                    .get("name")
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                            })
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            _ => v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string()),
        };
        json!(s)
    }

    /// Parses a column value as sent in mutations; `Err` is the ColumnValueException text.
    fn parse_column(
        &self,
        st: &mut MondayState,
        kind: &str,
        input: &Value,
        create_labels: bool,
        simple: bool,
    ) -> Result<Value, String> {
        let invalid = || {
            format!(
                "invalid value for a {kind} column, please check our API documentation for the correct data structure for this column"
            )
        };
        if input.is_null() || input.as_str() == Some("") {
            return Ok(Value::Null);
        }
        // Simple values are plain strings; full values are JSON (sent as a string or object).
        let v = if simple {
            input.clone()
        } else {
            match input {
                Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or_else(|_| json!(s)),
                other => other.clone(),
            }
        };
        Ok(match kind {
            "text" | "numbers" => match &v {
                Value::String(s) if kind == "numbers" && s.parse::<f64>().is_err() => {
                    return Err(invalid());
                }
                Value::String(s) => json!(s),
                Value::Number(n) => json!(n.to_string()),
                _ => return Err(invalid()),
            },
            "status" => {
                let label = v
                    .get("label")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| v.as_str().map(str::to_string));
                let index = v.get("index").and_then(Value::as_u64);
                match (label, index) {
                    (_, Some(i)) if st.status_labels.contains_key(&i) => json!({"index": i}),
                    (Some(l), _) => match st
                        .status_labels
                        .iter()
                        .find(|(_, x)| x.eq_ignore_ascii_case(&l))
                        .map(|(i, _)| *i)
                    {
                        Some(i) => json!({"index": i}),
                        None if create_labels => {
                            let i = st.status_labels.keys().max().map(|m| m + 1).unwrap_or(0);
                            st.status_labels.insert(i, l);
                            json!({"index": i})
                        }
                        None => {
                            return Err(format!(
                                "This status label doesn't exist, possible statuses are: {}",
                                st.status_labels
                                    .values()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                    },
                    _ => return Err(invalid()),
                }
            }
            "email" => match (&v, v.get("email")) {
                (_, Some(Value::String(e))) if e.contains('@') => {
                    json!({"email": e, "text": v.get("text").and_then(Value::as_str).unwrap_or(e)})
                }
                (Value::String(s), _) if simple && s.contains('@') => {
                    json!({"email": s.split_whitespace().next().unwrap_or(s), "text": s.split_whitespace().nth(1).unwrap_or(s)})
                }
                _ => return Err(invalid()),
            },
            "phone" => match (&v, v.get("phone")) {
                (_, Some(Value::String(p))) => {
                    json!({"phone": p, "countryShortName": v.get("countryShortName").and_then(Value::as_str).unwrap_or("")})
                }
                (Value::String(s), _) if simple => {
                    json!({"phone": s.split_whitespace().next().unwrap_or(s), "countryShortName": s.split_whitespace().nth(1).unwrap_or("")})
                }
                _ => return Err(invalid()),
            },
            "date" => {
                let d = v
                    .get("date")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| v.as_str().map(str::to_string));
                match d {
                    Some(d) if d.len() >= 10 && parse_iso(&d[..10]).is_some() => {
                        json!({"date": &d[..10]})
                    }
                    _ => return Err(invalid()),
                }
            }
            "link" => match v.get("url").and_then(Value::as_str) {
                Some(u) => {
                    json!({"url": u, "text": v.get("text").and_then(Value::as_str).unwrap_or(u)})
                }
                None => return Err(invalid()),
            },
            // Documented: long text takes `{"text": ...}` (or a plain string as a simple value).
            "long_text" => match (&v, v.get("text")) {
                (_, Some(Value::String(t))) => json!({"text": t}),
                (Value::String(t), _) => json!({"text": t}),
                _ => return Err(invalid()),
            },
            // Documented: `{"checked": "true"}` checks, `null` clears; the simple form is "true"/"false".
            "checkbox" => match (&v, v.get("checked")) {
                (_, Some(c)) if c == "true" || c == true => json!({"checked": "true"}),
                (_, Some(c)) if c == "false" || c == false => Value::Null,
                (Value::String(t), _) if simple && t == "true" => json!({"checked": "true"}),
                (Value::String(t), _) if simple && t == "false" => Value::Null,
                _ => return Err(invalid()),
            },
            "board_relation" => {
                let ids = v
                    .get("item_ids")
                    .and_then(Value::as_array)
                    .ok_or_else(invalid)?;
                let mut linked = Vec::new();
                for id in ids {
                    match st
                        .item_ref(id)
                        .filter(|(b, i)| st.boards[b.slot()].is_live(*i))
                    {
                        Some((b, i)) => linked.push(json!({"linkedPulseId": item_id(b, i)})),
                        None => return Err(format!("item {id} does not exist")),
                    }
                }
                json!({"linkedPulseIds": linked})
            }
            _ => return Err(invalid()),
        })
    }

    fn column_values(&self, st: &MondayState, b: Board, f: &Fields, field: &Field) -> Value {
        let wanted: Option<Vec<String>> = field.arg("ids").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
        let list: Vec<Value> = st
            .layout(b)
            .columns
            .iter()
            .filter(|c| wanted.as_ref().is_none_or(|w| w.contains(&c.id)))
            .map(|c| {
                let v = f.get(&c.id).cloned().unwrap_or(Value::Null);
                let full = json!({
                    "id": c.id, "type": c.kind, "text": self.text(st, &c.kind, &v),
                    "value": if v.is_null() { Value::Null } else { json!(v.to_string()) },
                    "column": column_json(st, c),
                });
                project(&full, &field.selection)
            })
            .collect();
        Value::Array(list)
    }

    fn item(&self, st: &MondayState, b: Board, i: u64, sel: &[Field]) -> Option<Value> {
        let rec = st.boards[b.slot()].get(i)?;
        let mut out = Map::new();
        for f in sel {
            let v = match f.name.as_str() {
                "id" => json!(item_id(b, i).to_string()),
                "name" => rec.fields.get("name").cloned().unwrap_or(Value::Null),
                "state" => json!("active"),
                "created_at" => json!(rfc3339(rec.created_ms)),
                "updated_at" => json!(rfc3339(rec.modified_ms)),
                "creator_id" => json!(USER_ID.to_string()),
                "url" => json!(format!(
                    "{}/boards/{}/pulses/{}",
                    self.base(),
                    b.id(),
                    item_id(b, i)
                )),
                "group" => {
                    let g = rec
                        .fields
                        .get("group")
                        .and_then(Value::as_str)
                        .unwrap_or("topics");
                    project(
                        &json!({"id": g, "title": st.group_title(b, g)}),
                        &f.selection,
                    )
                }
                "board" => project(
                    &json!({"id": b.id().to_string(), "name": st.layout(b).name}),
                    &f.selection,
                ),
                "column_values" => self.column_values(st, b, &rec.fields, f),
                "updates" => Value::Array(
                    st.updates
                        .iter()
                        .rev()
                        .filter(|u| u.board == b && u.item == i)
                        .map(|u| project(&update_json(u), &f.selection))
                        .collect(),
                ),
                _ => Value::Null,
            };
            out.insert(f.key().to_string(), v);
        }
        Some(Value::Object(out))
    }
}

/// A column as the API shows it; status columns carry the account's labels in `settings_str`.
fn column_json(st: &MondayState, c: &Column) -> Value {
    let settings = if c.kind == "status" {
        json!({"labels": st.status_labels}).to_string()
    } else {
        "{}".into()
    };
    json!({"id": c.id, "title": c.title, "type": c.kind, "description": c.description, "settings_str": settings, "archived": false})
}

/// A group as the API shows it; `position` is its place on the board.
fn group_json(g: &Group, position: usize) -> Value {
    json!({"id": g.id, "title": g.title, "color": g.color, "position": format!("{}.0", 65_536 * (position + 1)), "archived": false, "deleted": false})
}

/// An `ItemsResponse` (`items_page` and friends): the selected `cursor` and `items`.
fn items_response(sel: &[Field], items: Vec<Value>, next: Option<String>) -> Value {
    let mut p = Map::new();
    for x in sel {
        match x.name.as_str() {
            "cursor" => p.insert(x.key().into(), json!(next)),
            "items" => p.insert(x.key().into(), json!(items)),
            _ => p.insert(x.key().into(), Value::Null),
        };
    }
    Value::Object(p)
}

/// Keeps the selected keys of a plain object (nested selections recurse).
fn project(v: &Value, sel: &[Field]) -> Value {
    if sel.is_empty() {
        return v.clone();
    }
    match v {
        Value::Array(a) => Value::Array(a.iter().map(|x| project(x, sel)).collect()),
        Value::Object(o) => Value::Object(
            sel.iter()
                .map(|f| {
                    (
                        f.key().to_string(),
                        project(o.get(&f.name).unwrap_or(&Value::Null), &f.selection),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------- items_page rules

fn compare_values(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

impl Monday {
    /// Whether an item satisfies `query_params` (rules joined by `operator`, default `and`).
    fn rules_match(
        &self,
        st: &MondayState,
        b: Board,
        i: u64,
        qp: &Value,
    ) -> Result<bool, GqlError> {
        let Some(rules) = qp.get("rules").and_then(Value::as_array) else {
            return Ok(true);
        };
        let Some(rec) = st.boards[b.slot()].get(i) else {
            return Ok(false);
        };
        let any = qp.get("operator").and_then(Value::as_str) == Some("or");
        let mut results = Vec::new();
        for r in rules {
            let col = r.get("column_id").and_then(Value::as_str).unwrap_or("");
            let op = r
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("any_of");
            let cmp = compare_values(r.get("compare_value").unwrap_or(&Value::Null));
            // Dates come as ["EXACT", "2026-01-01"]; take the last concrete value.
            let date_of = |vals: &[Value]| {
                vals.iter()
                    .rev()
                    .filter_map(Value::as_str)
                    .find_map(parse_iso)
            };
            let (text, number, time, status): (String, Option<f64>, Option<i64>, Option<u64>) =
                match col {
                    "__last_updated__" => (String::new(), None, Some(rec.modified_ms), None),
                    "__creation_log__" => (String::new(), None, Some(rec.created_ms), None),
                    "name" => (
                        rec.fields
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        None,
                        None,
                        None,
                    ),
                    _ => {
                        let Some(Column { kind, .. }) = st.column(b, col) else {
                            return Err(GqlError::new(
                                format!("Column '{col}' was not found on board {}", b.id()),
                                "InvalidColumnIdException",
                            ));
                        };
                        let v = rec.fields.get(col).cloned().unwrap_or(Value::Null);
                        let text = self.text(st, &kind, &v).as_str().unwrap_or("").to_string();
                        let number = text.parse::<f64>().ok();
                        let time = if kind == "date" {
                            parse_iso(&text)
                        } else {
                            None
                        };
                        (text, number, time, v.get("index").and_then(Value::as_u64))
                    }
                };
            let numeric = |x: &Value| {
                x.as_f64()
                    .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            };
            let ok = match op {
                "any_of" | "not_any_of" => {
                    let hit = cmp.iter().any(|c| match (status, numeric(c)) {
                        (Some(s), Some(n)) => s as f64 == n,
                        _ => c.as_str().is_some_and(|s| s.eq_ignore_ascii_case(&text)),
                    });
                    hit == (op == "any_of")
                }
                "is_empty" => text.is_empty() && time.is_none(),
                "is_not_empty" => !text.is_empty() || time.is_some(),
                "contains_text" => cmp.iter().any(|c| {
                    c.as_str()
                        .is_some_and(|s| text.to_lowercase().contains(&s.to_lowercase()))
                }),
                "not_contains_text" => !cmp.iter().any(|c| {
                    c.as_str()
                        .is_some_and(|s| text.to_lowercase().contains(&s.to_lowercase()))
                }),
                "starts_with" => cmp.iter().any(|c| {
                    c.as_str()
                        .is_some_and(|s| text.to_lowercase().starts_with(&s.to_lowercase()))
                }),
                "ends_with" => cmp.iter().any(|c| {
                    c.as_str()
                        .is_some_and(|s| text.to_lowercase().ends_with(&s.to_lowercase()))
                }),
                "greater_than"
                | "greater_than_or_equals"
                | "lower_than"
                | "lower_than_or_equal"
                | "between" => {
                    let (a, lim) = match (time, number) {
                        (Some(t), _) => (Some(t as f64), date_of(&cmp).map(|x| x as f64)),
                        (None, Some(n)) => (Some(n), cmp.first().and_then(numeric)),
                        _ => (None, None),
                    };
                    match (a, lim, op) {
                        (Some(a), _, "between") => {
                            let lo = if time.is_some() {
                                cmp.first()
                                    .and_then(Value::as_str)
                                    .and_then(parse_iso)
                                    .map(|x| x as f64)
                            } else {
                                cmp.first().and_then(numeric)
                            };
                            let hi = if time.is_some() {
                                cmp.get(1)
                                    .and_then(Value::as_str)
                                    .and_then(parse_iso)
                                    .map(|x| x as f64)
                            } else {
                                cmp.get(1).and_then(numeric)
                            };
                            lo.zip(hi).is_some_and(|(l, h)| a >= l && a <= h)
                        }
                        (Some(a), Some(l), "greater_than") => a > l,
                        (Some(a), Some(l), "greater_than_or_equals") => a >= l,
                        (Some(a), Some(l), "lower_than") => a < l,
                        (Some(a), Some(l), _) => a <= l,
                        _ => false,
                    }
                }
                other => {
                    return Err(GqlError::new(
                        format!("Unsupported query rule operator '{other}'"),
                        "InvalidArgumentException",
                    ));
                }
            };
            results.push(ok);
        }
        Ok(if any {
            results.iter().any(|x| *x)
        } else {
            results.iter().all(|x| *x)
        })
    }

    /// One page of items for a cursor state; returns the items and the next cursor, if any.
    fn page(
        &self,
        st: &mut MondayState,
        mut cur: ItemsCursor,
        limit: u64,
        sel: &[Field],
    ) -> Result<(Vec<Value>, Option<String>), GqlError> {
        let b = cur.board;
        let qp = cur.query_params.clone().unwrap_or(Value::Null);
        let order: Vec<(String, bool)> = qp
            .get("order_by")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|o| {
                        Some((
                            o.get("column_id")?.as_str()?.to_string(),
                            o.get("direction").and_then(Value::as_str) == Some("desc"),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut picked = Vec::new();
        let mut more = false;
        if order.is_empty() {
            let view: &MondayState = st;
            let mut last = cur.after;
            for i in view.boards[b.slot()].scan(Dir::Asc, cur.after) {
                if picked.len() as u64 == limit {
                    if self.rules_match(view, b, i, &qp)? {
                        more = true;
                        break;
                    }
                    continue;
                }
                last = Some(i);
                if self.rules_match(view, b, i, &qp)? {
                    picked.push(i);
                }
            }
            cur.after = last;
        } else {
            let mut all: Vec<(String, u64)> = Vec::new();
            for i in st.boards[b.slot()].scan(Dir::Asc, None).collect::<Vec<_>>() {
                if self.rules_match(st, b, i, &qp)? {
                    let rec = st.boards[b.slot()].get(i).expect("live");
                    let key = match order[0].0.as_str() {
                        "__last_updated__" => format!("{:020}", rec.modified_ms),
                        "__creation_log__" => format!("{:020}", rec.created_ms),
                        c => {
                            let kind = st
                                .column(b, c)
                                .map(|x| x.kind)
                                .unwrap_or_else(|| "text".into());
                            let t = if c == "name" {
                                rec.fields.get("name").cloned().unwrap_or(Value::Null)
                            } else {
                                self.text(st, &kind, rec.fields.get(c).unwrap_or(&Value::Null))
                            };
                            t.as_str().unwrap_or("").to_lowercase()
                        }
                    };
                    all.push((key, i));
                }
            }
            all.sort();
            if order[0].1 {
                all.reverse();
            }
            picked = all
                .iter()
                .skip(cur.offset)
                .take(limit as usize)
                .map(|x| x.1)
                .collect();
            cur.offset += picked.len();
            more = all.len() > cur.offset;
        }
        let items: Vec<Value> = picked
            .iter()
            .filter_map(|i| self.item(st, b, *i, sel))
            .collect();
        let next = more.then(|| {
            let raw = format!(
                "1,{},{},{}|{}",
                b.id(),
                self.hub.tokens.random_hex(8),
                st.next_id,
                picked.last().map(|i| item_id(b, *i)).unwrap_or(0)
            );
            st.next_id += 1;
            let token = STANDARD.encode(raw).trim_end_matches('=').to_string();
            cur.expires_ms = self.now() + self.limits.cursor_lifetime.as_millis() as i64;
            st.cursors.insert(token.clone(), cur);
            token
        });
        Ok((items, next))
    }
}

// ---------------------------------------------------------------- complexity

impl Monday {
    /// A cost estimate in the spirit of monday's: per requested item and per field, with fixed
    /// prices for mutations.
    fn cost(&self, fields: &[Field], mutation: bool) -> u64 {
        fn weigh(f: &Field) -> u64 {
            let limit = |d: u64| f.arg("limit").and_then(Value::as_u64).unwrap_or(d);
            let children: u64 = f.selection.iter().map(weigh).sum::<u64>().max(1);
            match f.name.as_str() {
                "boards" => {
                    10 + f
                        .arg("ids")
                        .and_then(Value::as_array)
                        .map(|a| a.len() as u64)
                        .unwrap_or(limit(25))
                        * children
                }
                "items_page" | "next_items_page" => 10 + limit(25) * children,
                "items" => {
                    10 + f
                        .arg("ids")
                        .and_then(Value::as_array)
                        .map(|a| a.len() as u64)
                        .unwrap_or(limit(25))
                        * children
                }
                "column_values" => 10 * children,
                "complexity" => 0,
                _ => children,
            }
        }
        fields
            .iter()
            .map(|f| {
                if mutation && f.name != "complexity" {
                    if f.name.contains("webhook") {
                        1_000
                    } else {
                        self.limits.mutation_cost
                    }
                } else {
                    weigh(f)
                }
            })
            .sum()
    }
}

// ---------------------------------------------------------------- schema validation

/// The fields of each monday type a query may select, with the type of object-valued fields.
/// monday validates a document against its schema before running any of it: one unknown field
/// fails the whole request (HTTP 200, `errors` only, no `data`) with graphql-ruby's
/// `undefinedField` error. The field lists are those of monday's published schema for the types
/// the emulator serves (fields it does not fill in answer `null`); `ColumnValue` also admits the
/// fields of its implementations (`StatusValue.label`, ...), which inline fragments select.
fn schema_fields(type_name: &str) -> Option<&'static [(&'static str, Option<&'static str>)]> {
    Some(match type_name {
        "Query" => &[
            ("me", Some("User")),
            ("boards", Some("Board")),
            ("items", Some("Item")),
            ("next_items_page", Some("ItemsResponse")),
            ("items_page_by_column_values", Some("ItemsResponse")),
            ("updates", Some("Update")),
            ("complexity", Some("Complexity")),
            ("users", Some("User")),
            ("account", Some("Account")),
            ("version", None),
            ("versions", None),
            ("webhooks", Some("Webhook")),
            ("workspaces", None),
            ("tags", None),
            ("teams", None),
            ("folders", None),
            ("docs", None),
            ("assets", None),
        ],
        "Mutation" => &[
            ("create_item", Some("Item")),
            ("change_column_value", Some("Item")),
            ("change_simple_column_value", Some("Item")),
            ("change_multiple_column_values", Some("Item")),
            ("delete_item", Some("Item")),
            ("archive_item", Some("Item")),
            ("create_update", Some("Update")),
            ("create_webhook", Some("Webhook")),
            ("delete_webhook", Some("Webhook")),
            ("create_board", Some("Board")),
            ("create_group", Some("Group")),
            ("create_column", Some("Column")),
            ("complexity", Some("Complexity")),
            ("create_subitem", Some("Item")),
            ("duplicate_item", Some("Item")),
            ("move_item_to_group", Some("Item")),
            ("delete_board", Some("Board")),
            ("archive_board", Some("Board")),
            ("delete_group", Some("Group")),
            ("archive_group", Some("Group")),
            ("duplicate_group", Some("Group")),
            ("update_group", Some("Group")),
            ("delete_column", Some("Column")),
            ("change_column_title", Some("Column")),
            ("delete_update", Some("Update")),
        ],
        "Board" => &[
            ("id", None),
            ("name", None),
            ("description", None),
            ("state", None),
            ("board_kind", None),
            ("board_folder_id", None),
            ("items_count", None),
            ("columns", Some("Column")),
            ("groups", Some("Group")),
            ("items_page", Some("ItemsResponse")),
            ("owners", Some("User")),
            ("owner", Some("User")),
            ("subscribers", Some("User")),
            ("creator", Some("User")),
            ("tags", None),
            ("top_group", Some("Group")),
            ("updated_at", None),
            ("updates", Some("Update")),
            ("url", None),
            ("views", None),
            ("workspace", None),
            ("workspace_id", None),
            ("permissions", None),
            ("type", None),
            ("activity_logs", None),
            ("communication", None),
            ("item_terminology", None),
            ("team_owners", None),
            ("team_subscribers", None),
            ("object_type_unique_key", None),
        ],
        "Item" => &[
            ("id", None),
            ("name", None),
            ("state", None),
            ("created_at", None),
            ("updated_at", None),
            ("creator_id", None),
            ("creator", Some("User")),
            ("group", Some("Group")),
            ("board", Some("Board")),
            ("column_values", Some("ColumnValue")),
            ("subitems", Some("Item")),
            ("parent_item", Some("Item")),
            ("url", None),
            ("relative_link", None),
            ("updates", Some("Update")),
            ("assets", None),
            ("email", None),
            ("subscribers", Some("User")),
            ("linked_items", Some("Item")),
        ],
        "ColumnValue" => &[
            ("id", None),
            ("type", None),
            ("text", None),
            ("value", None),
            ("column", Some("Column")),
            ("label", None),
            ("index", None),
            ("is_done", None),
            ("label_style", None),
            ("date", None),
            ("time", None),
            ("email", None),
            ("url", None),
            ("url_text", None),
            ("phone", None),
            ("country_short_name", None),
            ("checked", None),
            ("number", None),
            ("symbol", None),
            ("direction", None),
            ("display_value", None),
            ("linked_item_ids", None),
            ("linked_items", Some("Item")),
            ("persons_and_teams", None),
            ("updated_at", None),
            ("from", None),
            ("to", None),
            ("values", None),
            ("country", None),
        ],
        "Column" => &[
            ("id", None),
            ("title", None),
            ("type", None),
            ("settings_str", None),
            ("description", None),
            ("archived", None),
            ("width", None),
            ("revision", None),
            ("capabilities", None),
        ],
        "Group" => &[
            ("id", None),
            ("title", None),
            ("color", None),
            ("position", None),
            ("archived", None),
            ("deleted", None),
            ("items_page", Some("ItemsResponse")),
        ],
        "ItemsResponse" => &[("cursor", None), ("items", Some("Item"))],
        "User" => &[
            ("id", None),
            ("name", None),
            ("email", None),
            ("account", Some("Account")),
            ("created_at", None),
            ("enabled", None),
            ("is_admin", None),
            ("is_guest", None),
            ("is_pending", None),
            ("is_view_only", None),
            ("is_verified", None),
            ("photo_original", None),
            ("photo_thumb", None),
            ("photo_small", None),
            ("photo_tiny", None),
            ("teams", None),
            ("time_zone_identifier", None),
            ("title", None),
            ("url", None),
            ("utc_hours_diff", None),
            ("country_code", None),
            ("birthday", None),
            ("location", None),
            ("mobile_phone", None),
            ("phone", None),
            ("join_date", None),
            ("last_activity", None),
            ("current_language", None),
            ("out_of_office", None),
        ],
        "Account" => &[
            ("id", None),
            ("name", None),
            ("slug", None),
            ("tier", None),
            ("plan", None),
            ("country_code", None),
            ("logo", None),
            ("first_day_of_the_week", None),
            ("show_timeline_weekends", None),
            ("sign_up_product_kind", None),
            ("active_members_count", None),
            ("products", None),
        ],
        "Update" => &[
            ("id", None),
            ("body", None),
            ("text_body", None),
            ("item_id", None),
            ("creator_id", None),
            ("creator", Some("User")),
            ("created_at", None),
            ("updated_at", None),
            ("edited_at", None),
            ("replies", None),
            ("assets", None),
            ("likes", None),
            ("pinned_to_top", None),
            ("viewers", None),
            ("watchers", None),
            ("item", Some("Item")),
        ],
        "Webhook" => &[
            ("id", None),
            ("board_id", None),
            ("event", None),
            ("config", None),
        ],
        "Complexity" => &[
            ("before", None),
            ("after", None),
            ("query", None),
            ("reset_in_x_seconds", None),
        ],
        _ => return None,
    })
}

/// Every selected field the schema does not define, as monday reports it.
fn undefined_fields(
    fields: &[Field],
    type_name: &str,
    path: &mut Vec<String>,
    out: &mut Vec<Value>,
) {
    let Some(known) = schema_fields(type_name) else {
        return;
    };
    for f in fields {
        if f.name == "__typename" {
            continue;
        }
        path.push(f.name.clone());
        match known.iter().find(|(name, _)| *name == f.name) {
            Some((_, Some(child))) => undefined_fields(&f.selection, child, path, out),
            Some((_, None)) => {}
            None => out.push(json!({
                "message": format!("Field '{}' doesn't exist on type '{type_name}'", f.name),
                "locations": [{"line": f.line, "column": f.column}],
                "path": path,
                "extensions": {"code": "undefinedField", "typeName": type_name, "fieldName": f.name},
            })),
        }
        path.pop();
    }
}

// ---------------------------------------------------------------- HTTP entry point

fn error_body(errors: Vec<Value>, data: Value) -> Value {
    json!({"errors": errors, "data": data, "account_id": ACCOUNT_ID})
}

fn gql_error(e: &GqlError, f: Option<&Field>) -> Value {
    let mut ext = json!({"code": e.code, "error_data": e.data});
    if let Some(s) = e.status_code {
        ext["status_code"] = json!(s);
    }
    let mut v = json!({"message": e.message, "extensions": ext});
    if let Some(f) = f {
        v["locations"] = json!([{"line": f.line, "column": f.column}]);
        v["path"] = json!([f.key()]);
    }
    v
}

async fn graphql_endpoint(
    State(m): State<Arc<Monday>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // monday takes the token as is; "Bearer <token>" is tolerated as many clients send it.
    let token =
        header_str(&headers, "authorization").map(|t| t.strip_prefix("Bearer ").unwrap_or(t));
    if token != Some(API_TOKEN) || ctx.force_expired {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"message": "Not Authenticated", "extensions": {"code": "UNAUTHENTICATED", "status_code": 401}}], "account_id": null}),
        );
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                error_body(
                    vec![
                        json!({"message": format!("The request body is not JSON: {e}"), "extensions": {"code": "BAD_REQUEST"}}),
                    ],
                    Value::Null,
                ),
            );
        }
    };
    let Some(query) = req.get("query").and_then(Value::as_str) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            error_body(
                vec![
                    json!({"message": "No query string was present", "extensions": {"code": "BAD_REQUEST"}}),
                ],
                Value::Null,
            ),
        );
    };
    let vars: HashMap<String, Value> = req
        .get("variables")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    if ctx.in_flight > m.limits.concurrent_requests {
        return m.limited("Concurrency limit exceeded", "maxConcurrencyExceeded", 1);
    }
    let now = m.now();
    // Calls and per-minute requests are counted before parsing, like the real API.
    {
        let mut st = m.state.lock().expect("monday state");
        let day = now.div_euclid(86_400_000);
        if st.daily.0 != day {
            st.daily = (day, 0);
        }
        st.minute_calls.roll(now);
        if st.daily.1 >= m.limits.daily_calls {
            let retry = ((day + 1) * 86_400_000 - now) / 1_000;
            drop(st);
            return m.limited("Daily limit exceeded", "DAILY_LIMIT_EXCEEDED", retry.max(1));
        }
        if st.minute_calls.used >= m.limits.requests_per_minute as u64 {
            let retry = st.minute_calls.reset_in(now);
            drop(st);
            return m.limited("Rate Limit Exceeded", "RATE_LIMIT_EXCEEDED", retry);
        }
        st.daily.1 += 1;
        st.minute_calls.used += 1;
    }
    let op = match graphql::parse(query, &vars) {
        Ok(op) => op,
        Err(msg) => {
            return json_response(
                StatusCode::OK,
                error_body(
                    vec![json!({"message": msg, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}})],
                    Value::Null,
                ),
            );
        }
    };
    let mut undefined = Vec::new();
    let root = if op.mutation { "mutation" } else { "query" };
    undefined_fields(
        &op.fields,
        if op.mutation { "Mutation" } else { "Query" },
        &mut vec![root.to_string()],
        &mut undefined,
    );
    if !undefined.is_empty() {
        return json_response(
            StatusCode::OK,
            json!({"errors": undefined, "account_id": ACCOUNT_ID}),
        );
    }
    let cost = m.cost(&op.fields, op.mutation);
    if cost > m.limits.max_complexity_per_query {
        return json_response(
            StatusCode::OK,
            error_body(
                vec![
                    json!({"message": format!("Query has complexity of {cost}, which exceeds max complexity of {}", m.limits.max_complexity_per_query), "extensions": {"code": "maxComplexityExceeded", "complexity": cost, "maxComplexity": m.limits.max_complexity_per_query}}),
                ],
                Value::Null,
            ),
        );
    }
    let (before, reset_in) = {
        let mut st = m.state.lock().expect("monday state");
        st.budget.roll(now);
        let before = m
            .limits
            .complexity_per_minute
            .saturating_sub(st.budget.used);
        let reset_in = st.budget.reset_in(now);
        if cost > before {
            drop(st);
            return m.limited(
                "Complexity budget exhausted",
                "COMPLEXITY_BUDGET_EXHAUSTED",
                reset_in.max(1),
            );
        }
        st.budget.used += cost;
        (before, reset_in)
    };
    let mut data = Map::new();
    let mut errors = Vec::new();
    let mut events = Vec::new();
    for f in &op.fields {
        let result = if f.name == "complexity" {
            Ok(project(
                &json!({"before": before, "after": before - cost, "query": cost, "reset_in_x_seconds": reset_in}),
                &f.selection,
            ))
        } else if op.mutation {
            m.mutation(f, &mut events).await
        } else {
            m.query(f)
        };
        match result {
            Ok(v) => {
                data.insert(f.key().to_string(), v);
            }
            Err(e) => {
                errors.push(gql_error(&e, Some(f)));
                data.insert(f.key().to_string(), Value::Null);
            }
        }
    }
    m.deliver(events);
    let request_id = m.hub.tokens.random_hex(8);
    let mut body =
        json!({"data": data, "extensions": {"request_id": request_id}, "account_id": ACCOUNT_ID});
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    let mut r = json_response(StatusCode::OK, body);
    m.rate_headers(&mut r);
    r
}

impl Monday {
    fn limited(&self, message: &str, code: &'static str, retry: i64) -> Response {
        let mut r = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            error_body(
                vec![
                    json!({"message": message, "extensions": {"code": code, "retry_in_seconds": retry, "status_code": 429}}),
                ],
                Value::Null,
            ),
        );
        set_header(&mut r, "Retry-After", retry);
        self.rate_headers(&mut r);
        r
    }

    fn rate_headers(&self, r: &mut Response) {
        let now = self.now();
        let st = self.state.lock().expect("monday state");
        let remaining =
            (self.limits.requests_per_minute as u64).saturating_sub(st.minute_calls.used);
        let reset = st.minute_calls.reset_in(now);
        set_header(
            r,
            "RateLimit-Policy",
            format!("{};w=60", self.limits.requests_per_minute),
        );
        set_header(
            r,
            "RateLimit",
            format!(
                "limit={}, remaining={remaining}, reset={reset}",
                self.limits.requests_per_minute
            ),
        );
    }

    fn query(&self, f: &Field) -> Result<Value, GqlError> {
        let mut st = self.state.lock().expect("monday state");
        match f.name.as_str() {
            "me" => Ok(project(
                &json!({"id": USER_ID.to_string(), "name": "Weft Demo", "email": "demo@weft-sandbox.example", "account": {"id": ACCOUNT_ID.to_string(), "name": "weft sandbox"}}),
                &f.selection,
            )),
            "boards" => {
                let ids: Option<Vec<Board>> = f.arg("ids").map(|v| {
                    compare_values(v)
                        .iter()
                        .filter_map(|x| st.board(x))
                        .collect()
                });
                // `limit` (default 25) and 1-based `page` page the boards, as on the real API.
                let limit = f.arg("limit").and_then(Value::as_u64).unwrap_or(25).max(1) as usize;
                let page = f.arg("page").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
                let boards: Vec<Board> = ids
                    .unwrap_or_else(|| st.all_boards().collect())
                    .into_iter()
                    .skip((page - 1) * limit)
                    .take(limit)
                    .collect();
                let mut out = Vec::new();
                for b in boards {
                    out.push(self.board_json(&mut st, b, &f.selection)?);
                }
                Ok(Value::Array(out))
            }
            "next_items_page" => {
                let limit = self.page_limit(f)?;
                let c = f.arg("cursor").and_then(Value::as_str).ok_or_else(|| {
                    GqlError::new("next_items_page needs a cursor", "InvalidArgumentException")
                })?;
                let cur = self.cursor(&mut st, c)?;
                let items_sel = f
                    .child("items")
                    .map(|i| i.selection.clone())
                    .unwrap_or_default();
                let (items, next) = self.page(&mut st, cur, limit, &items_sel)?;
                Ok(items_response(&f.selection, items, next))
            }
            // Items whose columns hold any of the given values (OR within a column, AND across
            // columns), paged like items_page; a cursor continues and ignores the other
            // arguments (documented: items_page_by_column_values).
            "items_page_by_column_values" => {
                let limit = self.page_limit(f)?;
                let cur = match f.arg("cursor").and_then(Value::as_str) {
                    Some(c) => self.cursor(&mut st, c)?,
                    None => {
                        let board_arg = f.arg("board_id");
                        let b = board_arg
                            .and_then(|x| st.board(x))
                            .ok_or_else(|| board_not_found(board_arg))?;
                        let mut rules = Vec::new();
                        for c in f.arg("columns").map(compare_values).unwrap_or_default() {
                            let col = c.get("column_id").and_then(Value::as_str).unwrap_or("");
                            if st.column(b, col).is_none() {
                                return Err(GqlError::new(
                                    format!("This column ID doesn't exist for the board: {col}"),
                                    "InvalidColumnIdException",
                                ));
                            }
                            rules.push(json!({"column_id": col, "compare_value": c.get("column_values").cloned().unwrap_or(json!([])), "operator": "any_of"}));
                        }
                        ItemsCursor {
                            board: b,
                            query_params: Some(json!({"rules": rules, "operator": "and"})),
                            after: None,
                            offset: 0,
                            expires_ms: 0,
                        }
                    }
                };
                let items_sel = f
                    .child("items")
                    .map(|i| i.selection.clone())
                    .unwrap_or_default();
                let (items, next) = self.page(&mut st, cur, limit, &items_sel)?;
                Ok(items_response(&f.selection, items, next))
            }
            "items" => {
                let ids = f.arg("ids").map(compare_values).unwrap_or_default();
                Ok(Value::Array(
                    ids.iter()
                        .filter_map(|x| st.item_ref(x))
                        .filter_map(|(b, i)| self.item(&st, b, i, &f.selection))
                        .collect(),
                ))
            }
            // Every update of the account, newest first, `limit` (at most 100) a `page`.
            "updates" => {
                let limit = f.arg("limit").and_then(Value::as_u64).unwrap_or(25);
                if limit == 0 || limit > 100 {
                    return Err(GqlError::new(
                        "limit must be between 1 and 100",
                        "InvalidArgumentException",
                    ));
                }
                let page = f.arg("page").and_then(Value::as_u64).unwrap_or(1).max(1);
                let ids: Option<Vec<u64>> = f.arg("ids").map(|v| {
                    compare_values(v)
                        .iter()
                        .filter_map(|x| {
                            x.as_u64()
                                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                        })
                        .collect()
                });
                let list: Vec<Value> = st
                    .updates
                    .iter()
                    .rev()
                    .filter(|u| ids.as_ref().is_none_or(|ids| ids.contains(&u.id)))
                    .skip(((page - 1) * limit) as usize)
                    .take(limit as usize)
                    .map(|u| project(&update_json(u), &f.selection))
                    .collect();
                Ok(Value::Array(list))
            }
            // In monday's schema (validation let it through) but not served by the sandbox.
            other => Err(GqlError::new(
                format!("The weft sandbox does not emulate the query field '{other}'"),
                "NotEmulatedBySandbox",
            )),
        }
    }

    /// One board with the selected fields; `items_page` reads (and may page) its items.
    fn board_json(&self, st: &mut MondayState, b: Board, sel: &[Field]) -> Result<Value, GqlError> {
        let mut o = Map::new();
        for sub in sel {
            let v = match sub.name.as_str() {
                "id" => json!(b.id().to_string()),
                "name" => json!(st.layout(b).name),
                "state" => json!("active"),
                "board_kind" => json!(st.layout(b).kind),
                "description" => json!(st.layout(b).description),
                "items_count" => json!(st.boards[b.slot()].len()),
                "columns" => {
                    let columns: Vec<Value> = std::iter::once(Column::name())
                        .chain(st.layout(b).columns.iter().cloned())
                        .map(|c| column_json(st, &c))
                        .collect();
                    project(&Value::Array(columns), &sub.selection)
                }
                "groups" => {
                    let groups: Vec<Value> = st
                        .layout(b)
                        .groups
                        .iter()
                        .enumerate()
                        .map(|(n, g)| group_json(g, n))
                        .collect();
                    project(&Value::Array(groups), &sub.selection)
                }
                "items_page" => {
                    let limit = self.page_limit(sub)?;
                    let cur = match sub.arg("cursor").and_then(Value::as_str) {
                        Some(c) => self.cursor(st, c)?,
                        None => ItemsCursor {
                            board: b,
                            query_params: sub.arg("query_params").cloned(),
                            after: None,
                            offset: 0,
                            expires_ms: 0,
                        },
                    };
                    let items_sel = sub
                        .child("items")
                        .map(|i| i.selection.clone())
                        .unwrap_or_default();
                    let (items, next) = self.page(st, cur, limit, &items_sel)?;
                    items_response(&sub.selection, items, next)
                }
                _ => Value::Null,
            };
            o.insert(sub.key().to_string(), v);
        }
        Ok(Value::Object(o))
    }

    fn page_limit(&self, f: &Field) -> Result<u64, GqlError> {
        let limit = f.arg("limit").and_then(Value::as_u64).unwrap_or(25);
        if limit == 0 || limit > self.limits.max_items_per_page {
            return Err(GqlError::new(
                format!(
                    "limit must be between 1 and {}",
                    self.limits.max_items_per_page
                ),
                "InvalidArgumentException",
            ));
        }
        Ok(limit)
    }

    fn cursor(&self, st: &mut MondayState, c: &str) -> Result<ItemsCursor, GqlError> {
        let now = self.now();
        match st.cursors.get(c) {
            Some(cur) if cur.expires_ms > now => Ok(cur.clone()),
            Some(_) => {
                st.cursors.remove(c);
                Err(GqlError::new(
                    "The cursor has expired; start again with items_page without a cursor",
                    "CursorExpiredError",
                ))
            }
            None => Err(GqlError::new("The cursor is invalid", "InvalidCursorError")),
        }
    }

    async fn mutation(&self, f: &Field, events: &mut Vec<Event>) -> Result<Value, GqlError> {
        if f.name == "create_webhook" {
            return self.create_webhook(f).await;
        }
        let mut st = self.state.lock().expect("monday state");
        let now = self.now();
        let board_arg = f.arg("board_id");
        let create_labels = f
            .arg("create_labels_if_missing")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let item_target = |st: &MondayState| -> Result<(Board, u64), GqlError> {
            let id = f
                .arg("item_id")
                .ok_or_else(|| GqlError::new("item_id is required", "InvalidArgumentException"))?;
            st.item_ref(id)
                .filter(|(b, i)| st.boards[b.slot()].is_live(*i))
                .ok_or_else(|| {
                    let mut e = GqlError::new("Item not found in board", "InvalidItemIdException");
                    e.status_code = Some(404);
                    e.data = json!({"item_id": id});
                    e
                })
        };
        match f.name.as_str() {
            "create_item" => {
                let b = board_arg
                    .and_then(|x| st.board(x))
                    .ok_or_else(|| board_not_found(board_arg))?;
                let name = f.arg("item_name").and_then(Value::as_str).ok_or_else(|| {
                    GqlError::new("item_name is required", "InvalidArgumentException")
                })?;
                let mut fields = Fields::new();
                fields.insert("name".into(), json!(name));
                fields.insert(
                    "group".into(),
                    json!(
                        f.arg("group_id")
                            .and_then(Value::as_str)
                            .unwrap_or("topics")
                    ),
                );
                if let Some(cv) = f.arg("column_values") {
                    for (col, v) in self.column_map(&mut st, b, cv, create_labels)? {
                        fields.insert(col, v);
                    }
                }
                let i = st.boards[b.slot()].insert(fields, now);
                events.push(Event {
                    board: b,
                    item: i,
                    kind: "create_pulse",
                    column: None,
                });
                Ok(self.item(&st, b, i, &f.selection).unwrap_or(Value::Null))
            }
            "change_column_value" | "change_simple_column_value" => {
                let (b, i) = item_target(&st)?;
                let col = f
                    .arg("column_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        GqlError::new("column_id is required", "InvalidArgumentException")
                    })?
                    .to_string();
                let value = f.arg("value").cloned().unwrap_or(Value::Null);
                let Column { kind, .. } = st.column(b, &col).ok_or_else(|| {
                    GqlError::new(
                        format!("This column ID doesn't exist for the board: {col}"),
                        "InvalidColumnIdException",
                    )
                })?;
                let simple = f.name == "change_simple_column_value";
                let parsed = if kind == "name" {
                    json!(value.as_str().unwrap_or(""))
                } else {
                    self.parse_column(&mut st, &kind, &value, create_labels || simple, simple)
                        .map_err(|m| column_error(m, &col))?
                };
                let previous = st.boards[b.slot()]
                    .get(i)
                    .and_then(|r| r.fields.get(&col).cloned())
                    .unwrap_or(Value::Null);
                let mut change = Fields::new();
                change.insert(col.clone(), parsed.clone());
                st.boards[b.slot()].merge(i, &change, now);
                events.push(Event {
                    board: b,
                    item: i,
                    kind: if kind == "name" {
                        "update_name"
                    } else {
                        "update_column_value"
                    },
                    column: Some((col, parsed, previous)),
                });
                Ok(self.item(&st, b, i, &f.selection).unwrap_or(Value::Null))
            }
            "change_multiple_column_values" => {
                let (b, i) = item_target(&st)?;
                let cv = f.arg("column_values").ok_or_else(|| {
                    GqlError::new("column_values is required", "InvalidArgumentException")
                })?;
                let map = self.column_map(&mut st, b, cv, create_labels)?;
                for (col, v) in map {
                    let previous = st.boards[b.slot()]
                        .get(i)
                        .and_then(|r| r.fields.get(&col).cloned())
                        .unwrap_or(Value::Null);
                    let mut change = Fields::new();
                    change.insert(col.clone(), v.clone());
                    st.boards[b.slot()].merge(i, &change, now);
                    events.push(Event {
                        board: b,
                        item: i,
                        kind: if col == "name" {
                            "update_name"
                        } else {
                            "update_column_value"
                        },
                        column: Some((col, v, previous)),
                    });
                }
                Ok(self.item(&st, b, i, &f.selection).unwrap_or(Value::Null))
            }
            // Documented: board_name and board_kind (public, private, share) are required. A
            // board made without a template has the name column and one group (inferred).
            "create_board" => {
                let name = f
                    .arg("board_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing_argument(f, "board_name"))?;
                let kind = f
                    .arg("board_kind")
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing_argument(f, "board_kind"))?;
                if !matches!(kind, "public" | "private" | "share") {
                    return Err(GqlError::new(
                        format!(
                            "Argument 'board_kind' on Field 'create_board' has an invalid value ({kind}). Expected type 'BoardKind!'."
                        ),
                        "argumentLiteralsIncompatible",
                    ));
                }
                if f.arg("template_id").is_some() {
                    return Err(GqlError::new(
                        "The weft sandbox does not emulate board templates; create the board empty and add columns with create_column",
                        "InvalidArgumentException",
                    ));
                }
                st.layouts.push(Layout {
                    name: name.into(),
                    kind: kind.into(),
                    description: f
                        .arg("description")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    columns: Vec::new(),
                    groups: vec![Group::new("topics", "Group Title", "#579bfc")],
                });
                let demo = st.demo;
                st.boards.push(Collection::new(
                    0,
                    move |_| Fields::new(),
                    move |i| demo.times(Kind::Deal, i, 0),
                ));
                let b = Board(st.layouts.len() as u64);
                self.board_json(&mut st, b, &f.selection)
            }
            // Documented: board_id and group_name are required; group_color is optional. New
            // groups go to the top of the board; their ids are generated (inferred form).
            "create_group" => {
                let b = board_arg
                    .and_then(|x| st.board(x))
                    .ok_or_else(|| board_not_found(board_arg))?;
                let title = f
                    .arg("group_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing_argument(f, "group_name"))?;
                let color = f
                    .arg("group_color")
                    .and_then(Value::as_str)
                    .unwrap_or("#a25ddc");
                let id = format!("group_mk{}", &self.hub.tokens.random_hex(4));
                st.layouts[b.slot()]
                    .groups
                    .insert(0, Group::new(&id, title, color));
                Ok(project(
                    &group_json(&st.layout(b).groups[0], 0),
                    &f.selection,
                ))
            }
            // Documented: title and column_type are required (since 2023-10); `id` (1-20 lowercase
            // letters, digits or underscores, unique on the board) and after_column_id optional.
            // Generated ids take the form `{type}_mk{random}` (inferred from live boards).
            "create_column" => {
                let b = board_arg
                    .and_then(|x| st.board(x))
                    .ok_or_else(|| board_not_found(board_arg))?;
                let title = f
                    .arg("title")
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing_argument(f, "title"))?;
                let kind = f
                    .arg("column_type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing_argument(f, "column_type"))?;
                if !STORED_COLUMN_TYPES.contains(&kind) {
                    return Err(GqlError::new(
                        format!(
                            "The weft sandbox does not emulate {kind} columns; it stores {}",
                            STORED_COLUMN_TYPES.join(", ")
                        ),
                        "InvalidArgumentException",
                    ));
                }
                let id = match f.arg("id").and_then(Value::as_str) {
                    Some(id)
                        if id.is_empty()
                            || id.len() > 20
                            || !id.bytes().all(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'
                            }) =>
                    {
                        return Err(GqlError::new(
                            "Column id must be 1-20 characters of lowercase letters, digits and underscores",
                            "InvalidArgumentException",
                        ));
                    }
                    Some(id) if st.column(b, id).is_some() => {
                        return Err(GqlError::new(
                            format!("A column with the id {id} already exists on this board"),
                            "ColumnIdAlreadyExistsException",
                        ));
                    }
                    Some(id) => id.to_string(),
                    None => format!("{kind}_mk{}", self.hub.tokens.random_hex(3)),
                };
                let column = Column {
                    id,
                    kind: kind.into(),
                    title: title.into(),
                    description: f
                        .arg("description")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                };
                let columns = &mut st.layouts[b.slot()].columns;
                let at = match f.arg("after_column_id").and_then(Value::as_str) {
                    Some("name") => 0,
                    Some(after) => columns
                        .iter()
                        .position(|c| c.id == after)
                        .map(|p| p + 1)
                        .ok_or_else(|| {
                            GqlError::new(
                                format!("This column ID doesn't exist for the board: {after}"),
                                "InvalidColumnIdException",
                            )
                        })?,
                    None => columns.len(),
                };
                columns.insert(at, column.clone());
                Ok(project(&column_json(&st, &column), &f.selection))
            }
            "create_update" => {
                let (b, i) = item_target(&st)?;
                let body = f
                    .arg("body")
                    .and_then(Value::as_str)
                    .filter(|b| !b.trim().is_empty())
                    .ok_or_else(|| GqlError::new("body is required", "InvalidArgumentException"))?;
                let id = st.next_id;
                st.next_id += 1;
                let update = Update {
                    id,
                    board: b,
                    item: i,
                    body: body.to_owned(),
                    created_ms: now,
                };
                st.updates.push(update.clone());
                Ok(project(&update_json(&update), &f.selection))
            }
            "delete_item" | "archive_item" => {
                let (b, i) = item_target(&st)?;
                let v = self.item(&st, b, i, &f.selection).unwrap_or(Value::Null);
                st.boards[b.slot()].delete(i, now);
                events.push(Event {
                    board: b,
                    item: i,
                    kind: if f.name == "delete_item" {
                        "delete_pulse"
                    } else {
                        "archive_pulse"
                    },
                    column: None,
                });
                Ok(v)
            }
            "delete_webhook" => {
                let id = f
                    .arg("id")
                    .and_then(|v| {
                        v.as_u64()
                            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    })
                    .unwrap_or(0);
                match st.webhooks.remove(&id) {
                    Some(w) => Ok(project(
                        &json!({"id": w.id.to_string(), "board_id": w.board.id().to_string()}),
                        &f.selection,
                    )),
                    None => Err(GqlError::new(
                        "Webhook not found",
                        "ResourceNotFoundException",
                    )),
                }
            }
            other => Err(GqlError::new(
                format!("The weft sandbox does not emulate the mutation '{other}'"),
                "NotEmulatedBySandbox",
            )),
        }
    }

    /// `column_values` of create/change mutations: a JSON string (or object) of id → value.
    fn column_map(
        &self,
        st: &mut MondayState,
        b: Board,
        cv: &Value,
        create_labels: bool,
    ) -> Result<Vec<(String, Value)>, GqlError> {
        let obj = match cv {
            Value::String(s) => serde_json::from_str::<Value>(s).map_err(|e| {
                GqlError::new(
                    format!("column_values is not valid JSON: {e}"),
                    "JsonParseException",
                )
            })?,
            other => other.clone(),
        };
        let Some(map) = obj.as_object() else {
            return Err(GqlError::new(
                "column_values must be a JSON object keyed by column id",
                "InvalidArgumentException",
            ));
        };
        let mut out = Vec::new();
        for (col, v) in map {
            let Column { kind, .. } = st.column(b, col).ok_or_else(|| {
                GqlError::new(
                    format!("This column ID doesn't exist for the board: {col}"),
                    "InvalidColumnIdException",
                )
            })?;
            let parsed = if kind == "name" {
                json!(v.as_str().unwrap_or(""))
            } else {
                self.parse_column(
                    st,
                    &kind,
                    v,
                    create_labels,
                    v.is_string()
                        && serde_json::from_str::<Value>(v.as_str().unwrap_or("")).is_err(),
                )
                .map_err(|m| column_error(m, col))?
            };
            out.push((col.clone(), parsed));
        }
        Ok(out)
    }
}

/// Column types the emulator can store and read back.
const STORED_COLUMN_TYPES: [&str; 10] = [
    "text",
    "long_text",
    "numbers",
    "status",
    "date",
    "email",
    "phone",
    "link",
    "checkbox",
    "board_relation",
];

fn board_not_found(board_arg: Option<&Value>) -> GqlError {
    let mut e = GqlError::new("Board not found", "InvalidBoardIdException");
    e.data = json!({"board_id": board_arg});
    e
}

/// graphql-ruby's answer for a required argument left out (monday's API is built on it).
fn missing_argument(f: &Field, name: &str) -> GqlError {
    GqlError::new(
        format!("Field '{}' is missing required arguments: {name}", f.name),
        "missingRequiredArguments",
    )
}

fn update_json(u: &Update) -> Value {
    let text: String = {
        // The body is HTML; text_body is what it reads as.
        let mut out = String::new();
        let mut in_tag = false;
        for c in u.body.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    };
    json!({
        "id": u.id.to_string(), "body": u.body, "text_body": text, "item_id": item_id(u.board, u.item).to_string(),
        "creator_id": USER_ID.to_string(), "created_at": rfc3339(u.created_ms), "updated_at": rfc3339(u.created_ms),
    })
}

fn column_error(message: String, column: &str) -> GqlError {
    let mut e = GqlError::new(message, "ColumnValueException");
    e.data = json!({"column_id": column});
    e
}

// ---------------------------------------------------------------- webhooks

const WEBHOOK_EVENTS: [&str; 8] = [
    "create_item",
    "change_column_value",
    "change_specific_column_value",
    "change_status_column_value",
    "change_name",
    "item_deleted",
    "item_archived",
    "create_update",
];

impl Monday {
    /// Creates a webhook after the receiver echoes the challenge, as monday requires.
    async fn create_webhook(&self, f: &Field) -> Result<Value, GqlError> {
        let b = f
            .arg("board_id")
            .and_then(|x| self.state.lock().expect("monday state").board(x))
            .ok_or_else(|| GqlError::new("Board not found", "InvalidBoardIdException"))?;
        let url = f
            .arg("url")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("http"))
            .ok_or_else(|| {
                GqlError::new(
                    "url must be an absolute http(s) URL",
                    "InvalidArgumentException",
                )
            })?
            .to_string();
        let event = f
            .arg("event")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !WEBHOOK_EVENTS.contains(&event.as_str()) {
            return Err(GqlError::new(
                format!(
                    "Invalid webhook event '{event}'; expected one of {}",
                    WEBHOOK_EVENTS.join(", ")
                ),
                "InvalidArgumentException",
            ));
        }
        let config = f.arg("config").map(|c| match c {
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            other => other.clone(),
        });
        if event == "change_specific_column_value"
            && config.as_ref().and_then(|c| c.get("columnId")).is_none()
        {
            return Err(GqlError::new(
                "change_specific_column_value needs config {\"columnId\": \"...\"}",
                "InvalidArgumentException",
            ));
        }
        let challenge = self.hub.tokens.random_hex(16);
        let answered = self
            .hub
            .outbox
            .client()
            .post(&url)
            .header("content-type", "application/json")
            .body(json!({"challenge": challenge}).to_string())
            .send()
            .await;
        let ok = match answered {
            Ok(r) if r.status().is_success() => r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["challenge"] == challenge.as_str()),
            _ => false,
        };
        if !ok {
            return Err(GqlError::new(
                "Failed to communicate with URL provided.",
                "InvalidUrlException",
            ));
        }
        let mut st = self.state.lock().expect("monday state");
        let id = 147_000_000 + st.next_id;
        st.next_id += 1;
        st.webhooks.insert(
            id,
            Webhook {
                id,
                board: b,
                url,
                event,
                config,
            },
        );
        Ok(project(
            &json!({"id": id.to_string(), "board_id": b.id().to_string()}),
            &f.selection,
        ))
    }

    fn deliver(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        // Per event: item name, group, and the changed column's text.
        type Snapshot = ((String, String, Option<String>), Option<Column>);
        let (hooks, snapshots): (Vec<Webhook>, Vec<Snapshot>) = {
            let st = self.state.lock().expect("monday state");
            let names: Vec<(String, String, Option<String>)> = events
                .iter()
                .map(|e| {
                    let rec = st.boards[e.board.slot()].get(e.item).or_else(|| {
                        st.boards[e.board.slot()]
                            .tombstones()
                            .find(|(i, _)| *i == e.item)
                            .map(|(_, t)| t.last.clone())
                    });
                    let name = rec
                        .as_ref()
                        .and_then(|r| r.fields.get("name").and_then(Value::as_str))
                        .unwrap_or("")
                        .to_string();
                    let group = rec
                        .as_ref()
                        .and_then(|r| r.fields.get("group").and_then(Value::as_str))
                        .unwrap_or("topics")
                        .to_string();
                    (
                        name,
                        group,
                        e.column.as_ref().map(|(c, v, _)| {
                            self.text(
                                &st,
                                &st.column(e.board, c)
                                    .map(|x| x.kind)
                                    .unwrap_or_else(|| "text".into()),
                                v,
                            )
                            .as_str()
                            .unwrap_or("")
                            .to_string()
                        }),
                    )
                })
                .collect();
            let kinds: Vec<Option<Column>> = events
                .iter()
                .map(|e| e.column.as_ref().and_then(|(c, ..)| st.column(e.board, c)))
                .collect();
            (
                st.webhooks.values().cloned().collect(),
                names.into_iter().zip(kinds).collect(),
            )
        };
        let now = self.now();
        for (e, ((name, group, text), changed)) in events.iter().zip(snapshots) {
            for w in hooks.iter().filter(|w| w.board == e.board) {
                let column = e.column.as_ref().map(|c| c.0.as_str());
                let wanted = match w.event.as_str() {
                    "create_item" => e.kind == "create_pulse",
                    "change_column_value" => e.kind == "update_column_value",
                    "change_specific_column_value" => {
                        e.kind == "update_column_value"
                            && w.config.as_ref().and_then(|c| c["columnId"].as_str()) == column
                    }
                    "change_status_column_value" => {
                        e.kind == "update_column_value"
                            && changed.as_ref().is_some_and(|c| c.kind == "status")
                    }
                    "change_name" => e.kind == "update_name",
                    "item_deleted" => e.kind == "delete_pulse",
                    "item_archived" => e.kind == "archive_pulse",
                    _ => false,
                };
                if !wanted {
                    continue;
                }
                let mut ev = json!({
                    "userId": USER_ID, "originalTriggerUuid": null, "boardId": e.board.id(), "pulseId": item_id(e.board, e.item),
                    "pulseName": name, "groupId": group, "app": "monday", "type": e.kind, "triggerTime": crate::clock::rfc3339_millis(now),
                    "subscriptionId": w.id, "triggerUuid": self.hub.tokens.random_hex(16),
                });
                if let Some((col, value, previous)) = &e.column {
                    let (kind, title) = changed
                        .as_ref()
                        .map(|c| (c.kind.as_str(), c.title.as_str()))
                        .unwrap_or(("text", ""));
                    ev["columnId"] = json!(col);
                    ev["columnType"] = json!(kind);
                    ev["columnTitle"] = json!(title);
                    ev["value"] = json!({"value": value, "text": text});
                    ev["previousValue"] = if previous.is_null() {
                        Value::Null
                    } else {
                        json!({"value": previous})
                    };
                }
                let body = json!({"event": ev}).to_string().into_bytes();
                let url = w.url.clone();
                let aud = url.clone();
                self.hub.outbox.send(
                    Arc::clone(&self.hub.clock),
                    Outgoing {
                        vendor: Vendor::Monday,
                        event: e.kind.to_string(),
                        url,
                        method: http::Method::POST,
                        max_attempts: self.hub.outbox.attempts(self.limits.webhook_attempts),
                        build: Box::new(move |_, now_ms| {
                            let jwt = sign_jwt(SIGNING_SECRET, &json!({"accountId": ACCOUNT_ID, "userId": USER_ID, "aud": aud, "iat": now_ms / 1_000, "exp": now_ms / 1_000 + 300}));
                            (vec![("Content-Type".into(), "application/json".into()), ("Authorization".into(), jwt)], body.clone())
                        }),
                        retry_on: retry_server_errors,
                        },
                );
            }
        }
    }
}

/// An HS256 JWT, as monday signs webhook requests with the app's signing secret.
pub(crate) fn sign_jwt(secret: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, input.as_bytes()).as_ref())
    )
}

// ---------------------------------------------------------------- emulator

impl Emulator for Monday {
    fn vendor(&self) -> Vendor {
        Vendor::Monday
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v2", post(graphql_endpoint))
            .fallback(|| async { json_response(StatusCode::NOT_FOUND, json!({"errors": [{"message": "Not found; the monday.com API is POST /v2", "extensions": {"code": "NOT_FOUND"}}]})) })
            .with_state(self)
    }

    fn reset(&self, data: DemoData) {
        *self.state.lock().expect("monday state") = Self::fresh(Demo::from(data));
    }

    fn snapshot(&self) -> Value {
        let st = self.state.lock().expect("monday state");
        json!({
            "vendor": "monday", "seed": st.demo.seed, "account_id": ACCOUNT_ID,
            "boards": st.all_boards().map(|b| json!({"id": b.id(), "name": st.layout(b).name, "items": st.boards[b.slot()].len()})).collect::<Vec<_>>(),
            "webhooks": st.webhooks.values().map(|w| json!({"id": w.id, "board_id": w.board.id(), "event": w.event, "url": w.url})).collect::<Vec<_>>(),
            "complexity_used_this_minute": st.budget.used, "calls_today": st.daily.1,
        })
    }

    fn record(&self, _object: &str, id: &str) -> Option<Value> {
        let st = self.state.lock().expect("monday state");
        let (b, i) = st.item_ref(&json!(id))?;
        let sel = graphql::parse("{ x { id name group { id } created_at updated_at column_values { id type text value } } }", &HashMap::new()).ok()?;
        self.item(&st, b, i, &sel.fields[0].selection)
    }

    fn throttled(&self) -> Response {
        self.limited(
            "Complexity budget exhausted",
            "COMPLEXITY_BUDGET_EXHAUSTED",
            30,
        )
    }

    fn server_error(&self) -> Response {
        json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(
                vec![
                    json!({"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR", "status_code": 500}}),
                ],
                Value::Null,
            ),
        )
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            client_id: String::new(),
            client_secret: String::new(),
            refresh_token: None,
            api_token: Some(API_TOKEN.into()),
            username: "demo@weft-sandbox.example".into(),
            extra: [
                ("api_url".to_string(), format!("{}/v2", self.base())),
                ("signing_secret".to_string(), SIGNING_SECRET.to_string()),
                (
                    "boards".to_string(),
                    Board::DEMO
                        .iter()
                        .map(|b| format!("{}={}", demo_layout(*b).name, b.id()))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn base_url(&self) -> &OnceLock<String> {
        &self.base
    }
}
