//! Zoho CRM (API v2..v8) and Zoho Accounts OAuth, on one port (crm-apis.md §1, §8).
//!
//! Faithful points a connector depends on: `Zoho-oauthtoken` auth, the token endpoint's
//! HTTP-200 `{"error":…}` answers, non-rotating refresh tokens limited to 10 access tokens per
//! 10 minutes, per-record `data[]` results with 201/200/207/400, the 2,000-record `page` limit
//! and bound, expiring `page_token`s, `If-Modified-Since` with 304, the deleted-records feed,
//! upsert duplicate-check order, credits and concurrency throttling, and watch channels that
//! call back with the channel token (Zoho does not sign callbacks).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{
    auth_token, header_str, json as json_response, parse_json_body, query_params, set_header,
    token_params, valid_email,
};
use crate::clock::{date, parse_iso, with_offset};
use crate::collection::{Collection, Dir, Fields};
use crate::config::{DemoData, SandboxConfig, ZohoLimits};
use crate::demo::{Demo, Kind};
use crate::oauth::{self, AuthorizeParams};
use crate::server::{Credentials, Emulator, Hub, RequestCtx};
use crate::tokens::{AccessToken, Grant, RefreshToken, TokenCheck};
use crate::vendor::Vendor;
use crate::webhook::{Outgoing, retry_any};

pub(crate) const CLIENT_ID: &str = "1000.WEFTSANDBOXZOHOCLIENT0000000";
pub(crate) const CLIENT_SECRET: &str = "weftsandboxzohoclientsecret0000000000000000";
pub(crate) const REFRESH_TOKEN: &str =
    "1000.weftsandboxzohorefresh00000000000000.demo0000000000000000000000";
const USER_EMAIL: &str = "demo@weft-sandbox.example";
const USER_NAME: &str = "Weft Demo";
const USER_ID: &str = "4876876000000225013";
/// The demo org's Zoho group id (`zgid` in `GET /crm/{version}/org`).
const ZGID: &str = "4876876";
const DEMO_SCOPE: &str =
    "ZohoCRM.modules.ALL,ZohoCRM.notifications.ALL,ZohoCRM.settings.ALL,ZohoCRM.users.ALL";
/// The demo org's time zone; Zoho writes every datetime with the org's offset.
const ORG_OFFSET_MIN: i64 = 0;
const ID_BASE: u64 = 4_876_876_000_000_000_000;
const ID_MODULE_STRIDE: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Module {
    Accounts,
    Contacts,
    Deals,
    Leads,
    /// Custom modules the sandbox org has, as the Zendesk integration's package installs them:
    /// Zendesk tickets (related to a lead, contact or account) and their comments. Empty in the
    /// demo data; the integration's flows fill them.
    Tickets,
    Comments,
}

impl Module {
    const ALL: [Module; 6] = [
        Module::Accounts,
        Module::Contacts,
        Module::Deals,
        Module::Leads,
        Module::Tickets,
        Module::Comments,
    ];

    fn api_name(self) -> &'static str {
        match self {
            Module::Accounts => "Accounts",
            Module::Contacts => "Contacts",
            Module::Deals => "Deals",
            Module::Leads => "Leads",
            Module::Tickets => "Zendesk_Tickets",
            Module::Comments => "Zendesk_Comments",
        }
    }

    fn custom(self) -> bool {
        matches!(self, Module::Tickets | Module::Comments)
    }

    fn parse(s: &str) -> Option<Module> {
        Module::ALL
            .into_iter()
            .find(|m| m.api_name().eq_ignore_ascii_case(s))
    }

    fn slot(self) -> usize {
        self as usize
    }

    fn mandatory(self) -> &'static [&'static str] {
        match self {
            Module::Accounts => &["Account_Name"],
            Module::Contacts | Module::Leads => &["Last_Name"],
            Module::Deals => &["Deal_Name", "Stage"],
            Module::Tickets | Module::Comments => &["Name"],
        }
    }

    /// The system-defined duplicate-check field used by upsert.
    fn system_unique(self) -> &'static str {
        match self {
            Module::Accounts => "Account_Name",
            Module::Contacts | Module::Leads => "Email",
            Module::Deals => "Deal_Name",
            // Unique custom fields ("do not allow duplicate values").
            Module::Tickets => "Zendesk_Ticket_Id",
            Module::Comments => "Zendesk_Comment_Id",
        }
    }

    fn display_field(self) -> &'static str {
        match self {
            Module::Accounts => "Account_Name",
            Module::Deals => "Deal_Name",
            Module::Contacts | Module::Leads => "Full_Name",
            Module::Tickets | Module::Comments => "Name",
        }
    }

    /// Lookup fields and the module they point to.
    fn lookups(self) -> &'static [(&'static str, Module)] {
        match self {
            Module::Contacts => &[("Account_Name", Module::Accounts)],
            Module::Deals => &[
                ("Account_Name", Module::Accounts),
                ("Contact_Name", Module::Contacts),
            ],
            Module::Tickets => &[
                ("Account", Module::Accounts),
                ("Contact", Module::Contacts),
                ("Lead", Module::Leads),
            ],
            Module::Comments => &[("Ticket", Module::Tickets)],
            _ => &[],
        }
    }
}

