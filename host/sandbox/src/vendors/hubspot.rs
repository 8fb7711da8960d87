//! HubSpot CRM v3 objects, v4 associations, OAuth and app webhooks (crm-apis.md §4, §8).
//!
//! Faithful points a connector depends on: 30-minute OAuth access tokens with a refresh token
//! that stays the same, static private-app tokens, string-only property values, opaque `after`
//! cursors on lists and numeric ones on search, the 10,000-result search window and its own
//! per-second limit, batch endpoints with 207 partial failures, `new` on upserts, v4
//! associations with typed labels, `X-HubSpot-RateLimit-*` headers with policy-named 429s,
//! and batched webhook deliveries signed v1 and v3 with `attemptNumber` counting retries.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{
    auth_token, json as json_response, parse_json_body, query_params, set_header, token_params,
    valid_email,
};
use crate::clock::{parse_iso, rfc3339_millis};
use crate::collection::{Collection, Dir, Fields};
use crate::config::{DemoData, HubSpotLimits, SandboxConfig};
use crate::demo::{DEMO_EPOCH_MS, Demo, Kind};
use crate::oauth::{self, AuthorizeParams};
use crate::server::{Credentials, Emulator, Hub, RequestCtx};
use crate::tokens::{AccessToken, Grant, RefreshToken, TokenCheck};
use crate::vendor::Vendor;
use crate::webhook::{Outgoing, retry_server_errors};

pub(crate) const CLIENT_ID: &str = "5f3c1a2b-0000-4eed-8b5a-weftsandbox01";
pub(crate) const CLIENT_SECRET: &str = "0a1b2c3d-weft-sandbox-hubspot-secret-0000";
pub(crate) const PRIVATE_APP_TOKEN: &str = "pat-na1-00000000-weft-sandbox-0000-000000000000";
pub(crate) const REFRESH_TOKEN: &str = "na1-weft-sandbox-refresh-0000-000000000000";
pub(crate) const DEVELOPER_API_KEY: &str = "weft-sandbox-developer-hapikey";
const USER_EMAIL: &str = "demo@weft-sandbox.example";
const PORTAL_ID: u64 = 24_681_357;
const APP_ID: u64 = 1_357_924;
const DEMO_SCOPE: &str = "crm.objects.contacts.read crm.objects.contacts.write crm.objects.companies.read crm.objects.companies.write crm.objects.deals.read crm.objects.deals.write oauth";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum ObjType {
    Contacts,
    Companies,
    Deals,
    /// Call engagements. Empty in the demo data; the portal has the custom property
    /// `weft_conversation_id` (unique values), what an integration logging calls adds so that
    /// logging one again updates it.
    Calls,
}

impl ObjType {
    const ALL: [ObjType; 4] = [
        ObjType::Contacts,
        ObjType::Companies,
        ObjType::Deals,
        ObjType::Calls,
    ];

    fn parse(s: &str) -> Option<ObjType> {
        match s.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(ObjType::Contacts),
            "companies" | "company" | "0-2" => Some(ObjType::Companies),
            "deals" | "deal" | "0-3" => Some(ObjType::Deals),
            "calls" | "call" | "0-48" => Some(ObjType::Calls),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ObjType::Contacts => "contacts",
            ObjType::Companies => "companies",
            ObjType::Deals => "deals",
            ObjType::Calls => "calls",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            ObjType::Contacts => "contact",
            ObjType::Companies => "company",
            ObjType::Deals => "deal",
            ObjType::Calls => "call",
        }
    }

    fn type_id(self) -> &'static str {
        match self {
            ObjType::Contacts => "0-1",
            ObjType::Companies => "0-2",
            ObjType::Deals => "0-3",
            ObjType::Calls => "0-48",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }

    fn id_base(self) -> u64 {
        match self {
            ObjType::Contacts => 5_000_000_000,
            ObjType::Companies => 8_000_000_000,
            ObjType::Deals => 9_000_000_000,
            ObjType::Calls => 7_000_000_000,
        }
    }

    fn id(self, index: u64) -> u64 {
        self.id_base() + index + 1
    }

    fn index(self, id: &str) -> Option<u64> {
        let n: u64 = id.trim().parse().ok()?;
        let i = n.checked_sub(self.id_base() + 1)?;
        (i < 1_000_000_000).then_some(i)
    }

    fn modified_property(self) -> &'static str {
        match self {
            ObjType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjType::Contacts => &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
            ObjType::Companies => &[
                "createdate",
                "domain",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
            ],
            ObjType::Deals => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
            ObjType::Calls => &[
                "createdate",
                "hs_call_body",
                "hs_call_status",
                "hs_call_title",
                "hs_lastmodifieddate",
                "hs_object_id",
                "hs_timestamp",
            ],
        }
    }

    /// Whether a write may set `name` (read-only properties such as `createdate` are refused).
    fn writable(self, name: &str) -> bool {
        self.property(name).is_some_and(|p| !p.read_only)
    }

    fn property(self, name: &str) -> Option<PropertyDef> {
        property_defs(self).into_iter().find(|p| p.name == name)
    }

    /// The property group HubSpot files an object type's own properties under.
    fn property_group(self) -> &'static str {
        match self {
            ObjType::Contacts => "contactinformation",
            ObjType::Companies => "companyinformation",
            ObjType::Deals => "dealinformation",
            ObjType::Calls => "call",
        }
    }

    /// The property `idProperty` may name for lookups and upserts.
    fn unique_property(self) -> Option<&'static str> {
        match self {
            ObjType::Contacts => Some("email"),
            ObjType::Companies => Some("domain"),
            ObjType::Deals => None,
            ObjType::Calls => Some("weft_conversation_id"),
        }
    }
}

/// HubSpot-defined association type ids: `(from, to) -> (primary, unlabelled)`.
fn association_types(from: ObjType, to: ObjType) -> Option<(u32, u32)> {
    match (from, to) {
        (ObjType::Contacts, ObjType::Companies) => Some((1, 279)),
        (ObjType::Companies, ObjType::Contacts) => Some((2, 280)),
        (ObjType::Deals, ObjType::Contacts) => Some((3, 3)),
        (ObjType::Contacts, ObjType::Deals) => Some((4, 4)),
        (ObjType::Deals, ObjType::Companies) => Some((5, 341)),
        (ObjType::Companies, ObjType::Deals) => Some((6, 342)),
        (ObjType::Calls, ObjType::Contacts) => Some((194, 194)),
        (ObjType::Contacts, ObjType::Calls) => Some((193, 193)),
        (ObjType::Calls, ObjType::Companies) => Some((182, 182)),
        (ObjType::Companies, ObjType::Calls) => Some((181, 181)),
        (ObjType::Calls, ObjType::Deals) => Some((206, 206)),
        (ObjType::Deals, ObjType::Calls) => Some((205, 205)),
        _ => None,
    }
}

const STAGES: [&str; 6] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "contractsent",
    "closedwon",
    "closedlost",
];

fn generated(demo: &Demo, t: ObjType, i: u64) -> Fields {
    let v = match t {
        ObjType::Contacts => {
            let p = demo.contact(i);
            json!({"email": p.email, "firstname": p.first, "lastname": p.last, "phone": p.phone, "jobtitle": p.title, "company": p.company_name, "lifecyclestage": "customer"})
        }
        ObjType::Companies => {
            let c = demo.company(i);
            json!({"name": c.name, "domain": c.domain, "industry": c.industry.to_uppercase(), "phone": c.phone, "city": c.city, "state": c.state, "country": c.country, "numberofemployees": c.employees.to_string(), "annualrevenue": c.annual_revenue.to_string()})
        }
        ObjType::Deals => {
            let d = demo.deal(i);
            json!({"dealname": d.name, "amount": d.amount.to_string(), "dealstage": STAGES[d.stage], "pipeline": "default", "closedate": rfc3339_millis(DEMO_EPOCH_MS + d.close_day * 86_400_000)})
        }
        ObjType::Calls => json!({}),
    };
    v.as_object().cloned().unwrap_or_default()
}

fn build_collections(demo: Demo) -> Vec<Collection> {
    ObjType::ALL
        .into_iter()
        .map(|t| {
            let (kind, n) = match t {
                ObjType::Contacts => (Kind::Contact, demo.size.contacts),
                ObjType::Companies => (Kind::Company, demo.size.companies),
                ObjType::Deals => (Kind::Deal, demo.size.deals),
                ObjType::Calls => (Kind::Deal, 0),
            };
            Collection::new(
                n,
                move |i| generated(&demo, t, i),
                move |i| demo.times(kind, i, n),
            )
        })
        .collect()
}

/// Which properties a rendered object carries.
#[derive(Debug, Clone, Copy)]
enum Shown<'a> {
    /// The object type's default properties: reads that name none.
    Defaults,
    /// Exactly these, null where unset: reads with `properties=`.
    Named(&'a [String]),
    /// The defaults plus every property holding a value: what create, update and upsert
    /// answer. Inferred: HubSpot's reference shows only the `SimplePublicObject` shape, but its
    /// write answers carry the stored record (`hs_object_id`, `createdate`, the modified date and
    /// the other set values), not an echo of the request; hubspot-api-client users read them.
    Record,
}

