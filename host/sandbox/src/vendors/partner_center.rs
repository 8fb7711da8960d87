//! Microsoft Partner Center referrals (co-sell) and Partner Center webhooks (crm-apis.md §7, §8).
//!
//! Faithful points a connector depends on: Entra tokens for `https://api.partner.microsoft.com`
//! with `expires_in` as a string, listing only with App+User tokens, the status/substatus state
//! machine with `acceptedDateTime`/`closedDateTime` and 14-day expiry of unanswered incoming
//! referrals, an `eTag` that changes on every update and is checked against `If-Match`, JSON
//! Patch limited to `replace` and `add`, OData listing with `$filter` (nested paths, `any`),
//! `$orderby`, `$top`, `@odata.count` and `$skiptoken`, and webhooks (one URL per event) that
//! carry only a pointer and are signed RSA-SHA256 with a certificate from the sandbox's test CA.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use super::entra::EntraApp;
use super::odata;
use super::{
    auth_token, header_str, json as json_response, parse_json_body, query_params, set_header,
    token_params,
};
use crate::clock::{parse_iso, rfc3339};
use crate::collection::{Collection, Dir, Fields};
use crate::config::{DemoData, PartnerCenterLimits, SandboxConfig};
use crate::demo::{Demo, Kind};
use crate::keys;
use crate::server::{Credentials, Emulator, Hub, RequestCtx};
use crate::tokens::{Grant, RefreshToken, TokenCheck};
use crate::vendor::Vendor;
use crate::webhook::{Outgoing, retry_any};

pub(crate) const TENANT: &str = "c0de5e11-0000-4000-8000-00000000aaaa";
pub(crate) const CLIENT_ID: &str = "c0de5e11-0000-4000-8000-0000000c11e7";
pub(crate) const CLIENT_SECRET: &str = "weft~sandbox~partner~center~secret~000";
pub(crate) const USERNAME: &str = "referrals.admin@weft-sandbox.example";
pub(crate) const PASSWORD: &str = "weft-sandbox-referrals-password";
/// A delegated (App+User) refresh token issued at start-up, as an operator's consent would
/// leave one, so a connection can list referrals with `oauth2-refresh` and no password grant.
pub(crate) const REFRESH_TOKEN: &str = "0.AweftSandboxPartnerCenterReferralsAdminRefreshToken";
pub(crate) const RESOURCE: &str = "https://api.partner.microsoft.com";
pub(crate) const WEBHOOK_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
pub(crate) const TEST_CA_PEM: &str = include_str!("partner_center_keys/test_ca.pem");
const DISPATCH_CERT_PEM: &str = include_str!("partner_center_keys/dispatch_certificate.pem");
const DISPATCH_KEY_PEM: &str = include_str!("partner_center_keys/dispatch_private_key.pem");
const ORG_ID: &str = "0f5e1d2c-0000-4000-8000-000000000001";
const EVENTS: [&str; 5] = [
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
    "test-created",
];

fn referral_id(i: u64) -> String {
    format!("{:08x}-0000-4000-9000-{:012x}", 0xc05e_1100u32, i)
}

fn parse_referral_id(s: &str) -> Option<u64> {
    let s = s.to_ascii_lowercase();
    let rest = s.strip_prefix("c05e1100-0000-4000-9000-")?;
    (rest.len() == 12)
        .then(|| u64::from_str_radix(rest, 16).ok())
        .flatten()
}

fn engagement_id(i: u64) -> String {
    format!("e0e0e0e0-0000-4000-9000-{i:012x}")
}

fn generated(demo: &Demo, i: u64, started_ms: i64, window_ms: i64) -> Fields {
    let r = demo.referral(i);
    let c = demo.company(r.company);
    let contact = r.contact.map(|j| demo.contact(j));
    let team: Vec<Value> = contact
        .iter()
        .map(|p| json!({"firstName": p.first, "lastName": p.last, "email": p.email, "phoneNumber": p.phone, "title": p.title}))
        .collect();
    let v = json!({
        "name": r.name, "engagementId": engagement_id(i), "externalReferenceId": null,
        "status": r.status, "substatus": r.substatus, "statusReason": null, "type": r.kind, "qualification": r.qualification,
        "direction": r.direction,
        "customerProfile": {"name": c.name, "size": "10to50employees", "isMatchingComplete": true,
            "address": {"addressLine1": "1 Main Street", "city": c.city, "state": c.state, "postalCode": "00000", "country": c.country}, "team": team, "ids": []},
        "consent": {"consentToToShareInfoWithOthers": r.kind == "Shared", "consentToContact": true, "consentToShareReferralWithMicrosoftSellers": r.kind == "Shared"},
        "details": {"notes": null, "dealValue": r.deal_value, "currency": r.currency, "closingDateTime": rfc3339(started_ms + 90 * 86_400_000),
            "requirements": {"industries": [], "products": [], "services": [], "solutions": [{"id": "weft-solution-1", "name": "weft integration platform"}], "additionalRequirements": null}},
        "team": [{"firstName": "Weft", "lastName": "Admin", "email": USERNAME, "phoneNumber": "+1 555 000 0000"}],
        "inviteContext": {"notes": null, "assistanceRequestCode": "Unknown", "invitedMpnId": null, "invitedBy": null},
        "target": [{"type": "SolutionProfile", "id": "weft-solution-1"}],
        // Demo referrals get a full response window from sandbox start, not from their history.
        "expirationDateTime": rfc3339(started_ms + window_ms + i as i64 * 60_000),
    });
    v.as_object().cloned().unwrap_or_default()
}

