//! Microsoft Dataverse (Dynamics 365) Web API v9.x and its Entra ID token endpoint
//! (crm-apis.md §5, §8).
//!
//! Faithful points a connector depends on: Entra client credentials with
//! `scope={org}/.default`, `Prefer: odata.maxpagesize` honoured up to 5,000 with
//! `Preference-Applied`, opaque `$skiptoken` cookies in `@odata.nextLink`, `$skip` rejected,
//! 204 + `OData-EntityId` on create (201 with `return=representation`), PATCH upserts with
//! `If-Match`/`If-None-Match`, `@odata.etag` on every row, change tracking with delta links
//! and `$deletedEntity` rows, service protection 429s with the documented hex codes, and
//! webhooks registered as service endpoints and steps, posting `RemoteExecutionContext`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::entra::EntraApp;
use super::odata::{self, Filter};
use super::{
    auth_token, header_str, json as json_response, parse_json_body, query_params, set_header,
    token_params,
};
use crate::clock::{date, parse_iso, rfc3339};
use crate::collection::{Collection, Dir, Fields};
use crate::config::{DataverseLimits, DemoData, SandboxConfig};
use crate::demo::{DEMO_EPOCH_MS, Demo, Kind};
use crate::oauth::{self, AuthorizeParams};
use crate::server::{Credentials, Emulator, Hub, RequestCtx};
use crate::tokens::TokenCheck;
use crate::vendor::Vendor;
use crate::webhook::{Outgoing, retry_server_errors};

pub(crate) const TENANT: &str = "7d3c9a51-0000-4000-8000-00000000d365";
pub(crate) const CLIENT_ID: &str = "d3650001-0000-4000-8000-00000000c11e";
pub(crate) const CLIENT_SECRET: &str = "weft~sandbox~dataverse~secret~0000000000";
pub(crate) const USERNAME: &str = "demo@weft-sandbox.example";
pub(crate) const PASSWORD: &str = "weft-sandbox-demo-password";
/// The org URL a real environment would have; accepted as the token audience too.
pub(crate) const ORG_URL: &str = "https://weft-sandbox.crm.dynamics.com";
const USER_GUID: &str = "00000000-0000-4000-8000-0000000000aa";
const ORG_GUID: &str = "00000000-0000-4000-8000-00000000d365";
const BU_GUID: &str = "00000000-0000-4000-8000-0000000000b0";
const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Entity {
    Account,
    Contact,
    Lead,
    Opportunity,
    /// Phone call activities, regarding a record (polymorphic `regardingobjectid`). Empty in the
    /// demo data; the org has the custom column `weft_conversationid` as an alternate key, what
    /// an integration that logs calls adds so that logging one again updates it.
    PhoneCall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kindf {
    Str,
    Int,
    Money,
    DateOnly,
    /// Lookup: navigation property (for `@odata.bind`) and target.
    Lookup(&'static str, Entity),
}

impl Entity {
    const ALL: [Entity; 5] = [
        Entity::Account,
        Entity::Contact,
        Entity::Lead,
        Entity::Opportunity,
        Entity::PhoneCall,
    ];

    fn set(self) -> &'static str {
        match self {
            Entity::Account => "accounts",
            Entity::Contact => "contacts",
            Entity::Lead => "leads",
            Entity::Opportunity => "opportunities",
            Entity::PhoneCall => "phonecalls",
        }
    }

    fn logical(self) -> &'static str {
        match self {
            Entity::Account => "account",
            Entity::Contact => "contact",
            Entity::Lead => "lead",
            Entity::Opportunity => "opportunity",
            Entity::PhoneCall => "phonecall",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Entity::Account => "accountid",
            Entity::Contact => "contactid",
            Entity::Lead => "leadid",
            Entity::Opportunity => "opportunityid",
            // Activities share the activitypointer's id column.
            Entity::PhoneCall => "activityid",
        }
    }

    fn from_set(s: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.set() == s)
    }

    fn slot(self) -> usize {
        self as usize
    }

    fn tag(self) -> u32 {
        0xacc0_0001 + self as u32
    }

    /// The alternate key defined on the table, if any.
    fn alternate_key(self) -> Option<&'static str> {
        match self {
            Entity::Account => Some("accountnumber"),
            Entity::PhoneCall => Some("weft_conversationid"),
            _ => None,
        }
    }

    fn fields(self) -> &'static [(&'static str, Kindf)] {
        use Kindf::*;
        match self {
            Entity::Account => &[
                ("name", Str),
                ("accountnumber", Str),
                ("telephone1", Str),
                ("websiteurl", Str),
                ("emailaddress1", Str),
                ("address1_city", Str),
                ("address1_country", Str),
                ("numberofemployees", Int),
                ("revenue", Money),
                ("description", Str),
            ],
            Entity::Contact => &[
                ("firstname", Str),
                ("lastname", Str),
                ("emailaddress1", Str),
                ("telephone1", Str),
                ("jobtitle", Str),
                ("address1_city", Str),
                (
                    "_parentcustomerid_value",
                    Lookup("parentcustomerid_account", Entity::Account),
                ),
            ],
            Entity::Lead => &[
                ("firstname", Str),
                ("lastname", Str),
                ("subject", Str),
                ("companyname", Str),
                ("emailaddress1", Str),
                ("telephone1", Str),
                ("jobtitle", Str),
            ],
            Entity::Opportunity => &[
                ("name", Str),
                ("estimatedvalue", Money),
                ("estimatedclosedate", DateOnly),
                ("closeprobability", Int),
                ("description", Str),
                ("stepname", Str),
                (
                    "_parentaccountid_value",
                    Lookup("parentaccountid", Entity::Account),
                ),
                (
                    "_parentcontactid_value",
                    Lookup("parentcontactid", Entity::Contact),
                ),
            ],
            Entity::PhoneCall => &[
                ("subject", Str),
                ("description", Str),
                ("phonenumber", Str),
                ("scheduledend", DateOnly),
                ("weft_conversationid", Str),
                // One column, several navigation properties: the regarding record's table.
                (
                    "_regardingobjectid_value",
                    Lookup("regardingobjectid_opportunity", Entity::Opportunity),
                ),
                (
                    "_regardingobjectid_value",
                    Lookup("regardingobjectid_account", Entity::Account),
                ),
                (
                    "_regardingobjectid_value",
                    Lookup("regardingobjectid_lead", Entity::Lead),
                ),
                (
                    "_regardingobjectid_value",
                    Lookup("regardingobjectid_contact", Entity::Contact),
                ),
            ],
        }
    }
}

fn guid(e: Entity, index: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", e.tag(), index)
}

fn parse_guid(e: Entity, s: &str) -> Option<u64> {
    let s = s
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase();
    let (tag, rest) = s.split_once('-')?;
    if u32::from_str_radix(tag, 16).ok()? != e.tag()
        || !rest.starts_with("0000-4000-8000-")
        || rest.len() != 27
    {
        return None;
    }
    u64::from_str_radix(&rest[15..], 16).ok()
}

const PROBABILITY: [u64; 6] = [10, 25, 50, 75, 100, 0];
/// The row's id: the client's choice if it made one, else the generated GUID.
fn id_of(st: &DataverseState, e: Entity, i: u64) -> String {
    st.custom_by_index
        .get(&(e, i))
        .cloned()
        .unwrap_or_else(|| guid(e, i))
}

fn index_of(st: &DataverseState, e: Entity, id: &str) -> Option<u64> {
    let norm = id
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase();
    st.custom_ids
        .get(&(e, norm.clone()))
        .copied()
        .or_else(|| parse_guid(e, &norm).filter(|i| !st.custom_by_index.contains_key(&(e, *i))))
}

fn valid_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

const STAGES: [&str; 6] = [
    "1-Qualify",
    "2-Develop",
    "3-Propose",
    "3-Propose",
    "4-Close",
    "4-Close",
];

fn generated(demo: &Demo, e: Entity, i: u64) -> Fields {
    let v = match e {
        Entity::Account => {
            let c = demo.company(i);
            json!({"name": c.name, "accountnumber": format!("A-{:07}", i + 1), "telephone1": c.phone, "websiteurl": format!("https://www.{}", c.domain), "emailaddress1": format!("info@{}", c.domain), "address1_city": c.city, "address1_country": c.country, "numberofemployees": c.employees, "revenue": c.annual_revenue, "description": null})
        }
        Entity::Contact => {
            let p = demo.contact(i);
            json!({"firstname": p.first, "lastname": p.last, "emailaddress1": p.email, "telephone1": p.phone, "jobtitle": p.title, "address1_city": null, "_parentcustomerid_value": p.company.map(|c| guid(Entity::Account, c))})
        }
        Entity::Lead => {
            let p = demo.lead(i);
            json!({"firstname": p.first, "lastname": p.last, "subject": format!("Interested in {}", p.company_name), "companyname": p.company_name, "emailaddress1": p.email, "telephone1": p.phone, "jobtitle": p.title})
        }
        Entity::Opportunity => {
            let d = demo.deal(i);
            json!({"name": d.name, "estimatedvalue": d.amount, "estimatedclosedate": date(DEMO_EPOCH_MS + d.close_day * 86_400_000), "closeprobability": PROBABILITY[d.stage], "description": null, "stepname": STAGES[d.stage], "_parentaccountid_value": guid(Entity::Account, d.company), "_parentcontactid_value": d.contact.map(|c| guid(Entity::Contact, c))})
        }
        Entity::PhoneCall => json!({}),
    };
    v.as_object().cloned().unwrap_or_default()
}