const LEAD_STATUSES: [&str; 4] = [
    "Not Contacted",
    "Attempted to Contact",
    "Contacted",
    "Qualified",
];
const STAGES: [&str; 6] = [
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

fn zoho_id(m: Module, index: u64) -> String {
    (ID_BASE + (m as u64 + 1) * ID_MODULE_STRIDE + index).to_string()
}

fn parse_id(m: Module, id: &str) -> Option<u64> {
    let n: u64 = id.trim().parse().ok()?;
    let rel = n.checked_sub(ID_BASE + (m as u64 + 1) * ID_MODULE_STRIDE)?;
    (rel < ID_MODULE_STRIDE).then_some(rel)
}

fn generated_fields(demo: &Demo, m: Module, i: u64) -> Fields {
    let v = match m {
        Module::Accounts => {
            let c = demo.company(i);
            json!({
                "Account_Name": c.name, "Website": format!("https://www.{}", c.domain), "Phone": c.phone,
                "Industry": c.industry, "Employees": c.employees, "Annual_Revenue": c.annual_revenue,
                "Billing_City": c.city, "Billing_State": c.state, "Billing_Country": c.country,
                "Account_Type": "Customer", "Description": null,
            })
        }
        Module::Contacts => {
            let p = demo.contact(i);
            let company = p.company.unwrap_or(0);
            json!({
                "First_Name": p.first, "Last_Name": p.last, "Email": p.email, "Phone": p.phone, "Title": p.title,
                "Account_Name": {"name": p.company_name, "id": zoho_id(Module::Accounts, company)},
                "Lead_Source": "Web Site",
            })
        }
        Module::Deals => {
            let d = demo.deal(i);
            let c = demo.company(d.company);
            let contact = d.contact.map(|j| {
                let p = demo.contact(j);
                json!({"name": format!("{} {}", p.first, p.last), "id": zoho_id(Module::Contacts, j)})
            });
            json!({
                "Deal_Name": d.name, "Amount": d.amount, "Stage": STAGES[d.stage],
                "Closing_Date": date(crate::demo::DEMO_EPOCH_MS + d.close_day * 86_400_000),
                "Account_Name": {"name": c.name, "id": zoho_id(Module::Accounts, d.company)},
                "Contact_Name": contact, "Pipeline": "Standard (Standard)",
            })
        }
        Module::Leads => {
            let p = demo.lead(i);
            json!({
                "First_Name": p.first, "Last_Name": p.last, "Email": p.email, "Phone": p.phone, "Title": p.title,
                "Company": p.company_name, "Lead_Status": LEAD_STATUSES[(i % 4) as usize],
                "Lead_Source": "Trade Show",
            })
        }
        // No demo records: the collections are empty.
        Module::Tickets | Module::Comments => json!({}),
    };
    v.as_object().cloned().unwrap_or_default()
}

fn build_collections(demo: Demo) -> Vec<Collection> {
    Module::ALL
        .into_iter()
        .map(|m| {
            let (kind, n) = match m {
                Module::Accounts => (Kind::Company, demo.size.companies),
                Module::Contacts => (Kind::Contact, demo.size.contacts),
                Module::Deals => (Kind::Deal, demo.size.deals),
                Module::Leads => (Kind::Lead, demo.size.leads),
                Module::Tickets | Module::Comments => (Kind::Ticket, 0),
            };
            Collection::new(
                n,
                move |i| generated_fields(&demo, m, i),
                move |i| demo.times(kind, i, n),
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
struct PageToken {
    client_id: String,
    user: String,
    /// The request parameters the token is bound to.
    binding: String,
    cursor: Cursor,
    served: u64,
    page: u64,
    expires_ms: i64,
}

#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// Index order: the last index served.
    AfterIndex(u64),
    /// Modification order: records served so far.
    Offset(u64),
}

#[derive(Debug, Clone)]
struct Channel {
    channel_id: String,
    events: Vec<String>,
    notify_url: String,
    token: Option<String>,
    expiry_ms: i64,
    return_affected_field_values: bool,
    notify_on_related_action: bool,
}

struct ZohoState {
    demo: Demo,
    modules: Vec<Collection>,
    page_tokens: HashMap<String, PageToken>,
    channels: BTreeMap<String, Channel>,
    /// Times of calls in the rolling 24-hour credit window.
    credits: VecDeque<i64>,
}

pub(crate) struct Zoho {
    hub: Arc<Hub>,
    base: OnceLock<String>,
    limits: ZohoLimits,
    access_ms: i64,
    code_ms: i64,
    state: Mutex<ZohoState>,
}

impl Zoho {
    pub(crate) fn new(hub: Arc<Hub>, config: &SandboxConfig) -> Arc<Self> {
        let demo = Demo::from(config.data);
        let z = Arc::new(Self {
            limits: config.zoho,
            access_ms: config.tokens.zoho_access.as_millis() as i64,
            code_ms: config.tokens.authorization_code.as_millis() as i64,
            state: Mutex::new(ZohoState {
                demo,
                modules: build_collections(demo),
                page_tokens: HashMap::new(),
                channels: BTreeMap::new(),
                credits: VecDeque::new(),
            }),
            hub,
            base: OnceLock::new(),
        });
        z.issue_demo_refresh();
        z
    }

    fn issue_demo_refresh(&self) {
        self.hub.tokens.put_refresh(
            REFRESH_TOKEN.to_string(),
            RefreshToken {
                grant: demo_grant(DEMO_SCOPE),
                expires_ms: i64::MAX,
                minted: VecDeque::new(),
            },
        );
    }

    fn base(&self) -> &str {
        self.base.get().map(String::as_str).unwrap_or("")
    }

    fn now(&self) -> i64 {
        self.hub.now_ms()
    }

    fn time(&self, ms: i64) -> String {
        with_offset(ms, ORG_OFFSET_MIN)
    }

    fn user_ref(&self) -> Value {
        json!({"name": USER_NAME, "id": USER_ID, "email": USER_EMAIL})
    }

    /// The full record as Zoho returns it.
    fn render(
        &self,
        st: &ZohoState,
        m: Module,
        index: u64,
        fields: Option<&[String]>,
    ) -> Option<Value> {
        let rec = st.modules[m.slot()].get(index)?;
        let mut out = serde_json::Map::new();
        out.insert("id".into(), json!(zoho_id(m, index)));
        let mut all = rec.fields.clone();
        if matches!(m, Module::Contacts | Module::Leads) {
            let full = [all.get("First_Name"), all.get("Last_Name")]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            all.insert("Full_Name".into(), json!(full));
        }
        all.insert("Owner".into(), self.user_ref());
        all.insert("Created_By".into(), self.user_ref());
        all.insert("Modified_By".into(), self.user_ref());
        all.insert("Created_Time".into(), json!(self.time(rec.created_ms)));
        all.insert("Modified_Time".into(), json!(self.time(rec.modified_ms)));
        match fields {
            Some(list) => {
                for f in list {
                    if f != "id" {
                        out.insert(f.clone(), all.get(f).cloned().unwrap_or(Value::Null));
                    }
                }
            }
            None => out.extend(all),
        }
        Some(Value::Object(out))
    }
}

fn demo_grant(scope: &str) -> Grant {
    Grant {
        vendor: Vendor::Zoho,
        client_id: CLIENT_ID.into(),
        user: USER_EMAIL.into(),
        scope: scope.into(),
    }
}

/// `{"code":…,"details":…,"message":…,"status":"error"}`, Zoho's request-level error.
fn zerr(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    json_response(
        status,
        json!({"code": code, "details": details, "message": message, "status": "error"}),
    )
}

fn invalid_module() -> Response {
    zerr(
        StatusCode::BAD_REQUEST,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        json!({"resource_path_index": 0}),
    )
}

fn invalid_url() -> Response {
    zerr(
        StatusCode::NOT_FOUND,
        "INVALID_URL_PATTERN",
        "Please check if the URL trying to access is a correct one",
        json!({}),
    )
}

fn valid_version(v: &str) -> bool {
    matches!(v, "v2" | "v2.1" | "v3" | "v4" | "v5" | "v6" | "v7" | "v8")
}

/// Scope needed for an operation on a module.
#[derive(Clone, Copy)]
enum Op {
    Read,
    Create,
    Update,
    Delete,
}

/// Which family of scopes a call needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Records,
    Notifications,
    /// Users and org details: `ZohoCRM.users.*`, `ZohoCRM.org.*` or `ZohoCRM.settings.*`.
    Settings,
}

fn scope_allows(scope: &str, module: Option<Module>, op: Op, area: Area) -> bool {
    let items: Vec<String> = scope
        .split([',', ' '])
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    match area {
        Area::Notifications => {
            return items
                .iter()
                .any(|s| s.starts_with("zohocrm.notifications."));
        }
        Area::Settings => {
            return items.iter().any(|s| {
                s.starts_with("zohocrm.users.")
                    || s.starts_with("zohocrm.org.")
                    || s.starts_with("zohocrm.settings.")
            });
        }
        Area::Records => {}
    }
    let op_name = match op {
        Op::Read => "read",
        Op::Create => "create",
        Op::Update => "update",
        Op::Delete => "delete",
    };
    let m = module
        .map(|m| m.api_name().to_ascii_lowercase())
        .unwrap_or_default();
    items.iter().any(|s| {
        s == "zohocrm.modules.all"
            || *s == format!("zohocrm.modules.{m}.all")
            || *s == format!("zohocrm.modules.{m}.{op_name}")
            || (matches!(op, Op::Create | Op::Update) && *s == format!("zohocrm.modules.{m}.write"))
    })
}

impl Zoho {
    /// Authenticates and applies credits and concurrency; `f` runs only if all pass.
    fn guarded(
        &self,
        headers: &HeaderMap,
        ctx: &RequestCtx,
        module: Option<Module>,
        op: Op,
        area: Area,
        f: impl FnOnce(&Grant) -> Response,
    ) -> Response {
        let Some(token) = auth_token(headers, "Zoho-oauthtoken") else {
            return if header_str(headers, "authorization").is_some() {
                zerr(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_TOKEN",
                    "invalid oauth token",
                    json!({}),
                )
            } else {
                zerr(
                    StatusCode::UNAUTHORIZED,
                    "AUTHENTICATION_FAILURE",
                    "Authentication failed",
                    json!({}),
                )
            };
        };
        let grant = match self.hub.tokens.check(Vendor::Zoho, token, self.now()) {
            TokenCheck::Valid(AccessToken { grant, .. }) if !ctx.force_expired => grant,
            // Zoho answers an expired token exactly like an unknown one.
            _ => {
                return zerr(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_TOKEN",
                    "invalid oauth token",
                    json!({}),
                );
            }
        };
        if !scope_allows(&grant.scope, module, op, area) {
            return zerr(
                StatusCode::UNAUTHORIZED,
                "OAUTH_SCOPE_MISMATCH",
                "invalid oauth scope to access this URL",
                json!({}),
            );
        }
        if ctx.in_flight > self.limits.concurrency {
            return self.too_many();
        }
        let remaining = {
            let mut st = self.state.lock().expect("zoho state");
            let now = self.now();
            while st.credits.front().is_some_and(|t| *t <= now - 86_400_000) {
                st.credits.pop_front();
            }
            if st.credits.len() as u64 >= self.limits.daily_credits {
                drop(st);
                return self.too_many();
            }
            st.credits.push_back(now);
            self.limits.daily_credits - st.credits.len() as u64
        };
        let mut resp = f(&grant);
        // Zoho only starts reporting remaining credits once half are used.
        if remaining * 2 < self.limits.daily_credits {
            set_header(&mut resp, "X-API-CREDITS-REMAINING", remaining);
        }
        resp
    }

    fn too_many(&self) -> Response {
        zerr(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "Number of API requests for the 24 hour period is exceeded or the concurrency limit of the user for the app is exceeded",
            json!({}),
        )
    }
}

// ---------------------------------------------------------------- OAuth

async fn authorize_page(RawQuery(q): RawQuery) -> Response {
    let p: AuthorizeParams =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    oauth::consent_page(Vendor::Zoho, "/oauth/v2/auth/approve", CLIENT_ID, &p)
}

async fn authorize_decision(
    State(z): State<Arc<Zoho>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let mut p: AuthorizeParams = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if p.client_id.is_empty() {
        p = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    }
    let base = z.base().to_string();
    let consent = oauth::Consent {
        vendor: Vendor::Zoho,
        known_client: CLIENT_ID,
        user: USER_EMAIL,
        code_lifetime_ms: z.code_ms,
        code_prefix: "1000.",
    };
    oauth::decide(
        &consent,
        &z.hub.tokens,
        z.now(),
        &p,
        &[("location", "us".into()), ("accounts-server", base)],
    )
}

/// Zoho Accounts answers most token errors with HTTP 200 and `{"error": "..."}`.
fn token_error(code: &str) -> Response {
    json_response(StatusCode::OK, json!({"error": code}))
}

async fn token(
    State(z): State<Arc<Zoho>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = token_params(q.as_deref(), &headers, &body);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != CLIENT_ID {
        return token_error("invalid_client");
    }
    if get("client_secret") != CLIENT_SECRET {
        return token_error("invalid_client_secret");
    }
    let now = z.now();
    match get("grant_type") {
        "authorization_code" => {
            let Some(code) = z.hub.tokens.take_code(get("code")) else {
                return token_error("invalid_code");
            };
            if code.grant.vendor != Vendor::Zoho
                || code.expires_ms <= now
                || code.grant.client_id != CLIENT_ID
            {
                return token_error("invalid_code");
            }
            if code.redirect_uri != get("redirect_uri") {
                return token_error("invalid_redirect_uri");
            }
            let refresh = code.offline.then(|| {
                let r = format!(
                    "1000.{}.{}",
                    z.hub.tokens.random_hex(16),
                    z.hub.tokens.random_hex(16)
                );
                z.hub.tokens.put_refresh(
                    r.clone(),
                    RefreshToken {
                        grant: code.grant.clone(),
                        expires_ms: i64::MAX,
                        minted: VecDeque::new(),
                    },
                );
                r
            });
            let access = z.mint(code.grant.clone(), refresh.clone(), now);
            let mut body = json!({
                "access_token": access, "scope": code.grant.scope, "api_domain": z.base(),
                "token_type": "Bearer", "expires_in": z.access_ms / 1_000,
            });
            if let Some(r) = refresh {
                body["refresh_token"] = json!(r);
            }
            json_response(StatusCode::OK, body)
        }
        "refresh_token" => {
            let rt = get("refresh_token");
            let Some(stored) = z
                .hub
                .tokens
                .refresh(rt)
                .filter(|r| r.grant.vendor == Vendor::Zoho)
            else {
                return token_error("invalid_code");
            };
            let window = z.limits.token_window.as_millis() as i64;
            if z.hub.tokens.minted_in_window(rt, now, window) >= z.limits.tokens_per_window as usize
            {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({
                        "error_description": "You have made too many requests continuously. Please try again after some time.",
                        "error": "Access Denied", "status": "failure",
                    }),
                );
            }
            z.hub.tokens.note_mint(rt, now, window);
            let access = z.mint(stored.grant.clone(), Some(rt.to_string()), now);
            // No new refresh token: Zoho refresh tokens do not rotate.
            json_response(
                StatusCode::OK,
                json!({
                    "access_token": access, "scope": stored.grant.scope, "api_domain": z.base(),
                    "token_type": "Bearer", "expires_in": z.access_ms / 1_000,
                }),
            )
        }
        "" => token_error("invalid_request"),
        _ => token_error("unsupported_grant_type"),
    }
}

async fn revoke(
    State(z): State<Arc<Zoho>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = token_params(q.as_deref(), &headers, &body);
    let t = p.get("token").map(String::as_str).unwrap_or("");
    if z.hub.tokens.refresh(t).is_some() {
        z.hub.tokens.revoke_refresh(t);
    } else {
        z.hub.tokens.revoke_access(t);
    }
    json_response(StatusCode::OK, json!({"status": "success"}))
}

impl Zoho {
    fn mint(&self, grant: Grant, refresh: Option<String>, now: i64) -> String {
        let token = format!(
            "1000.{}.{}",
            self.hub.tokens.random_hex(16),
            self.hub.tokens.random_hex(16)
        );
        self.hub.tokens.put_access(
            token.clone(),
            AccessToken {
                grant,
                expires_ms: now + self.access_ms,
                refresh,
            },
        );
        token
    }
}

// ---------------------------------------------------------------- records: read

struct ListQuery {
    fields: Option<Vec<String>>,
    per_page: u64,
    page: Option<u64>,
    page_token: Option<String>,
    sort_by: String,
    sort_order: String,
    modified_since: Option<i64>,
}

impl ListQuery {
    /// What a page token is bound to: every parameter except the paging ones.
    fn binding(&self, m: Module) -> String {
        let mut fields = self.fields.clone().unwrap_or_default();
        fields.sort();
        format!(
            "{}|{}|{}|{}|{}|{:?}",
            m.api_name(),
            fields.join(","),
            self.per_page,
            self.sort_by,
            self.sort_order,
            self.modified_since
        )
    }
}

async fn list(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Read, Area::Records, |grant| {
        z.list_records(grant, &version, m, q.as_deref(), &headers)
    })
}

impl Zoho {
    fn list_records(
        &self,
        grant: &Grant,
        version: &str,
        m: Module,
        q: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        let p = query_params(q);
        let fields: Option<Vec<String>> = p.get("fields").map(|f| {
            f.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        let fields_required = !matches!(version, "v2" | "v2.1");
        if fields_required && fields.as_ref().is_none_or(Vec::is_empty) {
            return zerr(
                StatusCode::BAD_REQUEST,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({"param_name": "fields"}),
            );
        }
        if let Some(f) = &fields
            && f.len() > self.limits.max_fields
        {
            return zerr(
                StatusCode::BAD_REQUEST,
                "LIMIT_EXCEEDED",
                &format!(
                    "Maximum of {} fields can be given in fields param",
                    self.limits.max_fields
                ),
                json!({"param_name": "fields", "limit": self.limits.max_fields}),
            );
        }
        if p.contains_key("page") && p.contains_key("page_token") {
            return zerr(
                StatusCode::BAD_REQUEST,
                "AMBIGUITY_DURING_PROCESSING",
                "page and page_token cannot be given together",
                json!({"ambiguity_due_to": ["page", "page_token"]}),
            );
        }
        let num = |k: &str, default: u64| -> Result<u64, Response> {
            match p.get(k) {
                None => Ok(default),
                Some(s) => s.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    zerr(
                        StatusCode::BAD_REQUEST,
                        "INVALID_DATA",
                        "invalid data",
                        json!({"param_name": k, "expected_data_type": "integer"}),
                    )
                }),
            }
        };
        let per_page = match num("per_page", self.limits.max_per_page) {
            Ok(n) => n.min(self.limits.max_per_page),
            Err(r) => return r,
        };
        let page = match p.get("page").map(|_| num("page", 1)).transpose() {
            Ok(x) => x,
            Err(r) => return r,
        };
        let sort_by = p.get("sort_by").cloned().unwrap_or_else(|| "id".into());
        if !matches!(sort_by.as_str(), "id" | "Created_Time" | "Modified_Time") {
            return zerr(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "sort_by", "supported_values": ["id", "Created_Time", "Modified_Time"]}),
            );
        }
        let sort_order = p
            .get("sort_order")
            .cloned()
            .unwrap_or_else(|| "desc".into());
        if !matches!(sort_order.as_str(), "asc" | "desc") {
            return zerr(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "sort_order", "supported_values": ["asc", "desc"]}),
            );
        }
        let modified_since = match header_str(headers, "if-modified-since") {
            None => None,
            Some(s) => match parse_iso(s) {
                Some(t) => Some(t),
                None => {
                    return zerr(
                        StatusCode::BAD_REQUEST,
                        "INVALID_DATA",
                        "invalid data",
                        json!({"header_name": "If-Modified-Since", "expected_data_type": "datetime"}),
                    );
                }
            },
        };
        let query = ListQuery {
            fields,
            per_page,
            page,
            page_token: p.get("page_token").cloned(),
            sort_by,
            sort_order,
            modified_since,
        };
        let now = self.now();
        let mut st = self.state.lock().expect("zoho state");
        // Where this page starts, and how many records came before it.
        let (start, served_before, page_no) = match &query.page_token {
            Some(t) => {
                let Some(tok) = st.page_tokens.get(t).cloned() else {
                    return zerr(
                        StatusCode::BAD_REQUEST,
                        "INVALID_DATA",
                        "invalid data",
                        json!({"param_name": "page_token"}),
                    );
                };
                if tok.user != grant.user || tok.client_id != grant.client_id {
                    return zerr(
                        StatusCode::BAD_REQUEST,
                        "INVALID_DATA",
                        "invalid data",
                        json!({"param_name": "page_token"}),
                    );
                }
                if tok.expires_ms <= now {
                    return zerr(
                        StatusCode::BAD_REQUEST,
                        "EXPIRED_VALUE",
                        "the given page token has expired",
                        json!({"param_name": "page_token"}),
                    );
                }
                if tok.binding != query.binding(m) {
                    return zerr(
                        StatusCode::BAD_REQUEST,
                        "TOKEN_BOUND_DATA_MISMATCH",
                        "the parameters given do not match the ones the page token was generated for",
                        json!({"param_name": "page_token"}),
                    );
                }
                if tok.served >= self.limits.page_token_records {
                    return zerr(
                        StatusCode::BAD_REQUEST,
                        "PAGINATION_LIMIT_EXCEEDED",
                        &format!(
                            "cannot fetch more than {} records",
                            self.limits.page_token_records
                        ),
                        json!({"limit": self.limits.page_token_records}),
                    );
                }
                (Some(tok.cursor), tok.served, tok.page)
            }
            None => {
                let page = query.page.unwrap_or(1);
                let offset = (page - 1) * per_page;
                if offset >= self.limits.discrete_page_records {
                    return zerr(
                        StatusCode::BAD_REQUEST,
                        "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                        &format!(
                            "cannot fetch more than {} records using page and per_page; use page_token",
                            self.limits.discrete_page_records
                        ),
                        json!({"limit": self.limits.discrete_page_records}),
                    );
                }
                (
                    if offset == 0 {
                        None
                    } else {
                        Some(Cursor::Offset(offset))
                    },
                    offset,
                    page,
                )
            }
        };
        let cap = match &query.page_token {
            Some(_) => self.limits.page_token_records - served_before,
            None => self.limits.discrete_page_records - served_before,
        };
        let take = per_page.min(cap);
        let (indices, more, next_cursor) = page_indices(&st.modules[m.slot()], &query, start, take);
        if indices.is_empty() {
            drop(st);
            return if modified_since.is_some() {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                StatusCode::NO_CONTENT.into_response()
            };
        }
        let data: Vec<Value> = indices
            .iter()
            .filter_map(|i| self.render(&st, m, *i, query.fields.as_deref()))
            .collect();
        let count = data.len() as u64;
        let next_token = more.then(|| {
            let t = format!("{}{}", self.hub.tokens.random_hex(12), count);
            st.page_tokens.retain(|_, v| v.expires_ms > now);
            st.page_tokens.insert(
                t.clone(),
                PageToken {
                    client_id: grant.client_id.clone(),
                    user: grant.user.clone(),
                    binding: query.binding(m),
                    cursor: next_cursor,
                    served: served_before + count,
                    page: page_no + 1,
                    expires_ms: now + self.limits.page_token_lifetime.as_millis() as i64,
                },
            );
            t
        });
        let expiry = next_token
            .as_ref()
            .map(|_| self.time(now + self.limits.page_token_lifetime.as_millis() as i64));
        json_response(
            StatusCode::OK,
            json!({
                "data": data,
                "info": {
                    "call": false, "per_page": per_page, "next_page_token": next_token, "count": count,
                    "sort_by": query.sort_by, "page": page_no, "previous_page_token": null,
                    "page_token_expiry": expiry, "sort_order": query.sort_order, "email": false, "more_records": more,
                },
            }),
        )
    }
}