#[derive(Debug, Clone)]
struct Registration {
    subscriber: String,
    url: String,
    events: Vec<String>,
}

struct PartnerState {
    demo: Demo,
    started_ms: i64,
    referrals: Collection,
    registration: Option<Registration>,
    validations: VecDeque<i64>,
    /// correlationId → outbox delivery id.
    validation_deliveries: Vec<(String, u64)>,
}

pub(crate) struct PartnerCenter {
    hub: Arc<Hub>,
    base: OnceLock<String>,
    limits: PartnerCenterLimits,
    app: OnceLock<EntraApp>,
    access_ms: i64,
    signer: ring::signature::RsaKeyPair,
    state: Mutex<PartnerState>,
}

fn issue_demo_refresh(hub: &Hub) {
    let grant = Grant {
        vendor: Vendor::PartnerCenter,
        client_id: CLIENT_ID.into(),
        user: USERNAME.into(),
        scope: RESOURCE.into(),
    };
    hub.tokens.put_refresh(
        REFRESH_TOKEN.into(),
        RefreshToken {
            grant,
            expires_ms: i64::MAX,
            minted: VecDeque::new(),
        },
    );
}

fn pc_error(status: StatusCode, code: &str, description: &str) -> Response {
    json_response(status, json!({"code": code, "description": description}))
}

/// Allowed substatuses per status, and the statuses each may move to.
fn allowed(status: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    match status {
        "New" => Some((&["Pending", "Received"], &["New", "Active", "Closed"])),
        "Active" => Some((&["Accepted"], &["Active", "Closed"])),
        "Closed" => Some((&["Won", "Lost", "Declined", "Expired"], &["Closed"])),
        _ => None,
    }
}

impl PartnerCenter {
    pub(crate) fn new(hub: Arc<Hub>, config: &SandboxConfig) -> Arc<Self> {
        let (_, der) = keys::pem_decode(DISPATCH_KEY_PEM).expect("bundled PEM");
        let signer = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("bundled PKCS#8 RSA key");
        let started = hub.now_ms();
        let demo = Demo::from(config.data);
        issue_demo_refresh(&hub);
        Arc::new(Self {
            limits: config.partner_center,
            access_ms: config.tokens.entra_access.as_millis() as i64,
            app: OnceLock::new(),
            signer,
            state: Mutex::new(Self::fresh(
                demo,
                started,
                config.partner_center.referral_response_window.as_millis() as i64,
            )),
            hub,
            base: OnceLock::new(),
        })
    }

    fn fresh(demo: Demo, started_ms: i64, window_ms: i64) -> PartnerState {
        let n = demo.size.referrals;
        PartnerState {
            demo,
            started_ms,
            referrals: Collection::new(
                n,
                move |i| generated(&demo, i, started_ms, window_ms),
                move |i| demo.times(Kind::Referral, i, n),
            ),
            registration: None,
            validations: VecDeque::new(),
            validation_deliveries: Vec::new(),
        }
    }

    fn base(&self) -> &str {
        self.base.get().map(String::as_str).unwrap_or("")
    }

    fn now(&self) -> i64 {
        self.hub.now_ms()
    }

    fn app(&self) -> &EntraApp {
        self.app.get_or_init(|| EntraApp {
            vendor: Vendor::PartnerCenter,
            tenant: TENANT,
            client_id: CLIENT_ID,
            client_secret: CLIENT_SECRET,
            resources: vec![RESOURCE.to_string(), WEBHOOK_RESOURCE.to_string()],
            username: USERNAME,
            password: PASSWORD,
            lifetime_ms: self.access_ms,
        })
    }