impl<'a> Shown<'a> {
    /// What a read shows: the properties it names, or the defaults when it names none.
    fn read(names: &'a [String]) -> Shown<'a> {
        if names.is_empty() {
            Shown::Defaults
        } else {
            Shown::Named(names)
        }
    }
}

type AssocKey = (ObjType, u64, ObjType, u64);

#[derive(Debug, Clone)]
struct Subscription {
    id: u64,
    event_type: String,
    property_name: Option<String>,
    active: bool,
}

struct HubSpotState {
    demo: Demo,
    objects: Vec<Collection>,
    /// Associations written through the API, with their `(category, typeId)` labels.
    added: BTreeMap<AssocKey, BTreeSet<(String, u32)>>,
    /// Demo associations removed through the API.
    removed: BTreeSet<AssocKey>,
    calls: VecDeque<i64>,
    daily: (i64, u64),
    searches: VecDeque<i64>,
    target_url: Option<String>,
    subscriptions: Vec<Subscription>,
    next_event: u64,
}

pub(crate) struct HubSpot {
    hub: Arc<Hub>,
    base: OnceLock<String>,
    limits: HubSpotLimits,
    access_ms: i64,
    code_ms: i64,
    state: Mutex<HubSpotState>,
}

fn correlation(h: &Hub) -> String {
    let x = h.tokens.random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

impl HubSpot {
    pub(crate) fn new(hub: Arc<Hub>, config: &SandboxConfig) -> Arc<Self> {
        let demo = Demo::from(config.data);
        let h = Arc::new(Self {
            limits: config.hubspot,
            access_ms: config.tokens.hubspot_access.as_millis() as i64,
            code_ms: config.tokens.authorization_code.as_millis() as i64,
            state: Mutex::new(Self::fresh(demo, config.webhooks.target.clone())),
            hub,
            base: OnceLock::new(),
        });
        h.issue_demo_refresh();
        h
    }

    /// With a configured webhook target, every event type is subscribed, as an app would be.
    fn fresh(demo: Demo, target: Option<String>) -> HubSpotState {
        let subscriptions = match &target {
            Some(_) => EVENT_TYPES
                .iter()
                .enumerate()
                .map(|(n, e)| Subscription {
                    id: 100 + n as u64,
                    event_type: e.to_string(),
                    property_name: None,
                    active: true,
                })
                .collect(),
            None => Vec::new(),
        };
        HubSpotState {
            demo,
            objects: build_collections(demo),
            added: BTreeMap::new(),
            removed: BTreeSet::new(),
            calls: VecDeque::new(),
            daily: (0, 0),
            searches: VecDeque::new(),
            target_url: target,
            subscriptions,
            next_event: 1,
        }
    }

    fn issue_demo_refresh(&self) {
        self.hub.tokens.put_refresh(
            REFRESH_TOKEN.into(),
            RefreshToken {
                grant: Grant {
                    vendor: Vendor::HubSpot,
                    client_id: CLIENT_ID.into(),
                    user: USER_EMAIL.into(),
                    scope: DEMO_SCOPE.into(),
                },
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

    fn error(&self, status: StatusCode, category: &str, message: &str, extra: Value) -> Response {
        let mut body = json!({"status": "error", "message": message, "correlationId": correlation(&self.hub), "category": category});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        json_response(status, body)
    }

    fn not_found(&self, id: &str) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.",
            json!({"context": {"id": [id]}}),
        )
    }

    /// All properties of a stored record, as HubSpot strings.
    fn properties(
        &self,
        t: ObjType,
        index: u64,
        f: &Fields,
        created: i64,
        modified: i64,
    ) -> serde_json::Map<String, Value> {
        let mut p = serde_json::Map::new();
        for (k, v) in f {
            let s = match v {
                Value::Null => Value::Null,
                Value::String(s) => json!(s),
                other => json!(other.to_string()),
            };
            p.insert(k.clone(), s);
        }
        p.insert("hs_object_id".into(), json!(t.id(index).to_string()));
        p.insert("createdate".into(), json!(rfc3339_millis(created)));
        p.insert(
            t.modified_property().into(),
            json!(rfc3339_millis(modified)),
        );
        p
    }

    fn render(
        &self,
        st: &HubSpotState,
        t: ObjType,
        index: u64,
        shown: Shown<'_>,
        associations: &[ObjType],
    ) -> Option<Value> {
        let rec = st.objects[t.slot()].get(index)?;
        let all = self.properties(t, index, &rec.fields, rec.created_ms, rec.modified_ms);
        let defaults = || {
            t.default_properties()
                .iter()
                .map(|k| (k.to_string(), all.get(*k).cloned().unwrap_or(Value::Null)))
        };
        let props: serde_json::Map<String, Value> = match shown {
            Shown::Named(w) => w
                .iter()
                .map(|k| (k.clone(), all.get(k).cloned().unwrap_or(Value::Null)))
                .collect(),
            Shown::Defaults => defaults().collect(),
            Shown::Record => defaults()
                .chain(
                    all.iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), v.clone())),
                )
                .collect(),
        };
        let mut v = json!({
            "id": t.id(index).to_string(), "properties": props, "createdAt": rfc3339_millis(rec.created_ms),
            "updatedAt": rfc3339_millis(rec.modified_ms), "archived": false,
        });
        if !associations.is_empty() {
            let mut a = serde_json::Map::new();
            for to in associations {
                let list: Vec<Value> = self
                    .associated(st, t, index, *to)
                    .into_iter()
                    .map(|(j, _)| json!({"id": to.id(j).to_string(), "type": format!("{}_to_{}", t.singular(), to.singular())}))
                    .collect();
                if !list.is_empty() {
                    a.insert(to.name().into(), json!({"results": list}));
                }
            }
            v["associations"] = Value::Object(a);
        }
        Some(v)
    }

    /// Demo associations implied by the generator (contact j works at company j % companies;
    /// deal k belongs to company k % companies and its first contact).
    fn generated_assoc(&self, st: &HubSpotState, from: ObjType, i: u64, to: ObjType) -> Vec<u64> {
        let size = st.demo.size;
        let (nc, np, nd) = (size.companies.max(1), size.contacts, size.deals);
        let gen_contacts = st.objects[ObjType::Contacts.slot()].end().min(np);
        let gen_deals = st.objects[ObjType::Deals.slot()].end().min(nd);
        match (from, to) {
            (ObjType::Contacts, ObjType::Companies) if i < np && size.companies > 0 => vec![i % nc],
            (ObjType::Companies, ObjType::Contacts) if i < size.companies => (i..gen_contacts)
                .step_by(nc as usize)
                .take(10_000)
                .collect(),
            (ObjType::Deals, ObjType::Companies) if i < nd && size.companies > 0 => vec![i % nc],
            (ObjType::Companies, ObjType::Deals) if i < size.companies => {
                (i..gen_deals).step_by(nc as usize).take(10_000).collect()
            }
            (ObjType::Deals, ObjType::Contacts) if i < nd && np > i % nc => vec![i % nc],
            (ObjType::Contacts, ObjType::Deals) if i < size.companies && i < np => {
                (i..gen_deals).step_by(nc as usize).take(10_000).collect()
            }
            _ => Vec::new(),
        }
    }

    /// `(index, labels)` of records of type `to` associated with `(from, i)`.
    fn associated(
        &self,
        st: &HubSpotState,
        from: ObjType,
        i: u64,
        to: ObjType,
    ) -> Vec<(u64, BTreeSet<(String, u32)>)> {
        let mut out: BTreeMap<u64, BTreeSet<(String, u32)>> = BTreeMap::new();
        if let Some((primary, plain)) = association_types(from, to) {
            for j in self.generated_assoc(st, from, i, to) {
                if !st.removed.contains(&(from, i, to, j)) && st.objects[to.slot()].is_live(j) {
                    let e = out.entry(j).or_default();
                    e.insert(("HUBSPOT_DEFINED".into(), primary));
                    e.insert(("HUBSPOT_DEFINED".into(), plain));
                }
            }
        }
        for ((f, fi, t, tj), labels) in st.added.range((from, i, to, 0)..=(from, i, to, u64::MAX)) {
            if *f == from && *fi == i && *t == to && st.objects[to.slot()].is_live(*tj) {
                out.entry(*tj).or_default().extend(labels.iter().cloned());
            }
        }
        out.into_iter().collect()
    }

    fn associate(
        &self,
        st: &mut HubSpotState,
        from: ObjType,
        i: u64,
        to: ObjType,
        j: u64,
        labels: &[(String, u32)],
    ) {
        let inverse: Vec<(String, u32)> = labels
            .iter()
            .map(|(c, id)| {
                let inv = match (association_types(from, to), association_types(to, from)) {
                    (Some((p, u)), Some((ip, iu))) if c == "HUBSPOT_DEFINED" => {
                        if *id == p {
                            ip
                        } else if *id == u {
                            iu
                        } else {
                            *id
                        }
                    }
                    _ => *id,
                };
                (c.clone(), inv)
            })
            .collect();
        st.removed.remove(&(from, i, to, j));
        st.removed.remove(&(to, j, from, i));
        st.added
            .entry((from, i, to, j))
            .or_default()
            .extend(labels.iter().cloned());
        st.added
            .entry((to, j, from, i))
            .or_default()
            .extend(inverse);
    }

    fn dissociate(&self, st: &mut HubSpotState, from: ObjType, i: u64, to: ObjType, j: u64) {
        st.added.remove(&(from, i, to, j));
        st.added.remove(&(to, j, from, i));
        st.removed.insert((from, i, to, j));
        st.removed.insert((to, j, from, i));
    }
}

// ---------------------------------------------------------------- auth and limits

impl HubSpot {
    fn guarded(
        &self,
        headers: &HeaderMap,
        ctx: &RequestCtx,
        search: bool,
        f: impl FnOnce() -> Response,
    ) -> Response {
        let Some(token) = auth_token(headers, "Bearer") else {
            return self.error(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                json!({}),
            );
        };
        if token != PRIVATE_APP_TOKEN {
            match self.hub.tokens.check(Vendor::HubSpot, token, self.now()) {
                TokenCheck::Valid(_) if !ctx.force_expired => {}
                TokenCheck::Valid(_) | TokenCheck::Expired => {
                    return self.error(
                        StatusCode::UNAUTHORIZED,
                        "EXPIRED_AUTHENTICATION",
                        "The OAuth token used to make this call expired 1 minute(s) ago.",
                        json!({}),
                    );
                }
                TokenCheck::Unknown => {
                    return self.error(
                        StatusCode::UNAUTHORIZED,
                        "INVALID_AUTHENTICATION",
                        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                        json!({}),
                    );
                }
            }
        }
        let now = self.now();
        let window = self.limits.interval.as_millis() as i64;
        let (remaining, daily_remaining) = {
            let mut st = self.state.lock().expect("hubspot state");
            while st.calls.front().is_some_and(|t| *t <= now - window) {
                st.calls.pop_front();
            }
            let day = now.div_euclid(86_400_000);
            if st.daily.0 != day {
                st.daily = (day, 0);
            }
            if st.daily.1 >= self.limits.daily {
                drop(st);
                return self.rate_limited("You have reached your daily limit.", "DAILY");
            }
            if st.calls.len() as u32 >= self.limits.burst {
                drop(st);
                return self.rate_limited(
                    "You have reached your ten_secondly_rolling limit.",
                    "TEN_SECONDLY_ROLLING",
                );
            }
            if search {
                while st.searches.front().is_some_and(|t| *t <= now - 1_000) {
                    st.searches.pop_front();
                }
                if st.searches.len() as u32 >= self.limits.search_per_second {
                    drop(st);
                    // The search limit's 429 names no policy; clients match on the message.
                    let mut r = json_response(
                        StatusCode::TOO_MANY_REQUESTS,
                        json!({"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "correlationId": correlation(&self.hub)}),
                    );
                    set_header(&mut r, "Retry-After", 1);
                    return r;
                }
                st.searches.push_back(now);
            }
            st.calls.push_back(now);
            st.daily.1 += 1;
            (
                self.limits.burst - st.calls.len() as u32,
                self.limits.daily - st.daily.1,
            )
        };
        let mut resp = f();
        set_header(&mut resp, "X-HubSpot-RateLimit-Daily", self.limits.daily);
        set_header(
            &mut resp,
            "X-HubSpot-RateLimit-Daily-Remaining",
            daily_remaining,
        );
        set_header(
            &mut resp,
            "X-HubSpot-RateLimit-Interval-Milliseconds",
            window,
        );
        set_header(&mut resp, "X-HubSpot-RateLimit-Max", self.limits.burst);
        set_header(&mut resp, "X-HubSpot-RateLimit-Remaining", remaining);
        resp
    }

    fn rate_limited(&self, message: &str, policy: &str) -> Response {
        let mut r = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"status": "error", "message": message, "errorType": "RATE_LIMIT", "correlationId": correlation(&self.hub), "policyName": policy}),
        );
        set_header(&mut r, "X-HubSpot-RateLimit-Max", self.limits.burst);
        set_header(&mut r, "X-HubSpot-RateLimit-Remaining", 0);
        r
    }
}

// ---------------------------------------------------------------- OAuth