fn build_collections(demo: Demo) -> Vec<Collection> {
    Entity::ALL
        .into_iter()
        .map(|e| {
            let (kind, n) = match e {
                Entity::Account => (Kind::Company, demo.size.companies),
                Entity::Contact => (Kind::Contact, demo.size.contacts),
                Entity::Lead => (Kind::Lead, demo.size.leads),
                Entity::Opportunity => (Kind::Deal, demo.size.deals),
                Entity::PhoneCall => (Kind::Deal, 0),
            };
            Collection::new(
                n,
                move |i| generated(&demo, e, i),
                move |i| demo.times(kind, i, n),
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
struct ServiceEndpoint {
    id: String,
    name: String,
    url: String,
    authtype: i64,
    authvalue: String,
}

#[derive(Debug, Clone)]
struct Step {
    id: String,
    name: String,
    message: &'static str,
    entity: Entity,
    endpoint: String,
    filtering: Vec<String>,
    stage: i64,
    mode: i64,
}

struct DataverseState {
    demo: Demo,
    entities: Vec<Collection>,
    /// Rows created with a client-chosen id (POST with the key, or PATCH upsert to a new id).
    custom_ids: HashMap<(Entity, String), u64>,
    custom_by_index: HashMap<(Entity, u64), String>,
    endpoints: BTreeMap<String, ServiceEndpoint>,
    steps: BTreeMap<String, Step>,
    /// Per caller: (time, handling ms) of requests in the sliding window.
    usage: HashMap<String, VecDeque<(i64, i64)>>,
    next_guid: u64,
}

pub(crate) struct Dataverse {
    hub: Arc<Hub>,
    base: OnceLock<String>,
    limits: DataverseLimits,
    code_ms: i64,
    app: OnceLock<EntraApp>,
    access_ms: i64,
    state: Mutex<DataverseState>,
}

fn dv_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, json!({"error": {"code": code, "message": message}}))
}

fn not_found(e: Entity, id: &str) -> Response {
    dv_error(
        StatusCode::NOT_FOUND,
        "0x80040217",
        &format!("{} With Id = {id} Does Not Exist", e.logical()),
    )
}

const MESSAGES: [&str; 3] = ["Create", "Update", "Delete"];

fn message_guid(m: usize) -> String {
    format!("0000000{}-0000-4000-8000-00000000e55a", m + 1)
}

fn filter_guid(m: usize, e: Entity) -> String {
    format!("0000000{}-{:04x}-4000-8000-00000000f117", m + 1, e as u32)
}

/// A `Prefer` header's parts, e.g. `odata.maxpagesize=100,return=representation`.
struct Prefer {
    max_page: Option<u64>,
    track_changes: bool,
    representation: bool,
    annotations: bool,
}

fn prefer(h: &HeaderMap) -> Prefer {
    let mut p = Prefer {
        max_page: None,
        track_changes: false,
        representation: false,
        annotations: false,
    };
    for v in h.get_all("prefer") {
        for part in v.to_str().unwrap_or("").split(',') {
            let part = part.trim();
            if let Some(n) = part.strip_prefix("odata.maxpagesize=") {
                p.max_page = n.trim().parse().ok();
            } else if part.eq_ignore_ascii_case("odata.track-changes") {
                p.track_changes = true;
            } else if part.eq_ignore_ascii_case("return=representation") {
                p.representation = true;
            } else if part.starts_with("odata.include-annotations") {
                p.annotations = true;
            }
        }
    }
    p
}

fn encode(s: &str) -> String {
    crate::oauth::encode(s)
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Dataverse {
    pub(crate) fn new(hub: Arc<Hub>, config: &SandboxConfig) -> Arc<Self> {
        let demo = Demo::from(config.data);
        Arc::new(Self {
            limits: config.dataverse,
            code_ms: config.tokens.authorization_code.as_millis() as i64,
            access_ms: config.tokens.entra_access.as_millis() as i64,
            app: OnceLock::new(),
            state: Mutex::new(Self::fresh(demo)),
            hub,
            base: OnceLock::new(),
        })
    }

    fn fresh(demo: Demo) -> DataverseState {
        DataverseState {
            demo,
            entities: build_collections(demo),
            custom_ids: HashMap::new(),
            custom_by_index: HashMap::new(),
            endpoints: BTreeMap::new(),
            steps: BTreeMap::new(),
            usage: HashMap::new(),
            next_guid: 1,
        }
    }

    fn base(&self) -> &str {
        self.base.get().map(String::as_str).unwrap_or("")
    }

    fn api(&self) -> String {
        format!("{}/api/data/v9.2", self.base())
    }

    fn now(&self) -> i64 {
        self.hub.now_ms()
    }

    fn app(&self) -> &EntraApp {
        self.app.get_or_init(|| EntraApp {
            vendor: Vendor::Dataverse,
            tenant: TENANT,
            client_id: CLIENT_ID,
            client_secret: CLIENT_SECRET,
            resources: vec![ORG_URL.to_string(), self.base().to_string()],
            username: USERNAME,
            password: PASSWORD,
            lifetime_ms: self.access_ms,
        })
    }

    fn new_guid(&self, st: &mut DataverseState, tag: u32) -> String {
        st.next_guid += 1;
        format!("{tag:08x}-0000-4000-8000-{:012x}", st.next_guid)
    }

    /// Authentication, then the three service protection limits, then the rate headers.
    fn guarded(
        &self,
        headers: &HeaderMap,
        ctx: &RequestCtx,
        f: impl FnOnce() -> Response,
    ) -> Response {
        let token = auth_token(headers, "Bearer");
        let caller =
            match token.map(|t| (t, self.hub.tokens.check(Vendor::Dataverse, t, self.now()))) {
                Some((_, TokenCheck::Valid(a))) if !ctx.force_expired => a.grant.user,
                Some((_, TokenCheck::Valid(_) | TokenCheck::Expired)) => {
                    return self.unauthorized("invalid_token", "The access token expired");
                }
                _ => {
                    return self.unauthorized(
                        "invalid_token",
                        "Error identified in Payload provided by the user for Authorization Header",
                    );
                }
            };
        let now = self.now();
        let window = self.limits.window.as_millis() as i64;
        let (count, used_ms) = {
            let mut st = self.state.lock().expect("dataverse state");
            let usage = st.usage.entry(caller.clone()).or_default();
            while usage.front().is_some_and(|(t, _)| *t <= now - window) {
                usage.pop_front();
            }
            let count = usage.len() as u32;
            let used: i64 = usage.iter().map(|(_, ms)| ms).sum();
            let oldest = usage.front().map(|(t, _)| *t).unwrap_or(now);
            let retry = ((oldest + window - now) / 1_000).max(1);
            // Concurrency is about this moment, so it is judged first.
            if ctx.in_flight > self.limits.concurrent_requests {
                return self.protection(
                    1,
                    "0x80072326",
                    &format!(
                        "Number of concurrent requests exceeded the limit of {}.",
                        self.limits.concurrent_requests
                    ),
                );
            }
            if count >= self.limits.requests_per_window {
                return self.protection(retry, "0x80072322", &format!("Number of requests exceeded the limit of {} over time window of {} seconds.", self.limits.requests_per_window, window / 1_000));
            }
            if used >= self.limits.execution_time_per_window.as_millis() as i64 {
                return self.protection(retry, "0x80072321", &format!("Combined execution time of incoming requests exceeded limit of {} milliseconds over time window of {} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.", self.limits.execution_time_per_window.as_millis(), window / 1_000));
            }
            (count + 1, used)
        };
        let mut resp = f();
        let spent = ctx.received_at.elapsed().as_millis() as i64;
        {
            let mut st = self.state.lock().expect("dataverse state");
            st.usage.entry(caller).or_default().push_back((now, spent));
        }
        set_header(
            &mut resp,
            "x-ms-ratelimit-burst-remaining-xrm-requests",
            self.limits.requests_per_window.saturating_sub(count),
        );
        let left = (self.limits.execution_time_per_window.as_millis() as i64 - used_ms - spent)
            .max(0) as f64
            / 1_000.0;
        set_header(
            &mut resp,
            "x-ms-ratelimit-time-remaining-xrm-requests",
            format!("{left:.2}"),
        );
        set_header(&mut resp, "OData-Version", "4.0");
        resp
    }

    fn unauthorized(&self, error: &str, description: &str) -> Response {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        let v = format!(
            "Bearer error={error}, error_description=\"{description}\", authorization_uri={}/{TENANT}/oauth2/authorize, resource_id={ORG_URL}",
            self.base()
        );
        if let Ok(h) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, h);
        }
        r
    }

    fn protection(&self, retry_after: i64, code: &str, message: &str) -> Response {
        let mut r = dv_error(StatusCode::TOO_MANY_REQUESTS, code, message);
        set_header(&mut r, "Retry-After", retry_after);
        r
    }

    fn etag(modified_ms: i64) -> String {
        format!("W/\"{modified_ms}\"")
    }

    /// A row as Dataverse returns it; `select` limits the columns (key and etag always come).
    fn render(
        &self,
        st: &DataverseState,
        e: Entity,
        i: u64,
        select: Option<&[String]>,
        annotations: bool,
    ) -> Option<Value> {
        let rec = st.entities[e.slot()].get(i)?;
        let mut all = Map::new();
        for (name, _) in e.fields() {
            all.insert(
                name.to_string(),
                rec.fields.get(*name).cloned().unwrap_or(Value::Null),
            );
        }
        if matches!(e, Entity::Contact | Entity::Lead) {
            let full = format!(
                "{} {}",
                rec.fields
                    .get("firstname")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                rec.fields
                    .get("lastname")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            );
            all.insert("fullname".into(), json!(full.trim()));
        }
        all.insert("createdon".into(), json!(rfc3339(rec.created_ms)));
        all.insert("modifiedon".into(), json!(rfc3339(rec.modified_ms)));
        all.insert("versionnumber".into(), json!(rec.modified_ms));
        all.insert("statecode".into(), json!(0));
        all.insert("statuscode".into(), json!(1));
        all.insert("_ownerid_value".into(), json!(USER_GUID));
        let mut out = Map::new();
        out.insert("@odata.etag".into(), json!(Self::etag(rec.modified_ms)));
        match select {
            Some(cols) => {
                for c in cols {
                    out.insert(c.clone(), all.get(c).cloned().unwrap_or(Value::Null));
                }
            }
            None => out.extend(all),
        }
        out.insert(e.key().into(), json!(id_of(st, e, i)));
        if annotations {
            for (name, kind) in e.fields() {
                if let Kindf::Lookup(_, target) = kind
                    && out.get(*name).is_some_and(|v| !v.is_null())
                {
                    out.insert(
                        format!("{name}@Microsoft.Dynamics.CRM.lookuplogicalname"),
                        json!(target.logical()),
                    );
                }
            }
            if let Some(v) = out.get("statecode").cloned() {
                out.insert(
                    "statecode@OData.Community.Display.V1.FormattedValue".into(),
                    json!(if v == 0 { "Active" } else { "Inactive" }),
                );
            }
        }
        Some(Value::Object(out))
    }

    fn column_exists(e: Entity, c: &str) -> bool {
        e.fields().iter().any(|(n, _)| *n == c)
            || matches!(
                c,
                "createdon"
                    | "modifiedon"
                    | "versionnumber"
                    | "statecode"
                    | "statuscode"
                    | "_ownerid_value"
            )
            || c == e.key()
            || (c == "fullname" && matches!(e, Entity::Contact | Entity::Lead))
    }
}

// ---------------------------------------------------------------- token endpoints

async fn token_v2(
    State(d): State<Arc<Dataverse>>,
    Path(tenant): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = token_params(q.as_deref(), &headers, &body);
    d.app().token(&d.hub, &tenant, true, &p)
}

async fn token_v1(
    State(d): State<Arc<Dataverse>>,
    Path(tenant): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = token_params(q.as_deref(), &headers, &body);
    d.app().token(&d.hub, &tenant, false, &p)
}

async fn authorize_page(RawQuery(q): RawQuery) -> Response {
    let p: AuthorizeParams =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    oauth::consent_page(
        Vendor::Dataverse,
        &format!("/{TENANT}/oauth2/v2.0/authorize"),
        CLIENT_ID,
        &p,
    )
}

async fn authorize_decision(State(d): State<Arc<Dataverse>>, body: Bytes) -> Response {
    let p: AuthorizeParams = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    oauth::decide(
        &oauth::Consent {
            vendor: Vendor::Dataverse,
            known_client: CLIENT_ID,
            user: USERNAME,
            code_lifetime_ms: d.code_ms,
            code_prefix: "0.A",
        },
        &d.hub.tokens,
        d.now(),
        &p,
        &[],
    )
}

// ---------------------------------------------------------------- resource routing

/// `accounts`, `accounts(<guid>)` or `accounts(accountnumber='A-1')`.
enum Target {
    Set(Entity),
    ById(Entity, String),
    ByKey(Entity, String, String),
}

fn parse_segment(seg: &str) -> Option<Target> {
    let Some(open) = seg.find('(') else {
        return Entity::from_set(seg).map(Target::Set);
    };
    let e = Entity::from_set(&seg[..open])?;
    let inner = seg[open + 1..].strip_suffix(')')?;
    match inner.split_once('=') {
        None => Some(Target::ById(e, inner.to_string())),
        Some((k, v)) => Some(Target::ByKey(
            e,
            k.trim().to_string(),
            v.trim().trim_matches('\'').replace("''", "'"),
        )),
    }
}

async fn resource(
    State(d): State<Arc<Dataverse>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((_version, segment)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segment = decode(&segment);
    d.guarded(&headers, &ctx, || match segment.as_str() {
        "WhoAmI" => json_response(StatusCode::OK, json!({"@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", d.api()), "BusinessUnitId": BU_GUID, "UserId": USER_GUID, "OrganizationId": ORG_GUID})),
        "$batch" if method == http::Method::POST => d.batch(&headers, &body),
        "sdkmessages" | "sdkmessagefilters" | "serviceendpoints" | "sdkmessageprocessingsteps" => d.registration(&segment, method, q.as_deref(), &body),
        row if method == http::Method::DELETE && (row.starts_with("serviceendpoints(") || row.starts_with("sdkmessageprocessingsteps(")) => d.unregister(row),
        _ => match parse_segment(&segment) {
            None => dv_error(StatusCode::NOT_FOUND, "0x8006088a", &format!("Resource not found for the segment '{segment}'.")),
            Some(Target::Set(e)) if method == http::Method::GET => d.query(e, q.as_deref(), &headers),
            Some(Target::Set(e)) if method == http::Method::POST => d.create(e, &body, &headers),
            Some(Target::Set(_)) => dv_error(StatusCode::METHOD_NOT_ALLOWED, "0x80060888", &format!("{method} is not allowed on an entity set")),
            Some(t) => d.single(t, method, q.as_deref(), &headers, &body),
        },
    })
}

async fn resource_action(
    State(d): State<Arc<Dataverse>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((_version, segment, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    d.guarded(&headers, &ctx, || {
        let Some(Target::Set(e)) = parse_segment(&segment) else {
            return dv_error(
                StatusCode::NOT_FOUND,
                "0x8006088a",
                &format!("Resource not found for the segment '{segment}'."),
            );
        };
        match action.as_str() {
            "$count" => {
                let st = d.state.lock().expect("dataverse state");
                let n = st.entities[e.slot()].len().min(5_000);
                let mut r = (StatusCode::OK, n.to_string()).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r
            }
            "Microsoft.Dynamics.CRM.CreateMultiple" => d.bulk(e, BulkKind::Create, &body),
            "Microsoft.Dynamics.CRM.UpdateMultiple" => d.bulk(e, BulkKind::Update, &body),
            "Microsoft.Dynamics.CRM.UpsertMultiple" => d.bulk(e, BulkKind::Upsert, &body),
            _ => dv_error(
                StatusCode::NOT_FOUND,
                "0x8006088a",
                &format!("Resource not found for the segment '{action}'."),
            ),
        }
    })
}

// ---------------------------------------------------------------- queries, paging, change tracking

/// What a `$skiptoken` cookie carries: page number, last key seen, and for tracked queries the
/// snapshot the delta link starts from.
struct Cookie {
    page: u64,
    last: Option<u64>,
    snapshot: Option<(i64, u64)>,
}

fn make_cookie(
    e: Entity,
    page: u64,
    first: Option<u64>,
    last: Option<u64>,
    snapshot: Option<(i64, u64)>,
) -> String {
    let g = |i: Option<u64>| {
        i.map(|i| format!("{{{}}}", guid(e, i).to_uppercase()))
            .unwrap_or_default()
    };
    let mut inner = format!(
        "<cookie page=\"{}\"><{} last=\"{}\" first=\"{}\" /></cookie>",
        page - 1,
        e.key(),
        g(last),
        g(first)
    );
    if let Some((ms, i)) = snapshot {
        inner = inner.replace(
            "</cookie>",
            &format!("<snapshot v=\"{ms}_{i}\" /></cookie>"),
        );
    }
    format!(
        "<cookie pagenumber=\"{page}\" pagingcookie=\"{}\" istracking=\"{}\" />",
        encode(&encode(&inner)),
        if snapshot.is_some() { "True" } else { "False" }
    )
}

fn read_cookie(e: Entity, token: &str) -> Option<Cookie> {
    let page: u64 = token
        .split("pagenumber=\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()?;
    let inner = decode(&decode(
        token.split("pagingcookie=\"").nth(1)?.split('"').next()?,
    ));
    let last = inner
        .split("last=\"{")
        .nth(1)
        .and_then(|s| s.split('}').next())
        .and_then(|g| parse_guid(e, g));
    let snapshot = inner
        .split("<snapshot v=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|v| {
            let (a, b) = v.split_once('_')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        });
    Some(Cookie {
        page,
        last,
        snapshot,
    })
}

fn delta_token(key: (i64, u64)) -> String {
    // Dataverse writes `<version>!<MM/dd/yyyy HH:mm:ss>`; the version is ours.
    let t = rfc3339(key.0);
    let stamp = format!("{}/{}/{} {}", &t[5..7], &t[8..10], &t[0..4], &t[11..19]);
    format!("{}_{}!{stamp}", key.0, key.1)
}

fn read_delta(token: &str) -> Option<(i64, u64)> {
    let (version, _) = token.split_once('!')?;
    let (a, b) = version.split_once('_')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl Dataverse {
    fn query(&self, e: Entity, q: Option<&str>, headers: &HeaderMap) -> Response {
        let p = query_params(q);
        let pref = prefer(headers);
        if p.contains_key("$skip") {
            return dv_error(
                StatusCode::BAD_REQUEST,
                "0x80060888",
                "The query parameter $skip is not supported",
            );
        }
        let expand = match p.get("$expand").map(|x| parse_expand(e, x)) {
            None => Vec::new(),
            Some(Ok(x)) => x,
            Some(Err(msg)) => return dv_error(StatusCode::BAD_REQUEST, "0x80060888", &msg),
        };
        let select: Option<Vec<String>> = p.get("$select").map(|s| {
            s.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        });
        if let Some(bad) = select
            .as_ref()
            .and_then(|cols| cols.iter().find(|c| !Self::column_exists(e, c)))
        {
            return dv_error(
                StatusCode::BAD_REQUEST,
                "0x80060888",
                &format!(
                    "Could not find a property named '{bad}' on type 'Microsoft.Dynamics.CRM.{}'.",
                    e.logical()
                ),
            );
        }
        let filter: Option<Filter> = match p.get("$filter").map(|f| odata::parse(f)) {
            None => None,
            Some(Ok(f)) => Some(f),
            Some(Err(msg)) => {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80060888",
                    &format!("Syntax error in $filter: {msg}"),
                );
            }
        };
        if let Some(f) = &filter {
            let mut props = Vec::new();
            odata::properties(f, &mut props);
            if let Some(bad) = props.iter().find(|c| !Self::column_exists(e, c)) {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80060888",
                    &format!(
                        "Could not find a property named '{bad}' on type 'Microsoft.Dynamics.CRM.{}'.",
                        e.logical()
                    ),
                );
            }
        }
        let order = p
            .get("$orderby")
            .map(|o| odata::parse_orderby(o))
            .unwrap_or_default();
        let top = p.get("$top").and_then(|t| t.parse::<u64>().ok());
        let delta = p.get("$deltatoken").cloned();
        let tracking = pref.track_changes || delta.is_some();
        if tracking
            && (filter.is_some() || !order.is_empty() || top.is_some() || !expand.is_empty())
        {
            return dv_error(
                StatusCode::BAD_REQUEST,
                "0x80060888",
                "The query options $filter, $orderby, $expand and $top are not supported with change tracking (odata.track-changes).",
            );
        }
        let page_size = pref
            .max_page
            .unwrap_or(self.limits.max_page_size)
            .clamp(1, self.limits.max_page_size);
        let annotations = pref.annotations;
        let st = self.state.lock().expect("dataverse state");
        let c = &st.entities[e.slot()];
        let now = self.now();
        let context = format!(
            "{}/$metadata#{}",
            self.api(),
            match &select {
                Some(cols) => format!("{}({})", e.set(), cols.join(",")),
                None => e.set().to_string(),
            }
        );
        let passthrough: String = ["$select"]
            .iter()
            .filter_map(|k| p.get(*k).map(|v| format!("{k}={}", encode(v))))
            .collect::<Vec<_>>()
            .join("&");
        let link = |extra: String| {
            let mut parts = Vec::new();
            if !passthrough.is_empty() {
                parts.push(passthrough.clone());
            }
            for k in ["$filter", "$orderby", "$top", "$count", "$expand"] {
                if let Some(v) = p.get(k) {
                    parts.push(format!("{k}={}", encode(v)));
                }
            }
            parts.push(extra);
            format!("{}/{}?{}", self.api(), e.set(), parts.join("&"))
        };
        if let Some(token) = delta {
            let Some(key) = read_delta(&token) else {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80044352",
                    "The $deltatoken is not one this environment issued; request the entity set again with Prefer: odata.track-changes.",
                );
            };
            if key.0 < now - self.limits.delta_token_max_age.as_millis() as i64 {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80044352",
                    "The delta token has expired. Do a full synchronisation: request the entity set again with Prefer: odata.track-changes.",
                );
            }
            let changes = c.changes_after(key, now + 1, true, page_size as usize + 1);
            let more = changes.len() > page_size as usize;
            let page = &changes[..changes.len().min(page_size as usize)];
            let rows: Vec<Value> = page
                .iter()
                .filter_map(|ch| {
                    if ch.deleted {
                        Some(json!({"@odata.context": format!("{}/$metadata#{}/$deletedEntity", self.api(), e.set()), "id": id_of(&st, e, ch.index), "reason": "deleted"}))
                    } else {
                        self.render(&st, e, ch.index, select.as_deref(), annotations)
                    }
                })
                .collect();
            let last = page.last().map(|ch| ch.key).unwrap_or(key);
            let mut body = json!({"@odata.context": format!("{context}/$delta"), "value": rows});
            if more {
                body["@odata.nextLink"] =
                    json!(link(format!("$deltatoken={}", encode(&delta_token(last)))));
            } else {
                body["@odata.deltaLink"] =
                    json!(link(format!("$deltatoken={}", encode(&delta_token(last)))));
            }
            let mut r = json_response(StatusCode::OK, body);
            set_header(&mut r, "Preference-Applied", "odata.track-changes");
            return r;
        }
        let cookie = match p.get("$skiptoken") {
            None => None,
            Some(t) => match read_cookie(e, t) {
                Some(c) => Some(c),
                None => {
                    return dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80060888",
                        "The $skiptoken is not a paging cookie this environment issued; follow @odata.nextLink unchanged.",
                    );
                }
            },
        };
        let page_no = cookie.as_ref().map(|c| c.page).unwrap_or(1);
        let snapshot = cookie
            .as_ref()
            .and_then(|c| c.snapshot)
            .or(tracking.then_some((now, u64::MAX)));
        let matches = |i: u64| -> bool {
            match &filter {
                None => true,
                Some(f) => self
                    .render(&st, e, i, None, false)
                    .is_some_and(|v| odata::eval(f, &v)),
            }
        };
        let limit = top
            .map(|t| t.saturating_sub((page_no - 1) * page_size))
            .unwrap_or(u64::MAX)
            .min(page_size);
        let (rows, more, first, last): (Vec<u64>, bool, Option<u64>, Option<u64>) = if order
            .is_empty()
        {
            let after = cookie.as_ref().and_then(|c| c.last);
            let mut it = c.scan(Dir::Asc, after).filter(|i| matches(*i));
            let rows: Vec<u64> = it.by_ref().take(limit as usize).collect();
            let more = top.is_none_or(|t| page_no * page_size < t) && it.next().is_some();
            (
                rows.clone(),
                more,
                rows.first().copied(),
                rows.last().copied(),
            )
        } else {
            let mut all: Vec<(Value, u64)> = c
                .scan(Dir::Asc, None)
                .filter(|i| matches(*i))
                .filter_map(|i| Some((self.render(&st, e, i, None, false)?, i)))
                .collect();
            all.sort_by(|a, b| odata::order(&a.0, &b.0, &order).then(a.1.cmp(&b.1)));
            let skip = ((page_no - 1) * page_size) as usize;
            let rows: Vec<u64> = all
                .iter()
                .skip(skip)
                .take(limit as usize)
                .map(|x| x.1)
                .collect();
            let more = all.len() > skip + rows.len() && top.is_none_or(|t| page_no * page_size < t);
            (
                rows.clone(),
                more,
                rows.first().copied(),
                rows.last().copied(),
            )
        };
        let values: Vec<Value> = rows
            .iter()
            .filter_map(|i| {
                self.render(&st, e, *i, select.as_deref(), annotations)
                    .map(|v| self.expand(&st, e, *i, v, &expand))
            })
            .collect();
        let mut body = json!({"@odata.context": context});
        if p.get("$count").is_some_and(|v| v == "true") {
            let total = c
                .scan(Dir::Asc, None)
                .filter(|i| matches(*i))
                .take(5_001)
                .count();
            body["@odata.count"] = json!(total.min(5_000));
            if total > 5_000 {
                body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = json!(true);
            }
        }
        body["value"] = json!(values);
        if more {
            body["@odata.nextLink"] = json!(link(format!(
                "$skiptoken={}",
                encode(&make_cookie(
                    e,
                    page_no + 1,
                    first,
                    last,
                    tracking.then_some(snapshot.unwrap_or((now, u64::MAX)))
                ))
            )));
        } else if let Some(s) = snapshot.filter(|_| tracking) {
            body["@odata.deltaLink"] = json!(link(format!(
                "$deltatoken={}",
                encode(&delta_token((s.0, u64::MAX)))
            )));
        }
        let mut r = json_response(StatusCode::OK, body);
        let mut applied = Vec::new();
        if pref.max_page.is_some() {
            applied.push(format!("odata.maxpagesize={page_size}"));
        }
        if tracking {
            applied.push("odata.track-changes".into());
        }
        if annotations {
            applied.push("odata.include-annotations=\"*\"".into());
        }
        if !applied.is_empty() {
            set_header(&mut r, "Preference-Applied", applied.join(","));
        }
        r
    }
}