    /// `Ok(true)` for App+User tokens, `Ok(false)` for app-only ones.
    fn authenticate(&self, headers: &HeaderMap, ctx: &RequestCtx) -> Result<bool, Response> {
        match auth_token(headers, "Bearer")
            .map(|t| self.hub.tokens.check(Vendor::PartnerCenter, t, self.now()))
        {
            Some(TokenCheck::Valid(a)) if !ctx.force_expired => Ok(a.grant.user != CLIENT_ID),
            Some(TokenCheck::Valid(_) | TokenCheck::Expired) => Err(pc_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "The access token has expired; get a new one from Entra ID",
            )),
            _ => Err(pc_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Authorization has been denied for this request. Send a Bearer token for https://api.partner.microsoft.com",
            )),
        }
    }

    fn etag(modified_ms: i64) -> String {
        format!(
            "\"{:08x}-0000-0800-0000-{:012x}\"",
            0x6900_7a1e_u32, modified_ms
        )
    }

    /// Archives unanswered incoming referrals whose response window has passed.
    fn expire(&self, st: &mut PartnerState) -> Vec<u64> {
        let now = self.now();
        let due: Vec<u64> = st
            .referrals
            .scan(Dir::Asc, None)
            .filter(|i| {
                st.referrals.get(*i).is_some_and(|r| {
                    r.fields.get("direction").and_then(Value::as_str) == Some("Incoming")
                        && r.fields.get("status").and_then(Value::as_str) == Some("New")
                        && r.fields
                            .get("expirationDateTime")
                            .and_then(Value::as_str)
                            .and_then(parse_iso)
                            .is_some_and(|t| t <= now)
                })
            })
            .collect();
        for i in &due {
            let change =
                json!({"status": "Closed", "substatus": "Expired", "closedDateTime": rfc3339(now)});
            st.referrals
                .merge(*i, change.as_object().expect("object"), now);
        }
        due
    }

    fn render(&self, st: &PartnerState, i: u64) -> Option<Value> {
        let rec = st.referrals.get(i)?;
        let mut v = Value::Object(rec.fields.clone());
        let id = referral_id(i);
        v["id"] = json!(id);
        v["organizationId"] = json!(ORG_ID);
        v["organizationName"] = json!("weft sandbox partner");
        v["createdDateTime"] = json!(rfc3339(rec.created_ms));
        v["updatedDateTime"] = json!(rfc3339(rec.modified_ms));
        for k in [
            "acceptedDateTime",
            "closedDateTime",
            "expirationDateTime",
            "statusReason",
            "externalReferenceId",
        ] {
            if v.get(k).is_none() {
                v[k] = Value::Null;
            }
        }
        v["eTag"] = json!(Self::etag(rec.modified_ms));
        let engagement = v["engagementId"].as_str().unwrap_or("").to_string();
        v["links"] = json!({
            "relatedReferrals": {"uri": format!("{}/v1.0/engagements/referrals?$filter=engagementId eq '{engagement}'", self.base()), "method": "GET", "headers": []},
            "self": {"uri": format!("{}/v1.0/engagements/referrals/{id}", self.base()), "method": "GET", "headers": []},
        });
        Some(v)
    }
}

// ---------------------------------------------------------------- tokens

async fn token_v1(
    State(p): State<Arc<PartnerCenter>>,
    Path(tenant): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = token_params(q.as_deref(), &headers, &body);
    p.app().token(&p.hub, &tenant, false, &params)
}

async fn token_v2(
    State(p): State<Arc<PartnerCenter>>,
    Path(tenant): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = token_params(q.as_deref(), &headers, &body);
    p.app().token(&p.hub, &tenant, true, &params)
}

// ---------------------------------------------------------------- referrals

fn validate_new(v: &Value) -> Result<(), String> {
    for k in ["name", "type", "customerProfile", "consent", "details"] {
        if v.get(k).is_none_or(Value::is_null) {
            return Err(format!("{k} is required"));
        }
    }
    validate_fields(v)
}

/// Field rules that hold after any create or update.
fn validate_fields(v: &Value) -> Result<(), String> {
    if let Some(t) = v.get("type").and_then(Value::as_str)
        && !matches!(t, "Independent" | "Shared")
    {
        return Err(format!("type must be Independent or Shared, got {t}"));
    }
    if let Some(c) = v
        .pointer("/customerProfile/address/country")
        .and_then(Value::as_str)
        && !(c.len() == 2 && c.chars().all(|x| x.is_ascii_uppercase()))
    {
        return Err(format!(
            "customerProfile.address.country must be an ISO 3166-1 alpha-2 code such as US, got {c}"
        ));
    }
    if let Some(cur) = v.pointer("/details/currency").and_then(Value::as_str)
        && !(cur.len() == 3 && cur.chars().all(|x| x.is_ascii_uppercase()))
    {
        return Err(format!(
            "details.currency must be an ISO 4217 code such as USD, got {cur}"
        ));
    }
    if let Some(d) = v.pointer("/details/dealValue")
        && !d.is_null()
        && !(d.is_number() || d.as_str().is_some_and(|s| s.parse::<f64>().is_ok()))
    {
        return Err(format!("details.dealValue must be a decimal, got {d}"));
    }
    let status = v.get("status").and_then(Value::as_str).unwrap_or("New");
    let sub = v
        .get("substatus")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    match allowed(status) {
        None => {
            return Err(format!(
                "status must be New, Active or Closed, got {status}"
            ));
        }
        Some((subs, _)) if !subs.contains(&sub) => {
            return Err(format!(
                "substatus {sub} is not allowed with status {status}; allowed: {}",
                subs.join(", ")
            ));
        }
        _ => {}
    }
    Ok(())
}