async fn authorize_page(RawQuery(q): RawQuery) -> Response {
    let mut p: AuthorizeParams =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    // HubSpot's authorize URL carries no response_type.
    if p.response_type.is_empty() {
        p.response_type = "code".into();
    }
    oauth::consent_page(Vendor::HubSpot, "/oauth/authorize", CLIENT_ID, &p)
}

async fn authorize_decision(State(h): State<Arc<HubSpot>>, body: Bytes) -> Response {
    let mut p: AuthorizeParams = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if p.response_type.is_empty() {
        p.response_type = "code".into();
    }
    oauth::decide(
        &oauth::Consent {
            vendor: Vendor::HubSpot,
            known_client: CLIENT_ID,
            user: USER_EMAIL,
            code_lifetime_ms: h.code_ms,
            code_prefix: "na1-",
        },
        &h.hub.tokens,
        h.now(),
        &p,
        &[],
    )
}

async fn token(
    State(h): State<Arc<HubSpot>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = token_params(q.as_deref(), &headers, &body);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let fail = |status: &str, message: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            json!({"status": status, "message": message, "correlationId": correlation(&h.hub)}),
        )
    };
    if get("client_id") != CLIENT_ID {
        return fail("BAD_CLIENT_ID", "missing or invalid client_id");
    }
    if get("client_secret") != CLIENT_SECRET {
        return fail("BAD_CLIENT_SECRET", "missing or invalid client secret");
    }
    let now = h.now();
    let (grant, refresh) = match get("grant_type") {
        "authorization_code" => {
            let Some(code) = h
                .hub
                .tokens
                .take_code(get("code"))
                .filter(|c| c.grant.vendor == Vendor::HubSpot && c.expires_ms > now)
            else {
                return fail("BAD_AUTH_CODE", "missing or unknown auth code");
            };
            if code.redirect_uri != get("redirect_uri") {
                return fail(
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match the one used to obtain the code",
                );
            }
            let r = format!("na1-{}", h.hub.tokens.random_hex(16));
            h.hub.tokens.put_refresh(
                r.clone(),
                RefreshToken {
                    grant: code.grant.clone(),
                    expires_ms: i64::MAX,
                    minted: VecDeque::new(),
                },
            );
            (code.grant, r)
        }
        "refresh_token" => {
            let rt = get("refresh_token");
            let Some(stored) = h
                .hub
                .tokens
                .refresh(rt)
                .filter(|r| r.grant.vendor == Vendor::HubSpot)
            else {
                return fail("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
            };
            // HubSpot refresh tokens do not change on refresh.
            (stored.grant, rt.to_string())
        }
        _ => {
            return fail(
                "BAD_GRANT_TYPE",
                "grant_type must be authorization_code or refresh_token",
            );
        }
    };
    let access = format!("CN{}", URL_SAFE_NO_PAD.encode(h.hub.tokens.random_hex(48)));
    h.hub.tokens.put_access(
        access.clone(),
        AccessToken {
            grant,
            expires_ms: now + h.access_ms,
            refresh: Some(refresh.clone()),
        },
    );
    json_response(
        StatusCode::OK,
        json!({"token_type": "bearer", "refresh_token": refresh, "access_token": access, "expires_in": h.access_ms / 1_000}),
    )
}

async fn token_info(State(h): State<Arc<HubSpot>>, Path(token): Path<String>) -> Response {
    match h.hub.tokens.check(Vendor::HubSpot, &token, h.now()) {
        TokenCheck::Valid(a) => json_response(
            StatusCode::OK,
            json!({
                "token": token, "user": a.grant.user, "hub_domain": "weft-sandbox.example", "scopes": a.grant.scope.split_whitespace().collect::<Vec<_>>(),
                "hub_id": PORTAL_ID, "app_id": APP_ID, "expires_in": (a.expires_ms - h.now()) / 1_000, "user_id": 1, "token_type": "access",
            }),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"status": "error", "message": "Token not found", "correlationId": correlation(&h.hub)}),
        ),
    }
}

async fn account_details(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
) -> Response {
    h.guarded(&headers, &ctx, false, || {
        json_response(
            StatusCode::OK,
            json!({"portalId": PORTAL_ID, "accountType": "STANDARD", "timeZone": "Etc/UTC", "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "+00:00", "utcOffsetMilliseconds": 0, "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"}),
        )
    })
}

// ---------------------------------------------------------------- objects

fn list_param(p: &HashMap<String, String>, k: &str) -> Vec<String> {
    p.get(k)
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

async fn list(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(t) = ObjType::parse(&kind) else {
        if Unstored::parse(&kind).is_some() {
            return h.guarded(&headers, &ctx, false, || {
                json_response(StatusCode::OK, json!({"results": []}))
            });
        }
        return h.unknown_object_type(&kind);
    };
    h.guarded(&headers, &ctx, false, || {
        let p = query_params(q.as_deref());
        let limit = p.get("limit").and_then(|s| s.parse::<u64>().ok()).unwrap_or(10);
        if limit == 0 || limit > h.limits.max_list_limit {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("limit must be between 1 and {}", h.limits.max_list_limit), json!({}));
        }
        let after = match p.get("after") {
            None => None,
            Some(a) => match URL_SAFE_NO_PAD.decode(a.trim_end_matches('=')).ok().and_then(|b| String::from_utf8(b).ok()).and_then(|s| t.index(&s)) {
                Some(i) => Some(i),
                None => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "after is not a paging cursor issued by this endpoint", json!({})),
            },
        };
        let props = list_param(&p, "properties");
        let assoc: Vec<ObjType> = list_param(&p, "associations").iter().filter_map(|a| ObjType::parse(a)).collect();
        let st = h.state.lock().expect("hubspot state");
        let mut it = st.objects[t.slot()].scan(Dir::Asc, after);
        let page: Vec<u64> = it.by_ref().take(limit as usize).collect();
        let more = it.next().is_some();
        let results: Vec<Value> = page.iter().filter_map(|i| h.render(&st, t, *i, Shown::read(&props), &assoc)).collect();
        let mut body = json!({"results": results});
        if more && let Some(last) = page.last() {
            // The cursor names the last object read; HubSpot documents it as opaque.
            let cursor = URL_SAFE_NO_PAD.encode(t.id(*last).to_string());
            body["paging"] = json!({"next": {"after": cursor, "link": format!("{}/crm/v3/objects/{}?after={cursor}&limit={limit}", h.base(), t.name())}});
        }
        json_response(StatusCode::OK, body)
    })
}

impl HubSpot {
    /// Resolves a path id, honouring `idProperty`.
    fn resolve(
        &self,
        st: &mut HubSpotState,
        t: ObjType,
        id: &str,
        id_property: Option<&str>,
    ) -> Option<u64> {
        match id_property.filter(|p| *p != "hs_object_id") {
            Some(prop) => st.objects[t.slot()].find(prop, &json!(id)).first().copied(),
            None => t.index(id).filter(|i| st.objects[t.slot()].is_live(*i)),
        }
    }

    /// Validates properties; returns cleaned fields or the 400 body's per-property errors.
    fn validate(
        &self,
        st: &mut HubSpotState,
        t: ObjType,
        props: &serde_json::Map<String, Value>,
        existing: Option<u64>,
    ) -> Result<Fields, (StatusCode, String, Value)> {
        let mut out = Fields::new();
        let mut bad = Vec::new();
        for (k, v) in props {
            if !t.writable(k) {
                bad.push(json!({"isValid": false, "message": format!("Property \"{k}\" does not exist"), "error": "PROPERTY_DOESNT_EXIST", "name": k, "localizedErrorMessage": format!("Property \"{k}\" does not exist")}));
                continue;
            }
            let s = match v {
                Value::Null => Value::Null,
                Value::String(s) => json!(s),
                Value::Number(n) => json!(n.to_string()),
                Value::Bool(b) => json!(b.to_string()),
                _ => {
                    bad.push(json!({"isValid": false, "message": format!("{v} is not a valid value for {k}"), "error": "INVALID_OPTION", "name": k}));
                    continue;
                }
            };
            if k == "email"
                && let Some(e) = s.as_str()
                && !valid_email(e)
            {
                bad.push(json!({"isValid": false, "message": format!("Email address {e} is invalid"), "error": "INVALID_EMAIL", "name": "email"}));
                continue;
            }
            if matches!(k.as_str(), "amount" | "numberofemployees" | "annualrevenue")
                && s.as_str()
                    .is_some_and(|x| !x.is_empty() && x.parse::<f64>().is_err())
            {
                bad.push(json!({"isValid": false, "message": format!("{s} was not a valid number."), "error": "INVALID_INTEGER", "name": k}));
                continue;
            }
            out.insert(k.clone(), s);
        }
        if !bad.is_empty() {
            let msg = format!(
                "Property values were not valid: {}",
                Value::Array(bad.clone())
            );
            return Err((
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR".into(),
                json!({"message": msg, "errors": bad.iter().map(|b| json!({"message": b["message"], "code": b["error"], "context": {"propertyName": [b["name"]]}})).collect::<Vec<_>>()}),
            ));
        }
        if let Some(key) = t.unique_property()
            && let Some(val) = out.get(key).filter(|v| !v.is_null())
            && let Some(other) = st.objects[t.slot()]
                .find(key, val)
                .into_iter()
                .find(|i| Some(*i) != existing)
        {
            return Err((
                StatusCode::CONFLICT,
                "CONFLICT".into(),
                json!({"message": format!("{} already exists. Existing ID: {}", capitalise(t.singular()), t.id(other))}),
            ));
        }
        Ok(out)
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// A change that may trigger webhook events.
struct Change {
    t: ObjType,
    index: u64,
    kind: ChangeKind,
}

enum ChangeKind {
    Created,
    Updated(Vec<(String, Value)>),
    Deleted,
}

impl HubSpot {
    fn create_one(
        &self,
        st: &mut HubSpotState,
        t: ObjType,
        input: &Value,
        changes: &mut Vec<Change>,
    ) -> Result<u64, (StatusCode, String, Value)> {
        let props = input
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let fields = self.validate(st, t, &props, None)?;
        let mut pending = Vec::new();
        for a in input
            .get("associations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let to_id = a
                .pointer("/to/id")
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default();
            let target = ObjType::ALL.into_iter().find_map(|o| {
                o.index(&to_id)
                    .filter(|i| st.objects[o.slot()].is_live(*i))
                    .map(|i| (o, i))
            });
            let Some((to, j)) = target else {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR".into(),
                    json!({"message": format!("Association target {to_id} does not exist")}),
                ));
            };
            let labels: Vec<(String, u32)> = a
                .get("types")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|x| {
                    Some((
                        x.get("associationCategory")?.as_str()?.to_string(),
                        x.get("associationTypeId")?.as_u64()? as u32,
                    ))
                })
                .collect();
            pending.push((to, j, labels));
        }
        let i = st.objects[t.slot()].insert(fields, self.now());
        for (to, j, labels) in pending {
            self.associate(st, t, i, to, j, &labels);
        }
        changes.push(Change {
            t,
            index: i,
            kind: ChangeKind::Created,
        });
        Ok(i)
    }

    fn update_one(
        &self,
        st: &mut HubSpotState,
        t: ObjType,
        i: u64,
        props: &serde_json::Map<String, Value>,
        changes: &mut Vec<Change>,
    ) -> Result<(), (StatusCode, String, Value)> {
        let fields = self.validate(st, t, props, Some(i))?;
        let before = st.objects[t.slot()]
            .get(i)
            .map(|r| r.fields)
            .unwrap_or_default();
        st.objects[t.slot()].merge(i, &fields, self.now());
        let changed: Vec<(String, Value)> = fields
            .into_iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .collect();
        changes.push(Change {
            t,
            index: i,
            kind: ChangeKind::Updated(changed),
        });
        Ok(())
    }

    fn failure(&self, e: (StatusCode, String, Value)) -> Response {
        let (status, category, extra) = e;
        let message = extra["message"].as_str().unwrap_or("").to_string();
        self.error(status, &category, &message, extra)
    }
}