/// One `$expand` item: a single-valued navigation property, its lookup column, the target
/// table and the target columns to select.
struct Expansion {
    nav: &'static str,
    column: &'static str,
    target: Entity,
    select: Option<Vec<String>>,
}

/// Parses `nav($select=a,b),other` for the table's lookups.
fn parse_expand(e: Entity, text: &str) -> Result<Vec<Expansion>, String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .map(|item| {
            let item = item.trim();
            let (nav, options) = match item.split_once('(') {
                Some((n, rest)) => (n.trim(), Some(rest.trim_end_matches(')'))),
                None => (item, None),
            };
            let (nav, column, target) = e
                .fields()
                .iter()
                .find_map(|(name, kind)| match kind {
                    Kindf::Lookup(n, t) if *n == nav => Some((*n, *name, *t)),
                    _ => None,
                })
                .ok_or_else(|| format!("Could not find a navigation property named '{nav}' on 'Microsoft.Dynamics.CRM.{}' (the sandbox expands single-valued lookups)", e.logical()))?;
            let select = options.and_then(|o| o.split(';').find_map(|opt| opt.trim().strip_prefix("$select=").map(|s| s.split(',').map(|c| c.trim().to_string()).collect::<Vec<_>>())));
            if let Some(bad) = select.as_ref().and_then(|cols| cols.iter().find(|c| !Dataverse::column_exists(target, c))) {
                return Err(format!("Could not find a property named '{bad}' on type 'Microsoft.Dynamics.CRM.{}'.", target.logical()));
            }
            Ok(Expansion { nav, column, target, select })
        })
        .collect()
}