/// The indices of one page, whether more follow, and where the next page starts.
fn page_indices(
    c: &Collection,
    q: &ListQuery,
    start: Option<Cursor>,
    take: u64,
) -> (Vec<u64>, bool, Cursor) {
    let dir = if q.sort_order == "asc" {
        Dir::Asc
    } else {
        Dir::Desc
    };
    if q.sort_by == "Modified_Time" {
        // Modification order is not index order once records are written: materialise keys
        // (cheap: no record is generated) and page by offset.
        let iter: Box<dyn Iterator<Item = u64>> = match q.modified_since {
            Some(t) => Box::new(c.scan_modified_after(Dir::Asc, None, t)),
            None => Box::new(c.scan(Dir::Asc, None)),
        };
        let mut keys: Vec<(i64, u64)> = iter.map(|i| (c.modified_ms(i).unwrap_or(0), i)).collect();
        keys.sort_unstable();
        if dir == Dir::Desc {
            keys.reverse();
        }
        let offset = match start {
            Some(Cursor::Offset(o)) => o,
            _ => 0,
        } as usize;
        let page: Vec<u64> = keys
            .iter()
            .skip(offset)
            .take(take as usize)
            .map(|k| k.1)
            .collect();
        let more = keys.len() > offset + page.len();
        return (
            page.clone(),
            more,
            Cursor::Offset((offset + page.len()) as u64),
        );
    }
    let (after, skip) = match start {
        Some(Cursor::AfterIndex(i)) => (Some(i), 0),
        Some(Cursor::Offset(o)) => (None, o),
        None => (None, 0),
    };
    let iter: Box<dyn Iterator<Item = u64>> = match q.modified_since {
        Some(t) => Box::new(c.scan_modified_after(dir, after, t)),
        None => Box::new(c.scan(dir, after)),
    };
    let mut iter = iter.skip(skip as usize);
    let page: Vec<u64> = iter.by_ref().take(take as usize).collect();
    let more = iter.next().is_some();
    let next = page
        .last()
        .map(|i| Cursor::AfterIndex(*i))
        .unwrap_or(Cursor::Offset(skip));
    (page, more, next)
}