async fn referrals(
    State(p): State<Arc<PartnerCenter>>,
    Extension(ctx): Extension<RequestCtx>,
    RawQuery(q): RawQuery,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match p.authenticate(&headers, &ctx) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if method == http::Method::GET {
        if !user {
            return pc_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Listing referrals supports only user access (App+User); sign in as a Referrals Admin or Referrals User",
            );
        }
        return p.list(q.as_deref());
    }
    let mut v = match parse_json_body(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return pc_error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "The body must be a referral object",
            );
        }
        Err(msg) => return pc_error(StatusCode::BAD_REQUEST, "InvalidInput", &msg),
    };
    if let Err(msg) = validate_new(&v) {
        return pc_error(StatusCode::BAD_REQUEST, "InvalidInput", &msg);
    }
    let now = p.now();
    let (body, events) = {
        let mut st = p.state.lock().expect("partner center state");
        let related = v
            .get("engagementId")
            .and_then(Value::as_str)
            .is_some_and(|e| {
                st.referrals.scan(Dir::Asc, None).any(|i| {
                    st.referrals.get(i).is_some_and(|r| {
                        r.fields.get("engagementId").and_then(Value::as_str) == Some(e)
                    })
                })
            });
        let obj = v.as_object_mut().expect("object");
        for k in [
            "id",
            "eTag",
            "createdDateTime",
            "updatedDateTime",
            "links",
            "organizationId",
            "organizationName",
        ] {
            obj.remove(k);
        }
        obj.insert("status".into(), json!("New"));
        obj.insert("substatus".into(), json!("Pending"));
        obj.insert("direction".into(), json!("Outgoing"));
        obj.entry("qualification").or_insert(json!("None"));
        obj.entry("team").or_insert(json!([]));
        let i = st.referrals.insert(obj.clone(), now);
        if !related {
            let mut f = Fields::new();
            f.insert("engagementId".into(), json!(engagement_id(1_000_000 + i)));
            if obj.get("engagementId").is_none() {
                st.referrals.merge(i, &f, now);
            }
        }
        let body = p.render(&st, i).unwrap_or(Value::Null);
        let kind = if related {
            "related-referral-created"
        } else {
            "referral-created"
        };
        (body, vec![(kind, i)])
    };
    p.notify(events);
    json_response(StatusCode::CREATED, body)
}

impl PartnerCenter {
    fn list(&self, q: Option<&str>) -> Response {
        let params = query_params(q);
        let filter = match params.get("$filter").map(|f| odata::parse(f)) {
            None => None,
            Some(Ok(f)) => Some(f),
            Some(Err(msg)) => {
                return pc_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidFilter",
                    &format!("$filter could not be parsed: {msg}"),
                );
            }
        };
        let order = params
            .get("$orderby")
            .map(|o| odata::parse_orderby(o))
            .unwrap_or_default();
        if let Some((path, _)) = order
            .iter()
            .find(|(p, _)| !matches!(p.join("/").as_str(), "createdDateTime" | "updatedDateTime"))
        {
            return pc_error(
                StatusCode::BAD_REQUEST,
                "InvalidOrderBy",
                &format!(
                    "$orderby supports createdDateTime and updatedDateTime, not {}",
                    path.join("/")
                ),
            );
        }
        let top = params
            .get("$top")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(self.limits.max_page_size)
            .clamp(1, self.limits.max_page_size);
        let skip: usize = params
            .get("$skiptoken")
            .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        let expired = {
            let mut st = self.state.lock().expect("partner center state");
            self.expire(&mut st)
        };
        self.notify(
            expired
                .into_iter()
                .map(|i| ("referral-updated", i))
                .collect(),
        );
        let st = self.state.lock().expect("partner center state");
        let mut rows: Vec<Value> = st
            .referrals
            .scan(Dir::Asc, None)
            .filter_map(|i| self.render(&st, i))
            .filter(|v| filter.as_ref().is_none_or(|f| odata::eval(f, v)))
            .collect();
        if !order.is_empty() {
            rows.sort_by(|a, b| odata::order(a, b, &order));
        }
        let total = rows.len();
        let page: Vec<Value> = rows.into_iter().skip(skip).take(top as usize).collect();
        let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#Referrals", self.base()), "@odata.count": total, "value": page});
        if skip + (top as usize) < total {
            let token = URL_SAFE_NO_PAD.encode(format!("o:{}", skip + top as usize));
            let mut link = format!(
                "{}/v1.0/engagements/referrals?$skiptoken={token}&$top={top}",
                self.base()
            );
            for k in ["$filter", "$orderby"] {
                if let Some(v) = params.get(k) {
                    link.push_str(&format!("&{k}={}", crate::oauth::encode(v)));
                }
            }
            body["@odata.nextLink"] = json!(link);
        }
        json_response(StatusCode::OK, body)
    }
}