async fn create(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(t) = ObjType::parse(&kind) else {
        return h.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("Unable to infer object type from: {kind}"),
            json!({}),
        );
    };
    h.guarded(&headers, &ctx, false, || {
        let input = match parse_json_body(&body) {
            Ok(v) => v,
            Err(m) => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &m, json!({})),
        };
        let mut changes = Vec::new();
        let result = {
            let mut st = h.state.lock().expect("hubspot state");
            h.create_one(&mut st, t, &input, &mut changes)
                .map(|i| h.render(&st, t, i, Shown::Record, &[]))
        };
        h.emit(changes);
        match result {
            Ok(v) => json_response(StatusCode::CREATED, v.unwrap_or(Value::Null)),
            Err(e) => h.failure(e),
        }
    })
}

async fn object(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((kind, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(t) = ObjType::parse(&kind) else {
        return match Unstored::parse(&kind) {
            Some(_) if id == "search" && method == http::Method::POST => {
                h.guarded(&headers, &ctx, true, || {
                    json_response(StatusCode::OK, json!({"total": 0, "results": []}))
                })
            }
            Some(_) => h.guarded(&headers, &ctx, false, || h.not_found(&id)),
            None => h.unknown_object_type(&kind),
        };
    };
    if id == "search" && method == http::Method::POST {
        return search(h, ctx, t, headers, body);
    }
    h.guarded(&headers, &ctx, false, || {
        let p = query_params(q.as_deref());
        let mut changes = Vec::new();
        let resp = {
            let mut st = h.state.lock().expect("hubspot state");
            let Some(i) = h.resolve(&mut st, t, &id, p.get("idProperty").map(String::as_str))
            else {
                return h.not_found(&id);
            };
            match method {
                http::Method::GET => {
                    let props = list_param(&p, "properties");
                    let assoc: Vec<ObjType> = list_param(&p, "associations")
                        .iter()
                        .filter_map(|a| ObjType::parse(a))
                        .collect();
                    json_response(
                        StatusCode::OK,
                        h.render(&st, t, i, Shown::read(&props), &assoc)
                            .unwrap_or(Value::Null),
                    )
                }
                http::Method::PATCH => {
                    let input = match parse_json_body(&body) {
                        Ok(v) => v,
                        Err(m) => {
                            return h.error(
                                StatusCode::BAD_REQUEST,
                                "VALIDATION_ERROR",
                                &m,
                                json!({}),
                            );
                        }
                    };
                    let props = input
                        .get("properties")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    match h.update_one(&mut st, t, i, &props, &mut changes) {
                        Ok(()) => json_response(
                            StatusCode::OK,
                            h.render(&st, t, i, Shown::Record, &[])
                                .unwrap_or(Value::Null),
                        ),
                        Err(e) => h.failure(e),
                    }
                }
                http::Method::DELETE => {
                    let now = h.now();
                    st.objects[t.slot()].delete(i, now);
                    changes.push(Change {
                        t,
                        index: i,
                        kind: ChangeKind::Deleted,
                    });
                    StatusCode::NO_CONTENT.into_response()
                }
                _ => h.error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "VALIDATION_ERROR",
                    "method not allowed",
                    json!({}),
                ),
            }
        };
        h.emit(changes);
        resp
    })
}

// ---------------------------------------------------------------- batch

async fn batch(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((kind, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(t) = ObjType::parse(&kind) else {
        return h.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("Unable to infer object type from: {kind}"),
            json!({}),
        );
    };
    h.guarded(&headers, &ctx, false, || {
        let input = match parse_json_body(&body) {
            Ok(v) => v,
            Err(m) => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &m, json!({})),
        };
        let Some(inputs) = input.get("inputs").and_then(Value::as_array) else {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "inputs is required", json!({}));
        };
        if inputs.len() > h.limits.max_batch_inputs {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("Batch input limit of {} exceeded: {} inputs given", h.limits.max_batch_inputs, inputs.len()), json!({}));
        }
        let started = rfc3339_millis(h.now());
        let mut changes = Vec::new();
        let mut results = Vec::new();
        let mut errors = Vec::new();
        {
            let mut st = h.state.lock().expect("hubspot state");
            let wanted: Vec<String> = input.get("properties").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default();
            let id_property = input.get("idProperty").and_then(Value::as_str).map(str::to_string);
            for item in inputs {
                let id = item.get("id").map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default();
                let outcome: Result<Option<Value>, (StatusCode, String, Value)> = match action.as_str() {
                    "create" => h.create_one(&mut st, t, item, &mut changes).map(|i| h.render(&st, t, i, Shown::Record, &[])),
                    "read" => match h.resolve(&mut st, t, &id, id_property.as_deref()) {
                        Some(i) => Ok(h.render(&st, t, i, Shown::read(&wanted), &[])),
                        None => Err((StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND".into(), json!({"message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", t.singular()), "id": id}))),
                    },
                    "update" => match h.resolve(&mut st, t, &id, item.get("idProperty").and_then(Value::as_str)) {
                        Some(i) => {
                            let props = item.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                            h.update_one(&mut st, t, i, &props, &mut changes).map(|_| h.render(&st, t, i, Shown::Record, &[]))
                        }
                        None => Err((StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND".into(), json!({"message": format!("Object not found: {id}"), "id": id}))),
                    },
                    "upsert" => {
                        let prop = item.get("idProperty").and_then(Value::as_str).map(str::to_string).or_else(|| t.unique_property().map(str::to_string));
                        match prop {
                            None => Err((StatusCode::BAD_REQUEST, "VALIDATION_ERROR".into(), json!({"message": format!("{} has no unique property to upsert on; give idProperty", t.name())}))),
                            Some(prop) => {
                                let existing = h.resolve(&mut st, t, &id, Some(&prop));
                                let mut props = item.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                                match existing {
                                    Some(i) => h.update_one(&mut st, t, i, &props, &mut changes).map(|_| h.render(&st, t, i, Shown::Record, &[]).map(|mut v| {
                                        v["new"] = json!(false);
                                        v
                                    })),
                                    None => {
                                        props.insert(prop.clone(), json!(id));
                                        let created = json!({"properties": props});
                                        h.create_one(&mut st, t, &created, &mut changes).map(|i| h.render(&st, t, i, Shown::Record, &[]).map(|mut v| {
                                            v["new"] = json!(true);
                                            v
                                        }))
                                    }
                                }
                            }
                        }
                    }
                    "archive" => match h.resolve(&mut st, t, &id, None) {
                        Some(i) => {
                            let now = h.now();
                            st.objects[t.slot()].delete(i, now);
                            changes.push(Change { t, index: i, kind: ChangeKind::Deleted });
                            Ok(None)
                        }
                        // Archiving what is already gone is not an error in HubSpot.
                        None => Ok(None),
                    },
                    _ => return h.error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", &format!("unknown batch action {action}"), json!({})),
                };
                match outcome {
                    Ok(Some(v)) => results.push(v),
                    Ok(None) => {}
                    Err((status, category, extra)) => errors.push(json!({
                        "status": "error", "category": category, "message": extra["message"], "subCategory": null,
                        "context": {"id": [extra.get("id").cloned().unwrap_or(json!(id))]}, "errors": extra.get("errors").cloned().unwrap_or(json!([])),
                        "links": {}, "httpStatus": status.as_u16(),
                    })),
                }
            }
        }
        h.emit(changes);
        if action == "archive" {
            return StatusCode::NO_CONTENT.into_response();
        }
        let mut body = json!({"status": "COMPLETE", "results": results, "requestedAt": started, "startedAt": started, "completedAt": rfc3339_millis(h.now()), "links": {}});
        let status = if !errors.is_empty() {
            body["numErrors"] = json!(errors.len());
            body["errors"] = json!(errors);
            StatusCode::MULTI_STATUS
        } else if action == "create" {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        json_response(status, body)
    })
}

// ---------------------------------------------------------------- search

fn prop_number(v: &Value) -> Option<f64> {
    let s = v.as_str()?;
    s.parse::<f64>()
        .ok()
        .or_else(|| parse_iso(s).map(|ms| ms as f64))
}

fn filter_matches(props: &serde_json::Map<String, Value>, f: &Value) -> bool {
    let name = f["propertyName"].as_str().unwrap_or("");
    let op = f["operator"].as_str().unwrap_or("EQ");
    let actual = props.get(name).cloned().unwrap_or(Value::Null);
    let text = actual.as_str().map(str::to_lowercase);
    let target = f.get("value").map(|v| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    });
    let cmp = |t: &str| -> Option<std::cmp::Ordering> {
        let tv = t
            .parse::<f64>()
            .ok()
            .or_else(|| parse_iso(t).map(|ms| ms as f64));
        match (prop_number(&actual), tv) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => text
                .as_ref()
                .map(|a| a.as_str().cmp(t.to_lowercase().as_str())),
        }
    };
    match op {
        "HAS_PROPERTY" => !actual.is_null() && text.as_deref() != Some(""),
        "NOT_HAS_PROPERTY" => actual.is_null() || text.as_deref() == Some(""),
        "EQ" => target.as_deref().and_then(cmp) == Some(std::cmp::Ordering::Equal),
        "NEQ" => target.as_deref().and_then(cmp) != Some(std::cmp::Ordering::Equal),
        "LT" => target.as_deref().and_then(cmp) == Some(std::cmp::Ordering::Less),
        "LTE" => matches!(
            target.as_deref().and_then(cmp),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        ),
        "GT" => target.as_deref().and_then(cmp) == Some(std::cmp::Ordering::Greater),
        "GTE" => matches!(
            target.as_deref().and_then(cmp),
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        ),
        "BETWEEN" => {
            let high = f.get("highValue").map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            });
            matches!(
                target.as_deref().and_then(cmp),
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            ) && matches!(
                high.as_deref().and_then(cmp),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            )
        }
        "IN" | "NOT_IN" => {
            let hit = f["values"].as_array().is_some_and(|vs| {
                vs.iter().any(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                        .to_lowercase()
                        == text.clone().unwrap_or_default()
                })
            });
            hit == (op == "IN")
        }
        "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
            let token = target.unwrap_or_default().to_lowercase().replace('*', "");
            let hit = text.as_ref().is_some_and(|t| {
                t.split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.')
                    .any(|w| w == token)
                    || t.contains(&token)
            });
            hit == (op == "CONTAINS_TOKEN")
        }
        _ => false,
    }
}

