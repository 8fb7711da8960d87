//! Zendesk Support API v2 and its OAuth endpoints (crm-apis.md §2, §8).
//!
//! Faithful points a connector depends on: API-token Basic auth (`{email}/token:{token}`) and
//! Bearer OAuth with rotating refresh tokens, optional `.json` suffixes, cursor pagination with
//! `meta`/`links` and offset pagination that stops at 100 pages, cursor-based incremental
//! exports that leave out the last minute and have their own rate limit, bulk jobs reported
//! through `job_statuses`, comments only through ticket updates, per-minute rate limits with
//! `X-Rate-Limit*` headers, and webhooks signed with HMAC-SHA256 over timestamp + body.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{
    Window, auth_token, json as json_response, parse_json_body, query_params, set_header,
    token_params, valid_email,
};
use crate::clock::rfc3339;
use crate::collection::{Collection, Dir, Fields};
use crate::config::{DemoData, SandboxConfig, ZendeskLimits};
use crate::demo::{Demo, Kind};
use crate::oauth::{self, AuthorizeParams};
use crate::server::{Credentials, Emulator, Hub, RequestCtx};
use crate::tokens::{AccessToken, Grant, RefreshToken, TokenCheck};
use crate::vendor::Vendor;
use crate::webhook::{Outgoing, retry_server_errors};

pub(crate) const SUBDOMAIN: &str = "weft-sandbox";
pub(crate) const AGENT_EMAIL: &str = "admin@weft-sandbox.example";
pub(crate) const API_TOKEN: &str = "weftSandboxZendeskApiToken0000000000000000";
pub(crate) const CLIENT_ID: &str = "weft_sandbox";
pub(crate) const CLIENT_SECRET: &str =
    "5eb1c7e0a7f2c3d4b5a6978812aa34bb56cc78dd90ee12ff34a056b078c09d1e";
pub(crate) const REFRESH_TOKEN: &str =
    "weftsandboxzendeskrefresh0000000000000000000000000000000000000000";
const AGENT_NAME: &str = "Weft Admin";
const ACCOUNT_ID: u64 = 12_514_403;
const USER_ID_BASE: u64 = 370_000_000_000;
const ORG_ID_BASE: u64 = 360_000_000_000;
const COMMENT_ID_BASE: u64 = 400_000_000_000;
const DEMO_SCOPE: &str = "read write";

const TICKET_STATUSES: [&str; 6] = ["new", "open", "pending", "hold", "solved", "closed"];
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const TICKET_TYPES: [&str; 4] = ["question", "incident", "problem", "task"];
const EVENT_TYPES: [&str; 9] = [
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obj {
    Tickets,
    Users,
    Organizations,
}

impl Obj {
    fn plural(self) -> &'static str {
        match self {
            Obj::Tickets => "tickets",
            Obj::Users => "users",
            Obj::Organizations => "organizations",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Obj::Tickets => "ticket",
            Obj::Users => "user",
            Obj::Organizations => "organization",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }

    fn id(self, index: u64) -> u64 {
        match self {
            Obj::Tickets => index + 1,
            Obj::Users => USER_ID_BASE + index,
            Obj::Organizations => ORG_ID_BASE + index,
        }
    }

    fn index(self, id: u64) -> Option<u64> {
        match self {
            Obj::Tickets => id.checked_sub(1),
            Obj::Users => id.checked_sub(USER_ID_BASE).filter(|i| *i < ORG_ID_BASE),
            Obj::Organizations => id
                .checked_sub(ORG_ID_BASE)
                .filter(|i| *i < USER_ID_BASE - ORG_ID_BASE),
        }
    }
}

fn generated(demo: &Demo, obj: Obj, i: u64) -> Fields {
    let v = match obj {
        Obj::Organizations => {
            let c = demo.company(i);
            json!({"name": c.name, "domain_names": [c.domain], "details": format!("{} company in {}", c.industry, c.city), "notes": "", "external_id": null, "tags": [c.industry.to_lowercase()]})
        }
        Obj::Users if i == 0 => {
            json!({"name": AGENT_NAME, "email": AGENT_EMAIL, "role": "admin", "organization_id": null, "phone": null, "external_id": null, "tags": []})
        }
        Obj::Users => {
            let p = demo.contact(i - 1);
            json!({
                "name": format!("{} {}", p.first, p.last), "email": p.email, "role": "end-user", "phone": p.phone,
                "organization_id": p.company.map(|c| Obj::Organizations.id(c)), "external_id": null, "tags": [],
            })
        }
        Obj::Tickets => {
            let t = demo.ticket(i);
            let requester = if demo.size.contacts > 0 {
                Obj::Users.id(t.requester + 1)
            } else {
                Obj::Users.id(0)
            };
            json!({
                "subject": t.subject, "description": t.description, "status": t.status, "priority": t.priority, "type": t.kind,
                "requester_id": requester, "submitter_id": requester, "assignee_id": Obj::Users.id(0),
                "organization_id": t.company.map(|c| Obj::Organizations.id(c)), "tags": t.tags, "external_id": null,
                "custom_fields": [], "comment_count": t.comments,
            })
        }
    };
    v.as_object().cloned().unwrap_or_default()
}

fn build_collections(demo: Demo) -> Vec<Collection> {
    [Obj::Tickets, Obj::Users, Obj::Organizations]
        .into_iter()
        .map(|o| {
            let (kind, n) = match o {
                Obj::Tickets => (Kind::Ticket, demo.size.tickets),
                Obj::Users => (Kind::Contact, demo.size.contacts + 1),
                Obj::Organizations => (Kind::Company, demo.size.companies),
            };
            Collection::new(
                n,
                move |i| generated(&demo, o, i),
                move |i| demo.times(kind, i, n),
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Webhook {
    id: String,
    name: String,
    endpoint: String,
    status: String,
    subscriptions: Vec<String>,
    authentication: Option<Value>,
    custom_headers: BTreeMap<String, String>,
    signing_secret: String,
    created_ms: i64,
    updated_ms: i64,
}

#[derive(Debug, Clone)]
struct Job {
    id: String,
    status: &'static str,
    total: usize,
    progress: usize,
    results: Vec<Value>,
    message: Option<String>,
    created_ms: i64,
}

struct ZendeskState {
    demo: Demo,
    objects: Vec<Collection>,
    /// Comments added through ticket updates, after the generated ones.
    comments: HashMap<u64, Vec<Value>>,
    webhooks: BTreeMap<String, Webhook>,
    triggers: BTreeMap<u64, Trigger>,
    jobs: VecDeque<Job>,
    /// Per-minute buckets for the account and for incremental exports.
    minute: Window,
    incremental_minute: Window,
}

pub(crate) struct Zendesk {
    hub: Arc<Hub>,
    base: OnceLock<String>,
    limits: ZendeskLimits,
    access_ms: i64,
    refresh_ms: i64,
    code_ms: i64,
    state: Mutex<ZendeskState>,
}

/// A validation failure: answered as Zendesk's 422 `RecordInvalid` with field-keyed details,
/// or reported inside a bulk job's results.
#[derive(Debug)]
struct Invalid {
    field: String,
    description: String,
    error: &'static str,
}

impl Invalid {
    fn response(&self) -> Response {
        json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "RecordInvalid", "description": "Record validation errors", "details": {self.field.as_str(): [{"description": self.description, "error": self.error}]}}),
        )
    }
}

fn invalid(field: &str, description: String, error: &'static str) -> Invalid {
    Invalid {
        field: field.to_string(),
        description,
        error,
    }
}

fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": "RecordNotFound", "description": "Not found"}),
    )
}

fn bad_request(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": error, "description": description}),
    )
}

fn parse_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn encode_cursor(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn decode_cursor(s: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

impl Zendesk {
    pub(crate) fn new(hub: Arc<Hub>, config: &SandboxConfig) -> Arc<Self> {
        let demo = Demo::from(config.data);
        let z = Arc::new(Self {
            limits: config.zendesk,
            access_ms: config.tokens.zendesk_access.as_millis() as i64,
            refresh_ms: config.tokens.zendesk_refresh.as_millis() as i64,
            code_ms: config.tokens.authorization_code.as_millis() as i64,
            state: Mutex::new(Self::fresh_state(demo)),
            hub,
            base: OnceLock::new(),
        });
        z.issue_demo_refresh();
        z
    }

    fn fresh_state(demo: Demo) -> ZendeskState {
        ZendeskState {
            demo,
            objects: build_collections(demo),
            comments: HashMap::new(),
            webhooks: BTreeMap::new(),
            triggers: BTreeMap::new(),
            jobs: VecDeque::new(),
            minute: Window::default(),
            incremental_minute: Window::default(),
        }
    }

    fn issue_demo_refresh(&self) {
        self.hub.tokens.put_refresh(
            REFRESH_TOKEN.into(),
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

    fn url(&self, path: &str) -> String {
        format!("{}/api/v2/{path}", self.base())
    }

    fn render(&self, st: &ZendeskState, obj: Obj, index: u64) -> Option<Value> {
        let rec = st.objects[obj.slot()].get(index)?;
        Some(self.render_record(
            obj,
            index,
            &rec.fields,
            rec.created_ms,
            rec.modified_ms,
            None,
        ))
    }

    fn render_record(
        &self,
        obj: Obj,
        index: u64,
        f: &Fields,
        created: i64,
        updated: i64,
        deleted: Option<bool>,
    ) -> Value {
        let id = obj.id(index);
        let g = |k: &str| f.get(k).cloned().unwrap_or(Value::Null);
        match obj {
            Obj::Tickets => {
                let mut t = json!({
                    "url": self.url(&format!("tickets/{id}.json")), "id": id, "external_id": g("external_id"),
                    "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": null}},
                    "created_at": rfc3339(created), "updated_at": rfc3339(updated), "generated_timestamp": updated / 1_000,
                    "type": g("type"), "subject": g("subject"), "raw_subject": g("subject"), "description": g("description"),
                    "priority": g("priority"), "status": if deleted == Some(true) { json!("deleted") } else { g("status") },
                    "recipient": null, "requester_id": g("requester_id"), "submitter_id": g("submitter_id"),
                    "assignee_id": g("assignee_id"), "organization_id": g("organization_id"), "group_id": null,
                    "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [], "forum_topic_id": null, "problem_id": null,
                    "has_incidents": false, "is_public": true, "due_at": null, "tags": f.get("tags").cloned().unwrap_or(json!([])),
                    "custom_fields": f.get("custom_fields").cloned().unwrap_or(json!([])), "satisfaction_rating": null,
                    "sharing_agreement_ids": [], "fields": f.get("custom_fields").cloned().unwrap_or(json!([])),
                    "followup_ids": [], "brand_id": 360_000_001_u64, "allow_channelback": false, "allow_attachments": true,
                    "from_messaging_channel": false,
                });
                if t["type"].is_null() {
                    t["type"] = Value::Null;
                }
                t
            }
            Obj::Users => json!({
                "id": id, "url": self.url(&format!("users/{id}.json")), "name": g("name"), "email": g("email"),
                "created_at": rfc3339(created), "updated_at": rfc3339(updated), "time_zone": "UTC", "iana_time_zone": "Etc/UTC",
                "phone": g("phone"), "shared_phone_number": null, "photo": null, "locale_id": 1, "locale": "en-US",
                "organization_id": g("organization_id"), "role": g("role"), "verified": true, "external_id": g("external_id"),
                "tags": f.get("tags").cloned().unwrap_or(json!([])), "alias": null, "active": deleted != Some(true),
                "shared": false, "shared_agent": false, "last_login_at": null, "two_factor_auth_enabled": null,
                "signature": null, "details": "", "notes": "", "role_type": null, "custom_role_id": null, "moderator": false,
                "ticket_restriction": if g("role") == "end-user" { json!("requested") } else { Value::Null },
                "only_private_comments": false, "restricted_agent": false, "suspended": false, "default_group_id": null,
                "report_csv": false, "user_fields": f.get("user_fields").cloned().unwrap_or(json!({})),
            }),
            Obj::Organizations => json!({
                "url": self.url(&format!("organizations/{id}.json")), "id": id, "name": g("name"),
                "shared_tickets": false, "shared_comments": false, "external_id": g("external_id"),
                "created_at": rfc3339(created), "updated_at": rfc3339(updated),
                "domain_names": f.get("domain_names").cloned().unwrap_or(json!([])), "details": g("details"), "notes": g("notes"),
                "group_id": null, "tags": f.get("tags").cloned().unwrap_or(json!([])),
                "organization_fields": f.get("organization_fields").cloned().unwrap_or(json!({})),
                "deleted_at": if deleted == Some(true) { json!(rfc3339(updated)) } else { Value::Null },
            }),
        }
    }
}

fn demo_grant(scope: &str) -> Grant {
    Grant {
        vendor: Vendor::Zendesk,
        client_id: CLIENT_ID.into(),
        user: AGENT_EMAIL.into(),
        scope: scope.into(),
    }
}

// ---------------------------------------------------------------- auth and rate limits

enum Auth {
    Ok,
    Denied(Response),
}

impl Zendesk {
    fn authenticate(&self, headers: &HeaderMap, ctx: &RequestCtx, write: bool) -> Auth {
        if let Some(b) = auth_token(headers, "Basic") {
            let decoded = STANDARD
                .decode(b)
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .unwrap_or_default();
            let ok = decoded.split_once(':').is_some_and(|(user, secret)| {
                user.strip_suffix("/token")
                    .is_some_and(|email| email.eq_ignore_ascii_case(AGENT_EMAIL))
                    && secret == API_TOKEN
            });
            // Password Basic auth is off by default in Admin Center, so only API tokens pass.
            return if ok {
                Auth::Ok
            } else {
                Auth::Denied(couldnt_authenticate())
            };
        }
        if let Some(t) = auth_token(headers, "Bearer") {
            return match self.hub.tokens.check(Vendor::Zendesk, t, self.now()) {
                TokenCheck::Valid(AccessToken { grant, .. }) if !ctx.force_expired => {
                    let scopes: Vec<&str> = grant.scope.split_whitespace().collect();
                    let allowed = scopes.contains(&"write")
                        || (!write && scopes.contains(&"read"))
                        || scopes
                            .iter()
                            .any(|s| s.ends_with(":write") || (!write && s.ends_with(":read")));
                    if allowed {
                        Auth::Ok
                    } else {
                        Auth::Denied(json_response(
                            StatusCode::FORBIDDEN,
                            json!({"error": "Forbidden", "description": "You do not have access to this page. Please contact the account owner of this help desk for further help."}),
                        ))
                    }
                }
                _ => Auth::Denied(json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "invalid_token", "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons."}),
                )),
            };
        }
        Auth::Denied(couldnt_authenticate())
    }

    /// Counts a request against the per-minute bucket; `Err` is the 429.
    fn take_rate(&self, incremental: bool) -> Result<u32, Response> {
        let now = self.now();
        let mut st = self.state.lock().expect("zendesk state");
        if incremental {
            st.incremental_minute.roll(now);
            if st.incremental_minute.used >= self.limits.incremental_per_minute as u64 {
                return Err(rate_limited(
                    st.incremental_minute.reset_in(now),
                    self.limits.requests_per_minute,
                    0,
                    "Number of allowed incremental export API requests per minute exceeded",
                ));
            }
            st.incremental_minute.used += 1;
        }
        st.minute.roll(now);
        if st.minute.used >= self.limits.requests_per_minute as u64 {
            return Err(rate_limited(
                st.minute.reset_in(now),
                self.limits.requests_per_minute,
                0,
                "Number of allowed API requests per minute exceeded",
            ));
        }
        st.minute.used += 1;
        Ok(self.limits.requests_per_minute - st.minute.used as u32)
    }

    /// Authentication, rate limit and the rate headers every API response carries.
    fn guarded(
        &self,
        headers: &HeaderMap,
        ctx: &RequestCtx,
        write: bool,
        incremental: bool,
        f: impl FnOnce() -> Response,
    ) -> Response {
        if let Auth::Denied(r) = self.authenticate(headers, ctx, write) {
            return r;
        }
        let remaining = match self.take_rate(incremental) {
            Ok(r) => r,
            Err(r) => return r,
        };
        let mut resp = f();
        set_header(&mut resp, "X-Rate-Limit", self.limits.requests_per_minute);
        set_header(&mut resp, "X-Rate-Limit-Remaining", remaining);
        let reset = self
            .state
            .lock()
            .expect("zendesk state")
            .minute
            .reset_in(self.now());
        set_header(
            &mut resp,
            "ratelimit-limit",
            self.limits.requests_per_minute,
        );
        set_header(&mut resp, "ratelimit-remaining", remaining);
        set_header(&mut resp, "ratelimit-reset", reset);
        resp
    }
}