impl Dataverse {
    fn expand(
        &self,
        st: &DataverseState,
        e: Entity,
        i: u64,
        mut row: Value,
        expansions: &[Expansion],
    ) -> Value {
        if expansions.is_empty() {
            return row;
        }
        let Some(rec) = st.entities[e.slot()].get(i) else {
            return row;
        };
        for x in expansions {
            let related = rec
                .fields
                .get(x.column)
                .and_then(Value::as_str)
                .and_then(|g| index_of(st, x.target, g))
                .and_then(|j| self.render(st, x.target, j, x.select.as_deref(), false));
            row[x.nav] = related.unwrap_or(Value::Null);
        }
        row
    }
}

// ---------------------------------------------------------------- writes

/// A finished write, for webhooks: message, row, and the attributes written.
struct Written {
    message: &'static str,
    entity: Entity,
    index: u64,
    attributes: Fields,
}

impl Dataverse {
    /// Validates a body into stored fields, resolving `nav@odata.bind` lookups.
    fn fields_from(
        &self,
        st: &DataverseState,
        e: Entity,
        body: &Map<String, Value>,
    ) -> Result<Fields, Response> {
        let mut out = Fields::new();
        for (k, v) in body {
            if k.starts_with("@odata.") || k == e.key() {
                continue;
            }
            if let Some(nav) = k.strip_suffix("@odata.bind") {
                let Some((field, target)) = e.fields().iter().find_map(|(n, kind)| match kind {
                    Kindf::Lookup(nav_name, t) if *nav_name == nav => Some((*n, *t)),
                    _ => None,
                }) else {
                    return Err(dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80060888",
                        &format!(
                            "An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload."
                        ),
                    ));
                };
                let reference = v.as_str().unwrap_or("");
                let id = reference.rsplit_once('(').map(|(set, rest)| {
                    (
                        set.trim_start_matches('/').rsplit('/').next().unwrap_or(""),
                        rest.trim_end_matches(')'),
                    )
                });
                match id {
                    Some((set, g)) if set == target.set() => match index_of(st, target, g)
                        .filter(|i| st.entities[target.slot()].is_live(*i))
                    {
                        Some(i) => {
                            out.insert(field.to_string(), json!(id_of(st, target, i)));
                        }
                        None => return Err(not_found(target, g)),
                    },
                    _ => {
                        return Err(dv_error(
                            StatusCode::BAD_REQUEST,
                            "0x80060888",
                            &format!(
                                "The value '{reference}' for {k} is not a valid entity reference such as /{}(<guid>)",
                                target.set()
                            ),
                        ));
                    }
                }
                continue;
            }
            let Some((name, kind)) = e.fields().iter().find(|(n, _)| *n == k) else {
                return Err(dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80060888",
                    &format!(
                        "The property '{k}' does not exist on type 'Microsoft.Dynamics.CRM.{}'. Make sure to only use property names that are defined by the type.",
                        e.logical()
                    ),
                ));
            };
            let ok = match (kind, v) {
                (_, Value::Null) => true,
                (Kindf::Str, Value::String(_)) => true,
                (Kindf::Int | Kindf::Money, Value::Number(_)) => true,
                (Kindf::DateOnly, Value::String(s)) => s.len() == 10 && parse_iso(s).is_some(),
                (Kindf::Lookup(..), _) => false,
                _ => false,
            };
            if !ok {
                let edm = match kind {
                    Kindf::Int => "Edm.Int32",
                    Kindf::Money => "Edm.Decimal",
                    Kindf::DateOnly => "Edm.Date",
                    Kindf::Lookup(..) => "a lookup (write it with @odata.bind)",
                    Kindf::Str => "Edm.String",
                };
                return Err(dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    &format!(
                        "Error identified in Payload provided by the user for Entity :'{}', Cause of the Error: Cannot convert the literal '{v}' to the expected type '{edm}'.",
                        e.set()
                    ),
                ));
            }
            out.insert(name.to_string(), v.clone());
        }
        Ok(out)
    }

    fn key_clash(
        &self,
        st: &mut DataverseState,
        e: Entity,
        fields: &Fields,
        except: Option<u64>,
    ) -> Option<Response> {
        let key = e.alternate_key()?;
        let v = fields.get(key).filter(|v| !v.is_null())?;
        let clash = st.entities[e.slot()]
            .find(key, v)
            .into_iter()
            .any(|i| Some(i) != except);
        clash.then(|| dv_error(StatusCode::PRECONDITION_FAILED, "0x80060892", &format!("A record that has the attribute values {key} already exists. The entity key requires that this set of attributes contains unique values.")))
    }

    fn created_response(
        &self,
        st: &DataverseState,
        e: Entity,
        i: u64,
        headers: &HeaderMap,
        status_with_body: StatusCode,
    ) -> Response {
        let pref = prefer(headers);
        let mut r = if pref.representation {
            let mut v = self
                .render(st, e, i, None, pref.annotations)
                .unwrap_or(Value::Null);
            v["@odata.context"] = json!(format!("{}/$metadata#{}/$entity", self.api(), e.set()));
            json_response(status_with_body, v)
        } else {
            StatusCode::NO_CONTENT.into_response()
        };
        set_header(
            &mut r,
            "OData-EntityId",
            format!("{}/{}({})", self.api(), e.set(), id_of(st, e, i)),
        );
        if pref.representation {
            set_header(&mut r, "Preference-Applied", "return=representation");
        }
        r
    }

    fn create(&self, e: Entity, body: &[u8], headers: &HeaderMap) -> Response {
        let input = match parse_json_body(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    "The request body must be a JSON object",
                );
            }
            Err(msg) => return dv_error(StatusCode::BAD_REQUEST, "0x80048d19", &msg),
        };
        let (resp, written) = {
            let mut st = self.state.lock().expect("dataverse state");
            let fields = match self.fields_from(&st, e, &input) {
                Ok(f) => f,
                Err(r) => return r,
            };
            if let Some(r) = self.key_clash(&mut st, e, &fields, None) {
                return r;
            }
            let chosen = match input
                .get(e.key())
                .and_then(Value::as_str)
                .map(|g| g.to_ascii_lowercase())
            {
                Some(g) if !valid_guid(&g) => {
                    return dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80060888",
                        &format!("'{g}' is not a valid GUID for {}", e.key()),
                    );
                }
                Some(g)
                    if index_of(&st, e, &g).is_some_and(|i| st.entities[e.slot()].is_live(i)) =>
                {
                    return dv_error(
                        StatusCode::PRECONDITION_FAILED,
                        "0x80040237",
                        "Cannot insert duplicate key.",
                    );
                }
                other => other,
            };
            let now = self.now();
            let i = st.entities[e.slot()].insert(fields.clone(), now);
            if let Some(g) = chosen {
                st.custom_ids.insert((e, g.clone()), i);
                st.custom_by_index.insert((e, i), g);
            }
            (
                self.created_response(&st, e, i, headers, StatusCode::CREATED),
                Written {
                    message: "Create",
                    entity: e,
                    index: i,
                    attributes: fields,
                },
            )
        };
        self.fire(vec![written]);
        resp
    }

    fn single(
        &self,
        t: Target,
        method: http::Method,
        q: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let pref = prefer(headers);
        let (e, mut index, id_text, alt) = {
            let mut st = self.state.lock().expect("dataverse state");
            match &t {
                Target::ById(e, g) => (
                    *e,
                    index_of(&st, *e, g).filter(|i| st.entities[e.slot()].is_live(*i)),
                    g.clone(),
                    None,
                ),
                Target::ByKey(e, k, v) => {
                    if e.alternate_key() != Some(k.as_str()) {
                        return dv_error(
                            StatusCode::BAD_REQUEST,
                            "0x80060888",
                            &format!(
                                "The key '{k}' is not an alternate key defined on {}",
                                e.logical()
                            ),
                        );
                    }
                    (
                        *e,
                        st.entities[e.slot()].find(k, &json!(v)).first().copied(),
                        format!("{k}='{v}'"),
                        Some((k.clone(), v.clone())),
                    )
                }
                Target::Set(_) => unreachable!("sets are handled by the caller"),
            }
        };
        let if_match = header_str(headers, "if-match").map(str::to_string);
        let if_none_match = header_str(headers, "if-none-match").map(str::to_string);
        match method {
            http::Method::GET => {
                let st = self.state.lock().expect("dataverse state");
                let Some(i) = index else {
                    return not_found(e, &id_text);
                };
                let select: Option<Vec<String>> = query_params(q)
                    .get("$select")
                    .map(|s| s.split(',').map(|c| c.trim().to_string()).collect());
                if let Some(bad) = select
                    .as_ref()
                    .and_then(|cols| cols.iter().find(|c| !Self::column_exists(e, c)))
                {
                    return dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80060888",
                        &format!(
                            "Could not find a property named '{bad}' on type 'Microsoft.Dynamics.CRM.{}'.",
                            e.logical()
                        ),
                    );
                }
                let expand = match query_params(q).get("$expand").map(|x| parse_expand(e, x)) {
                    None => Vec::new(),
                    Some(Ok(x)) => x,
                    Some(Err(msg)) => return dv_error(StatusCode::BAD_REQUEST, "0x80060888", &msg),
                };
                let mut v = self
                    .render(&st, e, i, select.as_deref(), pref.annotations)
                    .map(|v| self.expand(&st, e, i, v, &expand))
                    .unwrap_or(Value::Null);
                v["@odata.context"] =
                    json!(format!("{}/$metadata#{}/$entity", self.api(), e.set()));
                // A matching If-None-Match etag means the client's copy is current.
                if if_none_match
                    .as_deref()
                    .is_some_and(|t| Some(t) == v["@odata.etag"].as_str())
                {
                    return StatusCode::NOT_MODIFIED.into_response();
                }
                json_response(StatusCode::OK, v)
            }
            http::Method::DELETE => {
                let Some(i) = index else {
                    return not_found(e, &id_text);
                };
                let fields = {
                    let mut st = self.state.lock().expect("dataverse state");
                    let fields = st.entities[e.slot()]
                        .get(i)
                        .map(|r| r.fields)
                        .unwrap_or_default();
                    let now = self.now();
                    st.entities[e.slot()].delete(i, now);
                    fields
                };
                self.fire(vec![Written {
                    message: "Delete",
                    entity: e,
                    index: i,
                    attributes: fields,
                }]);
                StatusCode::NO_CONTENT.into_response()
            }
            http::Method::PATCH => {
                let input = match parse_json_body(body) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => {
                        return dv_error(
                            StatusCode::BAD_REQUEST,
                            "0x80048d19",
                            "The request body must be a JSON object",
                        );
                    }
                    Err(msg) => return dv_error(StatusCode::BAD_REQUEST, "0x80048d19", &msg),
                };
                let (resp, written) = {
                    let mut st = self.state.lock().expect("dataverse state");
                    if index.is_some_and(|i| !st.entities[e.slot()].is_live(i)) {
                        index = None;
                    }
                    match (index, if_match.as_deref(), if_none_match.as_deref()) {
                        (None, Some(_), _) => return not_found(e, &id_text),
                        (Some(_), _, Some("*")) => {
                            return dv_error(
                                StatusCode::PRECONDITION_FAILED,
                                "0x80060882",
                                "A record with matching key values already exists.",
                            );
                        }
                        (Some(i), Some(tag), _) if tag != "*" => {
                            let current =
                                Self::etag(st.entities[e.slot()].modified_ms(i).unwrap_or(0));
                            if current != tag {
                                return dv_error(
                                    StatusCode::PRECONDITION_FAILED,
                                    "0x80060882",
                                    "The version of the existing record doesn't match the RowVersion property provided.",
                                );
                            }
                        }
                        _ => {}
                    }
                    let mut fields = match self.fields_from(&st, e, &input) {
                        Ok(f) => f,
                        Err(r) => return r,
                    };
                    if let Some((k, v)) = &alt {
                        fields.insert(k.clone(), json!(v));
                    }
                    if let Some(r) = self.key_clash(&mut st, e, &fields, index) {
                        return r;
                    }
                    let now = self.now();
                    match index {
                        Some(i) => {
                            st.entities[e.slot()].merge(i, &fields, now);
                            let mut r = if pref.representation {
                                let mut v = self
                                    .render(&st, e, i, None, pref.annotations)
                                    .unwrap_or(Value::Null);
                                v["@odata.context"] =
                                    json!(format!("{}/$metadata#{}/$entity", self.api(), e.set()));
                                json_response(StatusCode::OK, v)
                            } else {
                                StatusCode::NO_CONTENT.into_response()
                            };
                            set_header(
                                &mut r,
                                "OData-EntityId",
                                format!("{}/{}({})", self.api(), e.set(), id_of(&st, e, i)),
                            );
                            (
                                r,
                                Written {
                                    message: "Update",
                                    entity: e,
                                    index: i,
                                    attributes: fields,
                                },
                            )
                        }
                        None => {
                            // Upsert: PATCH to a missing row creates it, with the id in the URL.
                            let i = st.entities[e.slot()].insert(fields.clone(), now);
                            if let Target::ById(_, g) = &t {
                                let g = g
                                    .trim()
                                    .trim_start_matches('{')
                                    .trim_end_matches('}')
                                    .to_ascii_lowercase();
                                if !valid_guid(&g) {
                                    return dv_error(
                                        StatusCode::BAD_REQUEST,
                                        "0x80060888",
                                        &format!("'{g}' is not a valid GUID key"),
                                    );
                                }
                                st.custom_ids.insert((e, g.clone()), i);
                                st.custom_by_index.insert((e, i), g);
                            }
                            (
                                self.created_response(&st, e, i, headers, StatusCode::CREATED),
                                Written {
                                    message: "Create",
                                    entity: e,
                                    index: i,
                                    attributes: fields,
                                },
                            )
                        }
                    }
                };
                self.fire(vec![written]);
                resp
            }
            _ => dv_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                &format!("{method} is not allowed on a row"),
            ),
        }
    }

    /// CreateMultiple / UpdateMultiple / UpsertMultiple: all rows or none.
    fn bulk(&self, e: Entity, kind: BulkKind, body: &[u8]) -> Response {
        let create = kind == BulkKind::Create;
        let v = match parse_json_body(body) {
            Ok(v) => v,
            Err(msg) => return dv_error(StatusCode::BAD_REQUEST, "0x80048d19", &msg),
        };
        let Some(targets) = v.get("Targets").and_then(Value::as_array) else {
            return dv_error(StatusCode::BAD_REQUEST, "0x80048d19", "Targets is required");
        };
        if targets.is_empty() || targets.len() > self.limits.max_bulk_targets {
            return dv_error(
                StatusCode::BAD_REQUEST,
                "0x80048d19",
                &format!(
                    "Targets must hold between 1 and {} rows",
                    self.limits.max_bulk_targets
                ),
            );
        }
        let expected_type = format!("Microsoft.Dynamics.CRM.{}", e.logical());
        let (resp, written) = {
            let mut st = self.state.lock().expect("dataverse state");
            let mut prepared = Vec::new();
            for (n, t) in targets.iter().enumerate() {
                let Some(m) = t.as_object() else {
                    return dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80048d19",
                        &format!("Targets[{n}] is not an object"),
                    );
                };
                if m.get("@odata.type").and_then(Value::as_str) != Some(expected_type.as_str()) {
                    return dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80048d19",
                        &format!("Targets[{n}] must carry \"@odata.type\": \"{expected_type}\""),
                    );
                }
                let fields = match self.fields_from(&st, e, m) {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                let mut fields = fields;
                // Upserts name their row by `@odata.id` (id or alternate key), the key column or
                // the alternate key column.
                let mut chosen_id: Option<String> = None;
                let existing = match kind {
                    BulkKind::Upsert => {
                        let target = m
                            .get("@odata.id")
                            .and_then(Value::as_str)
                            .and_then(|r| parse_segment(r.rsplit('/').next().unwrap_or(r)));
                        match target {
                            Some(Target::ById(te, g)) if te == e => {
                                chosen_id = Some(g.to_ascii_lowercase());
                                index_of(&st, e, &g).filter(|i| st.entities[e.slot()].is_live(*i))
                            }
                            Some(Target::ByKey(te, k, v))
                                if te == e && e.alternate_key() == Some(k.as_str()) =>
                            {
                                fields.insert(k.clone(), json!(v));
                                st.entities[e.slot()].find(&k, &json!(v)).first().copied()
                            }
                            Some(_) => {
                                return dv_error(
                                    StatusCode::BAD_REQUEST,
                                    "0x80048d19",
                                    &format!(
                                        "Targets[{n}] @odata.id does not name a {} row by id or alternate key",
                                        e.logical()
                                    ),
                                );
                            }
                            None => match (
                                m.get(e.key()).and_then(Value::as_str),
                                e.alternate_key()
                                    .and_then(|k| fields.get(k).cloned().map(|v| (k, v))),
                            ) {
                                (Some(g), _) => {
                                    chosen_id = Some(g.to_ascii_lowercase());
                                    index_of(&st, e, g)
                                        .filter(|i| st.entities[e.slot()].is_live(*i))
                                }
                                (None, Some((k, v))) => {
                                    st.entities[e.slot()].find(k, &v).first().copied()
                                }
                                (None, None) => {
                                    return dv_error(
                                        StatusCode::BAD_REQUEST,
                                        "0x80048d19",
                                        &format!(
                                            "Targets[{n}] needs @odata.id, {} or an alternate key to upsert",
                                            e.key()
                                        ),
                                    );
                                }
                            },
                        }
                    }
                    _ => m.get(e.key()).and_then(Value::as_str).and_then(|g| {
                        index_of(&st, e, g).filter(|i| st.entities[e.slot()].is_live(*i))
                    }),
                };
                if kind == BulkKind::Update && existing.is_none() {
                    return not_found(
                        e,
                        m.get(e.key())
                            .and_then(Value::as_str)
                            .unwrap_or("<missing id>"),
                    );
                }
                if let Some(g) = chosen_id.as_deref().filter(|g| !valid_guid(g)) {
                    return dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80060888",
                        &format!("'{g}' is not a valid GUID key"),
                    );
                }
                if let Some(r) = self.key_clash(&mut st, e, &fields, existing) {
                    return r;
                }
                prepared.push((existing, fields, chosen_id));
            }
            let now = self.now();
            let mut written = Vec::new();
            let mut ids = Vec::new();
            for (existing, fields, chosen_id) in prepared {
                let (i, message) = match existing {
                    Some(i) if !create => {
                        st.entities[e.slot()].merge(i, &fields, now);
                        (i, "Update")
                    }
                    _ => {
                        let i = st.entities[e.slot()].insert(fields.clone(), now);
                        if let Some(g) = chosen_id.filter(|_| kind == BulkKind::Upsert) {
                            st.custom_ids.insert((e, g.clone()), i);
                            st.custom_by_index.insert((e, i), g);
                        }
                        (i, "Create")
                    }
                };
                ids.push(id_of(&st, e, i));
                written.push(Written {
                    message,
                    entity: e,
                    index: i,
                    attributes: fields,
                });
            }
            let resp = if create {
                json_response(
                    StatusCode::OK,
                    json!({"@odata.context": format!("{}/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse", self.api()), "Ids": ids}),
                )
            } else {
                StatusCode::NO_CONTENT.into_response()
            };
            (resp, written)
        };
        self.fire(written);
        resp
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BulkKind {
    Create,
    Update,
    Upsert,
}