const OPERATORS: [&str; 13] = [
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

fn search(
    h: Arc<HubSpot>,
    ctx: RequestCtx,
    t: ObjType,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    h.guarded(&headers, &ctx, true, || {
        let req = match parse_json_body(&body) {
            Ok(v) => v,
            Err(m) => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &m, json!({})),
        };
        let groups: Vec<Value> = req.get("filterGroups").and_then(Value::as_array).cloned().unwrap_or_default();
        let total_filters: usize = groups.iter().map(|g| g["filters"].as_array().map(Vec::len).unwrap_or(0)).sum();
        if groups.len() > h.limits.max_filter_groups || groups.iter().any(|g| g["filters"].as_array().map(Vec::len).unwrap_or(0) > h.limits.max_filters_per_group) || total_filters > h.limits.max_filters_total {
            return h.error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!(
                    "Too many filters: at most {} filterGroups, {} filters per group and {} filters in total are allowed",
                    h.limits.max_filter_groups, h.limits.max_filters_per_group, h.limits.max_filters_total
                ),
                json!({}),
            );
        }
        if let Some(bad) = groups.iter().flat_map(|g| g["filters"].as_array().cloned().unwrap_or_default()).find(|f| !OPERATORS.contains(&f["operator"].as_str().unwrap_or(""))) {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("Unknown filter operator {}", bad["operator"]), json!({}));
        }
        let limit = req.get("limit").and_then(Value::as_u64).unwrap_or(10);
        if limit == 0 || limit > h.limits.max_search_limit {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("limit must be between 1 and {}", h.limits.max_search_limit), json!({}));
        }
        let after: u64 = match req.get("after") {
            None | Some(Value::Null) => 0,
            Some(v) => match v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()).parse::<u64>() {
                Ok(n) => n,
                Err(_) => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "after must be formatted as an integer", json!({})),
            },
        };
        if after + limit > h.limits.search_window {
            return h.error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("The search window is limited to {} results; narrow the query (for example on {}) instead of paging further.", h.limits.search_window, t.modified_property()),
                json!({}),
            );
        }
        let wanted: Vec<String> = req.get("properties").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default();
        let sorts: Vec<(String, bool)> = req
            .get("sorts")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| match s {
                        Value::String(p) => Some(match p.strip_prefix('-') {
                            Some(x) => (x.to_string(), true),
                            None => (p.clone(), false),
                        }),
                        Value::Object(o) => Some((o.get("propertyName")?.as_str()?.to_string(), o.get("direction").and_then(Value::as_str) == Some("DESCENDING"))),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now = h.now();
        let lag = h.limits.search_index_lag.as_millis() as i64;
        let st = h.state.lock().expect("hubspot state");
        let c = &st.objects[t.slot()];
        // Incremental syncs search one modified-date range sorted by that date: answer those from
        // modification order without generating every record.
        let modified = t.modified_property();
        let only_modified = groups.len() == 1
            && groups[0]["filters"].as_array().is_some_and(|fs| !fs.is_empty() && fs.iter().all(|f| f["propertyName"] == modified && matches!(f["operator"].as_str(), Some("GT" | "GTE" | "LT" | "LTE" | "BETWEEN"))));
        let fast = only_modified && sorts.len() == 1 && sorts[0].0 == modified && !sorts[0].1;
        let order: Vec<u64> = if fast {
            let filters = groups[0]["filters"].as_array().cloned().unwrap_or_default();
            let ms = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()).parse::<i64>().ok().or_else(|| v.as_str().and_then(parse_iso));
            let mut lo = i64::MIN;
            let mut hi = i64::MAX;
            for f in &filters {
                let v = ms(&f["value"]);
                match (f["operator"].as_str(), v) {
                    (Some("GT"), Some(x)) => lo = lo.max(x.saturating_add(1)),
                    (Some("GTE" | "BETWEEN"), Some(x)) => lo = lo.max(x),
                    (Some("LT"), Some(x)) => hi = hi.min(x),
                    (Some("LTE"), Some(x)) => hi = hi.min(x.saturating_add(1)),
                    _ => {}
                }
                if f["operator"] == "BETWEEN"
                    && let Some(x) = ms(&f["highValue"])
                {
                    hi = hi.min(x.saturating_add(1));
                }
            }
            // Property values are whole milliseconds, so [lo, hi) is exact.
            c.changes_after((lo.saturating_sub(1), u64::MAX), hi, false, usize::MAX)
                .into_iter()
                .filter(|ch| ch.key.0 <= now - lag || c.get(ch.index).is_some_and(|r| r.created_ms <= now - lag))
                .map(|ch| ch.index)
                .collect()
        } else {
            // Every match with its sort key; search cannot see objects newer than the index lag.
            let mut hits: Vec<(Vec<Value>, u64)> = Vec::new();
            for i in c.scan(Dir::Asc, None) {
                let Some(rec) = c.get(i) else { continue };
                if rec.created_ms > now - lag {
                    continue;
                }
                let props = h.properties(t, i, &rec.fields, rec.created_ms, rec.modified_ms);
                let ok = groups.is_empty() || groups.iter().any(|g| g["filters"].as_array().is_none_or(|fs| fs.iter().all(|f| filter_matches(&props, f))));
                if ok {
                    hits.push((sorts.iter().map(|(p, _)| props.get(p).cloned().unwrap_or(Value::Null)).collect(), i));
                }
            }
            if !sorts.is_empty() {
                hits.sort_by(|a, b| {
                    for (n, (_, desc)) in sorts.iter().enumerate() {
                        let (x, y) = (&a.0[n], &b.0[n]);
                        let o = match (prop_number(x), prop_number(y)) {
                            (Some(p), Some(q)) => p.partial_cmp(&q).unwrap_or(std::cmp::Ordering::Equal),
                            _ => x.as_str().unwrap_or("").cmp(y.as_str().unwrap_or("")),
                        };
                        let o = if *desc { o.reverse() } else { o };
                        if o != std::cmp::Ordering::Equal {
                            return o;
                        }
                    }
                    a.1.cmp(&b.1)
                });
            }
            hits.into_iter().map(|h| h.1).collect()
        };
        let total = order.len() as u64;
        let results: Vec<Value> = order
            .iter()
            .skip(after as usize)
            .take(limit as usize)
            .filter_map(|i| h.render(&st, t, *i, Shown::read(&wanted), &[]))
            .collect();
        let mut body = json!({"total": total, "results": results});
        let next = after + results.len() as u64;
        if next < total {
            body["paging"] = json!({"next": {"after": next.to_string()}});
        }
        json_response(StatusCode::OK, body)
    })
}

// ---------------------------------------------------------------- associations v4

async fn association(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (Some(f), Some(t)) = (ObjType::parse(&from), ObjType::parse(&to)) else {
        return h.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "unknown object type",
            json!({}),
        );
    };
    h.guarded(&headers, &ctx, false, || {
        let mut st = h.state.lock().expect("hubspot state");
        let (Some(i), Some(j)) = (h.resolve(&mut st, f, &from_id, None), h.resolve(&mut st, t, &to_id, None)) else {
            return h.not_found(&format!("{from_id}/{to_id}"));
        };
        if method == http::Method::DELETE {
            h.dissociate(&mut st, f, i, t, j);
            return StatusCode::NO_CONTENT.into_response();
        }
        let specs: Vec<(String, u32)> = match parse_json_body(&body) {
            Ok(Value::Array(a)) => a.iter().filter_map(|x| Some((x.get("associationCategory")?.as_str()?.to_string(), x.get("associationTypeId")?.as_u64()? as u32))).collect(),
            _ => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "the body must be an array of {associationCategory, associationTypeId}", json!({})),
        };
        let valid_category = |c: &str| matches!(c, "HUBSPOT_DEFINED" | "USER_DEFINED" | "INTEGRATOR_DEFINED");
        if specs.is_empty() || specs.iter().any(|(c, _)| !valid_category(c)) {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "associationCategory must be HUBSPOT_DEFINED, USER_DEFINED or INTEGRATOR_DEFINED", json!({}));
        }
        if let Some((c, id)) = specs.iter().find(|(c, id)| c == "HUBSPOT_DEFINED" && association_types(f, t).is_none_or(|(p, u)| *id != p && *id != u)) {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("{c} association type {id} is not valid from {} to {}", f.name(), t.name()), json!({}));
        }
        h.associate(&mut st, f, i, t, j, &specs);
        json_response(
            StatusCode::OK,
            json!({"fromObjectTypeId": f.type_id(), "fromObjectId": f.id(i), "toObjectTypeId": t.type_id(), "toObjectId": t.id(j), "labels": []}),
        )
    })
}

async fn association_default(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let (Some(f), Some(t)) = (ObjType::parse(&from), ObjType::parse(&to)) else {
        return h.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "unknown object type",
            json!({}),
        );
    };
    h.guarded(&headers, &ctx, false, || {
        let mut st = h.state.lock().expect("hubspot state");
        let (Some(i), Some(j)) = (h.resolve(&mut st, f, &from_id, None), h.resolve(&mut st, t, &to_id, None)) else {
            return h.not_found(&format!("{from_id}/{to_id}"));
        };
        let Some((_, plain)) = association_types(f, t) else {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &format!("no default association from {} to {}", f.name(), t.name()), json!({}));
        };
        h.associate(&mut st, f, i, t, j, &[("HUBSPOT_DEFINED".into(), plain)]);
        let now = rfc3339_millis(h.now());
        json_response(
            StatusCode::OK,
            json!({"status": "COMPLETE", "results": [{"from": {"id": f.id(i).to_string()}, "to": {"id": t.id(j).to_string()}, "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": plain}}], "startedAt": now, "completedAt": now}),
        )
    })
}

fn label_of(from: ObjType, to: ObjType, category: &str, id: u32) -> Value {
    match association_types(from, to) {
        Some((primary, _)) if category == "HUBSPOT_DEFINED" && id == primary => json!("Primary"),
        _ => Value::Null,
    }
}