/// Applies one JSON Patch operation (`replace` or `add`) to a document.
fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
    if !matches!(kind, "replace" | "add") {
        return Err(format!("op {kind:?} is not supported; use replace or add"));
    }
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .ok_or("every operation needs a path")?;
    let value = op
        .get("value")
        .cloned()
        .ok_or("every operation needs a value")?;
    let parts: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    if parts.first().is_some_and(|p| {
        matches!(
            p.as_str(),
            "id" | "eTag"
                | "createdDateTime"
                | "updatedDateTime"
                | "direction"
                | "organizationId"
                | "links"
                | "acceptedDateTime"
                | "closedDateTime"
                | "expirationDateTime"
        )
    }) {
        return Err(format!("{path} is read-only"));
    }
    let (last, parents) = parts.split_last().ok_or("path must not be empty")?;
    let mut cur = doc;
    for p in parents {
        if cur.get(p).is_none_or(Value::is_null) {
            if kind == "add" {
                cur[p.as_str()] = json!({});
            } else {
                return Err(format!(
                    "{path} does not exist; replace needs an existing target"
                ));
            }
        }
        cur = match cur {
            Value::Object(m) => m
                .get_mut(p)
                .ok_or_else(|| format!("{path} does not exist"))?,
            Value::Array(a) => a
                .get_mut(
                    p.parse::<usize>()
                        .map_err(|_| format!("{p} is not an array index"))?,
                )
                .ok_or_else(|| format!("{path} does not exist"))?,
            _ => return Err(format!("{path} does not exist")),
        };
    }
    match cur {
        Value::Array(a) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Value::Array(a) => {
            let n: usize = last
                .parse()
                .map_err(|_| format!("{last} is not an array index"))?;
            if kind == "add" && n <= a.len() {
                a.insert(n, value);
                Ok(())
            } else if n < a.len() {
                a[n] = value;
                Ok(())
            } else {
                Err(format!("{path} is out of range"))
            }
        }
        Value::Object(m) => {
            if kind == "replace" && !m.contains_key(last) {
                return Err(format!(
                    "{path} does not exist; replace needs an existing target"
                ));
            }
            m.insert(last.clone(), value);
            Ok(())
        }
        _ => Err(format!("{path} does not exist")),
    }
}

async fn referral(
    State(p): State<Arc<PartnerCenter>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = p.authenticate(&headers, &ctx) {
        return r;
    }
    let Some(i) = parse_referral_id(&id) else {
        return pc_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Referral {id} was not found"),
        );
    };
    let expired = {
        let mut st = p.state.lock().expect("partner center state");
        p.expire(&mut st)
    };
    p.notify(
        expired
            .into_iter()
            .map(|x| ("referral-updated", x))
            .collect(),
    );
    if method == http::Method::GET {
        let st = p.state.lock().expect("partner center state");
        return match p.render(&st, i) {
            Some(v) => {
                let etag = v["eTag"].as_str().unwrap_or("").to_string();
                let mut r = json_response(StatusCode::OK, v);
                set_header(&mut r, "ETag", etag);
                r
            }
            None => pc_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("Referral {id} was not found"),
            ),
        };
    }
    let ops = match parse_json_body(&body) {
        Ok(Value::Array(ops)) => ops,
        Ok(_) => {
            return pc_error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "The body must be a JSON Patch document: an array of {op, path, value}",
            );
        }
        Err(msg) => return pc_error(StatusCode::BAD_REQUEST, "InvalidInput", &msg),
    };
    let representation =
        header_str(&headers, "prefer").is_some_and(|v| v.contains("return=representation"));
    let now = p.now();
    let (resp, events) = {
        let mut st = p.state.lock().expect("partner center state");
        let Some(current) = p.render(&st, i) else {
            return pc_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("Referral {id} was not found"),
            );
        };
        if let Some(tag) = header_str(&headers, "if-match")
            && tag != "*"
            && tag != current["eTag"].as_str().unwrap_or("")
        {
            return pc_error(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "The referral was changed since it was read (If-Match does not match its eTag); read it again and reapply the change",
            );
        }
        let mut doc = current.clone();
        for op in &ops {
            if let Err(msg) = apply_op(&mut doc, op) {
                return pc_error(StatusCode::BAD_REQUEST, "InvalidPatch", &msg);
            }
        }
        if let Err(msg) = validate_fields(&doc) {
            return pc_error(StatusCode::BAD_REQUEST, "InvalidInput", &msg);
        }
        let old_status = current["status"].as_str().unwrap_or("New").to_string();
        let new_status = doc["status"].as_str().unwrap_or("New").to_string();
        let (old_status, new_status) = (old_status.as_str(), new_status.as_str());
        let moves = allowed(old_status).map(|(_, to)| to).unwrap_or(&[]);
        if !moves.contains(&new_status) {
            return pc_error(
                StatusCode::BAD_REQUEST,
                "InvalidStatusTransition",
                &format!(
                    "A referral cannot move from {old_status} to {new_status}; allowed: {}",
                    moves.join(", ")
                ),
            );
        }
        if new_status == "Active" && old_status != "Active" {
            doc["acceptedDateTime"] = json!(rfc3339(now));
        }
        if new_status == "Closed" && old_status != "Closed" {
            doc["closedDateTime"] = json!(rfc3339(now));
        }
        let mut fields: Map<String, Value> = doc.as_object().cloned().unwrap_or_default();
        for k in [
            "id",
            "eTag",
            "createdDateTime",
            "updatedDateTime",
            "links",
            "organizationId",
            "organizationName",
        ] {
            fields.remove(k);
        }
        st.referrals.replace(i, fields, now);
        let related_changes = {
            let engagement = doc["engagementId"].as_str().unwrap_or("").to_string();
            st.referrals
                .scan(Dir::Asc, None)
                .filter(|x| *x != i)
                .filter(|x| {
                    st.referrals.get(*x).is_some_and(|r| {
                        r.fields.get("engagementId").and_then(Value::as_str)
                            == Some(engagement.as_str())
                    })
                })
                .map(|x| ("related-referral-updated", x))
                .collect::<Vec<_>>()
        };
        let mut events = vec![("referral-updated", i)];
        events.extend(related_changes);
        let updated = p.render(&st, i).unwrap_or(Value::Null);
        let etag = updated["eTag"].as_str().unwrap_or("").to_string();
        let mut r = if representation {
            json_response(StatusCode::OK, updated)
        } else {
            StatusCode::NO_CONTENT.into_response()
        };
        set_header(&mut r, "ETag", etag);
        (r, events)
    };
    p.notify(events);
    resp
}