// ---------------------------------------------------------------- $batch

/// One request inside a `$batch` body.
struct BatchOp {
    method: http::Method,
    url: String,
    headers: HeaderMap,
    body: Vec<u8>,
    content_id: Option<String>,
}

enum BatchPart {
    Single(BatchOp),
    Changeset(Vec<BatchOp>),
}

fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        p.trim()
            .strip_prefix("boundary=")
            .map(|b| b.trim_matches('"').to_string())
    })
}

/// Splits a multipart body into its parts' raw text (headers + blank line + content).
fn multipart(body: &str, boundary: &str) -> Vec<String> {
    let delim = format!("--{boundary}");
    body.split(&delim)
        .skip(1)
        .take_while(|p| !p.starts_with("--"))
        .map(|p| {
            p.trim_start_matches("\r\n")
                .trim_start_matches('\n')
                .to_string()
        })
        .collect()
}

/// `(headers, rest)` of a MIME part or an HTTP message.
fn split_head(text: &str) -> (Vec<(String, String)>, String) {
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((text, ""));
    let headers = head
        .lines()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (headers, rest.to_string())
}

fn parse_op(text: &str) -> Result<BatchOp, String> {
    let (part_headers, http_text) = split_head(text);
    let content_id = part_headers
        .iter()
        .find(|(k, _)| k == "content-id")
        .map(|(_, v)| v.clone());
    let http_text = http_text.trim_start();
    let (request_line, after) = http_text
        .split_once('\n')
        .ok_or("a batch part has no request line")?;
    let mut words = request_line.split_whitespace();
    let method: http::Method = words
        .next()
        .ok_or("empty request line")?
        .parse()
        .map_err(|_| "bad method in a batch part".to_string())?;
    let url = words
        .next()
        .ok_or("request line without a URL")?
        .to_string();
    let (hs, body) = split_head(after);
    let mut headers = HeaderMap::new();
    for (k, v) in hs {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.append(name, value);
        }
    }
    let body = body.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
    Ok(BatchOp {
        method,
        url,
        headers,
        body,
        content_id,
    })
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("")
}