async fn association_list(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((from, from_id, to)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (Some(f), Some(t)) = (ObjType::parse(&from), ObjType::parse(&to)) else {
        return h.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "unknown object type",
            json!({}),
        );
    };
    h.guarded(&headers, &ctx, false, || {
        let p = query_params(q.as_deref());
        let limit = p.get("limit").and_then(|s| s.parse::<usize>().ok()).unwrap_or(500).clamp(1, 500);
        let after = p.get("after").and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
        let mut st = h.state.lock().expect("hubspot state");
        let Some(i) = h.resolve(&mut st, f, &from_id, None) else { return h.not_found(&from_id) };
        let all = h.associated(&st, f, i, t);
        let page: Vec<Value> = all
            .iter()
            .skip(after)
            .take(limit)
            .map(|(j, labels)| {
                json!({
                    "toObjectId": t.id(*j),
                    "associationTypes": labels.iter().map(|(c, id)| json!({"category": c, "typeId": id, "label": label_of(f, t, c, *id)})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut body = json!({"results": page});
        if after + limit < all.len() {
            let next = (after + limit).to_string();
            body["paging"] = json!({"next": {"after": next, "link": format!("{}/crm/v4/objects/{}/{}/associations/{}?after={next}&limit={limit}", h.base(), f.name(), f.id(i), t.name())}});
        }
        json_response(StatusCode::OK, body)
    })
}

async fn association_labels(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((from, to)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (Some(f), Some(t)) = (ObjType::parse(&from), ObjType::parse(&to)) else {
        return h.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "unknown object type",
            json!({}),
        );
    };
    h.guarded(&headers, &ctx, false, || {
        let results: Vec<Value> = association_types(f, t)
            .map(|(p, u)| {
                vec![
                    json!({"category": "HUBSPOT_DEFINED", "typeId": p, "label": "Primary"}),
                    json!({"category": "HUBSPOT_DEFINED", "typeId": u, "label": null}),
                ]
            })
            .unwrap_or_default();
        json_response(StatusCode::OK, json!({"results": results}))
    })
}

async fn association_batch(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((from, to, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (Some(f), Some(t)) = (ObjType::parse(&from), ObjType::parse(&to)) else {
        return h.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "unknown object type",
            json!({}),
        );
    };
    h.guarded(&headers, &ctx, false, || {
        let input = match parse_json_body(&body) {
            Ok(v) => v,
            Err(m) => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &m, json!({})),
        };
        let inputs = input.get("inputs").and_then(Value::as_array).cloned().unwrap_or_default();
        if inputs.len() > 1_000 {
            return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Batch input limit of 1000 exceeded", json!({}));
        }
        let started = rfc3339_millis(h.now());
        let mut st = h.state.lock().expect("hubspot state");
        let id_of = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for item in &inputs {
            let from_id = id_of(item.pointer("/from/id").unwrap_or(&Value::Null));
            let Some(i) = h.resolve(&mut st, f, &from_id, None) else {
                errors.push(json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": format!("No {} with ID {from_id} exists", f.singular()), "context": {"fromObjectId": [from_id]}}));
                continue;
            };
            match action.as_str() {
                "read" => {
                    let to_list: Vec<Value> = h
                        .associated(&st, f, i, t)
                        .iter()
                        .map(|(j, labels)| json!({"toObjectId": t.id(*j), "associationTypes": labels.iter().map(|(c, id)| json!({"category": c, "typeId": id, "label": label_of(f, t, c, *id)})).collect::<Vec<_>>()}))
                        .collect();
                    results.push(json!({"from": {"id": from_id}, "to": to_list}));
                }
                "create" | "archive" | "associate/default" => {
                    let to_id = id_of(item.pointer("/to/id").unwrap_or(&Value::Null));
                    let Some(j) = h.resolve(&mut st, t, &to_id, None) else {
                        errors.push(json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": format!("No {} with ID {to_id} exists", t.singular()), "context": {"toObjectId": [to_id]}}));
                        continue;
                    };
                    if action == "archive" {
                        h.dissociate(&mut st, f, i, t, j);
                        continue;
                    }
                    let specs: Vec<(String, u32)> = if action == "create" {
                        item.get("types").and_then(Value::as_array).into_iter().flatten().filter_map(|x| Some((x.get("associationCategory")?.as_str()?.to_string(), x.get("associationTypeId")?.as_u64()? as u32))).collect()
                    } else {
                        association_types(f, t).map(|(_, u)| vec![("HUBSPOT_DEFINED".to_string(), u)]).unwrap_or_default()
                    };
                    h.associate(&mut st, f, i, t, j, &specs);
                    results.push(json!({"fromObjectTypeId": f.type_id(), "fromObjectId": f.id(i), "toObjectTypeId": t.type_id(), "toObjectId": t.id(j), "labels": []}));
                }
                _ => return h.error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", &format!("unknown association batch action {action}"), json!({})),
            }
        }
        if action == "archive" && errors.is_empty() {
            return StatusCode::NO_CONTENT.into_response();
        }
        let mut body = json!({"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": rfc3339_millis(h.now())});
        let status = if errors.is_empty() {
            if action == "read" { StatusCode::OK } else { StatusCode::CREATED }
        } else {
            body["numErrors"] = json!(errors.len());
            body["errors"] = json!(errors);
            StatusCode::MULTI_STATUS
        };
        json_response(status, body)
    })
}

async fn association_batch_default(
    s: State<Arc<HubSpot>>,
    e: Extension<RequestCtx>,
    Path((from, to)): Path<(String, String)>,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    association_batch(
        s,
        e,
        Path((from, to, "associate/default".to_string())),
        h,
        b,
    )
    .await
}

// ---------------------------------------------------------------- properties and schemas

/// How a property's values are typed and entered: HubSpot's `type` and `fieldType` pairs
/// (documented: properties API, "property type and fieldType values").
#[derive(Debug, Clone, Copy)]
enum PropertyKind {
    Text,
    Textarea,
    Html,
    Phone,
    Number,
    DateTime,
    /// One of fixed options, `(value, label)`.
    Choice(&'static [(&'static str, &'static str)]),
    /// The demo data's industries, whose values are upper-case like HubSpot's own options.
    Industry,
}

impl PropertyKind {
    fn type_and_field(self) -> (&'static str, &'static str) {
        match self {
            PropertyKind::Text => ("string", "text"),
            PropertyKind::Textarea => ("string", "textarea"),
            PropertyKind::Html => ("string", "html"),
            PropertyKind::Phone => ("string", "phonenumber"),
            PropertyKind::Number => ("number", "number"),
            PropertyKind::DateTime => ("datetime", "date"),
            PropertyKind::Choice(_) | PropertyKind::Industry => ("enumeration", "select"),
        }
    }

    /// `(value, label)` of each option, in display order.
    fn options(self) -> Vec<(String, String)> {
        match self {
            PropertyKind::Choice(o) => o
                .iter()
                .map(|(v, l)| (v.to_string(), l.to_string()))
                .collect(),
            PropertyKind::Industry => crate::demo::INDUSTRIES
                .iter()
                .map(|l| (l.to_uppercase(), l.to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One property definition of the demo portal.
#[derive(Debug, Clone, Copy)]
struct PropertyDef {
    name: &'static str,
    label: &'static str,
    kind: PropertyKind,
    /// Set by HubSpot only (`createdate`, `hs_object_id`, the modified date).
    read_only: bool,
    /// Created by the portal, not by HubSpot (`hubspotDefined` absent, definition editable).
    custom: bool,
}

const fn prop(name: &'static str, label: &'static str, kind: PropertyKind) -> PropertyDef {
    PropertyDef {
        name,
        label,
        kind,
        read_only: false,
        custom: false,
    }
}

const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];
const DEAL_STAGES: &[(&str, &str)] = &[
    ("appointmentscheduled", "Appointment Scheduled"),
    ("qualifiedtobuy", "Qualified To Buy"),
    ("presentationscheduled", "Presentation Scheduled"),
    ("contractsent", "Contract Sent"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
];
const PIPELINES: &[(&str, &str)] = &[("default", "Sales Pipeline")];
const DEAL_TYPES: &[(&str, &str)] = &[
    ("newbusiness", "New Business"),
    ("existingbusiness", "Existing Business"),
];
const CALL_STATUSES: &[(&str, &str)] = &[
    ("BUSY", "Busy"),
    ("CALLING_CRM_USER", "Calling CRM User"),
    ("CANCELED", "Canceled"),
    ("COMPLETED", "Completed"),
    ("CONNECTING", "Connecting"),
    ("FAILED", "Failed"),
    ("IN_PROGRESS", "In Progress"),
    ("NO_ANSWER", "No Answer"),
    ("QUEUED", "Queued"),
    ("RINGING", "Ringing"),
];
const CALL_DIRECTIONS: &[(&str, &str)] = &[("INBOUND", "Inbound"), ("OUTBOUND", "Outbound")];

/// Every property the demo portal defines for `t`: the ones the emulator stores, with HubSpot's
/// internal names and types (documented for the standard properties; labels and option lists
/// are HubSpot's defaults as far as its knowledge base shows them, inferred where it does not).
fn property_defs(t: ObjType) -> Vec<PropertyDef> {
    use PropertyKind::*;
    let own: &[PropertyDef] = match t {
        ObjType::Contacts => &[
            prop("email", "Email", Text),
            prop("firstname", "First Name", Text),
            prop("lastname", "Last Name", Text),
            prop("phone", "Phone Number", Phone),
            prop("jobtitle", "Job Title", Text),
            prop("company", "Company Name", Text),
            prop(
                "lifecyclestage",
                "Lifecycle Stage",
                Choice(LIFECYCLE_STAGES),
            ),
            prop("city", "City", Text),
            prop("website", "Website URL", Text),
        ],
        ObjType::Companies => &[
            prop("name", "Company name", Text),
            prop("domain", "Company Domain Name", Text),
            prop("industry", "Industry", Industry),
            prop("phone", "Phone Number", Phone),
            prop("city", "City", Text),
            prop("state", "State/Region", Text),
            prop("country", "Country/Region", Text),
            prop("numberofemployees", "Number of Employees", Number),
            prop("annualrevenue", "Annual Revenue", Number),
            prop("description", "Description", Textarea),
        ],
        ObjType::Deals => &[
            prop("dealname", "Deal Name", Text),
            prop("amount", "Amount", Number),
            prop("dealstage", "Deal Stage", Choice(DEAL_STAGES)),
            prop("pipeline", "Pipeline", Choice(PIPELINES)),
            prop("closedate", "Close Date", DateTime),
            prop("description", "Deal Description", Textarea),
            prop("dealtype", "Deal Type", Choice(DEAL_TYPES)),
        ],
        ObjType::Calls => &[
            prop("hs_timestamp", "Activity date", DateTime),
            prop("hs_call_title", "Call Title", Text),
            prop("hs_call_body", "Call notes", Html),
            prop("hs_call_status", "Call status", Choice(CALL_STATUSES)),
            prop(
                "hs_call_direction",
                "Call direction",
                Choice(CALL_DIRECTIONS),
            ),
            prop("hs_call_duration", "Call duration", Number),
            PropertyDef {
                custom: true,
                ..prop("weft_conversation_id", "Conversation ID", Text)
            },
        ],
    };
    let system = [
        PropertyDef {
            read_only: true,
            ..prop("createdate", "Create Date", DateTime)
        },
        PropertyDef {
            read_only: true,
            ..prop(t.modified_property(), "Last Modified Date", DateTime)
        },
        PropertyDef {
            read_only: true,
            ..prop("hs_object_id", "Record ID", Number)
        },
    ];
    own.iter().copied().chain(system).collect()
}

/// A HubSpot standard object the sandbox keeps no records of. Every portal has these objects,
/// so their property definitions exist (inferred: only their record id and timestamps here) and
/// their lists and searches answer empty, as in a portal that never used them.
#[derive(Debug)]
struct Unstored {
    /// Names the APIs accept for it (plural, singular, object type id).
    names: &'static [&'static str],
    group: &'static str,
    created: &'static str,
}

const UNSTORED: &[Unstored] = &[
    Unstored {
        names: &["tickets", "ticket", "0-5"],
        group: "ticketinformation",
        created: "createdate",
    },
    Unstored {
        names: &["products", "product", "0-7"],
        group: "productinformation",
        created: "createdate",
    },
    Unstored {
        names: &["line_items", "line_item", "0-8"],
        group: "lineiteminformation",
        created: "createdate",
    },
    Unstored {
        names: &["emails", "email", "0-49"],
        group: "email",
        created: "hs_createdate",
    },
    Unstored {
        names: &["meetings", "meeting", "0-47"],
        group: "meeting",
        created: "hs_createdate",
    },
    Unstored {
        names: &["notes", "note", "0-46"],
        group: "note",
        created: "hs_createdate",
    },
    Unstored {
        names: &["tasks", "task", "0-27"],
        group: "task",
        created: "hs_createdate",
    },
    Unstored {
        names: &["feedback_submissions", "feedback_submission", "0-19"],
        group: "feedbacksubmissioninformation",
        created: "hs_createdate",
    },
    Unstored {
        names: &["goal_targets", "goal_target", "0-74"],
        group: "goal_target_information",
        created: "hs_createdate",
    },
    Unstored {
        names: &["deal_splits", "deal_split"],
        group: "deal_split_information",
        created: "hs_createdate",
    },
    Unstored {
        names: &["leads", "lead", "0-136"],
        group: "lead_information",
        created: "hs_createdate",
    },
    // Legacy form submissions' properties (`/properties/v2/form/properties`).
    Unstored {
        names: &["forms", "form"],
        group: "formsubmissioninformation",
        created: "hs_createdate",
    },
];

impl Unstored {
    fn parse(kind: &str) -> Option<&'static Unstored> {
        let kind = kind.to_ascii_lowercase();
        UNSTORED.iter().find(|u| u.names.contains(&kind.as_str()))
    }
}

/// Whose properties a properties request asks for.
#[derive(Debug, Clone, Copy)]
enum PropertyOwner {
    Stored(ObjType),
    Unstored(&'static Unstored),
}

impl PropertyOwner {
    fn parse(kind: &str) -> Option<PropertyOwner> {
        ObjType::parse(kind)
            .map(PropertyOwner::Stored)
            .or_else(|| Unstored::parse(kind).map(PropertyOwner::Unstored))
    }

    fn defs(self) -> Vec<PropertyDef> {
        match self {
            PropertyOwner::Stored(t) => property_defs(t),
            PropertyOwner::Unstored(u) => vec![
                PropertyDef {
                    read_only: true,
                    ..prop(u.created, "Create Date", PropertyKind::DateTime)
                },
                PropertyDef {
                    read_only: true,
                    ..prop(
                        "hs_lastmodifieddate",
                        "Last Modified Date",
                        PropertyKind::DateTime,
                    )
                },
                PropertyDef {
                    read_only: true,
                    ..prop("hs_object_id", "Record ID", PropertyKind::Number)
                },
            ],
        }
    }

    fn group(self) -> &'static str {
        match self {
            PropertyOwner::Stored(t) => t.property_group(),
            PropertyOwner::Unstored(u) => u.group,
        }
    }

    fn unique_property(self) -> Option<&'static str> {
        match self {
            PropertyOwner::Stored(t) => t.unique_property(),
            PropertyOwner::Unstored(_) => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PropertyOwner::Stored(t) => t.name(),
            PropertyOwner::Unstored(u) => u.names[0],
        }
    }
}

/// The property API versions clients still call: v3 (`/crm/v3/properties/..`, the `Property`
/// model of HubSpot's SDKs) and the legacy v2 (`/properties/v2/{object}/properties`, a bare
/// array; Airbyte's HubSpot source discovers its schemas there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PropertiesApi {
    V2,
    V3,
}

impl PropertyDef {
    fn to_json(self, t: PropertyOwner, position: usize, api: PropertiesApi) -> Value {
        let (kind, field) = self.kind.type_and_field();
        let unique = t.unique_property() == Some(self.name);
        let defined_at = rfc3339_millis(DEMO_EPOCH_MS);
        let options: Vec<Value> = self
            .kind
            .options()
            .into_iter()
            .enumerate()
            .map(|(n, (value, label))| match api {
                PropertiesApi::V3 => json!({"label": label, "value": value, "displayOrder": n, "hidden": false}),
                PropertiesApi::V2 => json!({"label": label, "value": value, "displayOrder": n, "hidden": false, "description": null, "readOnly": false, "doubleData": null}),
            })
            .collect();
        let mut v = match api {
            PropertiesApi::V3 => json!({
                "name": self.name, "label": self.label, "type": kind, "fieldType": field, "description": "",
                "groupName": t.group(), "options": options, "displayOrder": position,
                "calculated": false, "externalOptions": false, "hasUniqueValue": unique, "hidden": false,
                "modificationMetadata": {"archivable": self.custom, "readOnlyDefinition": !self.custom, "readOnlyValue": self.read_only},
                "formField": !self.read_only, "dataSensitivity": "non_sensitive",
                "createdAt": defined_at, "updatedAt": defined_at, "archived": false,
            }),
            PropertiesApi::V2 => json!({
                "name": self.name, "label": self.label, "description": "", "groupName": t.group(),
                "type": kind, "fieldType": field, "options": options, "displayOrder": position,
                "formField": !self.read_only, "readOnlyValue": self.read_only, "readOnlyDefinition": !self.custom,
                "hidden": false, "mutableDefinitionNotDeletable": !self.custom, "calculated": false,
                "externalOptions": false, "displayMode": "current_value", "hasUniqueValue": unique,
                "deleted": false, "createdAt": DEMO_EPOCH_MS, "updatedAt": DEMO_EPOCH_MS,
                "createdUserId": null, "updatedUserId": null, "currencyPropertyName": null,
            }),
        };
        if !self.custom {
            v["hubspotDefined"] = json!(true);
        }
        v
    }
}

impl HubSpot {
    /// HubSpot's answer for a property name the object type does not define. Inferred: the
    /// category and status are those of every HubSpot "not found"; the wording is ours.
    fn no_such_property(&self, t: PropertyOwner, name: &str) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!(
                "Unable to find property {name} for object type {}",
                t.name()
            ),
            json!({"context": {"propertyName": [name]}}),
        )
    }

    fn unknown_object_type(&self, kind: &str) -> Response {
        self.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("Unable to infer object type from: {kind}"),
            json!({}),
        )
    }
}

/// `GET /crm/v3/properties/{objectType}`: `{"results": [Property]}`; `archived=true` lists the
/// archived ones, of which the demo portal has none (documented: properties API v3).
async fn properties_v3(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(t) = PropertyOwner::parse(&kind) else {
        return h.unknown_object_type(&kind);
    };
    h.guarded(&headers, &ctx, false, || {
        let archived = query_params(q.as_deref())
            .get("archived")
            .is_some_and(|a| a == "true");
        let results: Vec<Value> = if archived {
            Vec::new()
        } else {
            t.defs()
                .iter()
                .enumerate()
                .map(|(n, p)| p.to_json(t, n, PropertiesApi::V3))
                .collect()
        };
        json_response(StatusCode::OK, json!({"results": results}))
    })
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}` (documented).
async fn property_v3(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(t) = PropertyOwner::parse(&kind) else {
        return h.unknown_object_type(&kind);
    };
    h.guarded(&headers, &ctx, false, || {
        match t.defs().iter().enumerate().find(|(_, p)| p.name == name) {
            Some((n, p)) => json_response(StatusCode::OK, p.to_json(t, n, PropertiesApi::V3)),
            None => h.no_such_property(t, &name),
        }
    })
}

/// `GET /properties/v2/{objectType}/properties`: a bare JSON array of legacy property objects
/// (documented for v1/v2 contacts, companies and deals; the object type may be singular,
/// `contact`, as Airbyte's source sends it).
async fn properties_v2(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(t) = PropertyOwner::parse(&kind) else {
        return h.unknown_object_type(&kind);
    };
    h.guarded(&headers, &ctx, false, || {
        let all: Vec<Value> = t
            .defs()
            .iter()
            .enumerate()
            .map(|(n, p)| p.to_json(t, n, PropertiesApi::V2))
            .collect();
        json_response(StatusCode::OK, Value::Array(all))
    })
}

/// `GET /properties/v2/{objectType}/properties/named/{propertyName}` (documented, legacy).
async fn property_v2(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((kind, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(t) = PropertyOwner::parse(&kind) else {
        return h.unknown_object_type(&kind);
    };
    h.guarded(&headers, &ctx, false, || {
        match t.defs().iter().enumerate().find(|(_, p)| p.name == name) {
            Some((n, p)) => json_response(StatusCode::OK, p.to_json(t, n, PropertiesApi::V2)),
            None => h.no_such_property(t, &name),
        }
    })
}

/// `GET /crm-object-schemas/v3/schemas` and its older alias `/crm/v3/schemas` (which Airbyte's
/// source calls): the portal's custom object schemas, `{"results": [ObjectSchema]}`. The demo
/// portal has none (documented: the list holds custom objects only; contacts and the other
/// standard objects are not in it).
async fn schemas(
    State(h): State<Arc<HubSpot>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
) -> Response {
    h.guarded(&headers, &ctx, false, || {
        json_response(StatusCode::OK, json!({"results": []}))
    })
}

// ---------------------------------------------------------------- webhooks

const EVENT_TYPES: [&str; 9] = [
    "contact.creation",
    "contact.propertyChange",
    "contact.deletion",
    "company.creation",
    "company.propertyChange",
    "company.deletion",
    "deal.creation",
    "deal.propertyChange",
    "deal.deletion",
];

impl HubSpot {
    /// Turns changes into events for active subscriptions and delivers them as one batch
    /// (at most 100 events per request), signed v1 and v3 with the app's client secret.
    fn emit(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let now = self.now();
        let (target, events) = {
            let mut st = self.state.lock().expect("hubspot state");
            let Some(target) = st.target_url.clone() else {
                return;
            };
            let subs = st.subscriptions.clone();
            let mut events = Vec::new();
            for ch in &changes {
                let prefix = ch.t.singular();
                let mut push = |sub: &Subscription, extra: Value| {
                    let mut e = json!({
                        "eventId": st.next_event, "subscriptionId": sub.id, "portalId": PORTAL_ID, "appId": APP_ID, "occurredAt": now,
                        "subscriptionType": sub.event_type, "attemptNumber": 0, "objectId": ch.t.id(ch.index), "changeSource": "API",
                    });
                    if let Value::Object(m) = extra {
                        for (k, v) in m {
                            e[k] = v;
                        }
                    }
                    st.next_event += 1;
                    events.push(e);
                };
                for sub in subs.iter().filter(|s| s.active) {
                    match &ch.kind {
                        ChangeKind::Created if sub.event_type == format!("{prefix}.creation") => {
                            push(sub, json!({"changeFlag": "NEW"}))
                        }
                        ChangeKind::Deleted if sub.event_type == format!("{prefix}.deletion") => {
                            push(sub, json!({"changeFlag": "DELETED"}))
                        }
                        ChangeKind::Updated(props)
                            if sub.event_type == format!("{prefix}.propertyChange") =>
                        {
                            for (name, value) in props
                                .iter()
                                .filter(|(n, _)| sub.property_name.as_ref().is_none_or(|p| p == n))
                            {
                                push(
                                    sub,
                                    json!({"propertyName": name, "propertyValue": value.as_str().unwrap_or(""), "sourceId": "userId:1"}),
                                );
                            }
                        }
                        _ => {}
                    }
                }
            }
            (target, events)
        };
        for chunk in events.chunks(100) {
            let chunk = chunk.to_vec();
            let url = target.clone();
            let uri = url.clone();
            self.hub.outbox.send(
                Arc::clone(&self.hub.clock),
                Outgoing {
                    vendor: Vendor::HubSpot,
                    event: chunk.first().and_then(|e| e["subscriptionType"].as_str()).unwrap_or("").to_string(),
                    url,
                    method: http::Method::POST,
                    max_attempts: self.hub.outbox.attempts(self.limits.webhook_attempts),
                    build: Box::new(move |attempt, now_ms| {
                        let events: Vec<Value> = chunk
                            .iter()
                            .map(|e| {
                                let mut e = e.clone();
                                e["attemptNumber"] = json!(attempt);
                                e
                            })
                            .collect();
                        let body = Value::Array(events).to_string().into_bytes();
                        let ts = now_ms.to_string();
                        let v3 = signature_v3(CLIENT_SECRET, "POST", &uri, &body, &ts);
                        let v1 = signature_v1(CLIENT_SECRET, &body);
                        (
                            vec![
                                ("Content-Type".into(), "application/json".into()),
                                ("X-HubSpot-Signature-v3".into(), v3),
                                ("X-HubSpot-Request-Timestamp".into(), ts),
                                ("X-HubSpot-Signature".into(), v1),
                                ("X-HubSpot-Signature-Version".into(), "v1".into()),
                                ("User-Agent".into(), "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nonprod)".into()),
                            ],
                            body,
                        )
                    }),
                    retry_on: retry_server_errors,
                },
            );
        }
    }
}

/// v3: `base64(HMAC-SHA256(client_secret, method + uri + body + timestamp))`.
pub(crate) fn signature_v3(
    secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(method.as_bytes());
    ctx.update(uri.as_bytes());
    ctx.update(body);
    ctx.update(timestamp.as_bytes());
    STANDARD.encode(ctx.sign().as_ref())
}

/// v1: `hex(SHA-256(client_secret + body))`.
pub(crate) fn signature_v1(secret: &str, body: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(secret.as_bytes());
    ctx.update(body);
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl HubSpot {
    fn developer_key_ok(&self, q: Option<&str>) -> bool {
        query_params(q)
            .get("hapikey")
            .is_some_and(|k| k == DEVELOPER_API_KEY)
    }

    fn subscription_json(s: &Subscription) -> Value {
        json!({"id": s.id, "eventType": s.event_type, "propertyName": s.property_name, "active": s.active, "createdAt": "2025-01-01T00:00:00.000Z"})
    }
}

async fn webhook_settings(
    State(h): State<Arc<HubSpot>>,
    Path(app): Path<u64>,
    RawQuery(q): RawQuery,
    method: http::Method,
    body: Bytes,
) -> Response {
    if !h.developer_key_ok(q.as_deref()) || app != APP_ID {
        return h.error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "The developer API key (hapikey) or app id is not valid for this app",
            json!({}),
        );
    }
    let mut st = h.state.lock().expect("hubspot state");
    if method == http::Method::PUT {
        let v = match parse_json_body(&body) {
            Ok(v) => v,
            Err(m) => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &m, json!({})),
        };
        let Some(url) = v
            .get("targetUrl")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        else {
            return h.error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "targetUrl must be an absolute http(s) URL",
                json!({}),
            );
        };
        st.target_url = Some(url.to_string());
    }
    match &st.target_url {
        Some(u) => json_response(
            StatusCode::OK,
            json!({"targetUrl": u, "throttling": {"maxConcurrentRequests": 10, "period": "SECONDLY"}, "createdAt": "2025-01-01T00:00:00.000Z"}),
        ),
        None => h.error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "no webhook settings for this app",
            json!({}),
        ),
    }
}

async fn webhook_subscriptions(
    State(h): State<Arc<HubSpot>>,
    Path(app): Path<u64>,
    RawQuery(q): RawQuery,
    method: http::Method,
    body: Bytes,
) -> Response {
    if !h.developer_key_ok(q.as_deref()) || app != APP_ID {
        return h.error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "The developer API key (hapikey) or app id is not valid for this app",
            json!({}),
        );
    }
    let mut st = h.state.lock().expect("hubspot state");
    if method == http::Method::GET {
        return json_response(
            StatusCode::OK,
            json!({"results": st.subscriptions.iter().map(HubSpot::subscription_json).collect::<Vec<_>>()}),
        );
    }
    let v = match parse_json_body(&body) {
        Ok(v) => v,
        Err(m) => return h.error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &m, json!({})),
    };
    let event = v.get("eventType").and_then(Value::as_str).unwrap_or("");
    if !EVENT_TYPES.contains(&event) {
        return h.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("eventType must be one of {}", EVENT_TYPES.join(", ")),
            json!({}),
        );
    }
    let s = Subscription {
        id: 100 + st.subscriptions.len() as u64 + 1_000,
        event_type: event.to_string(),
        property_name: v
            .get("propertyName")
            .and_then(Value::as_str)
            .map(str::to_string),
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
    };
    let body = HubSpot::subscription_json(&s);
    st.subscriptions.push(s);
    json_response(StatusCode::CREATED, body)
}

// ---------------------------------------------------------------- emulator

impl Emulator for HubSpot {
    fn vendor(&self) -> Vendor {
        Vendor::HubSpot
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/oauth/authorize", get(authorize_page).post(authorize_decision))
            .route("/oauth/v1/token", post(token))
            .route("/oauth/2026-03/token", post(token))
            .route("/oauth/v1/access-tokens/{token}", get(token_info))
            .route("/account-info/v3/details", get(account_details))
            .route("/crm/v3/objects/{kind}", get(list).post(create))
            .route("/crm/v3/objects/{kind}/{id}", get(object).patch(object).delete(object).post(object))
            .route("/crm/v3/objects/{kind}/batch/{action}", post(batch))
            .route("/crm/objects/2026-03/{kind}", get(list).post(create))
            .route("/crm/objects/2026-03/{kind}/{id}", get(object).patch(object).delete(object).post(object))
            .route("/crm/objects/2026-03/{kind}/batch/{action}", post(batch))
            .route("/crm/v4/objects/{from}/{from_id}/associations/{to}", get(association_list))
            .route("/crm/v4/objects/{from}/{from_id}/associations/{to}/{to_id}", put(association).delete(association))
            .route("/crm/v4/objects/{from}/{from_id}/associations/default/{to}/{to_id}", put(association_default))
            .route("/crm/v4/associations/{from}/{to}/labels", get(association_labels))
            .route("/crm/v4/associations/{from}/{to}/batch/{action}", post(association_batch))
            .route("/crm/v4/associations/{from}/{to}/batch/associate/default", post(association_batch_default))
            .route("/crm/v3/properties/{kind}", get(properties_v3))
            .route("/crm/v3/properties/{kind}/{name}", get(property_v3))
            .route("/properties/v2/{kind}/properties", get(properties_v2))
            .route("/properties/v2/{kind}/properties/named/{name}", get(property_v2))
            .route("/crm/v3/schemas", get(schemas))
            .route("/crm-object-schemas/v3/schemas", get(schemas))
            .route("/webhooks/v3/{app}/settings", get(webhook_settings).put(webhook_settings))
            .route("/webhooks/v3/{app}/subscriptions", get(webhook_subscriptions).post(webhook_subscriptions))
            .fallback(|| async { json_response(StatusCode::NOT_FOUND, json!({"status": "error", "message": "Resource not found", "category": "OBJECT_NOT_FOUND"})) })
            .with_state(self)
    }

    fn reset(&self, data: DemoData) {
        let target = self.hub.outbox.default_target().map(str::to_string);
        *self.state.lock().expect("hubspot state") = Self::fresh(Demo::from(data), target);
        self.issue_demo_refresh();
    }

    fn snapshot(&self) -> Value {
        let st = self.state.lock().expect("hubspot state");
        let objects: serde_json::Map<String, Value> =
            ObjType::ALL.iter().map(|t| (t.name().to_string(), json!({"records": st.objects[t.slot()].len(), "deleted": st.objects[t.slot()].tombstones().count()}))).collect();
        json!({
            "vendor": "hubspot", "seed": st.demo.seed, "portalId": PORTAL_ID, "appId": APP_ID, "objects": objects,
            "associations_written": st.added.len(), "webhook_target": st.target_url,
            "subscriptions": st.subscriptions.iter().map(HubSpot::subscription_json).collect::<Vec<_>>(),
            "calls_in_window": st.calls.len(), "calls_today": st.daily.1,
        })
    }

    fn record(&self, object: &str, id: &str) -> Option<Value> {
        let t = ObjType::parse(object)?;
        let st = self.state.lock().expect("hubspot state");
        let i = t.index(id)?;
        let rec = st.objects[t.slot()].get(i)?;
        let props = self.properties(t, i, &rec.fields, rec.created_ms, rec.modified_ms);
        let mut v = self.render(
            &st,
            t,
            i,
            Shown::Record,
            &ObjType::ALL
                .into_iter()
                .filter(|o| *o != t)
                .collect::<Vec<_>>(),
        )?;
        v["properties"] = Value::Object(props);
        Some(v)
    }

    fn throttled(&self) -> Response {
        self.rate_limited(
            "You have reached your ten_secondly_rolling limit.",
            "TEN_SECONDLY_ROLLING",
        )
    }

    fn server_error(&self) -> Response {
        self.error(
            StatusCode::BAD_GATEWAY,
            "INTERNAL_ERROR",
            "internal error",
            json!({}),
        )
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: Some(REFRESH_TOKEN.into()),
            api_token: Some(PRIVATE_APP_TOKEN.into()),
            username: USER_EMAIL.into(),
            extra: [
                ("portal_id".to_string(), PORTAL_ID.to_string()),
                ("app_id".to_string(), APP_ID.to_string()),
                (
                    "developer_api_key".to_string(),
                    DEVELOPER_API_KEY.to_string(),
                ),
                (
                    "authorize_url".to_string(),
                    format!("{}/oauth/authorize", self.base()),
                ),
                (
                    "token_url".to_string(),
                    format!("{}/oauth/v1/token", self.base()),
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
    fn v1_signature_is_hex_sha256_of_secret_then_body() {
        let d = ring::digest::digest(&ring::digest::SHA256, b"secret{\"a\":1}");
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(signature_v1("secret", b"{\"a\":1}"), hex);
    }

    #[test]
    fn search_filters_compare_dates_as_epoch_milliseconds() {
        let props =
            json!({"lastmodifieddate": "2024-05-01T10:00:00.000Z", "email": "Jane@Example.com"})
                .as_object()
                .cloned()
                .unwrap();
        assert!(filter_matches(
            &props,
            &json!({"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1714557600000"})
        ));
        assert!(!filter_matches(
            &props,
            &json!({"propertyName": "lastmodifieddate", "operator": "GT", "value": "1714557600000"})
        ));
        assert!(filter_matches(
            &props,
            &json!({"propertyName": "email", "operator": "EQ", "value": "jane@example.com"})
        ));
        assert!(filter_matches(
            &props,
            &json!({"propertyName": "email", "operator": "IN", "values": ["x@y.z", "jane@example.com"]})
        ));
        assert!(filter_matches(
            &props,
            &json!({"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"})
        ));
    }
}