// ---------------------------------------------------------------- webhooks

impl PartnerCenter {
    /// RSA-SHA256 over the UTF-8 body, as `Authorization: Signature <base64>`.
    fn sign(&self, body: &[u8]) -> String {
        let mut sig = vec![0; self.signer.public().modulus_len()];
        self.signer
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                body,
                &mut sig,
            )
            .expect("RSA signing");
        STANDARD.encode(sig)
    }

    fn certificate_url(&self) -> String {
        format!(
            "{}/cert/pcnotifications-dispatch.microsoft.com.cer",
            self.base()
        )
    }

    /// Sends one pointer event per referral to the URL registered for that event.
    fn notify(&self, events: Vec<(&'static str, u64)>) -> Vec<u64> {
        let Some(reg) = self
            .state
            .lock()
            .expect("partner center state")
            .registration
            .clone()
        else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        for (event, i) in events {
            if !reg.events.iter().any(|e| e == event) {
                continue;
            }
            let resource = if event == "test-created" {
                "test".to_string()
            } else {
                referral_id(i)
            };
            let body = json!({
                "EventName": event, "ResourceUri": format!("{}/engagements/v1/referrals/{resource}", self.base()),
                "ResourceName": if event == "test-created" { "test" } else { "referral" }, "AuditUri": null,
                "ResourceChangeUtcDate": crate::clock::rfc3339_millis(self.now()).replace('Z', "+00:00"),
            })
            .to_string()
            .into_bytes();
            let headers = vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                (
                    "Authorization".to_string(),
                    format!("Signature {}", self.sign(&body)),
                ),
                ("X-MS-Certificate-Url".to_string(), self.certificate_url()),
                (
                    "X-MS-Signature-Algorithm".to_string(),
                    "rsa-sha256".to_string(),
                ),
            ];
            ids.push(self.hub.outbox.send(
                Arc::clone(&self.hub.clock),
                Outgoing {
                    vendor: Vendor::PartnerCenter,
                    event: event.to_string(),
                    url: reg.url.clone(),
                    method: http::Method::POST,
                    max_attempts: self.hub.outbox.attempts(self.limits.webhook_attempts),
                    build: Box::new(move |_, _| (headers.clone(), body.clone())),
                    retry_on: retry_any,
                },
            ));
        }
        ids
    }

    fn registration_json(r: &Registration) -> Value {
        json!({"SubscriberId": r.subscriber, "WebhookUrl": r.url, "WebhookEvents": r.events})
    }

    fn parse_registration(
        &self,
        body: &[u8],
        subscriber: String,
    ) -> Result<Registration, Response> {
        let v = parse_json_body(body)
            .map_err(|m| pc_error(StatusCode::BAD_REQUEST, "InvalidInput", &m))?;
        let url = v
            .get("WebhookUrl")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or_else(|| {
                pc_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidInput",
                    "WebhookUrl must be an absolute URL",
                )
            })?;
        let events: Vec<String> = v
            .get("WebhookEvents")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if events.is_empty() {
            return Err(pc_error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "WebhookEvents must name at least one event",
            ));
        }
        if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(pc_error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                &format!(
                    "{bad} is not a Partner Center event; GET /webhooks/v1/registration/events lists them"
                ),
            ));
        }
        Ok(Registration {
            subscriber,
            url: url.to_string(),
            events,
        })
    }
}