impl Dataverse {
    /// `POST $batch`: multipart/mixed with plain requests and changesets; a failing changeset
    /// rolls back its earlier operations and answers with that failure alone.
    fn batch(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let Some(boundary) = header_str(headers, "content-type").and_then(boundary_of) else {
            return dv_error(
                StatusCode::BAD_REQUEST,
                "0x80060888",
                "$batch needs Content-Type: multipart/mixed;boundary=...",
            );
        };
        let text = String::from_utf8_lossy(body).into_owned();
        let mut parts = Vec::new();
        for raw in multipart(&text, &boundary) {
            let (h, rest) = split_head(&raw);
            let ct = h
                .iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if ct.starts_with("multipart/mixed") {
                let Some(cs) = boundary_of(&ct) else {
                    return dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80060888",
                        "a changeset needs a boundary",
                    );
                };
                match multipart(&rest, &cs)
                    .iter()
                    .map(|p| parse_op(p))
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(ops) => parts.push(BatchPart::Changeset(ops)),
                    Err(msg) => return dv_error(StatusCode::BAD_REQUEST, "0x80060888", &msg),
                }
            } else {
                match parse_op(&raw) {
                    Ok(op) => parts.push(BatchPart::Single(op)),
                    Err(msg) => return dv_error(StatusCode::BAD_REQUEST, "0x80060888", &msg),
                }
            }
        }
        let count: usize = parts
            .iter()
            .map(|p| match p {
                BatchPart::Single(_) => 1,
                BatchPart::Changeset(ops) => ops.len(),
            })
            .sum();
        if count > self.limits.max_bulk_targets {
            return dv_error(
                StatusCode::BAD_REQUEST,
                "0x80060888",
                &format!(
                    "The batch holds {count} requests; at most {} are allowed",
                    self.limits.max_bulk_targets
                ),
            );
        }
        let out_boundary = format!("batchresponse_{}", self.hub.tokens.random_hex(8));
        let mut out = String::new();
        // Without `Prefer: odata.continue-on-error` the batch stops at its first failure.
        let continue_on_error = headers.get_all("prefer").iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("odata.continue-on-error"))
        });
        for part in parts {
            out.push_str(&format!("--{out_boundary}\r\n"));
            let mut stop = false;
            match part {
                BatchPart::Single(op) => {
                    let (status, text) = self.run_op(op, &[]);
                    out.push_str(&format!("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{text}"));
                    stop = !status.is_success() && !continue_on_error;
                }
                BatchPart::Changeset(ops) => {
                    let snapshot = {
                        let st = self.state.lock().expect("dataverse state");
                        (
                            st.entities.clone(),
                            st.custom_ids.clone(),
                            st.custom_by_index.clone(),
                        )
                    };
                    let cs_boundary =
                        format!("changesetresponse_{}", self.hub.tokens.random_hex(8));
                    let mut answers = Vec::new();
                    let mut created: Vec<(String, String)> = Vec::new();
                    let mut failed = None;
                    for op in ops {
                        let id = op.content_id.clone();
                        let (status, text) = self.run_op(op, &created);
                        if !status.is_success() {
                            failed = Some(text);
                            break;
                        }
                        if let (Some(id), Some(loc)) = (
                            id.clone(),
                            text.lines().find_map(|l| {
                                l.strip_prefix("OData-EntityId: ").map(str::to_string)
                            }),
                        ) {
                            created.push((id, loc));
                        }
                        answers.push((id, text));
                    }
                    match failed {
                        Some(text) => {
                            let mut st = self.state.lock().expect("dataverse state");
                            (st.entities, st.custom_ids, st.custom_by_index) = snapshot;
                            out.push_str("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n");
                            out.push_str(&text);
                            stop = !continue_on_error;
                        }
                        None => {
                            out.push_str(&format!(
                                "Content-Type: multipart/mixed; boundary={cs_boundary}\r\n\r\n"
                            ));
                            for (id, text) in answers {
                                out.push_str(&format!("--{cs_boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"));
                                if let Some(id) = id {
                                    out.push_str(&format!("Content-ID: {id}\r\n"));
                                }
                                out.push_str("\r\n");
                                out.push_str(&text);
                            }
                            out.push_str(&format!("--{cs_boundary}--\r\n"));
                        }
                    }
                }
            }
            if stop {
                break;
            }
        }
        out.push_str(&format!("--{out_boundary}--\r\n"));
        let mut r = (StatusCode::OK, out).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={out_boundary}")) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    }

    /// Runs one inner request through the same code as a direct call; returns its status and
    /// its HTTP/1.1 text.
    fn run_op(&self, op: BatchOp, created: &[(String, String)]) -> (StatusCode, String) {
        // `$1/...` refers to the entity created by Content-ID 1 in the same changeset.
        let mut url = op.url.clone();
        if let Some(rest) = url.strip_prefix('$')
            && let Some((id, tail)) = rest.split_once('/').or(Some((rest, "")))
            && let Some((_, loc)) = created.iter().find(|(c, _)| c == id)
        {
            url = if tail.is_empty() {
                loc.clone()
            } else {
                format!("{loc}/{tail}")
            };
        }
        let path_q = url
            .split_once("/api/data/")
            .map(|(_, p)| p.to_string())
            .unwrap_or(url.clone());
        let (path, query) = match path_q.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_q, None),
        };
        let mut segs = path.splitn(3, '/');
        let _version = segs.next();
        let segment = decode(segs.next().unwrap_or(""));
        let action = segs.next().map(str::to_string);
        let resp = match (parse_segment(&segment), action) {
            (Some(Target::Set(e)), None) if op.method == http::Method::GET => {
                self.query(e, query.as_deref(), &op.headers)
            }
            (Some(Target::Set(e)), None) if op.method == http::Method::POST => {
                self.create(e, &op.body, &op.headers)
            }
            (Some(Target::Set(e)), Some(a)) if a.ends_with("CreateMultiple") => {
                self.bulk(e, BulkKind::Create, &op.body)
            }
            (Some(Target::Set(e)), Some(a)) if a.ends_with("UpdateMultiple") => {
                self.bulk(e, BulkKind::Update, &op.body)
            }
            (Some(Target::Set(e)), Some(a)) if a.ends_with("UpsertMultiple") => {
                self.bulk(e, BulkKind::Upsert, &op.body)
            }
            (Some(t @ (Target::ById(..) | Target::ByKey(..))), None) => self.single(
                t,
                op.method.clone(),
                query.as_deref(),
                &op.headers,
                &op.body,
            ),
            _ => dv_error(
                StatusCode::NOT_FOUND,
                "0x8006088a",
                &format!("Resource not found for the segment '{segment}'."),
            ),
        };
        let status = resp.status();
        let mut text = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), reason(status));
        for (k, v) in resp.headers() {
            if let Ok(v) = v.to_str() {
                let name = match k.as_str() {
                    "odata-entityid" => "OData-EntityId".to_string(),
                    "content-type" => "Content-Type".to_string(),
                    other => other.to_string(),
                };
                text.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        text.push_str("\r\n");
        let body = body_text(resp);
        if !body.is_empty() {
            text.push_str(&body);
            text.push_str("\r\n");
        }
        (status, text)
    }
}