fn couldnt_authenticate() -> Response {
    let mut r = json_response(
        StatusCode::UNAUTHORIZED,
        json!({"error": "Couldn't authenticate you"}),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Web Password\""),
    );
    r
}

fn rate_limited(retry_after: i64, limit: u32, remaining: u32, message: &str) -> Response {
    let mut r = (StatusCode::TOO_MANY_REQUESTS, message.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    set_header(&mut r, "Retry-After", retry_after.max(1));
    set_header(&mut r, "X-Rate-Limit", limit);
    set_header(&mut r, "X-Rate-Limit-Remaining", remaining);
    r
}

// ---------------------------------------------------------------- OAuth

async fn authorize_page(RawQuery(q): RawQuery) -> Response {
    let p: AuthorizeParams =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    oauth::consent_page(Vendor::Zendesk, "/oauth/authorizations", CLIENT_ID, &p)
}

async fn authorize_decision(State(z): State<Arc<Zendesk>>, body: Bytes) -> Response {
    let p: AuthorizeParams = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    oauth::decide(
        &oauth::Consent {
            vendor: Vendor::Zendesk,
            known_client: CLIENT_ID,
            user: AGENT_EMAIL,
            code_lifetime_ms: z.code_ms,
            code_prefix: "",
        },
        &z.hub.tokens,
        z.now(),
        &p,
        &[],
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        json!({"error": error, "error_description": description}),
    )
}

async fn tokens(
    State(z): State<Arc<Zendesk>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = token_params(q.as_deref(), &headers, &body);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    }
    let invalid_grant = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
        )
    };
    let secs = |k: &str, default_ms: i64| -> Result<i64, Response> {
        match p.get(k) {
            None => Ok(default_ms),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| n * 1_000)
                .ok_or_else(|| {
                    oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        &format!("{k} must be a positive number of seconds"),
                    )
                }),
        }
    };
    let (access_ms, refresh_ms) = match (
        secs("expires_in", z.access_ms),
        secs("refresh_token_expires_in", z.refresh_ms),
    ) {
        (Ok(a), Ok(r)) => (a, r),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let now = z.now();
    let grant = match get("grant_type") {
        "authorization_code" => {
            let Some(code) = z.hub.tokens.take_code(get("code")) else {
                return invalid_grant();
            };
            if code.grant.vendor != Vendor::Zendesk
                || code.expires_ms <= now
                || code.redirect_uri != get("redirect_uri")
            {
                return invalid_grant();
            }
            if let Some(challenge) = &code.code_challenge {
                let verifier = get("code_verifier");
                let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
                if verifier.is_empty() || URL_SAFE_NO_PAD.encode(digest.as_ref()) != *challenge {
                    return invalid_grant();
                }
            }
            code.grant
        }
        "refresh_token" => {
            let rt = get("refresh_token");
            let Some(stored) = z
                .hub
                .tokens
                .refresh(rt)
                .filter(|r| r.grant.vendor == Vendor::Zendesk && r.expires_ms > now)
            else {
                return invalid_grant();
            };
            // Rotation: the old refresh token and its access tokens stop working now.
            z.hub.tokens.revoke_refresh(rt);
            stored.grant
        }
        "client_credentials" => Grant {
            vendor: Vendor::Zendesk,
            client_id: CLIENT_ID.into(),
            user: AGENT_EMAIL.into(),
            scope: p.get("scope").cloned().unwrap_or_else(|| DEMO_SCOPE.into()),
        },
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            );
        }
    };
    let with_refresh = get("grant_type") != "client_credentials";
    let refresh = with_refresh.then(|| {
        let r = z.hub.tokens.random_hex(32);
        z.hub.tokens.put_refresh(
            r.clone(),
            RefreshToken {
                grant: grant.clone(),
                expires_ms: now + refresh_ms,
                minted: VecDeque::new(),
            },
        );
        r
    });
    let access = z.hub.tokens.random_hex(32);
    z.hub.tokens.put_access(
        access.clone(),
        AccessToken {
            grant: grant.clone(),
            expires_ms: now + access_ms,
            refresh: refresh.clone(),
        },
    );
    let mut body = json!({"access_token": access, "token_type": "bearer", "scope": grant.scope, "expires_in": access_ms / 1_000});
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
        body["refresh_token_expires_in"] = json!(refresh_ms / 1_000);
    }
    json_response(StatusCode::OK, body)
}

// ---------------------------------------------------------------- listing

/// A list answer: cursor pagination when any `page[...]` parameter is present, else offset.
impl Zendesk {
    fn list(
        &self,
        obj: Obj,
        q: Option<&str>,
        path: &str,
        filter: Option<&dyn Fn(&Value) -> bool>,
    ) -> Response {
        let p = query_params(q);
        let st = self.state.lock().expect("zendesk state");
        let coll = &st.objects[obj.slot()];
        let cursor_mode = p.keys().any(|k| k.starts_with("page["));
        if cursor_mode {
            let size = match p.get("page[size]").map(|s| s.parse::<u64>()) {
                None => 100,
                Some(Ok(n)) if n >= 1 && n <= self.limits.max_page_size => n,
                Some(_) => {
                    return bad_request(
                        "InvalidPaginationParameter",
                        &format!(
                            "page[size] must be a number between 1 and {}",
                            self.limits.max_page_size
                        ),
                    );
                }
            };
            let desc = p.get("sort").is_some_and(|s| s.starts_with('-'));
            let dir = if desc { Dir::Desc } else { Dir::Asc };
            let (after, before) = (p.get("page[after]"), p.get("page[before]"));
            let decode = |c: &String| {
                decode_cursor(c)
                    .and_then(|s| s.strip_prefix("i:").and_then(|n| n.parse::<u64>().ok()))
            };
            let mut items: Vec<u64>;
            let has_more;
            if let Some(b) = before {
                let Some(pos) = decode(b) else {
                    return bad_request(
                        "InvalidPaginationParameter",
                        "page[before] is not a cursor this endpoint issued",
                    );
                };
                let rev = if dir == Dir::Asc { Dir::Desc } else { Dir::Asc };
                let mut it = coll.scan(rev, Some(pos)).filter(|i| {
                    filter.is_none_or(|f| self.render(&st, obj, *i).is_some_and(|v| f(&v)))
                });
                items = it.by_ref().take(size as usize).collect();
                has_more = it.next().is_some();
                items.reverse();
            } else {
                let start = match after {
                    Some(a) => match decode(a) {
                        Some(pos) => Some(pos),
                        None => {
                            return bad_request(
                                "InvalidPaginationParameter",
                                "page[after] is not a cursor this endpoint issued",
                            );
                        }
                    },
                    None => None,
                };
                let mut it = coll.scan(dir, start).filter(|i| {
                    filter.is_none_or(|f| self.render(&st, obj, *i).is_some_and(|v| f(&v)))
                });
                items = it.by_ref().take(size as usize).collect();
                has_more = it.next().is_some();
            }
            let rows: Vec<Value> = items
                .iter()
                .filter_map(|i| self.render(&st, obj, *i))
                .collect();
            let after_cursor = items.last().map(|i| encode_cursor(&format!("i:{i}")));
            let before_cursor = items.first().map(|i| encode_cursor(&format!("i:{i}")));
            let link = |k: &str, c: &Option<String>| {
                c.as_ref().map(|c| {
                    format!(
                        "{}.json?page%5B{k}%5D={c}&page%5Bsize%5D={size}",
                        self.url(path)
                    )
                })
            };
            return json_response(
                StatusCode::OK,
                json!({
                    obj.plural(): rows,
                    "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
                    "links": {"next": if has_more { link("after", &after_cursor) } else { None }, "prev": link("before", &before_cursor)},
                }),
            );
        }
        let per_page = p
            .get("per_page")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(100)
            .clamp(1, self.limits.max_page_size);
        let page = p
            .get("page")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1)
            .max(1);
        let offset = (page - 1) * per_page;
        if offset >= self.limits.offset_records {
            return bad_request(
                "InvalidPaginationParameter",
                &format!(
                    "Offset pagination is limited to the first {} records. Use cursor pagination (page[size], page[after]) instead.",
                    self.limits.offset_records
                ),
            );
        }
        let (rows, total): (Vec<Value>, u64) = match filter {
            None => {
                let rows = coll
                    .scan(Dir::Asc, None)
                    .skip(offset as usize)
                    .take(per_page as usize)
                    .filter_map(|i| self.render(&st, obj, i))
                    .collect();
                (rows, coll.len())
            }
            Some(f) => {
                let all: Vec<Value> = coll
                    .scan(Dir::Asc, None)
                    .filter_map(|i| self.render(&st, obj, i))
                    .filter(|v| f(v))
                    .collect();
                let total = all.len() as u64;
                (
                    all.into_iter()
                        .skip(offset as usize)
                        .take(per_page as usize)
                        .collect(),
                    total,
                )
            }
        };
        let next = (offset + per_page < total).then(|| {
            format!(
                "{}.json?page={}&per_page={per_page}",
                self.url(path),
                page + 1
            )
        });
        let prev = (page > 1).then(|| {
            format!(
                "{}.json?page={}&per_page={per_page}",
                self.url(path),
                page - 1
            )
        });
        json_response(
            StatusCode::OK,
            json!({obj.plural(): rows, "next_page": next, "previous_page": prev, "count": total}),
        )
    }
}

async fn list_kind(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let obj = match kind.as_str() {
        "tickets" => Obj::Tickets,
        "users" => Obj::Users,
        "organizations" => Obj::Organizations,
        _ => return invalid_endpoint(),
    };
    z.guarded(&headers, &ctx, false, false, || {
        z.list(obj, q.as_deref(), obj.plural(), None)
    })
}