async fn get_one(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Read, Area::Records, |_| {
        let st = z.state.lock().expect("zoho state");
        match parse_id(m, &id).and_then(|i| z.render(&st, m, i, None)) {
            Some(r) => json_response(StatusCode::OK, json!({"data": [r]})),
            None => StatusCode::NO_CONTENT.into_response(),
        }
    })
}

async fn deleted(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Read, Area::Records, |_| {
        let p = query_params(q.as_deref());
        let kind = p.get("type").cloned().unwrap_or_else(|| "all".into());
        if !matches!(kind.as_str(), "all" | "recycle" | "permanent") {
            return zerr(StatusCode::BAD_REQUEST, "INVALID_DATA", "invalid data", json!({"param_name": "type", "supported_values": ["all", "recycle", "permanent"]}));
        }
        let per_page = p.get("per_page").and_then(|s| s.parse::<u64>().ok()).unwrap_or(200).clamp(1, 200);
        let page = p.get("page").and_then(|s| s.parse::<u64>().ok()).unwrap_or(1).max(1);
        let since = header_str(&headers, "if-modified-since").and_then(parse_iso);
        let st = z.state.lock().expect("zoho state");
        // Deleted records sit in the recycle bin; nothing has been purged permanently yet.
        let mut rows: Vec<(i64, u64, Value)> = if kind == "permanent" {
            Vec::new()
        } else {
            st.modules[m.slot()]
                .tombstones()
                .filter(|(_, t)| since.is_none_or(|s| t.deleted_ms > s))
                .map(|(i, t)| {
                    let name = t.last.fields.get(m.display_field()).cloned().unwrap_or_else(|| {
                        json!(format!(
                            "{} {}",
                            t.last.fields.get("First_Name").and_then(Value::as_str).unwrap_or(""),
                            t.last.fields.get("Last_Name").and_then(Value::as_str).unwrap_or("")
                        )
                        .trim()
                        .to_string())
                    });
                    (t.deleted_ms, i, json!({
                        "deleted_by": {"name": USER_NAME, "id": USER_ID}, "id": zoho_id(m, i), "display_name": name,
                        "type": "recycle", "created_by": {"name": USER_NAME, "id": USER_ID}, "deleted_time": z.time(t.deleted_ms),
                    }))
                })
                .collect()
        };
        rows.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
        let total = rows.len() as u64;
        let data: Vec<Value> = rows.into_iter().skip(((page - 1) * per_page) as usize).take(per_page as usize).map(|r| r.2).collect();
        if data.is_empty() {
            return if since.is_some() { StatusCode::NOT_MODIFIED.into_response() } else { StatusCode::NO_CONTENT.into_response() };
        }
        let count = data.len() as u64;
        json_response(
            StatusCode::OK,
            json!({"data": data, "info": {"per_page": per_page, "count": count, "page": page, "more_records": page * per_page < total}}),
        )
    })
}

// ---------------------------------------------------------------- search

#[derive(Debug, Clone)]
enum Criteria {
    Cond {
        field: String,
        op: String,
        value: String,
    },
    And(Vec<Criteria>),
    Or(Vec<Criteria>),
}

/// Parses `(Field:op:value)` groups joined by `and`/`or`, with `\(`, `\)` and `\,` escapes.
fn parse_criteria(s: &str) -> Option<Criteria> {
    let chars: Vec<char> = s.trim().chars().collect();
    let (c, end) = parse_group(&chars, 0)?;
    (end == chars.len()).then_some(c)
}

fn parse_group(c: &[char], pos: usize) -> Option<(Criteria, usize)> {
    if c.get(pos) != Some(&'(') {
        return None;
    }
    if c.get(pos + 1) == Some(&'(') {
        let mut parts = Vec::new();
        let mut joiner: Option<String> = None;
        let mut p = pos + 1;
        loop {
            let (g, next) = parse_group(c, p)?;
            parts.push(g);
            p = next;
            while c.get(p) == Some(&' ') {
                p += 1;
            }
            if c.get(p) == Some(&')') {
                let node = match joiner.as_deref() {
                    Some("or") => Criteria::Or(parts),
                    _ => Criteria::And(parts),
                };
                return Some((node, p + 1));
            }
            let word: String = c[p..]
                .iter()
                .take_while(|ch| ch.is_ascii_alphabetic())
                .collect();
            let w = word.to_ascii_lowercase();
            if w != "and" && w != "or" {
                return None;
            }
            if joiner.as_ref().is_some_and(|j| *j != w) {
                return None;
            }
            joiner = Some(w);
            p += word.len();
            while c.get(p) == Some(&' ') {
                p += 1;
            }
        }
    }
    let mut p = pos + 1;
    let mut text = String::new();
    while p < c.len() {
        match c[p] {
            '\\' if p + 1 < c.len() => {
                text.push(c[p + 1]);
                p += 2;
            }
            ')' => break,
            ch => {
                text.push(ch);
                p += 1;
            }
        }
    }
    if c.get(p) != Some(&')') {
        return None;
    }
    let mut it = text.splitn(3, ':');
    let field = it.next()?.trim().to_string();
    let op = it.next()?.trim().to_ascii_lowercase();
    let value = it.next()?.trim().to_string();
    if !matches!(op.as_str(), "equals" | "starts_with" | "not_equal" | "in") {
        return None;
    }
    Some((Criteria::Cond { field, op, value }, p + 1))
}

fn field_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn matches(c: &Criteria, rec: &Value) -> bool {
    match c {
        Criteria::And(v) => v.iter().all(|x| matches(x, rec)),
        Criteria::Or(v) => v.iter().any(|x| matches(x, rec)),
        Criteria::Cond { field, op, value } => {
            let actual = if field == "id" {
                field_text(rec.get("id"))
            } else {
                field_text(rec.get(field))
            };
            let (a, v) = (actual.to_lowercase(), value.to_lowercase());
            match op.as_str() {
                "equals" => a == v,
                "not_equal" => a != v,
                "starts_with" => a.starts_with(&v),
                "in" => v.split(',').any(|x| x.trim() == a),
                _ => false,
            }
        }
    }
}

async fn search(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Read, Area::Records, |_| {
        let p = query_params(q.as_deref());
        let criteria = match search_criteria(&p) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return zerr(
                    StatusCode::BAD_REQUEST,
                    "REQUIRED_PARAM_MISSING",
                    "One of the expected parameter is missing",
                    json!({"param_name": "criteria/email/phone/word"}),
                );
            }
            Err(r) => return r,
        };
        let per_page = p.get("per_page").and_then(|s| s.parse::<u64>().ok()).unwrap_or(200).clamp(1, 200);
        let page = p.get("page").and_then(|s| s.parse::<u64>().ok()).unwrap_or(1).max(1);
        if (page - 1) * per_page >= 2_000 {
            return zerr(StatusCode::BAD_REQUEST, "LIMIT_REACHED", "search results are limited to 2000 records", json!({"limit": 2000}));
        }
        let mut st = z.state.lock().expect("zoho state");
        let wanted = (page * per_page + 1).min(2_001) as usize;
        let hits = z.matching(&mut st, m, &criteria, wanted);
        let start = ((page - 1) * per_page) as usize;
        let data: Vec<Value> = hits.iter().skip(start).take(per_page as usize).filter_map(|i| z.render(&st, m, *i, None)).collect();
        if data.is_empty() {
            return StatusCode::NO_CONTENT.into_response();
        }
        let count = data.len();
        json_response(
            StatusCode::OK,
            json!({"data": data, "info": {"per_page": per_page, "count": count, "page": page, "more_records": hits.len() > start + count}}),
        )
    })
}

/// The one search condition a request carries: `criteria`, else `email`, else `phone`, else
/// `word` (Zoho's documented order of preference); `None` when it carries none.
fn search_criteria(p: &HashMap<String, String>) -> Result<Option<Criteria>, Response> {
    if let Some(c) = p.get("criteria") {
        return match parse_criteria(c) {
            Some(c) => Ok(Some(c)),
            None => Err(zerr(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY",
                "invalid query formed",
                json!({"reason": "criteria must look like (Field:equals:value) or ((A:equals:x)and(B:starts_with:y))"}),
            )),
        };
    }
    let cond = |field: &str, op: &str, value: &String| Criteria::Cond {
        field: field.into(),
        op: op.into(),
        value: value.clone(),
    };
    Ok(p.get("email")
        .map(|e| cond("Email", "equals", e))
        .or_else(|| p.get("phone").map(|ph| cond("Phone", "equals", ph)))
        .or_else(|| p.get("word").map(|w| cond("*", "word", w))))
}

impl Zoho {
    /// Indexes of the records matching `criteria`, newest first, at most `limit` of them.
    fn matching(
        &self,
        st: &mut ZohoState,
        m: Module,
        criteria: &Criteria,
        limit: usize,
    ) -> Vec<u64> {
        // Equality on one field uses the field index; anything else scans.
        if let Criteria::Cond { field, op, value } = criteria
            && op == "equals"
            && field != "id"
        {
            let mut found = st.modules[m.slot()].find(field, &json!(value));
            found.sort_unstable_by(|a, b| b.cmp(a));
            found.truncate(limit);
            return found;
        }
        let mut hits = Vec::new();
        let c = &st.modules[m.slot()];
        for i in c.scan(Dir::Desc, None) {
            let Some(rec) = self.render(st, m, i, None) else {
                continue;
            };
            let ok = match criteria {
                Criteria::Cond { op, value, .. } if op == "word" => {
                    let w = value.to_lowercase();
                    rec.as_object().is_some_and(|o| {
                        o.values()
                            .any(|v| v.as_str().is_some_and(|s| s.to_lowercase().contains(&w)))
                    })
                }
                other => matches(other, &rec),
            };
            if ok {
                hits.push(i);
                if hits.len() >= limit {
                    break;
                }
            }
        }
        hits
    }
}

/// `GET /crm/{version}/{module}/actions/count`: `{"count": N}` for the whole module, or for
/// the records a `criteria`, `email`, `phone` or `word` parameter selects (documented: "Get
/// Record Count", API v2.1 and later; the parameters are the search API's). `cvid` (a custom
/// view) is accepted and ignored: the sandbox has only the "all records" views. Version 2
/// predates the endpoint and answers INVALID_URL_PATTERN (inferred).
async fn record_count(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) || version == "v2" {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Read, Area::Records, |_| {
        let p = query_params(q.as_deref());
        let criteria = match search_criteria(&p) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let mut st = z.state.lock().expect("zoho state");
        let count = match criteria {
            None => st.modules[m.slot()].len(),
            Some(c) => z.matching(&mut st, m, &c, usize::MAX).len() as u64,
        };
        json_response(StatusCode::OK, json!({"count": count}))
    })
}