/// The body of a response built in this module. They all carry complete in-memory bodies, so
/// one poll yields everything and the batch stays synchronous under the state lock discipline.
fn body_text(resp: Response) -> String {
    let fut = axum::body::to_bytes(resp.into_body(), usize::MAX);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------- webhooks

impl Dataverse {
    /// `DELETE serviceendpoints(<id>)` or `sdkmessageprocessingsteps(<id>)`. An endpoint that
    /// steps still use is refused: unregister the steps first, as registration tools do.
    fn unregister(&self, row: &str) -> Response {
        let Some((set, id)) = row.strip_suffix(')').and_then(|r| r.split_once('(')) else {
            return dv_error(
                StatusCode::NOT_FOUND,
                "0x8006088a",
                &format!("Resource not found for the segment '{row}'."),
            );
        };
        let id = id.trim_matches(['{', '}']).to_ascii_lowercase();
        let mut st = self.state.lock().expect("dataverse state");
        let removed = if set == "serviceendpoints" {
            if st.steps.values().any(|s| s.endpoint == id) {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    "The service endpoint has registered steps; delete its sdkmessageprocessingsteps first.",
                );
            }
            st.endpoints.remove(&id).is_some()
        } else {
            st.steps.remove(&id).is_some()
        };
        if removed {
            StatusCode::NO_CONTENT.into_response()
        } else {
            dv_error(
                StatusCode::NOT_FOUND,
                "0x80040217",
                &format!("{set} With Id = {id} Does Not Exist"),
            )
        }
    }

    fn registration(
        &self,
        set: &str,
        method: http::Method,
        q: Option<&str>,
        body: &[u8],
    ) -> Response {
        let mut st = self.state.lock().expect("dataverse state");
        let rows: Vec<Value> = match set {
            "sdkmessages" => MESSAGES.iter().enumerate().map(|(m, name)| json!({"sdkmessageid": message_guid(m), "name": name})).collect(),
            "sdkmessagefilters" => MESSAGES
                .iter()
                .enumerate()
                .flat_map(|(m, _)| Entity::ALL.into_iter().map(move |e| json!({"sdkmessagefilterid": filter_guid(m, e), "primaryobjecttypecode": e.logical(), "_sdkmessageid_value": message_guid(m)})))
                .collect(),
            "serviceendpoints" => st.endpoints.values().map(|s| json!({"serviceendpointid": s.id, "name": s.name, "url": s.url, "contract": 8, "authtype": s.authtype})).collect(),
            _ => st.steps.values().map(|s| json!({"sdkmessageprocessingstepid": s.id, "name": s.name, "stage": s.stage, "mode": s.mode, "filteringattributes": s.filtering.join(","), "_eventhandler_value": s.endpoint, "_sdkmessageid_value": message_guid(MESSAGES.iter().position(|m| *m == s.message).unwrap_or(0))})).collect(),
        };
        if method == http::Method::GET {
            let filter = match query_params(q).get("$filter").map(|f| odata::parse(f)) {
                None => None,
                Some(Ok(f)) => Some(f),
                Some(Err(msg)) => {
                    return dv_error(
                        StatusCode::BAD_REQUEST,
                        "0x80060888",
                        &format!("Syntax error in $filter: {msg}"),
                    );
                }
            };
            let value: Vec<Value> = rows
                .into_iter()
                .filter(|r| filter.as_ref().is_none_or(|f| odata::eval(f, r)))
                .collect();
            return json_response(
                StatusCode::OK,
                json!({"@odata.context": format!("{}/$metadata#{set}", self.api()), "value": value}),
            );
        }
        if method != http::Method::POST
            || !matches!(set, "serviceendpoints" | "sdkmessageprocessingsteps")
        {
            return dv_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "0x80060888",
                &format!("{method} is not supported on {set} in the sandbox"),
            );
        }
        let v = match parse_json_body(body) {
            Ok(v) => v,
            Err(msg) => return dv_error(StatusCode::BAD_REQUEST, "0x80048d19", &msg),
        };
        let bind_id = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit_once('('))
                .map(|(_, g)| g.trim_end_matches(')').to_string())
        };
        let id = if set == "serviceendpoints" {
            if v.get("contract").and_then(Value::as_i64) != Some(8) {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    "contract must be 8 (Webhook); other service endpoint contracts are not emulated",
                );
            }
            let Some(url) = v
                .get("url")
                .and_then(Value::as_str)
                .filter(|u| u.starts_with("http"))
            else {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    "url must be an absolute http(s) URL",
                );
            };
            let authtype = v.get("authtype").and_then(Value::as_i64).unwrap_or(5);
            if !matches!(authtype, 4..=6) {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    "authtype must be 4 (WebhookKey), 5 (HttpHeader) or 6 (HttpQueryString)",
                );
            }
            let id = self.new_guid(&mut st, 0x5e00_0001);
            st.endpoints.insert(
                id.clone(),
                ServiceEndpoint {
                    id: id.clone(),
                    name: v
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("webhook")
                        .into(),
                    url: url.into(),
                    authtype,
                    authvalue: v
                        .get("authvalue")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                },
            );
            id
        } else {
            let message = bind_id("sdkmessageid@odata.bind")
                .and_then(|g| (0..MESSAGES.len()).find(|m| message_guid(*m) == g));
            let filter = bind_id("sdkmessagefilterid@odata.bind").and_then(|g| {
                (0..MESSAGES.len())
                    .flat_map(|m| Entity::ALL.map(|e| (m, e)))
                    .find(|(m, e)| filter_guid(*m, *e) == g)
            });
            let endpoint = bind_id("eventhandler_serviceendpoint@odata.bind")
                .filter(|g| st.endpoints.contains_key(g));
            let (Some(m), Some((fm, entity)), Some(endpoint)) = (message, filter, endpoint) else {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    "a step needs sdkmessageid@odata.bind, sdkmessagefilterid@odata.bind (for the same message) and eventhandler_serviceendpoint@odata.bind to existing rows",
                );
            };
            if fm != m {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    "the message filter belongs to a different message",
                );
            }
            let id = self.new_guid(&mut st, 0x5e00_0002);
            st.steps.insert(
                id.clone(),
                Step {
                    id: id.clone(),
                    name: v
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("step")
                        .into(),
                    message: MESSAGES[m],
                    entity,
                    endpoint,
                    filtering: v
                        .get("filteringattributes")
                        .and_then(Value::as_str)
                        .map(|s| {
                            s.split(',')
                                .map(|x| x.trim().to_string())
                                .filter(|x| !x.is_empty())
                                .collect()
                        })
                        .unwrap_or_default(),
                    stage: v.get("stage").and_then(Value::as_i64).unwrap_or(40),
                    mode: v.get("mode").and_then(Value::as_i64).unwrap_or(1),
                },
            );
            id
        };
        let mut r = StatusCode::NO_CONTENT.into_response();
        set_header(
            &mut r,
            "OData-EntityId",
            format!("{}/{set}({id})", self.api()),
        );
        r
    }

    /// Posts `RemoteExecutionContext` to every step registered for these writes.
    fn fire(&self, writes: Vec<Written>) {
        let (steps, endpoints, ids) = {
            let st = self.state.lock().expect("dataverse state");
            let ids: Vec<String> = writes
                .iter()
                .map(|w| id_of(&st, w.entity, w.index))
                .collect();
            (
                st.steps.values().cloned().collect::<Vec<_>>(),
                st.endpoints.clone(),
                ids,
            )
        };
        if steps.is_empty() {
            return;
        }
        let now = self.now();
        for (w, id) in writes.into_iter().zip(ids) {
            for step in steps
                .iter()
                .filter(|s| s.message == w.message && s.entity == w.entity)
            {
                if w.message == "Update"
                    && !step.filtering.is_empty()
                    && !step.filtering.iter().any(|a| w.attributes.contains_key(a))
                {
                    continue;
                }
                let Some(ep) = endpoints.get(&step.endpoint) else {
                    continue;
                };
                let id = id.clone();
                let correlation = self.hub.tokens.random_hex(16);
                let corr = format!(
                    "{}-{}-4{}-8{}-{}",
                    &correlation[0..8],
                    &correlation[8..12],
                    &correlation[13..16],
                    &correlation[17..20],
                    &correlation[20..32]
                );
                let target = if w.message == "Delete" {
                    json!({"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": id, "KeyAttributes": [], "LogicalName": w.entity.logical(), "Name": null, "RowVersion": null})
                } else {
                    let attrs: Vec<Value> = w.attributes.iter().map(|(k, v)| json!({"key": k.trim_start_matches('_').trim_end_matches("_value"), "value": v})).collect();
                    json!({"__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts", "Attributes": attrs, "EntityState": null, "FormattedValues": [], "Id": id, "KeyAttributes": [], "LogicalName": w.entity.logical(), "RelatedEntities": [], "RowVersion": null})
                };
                let mut ctx = json!({
                    "BusinessUnitId": BU_GUID, "CorrelationId": corr, "Depth": 1, "InitiatingUserId": USER_GUID,
                    "InputParameters": [{"key": "Target", "value": target}], "IsExecutingOffline": false, "IsInTransaction": step.mode == 0,
                    "IsOfflinePlayback": false, "IsolationMode": 1, "MessageName": w.message, "Mode": step.mode,
                    "OperationCreatedOn": format!("/Date({now})/"), "OperationId": corr, "OrganizationId": ORG_GUID, "OrganizationName": "weftsandbox",
                    "OutputParameters": if w.message == "Create" { json!([{"key": "id", "value": id}]) } else { json!([]) },
                    "OwningExtension": {"Id": step.id, "KeyAttributes": [], "LogicalName": "sdkmessageprocessingstep", "Name": step.name, "RowVersion": null},
                    "ParentContext": null, "PostEntityImages": [], "PreEntityImages": [], "PrimaryEntityId": id, "PrimaryEntityName": w.entity.logical(),
                    "RequestId": corr, "SecondaryEntityName": "none", "SharedVariables": [], "Stage": step.stage, "UserId": USER_GUID,
                });
                let mut body = ctx.to_string().into_bytes();
                let mut oversized = false;
                if body.len() > MAX_WEBHOOK_BYTES {
                    // Dataverse drops the bulky parts and flags the request.
                    oversized = true;
                    ctx["InputParameters"] = json!([]);
                    ctx["ParentContext"] = Value::Null;
                    ctx["PreEntityImages"] = json!([]);
                    ctx["PostEntityImages"] = json!([]);
                    body = ctx.to_string().into_bytes();
                }
                let mut url = ep.url.clone();
                let mut headers = vec![
                    ("Content-Type".to_string(), "application/json".to_string()),
                    ("x-request-id".to_string(), corr.clone()),
                    (
                        "x-ms-dynamics-organization".to_string(),
                        "weft-sandbox.crm.dynamics.com".to_string(),
                    ),
                    (
                        "x-ms-dynamics-entity-name".to_string(),
                        w.entity.logical().to_string(),
                    ),
                    (
                        "x-ms-dynamics-request-name".to_string(),
                        w.message.to_lowercase(),
                    ),
                    ("x-ms-correlation-request-id".to_string(), corr.clone()),
                ];
                if oversized {
                    headers.push((
                        "x-ms-dynamics-msg-size-exceeded".to_string(),
                        "true".to_string(),
                    ));
                }
                let settings = parse_settings(&ep.authvalue);
                let sep = |u: &str| if u.contains('?') { '&' } else { '?' };
                match ep.authtype {
                    4 => url = format!("{url}{}code={}", sep(&url), encode(&ep.authvalue)),
                    5 => headers.extend(settings),
                    _ => {
                        for (k, v) in settings {
                            url = format!("{url}{}{}={}", sep(&url), encode(&k), encode(&v));
                        }
                    }
                }
                self.hub.outbox.send(
                    Arc::clone(&self.hub.clock),
                    Outgoing {
                        vendor: Vendor::Dataverse,
                        event: format!("{}.{}", w.entity.logical(), w.message),
                        url,
                        method: http::Method::POST,
                        max_attempts: self.hub.outbox.attempts(self.limits.webhook_attempts),
                        build: Box::new(move |_, _| (headers.clone(), body.clone())),
                        retry_on: retry_server_errors,
                    },
                );
            }
        }
    }
}