async fn registration(
    State(p): State<Arc<PartnerCenter>>,
    Extension(ctx): Extension<RequestCtx>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = p.authenticate(&headers, &ctx) {
        return r;
    }
    let mut st = p.state.lock().expect("partner center state");
    match method {
        http::Method::GET => match &st.registration {
            Some(r) => json_response(StatusCode::OK, PartnerCenter::registration_json(r)),
            None => pc_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "No webhook registration exists; create one with POST",
            ),
        },
        http::Method::DELETE => match st.registration.take() {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => pc_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "No webhook registration exists",
            ),
        },
        http::Method::POST => {
            if st.registration.is_some() {
                return pc_error(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "A registration already exists (one URL per event); update it with PUT or remove it with DELETE",
                );
            }
            let subscriber = p.hub.tokens.random_hex(16);
            match p.parse_registration(
                &body,
                format!(
                    "{}-{}-4{}-8{}-{}",
                    &subscriber[0..8],
                    &subscriber[8..12],
                    &subscriber[13..16],
                    &subscriber[17..20],
                    &subscriber[20..32]
                ),
            ) {
                Ok(r) => {
                    let body = PartnerCenter::registration_json(&r);
                    st.registration = Some(r);
                    json_response(StatusCode::OK, body)
                }
                Err(resp) => resp,
            }
        }
        _ => {
            let Some(existing) = st.registration.clone() else {
                return pc_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "No webhook registration exists; create one with POST",
                );
            };
            match p.parse_registration(&body, existing.subscriber) {
                Ok(r) => {
                    let body = PartnerCenter::registration_json(&r);
                    st.registration = Some(r);
                    json_response(StatusCode::OK, body)
                }
                Err(resp) => resp,
            }
        }
    }
}

async fn registration_events(
    State(p): State<Arc<PartnerCenter>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = p.authenticate(&headers, &ctx) {
        return r;
    }
    json_response(StatusCode::OK, json!(EVENTS))
}

async fn validation_events(
    State(p): State<Arc<PartnerCenter>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = p.authenticate(&headers, &ctx) {
        return r;
    }
    let now = p.now();
    {
        let mut st = p.state.lock().expect("partner center state");
        if !st
            .registration
            .as_ref()
            .is_some_and(|r| r.events.iter().any(|e| e == "test-created"))
        {
            return pc_error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "Register for the test-created event before requesting a validation event",
            );
        }
        while st.validations.front().is_some_and(|t| *t <= now - 60_000) {
            st.validations.pop_front();
        }
        if st.validations.len() as u32 >= p.limits.validation_events_per_minute {
            let retry = (st
                .validations
                .front()
                .map(|t| t + 60_000 - now)
                .unwrap_or(60_000)
                / 1_000)
                .max(1);
            drop(st);
            let mut r = pc_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Validation events are limited; wait before requesting another",
            );
            set_header(&mut r, "Retry-After", retry);
            return r;
        }
        st.validations.push_back(now);
    }
    let ids = p.notify(vec![("test-created", 0)]);
    let correlation = p.hub.tokens.random_hex(16);
    let correlation = format!(
        "{}-{}-4{}-8{}-{}",
        &correlation[0..8],
        &correlation[8..12],
        &correlation[13..16],
        &correlation[17..20],
        &correlation[20..32]
    );
    if let Some(id) = ids.first() {
        p.state
            .lock()
            .expect("partner center state")
            .validation_deliveries
            .push((correlation.clone(), *id));
    }
    json_response(StatusCode::OK, json!({"correlationId": correlation}))
}

async fn validation_status(
    State(p): State<Arc<PartnerCenter>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = p.authenticate(&headers, &ctx) {
        return r;
    }
    let delivery = p
        .state
        .lock()
        .expect("partner center state")
        .validation_deliveries
        .iter()
        .find(|(c, _)| *c == id)
        .map(|(_, d)| *d);
    let Some(d) = delivery.and_then(|d| p.hub.outbox.get(d)) else {
        return pc_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("No validation event with correlation id {id}"),
        );
    };
    let results: Vec<Value> = d.attempts.iter().map(|a| json!({"responseCode": a.status.map(|s| s.to_string()).unwrap_or_default(), "responseMessage": a.response_body, "systemError": a.error, "dateTimeUtc": a.at})).collect();
    let status = match d.state {
        "delivered" => "completed",
        other => other,
    };
    json_response(
        StatusCode::OK,
        json!({"correlationId": id, "partnerId": ORG_ID, "status": status, "results": results}),
    )
}