// ---------------------------------------------------------------- users and org

async fn users(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(version): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    z.guarded_users(&headers, &ctx, || {
        let kind = query_params(q.as_deref()).get("type").cloned().unwrap_or_else(|| "AllUsers".into());
        if !matches!(kind.as_str(), "AllUsers" | "ActiveUsers" | "CurrentUser" | "AdminUsers" | "ActiveConfirmedUsers") {
            return zerr(StatusCode::BAD_REQUEST, "INVALID_DATA", "invalid data", json!({"param_name": "type"}));
        }
        json_response(
            StatusCode::OK,
            json!({
                "users": [{"id": USER_ID, "full_name": USER_NAME, "first_name": "Weft", "last_name": "Demo", "email": USER_EMAIL,
                    "role": {"name": "CEO", "id": "4876876000000026005"}, "profile": {"name": "Administrator", "id": "4876876000000026011"},
                    "status": "active", "confirm": true, "time_zone": "Etc/UTC", "locale": "en_US", "country_locale": "en_US"}],
                "info": {"per_page": 200, "count": 1, "page": 1, "more_records": false},
            }),
        )
    })
}

async fn org(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    z.guarded_users(&headers, &ctx, || {
        json_response(
            StatusCode::OK,
            // The keys of Zoho's documented sample (Organization API, v2 to v8). `zgid`, the org's
            // Zoho group id, is the number in `domain_name` (`org{zgid}`), as in that sample;
            // Zoho's SDKs key their token stores on it.
            json!({"org": [{"id": "4876876000000000001", "company_name": "weft sandbox", "alias": null, "primary_email": USER_EMAIL,
                "primary_zuid": "648765432", "zgid": ZGID, "domain_name": format!("org{ZGID}"), "zia_portal_id": null,
                "time_zone": "Etc/UTC", "iso_code": "USD", "currency": "US Dollar - USD", "currency_symbol": "$", "currency_locale": "en_US",
                "country_code": "US", "country": null, "state": null, "city": null, "street": null, "zip": null, "phone": null,
                "mobile": null, "fax": null, "website": null, "description": null, "employee_count": "10", "photo_id": null,
                "mc_status": false, "gapps_enabled": false, "translation_enabled": false, "privacy_settings": false, "type": "production",
                "license_details": {"paid": true, "paid_type": "enterprise", "paid_expiry": null, "trial_type": null, "trial_expiry": null, "users_license_purchased": 10}}]}),
        )
    })
}

impl Zoho {
    fn guarded_users(
        &self,
        headers: &HeaderMap,
        ctx: &RequestCtx,
        f: impl FnOnce() -> Response,
    ) -> Response {
        self.guarded(headers, ctx, None, Op::Read, Area::Settings, |_| f())
    }
}

// ---------------------------------------------------------------- metadata

impl Module {
    /// `(api_name, data_type)` of every field, system ones included; Zoho's SDK reads this
    /// before it will parse a record.
    fn field_types(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Module::Accounts => &[
                ("Account_Name", "text"),
                ("Website", "website"),
                ("Phone", "phone"),
                ("Industry", "picklist"),
                ("Employees", "integer"),
                ("Annual_Revenue", "currency"),
                ("Billing_City", "text"),
                ("Billing_State", "text"),
                ("Billing_Country", "text"),
                ("Account_Type", "picklist"),
                ("Description", "textarea"),
            ],
            Module::Contacts => &[
                ("First_Name", "text"),
                ("Last_Name", "text"),
                ("Full_Name", "text"),
                ("Email", "email"),
                ("Phone", "phone"),
                ("Title", "text"),
                ("Account_Name", "lookup"),
                ("Lead_Source", "picklist"),
            ],
            Module::Deals => &[
                ("Deal_Name", "text"),
                ("Amount", "currency"),
                ("Stage", "picklist"),
                ("Closing_Date", "date"),
                ("Account_Name", "lookup"),
                ("Contact_Name", "lookup"),
                ("Pipeline", "picklist"),
            ],
            Module::Leads => &[
                ("First_Name", "text"),
                ("Last_Name", "text"),
                ("Full_Name", "text"),
                ("Email", "email"),
                ("Phone", "phone"),
                ("Title", "text"),
                ("Company", "text"),
                ("Lead_Status", "picklist"),
                ("Lead_Source", "picklist"),
            ],
            Module::Tickets => &[
                ("Name", "text"),
                ("Zendesk_Ticket_Id", "text"),
                ("Status", "picklist"),
                ("Priority", "picklist"),
                ("Type", "picklist"),
                ("Description", "textarea"),
                ("Tags", "multiselectpicklist"),
                ("Requester_Email", "email"),
                ("Assignee_Email", "email"),
                ("Account", "lookup"),
                ("Contact", "lookup"),
                ("Lead", "lookup"),
                ("Zendesk_Updated_At", "datetime"),
            ],
            Module::Comments => &[
                ("Name", "text"),
                ("Zendesk_Comment_Id", "text"),
                ("Ticket", "lookup"),
                ("Body", "textarea"),
                ("Author_Email", "email"),
                ("Public", "boolean"),
                ("Zendesk_Created_At", "datetime"),
            ],
        }
    }
}

fn json_type(data_type: &str) -> &'static str {
    match data_type {
        "integer" => "integer",
        "currency" | "double" => "double",
        "lookup" | "ownerlookup" => "jsonobject",
        "multiselectpicklist" => "jsonarray",
        "boolean" => "boolean",
        _ => "string",
    }
}

async fn settings_modules(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    z.guarded_users(&headers, &ctx, || {
        let modules: Vec<Value> = Module::ALL
            .iter()
            .map(|m| {
                json!({
                    "api_name": m.api_name(), "module_name": m.api_name(), "plural_label": m.api_name(), "singular_label": m.api_name().trim_end_matches('s'),
                    "id": (ID_BASE + *m as u64 + 1).to_string(), "api_supported": true, "generated_type": if m.custom() { "custom" } else { "default" }, "visible": true,
                    "creatable": true, "editable": true, "deletable": true, "viewable": true, "status": "visible",
                })
            })
            .collect();
        json_response(StatusCode::OK, json!({"modules": modules}))
    })
}

async fn settings_fields(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(version): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let p = query_params(q.as_deref());
    let Some(m) = p.get("module").and_then(|m| Module::parse(m)) else {
        return zerr(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            json!({"param_name": "module"}),
        );
    };
    z.guarded_users(&headers, &ctx, || {
        let system: [(&str, &str); 5] = [("Owner", "ownerlookup"), ("Created_By", "ownerlookup"), ("Modified_By", "ownerlookup"), ("Created_Time", "datetime"), ("Modified_Time", "datetime")];
        let fields: Vec<Value> = m
            .field_types()
            .iter()
            .chain(system.iter())
            .enumerate()
            .map(|(n, (api, ty))| {
                let mut f = json!({
                    "api_name": api, "data_type": ty, "json_type": json_type(ty), "field_label": api.replace('_', " "), "display_label": api.replace('_', " "),
                    "id": (ID_BASE + 900_000 + (m as u64) * 1_000 + n as u64).to_string(), "system_mandatory": m.mandatory().contains(api),
                    "custom_field": false, "read_only": matches!(*api, "Created_Time" | "Modified_Time" | "Created_By" | "Modified_By" | "Full_Name"),
                    "visible": true, "length": 255,
                });
                if *ty == "lookup"
                    && let Some((_, target)) = m.lookups().iter().find(|(f, _)| f == api)
                {
                    f["lookup"] = json!({"module": {"api_name": target.api_name(), "id": (ID_BASE + *target as u64 + 1).to_string()}, "display_label": target.api_name(), "api_name": api});
                }
                f
            })
            .collect();
        json_response(StatusCode::OK, json!({"fields": fields}))
    })
}

// ---------------------------------------------------------------- COQL

/// Rewrites COQL into the SOQL subset `soql` parses: `is [not] null`, `not like`,
/// `between a and b` and `limit offset, count` become their SOQL spellings.
fn coql_to_soql(q: &str) -> Result<String, String> {
    let mut toks: Vec<String> = Vec::new();
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len()
                && !(chars[i] == '\'' && chars.get(i.wrapping_sub(1)) != Some(&'\\'))
            {
                i += 1;
            }
            if i >= chars.len() {
                return Err("unterminated string".into());
            }
            i += 1;
            toks.push(chars[start..i].iter().collect());
        } else if "(),".contains(c) {
            toks.push(c.to_string());
            i += 1;
        } else if "=!<>".contains(c) {
            let start = i;
            while i < chars.len() && "=!<>".contains(chars[i]) {
                i += 1;
            }
            toks.push(chars[start..i].iter().collect());
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"(),'=!<>".contains(chars[i]) {
                i += 1;
            }
            toks.push(chars[start..i].iter().collect());
        }
    }
    let lower: Vec<String> = toks.iter().map(|t| t.to_ascii_lowercase()).collect();
    let mut out: Vec<String> = Vec::new();
    let mut k = 0;
    while k < toks.len() {
        let w = lower[k].as_str();
        let next = |n: usize| lower.get(k + n).map(String::as_str).unwrap_or("");
        if w == "is" && next(1) == "not" && next(2) == "null" {
            out.extend(["!=".into(), "null".into()]);
            k += 3;
        } else if w == "is" && next(1) == "null" {
            out.extend(["=".into(), "null".into()]);
            k += 2;
        } else if w == "not" && next(1) == "like" {
            let field = out.pop().ok_or("not like needs a field")?;
            out.extend(["NOT".into(), field, "LIKE".into()]);
            k += 2;
        } else if w == "between" && next(2) == "and" {
            let field = out.pop().ok_or("between needs a field")?;
            let (a, b) = (
                toks.get(k + 1).cloned().unwrap_or_default(),
                toks.get(k + 3).cloned().ok_or("between needs two values")?,
            );
            out.extend([
                "(".into(),
                field.clone(),
                ">=".into(),
                a,
                "AND".into(),
                field,
                "<=".into(),
                b,
                ")".into(),
            ]);
            k += 4;
        } else if w == "limit" && next(2) == "," {
            let (offset, count) = (
                toks.get(k + 1).cloned().unwrap_or_default(),
                toks.get(k + 3)
                    .cloned()
                    .ok_or("limit offset, count needs a count")?,
            );
            out.extend(["LIMIT".into(), count, "OFFSET".into(), offset]);
            k += 4;
        } else {
            out.push(toks[k].clone());
            k += 1;
        }
    }
    Ok(out.join(" "))
}