/// `<settings><setting name="k" value="v" /></settings>` → pairs.
fn parse_settings(xml: &str) -> Vec<(String, String)> {
    xml.split("<setting ")
        .skip(1)
        .filter_map(|s| {
            let name = s.split("name=\"").nth(1)?.split('"').next()?;
            let value = s.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------- emulator

impl Emulator for Dataverse {
    fn vendor(&self) -> Vendor {
        Vendor::Dataverse
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token_v2))
            .route("/{tenant}/oauth2/token", post(token_v1))
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(authorize_page).post(authorize_decision),
            )
            .route(
                "/api/data/{version}/{segment}",
                get(resource)
                    .post(resource)
                    .patch(resource)
                    .delete(resource),
            )
            .route(
                "/api/data/{version}/{segment}/{action}",
                get(resource_action).post(resource_action),
            )
            .fallback(|| async {
                dv_error(
                    StatusCode::NOT_FOUND,
                    "0x8006088a",
                    "Resource not found for the segment.",
                )
            })
            .with_state(self)
    }

    fn reset(&self, data: DemoData) {
        *self.state.lock().expect("dataverse state") = Self::fresh(Demo::from(data));
    }

    fn snapshot(&self) -> Value {
        let st = self.state.lock().expect("dataverse state");
        let tables: Map<String, Value> = Entity::ALL.iter().map(|e| (e.set().to_string(), json!({"records": st.entities[e.slot()].len(), "deleted": st.entities[e.slot()].tombstones().count()}))).collect();
        json!({
            "vendor": "dataverse", "seed": st.demo.seed, "tables": tables,
            "service_endpoints": st.endpoints.values().map(|e| json!({"id": e.id, "name": e.name, "url": e.url, "authtype": e.authtype})).collect::<Vec<_>>(),
            "steps": st.steps.values().map(|s| json!({"id": s.id, "name": s.name, "message": s.message, "entity": s.entity.logical()})).collect::<Vec<_>>(),
        })
    }

    fn record(&self, object: &str, id: &str) -> Option<Value> {
        let e = Entity::from_set(object)
            .or_else(|| Entity::ALL.into_iter().find(|e| e.logical() == object))?;
        let st = self.state.lock().expect("dataverse state");
        self.render(&st, e, index_of(&st, e, id)?, None, true)
    }

    fn throttled(&self) -> Response {
        self.protection(
            30,
            "0x80072322",
            &format!(
                "Number of requests exceeded the limit of {} over time window of {} seconds.",
                self.limits.requests_per_window,
                self.limits.window.as_secs()
            ),
        )
    }

    fn server_error(&self) -> Response {
        dv_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "0x80040216",
            "An unexpected error occurred.",
        )
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: None,
            api_token: None,
            username: USERNAME.into(),
            extra: [
                ("tenant_id".to_string(), TENANT.to_string()),
                (
                    "token_url".to_string(),
                    format!("{}/{TENANT}/oauth2/v2.0/token", self.base()),
                ),
                ("scope".to_string(), format!("{}/.default", self.base())),
                (
                    "service_root".to_string(),
                    format!("{}/api/data/v9.2/", self.base()),
                ),
                ("password".to_string(), PASSWORD.to_string()),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn base_url(&self) -> &OnceLock<String> {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip_and_cookies_carry_the_last_key() {
        let g = guid(Entity::Contact, 123_456);
        assert_eq!(g.len(), 36);
        assert_eq!(parse_guid(Entity::Contact, &g), Some(123_456));
        assert_eq!(parse_guid(Entity::Account, &g), None);
        let c = make_cookie(
            Entity::Account,
            3,
            Some(5),
            Some(9),
            Some((1_700_000_000_000, u64::MAX)),
        );
        let back = read_cookie(Entity::Account, &c).unwrap();
        assert_eq!(
            (back.page, back.last, back.snapshot),
            (3, Some(9), Some((1_700_000_000_000, u64::MAX)))
        );
        assert_eq!(read_delta(&delta_token((42, 7))), Some((42, 7)));
    }

    #[test]
    fn webhook_settings_xml_is_read() {
        assert_eq!(
            parse_settings(
                r#"<settings><setting name="x-key" value="abc" /><setting name="b" value="2" /></settings>"#
            ),
            [("x-key".into(), "abc".into()), ("b".into(), "2".into())]
        );
    }
}