async fn certificate(State(_p): State<Arc<PartnerCenter>>, Path(name): Path<String>) -> Response {
    let pem = match name.as_str() {
        "pcnotifications-dispatch.microsoft.com.cer" => DISPATCH_CERT_PEM,
        "weft-sandbox-test-ca.cer" => TEST_CA_PEM,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut r = (StatusCode::OK, pem.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-x509-ca-cert"),
    );
    r
}

// ---------------------------------------------------------------- emulator

impl Emulator for PartnerCenter {
    fn vendor(&self) -> Vendor {
        Vendor::PartnerCenter
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/token", post(token_v1))
            .route("/{tenant}/oauth2/v2.0/token", post(token_v2))
            .route(
                "/v1.0/engagements/referrals",
                get(referrals).post(referrals),
            )
            .route(
                "/v1.0/engagements/referrals/{id}",
                get(referral).patch(referral),
            )
            .route(
                "/webhooks/v1/registration",
                get(registration)
                    .post(registration)
                    .put(registration)
                    .delete(registration),
            )
            .route("/webhooks/v1/registration/events", get(registration_events))
            .route(
                "/webhooks/v1/registration/validationEvents",
                post(validation_events),
            )
            .route(
                "/webhooks/v1/registration/validationEvents/{id}",
                get(validation_status),
            )
            .route("/cert/{name}", get(certificate))
            .fallback(|| async {
                pc_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "No such Partner Center resource",
                )
            })
            .with_state(self)
    }

    fn reset(&self, data: DemoData) {
        issue_demo_refresh(&self.hub);
        *self.state.lock().expect("partner center state") = Self::fresh(
            Demo::from(data),
            self.now(),
            self.limits.referral_response_window.as_millis() as i64,
        );
    }

    fn snapshot(&self) -> Value {
        let st = self.state.lock().expect("partner center state");
        json!({
            "vendor": "partner-center", "seed": st.demo.seed, "referrals": st.referrals.len(), "started": rfc3339(st.started_ms),
            "registration": st.registration.as_ref().map(PartnerCenter::registration_json),
        })
    }

    fn record(&self, _object: &str, id: &str) -> Option<Value> {
        let st = self.state.lock().expect("partner center state");
        self.render(&st, parse_referral_id(id)?)
    }

    /// `incoming-referral`: a referral arrives from Microsoft (direction Incoming, New/Pending),
    /// with any fields of the body merged over a demo referral.
    fn admin_action(&self, action: &str, body: &Value) -> Option<Response> {
        if action != "incoming-referral" {
            return None;
        }
        let now = self.now();
        let (resp, i) = {
            let mut st = self.state.lock().expect("partner center state");
            let template = generated(
                &st.demo,
                st.referrals.end(),
                now,
                self.limits.referral_response_window.as_millis() as i64,
            );
            let mut doc = Value::Object(template);
            if let Some(m) = body.as_object() {
                for (k, v) in m {
                    doc[k.as_str()] = v.clone();
                }
            }
            doc["direction"] = json!("Incoming");
            doc["status"] = json!("New");
            doc["substatus"] = json!("Pending");
            doc["expirationDateTime"] = json!(rfc3339(
                now + self.limits.referral_response_window.as_millis() as i64
            ));
            if let Err(msg) = validate_new(&doc) {
                return Some(pc_error(StatusCode::BAD_REQUEST, "InvalidInput", &msg));
            }
            let i = st
                .referrals
                .insert(doc.as_object().cloned().unwrap_or_default(), now);
            (
                json_response(
                    StatusCode::CREATED,
                    self.render(&st, i).unwrap_or(Value::Null),
                ),
                i,
            )
        };
        self.notify(vec![("referral-created", i)]);
        Some(resp)
    }

    fn throttled(&self) -> Response {
        let mut r = pc_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests; retry after the interval in Retry-After",
        );
        set_header(&mut r, "Retry-After", 30);
        r
    }

    fn server_error(&self) -> Response {
        pc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable",
        )
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: Some(REFRESH_TOKEN.into()),
            api_token: None,
            username: USERNAME.into(),
            extra: [
                ("tenant_id".to_string(), TENANT.to_string()),
                ("password".to_string(), PASSWORD.to_string()),
                (
                    "token_url".to_string(),
                    format!("{}/{TENANT}/oauth2/token", self.base()),
                ),
                ("resource".to_string(), RESOURCE.to_string()),
                ("webhook_resource".to_string(), WEBHOOK_RESOURCE.to_string()),
                ("webhook_test_ca_pem".to_string(), TEST_CA_PEM.to_string()),
                (
                    "webhook_certificate_url".to_string(),
                    self.certificate_url(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_patch_supports_replace_and_add_only() {
        let mut doc =
            json!({"status": "New", "details": {"dealValue": 1}, "team": [{"email": "a@x"}]});
        apply_op(
            &mut doc,
            &json!({"op": "replace", "path": "/details/dealValue", "value": 10000}),
        )
        .unwrap();
        apply_op(
            &mut doc,
            &json!({"op": "add", "path": "/team/-", "value": {"email": "b@x"}}),
        )
        .unwrap();
        assert_eq!(doc["details"]["dealValue"], 10000);
        assert_eq!(doc["team"].as_array().unwrap().len(), 2);
        assert!(
            apply_op(&mut doc, &json!({"op": "remove", "path": "/status"}))
                .unwrap_err()
                .contains("not supported")
        );
        assert!(
            apply_op(
                &mut doc,
                &json!({"op": "replace", "path": "/nope", "value": 1})
            )
            .is_err()
        );
        assert!(
            apply_op(
                &mut doc,
                &json!({"op": "replace", "path": "/eTag", "value": "x"})
            )
            .unwrap_err()
            .contains("read-only")
        );
    }

    #[test]
    fn dispatch_certificate_chains_to_the_bundled_key() {
        let cert_key = keys::rsa_public_key_der(DISPATCH_CERT_PEM).unwrap();
        let (_, der) = keys::pem_decode(DISPATCH_KEY_PEM).unwrap();
        let kp = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let mut sig = vec![0; kp.public().modulus_len()];
        kp.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            b"body",
            &mut sig,
        )
        .unwrap();
        assert!(keys::verify_rs256(&cert_key, b"body", &sig));
    }
}