async fn org_users(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<u64>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    z.guarded(&headers, &ctx, false, false, || {
        {
            let st = z.state.lock().expect("zendesk state");
            if Obj::Organizations
                .index(id)
                .and_then(|i| z.render(&st, Obj::Organizations, i))
                .is_none()
            {
                return not_found();
            }
        }
        let f = move |v: &Value| v["organization_id"] == json!(id);
        z.list(
            Obj::Users,
            q.as_deref(),
            &format!("organizations/{id}/users"),
            Some(&f),
        )
    })
}

/// `GET /api/v2/users/search?query=email:x` (or a plain term) and `?external_id=`;
/// `GET /api/v2/organizations/search?external_id=` or `?name=`.
async fn search(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let obj = match kind.as_str() {
        "users" => Obj::Users,
        "organizations" => Obj::Organizations,
        _ => return invalid_endpoint(),
    };
    z.guarded(&headers, &ctx, false, false, || {
        let p = query_params(q.as_deref());
        let mut st = z.state.lock().expect("zendesk state");
        let coll = obj.slot();
        let found: Vec<u64> = if let Some(x) = p.get("external_id") {
            st.objects[coll].find("external_id", &json!(x))
        } else if let (Obj::Organizations, Some(n)) = (obj, p.get("name")) {
            st.objects[coll].find("name", &json!(n))
        } else if let (Obj::Users, Some(query)) = (obj, p.get("query")) {
            match query.split_once(':') {
                Some(("email", e)) => st.objects[coll].find("email", &json!(e.trim_matches('"'))),
                Some((field, _)) if !matches!(field, "email") => {
                    return bad_request("InvalidValue", &format!("the sandbox searches users by email:<address>, external_id or a plain term, not {field}:"));
                }
                _ => {
                    let term = query.to_lowercase();
                    let c = &st.objects[coll];
                    c.scan(Dir::Asc, None)
                        .filter(|i| c.get(*i).is_some_and(|r| ["name", "email"].iter().any(|f| r.fields.get(*f).and_then(Value::as_str).is_some_and(|v| v.to_lowercase().contains(&term)))))
                        .take(1_000)
                        .collect()
                }
            }
        } else {
            return bad_request("InvalidValue", "give query=, external_id= or (organizations) name=");
        };
        let rows: Vec<Value> = found.iter().filter_map(|i| z.render(&st, obj, *i)).collect();
        let count = rows.len();
        json_response(StatusCode::OK, json!({obj.plural(): rows, "next_page": null, "previous_page": null, "count": count}))
    })
}

async fn get_one(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let obj = match kind.as_str() {
        "tickets" => Obj::Tickets,
        "users" => Obj::Users,
        "organizations" => Obj::Organizations,
        _ => return invalid_endpoint(),
    };
    z.guarded(&headers, &ctx, false, false, || {
        let st = z.state.lock().expect("zendesk state");
        // Every caller acts as the demo agent, so `me` is the agent.
        let id = if obj == Obj::Users && id == "me" {
            Obj::Users.id(0).to_string()
        } else {
            id
        };
        match id
            .parse::<u64>()
            .ok()
            .and_then(|id| obj.index(id))
            .and_then(|i| z.render(&st, obj, i))
        {
            Some(v) => json_response(StatusCode::OK, json!({obj.singular(): v})),
            None => not_found(),
        }
    })
}

fn invalid_endpoint() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": "InvalidEndpoint", "description": "Not found"}),
    )
}

// ---------------------------------------------------------------- writes

/// A webhook event to deliver after the state lock is released.
struct Event {
    kind: &'static str,
    subject: String,
    detail: Value,
    event: Value,
}