async fn coql(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let syntax = |msg: String| {
        zerr(
            StatusCode::BAD_REQUEST,
            "SYNTAX_ERROR",
            "error occured while parsing the query",
            json!({"reason": msg}),
        )
    };
    let query_text = match parse_json_body(&body) {
        Ok(v) => match v.get("select_query").and_then(Value::as_str) {
            Some(q) => q.to_string(),
            None => {
                return zerr(
                    StatusCode::BAD_REQUEST,
                    "REQUIRED_PARAM_MISSING",
                    "One of the expected parameter is missing",
                    json!({"param_name": "select_query"}),
                );
            }
        },
        Err(msg) => return syntax(msg),
    };
    let parsed = match coql_to_soql(&query_text).and_then(|s| crate::vendors::soql::parse(&s)) {
        Ok(q) => q,
        Err(msg) => return syntax(msg),
    };
    let Some(m) = Module::parse(&parsed.object) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Read, Area::Records, |_| {
        z.run_coql(m, &parsed)
    })
}

impl Zoho {
    fn run_coql(&self, m: Module, q: &crate::vendors::soql::Query) -> Response {
        let limit = q.limit.unwrap_or(200);
        if limit > 2_000 {
            return zerr(
                StatusCode::BAD_REQUEST,
                "LIMIT_EXCEEDED",
                "the limit must not exceed 2000",
                json!({"limit": 2000}),
            );
        }
        let st = self.state.lock().expect("zoho state");
        let Some(sample) = self.render(&st, m, 0, None).or_else(|| {
            st.modules[m.slot()]
                .scan(Dir::Asc, None)
                .next()
                .and_then(|i| self.render(&st, m, i, None))
        }) else {
            return StatusCode::NO_CONTENT.into_response();
        };
        let known = |f: &str| {
            let base = f.split('.').next().unwrap_or(f);
            base == "id"
                || sample.get(base).is_some()
                || generated_fields(&st.demo, m, 0).contains_key(base)
        };
        let mut mentioned = q.fields.clone();
        if let Some(f) = &q.filter {
            crate::vendors::soql::filter_fields(f, &mut mentioned);
        }
        mentioned.extend(q.order.iter().map(|o| o.field.clone()));
        if let Some(bad) = mentioned.iter().find(|f| !known(f)) {
            return zerr(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY",
                "invalid column given",
                json!({"column_name": bad}),
            );
        }
        // COQL compares lookups by id; `Lookup.Field` reads the looked-up record's name.
        let get = |rec: &Value, f: &str| -> Value {
            match f.split_once('.') {
                Some((lookup, sub)) => rec
                    .get(lookup)
                    .map(|l| {
                        if sub == "id" {
                            l["id"].clone()
                        } else {
                            l["name"].clone()
                        }
                    })
                    .unwrap_or(Value::Null),
                None => match rec.get(f) {
                    Some(Value::Object(o)) => o.get("id").cloned().unwrap_or(Value::Null),
                    Some(Value::Number(n)) => json!(n.to_string()),
                    Some(v) => v.clone(),
                    None => Value::Null,
                },
            }
        };
        let mut hits: Vec<Value> = Vec::new();
        let offset = q.offset.unwrap_or(0) as usize;
        let wanted = if q.order.is_empty() {
            offset + limit as usize + 1
        } else {
            usize::MAX
        };
        for i in st.modules[m.slot()].scan(Dir::Asc, None) {
            let Some(rec) = self.render(&st, m, i, None) else {
                continue;
            };
            if q.filter
                .as_ref()
                .is_none_or(|f| crate::vendors::soql::eval(f, &|name: &str| get(&rec, name)))
            {
                hits.push(rec);
                if hits.len() >= wanted {
                    break;
                }
            }
        }
        if !q.order.is_empty() {
            hits.sort_by(|a, b| {
                q.order
                    .iter()
                    .map(|o| {
                        crate::vendors::soql::order_values(&get(a, &o.field), &get(b, &o.field), o)
                    })
                    .find(|x| *x != std::cmp::Ordering::Equal)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        }
        let more = hits.len() > offset + limit as usize;
        let data: Vec<Value> = hits
            .iter()
            .skip(offset)
            .take(limit as usize)
            .map(|rec| {
                let mut o = serde_json::Map::new();
                for f in &q.fields {
                    let v = match f.split_once('.') {
                        Some(_) => get(rec, f),
                        None => match rec.get(f) {
                            Some(Value::Object(l)) => json!({"id": l.get("id")}),
                            Some(v) => v.clone(),
                            None => Value::Null,
                        },
                    };
                    o.insert(f.clone(), v);
                }
                o.insert("id".into(), rec["id"].clone());
                Value::Object(o)
            })
            .collect();
        if data.is_empty() {
            return StatusCode::NO_CONTENT.into_response();
        }
        let count = data.len();
        json_response(
            StatusCode::OK,
            json!({"data": data, "info": {"count": count, "more_records": more}}),
        )
    }
}

// ---------------------------------------------------------------- records: write

#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteOp {
    Insert,
    Update,
    Upsert,
}

/// A change to report to watch channels.
struct Notice {
    module: Module,
    operation: &'static str,
    ids: Vec<String>,
    affected: Vec<(String, Vec<String>, Value)>,
}

fn ok_entry(message: &str, details: Value, action: Option<(&str, Option<&str>)>) -> Value {
    let mut e =
        json!({"code": "SUCCESS", "details": details, "message": message, "status": "success"});
    if let Some((action, dup)) = action {
        e["action"] = json!(action);
        e["duplicate_field"] = json!(dup);
    }
    e
}

fn err_entry(code: &str, message: &str, details: Value) -> Value {
    json!({"code": code, "details": details, "message": message, "status": "error"})
}

/// HTTP status for a `data[]` answer: all good, all bad (the first error decides) or mixed.
fn batch_status(entries: &[Value], success: StatusCode) -> StatusCode {
    let ok = entries.iter().filter(|e| e["status"] == "success").count();
    if ok == entries.len() {
        success
    } else if ok == 0 {
        if entries.iter().all(|e| e["code"] == "ALREADY_MODIFIED") {
            StatusCode::PRECONDITION_FAILED
        } else {
            StatusCode::BAD_REQUEST
        }
    } else {
        StatusCode::MULTI_STATUS
    }
}

impl Zoho {
    /// Checks one input record; returns cleaned fields or a `data[]` error entry.
    fn validate(
        &self,
        st: &ZohoState,
        m: Module,
        pos: usize,
        input: &Fields,
        op: WriteOp,
        existing: bool,
    ) -> Result<Fields, Value> {
        let path = |f: &str| format!("$.data[{pos}].{f}");
        if op == WriteOp::Insert || (op == WriteOp::Upsert && !existing) {
            for f in m.mandatory() {
                let missing = match input.get(*f) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(s)) => s.trim().is_empty(),
                    _ => false,
                };
                if missing {
                    return Err(err_entry(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        json!({"api_name": f, "json_path": path(f)}),
                    ));
                }
            }
        }
        let mut out = Fields::new();
        for (k, v) in input {
            if k == "id" || k.starts_with('$') {
                continue;
            }
            if matches!(
                k.as_str(),
                "Created_Time" | "Modified_Time" | "Created_By" | "Modified_By" | "Full_Name"
            ) {
                continue;
            }
            if (k == "Email" || k.ends_with("_Email"))
                && let Some(s) = v.as_str()
                && !s.is_empty()
                && !valid_email(s)
            {
                return Err(err_entry(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": k, "json_path": path(k), "expected_data_type": "email"}),
                ));
            }
            if matches!(k.as_str(), "Amount" | "Annual_Revenue" | "Employees")
                && !(v.is_number() || v.is_null())
            {
                return Err(err_entry(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": k, "json_path": path(k), "expected_data_type": "double"}),
                ));
            }
            if k == "Closing_Date"
                && !v.is_null()
                && v.as_str()
                    .is_none_or(|s| s.len() != 10 || parse_iso(s).is_none())
            {
                return Err(err_entry(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": k, "json_path": path(k), "expected_data_type": "date"}),
                ));
            }
            if k == "Stage" && v.as_str().is_some_and(|s| !STAGES.contains(&s)) {
                // Zoho accepts unknown picklist values and adds them as unused values; keep them.
            }
            if let Some((_, target)) = m.lookups().iter().find(|(f, _)| f == k) {
                if v.is_null() {
                    out.insert(k.clone(), Value::Null);
                    continue;
                }
                let id = v.get("id").and_then(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .or_else(|| x.as_u64().map(|n| n.to_string()))
                });
                let Some(idx) = id
                    .as_deref()
                    .and_then(|i| parse_id(*target, i))
                    .filter(|i| st.modules[target.slot()].is_live(*i))
                else {
                    return Err(err_entry(
                        "INVALID_DATA",
                        "invalid data",
                        json!({"api_name": k, "json_path": format!("{}.id", path(k)), "expected_data_type": "lookup", "id": id}),
                    ));
                };
                let name = self
                    .render(st, *target, idx, None)
                    .map(|r| r[target.display_field()].clone())
                    .unwrap_or(Value::Null);
                out.insert(
                    k.clone(),
                    json!({"name": name, "id": zoho_id(*target, idx)}),
                );
                continue;
            }
            out.insert(k.clone(), v.clone());
        }
        Ok(out)
    }

    fn write(
        &self,
        m: Module,
        op: WriteOp,
        body: &[u8],
        path_id: Option<&str>,
        headers: &HeaderMap,
    ) -> Response {
        let v = match parse_json_body(body) {
            Ok(v) => v,
            Err(msg) => {
                return zerr(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"reason": msg}),
                );
            }
        };
        let Some(records) = v.get("data").and_then(Value::as_array) else {
            return zerr(
                StatusCode::BAD_REQUEST,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({"param_name": "data"}),
            );
        };
        if records.is_empty() {
            return zerr(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "invalid data",
                json!({"param_name": "data", "reason": "data must hold at least one record"}),
            );
        }
        if records.len() > self.limits.max_records_per_write {
            return zerr(
                StatusCode::BAD_REQUEST,
                "LIMIT_EXCEEDED",
                &format!(
                    "the number of records given exceeds the limit of {}",
                    self.limits.max_records_per_write
                ),
                json!({"limit": self.limits.max_records_per_write}),
            );
        }
        let dup_fields: Vec<String> = match v.get("duplicate_check_fields") {
            None | Some(Value::Null) => vec![m.system_unique().to_string()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(_) => {
                return zerr(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"param_name": "duplicate_check_fields", "expected_data_type": "jsonarray"}),
                );
            }
        };
        let unmodified_since = header_str(headers, "if-unmodified-since").and_then(parse_iso);
        let now = self.now();
        let mut entries = Vec::with_capacity(records.len());
        let mut notices: Vec<Notice> = Vec::new();
        let mut st = self.state.lock().expect("zoho state");
        for (pos, rec) in records.iter().enumerate() {
            let Some(input) = rec.as_object() else {
                entries.push(err_entry("INVALID_DATA", "invalid data", json!({"json_path": format!("$.data[{pos}]"), "expected_data_type": "jsonobject"})));
                continue;
            };
            // Which existing record, if any, this input targets.
            let mut target: Option<u64> = None;
            let mut dup_field: Option<String> = None;
            match op {
                WriteOp::Insert => {}
                WriteOp::Update => {
                    let id = path_id.map(str::to_string).or_else(|| {
                        input.get("id").and_then(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .or_else(|| x.as_u64().map(|n| n.to_string()))
                        })
                    });
                    let Some(id) = id else {
                        entries.push(err_entry(
                            "MANDATORY_NOT_FOUND",
                            "required field not found",
                            json!({"api_name": "id", "json_path": format!("$.data[{pos}].id")}),
                        ));
                        continue;
                    };
                    match parse_id(m, &id).filter(|i| st.modules[m.slot()].is_live(*i)) {
                        Some(i) => target = Some(i),
                        None => {
                            entries.push(err_entry(
                                "INVALID_DATA",
                                "the id given seems to be invalid",
                                json!({"id": id}),
                            ));
                            continue;
                        }
                    }
                }
                WriteOp::Upsert => {
                    if let Some(id) = input.get("id").and_then(Value::as_str) {
                        target = parse_id(m, id).filter(|i| st.modules[m.slot()].is_live(*i));
                    }
                    if target.is_none() {
                        for f in &dup_fields {
                            let Some(val) = input.get(f).filter(|v| !v.is_null()) else {
                                continue;
                            };
                            let found = st.modules[m.slot()].find(f, val);
                            if let Some(first) = found.first() {
                                target = Some(*first);
                                dup_field = Some(f.clone());
                                break;
                            }
                        }
                    }
                }
            }
            if let (Some(i), Some(t)) = (target, unmodified_since)
                && st.modules[m.slot()].modified_ms(i).is_some_and(|mm| mm > t)
            {
                entries.push(err_entry(
                    "ALREADY_MODIFIED",
                    "the record has been modified after the given time",
                    json!({"id": zoho_id(m, i)}),
                ));
                continue;
            }
            let fields = match self.validate(&st, m, pos, input, op, target.is_some()) {
                Ok(f) => f,
                Err(e) => {
                    entries.push(e);
                    continue;
                }
            };
            let (index, action, message) = match target {
                Some(i) => {
                    st.modules[m.slot()].merge(i, &fields, now);
                    (i, "update", "record updated")
                }
                None => (
                    st.modules[m.slot()].insert(fields.clone(), now),
                    "insert",
                    "record added",
                ),
            };
            let rec = st.modules[m.slot()].get(index).expect("just written");
            let details = json!({
                "id": zoho_id(m, index), "Created_Time": self.time(rec.created_ms), "Modified_Time": self.time(rec.modified_ms),
                "Created_By": {"name": USER_NAME, "id": USER_ID}, "Modified_By": {"name": USER_NAME, "id": USER_ID},
            });
            let upsert_action = (op == WriteOp::Upsert).then_some((action, dup_field.as_deref()));
            entries.push(ok_entry(message, details, upsert_action));
            let operation = if action == "insert" {
                "insert"
            } else {
                "update"
            };
            let changed: Vec<String> = fields.keys().cloned().collect();
            let values = Value::Object(fields);
            match notices.iter_mut().find(|n| n.operation == operation) {
                Some(n) => {
                    n.ids.push(zoho_id(m, index));
                    n.affected.push((zoho_id(m, index), changed, values));
                }
                None => notices.push(Notice {
                    module: m,
                    operation,
                    ids: vec![zoho_id(m, index)],
                    affected: vec![(zoho_id(m, index), changed, values)],
                }),
            }
        }
        drop(st);
        for n in notices {
            self.notify(n);
        }
        let success = if op == WriteOp::Insert {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let status = batch_status(&entries, success);
        json_response(status, json!({"data": entries}))
    }

    fn delete_ids(&self, m: Module, ids: &[String]) -> Response {
        if ids.len() > self.limits.max_records_per_write {
            return zerr(
                StatusCode::BAD_REQUEST,
                "LIMIT_EXCEEDED",
                &format!(
                    "You cannot give more than {} record ids",
                    self.limits.max_records_per_write
                ),
                json!({"limit": self.limits.max_records_per_write}),
            );
        }
        let now = self.now();
        let mut entries = Vec::new();
        let mut gone = Vec::new();
        {
            let mut st = self.state.lock().expect("zoho state");
            for id in ids {
                match parse_id(m, id) {
                    Some(i) if st.modules[m.slot()].delete(i, now) => {
                        entries.push(ok_entry("record deleted", json!({"id": id}), None));
                        gone.push(id.clone());
                    }
                    _ => entries.push(err_entry(
                        "INVALID_DATA",
                        "record not deleted",
                        json!({"id": id}),
                    )),
                }
            }
        }
        if !gone.is_empty() {
            self.notify(Notice {
                module: m,
                operation: "delete",
                ids: gone,
                affected: Vec::new(),
            });
        }
        let status = batch_status(&entries, StatusCode::OK);
        json_response(status, json!({"data": entries}))
    }
}

async fn create(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Create, Area::Records, |_| {
        z.write(m, WriteOp::Insert, &body, None, &headers)
    })
}

async fn update_many(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Update, Area::Records, |_| {
        z.write(m, WriteOp::Update, &body, None, &headers)
    })
}

async fn update_one(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Update, Area::Records, |_| {
        z.write(m, WriteOp::Update, &body, Some(&id), &headers)
    })
}

async fn upsert(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Create, Area::Records, |_| {
        z.write(m, WriteOp::Upsert, &body, None, &headers)
    })
}

async fn delete_many(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Delete, Area::Records, |_| {
        let p = query_params(q.as_deref());
        let ids: Vec<String> = p
            .get("ids")
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return zerr(
                StatusCode::BAD_REQUEST,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({"param_name": "ids"}),
            );
        }
        z.delete_ids(m, &ids)
    })
}

async fn delete_one(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    let Some(m) = Module::parse(&module) else {
        return invalid_module();
    };
    z.guarded(&headers, &ctx, Some(m), Op::Delete, Area::Records, |_| {
        z.delete_ids(m, std::slice::from_ref(&id))
    })
}

// ---------------------------------------------------------------- notifications (watch)

impl Zoho {
    /// Calls back every live channel subscribed to this change. Zoho sends no signature: the
    /// receiver checks the echoed `token` and `channel_id`.
    fn notify(&self, n: Notice) {
        let now = self.now();
        let event_op = match n.operation {
            "insert" => "create",
            "update" => "edit",
            _ => "delete",
        };
        let channels: Vec<Channel> = {
            let st = self.state.lock().expect("zoho state");
            st.channels
                .values()
                .filter(|c| c.expiry_ms > now)
                .filter(|c| {
                    c.events.iter().any(|e| {
                        let (module, op) = e.split_once('.').unwrap_or((e, ""));
                        module.eq_ignore_ascii_case(n.module.api_name())
                            && (op == "all" || op == event_op)
                    })
                })
                .cloned()
                .collect()
        };
        for ch in channels {
            let query_params: serde_json::Map<String, Value> = ch
                .notify_url
                .split_once('?')
                .map(|(_, q)| {
                    query_params(Some(q))
                        .into_iter()
                        .map(|(k, v)| (k, json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            let mut payload = json!({
                "server_time": now, "query_params": query_params, "module": n.module.api_name(),
                "resource_uri": format!("{}/crm/v2/{}", self.base(), n.module.api_name()), "ids": n.ids,
                "affected_fields": [], "operation": n.operation, "channel_id": ch.channel_id, "token": ch.token,
            });
            if ch.return_affected_field_values && n.operation == "update" {
                payload["affected_fields"] = json!(
                    n.affected
                        .iter()
                        .map(|(id, f, _)| json!({id.clone(): f}))
                        .collect::<Vec<_>>()
                );
                payload["affected_values"] = json!(
                    n.affected
                        .iter()
                        .map(|(id, _, v)| json!({"record_id": id, "values": v}))
                        .collect::<Vec<_>>()
                );
            }
            let body = payload.to_string().into_bytes();
            self.hub.outbox.send(
                Arc::clone(&self.hub.clock),
                Outgoing {
                    vendor: Vendor::Zoho,
                    event: format!("{}.{}", n.module.api_name(), event_op),
                    url: ch.notify_url.clone(),
                    method: http::Method::POST,
                    max_attempts: self.hub.outbox.attempts(self.limits.notification_attempts),
                    build: Box::new(move |_, _| {
                        (
                            vec![("content-type".into(), "application/json".into())],
                            body.clone(),
                        )
                    }),
                    retry_on: retry_any,
                },
            );
        }
    }

    fn channel_json(&self, c: &Channel) -> Value {
        let resources: Vec<Value> = c
            .events
            .iter()
            .map(|e| e.split('.').next().unwrap_or(""))
            .map(|m| json!({"resource_uri": format!("{}/crm/v2/{m}", self.base()), "resource_name": m}))
            .collect();
        json!({
            "channel_id": c.channel_id, "events": c.events, "notify_url": c.notify_url, "token": c.token,
            "channel_expiry": self.time(c.expiry_ms), "return_affected_field_values": c.return_affected_field_values,
            "notify_on_related_action": c.notify_on_related_action, "resources": resources,
        })
    }

    /// Validates one `watch[]` entry; `merge_into` is the channel being patched, if any.
    fn parse_channel(&self, v: &Value, merge_into: Option<&Channel>) -> Result<Channel, Value> {
        let now = self.now();
        let channel_id = match v.get("channel_id") {
            Some(Value::String(s)) if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() => {
                s.clone()
            }
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            _ => {
                return Err(err_entry(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": "channel_id", "expected_data_type": "long"}),
                ));
            }
        };
        let mut ch = merge_into.cloned().unwrap_or(Channel {
            channel_id: channel_id.clone(),
            events: Vec::new(),
            notify_url: String::new(),
            token: None,
            expiry_ms: 0,
            return_affected_field_values: false,
            notify_on_related_action: false,
        });
        if let Some(events) = v.get("events") {
            let list: Vec<String> = events
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            for e in &list {
                let ok = e.split_once('.').is_some_and(|(m, op)| {
                    Module::parse(m).is_some() && matches!(op, "create" | "edit" | "delete" | "all")
                });
                if !ok {
                    return Err(err_entry(
                        "INVALID_DATA",
                        "invalid data",
                        json!({"api_name": "events", "value": e}),
                    ));
                }
            }
            if v.get("_delete_events").and_then(Value::as_bool) == Some(true) {
                ch.events.retain(|e| !list.contains(e));
            } else if merge_into.is_some()
                && v.get("_delete_events").is_none()
                && v.get("events").is_some()
            {
                for e in list {
                    if !ch.events.contains(&e) {
                        ch.events.push(e);
                    }
                }
            } else {
                ch.events = list;
            }
        }
        if ch.events.is_empty() {
            return Err(err_entry(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                json!({"api_name": "events"}),
            ));
        }
        if let Some(u) = v.get("notify_url").and_then(Value::as_str) {
            ch.notify_url = u.to_string();
        }
        if !(ch.notify_url.starts_with("http://") || ch.notify_url.starts_with("https://")) {
            return Err(err_entry(
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": "notify_url", "expected_data_type": "url"}),
            ));
        }
        if let Some(t) = v.get("token") {
            if t.as_str().is_some_and(|s| s.len() > 50) {
                return Err(err_entry(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": "token", "maximum_length": 50}),
                ));
            }
            ch.token = t.as_str().map(str::to_string);
        }
        if let Some(b) = v
            .get("return_affected_field_values")
            .and_then(Value::as_bool)
        {
            ch.return_affected_field_values = b;
        }
        if let Some(b) = v.get("notify_on_related_action").and_then(Value::as_bool) {
            ch.notify_on_related_action = b;
        }
        let requested = v
            .get("channel_expiry")
            .and_then(Value::as_str)
            .and_then(parse_iso);
        let max = now + self.limits.channel_max_expiry.as_millis() as i64;
        let default = now + self.limits.channel_default_expiry.as_millis() as i64;
        if requested.is_some() || merge_into.is_none() {
            // Past or beyond the maximum falls back to the default, as Zoho documents.
            ch.expiry_ms = match requested {
                Some(t) if t > now && t <= max => t,
                _ => default,
            };
        }
        Ok(ch)
    }
}

async fn watch(
    State(z): State<Arc<Zoho>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(version): Path<String>,
    RawQuery(q): RawQuery,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return invalid_url();
    }
    z.guarded(&headers, &ctx, None, Op::Read, Area::Notifications, |_| {
        z.watch_inner(method, q.as_deref(), &body)
    })
}

impl Zoho {
    fn watch_inner(&self, method: http::Method, q: Option<&str>, body: &[u8]) -> Response {
        let now = self.now();
        if method == http::Method::GET {
            let p = query_params(q);
            let st = self.state.lock().expect("zoho state");
            let list: Vec<Value> = st
                .channels
                .values()
                .filter(|c| c.expiry_ms > now)
                .filter(|c| p.get("channel_id").is_none_or(|id| *id == c.channel_id))
                .filter(|c| {
                    p.get("module").is_none_or(|m| {
                        c.events
                            .iter()
                            .any(|e| e.split('.').next() == Some(m.as_str()))
                    })
                })
                .map(|c| self.channel_json(c))
                .collect();
            if list.is_empty() {
                return StatusCode::NO_CONTENT.into_response();
            }
            let count = list.len();
            return json_response(
                StatusCode::OK,
                json!({"watch": list, "info": {"per_page": 200, "count": count, "page": 1, "more_records": false}}),
            );
        }
        if method == http::Method::DELETE {
            let p = query_params(q);
            let ids: Vec<String> = p
                .get("channel_ids")
                .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
                .unwrap_or_default();
            if ids.is_empty() {
                return zerr(
                    StatusCode::BAD_REQUEST,
                    "REQUIRED_PARAM_MISSING",
                    "One of the expected parameter is missing",
                    json!({"param_name": "channel_ids"}),
                );
            }
            let mut st = self.state.lock().expect("zoho state");
            let entries: Vec<Value> = ids
                .iter()
                .map(|id| match st.channels.remove(id) {
                    Some(_) => ok_entry(
                        "Successfully unsubscribed from actions-watch of the given module",
                        json!({"channel_id": id}),
                        None,
                    ),
                    None => err_entry("INVALID_DATA", "invalid data", json!({"channel_id": id})),
                })
                .collect();
            let status = batch_status(&entries, StatusCode::OK);
            return json_response(status, json!({"watch": entries}));
        }
        let v = match parse_json_body(body) {
            Ok(v) => v,
            Err(msg) => {
                return zerr(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "invalid data",
                    json!({"reason": msg}),
                );
            }
        };
        let Some(items) = v.get("watch").and_then(Value::as_array) else {
            return zerr(
                StatusCode::BAD_REQUEST,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({"param_name": "watch"}),
            );
        };
        let mut st = self.state.lock().expect("zoho state");
        let mut entries = Vec::new();
        for item in items {
            let existing = item
                .get("channel_id")
                .map(|c| {
                    c.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| c.to_string())
                })
                .and_then(|id| st.channels.get(&id).cloned())
                .filter(|c| c.expiry_ms > now);
            let patching = method == http::Method::PATCH;
            if patching && existing.is_none() {
                entries.push(err_entry(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": "channel_id", "reason": "no such channel"}),
                ));
                continue;
            }
            match self.parse_channel(item, if patching { existing.as_ref() } else { None }) {
                Ok(ch) => {
                    let events: Vec<Value> = ch
                        .events
                        .iter()
                        .map(|e| {
                            let m = e.split('.').next().unwrap_or("");
                            json!({
                                "channel_expiry": self.time(ch.expiry_ms),
                                "resource_uri": format!("{}/crm/v2/{m}", self.base()),
                                "resource_id": Module::parse(m).map(|m| (ID_BASE + m as u64 + 1).to_string()),
                                "resource_name": m, "channel_id": ch.channel_id,
                            })
                        })
                        .collect();
                    st.channels.insert(ch.channel_id.clone(), ch);
                    let message = if patching || method == http::Method::PUT {
                        "Successfully updated the subscribe details"
                    } else {
                        "Successfully subscribed for actions-watch of the given module"
                    };
                    entries.push(ok_entry(message, json!({"events": events}), None));
                }
                Err(e) => entries.push(e),
            }
        }
        let status = batch_status(&entries, StatusCode::OK);
        json_response(status, json!({"watch": entries}))
    }
}

// ---------------------------------------------------------------- emulator

impl Emulator for Zoho {
    fn vendor(&self) -> Vendor {
        Vendor::Zoho
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/oauth/v2/auth", get(authorize_page))
            .route("/oauth/v2/auth/approve", post(authorize_decision))
            .route("/oauth/v2/token", post(token))
            .route("/oauth/v2/token/revoke", post(revoke))
            .route("/crm/{version}/coql", post(coql))
            .route("/crm/{version}/users", get(users))
            .route("/crm/{version}/settings/modules", get(settings_modules))
            .route("/crm/{version}/settings/fields", get(settings_fields))
            .route("/crm/{version}/org", get(org))
            .route(
                "/crm/{version}/actions/watch",
                get(watch).post(watch).put(watch).patch(watch).delete(watch),
            )
            .route(
                "/crm/{version}/{module}",
                get(list).post(create).put(update_many).delete(delete_many),
            )
            .route("/crm/{version}/{module}/upsert", post(upsert))
            .route("/crm/{version}/{module}/deleted", get(deleted))
            .route("/crm/{version}/{module}/search", get(search))
            .route("/crm/{version}/{module}/actions/count", get(record_count))
            .route(
                "/crm/{version}/{module}/{id}",
                get(get_one).put(update_one).delete(delete_one),
            )
            .fallback(|| async { invalid_url() })
            .with_state(self)
    }

    fn reset(&self, data: DemoData) {
        let demo = Demo::from(data);
        let mut st = self.state.lock().expect("zoho state");
        *st = ZohoState {
            demo,
            modules: build_collections(demo),
            page_tokens: HashMap::new(),
            channels: BTreeMap::new(),
            credits: VecDeque::new(),
        };
        drop(st);
        self.issue_demo_refresh();
    }

    fn snapshot(&self) -> Value {
        let st = self.state.lock().expect("zoho state");
        let now = self.now();
        let modules: serde_json::Map<String, Value> = Module::ALL
            .iter()
            .map(|m| {
                let c = &st.modules[m.slot()];
                (
                    m.api_name().to_string(),
                    json!({"records": c.len(), "deleted": c.tombstones().count()}),
                )
            })
            .collect();
        let channels: Vec<Value> = st
            .channels
            .values()
            .filter(|c| c.expiry_ms > now)
            .map(|c| self.channel_json(c))
            .collect();
        json!({
            "vendor": "zoho", "seed": st.demo.seed, "modules": modules, "channels": channels,
            "credits_used_24h": st.credits.len(), "credits_limit": self.limits.daily_credits,
            "live_access_tokens": self.hub.tokens.live_access_count(Vendor::Zoho, now),
        })
    }

    fn record(&self, object: &str, id: &str) -> Option<Value> {
        let m = Module::parse(object)?;
        let st = self.state.lock().expect("zoho state");
        self.render(&st, m, parse_id(m, id)?, None)
    }

    fn throttled(&self) -> Response {
        self.too_many()
    }

    fn server_error(&self) -> Response {
        zerr(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "Internal Server Error",
            json!({}),
        )
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: Some(REFRESH_TOKEN.into()),
            api_token: None,
            username: USER_EMAIL.into(),
            extra: [
                (
                    "authorize_url".to_string(),
                    format!("{}/oauth/v2/auth", self.base()),
                ),
                (
                    "token_url".to_string(),
                    format!("{}/oauth/v2/token", self.base()),
                ),
                ("api_domain".to_string(), self.base().to_string()),
                ("scope".to_string(), DEMO_SCOPE.to_string()),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn base_url(&self) -> &OnceLock<String> {
        &self.base
    }
}