impl Zendesk {
    fn validate_user(
        &self,
        st: &mut ZendeskState,
        input: &Fields,
        existing: Option<u64>,
    ) -> Result<Fields, Invalid> {
        let mut out = Fields::new();
        for (k, v) in input {
            match k.as_str() {
                "id" | "url" | "created_at" | "updated_at" => {}
                "email" => {
                    let e = v.as_str().unwrap_or("");
                    if !valid_email(e) {
                        return Err(invalid(
                            "email",
                            format!("Email: {e} is not properly formatted"),
                            "InvalidFormat",
                        ));
                    }
                    let clash = st.objects[Obj::Users.slot()]
                        .find("email", v)
                        .into_iter()
                        .any(|i| Some(i) != existing);
                    if clash {
                        return Err(invalid(
                            "email",
                            format!("Email: {e} is already being used by another user"),
                            "DuplicateValue",
                        ));
                    }
                    out.insert(k.clone(), json!(e.to_lowercase()));
                }
                "role" => {
                    if !v
                        .as_str()
                        .is_some_and(|r| matches!(r, "end-user" | "agent" | "admin"))
                    {
                        return Err(invalid(
                            "role",
                            format!("Role: {v} is not a valid role"),
                            "InvalidValue",
                        ));
                    }
                    out.insert(k.clone(), v.clone());
                }
                "organization_id" => {
                    if !v.is_null() {
                        let ok = parse_u64(v)
                            .and_then(|id| Obj::Organizations.index(id))
                            .is_some_and(|i| st.objects[Obj::Organizations.slot()].is_live(i));
                        if !ok {
                            return Err(invalid(
                                "organization_id",
                                "Organization: is invalid".into(),
                                "InvalidValue",
                            ));
                        }
                    }
                    out.insert(
                        k.clone(),
                        v.as_str()
                            .and_then(|s| s.parse::<u64>().ok())
                            .map(|n| json!(n))
                            .unwrap_or_else(|| v.clone()),
                    );
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        if existing.is_none() {
            let name = out
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_string();
            if name.is_empty() {
                return Err(invalid(
                    "name",
                    "Name: cannot be blank".into(),
                    "BlankValue",
                ));
            }
            out.entry("role").or_insert(json!("end-user"));
        }
        Ok(out)
    }

    fn validate_org(
        &self,
        st: &mut ZendeskState,
        input: &Fields,
        existing: Option<u64>,
    ) -> Result<Fields, Invalid> {
        let mut out = Fields::new();
        for (k, v) in input {
            match k.as_str() {
                "id" | "url" | "created_at" | "updated_at" => {}
                "name" => {
                    let n = v.as_str().unwrap_or("").trim();
                    if n.is_empty() {
                        return Err(invalid(
                            "name",
                            "Name: cannot be blank".into(),
                            "BlankValue",
                        ));
                    }
                    let clash = st.objects[Obj::Organizations.slot()]
                        .find("name", v)
                        .into_iter()
                        .any(|i| Some(i) != existing);
                    if clash {
                        return Err(invalid(
                            "name",
                            "Name: has already been taken".into(),
                            "DuplicateValue",
                        ));
                    }
                    out.insert(k.clone(), json!(n));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        if existing.is_none() && !out.contains_key("name") {
            return Err(invalid(
                "name",
                "Name: cannot be blank".into(),
                "BlankValue",
            ));
        }
        Ok(out)
    }

    /// Validates a ticket create/update; returns fields to store and the comment to add.
    fn validate_ticket(
        &self,
        st: &mut ZendeskState,
        input: &Fields,
        existing: Option<u64>,
        events: &mut Vec<Event>,
    ) -> Result<(Fields, Option<Value>), Invalid> {
        let now = self.now();
        if let Some(i) = existing {
            let status = st.objects[Obj::Tickets.slot()]
                .get(i)
                .and_then(|r| r.fields.get("status").cloned());
            if status == Some(json!("closed")) {
                return Err(invalid(
                    "status",
                    "Status: closed prevents ticket update".into(),
                    "ClosedPreventsUpdate",
                ));
            }
        }
        let mut out = Fields::new();
        let mut comment: Option<Value> = None;
        for (k, v) in input {
            match k.as_str() {
                "id" | "url" | "created_at" | "updated_at" => {}
                "comment" => {
                    let body = v
                        .get("html_body")
                        .or_else(|| v.get("body"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    if body.is_empty() {
                        return Err(invalid(
                            "comment",
                            "Comment: cannot be blank".into(),
                            "BlankValue",
                        ));
                    }
                    comment = Some(v.clone());
                }
                "status" => {
                    if !v.as_str().is_some_and(|s| TICKET_STATUSES.contains(&s)) {
                        return Err(invalid(
                            "status",
                            format!("Status: {v} is not valid"),
                            "InvalidValue",
                        ));
                    }
                    out.insert(k.clone(), v.clone());
                }
                "priority" => {
                    if !(v.is_null() || v.as_str().is_some_and(|s| PRIORITIES.contains(&s))) {
                        return Err(invalid(
                            "priority",
                            format!("Priority: {v} is not valid"),
                            "InvalidValue",
                        ));
                    }
                    out.insert(k.clone(), v.clone());
                }
                "type" => {
                    if !(v.is_null() || v.as_str().is_some_and(|s| TICKET_TYPES.contains(&s))) {
                        return Err(invalid(
                            "type",
                            format!("Type: {v} is not valid"),
                            "InvalidValue",
                        ));
                    }
                    out.insert(k.clone(), v.clone());
                }
                "requester_id" | "submitter_id" | "assignee_id" => {
                    let ok = parse_u64(v)
                        .and_then(|id| Obj::Users.index(id))
                        .is_some_and(|i| st.objects[Obj::Users.slot()].is_live(i));
                    if !ok {
                        let field = k.trim_end_matches("_id");
                        let title = format!("{}{}", field[..1].to_uppercase(), &field[1..]);
                        return Err(invalid(
                            field,
                            format!("{title}: is invalid"),
                            "InvalidValue",
                        ));
                    }
                    out.insert(k.clone(), json!(parse_u64(v)));
                }
                "requester" => {
                    // Find or create the requester by email, as Zendesk does.
                    let email = v.get("email").and_then(Value::as_str).unwrap_or("");
                    if !valid_email(email) {
                        return Err(invalid(
                            "requester",
                            format!("Requester: Email: {email} is not properly formatted"),
                            "InvalidValue",
                        ));
                    }
                    let found = st.objects[Obj::Users.slot()]
                        .find("email", &json!(email))
                        .first()
                        .copied();
                    let idx = match found {
                        Some(i) => i,
                        None => {
                            let name = v.get("name").and_then(Value::as_str).unwrap_or(email);
                            let f = json!({"name": name, "email": email.to_lowercase(), "role": "end-user", "organization_id": null, "tags": []});
                            let i = st.objects[Obj::Users.slot()]
                                .insert(f.as_object().cloned().unwrap_or_default(), now);
                            events.push(self.user_event(
                                st,
                                "zen:event-type:user.created",
                                i,
                                json!({}),
                            ));
                            i
                        }
                    };
                    out.insert("requester_id".into(), json!(Obj::Users.id(idx)));
                }
                "organization_id" => {
                    if !v.is_null() {
                        let ok = parse_u64(v)
                            .and_then(|id| Obj::Organizations.index(id))
                            .is_some_and(|i| st.objects[Obj::Organizations.slot()].is_live(i));
                        if !ok {
                            return Err(invalid(
                                "organization_id",
                                "Organization: is invalid".into(),
                                "InvalidValue",
                            ));
                        }
                    }
                    out.insert(k.clone(), v.clone());
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        if existing.is_none() {
            let description = comment
                .as_ref()
                .and_then(|c| c.get("body").or_else(|| c.get("html_body")))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    out.get("description")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            let Some(description) = description.filter(|d| !d.trim().is_empty()) else {
                return Err(invalid(
                    "description",
                    "Description: cannot be blank".into(),
                    "BlankValue",
                ));
            };
            if comment.is_none() {
                comment = Some(json!({"body": description}));
            }
            out.insert("description".into(), json!(description));
            out.entry("status").or_insert(json!("new"));
            out.entry("priority").or_insert(Value::Null);
            out.entry("type").or_insert(Value::Null);
            out.entry("tags").or_insert(json!([]));
            let requester = out
                .get("requester_id")
                .cloned()
                .unwrap_or(json!(Obj::Users.id(0)));
            out.insert("requester_id".into(), requester.clone());
            out.entry("submitter_id").or_insert(requester);
            out.entry("assignee_id").or_insert(Value::Null);
            if !out.contains_key("organization_id") {
                let org = parse_u64(&out["requester_id"])
                    .and_then(|id| Obj::Users.index(id))
                    .and_then(|i| st.objects[Obj::Users.slot()].get(i))
                    .and_then(|r| r.fields.get("organization_id").cloned())
                    .unwrap_or(Value::Null);
                out.insert("organization_id".into(), org);
            }
            out.insert("comment_count".into(), json!(0));
        }
        Ok((out, comment))
    }

    fn comment_count(&self, st: &ZendeskState, index: u64) -> u64 {
        let base = st.objects[Obj::Tickets.slot()]
            .get(index)
            .and_then(|r| r.fields.get("comment_count").and_then(Value::as_u64))
            .unwrap_or(0);
        base + st.comments.get(&index).map(|c| c.len() as u64).unwrap_or(0)
    }

    /// The generated and added comments of a ticket, oldest first.
    fn comments_of(&self, st: &ZendeskState, index: u64) -> Vec<Value> {
        let Some(rec) = st.objects[Obj::Tickets.slot()].get(index) else {
            return Vec::new();
        };
        let generated = rec
            .fields
            .get("comment_count")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let requester = rec
            .fields
            .get("requester_id")
            .cloned()
            .unwrap_or(Value::Null);
        let mut out: Vec<Value> = (0..generated)
            .map(|c| {
                let body = st.demo.ticket_comment(index, c);
                let author = if c % 2 == 0 { requester.clone() } else { json!(Obj::Users.id(0)) };
                json!({
                    "id": COMMENT_ID_BASE + index * 10_000 + c, "type": "Comment", "author_id": author, "body": body,
                    "html_body": format!("<div class=\"zd-comment\"><p>{body}</p></div>"), "plain_body": body, "public": true,
                    "attachments": [], "audit_id": COMMENT_ID_BASE + index * 10_000 + c, "via": {"channel": "web"},
                    "created_at": rfc3339(rec.created_ms + c as i64 * 60_000), "metadata": {},
                })
            })
            .collect();
        out.extend(st.comments.get(&index).cloned().unwrap_or_default());
        out
    }

    fn add_comment(
        &self,
        st: &mut ZendeskState,
        index: u64,
        c: &Value,
        now: i64,
    ) -> Result<Value, Invalid> {
        if self.comment_count(st, index) >= self.limits.max_comments_per_ticket {
            return Err(invalid(
                "base",
                format!(
                    "Ticket has reached the maximum of {} comments",
                    self.limits.max_comments_per_ticket
                ),
                "TooManyComments",
            ));
        }
        let n = self.comment_count(st, index);
        let body = c
            .get("body")
            .or_else(|| c.get("html_body"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let author = c
            .get("author_id")
            .and_then(parse_u64)
            .unwrap_or(Obj::Users.id(0));
        let comment = json!({
            "id": COMMENT_ID_BASE + index * 10_000 + n, "type": "Comment", "author_id": author, "body": body,
            "html_body": format!("<div class=\"zd-comment\"><p>{body}</p></div>"), "plain_body": body,
            "public": c.get("public").and_then(Value::as_bool).unwrap_or(true), "attachments": [],
            "audit_id": COMMENT_ID_BASE + index * 10_000 + n, "via": {"channel": "api"}, "created_at": rfc3339(now), "metadata": {},
        });
        st.comments.entry(index).or_default().push(comment.clone());
        Ok(comment)
    }

    fn user_event(&self, st: &ZendeskState, kind: &'static str, index: u64, event: Value) -> Event {
        let rec = st.objects[Obj::Users.slot()].get(index).or_else(|| {
            st.objects[Obj::Users.slot()]
                .tombstones()
                .find(|(i, _)| *i == index)
                .map(|(_, t)| t.last.clone())
        });
        let f = rec.map(|r| r.fields).unwrap_or_default();
        let id = Obj::Users.id(index);
        Event {
            kind,
            subject: format!("zen:user:{id}"),
            detail: json!({
                "id": id.to_string(), "email": f.get("email"), "role": f.get("role"), "name": f.get("name"),
                "organization_id": f.get("organization_id").and_then(parse_u64).map(|n| n.to_string()).unwrap_or_else(|| "0".into()),
                "external_id": f.get("external_id"), "created_at": rfc3339(self.now()), "updated_at": rfc3339(self.now()),
            }),
            event,
        }
    }

    fn ticket_event(&self, kind: &'static str, index: u64, f: &Fields, event: Value) -> Event {
        let id = Obj::Tickets.id(index);
        let s = |k: &str| f.get(k).and_then(parse_u64).map(|n| n.to_string());
        Event {
            kind,
            subject: format!("zen:ticket:{id}"),
            detail: json!({
                "id": id.to_string(), "subject": f.get("subject"), "status": f.get("status").and_then(Value::as_str).map(str::to_uppercase),
                "priority": f.get("priority").and_then(Value::as_str).map(str::to_uppercase), "type": f.get("type").and_then(Value::as_str).map(str::to_uppercase),
                "requester_id": s("requester_id"), "submitter_id": s("submitter_id"), "assignee_id": s("assignee_id"),
                "organization_id": s("organization_id"), "tags": f.get("tags"), "created_at": rfc3339(self.now()), "updated_at": rfc3339(self.now()),
            }),
            event,
        }
    }

    fn org_event(&self, kind: &'static str, index: u64, f: &Fields) -> Event {
        let id = Obj::Organizations.id(index);
        Event {
            kind,
            subject: format!("zen:organization:{id}"),
            detail: json!({"id": id.to_string(), "name": f.get("name"), "external_id": f.get("external_id"), "created_at": rfc3339(self.now()), "updated_at": rfc3339(self.now())}),
            event: json!({}),
        }
    }

    /// Creates or updates one record; returns (index, created?) or the 4xx answer.
    fn save(
        &self,
        st: &mut ZendeskState,
        obj: Obj,
        input: &Fields,
        existing: Option<u64>,
        events: &mut Vec<Event>,
    ) -> Result<(u64, bool), Invalid> {
        let now = self.now();
        match obj {
            Obj::Users => {
                let f = self.validate_user(st, input, existing)?;
                match existing {
                    Some(i) => {
                        let old_name = st.objects[obj.slot()]
                            .get(i)
                            .and_then(|r| r.fields.get("name").cloned());
                        st.objects[obj.slot()].merge(i, &f, now);
                        if f.get("name").is_some_and(|n| Some(n) != old_name.as_ref()) {
                            events.push(self.user_event(
                                st,
                                "zen:event-type:user.name_changed",
                                i,
                                json!({"current": f["name"], "previous": old_name}),
                            ));
                        }
                        Ok((i, false))
                    }
                    None => {
                        let i = st.objects[obj.slot()].insert(f, now);
                        events.push(self.user_event(
                            st,
                            "zen:event-type:user.created",
                            i,
                            json!({}),
                        ));
                        Ok((i, true))
                    }
                }
            }
            Obj::Organizations => {
                let f = self.validate_org(st, input, existing)?;
                match existing {
                    Some(i) => {
                        st.objects[obj.slot()].merge(i, &f, now);
                        Ok((i, false))
                    }
                    None => {
                        let i = st.objects[obj.slot()].insert(f.clone(), now);
                        events.push(self.org_event("zen:event-type:organization.created", i, &f));
                        Ok((i, true))
                    }
                }
            }
            Obj::Tickets => {
                let (f, comment) = self.validate_ticket(st, input, existing, events)?;
                let (i, created) = match existing {
                    Some(i) => {
                        let old_status = st.objects[obj.slot()]
                            .get(i)
                            .and_then(|r| r.fields.get("status").cloned());
                        if let Some(c) = &comment {
                            let added = self.add_comment(st, i, c, now)?;
                            let all = st.objects[obj.slot()]
                                .get(i)
                                .map(|r| r.fields)
                                .unwrap_or_default();
                            events.push(self.ticket_event("zen:event-type:ticket.comment_added", i, &all, json!({"comment": {"id": added["id"].to_string(), "body": added["body"], "is_public": added["public"], "author": {"id": added["author_id"].to_string()}}})));
                        }
                        st.objects[obj.slot()].merge(i, &f, now);
                        if let Some(new) =
                            f.get("status").filter(|s| Some(*s) != old_status.as_ref())
                        {
                            let all = st.objects[obj.slot()]
                                .get(i)
                                .map(|r| r.fields)
                                .unwrap_or_default();
                            events.push(self.ticket_event("zen:event-type:ticket.status_changed", i, &all, json!({"current": new.as_str().map(str::to_uppercase), "previous": old_status.and_then(|s| s.as_str().map(str::to_uppercase))})));
                        }
                        (i, false)
                    }
                    None => {
                        let i = st.objects[obj.slot()].insert(f.clone(), now);
                        if let Some(c) = &comment {
                            self.add_comment(st, i, c, now)?;
                        }
                        events.push(self.ticket_event(
                            "zen:event-type:ticket.created",
                            i,
                            &f,
                            json!({}),
                        ));
                        (i, true)
                    }
                };
                // Triggers run on every ticket save, after the change is applied.
                let all = st.objects[obj.slot()]
                    .get(i)
                    .map(|r| r.fields)
                    .unwrap_or_default();
                events.push(Event {
                    kind: if created {
                        TRIGGER_CREATE
                    } else {
                        TRIGGER_CHANGE
                    },
                    subject: i.to_string(),
                    detail: Value::Object(all),
                    event: json!({}),
                });
                Ok((i, created))
            }
        }
    }

    fn single_write(self: &Arc<Self>, obj: Obj, id: Option<u64>, body: &[u8]) -> Response {
        let v = match parse_json_body(body) {
            Ok(v) => v,
            Err(msg) => return bad_request("InvalidJSON", &msg),
        };
        let Some(input) = v.get(obj.singular()).and_then(Value::as_object) else {
            return bad_request(
                "InvalidParameter",
                &format!("the body must be {{\"{}\": {{...}}}}", obj.singular()),
            );
        };
        let mut events = Vec::new();
        let result = {
            let mut st = self.state.lock().expect("zendesk state");
            let existing = match id {
                Some(id) => match obj.index(id).filter(|i| st.objects[obj.slot()].is_live(*i)) {
                    Some(i) => Some(i),
                    None => return not_found(),
                },
                None => None,
            };
            self.save(&mut st, obj, input, existing, &mut events).map(|(i, created)| {
                let mut body = json!({obj.singular(): self.render(&st, obj, i)});
                if obj == Obj::Tickets {
                    body["audit"] = json!({"id": COMMENT_ID_BASE + i * 10_000 + self.comment_count(&st, i), "ticket_id": obj.id(i), "created_at": rfc3339(self.now()), "author_id": Obj::Users.id(0), "events": []});
                }
                (body, created)
            })
        };
        self.deliver(events);
        match result {
            Ok((body, created)) => json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                body,
            ),
            Err(e) => e.response(),
        }
    }
}

async fn create(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let obj = match kind.as_str() {
        "tickets" => Obj::Tickets,
        "users" => Obj::Users,
        "organizations" => Obj::Organizations,
        _ => return invalid_endpoint(),
    };
    z.guarded(&headers, &ctx, true, false, || {
        z.single_write(obj, None, &body)
    })
}

async fn update(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let obj = match kind.as_str() {
        "tickets" => Obj::Tickets,
        "users" => Obj::Users,
        "organizations" => Obj::Organizations,
        _ => return invalid_endpoint(),
    };
    let Ok(id) = id.parse::<u64>() else {
        return not_found();
    };
    z.guarded(&headers, &ctx, true, false, || {
        z.single_write(obj, Some(id), &body)
    })
}

async fn delete(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((kind, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if id == "destroy_many" {
        return bulk(
            State(z),
            Extension(ctx),
            Path((kind, id)),
            RawQuery(q),
            headers,
            Bytes::new(),
        )
        .await;
    }
    let obj = match kind.as_str() {
        "tickets" => Obj::Tickets,
        "users" => Obj::Users,
        "organizations" => Obj::Organizations,
        _ => return invalid_endpoint(),
    };
    let Ok(id) = id.parse::<u64>() else {
        return not_found();
    };
    z.guarded(&headers, &ctx, true, false, || {
        let now = z.now();
        let mut events = Vec::new();
        let resp = {
            let mut st = z.state.lock().expect("zendesk state");
            let Some(i) = obj.index(id).filter(|i| st.objects[obj.slot()].is_live(*i)) else {
                return not_found();
            };
            if obj == Obj::Users && i == 0 {
                return invalid(
                    "base",
                    "You cannot delete the account owner".into(),
                    "PermissionDenied",
                )
                .response();
            }
            let fields = st.objects[obj.slot()]
                .get(i)
                .map(|r| r.fields)
                .unwrap_or_default();
            st.objects[obj.slot()].delete(i, now);
            match obj {
                Obj::Users => {
                    events.push(z.user_event(&st, "zen:event-type:user.deleted", i, json!({})));
                    // Deleting a user answers with the now inactive user.
                    json_response(
                        StatusCode::OK,
                        json!({"user": z.render_record(obj, i, &fields, now, now, Some(true))}),
                    )
                }
                Obj::Organizations => {
                    events.push(z.org_event("zen:event-type:organization.deleted", i, &fields));
                    StatusCode::NO_CONTENT.into_response()
                }
                Obj::Tickets => {
                    events.push(z.ticket_event(
                        "zen:event-type:ticket.deleted",
                        i,
                        &fields,
                        json!({}),
                    ));
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        };
        z.deliver(events);
        resp
    })
}

async fn ticket_comments(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<u64>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    z.guarded(&headers, &ctx, false, false, || {
        let st = z.state.lock().expect("zendesk state");
        let Some(i) = Obj::Tickets.index(id).filter(|i| st.objects[Obj::Tickets.slot()].is_live(*i)) else { return not_found() };
        let all = z.comments_of(&st, i);
        let p = query_params(q.as_deref());
        let size = p.get("page[size]").or(p.get("per_page")).and_then(|s| s.parse::<usize>().ok()).unwrap_or(100).clamp(1, 100);
        let start = p.get("page[after]").and_then(|c| decode_cursor(c)).and_then(|s| s.strip_prefix("c:").and_then(|n| n.parse::<usize>().ok())).map(|n| n + 1).unwrap_or(0);
        let page: Vec<Value> = all.iter().skip(start).take(size).cloned().collect();
        let has_more = all.len() > start + page.len();
        let after = (!page.is_empty()).then(|| encode_cursor(&format!("c:{}", start + page.len() - 1)));
        json_response(
            StatusCode::OK,
            json!({
                "comments": page, "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": null},
                "links": {"next": if has_more { after.as_ref().map(|a| format!("{}.json?page%5Bafter%5D={a}&page%5Bsize%5D={size}", z.url(&format!("tickets/{id}/comments")))) } else { None }, "prev": null},
                "count": all.len(),
            }),
        )
    })
}

async fn create_or_update(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let obj = match kind.as_str() {
        "users" => Obj::Users,
        "organizations" => Obj::Organizations,
        _ => return invalid_endpoint(),
    };
    z.guarded(&headers, &ctx, true, false, || {
        let v = match parse_json_body(&body) {
            Ok(v) => v,
            Err(msg) => return bad_request("InvalidJSON", &msg),
        };
        let Some(input) = v.get(obj.singular()).and_then(Value::as_object) else {
            return bad_request(
                "InvalidParameter",
                &format!("the body must be {{\"{}\": {{...}}}}", obj.singular()),
            );
        };
        let mut events = Vec::new();
        let result = {
            let mut st = z.state.lock().expect("zendesk state");
            let existing = z.match_existing(&mut st, obj, input);
            z.save(&mut st, obj, input, existing, &mut events)
                .map(|(i, created)| (json!({obj.singular(): z.render(&st, obj, i)}), created))
        };
        z.deliver(events);
        match result {
            Ok((body, created)) => json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                body,
            ),
            Err(e) => e.response(),
        }
    })
}

impl Zendesk {
    /// Upsert key rules: `id`, then `external_id`, then email (users) or name (organizations).
    fn match_existing(&self, st: &mut ZendeskState, obj: Obj, input: &Fields) -> Option<u64> {
        if let Some(i) = input
            .get("id")
            .and_then(parse_u64)
            .and_then(|id| obj.index(id))
            .filter(|i| st.objects[obj.slot()].is_live(*i))
        {
            return Some(i);
        }
        if let Some(x) = input.get("external_id").filter(|v| !v.is_null())
            && let Some(i) = st.objects[obj.slot()].find("external_id", x).first()
        {
            return Some(*i);
        }
        let key = if obj == Obj::Users { "email" } else { "name" };
        input
            .get(key)
            .filter(|v| !v.is_null())
            .and_then(|v| st.objects[obj.slot()].find(key, v).first().copied())
    }
}

// ---------------------------------------------------------------- bulk jobs

async fn bulk(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((kind, action)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let obj = match kind.as_str() {
        "tickets" => Obj::Tickets,
        "users" => Obj::Users,
        "organizations" => Obj::Organizations,
        _ => return invalid_endpoint(),
    };
    let mode = match (obj, action.as_str()) {
        (_, "create_many") => BulkMode::Create,
        (Obj::Users | Obj::Organizations, "create_or_update_many") => BulkMode::CreateOrUpdate,
        (Obj::Tickets | Obj::Users | Obj::Organizations, "update_many") => BulkMode::Update,
        (_, "destroy_many") => BulkMode::Destroy,
        _ => return invalid_endpoint(),
    };
    let z2 = Arc::clone(&z);
    z.guarded(&headers, &ctx, true, false, move || {
        z2.start_job(obj, mode, q.as_deref(), &body)
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BulkMode {
    Create,
    CreateOrUpdate,
    Update,
    /// `DELETE {kind}/destroy_many?ids=1,2`: a job deleting each record.
    Destroy,
}

impl Zendesk {
    fn start_job(
        self: &Arc<Self>,
        obj: Obj,
        mode: BulkMode,
        q: Option<&str>,
        body: &[u8],
    ) -> Response {
        // A destroy_many has no body: the ids are in the query.
        let v = match parse_json_body(body) {
            Ok(v) => v,
            Err(_) if mode == BulkMode::Destroy => Value::Null,
            Err(msg) => return bad_request("InvalidJSON", &msg),
        };
        // `update_many?ids=1,2` applies one change to many records; otherwise each item has an id.
        let ids_param = query_params(q).get("ids").cloned();
        let items: Vec<Fields> = match (mode, ids_param) {
            (BulkMode::Destroy, None) => {
                return bad_request("InvalidParameter", "destroy_many takes ids=1,2,3");
            }
            (BulkMode::Destroy, Some(ids)) => ids
                .split(',')
                .map(|id| {
                    let mut f = Fields::new();
                    f.insert("id".into(), json!(id.trim()));
                    f
                })
                .collect(),
            (BulkMode::Update, Some(ids)) => {
                let Some(change) = v.get(obj.singular()).and_then(Value::as_object) else {
                    return bad_request(
                        "InvalidParameter",
                        &format!(
                            "update_many with ids takes {{\"{}\": {{...}}}}",
                            obj.singular()
                        ),
                    );
                };
                ids.split(',')
                    .map(|id| {
                        let mut f = change.clone();
                        f.insert("id".into(), json!(id.trim()));
                        f
                    })
                    .collect()
            }
            _ => match v.get(obj.plural()).and_then(Value::as_array) {
                Some(a) => a
                    .iter()
                    .map(|x| x.as_object().cloned().unwrap_or_default())
                    .collect(),
                None => {
                    return bad_request(
                        "InvalidParameter",
                        &format!("the body must be {{\"{}\": [...]}}", obj.plural()),
                    );
                }
            },
        };
        if items.is_empty() || items.len() > self.limits.max_bulk {
            return bad_request(
                "InvalidValue",
                &format!(
                    "{} takes between 1 and {} {}",
                    obj.plural(),
                    self.limits.max_bulk,
                    obj.plural()
                ),
            );
        }
        let now = self.now();
        let job = Job {
            id: self.hub.tokens.random_hex(16),
            status: "queued",
            total: items.len(),
            progress: 0,
            results: Vec::new(),
            message: None,
            created_ms: now,
        };
        let body = self.job_json(&job);
        {
            let mut st = self.state.lock().expect("zendesk state");
            st.jobs.retain(|j| j.created_ms > now - 3_600_000);
            st.jobs.push_back(job.clone());
            while st.jobs.len() > self.limits.jobs_kept {
                st.jobs.pop_front();
            }
        }
        let this = Arc::clone(self);
        let id = job.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            this.update_job(&id, |j| j.status = "working");
            let mut events = Vec::new();
            let mut results = Vec::new();
            for (n, item) in items.iter().enumerate() {
                if mode == BulkMode::Destroy {
                    let entry = this.destroy_one(obj, item.get("id"), &mut events);
                    results.push(entry);
                    this.update_job(&id, |j| j.progress = n + 1);
                    continue;
                }
                let r = {
                    let mut st = this.state.lock().expect("zendesk state");
                    let existing = match mode {
                        BulkMode::Create | BulkMode::Destroy => None,
                        BulkMode::CreateOrUpdate => this.match_existing(&mut st, obj, item),
                        BulkMode::Update => item
                            .get("id")
                            .and_then(parse_u64)
                            .and_then(|id| obj.index(id))
                            .filter(|i| st.objects[obj.slot()].is_live(*i)),
                    };
                    if mode == BulkMode::Update && existing.is_none() {
                        Err((
                            String::from("RecordNotFound"),
                            format!(
                                "{} {} not found",
                                obj.singular(),
                                item.get("id").map(|v| v.to_string()).unwrap_or_default()
                            ),
                        ))
                    } else {
                        let mut input = item.clone();
                        input.remove("id");
                        this.save(&mut st, obj, &input, existing, &mut events)
                            .map(|(i, created)| {
                                (
                                    i,
                                    created,
                                    st.objects[obj.slot()]
                                        .get(i)
                                        .and_then(|r| r.fields.get("email").cloned()),
                                )
                            })
                            .map_err(|e| {
                                (
                                    format!(
                                        "{}{}",
                                        obj.singular()[..1].to_uppercase() + &obj.singular()[1..],
                                        if mode == BulkMode::Create {
                                            "CreateError"
                                        } else {
                                            "UpdateError"
                                        }
                                    ),
                                    e.description,
                                )
                            })
                    }
                };
                let entry = match r {
                    Ok((i, created, email)) => {
                        let mut e = json!({"id": obj.id(i), "status": if created { "Created" } else { "Updated" }});
                        if obj == Obj::Users {
                            e["email"] = email.unwrap_or(Value::Null);
                        } else {
                            e["index"] = json!(n);
                        }
                        if mode == BulkMode::Update {
                            e["success"] = json!(true);
                        }
                        e
                    }
                    Err((error, details)) => {
                        let mut e = json!({"index": n, "error": error, "details": details, "status": "Failed"});
                        if let Some(id) = item.get("id") {
                            e["id"] = id.clone();
                        }
                        e
                    }
                };
                results.push(entry);
                this.update_job(&id, |j| j.progress = n + 1);
            }
            this.update_job(&id, |j| {
                j.results = results;
                j.status = "completed";
                j.message = Some(format!("Completed at {}", rfc3339(this.now())));
            });
            this.deliver(events);
        });
        json_response(StatusCode::OK, json!({"job_status": body}))
    }

    /// One record of a `destroy_many` job: deleted (with its event), or why not.
    fn destroy_one(&self, obj: Obj, id: Option<&Value>, events: &mut Vec<Event>) -> Value {
        let shown = id.cloned().unwrap_or(Value::Null);
        let mut st = self.state.lock().expect("zendesk state");
        let Some(i) = id
            .and_then(parse_u64)
            .and_then(|n| obj.index(n))
            .filter(|i| st.objects[obj.slot()].is_live(*i))
        else {
            return json!({"id": shown, "action": "delete", "success": false, "status": "Failed", "error": "RecordNotFound", "details": format!("{} {shown} not found", obj.singular())});
        };
        if obj == Obj::Users && i == 0 {
            return json!({"id": shown, "action": "delete", "success": false, "status": "Failed", "error": "PermissionDenied", "details": "You cannot delete the account owner"});
        }
        let fields = st.objects[obj.slot()]
            .get(i)
            .map(|r| r.fields)
            .unwrap_or_default();
        let now = self.now();
        st.objects[obj.slot()].delete(i, now);
        events.push(match obj {
            Obj::Users => self.user_event(&st, "zen:event-type:user.deleted", i, json!({})),
            Obj::Organizations => self.org_event("zen:event-type:organization.deleted", i, &fields),
            Obj::Tickets => {
                self.ticket_event("zen:event-type:ticket.deleted", i, &fields, json!({}))
            }
        });
        json!({"id": obj.id(i), "action": "delete", "success": true, "status": "Deleted"})
    }

    fn update_job(&self, id: &str, f: impl FnOnce(&mut Job)) {
        let mut st = self.state.lock().expect("zendesk state");
        if let Some(j) = st.jobs.iter_mut().find(|j| j.id == id) {
            f(j);
        }
    }

    fn job_json(&self, j: &Job) -> Value {
        json!({
            "id": j.id, "url": self.url(&format!("job_statuses/{}.json", j.id)), "total": j.total, "progress": j.progress,
            "status": j.status, "message": j.message, "results": if j.status == "completed" { json!(j.results) } else { Value::Null },
        })
    }
}

async fn job_status(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    z.guarded(&headers, &ctx, false, false, || {
        let now = z.now();
        let st = z.state.lock().expect("zendesk state");
        match st
            .jobs
            .iter()
            .find(|j| j.id == id && j.created_ms > now - 3_600_000)
        {
            Some(j) => json_response(StatusCode::OK, json!({"job_status": z.job_json(j)})),
            None => not_found(),
        }
    })
}

async fn job_statuses(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
) -> Response {
    z.guarded(&headers, &ctx, false, false, || {
        let now = z.now();
        let st = z.state.lock().expect("zendesk state");
        let list: Vec<Value> = st.jobs.iter().rev().filter(|j| j.created_ms > now - 3_600_000).map(|j| z.job_json(j)).collect();
        json_response(StatusCode::OK, json!({"job_statuses": list, "next_page": null, "previous_page": null, "count": list.len()}))
    })
}

// ---------------------------------------------------------------- account settings

/// `settings.active_features` of the demo account.
const ACTIVE_FEATURES: &[(&str, bool)] = &[
    ("on_hold_status", true),
    ("user_tagging", true),
    ("ticket_tagging", true),
    ("topic_suggestion", false),
    ("voice", false),
    ("facebook_login", false),
    ("google_login", false),
    ("twitter_login", false),
    ("forum_analytics", true),
    ("agent_forwarding", false),
    ("chat", false),
    ("chat_about_my_object", false),
    ("customer_satisfaction", true),
    ("satisfaction_prediction", false),
    ("automatic_answers", false),
    ("csat_reason_code", false),
    ("screencasts", false),
    ("markdown", true),
    ("bcc_archiving", false),
    ("allow_ccs", true),
    ("advanced_analytics", false),
    ("sandbox", false),
    ("suspended_ticket_notification", false),
    ("twitter", false),
    ("facebook", false),
    ("dynamic_contents", true),
    ("light_agents", false),
    ("ticket_forms", true),
    ("user_org_fields", true),
    ("is_abusive", false),
    ("rich_content_in_emails", true),
    ("fallback_composer", false),
    ("organization_access_enabled", true),
    ("explore", false),
    ("good_data_and_explore", false),
    ("explore_on_support_pro_plan", false),
    ("explore_on_support_ent_plan", false),
    ("business_hours", true),
    ("custom_dkim_domain", false),
    ("allow_email_template_customization", true),
    ("benchmark_opt_out", false),
    ("customer_context_as_default", false),
    ("insights", false),
];

/// The on/off switches of `settings.tickets`.
const TICKET_SETTINGS: &[(&str, bool)] = &[
    ("accepted_new_collaboration_tos", true),
    ("agent_collision", true),
    ("agent_ticket_deletion", false),
    ("allow_group_reset", true),
    ("assign_default_organization", true),
    ("assign_tickets_upon_solve", true),
    ("auto_translation_enabled", false),
    ("auto_updated_ccs_followers_rules", false),
    ("chat_sla_enablement", false),
    ("collaboration", true),
    ("comments_public_by_default", true),
    ("email_attachments", true),
    ("emoji_autocompletion", true),
    ("follower_and_email_cc_collaborations", true),
    ("has_color_text", true),
    ("is_first_comment_private_enabled", true),
    ("light_agent_email_ccs_allowed", false),
    ("list_empty_views", true),
    ("list_newest_comments_first", true),
    ("markdown_ticket_comments", false),
    ("private_attachments", false),
    ("rich_text_comments", true),
    ("status_hold", true),
    ("tagging", true),
    ("using_skill_based_routing", false),
];

/// `GET /api/v2/account/settings`: the account's settings, grouped as Zendesk groups them
/// (documented: Account Settings API, "Allowed for agents"). Only groups and keys clients are
/// known to read are filled in; values are those of a Support Professional account with the
/// features the emulator serves turned on (the values are inferred; the keys are documented).
/// `active_features.organization_access_enabled` is what Airbyte's Zendesk source checks before
/// it will sync. Updating settings (`PUT`) is not emulated.
async fn account_settings(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
) -> Response {
    z.guarded(&headers, &ctx, false, false, || {
        let active_features: serde_json::Map<String, Value> = ACTIVE_FEATURES.iter().map(|(k, on)| (k.to_string(), json!(on))).collect();
        let mut tickets: serde_json::Map<String, Value> = TICKET_SETTINGS.iter().map(|(k, on)| (k.to_string(), json!(on))).collect();
        tickets.insert("maximum_personal_views_to_list".into(), json!(8));
        json_response(
            StatusCode::OK,
            json!({"settings": {
                "active_features": active_features,
                "api": {"accepted_api_agreement": true, "api_password_access": "false", "api_token_access": "true"},
                "apps": {"use": true, "create_private": true, "create_public": false},
                "billing": {"backend": "zuora"},
                "branding": {"header_color": "03363D", "page_background_color": "333333", "tab_background_color": "7FA239", "text_color": "FFFFFF", "header_logo_url": null, "favicon_url": null},
                "brands": {"default_brand_id": 360_000_001_u64, "require_brand_on_new_tickets": false},
                "groups": {"check_group_name_uniqueness": true},
                "limits": {"attachment_size": 52_428_800},
                "localization": {"locale_ids": [1], "time_zone": "UTC", "iana_time_zone": "Etc/UTC"},
                "lotus": {"prefer_lotus": true, "reporting": true, "pod_id": 999},
                "metrics": {"account_size": "100-399"},
                "rule": {"macro_most_used": true, "macro_order": "alphabetical", "skill_based_filtered_views": [], "using_skill_based_routing": false},
                "screencast": {"enabled_for_tickets": false},
                "statistics": {"forum": true, "search": true},
                "ticket_form": {"ticket_forms_instructions": "Please choose your issue below"},
                "tickets": tickets,
                "twitter": {"shorten_url": "optional"},
                "user": {"agent_created_welcome_emails": true, "end_user_phone_number_validation": false, "have_gravatars_enabled": true,
                    "language_selection": true, "multiple_organizations": false, "tagging": true, "time_zone_selection": true},
                "voice": {"enabled": false, "maximum_queue_size": 5, "maximum_queue_wait_time": 1, "only_during_business_hours": false, "recordings_public": false, "uk_mobile_forwarding": true, "logging": true, "outbound_enabled": true, "agent_confirmation_when_forwarding": true, "agent_wrap_up_after_calls": true},
            }}),
        )
    })
}

// ---------------------------------------------------------------- incremental exports

async fn incremental_cursor(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let obj = match kind.as_str() {
        "tickets" => Obj::Tickets,
        "users" => Obj::Users,
        _ => return invalid_endpoint(),
    };
    z.guarded(&headers, &ctx, false, true, || {
        z.export_cursor(obj, q.as_deref())
    })
}

impl Zendesk {
    fn export_cursor(&self, obj: Obj, q: Option<&str>) -> Response {
        let p = query_params(q);
        let now = self.now();
        let until = now - self.limits.incremental_lag.as_millis() as i64;
        let per_page = p
            .get("per_page")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(self.limits.incremental_page_size as usize)
            .clamp(1, self.limits.incremental_page_size as usize);
        let cursor: (i64, u64) = if let Some(c) = p.get("cursor") {
            match decode_cursor(c).and_then(|s| {
                let (a, b) = s.strip_prefix("x:")?.split_once(':')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            }) {
                Some(k) => k,
                None => {
                    return bad_request(
                        "InvalidValue",
                        "cursor is not a cursor this export issued; start again with start_time",
                    );
                }
            }
        } else if let Some(t) = p.get("start_time") {
            let Ok(secs) = t.parse::<i64>() else {
                return bad_request(
                    "InvalidValue",
                    "start_time must be a Unix epoch time in seconds",
                );
            };
            if secs * 1_000 > until {
                return bad_request(
                    "InvalidValue",
                    "Too recent start_time. Use a start_time at least 1 minute in the past",
                );
            }
            (secs * 1_000 - 1, u64::MAX)
        } else {
            return bad_request("InvalidValue", "start_time or cursor is required");
        };
        let st = self.state.lock().expect("zendesk state");
        let changes = st.objects[obj.slot()].changes_after(cursor, until, true, per_page + 1);
        let end = changes.len() <= per_page;
        let page = &changes[..changes.len().min(per_page)];
        let rows: Vec<Value> = page
            .iter()
            .filter_map(|c| {
                if c.deleted {
                    let t = st.objects[obj.slot()]
                        .tombstones()
                        .find(|(i, _)| *i == c.index)
                        .map(|(_, t)| t.clone())?;
                    Some(self.render_record(
                        obj,
                        c.index,
                        &t.last.fields,
                        t.last.created_ms,
                        t.deleted_ms,
                        Some(true),
                    ))
                } else {
                    self.render(&st, obj, c.index)
                }
            })
            .collect();
        let last = page.last().map(|c| c.key).unwrap_or(cursor);
        let after_cursor = encode_cursor(&format!("x:{}:{}", last.0, last.1));
        json_response(
            StatusCode::OK,
            json!({
                obj.plural(): rows,
                "after_url": self.url(&format!("incremental/{}/cursor.json?cursor={after_cursor}", obj.plural())),
                "after_cursor": after_cursor, "before_url": null, "before_cursor": null, "end_of_stream": end,
            }),
        )
    }
}

async fn incremental_orgs(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    z.guarded(&headers, &ctx, false, true, || {
        let p = query_params(q.as_deref());
        let now = z.now();
        let until = now - z.limits.incremental_lag.as_millis() as i64;
        let Some(secs) = p.get("start_time").and_then(|t| t.parse::<i64>().ok()) else {
            return bad_request("InvalidValue", "start_time must be a Unix epoch time in seconds");
        };
        if secs * 1_000 > until {
            return bad_request("InvalidValue", "Too recent start_time. Use a start_time at least 1 minute in the past");
        }
        let per_page = z.limits.incremental_page_size as usize;
        let st = z.state.lock().expect("zendesk state");
        let changes = st.objects[Obj::Organizations.slot()].changes_after((secs * 1_000 - 1, u64::MAX), until, true, per_page + 1);
        let end = changes.len() <= per_page;
        let page = &changes[..changes.len().min(per_page)];
        let rows: Vec<Value> = page
            .iter()
            .filter_map(|c| {
                if c.deleted {
                    let t = st.objects[Obj::Organizations.slot()].tombstones().find(|(i, _)| *i == c.index).map(|(_, t)| t.clone())?;
                    Some(z.render_record(Obj::Organizations, c.index, &t.last.fields, t.last.created_ms, t.deleted_ms, Some(true)))
                } else {
                    z.render(&st, Obj::Organizations, c.index)
                }
            })
            .collect();
        // Time-based exports resume at the last second seen, so the boundary can repeat.
        let end_time = page.last().map(|c| c.key.0 / 1_000).unwrap_or(secs);
        json_response(
            StatusCode::OK,
            json!({
                "organizations": rows, "count": rows.len(), "end_time": end_time, "end_of_stream": end,
                "next_page": z.url(&format!("incremental/organizations.json?start_time={end_time}")),
            }),
        )
    })
}

// ---------------------------------------------------------------- webhooks

fn webhook_error(status: StatusCode, code: &str, title: &str, detail: &str) -> Response {
    json_response(
        status,
        json!({"errors": [{"code": code, "title": title, "detail": detail}]}),
    )
}

impl Zendesk {
    fn webhook_json(&self, w: &Webhook) -> Value {
        json!({
            "id": w.id, "name": w.name, "status": w.status, "subscriptions": w.subscriptions, "endpoint": w.endpoint,
            "http_method": "POST", "request_format": "json", "created_at": rfc3339(w.created_ms), "created_by": Obj::Users.id(0).to_string(),
            "updated_at": rfc3339(w.updated_ms), "updated_by": Obj::Users.id(0).to_string(),
            "authentication": w.authentication.as_ref().map(|a| json!({"type": a.get("type"), "add_position": a.get("add_position")})),
            "custom_headers": w.custom_headers,
        })
    }

    fn apply_webhook(
        &self,
        w: &mut Webhook,
        input: &serde_json::Map<String, Value>,
        creating: bool,
    ) -> Result<(), Response> {
        if let Some(n) = input.get("name").and_then(Value::as_str) {
            w.name = n.to_string();
        }
        if let Some(e) = input.get("endpoint").and_then(Value::as_str) {
            w.endpoint = e.to_string();
        }
        if let Some(s) = input.get("status").and_then(Value::as_str) {
            if !matches!(s, "active" | "inactive") {
                return Err(webhook_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidValue",
                    "Invalid status",
                    "status must be active or inactive",
                ));
            }
            w.status = s.to_string();
        }
        if let Some(subs) = input.get("subscriptions").and_then(Value::as_array) {
            let list: Vec<String> = subs
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            for s in &list {
                if s != "conditional_ticket_events" && !EVENT_TYPES.contains(&s.as_str()) {
                    return Err(webhook_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidValue",
                        "Invalid subscription",
                        &format!(
                            "{s} is not a supported event type; supported: {}",
                            EVENT_TYPES.join(", ")
                        ),
                    ));
                }
            }
            w.subscriptions = list;
        }
        if let Some(a) = input.get("authentication") {
            let ok = a.is_null()
                || a.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| matches!(t, "basic_auth" | "bearer_token" | "api_key"));
            if !ok {
                return Err(webhook_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidValue",
                    "Invalid authentication",
                    "authentication.type must be basic_auth, bearer_token or api_key",
                ));
            }
            w.authentication = (!a.is_null()).then(|| a.clone());
        }
        if let Some(h) = input.get("custom_headers").and_then(Value::as_object) {
            w.custom_headers = h
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect();
        }
        let subscribing = !w
            .subscriptions
            .iter()
            .all(|s| s == "conditional_ticket_events");
        let method = input
            .get("http_method")
            .and_then(Value::as_str)
            .unwrap_or("POST");
        let format = input
            .get("request_format")
            .and_then(Value::as_str)
            .unwrap_or("json");
        if subscribing && (method != "POST" || format != "json") {
            return Err(webhook_error(
                StatusCode::BAD_REQUEST,
                "InvalidValue",
                "Invalid http_method or request_format",
                "Webhooks subscribed to Zendesk events must use POST and json",
            ));
        }
        if creating && w.name.trim().is_empty() {
            return Err(webhook_error(
                StatusCode::BAD_REQUEST,
                "MissingValue",
                "Missing name",
                "name is required",
            ));
        }
        if !(w.endpoint.starts_with("http://") || w.endpoint.starts_with("https://")) {
            return Err(webhook_error(
                StatusCode::BAD_REQUEST,
                "InvalidValue",
                "Invalid endpoint",
                "endpoint must be an absolute http(s) URL",
            ));
        }
        Ok(())
    }

    /// Sends events to every active webhook subscribed to them, signed with its secret, and
    /// runs ticket triggers whose conditions match.
    fn deliver(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let (saves, events): (Vec<Event>, Vec<Event>) = events
            .into_iter()
            .partition(|e| e.kind == TRIGGER_CREATE || e.kind == TRIGGER_CHANGE);
        for save in saves {
            self.run_triggers(&save);
        }
        let hooks: Vec<Webhook> = self
            .state
            .lock()
            .expect("zendesk state")
            .webhooks
            .values()
            .filter(|w| w.status == "active")
            .cloned()
            .collect();
        for e in events {
            for w in hooks
                .iter()
                .filter(|w| w.subscriptions.iter().any(|s| s == e.kind))
            {
                let payload = json!({
                    "type": e.kind, "account_id": ACCOUNT_ID, "id": uuid_like(&self.hub.tokens.random_hex(16)),
                    "time": rfc3339(self.now()), "zendesk_event_version": "2022-06-20", "subject": e.subject,
                    "detail": e.detail, "event": e.event,
                });
                self.send_signed(w, e.kind, payload.to_string().into_bytes());
            }
        }
    }

    /// One webhook request, signed over timestamp + body, with the webhook's own auth headers.
    fn send_signed(&self, w: &Webhook, event: &str, body: Vec<u8>) {
        let secret = w.signing_secret.clone();
        let webhook_id = w.id.clone();
        let invocation = self.hub.tokens.random_hex(8);
        let mut extra: Vec<(String, String)> = w
            .custom_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(a) = &w.authentication {
            let data = a.get("data").cloned().unwrap_or(Value::Null);
            match a.get("type").and_then(Value::as_str) {
                Some("bearer_token") => extra.push((
                    "Authorization".into(),
                    format!("Bearer {}", data["token"].as_str().unwrap_or("")),
                )),
                Some("basic_auth") => extra.push((
                    "Authorization".into(),
                    format!(
                        "Basic {}",
                        STANDARD.encode(format!(
                            "{}:{}",
                            data["username"].as_str().unwrap_or(""),
                            data["password"].as_str().unwrap_or("")
                        ))
                    ),
                )),
                Some("api_key") => extra.push((
                    data["name"].as_str().unwrap_or("X-Api-Key").to_string(),
                    data["value"].as_str().unwrap_or("").to_string(),
                )),
                _ => {}
            }
        }
        self.hub.outbox.send(
            Arc::clone(&self.hub.clock),
            Outgoing {
                vendor: Vendor::Zendesk,
                event: event.to_string(),
                url: w.endpoint.clone(),
                method: http::Method::POST,
                max_attempts: self.hub.outbox.attempts(self.limits.webhook_attempts),
                build: Box::new(move |_, now_ms| {
                    let ts = rfc3339(now_ms);
                    let mut headers = vec![
                        ("Content-Type".to_string(), "application/json".to_string()),
                        ("User-Agent".to_string(), "Zendesk Webhook".to_string()),
                        ("X-Zendesk-Webhook-Id".to_string(), webhook_id.clone()),
                        (
                            "X-Zendesk-Webhook-Invocation-Id".to_string(),
                            invocation.clone(),
                        ),
                        (
                            "X-Zendesk-Webhook-Signature-Timestamp".to_string(),
                            ts.clone(),
                        ),
                        (
                            "X-Zendesk-Webhook-Signature".to_string(),
                            sign(&secret, &ts, &body),
                        ),
                    ];
                    headers.extend(extra.iter().cloned());
                    (headers, body.clone())
                }),
                retry_on: retry_server_errors,
            },
        );
    }
}

// ---------------------------------------------------------------- triggers

/// Internal event kinds: a ticket was saved (drives triggers, never sent as such).
const TRIGGER_CREATE: &str = "internal:ticket-created";
const TRIGGER_CHANGE: &str = "internal:ticket-changed";
const TRIGGER_FIELDS: [&str; 6] = [
    "update_type",
    "status",
    "priority",
    "type",
    "current_tags",
    "organization_id",
];

#[derive(Debug, Clone)]
struct Condition {
    field: String,
    operator: String,
    value: Value,
}

#[derive(Debug, Clone)]
struct Trigger {
    id: u64,
    title: String,
    active: bool,
    all: Vec<Condition>,
    any: Vec<Condition>,
    /// `notification_webhook` actions: webhook id and body template.
    webhooks: Vec<(String, String)>,
    created_ms: i64,
}

fn condition_holds(c: &Condition, created: bool, ticket: &Fields) -> bool {
    let want = c
        .value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| c.value.to_string());
    let actual = match c.field.as_str() {
        "update_type" => {
            if created {
                "Create".to_string()
            } else {
                "Change".to_string()
            }
        }
        "current_tags" => {
            let tags: Vec<String> = ticket
                .get("tags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let hit = want.split_whitespace().any(|w| tags.iter().any(|t| t == w));
            return if c.operator == "includes" { hit } else { !hit };
        }
        "type" => ticket
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        other => ticket
            .get(other)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_default(),
    };
    let same = actual.eq_ignore_ascii_case(&want);
    if c.operator == "is_not" { !same } else { same }
}

fn parse_conditions(v: Option<&Value>) -> Result<Vec<Condition>, Invalid> {
    let mut out = Vec::new();
    for c in v.and_then(Value::as_array).into_iter().flatten() {
        let field = c
            .get("field")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let operator = c
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or("is")
            .to_string();
        if !TRIGGER_FIELDS.contains(&field.as_str()) {
            return Err(invalid(
                "conditions",
                format!(
                    "Conditions: {field} is not a condition the sandbox evaluates ({})",
                    TRIGGER_FIELDS.join(", ")
                ),
                "InvalidValue",
            ));
        }
        if !matches!(
            operator.as_str(),
            "is" | "is_not" | "includes" | "not_includes"
        ) {
            return Err(invalid(
                "conditions",
                format!("Conditions: operator {operator} is not supported"),
                "InvalidValue",
            ));
        }
        out.push(Condition {
            field,
            operator,
            value: c.get("value").cloned().unwrap_or(Value::Null),
        });
    }
    Ok(out)
}

/// Replaces `{{ticket.x}}` placeholders; JSON bodies get JSON-escaped text, unknown
/// placeholders render empty as in Zendesk.
fn render_template(template: &str, values: &HashMap<&str, String>, json_body: bool) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = rest[start + 2..start + end].trim();
        let v = values.get(key).cloned().unwrap_or_default();
        if json_body {
            let quoted = Value::String(v).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        } else {
            out.push_str(&v);
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

impl Zendesk {
    fn trigger_json(&self, t: &Trigger) -> Value {
        let cond = |cs: &[Condition]| {
            cs.iter()
                .map(|c| json!({"field": c.field, "operator": c.operator, "value": c.value}))
                .collect::<Vec<_>>()
        };
        json!({
            "url": self.url(&format!("triggers/{}.json", t.id)), "id": t.id, "title": t.title, "active": t.active,
            "conditions": {"all": cond(&t.all), "any": cond(&t.any)},
            "actions": t.webhooks.iter().map(|(w, b)| json!({"field": "notification_webhook", "value": [w, b]})).collect::<Vec<_>>(),
            "created_at": rfc3339(t.created_ms), "updated_at": rfc3339(t.created_ms), "position": t.id,
        })
    }

    fn parse_trigger(&self, st: &ZendeskState, v: &Value, id: u64) -> Result<Trigger, Invalid> {
        let t = v.get("trigger").ok_or_else(|| {
            invalid(
                "trigger",
                "the body must be {\"trigger\": {...}}".into(),
                "InvalidValue",
            )
        })?;
        let title = t
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string();
        if title.is_empty() {
            return Err(invalid(
                "title",
                "Title: cannot be blank".into(),
                "BlankValue",
            ));
        }
        let all = parse_conditions(t.pointer("/conditions/all"))?;
        let any = parse_conditions(t.pointer("/conditions/any"))?;
        if all.is_empty() && any.is_empty() {
            return Err(invalid(
                "conditions",
                "Conditions: a trigger needs at least one condition".into(),
                "BlankValue",
            ));
        }
        let mut webhooks = Vec::new();
        for a in t
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if a.get("field").and_then(Value::as_str) != Some("notification_webhook") {
                return Err(invalid(
                    "actions",
                    format!(
                        "Actions: {} is not an action the sandbox performs; use notification_webhook",
                        a.get("field").unwrap_or(&Value::Null)
                    ),
                    "InvalidValue",
                ));
            }
            let hook = a
                .pointer("/value/0")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let body = a
                .pointer("/value/1")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match st.webhooks.get(&hook) {
                Some(w)
                    if w.subscriptions
                        .iter()
                        .any(|s| s == "conditional_ticket_events") =>
                {
                    webhooks.push((hook, body))
                }
                Some(_) => {
                    return Err(invalid(
                        "actions",
                        format!(
                            "Actions: webhook {hook} is subscribed to Zendesk events, not connected to triggers"
                        ),
                        "InvalidValue",
                    ));
                }
                None => {
                    return Err(invalid(
                        "actions",
                        format!("Actions: webhook {hook} does not exist"),
                        "InvalidValue",
                    ));
                }
            }
        }
        if webhooks.is_empty() {
            return Err(invalid(
                "actions",
                "Actions: a trigger needs at least one action".into(),
                "BlankValue",
            ));
        }
        Ok(Trigger {
            id,
            title,
            active: t.get("active").and_then(Value::as_bool).unwrap_or(true),
            all,
            any,
            webhooks,
            created_ms: self.now(),
        })
    }

    fn run_triggers(&self, save: &Event) {
        let created = save.kind == TRIGGER_CREATE;
        let Some(ticket) = save.detail.as_object().cloned() else {
            return;
        };
        let Ok(index) = save.subject.parse::<u64>() else {
            return;
        };
        let (matching, values) = {
            let st = self.state.lock().expect("zendesk state");
            let matching: Vec<(Webhook, String)> = st
                .triggers
                .values()
                .filter(|t| {
                    t.active
                        && t.all.iter().all(|c| condition_holds(c, created, &ticket))
                        && (t.any.is_empty()
                            || t.any.iter().any(|c| condition_holds(c, created, &ticket)))
                })
                .flat_map(|t| {
                    t.webhooks.iter().filter_map(|(w, b)| {
                        st.webhooks
                            .get(w)
                            .filter(|w| w.status == "active")
                            .map(|w| (w.clone(), b.clone()))
                    })
                })
                .collect();
            if matching.is_empty() {
                return;
            }
            let s = |k: &str| {
                ticket
                    .get(k)
                    .map(|v| {
                        v.as_str().map(str::to_string).unwrap_or_else(|| {
                            if v.is_null() {
                                String::new()
                            } else {
                                v.to_string()
                            }
                        })
                    })
                    .unwrap_or_default()
            };
            let requester = ticket
                .get("requester_id")
                .and_then(parse_u64)
                .and_then(|id| Obj::Users.index(id))
                .and_then(|i| st.objects[Obj::Users.slot()].get(i));
            let org = ticket
                .get("organization_id")
                .and_then(parse_u64)
                .and_then(|id| Obj::Organizations.index(id))
                .and_then(|i| st.objects[Obj::Organizations.slot()].get(i));
            let latest = self
                .comments_of(&st, index)
                .last()
                .and_then(|c| c["body"].as_str().map(str::to_string))
                .unwrap_or_default();
            let mut values: HashMap<&str, String> = HashMap::new();
            values.insert("ticket.id", Obj::Tickets.id(index).to_string());
            values.insert("ticket.title", s("subject"));
            values.insert("ticket.description", s("description"));
            values.insert("ticket.status", s("status"));
            values.insert("ticket.priority", s("priority"));
            values.insert("ticket.ticket_type", s("type"));
            values.insert(
                "ticket.tags",
                ticket
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default(),
            );
            values.insert("ticket.requester.id", s("requester_id"));
            values.insert(
                "ticket.requester.email",
                requester
                    .as_ref()
                    .and_then(|r| {
                        r.fields
                            .get("email")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_default(),
            );
            values.insert(
                "ticket.requester.name",
                requester
                    .as_ref()
                    .and_then(|r| {
                        r.fields
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_default(),
            );
            values.insert("ticket.organization.id", s("organization_id"));
            values.insert(
                "ticket.organization.name",
                org.as_ref()
                    .and_then(|r| {
                        r.fields
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_default(),
            );
            values.insert("ticket.latest_comment", latest);
            values.insert(
                "ticket.url",
                format!("{}/agent/tickets/{}", self.base(), Obj::Tickets.id(index)),
            );
            (matching, values)
        };
        for (w, template) in matching {
            let body = render_template(&template, &values, true).into_bytes();
            self.send_signed(&w, "conditional_ticket_events", body);
        }
    }
}

/// `base64(HMAC-SHA256(secret, timestamp + body))`, Zendesk's webhook signature.
pub(crate) fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.as_bytes());
    ctx.update(body);
    STANDARD.encode(ctx.sign().as_ref())
}

fn uuid_like(hex: &str) -> String {
    let h = format!("{hex:0<32}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn webhooks(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let write = method != http::Method::GET;
    z.guarded(&headers, &ctx, write, false, || {
        if method == http::Method::GET {
            let st = z.state.lock().expect("zendesk state");
            let list: Vec<Value> = st.webhooks.values().map(|w| z.webhook_json(w)).collect();
            return json_response(StatusCode::OK, json!({"webhooks": list, "meta": {"has_more": false, "after_cursor": null, "before_cursor": null}, "links": {"next": null, "prev": null}}));
        }
        let v = match parse_json_body(&body) {
            Ok(v) => v,
            Err(msg) => return webhook_error(StatusCode::BAD_REQUEST, "InvalidJSON", "Invalid JSON", &msg),
        };
        let Some(input) = v.get("webhook").and_then(Value::as_object) else {
            return webhook_error(StatusCode::BAD_REQUEST, "MissingValue", "Missing webhook", "the body must be {\"webhook\": {...}}");
        };
        let now = z.now();
        let mut w = Webhook {
            id: format!("01{}", z.hub.tokens.random_hex(12).to_uppercase()),
            name: String::new(),
            endpoint: String::new(),
            status: "active".into(),
            subscriptions: Vec::new(),
            authentication: None,
            custom_headers: BTreeMap::new(),
            signing_secret: STANDARD.encode(z.hub.tokens.random_hex(24)),
            created_ms: now,
            updated_ms: now,
        };
        if let Err(r) = z.apply_webhook(&mut w, input, true) {
            return r;
        }
        let body = json!({"webhook": z.webhook_json(&w)});
        z.state.lock().expect("zendesk state").webhooks.insert(w.id.clone(), w);
        json_response(StatusCode::CREATED, body)
    })
}

async fn webhook(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let write = method != http::Method::GET;
    z.guarded(&headers, &ctx, write, false, || {
        let mut st = z.state.lock().expect("zendesk state");
        let Some(w) = st.webhooks.get(&id).cloned() else {
            return webhook_error(
                StatusCode::NOT_FOUND,
                "RecordNotFound",
                "Webhook not found",
                &format!("no webhook with id {id}"),
            );
        };
        match method {
            http::Method::GET => {
                json_response(StatusCode::OK, json!({"webhook": z.webhook_json(&w)}))
            }
            http::Method::DELETE => {
                st.webhooks.remove(&id);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => {
                let v = match parse_json_body(&body) {
                    Ok(v) => v,
                    Err(msg) => {
                        return webhook_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidJSON",
                            "Invalid JSON",
                            &msg,
                        );
                    }
                };
                let Some(input) = v.get("webhook").and_then(Value::as_object) else {
                    return webhook_error(
                        StatusCode::BAD_REQUEST,
                        "MissingValue",
                        "Missing webhook",
                        "the body must be {\"webhook\": {...}}",
                    );
                };
                let mut w = w;
                if let Err(r) = z.apply_webhook(&mut w, input, false) {
                    return r;
                }
                w.updated_ms = z.now();
                st.webhooks.insert(id.clone(), w);
                StatusCode::NO_CONTENT.into_response()
            }
        }
    })
}

async fn signing_secret(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    method: http::Method,
    headers: HeaderMap,
) -> Response {
    let write = method != http::Method::GET;
    z.guarded(&headers, &ctx, write, false, || {
        let mut st = z.state.lock().expect("zendesk state");
        let fresh = STANDARD.encode(z.hub.tokens.random_hex(24));
        let Some(w) = st.webhooks.get_mut(&id) else {
            return webhook_error(
                StatusCode::NOT_FOUND,
                "RecordNotFound",
                "Webhook not found",
                &format!("no webhook with id {id}"),
            );
        };
        if write {
            w.signing_secret = fresh;
        }
        json_response(
            StatusCode::OK,
            json!({"signing_secret": {"algorithm": "SHA256", "secret": w.signing_secret}}),
        )
    })
}

async fn triggers(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let write = method != http::Method::GET;
    z.guarded(&headers, &ctx, write, false, || {
        let mut st = z.state.lock().expect("zendesk state");
        if method == http::Method::GET {
            let list: Vec<Value> = st.triggers.values().map(|t| z.trigger_json(t)).collect();
            let count = list.len();
            return json_response(
                StatusCode::OK,
                json!({"triggers": list, "next_page": null, "previous_page": null, "count": count}),
            );
        }
        let v = match parse_json_body(&body) {
            Ok(v) => v,
            Err(msg) => return bad_request("InvalidJSON", &msg),
        };
        let id = 360_100_000_000 + st.triggers.len() as u64 + 1;
        match z.parse_trigger(&st, &v, id) {
            Ok(t) => {
                let body = json!({"trigger": z.trigger_json(&t)});
                st.triggers.insert(id, t);
                json_response(StatusCode::CREATED, body)
            }
            Err(e) => e.response(),
        }
    })
}

async fn trigger(
    State(z): State<Arc<Zendesk>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<u64>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let write = method != http::Method::GET;
    z.guarded(&headers, &ctx, write, false, || {
        let mut st = z.state.lock().expect("zendesk state");
        if !st.triggers.contains_key(&id) {
            return not_found();
        }
        match method {
            http::Method::GET => json_response(
                StatusCode::OK,
                json!({"trigger": z.trigger_json(&st.triggers[&id])}),
            ),
            http::Method::DELETE => {
                st.triggers.remove(&id);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => {
                let v = match parse_json_body(&body) {
                    Ok(v) => v,
                    Err(msg) => return bad_request("InvalidJSON", &msg),
                };
                match z.parse_trigger(&st, &v, id) {
                    Ok(t) => {
                        let body = json!({"trigger": z.trigger_json(&t)});
                        st.triggers.insert(id, t);
                        json_response(StatusCode::OK, body)
                    }
                    Err(e) => e.response(),
                }
            }
        }
    })
}

// ---------------------------------------------------------------- emulator

impl Emulator for Zendesk {
    fn vendor(&self) -> Vendor {
        Vendor::Zendesk
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/oauth/authorizations/new", get(authorize_page))
            .route("/oauth/authorizations", post(authorize_decision))
            .route("/oauth/tokens", post(tokens))
            .route("/api/v2/organizations/{id}/users", get(org_users))
            .route("/api/v2/tickets/{id}/comments", get(ticket_comments))
            .route(
                "/api/v2/users/search",
                get(|s, e, q, h| search(s, e, Path("users".to_string()), q, h)),
            )
            .route(
                "/api/v2/organizations/search",
                get(|s, e, q, h| search(s, e, Path("organizations".to_string()), q, h)),
            )
            .route(
                "/api/v2/users/create_or_update",
                post(users_create_or_update),
            )
            .route(
                "/api/v2/organizations/create_or_update",
                post(orgs_create_or_update),
            )
            .route("/api/v2/{kind}", get(list_kind).post(create))
            .route(
                "/api/v2/{kind}/{id}",
                get(get_one).put(update).delete(delete).post(bulk_post),
            )
            .route("/api/v2/job_statuses", get(job_statuses))
            .route("/api/v2/account/settings", get(account_settings))
            .route("/api/v2/job_statuses/{id}", get(job_status))
            .route("/api/v2/incremental/{kind}/cursor", get(incremental_cursor))
            .route("/api/v2/incremental/organizations", get(incremental_orgs))
            .route("/api/v2/triggers", get(triggers).post(triggers))
            .route(
                "/api/v2/triggers/{id}",
                get(trigger).put(trigger).delete(trigger),
            )
            .route("/api/v2/webhooks", get(webhooks).post(webhooks))
            .route(
                "/api/v2/webhooks/{id}",
                get(webhook).patch(webhook).put(webhook).delete(webhook),
            )
            .route(
                "/api/v2/webhooks/{id}/signing_secret",
                get(signing_secret).post(signing_secret),
            )
            .route("/api/v2/tickets/update_many", put(tickets_update_many))
            .route("/api/v2/users/update_many", put(users_update_many))
            .route("/api/v2/organizations/update_many", put(orgs_update_many))
            .fallback(|| async { invalid_endpoint() })
            .with_state(self)
    }

    fn reset(&self, data: DemoData) {
        *self.state.lock().expect("zendesk state") = Self::fresh_state(Demo::from(data));
        self.issue_demo_refresh();
    }

    fn snapshot(&self) -> Value {
        let st = self.state.lock().expect("zendesk state");
        let counts: serde_json::Map<String, Value> = [Obj::Tickets, Obj::Users, Obj::Organizations]
            .iter()
            .map(|o| (o.plural().to_string(), json!({"records": st.objects[o.slot()].len(), "deleted": st.objects[o.slot()].tombstones().count()})))
            .collect();
        json!({
            "vendor": "zendesk", "seed": st.demo.seed, "subdomain": SUBDOMAIN, "objects": counts,
            "webhooks": st.webhooks.values().map(|w| self.webhook_json(w)).collect::<Vec<_>>(),
            "triggers": st.triggers.values().map(|t| self.trigger_json(t)).collect::<Vec<_>>(),
            "jobs": st.jobs.iter().map(|j| self.job_json(j)).collect::<Vec<_>>(),
            "requests_this_minute": st.minute.used, "live_access_tokens": self.hub.tokens.live_access_count(Vendor::Zendesk, self.now()),
        })
    }

    fn record(&self, object: &str, id: &str) -> Option<Value> {
        let obj = match object {
            "tickets" | "ticket" => Obj::Tickets,
            "users" | "user" => Obj::Users,
            "organizations" | "organization" => Obj::Organizations,
            _ => return None,
        };
        let st = self.state.lock().expect("zendesk state");
        let i = obj.index(id.parse().ok()?)?;
        let mut v = self.render(&st, obj, i)?;
        if obj == Obj::Tickets {
            v["comments"] = json!(self.comments_of(&st, i));
        }
        Some(v)
    }

    fn throttled(&self) -> Response {
        rate_limited(
            60,
            self.limits.requests_per_minute,
            0,
            "Number of allowed API requests per minute exceeded",
        )
    }

    fn server_error(&self) -> Response {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "ServiceUnavailable", "description": "Zendesk is temporarily unavailable; retry later"}),
        )
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: Some(REFRESH_TOKEN.into()),
            api_token: Some(API_TOKEN.into()),
            username: AGENT_EMAIL.into(),
            extra: [
                ("subdomain".to_string(), SUBDOMAIN.to_string()),
                (
                    "basic_auth_user".to_string(),
                    format!("{AGENT_EMAIL}/token"),
                ),
                (
                    "authorize_url".to_string(),
                    format!("{}/oauth/authorizations/new", self.base()),
                ),
                (
                    "token_url".to_string(),
                    format!("{}/oauth/tokens", self.base()),
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn base_url(&self) -> &OnceLock<String> {
        &self.base
    }

    /// Zendesk accepts every path with or without a `.json` suffix.
    fn rewrite_path(&self, path: &str) -> Option<String> {
        path.strip_suffix(".json").map(str::to_string)
    }
}

async fn users_create_or_update(
    s: State<Arc<Zendesk>>,
    e: Extension<RequestCtx>,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    create_or_update(s, e, Path("users".to_string()), h, b).await
}

async fn orgs_create_or_update(
    s: State<Arc<Zendesk>>,
    e: Extension<RequestCtx>,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    create_or_update(s, e, Path("organizations".to_string()), h, b).await
}

async fn tickets_update_many(
    s: State<Arc<Zendesk>>,
    e: Extension<RequestCtx>,
    q: RawQuery,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    bulk(
        s,
        e,
        Path(("tickets".to_string(), "update_many".to_string())),
        q,
        h,
        b,
    )
    .await
}

async fn users_update_many(
    s: State<Arc<Zendesk>>,
    e: Extension<RequestCtx>,
    q: RawQuery,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    bulk(
        s,
        e,
        Path(("users".to_string(), "update_many".to_string())),
        q,
        h,
        b,
    )
    .await
}

async fn orgs_update_many(
    s: State<Arc<Zendesk>>,
    e: Extension<RequestCtx>,
    q: RawQuery,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    bulk(
        s,
        e,
        Path(("organizations".to_string(), "update_many".to_string())),
        q,
        h,
        b,
    )
    .await
}

/// `POST /api/v2/{kind}/{action}`: the bulk endpoints share their shape with `{kind}/{id}`.
async fn bulk_post(
    s: State<Arc<Zendesk>>,
    e: Extension<RequestCtx>,
    Path((kind, action)): Path<(String, String)>,
    q: RawQuery,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    match action.as_str() {
        "create_many" | "create_or_update_many" => bulk(s, e, Path((kind, action)), q, h, b).await,
        _ => invalid_endpoint(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_base64_hmac_over_timestamp_then_body() {
        // Independent check with ring's one-shot API.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let expected =
            STANDARD.encode(ring::hmac::sign(&key, b"2024-04-17T17:18:10Z{\"a\":1}").as_ref());
        assert_eq!(
            sign("secret", "2024-04-17T17:18:10Z", b"{\"a\":1}"),
            expected
        );
        assert_ne!(
            sign("secret", "2024-04-17T17:18:11Z", b"{\"a\":1}"),
            expected
        );
    }
}
