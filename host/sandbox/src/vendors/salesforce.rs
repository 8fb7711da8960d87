//! Salesforce REST API and its OAuth endpoints (crm-apis.md §3, §8).
//!
//! Faithful points a connector depends on: the JWT bearer flow (RS256 checked against the
//! configured key; `iss`, `sub`, `aud`, `exp` validated; `instance_url` returned and no refresh
//! token), the web-server flow with non-rotating refresh tokens, `INVALID_SESSION_ID` for
//! expired sessions, 18-character IDs with their checksum, SOQL with `nextRecordsUrl` batches,
//! upsert by external ID (201/200/300), sObject collections with per-item results and
//! `allOrNone`, getUpdated/getDeleted windows, `Sforce-Limit-Info` on every response and 403
//! `REQUEST_LIMIT_EXCEEDED`, and errors that are always JSON arrays.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::soql::{self, Expr, Query};
use super::{
    auth_token, header_str, json as json_response, parse_json_body, query_params, set_header,
    token_params, valid_email,
};
use crate::SandboxError;
use crate::clock::{date, parse_iso};
use crate::collection::{Collection, Dir, Fields, Record};
use crate::config::{DemoData, SalesforceLimits, SandboxConfig};
use crate::demo::{DEAL_STAGES, DEMO_EPOCH_MS, Demo, Kind};
use crate::keys;
use crate::oauth::{self, AuthorizeParams};
use crate::server::{Credentials, Emulator, Hub, RequestCtx};
use crate::tokens::{AccessToken, Grant, RefreshToken, TokenCheck};
use crate::vendor::Vendor;

pub(crate) const CONSUMER_KEY: &str =
    "3MVG9WeftSandboxDemoConnectedApp.SalesforceEmulator0000000000000000000000000000000";
pub(crate) const CONSUMER_SECRET: &str =
    "WEFTSANDBOXSALESFORCESECRET0000000000000000000000000000000000000000";
pub(crate) const USERNAME: &str = "demo@weft-sandbox.example";
pub(crate) const DEMO_PRIVATE_KEY_PEM: &str = include_str!("salesforce_keys/demo_private_key.pem");
pub(crate) const DEMO_PUBLIC_KEY_PEM: &str = include_str!("salesforce_keys/demo_public_key.pem");
pub(crate) const DEMO_CERTIFICATE_PEM: &str = include_str!("salesforce_keys/demo_certificate.pem");
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEMO_SCOPE: &str = "api refresh_token";
const LATEST_VERSION: &str = "66.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SObject {
    Account,
    Contact,
    Opportunity,
    Lead,
    Task,
    Campaign,
    /// A contact's or lead's membership of a campaign. It has no owner (no `OwnerId`).
    CampaignMember,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Id,
    Text,
    Email,
    Picklist,
    Currency,
    Int,
    Date,
    DateTime,
    Boolean,
    /// A lookup to one of these objects (several for polymorphic fields such as `WhoId`).
    Reference(&'static [SObject]),
}

/// `(name, type, required on create, writable)`.
type FieldDef = (&'static str, FieldType, bool, bool);

const SYSTEM_FIELDS: [FieldDef; 8] = [
    ("Id", FieldType::Id, false, false),
    ("IsDeleted", FieldType::Boolean, false, false),
    ("CreatedDate", FieldType::DateTime, false, false),
    ("CreatedById", FieldType::Id, false, false),
    ("LastModifiedDate", FieldType::DateTime, false, false),
    ("LastModifiedById", FieldType::Id, false, false),
    ("SystemModstamp", FieldType::DateTime, false, false),
    ("OwnerId", FieldType::Id, false, true),
];

impl SObject {
    const ALL: [SObject; 7] = [
        SObject::Account,
        SObject::Contact,
        SObject::Opportunity,
        SObject::Lead,
        SObject::Task,
        SObject::Campaign,
        SObject::CampaignMember,
    ];

    fn name(self) -> &'static str {
        match self {
            SObject::Account => "Account",
            SObject::Contact => "Contact",
            SObject::Opportunity => "Opportunity",
            SObject::Lead => "Lead",
            SObject::Task => "Task",
            SObject::Campaign => "Campaign",
            SObject::CampaignMember => "CampaignMember",
        }
    }

    fn parse(s: &str) -> Option<SObject> {
        SObject::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s))
    }

    fn prefix(self) -> &'static str {
        match self {
            SObject::Account => "001",
            SObject::Contact => "003",
            SObject::Opportunity => "006",
            SObject::Lead => "00Q",
            SObject::Task => "00T",
            SObject::Campaign => "701",
            SObject::CampaignMember => "00v",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }

    fn fields(self) -> &'static [FieldDef] {
        use FieldType::*;
        match self {
            SObject::Account => &[
                ("Name", Text, true, true),
                ("Type", Picklist, false, true),
                ("Industry", Picklist, false, true),
                ("Website", Text, false, true),
                ("Phone", Text, false, true),
                ("NumberOfEmployees", Int, false, true),
                ("AnnualRevenue", Currency, false, true),
                ("BillingCity", Text, false, true),
                ("BillingState", Text, false, true),
                ("BillingCountry", Text, false, true),
                ("Description", Text, false, true),
                ("External_Id__c", Text, false, true),
            ],
            SObject::Contact => &[
                ("FirstName", Text, false, true),
                ("LastName", Text, true, true),
                ("Name", Text, false, false),
                ("Email", Email, false, true),
                ("Phone", Text, false, true),
                ("Title", Text, false, true),
                ("AccountId", Reference(&[SObject::Account]), false, true),
                ("LeadSource", Picklist, false, true),
                ("MailingCity", Text, false, true),
                ("External_Id__c", Text, false, true),
            ],
            SObject::Opportunity => &[
                ("Name", Text, true, true),
                ("AccountId", Reference(&[SObject::Account]), false, true),
                ("Amount", Currency, false, true),
                ("CurrencyIsoCode", Picklist, false, true),
                ("StageName", Picklist, true, true),
                ("CloseDate", Date, true, true),
                ("Probability", Int, false, true),
                ("IsClosed", Boolean, false, false),
                ("IsWon", Boolean, false, false),
                ("Type", Picklist, false, true),
                ("Description", Text, false, true),
                ("Sync_with_Partner_Center__c", Picklist, false, true),
                ("External_Id__c", Text, false, true),
                // The Partner Center co-sell package (scenario 5): what is sent, and the
                // read-only fields the integration writes back.
                ("Partner_Center_Co_Sell__c", Picklist, false, true),
                ("Partner_Center_Solution__c", Text, false, true),
                ("Partner_Center_Contact_Email__c", Email, false, true),
                ("Partner_Center_Referral_Id__c", Text, false, true),
                ("Partner_Center_Referral_Link__c", Text, false, true),
                ("Microsoft_CRM_Id__c", Text, false, true),
                ("Partner_Center_Status__c", Picklist, false, true),
                ("Partner_Center_Direction__c", Picklist, false, true),
                ("Partner_Center_Audit__c", Text, false, true),
                ("Partner_Center_Sync_Status__c", Text, false, true),
            ],
            SObject::Lead => &[
                ("FirstName", Text, false, true),
                ("LastName", Text, true, true),
                ("Name", Text, false, false),
                ("Company", Text, true, true),
                ("Email", Email, false, true),
                ("Phone", Text, false, true),
                ("Title", Text, false, true),
                ("Status", Picklist, false, true),
                ("LeadSource", Picklist, false, true),
                ("IsConverted", Boolean, false, false),
                ("External_Id__c", Text, false, true),
            ],
            SObject::Task => &[
                ("Subject", Text, false, true),
                ("Status", Picklist, false, true),
                ("Priority", Picklist, false, true),
                ("ActivityDate", Date, false, true),
                ("Description", Text, false, true),
                (
                    "WhoId",
                    Reference(&[SObject::Contact, SObject::Lead]),
                    false,
                    true,
                ),
                (
                    "WhatId",
                    Reference(&[SObject::Opportunity, SObject::Account]),
                    false,
                    true,
                ),
                ("TaskSubtype", Picklist, false, true),
                ("External_Id__c", Text, false, true),
            ],
            SObject::Campaign => &[
                ("Name", Text, true, true),
                ("Type", Picklist, false, true),
                ("Status", Picklist, false, true),
                ("IsActive", Boolean, false, true),
                ("StartDate", Date, false, true),
                ("EndDate", Date, false, true),
                ("Description", Text, false, true),
            ],
            SObject::CampaignMember => &[
                ("CampaignId", Reference(&[SObject::Campaign]), true, true),
                ("ContactId", Reference(&[SObject::Contact]), false, true),
                ("LeadId", Reference(&[SObject::Lead]), false, true),
                ("Status", Picklist, false, true),
                ("HasResponded", Boolean, false, false),
            ],
        }
    }

    /// The system fields the object has: every one but `OwnerId` for objects without an owner.
    fn system_fields(self) -> impl Iterator<Item = &'static FieldDef> {
        SYSTEM_FIELDS
            .iter()
            .filter(move |f| !(f.0 == "OwnerId" && self == SObject::CampaignMember))
    }

    /// Canonical name and definition of a field, matched case-insensitively.
    fn field(self, name: &str) -> Option<FieldDef> {
        self.system_fields()
            .chain(self.fields())
            .find(|f| f.0.eq_ignore_ascii_case(name))
            .copied()
    }

    fn is_external_id(self, name: &str) -> bool {
        ["External_Id__c", "Partner_Center_Referral_Id__c"]
            .iter()
            .any(|x| name.eq_ignore_ascii_case(x))
            && self.field(name).is_some()
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Appends Salesforce's 3-character case checksum to a 15-character ID.
fn with_checksum(id15: &str) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut out = id15.to_string();
    for chunk in id15.as_bytes().chunks(5) {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(ALPHA[bits] as char);
    }
    out
}

fn sf_id(obj: SObject, index: u64) -> String {
    let mut n = index + 1;
    let mut digits = [b'0'; 9];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    with_checksum(&format!(
        "{}Hs0{}",
        obj.prefix(),
        std::str::from_utf8(&digits).expect("ascii")
    ))
}

fn parse_sf_id(s: &str) -> Option<(SObject, u64)> {
    if s.len() != 15 && s.len() != 18 {
        return None;
    }
    let id15 = &s[..15];
    if s.len() == 18 && !with_checksum(id15).eq_ignore_ascii_case(s) {
        return None;
    }
    let obj = SObject::ALL
        .into_iter()
        .find(|o| id15.starts_with(o.prefix()))?;
    if &id15[3..6] != "Hs0" {
        return None;
    }
    let mut n = 0u64;
    for c in id15[6..].bytes() {
        n = n * 62 + BASE62.iter().position(|b| *b == c)? as u64;
    }
    Some((obj, n.checked_sub(1)?))
}

fn org_id() -> String {
    with_checksum("00DHs0000000001")
}

fn user_id() -> String {
    with_checksum("005Hs0000000001")
}

/// `2025-01-01T00:00:00.000+0000`
fn sf_time(ms: i64) -> String {
    crate::clock::rfc3339_millis(ms).replace('Z', "+0000")
}

const PROBABILITY: [u64; 6] = [10, 20, 50, 80, 100, 0];
/// The demo campaigns: name, type, status.
const CAMPAIGNS: [(&str, &str, &str); 3] = [
    ("Spring Webinar 2025", "Webinar", "Completed"),
    ("Trade Show Berlin", "Trade Show", "In Progress"),
    ("Partner Newsletter", "Email", "Planned"),
];
const CAMPAIGN_COUNT: u64 = CAMPAIGNS.len() as u64;
const LEAD_STATUSES: [&str; 3] = [
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Not Converted",
];

fn generated(demo: &Demo, obj: SObject, i: u64) -> Fields {
    let v = match obj {
        SObject::Account => {
            let c = demo.company(i);
            json!({
                "Name": c.name, "Type": "Customer - Direct", "Industry": c.industry, "Website": format!("https://www.{}", c.domain),
                "Phone": c.phone, "NumberOfEmployees": c.employees, "AnnualRevenue": c.annual_revenue, "BillingCity": c.city,
                "BillingState": c.state, "BillingCountry": c.country, "Description": null, "External_Id__c": format!("ACC-{:06}", i + 1),
            })
        }
        SObject::Contact => {
            let p = demo.contact(i);
            json!({
                "FirstName": p.first, "LastName": p.last, "Email": p.email, "Phone": p.phone, "Title": p.title,
                "AccountId": p.company.map(|c| sf_id(SObject::Account, c)), "LeadSource": "Web", "MailingCity": null,
                "External_Id__c": format!("CON-{:06}", i + 1),
            })
        }
        SObject::Opportunity => {
            let d = demo.deal(i);
            let stage = DEAL_STAGES[d.stage];
            json!({
                "Name": d.name, "AccountId": sf_id(SObject::Account, d.company), "Amount": d.amount, "CurrencyIsoCode": "USD",
                "StageName": stage, "CloseDate": date(DEMO_EPOCH_MS + d.close_day * 86_400_000),
                "Probability": PROBABILITY[d.stage], "Type": "New Business", "Description": null,
                "Sync_with_Partner_Center__c": if i.is_multiple_of(3) { "Yes" } else { "No" }, "External_Id__c": format!("OPP-{:06}", i + 1),
                "Partner_Center_Co_Sell__c": if i.is_multiple_of(2) { "Yes" } else { "No" },
                "Partner_Center_Solution__c": i.is_multiple_of(3).then_some("weft-solution-1"),
                "Partner_Center_Contact_Email__c": d.contact.map(|j| demo.contact(j).email),
            })
        }
        SObject::Lead => {
            let p = demo.lead(i);
            json!({
                "FirstName": p.first, "LastName": p.last, "Company": p.company_name, "Email": p.email, "Phone": p.phone,
                "Title": p.title, "Status": LEAD_STATUSES[(i % 3) as usize],
                "LeadSource": "Trade Show", "External_Id__c": format!("LEAD-{:06}", i + 1),
            })
        }
        SObject::Task => json!({}),
        SObject::Campaign => {
            let (name, kind, status) = CAMPAIGNS[(i % CAMPAIGNS.len() as u64) as usize];
            json!({
                "Name": if i < CAMPAIGNS.len() as u64 { name.to_string() } else { format!("{name} {}", i / CAMPAIGNS.len() as u64 + 1) },
                "Type": kind, "Status": status, "IsActive": status != "Completed",
                "StartDate": date(DEMO_EPOCH_MS + (i as i64 * 40 + 10) * 86_400_000), "Description": null,
            })
        }
        SObject::CampaignMember => {
            // Every other contact, then every other lead, spread over the campaigns in turn.
            let contacts = demo.size.contacts.div_ceil(2);
            let (contact, lead) = if i < contacts {
                (Some(sf_id(SObject::Contact, 2 * i)), None)
            } else {
                (None, Some(sf_id(SObject::Lead, 2 * (i - contacts))))
            };
            let responded = i.is_multiple_of(4);
            json!({
                "CampaignId": sf_id(SObject::Campaign, i % CAMPAIGN_COUNT), "ContactId": contact, "LeadId": lead,
                "Status": if responded { "Responded" } else { "Sent" }, "HasResponded": responded,
            })
        }
    };
    v.as_object().cloned().unwrap_or_default()
}

fn build_collections(demo: Demo) -> Vec<Collection> {
    SObject::ALL
        .into_iter()
        .map(|o| {
            let (kind, n) = match o {
                SObject::Account => (Kind::Company, demo.size.companies),
                SObject::Contact => (Kind::Contact, demo.size.contacts),
                SObject::Opportunity => (Kind::Deal, demo.size.deals),
                SObject::Lead => (Kind::Lead, demo.size.leads),
                SObject::Task => (Kind::Deal, 0),
                SObject::Campaign => (Kind::Deal, CAMPAIGN_COUNT),
                SObject::CampaignMember => (
                    Kind::Deal,
                    if CAMPAIGN_COUNT == 0 {
                        0
                    } else {
                        demo.size.contacts.div_ceil(2) + demo.size.leads.div_ceil(2)
                    },
                ),
            };
            Collection::new(
                n,
                move |i| generated(&demo, o, i),
                move |i| demo.times(kind, i, n),
            )
        })
        .collect()
}

/// An open query cursor (`nextRecordsUrl` locator).
#[derive(Debug, Clone)]
struct Cursor {
    query: Query,
    obj: SObject,
    position: Position,
    /// Records still allowed by LIMIT.
    remaining: Option<u64>,
    served: u64,
    /// `totalSize` as computed when the query ran; every batch repeats it.
    total: u64,
    expires_ms: i64,
    batch: u64,
}

/// A planned query: `COUNT()` answers at once, anything else is a positioned cursor.
enum Planned {
    Count(u64),
    Rows(Box<Cursor>, u64),
}

#[derive(Debug, Clone)]
enum Position {
    /// Index order; the last index served.
    Index { dir: Dir, after: Option<u64> },
    /// Modification order (SystemModstamp/LastModifiedDate ascending).
    Modstamp { after: (i64, u64) },
    /// Any other order: the matching indices, sorted when the query ran.
    Materialized {
        rows: Arc<Vec<(u64, bool)>>,
        next: usize,
    },
}

struct SalesforceState {
    demo: Demo,
    objects: Vec<Collection>,
    cursors: HashMap<String, Cursor>,
    api_calls: VecDeque<i64>,
    jobs: BTreeMap<String, BulkJob>,
    query_jobs: BTreeMap<String, QueryJob>,
    next_job: u64,
}

/// A Bulk API 2.0 query job: the planned cursor and the result locators handed out.
#[derive(Debug, Clone)]
struct QueryJob {
    id: String,
    operation: String,
    object: SObject,
    state: &'static str,
    created_ms: i64,
    modified_ms: i64,
    total: u64,
    fields: Vec<String>,
    start: Cursor,
    locators: HashMap<String, Cursor>,
}

/// A Bulk API 2.0 ingest job and, once processed, its per-row results.
#[derive(Debug, Clone)]
struct BulkJob {
    id: String,
    object: SObject,
    operation: String,
    external_id: Option<String>,
    line_ending: String,
    state: &'static str,
    created_ms: i64,
    modified_ms: i64,
    data: String,
    header: Vec<String>,
    successes: Vec<(String, bool, Vec<String>)>,
    failures: Vec<(String, String, Vec<String>)>,
    unprocessed: Vec<Vec<String>>,
    error_message: Option<String>,
}

pub(crate) struct Salesforce {
    hub: Arc<Hub>,
    base: OnceLock<String>,
    limits: SalesforceLimits,
    session_ms: i64,
    code_ms: i64,
    jwt_key: Vec<u8>,
    state: Mutex<SalesforceState>,
}

/// `[{"message":…,"errorCode":…,"fields":[…]}]`: Salesforce errors are always arrays.
fn sf_error(status: StatusCode, code: &str, message: &str, fields: Option<&[&str]>) -> Response {
    let mut e = json!({"message": message, "errorCode": code});
    if let Some(f) = fields {
        e["fields"] = json!(f);
    }
    json_response(status, json!([e]))
}

fn not_found() -> Response {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
        None,
    )
}

fn valid_version(v: &str) -> Option<f64> {
    let n: f64 = v.strip_prefix('v')?.parse().ok()?;
    (20.0..=66.0).contains(&n).then_some(n)
}

impl Salesforce {
    pub(crate) fn new(hub: Arc<Hub>, config: &SandboxConfig) -> Result<Arc<Self>, SandboxError> {
        let pem = config
            .salesforce_jwt_public_key_pem
            .as_deref()
            .unwrap_or(DEMO_PUBLIC_KEY_PEM);
        let jwt_key = keys::rsa_public_key_der(pem).map_err(SandboxError::PublicKey)?;
        let demo = Demo::from(config.data);
        let s = Arc::new(Self {
            limits: config.salesforce,
            session_ms: config.tokens.salesforce_session.as_millis() as i64,
            code_ms: config.tokens.authorization_code.as_millis() as i64,
            jwt_key,
            state: Mutex::new(SalesforceState {
                demo,
                objects: build_collections(demo),
                cursors: HashMap::new(),
                api_calls: VecDeque::new(),
                jobs: BTreeMap::new(),
                query_jobs: BTreeMap::new(),
                next_job: 1,
            }),
            hub,
            base: OnceLock::new(),
        });
        Ok(s)
    }

    fn base(&self) -> &str {
        self.base.get().map(String::as_str).unwrap_or("")
    }

    fn now(&self) -> i64 {
        self.hub.now_ms()
    }

    fn identity_url(&self) -> String {
        format!("{}/id/{}/{}", self.base(), org_id(), user_id())
    }

    fn mint(&self, grant: Grant, refresh: Option<String>) -> String {
        let token = format!("{}!AR{}", &org_id()[..15], self.hub.tokens.random_hex(40));
        self.hub.tokens.put_access(
            token.clone(),
            AccessToken {
                grant,
                expires_ms: self.now() + self.session_ms,
                refresh,
            },
        );
        token
    }

    /// Auth, the daily API allocation and the `Sforce-Limit-Info` header.
    fn guarded(
        &self,
        headers: &HeaderMap,
        ctx: &RequestCtx,
        f: impl FnOnce() -> Response,
    ) -> Response {
        let valid = auth_token(headers, "Bearer")
            .or_else(|| auth_token(headers, "OAuth"))
            .is_some_and(|t| {
                matches!(
                    self.hub.tokens.check(Vendor::Salesforce, t, self.now()),
                    TokenCheck::Valid(_)
                )
            })
            && !ctx.force_expired;
        if !valid {
            let mut r = sf_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
                None,
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
            return r;
        }
        let used = {
            let mut st = self.state.lock().expect("salesforce state");
            let now = self.now();
            while st.api_calls.front().is_some_and(|t| *t <= now - 86_400_000) {
                st.api_calls.pop_front();
            }
            if st.api_calls.len() as u64 >= self.limits.daily_api_requests {
                let used = st.api_calls.len();
                drop(st);
                let mut r = self.limit_exceeded();
                set_header(
                    &mut r,
                    "Sforce-Limit-Info",
                    format!("api-usage={used}/{}", self.limits.daily_api_requests),
                );
                return r;
            }
            st.api_calls.push_back(now);
            st.api_calls.len()
        };
        let mut resp = f();
        set_header(
            &mut resp,
            "Sforce-Limit-Info",
            format!("api-usage={used}/{}", self.limits.daily_api_requests),
        );
        resp
    }

    fn limit_exceeded(&self) -> Response {
        sf_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            None,
        )
    }

    /// A field's value on a record, including computed and system fields.
    fn value(
        &self,
        st: &SalesforceState,
        obj: SObject,
        index: u64,
        rec: &Record,
        deleted: bool,
        field: &str,
    ) -> Value {
        if let Some((parent, rest)) = field.split_once('.') {
            return self.parent_value(st, obj, rec, parent, rest);
        }
        let Some((name, ..)) = obj.field(field) else {
            return Value::Null;
        };
        match name {
            "Id" => json!(sf_id(obj, index)),
            "IsDeleted" => json!(deleted),
            "CreatedDate" => json!(sf_time(rec.created_ms)),
            "LastModifiedDate" | "SystemModstamp" => json!(sf_time(rec.modified_ms)),
            "CreatedById" | "LastModifiedById" => json!(user_id()),
            "OwnerId" => rec
                .fields
                .get("OwnerId")
                .cloned()
                .unwrap_or_else(|| json!(user_id())),
            "Name" if matches!(obj, SObject::Contact | SObject::Lead) => {
                let first = rec
                    .fields
                    .get("FirstName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let last = rec
                    .fields
                    .get("LastName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                json!(format!("{first} {last}").trim())
            }
            "IsClosed" => json!(
                rec.fields
                    .get("StageName")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with("Closed"))
            ),
            "IsWon" => {
                json!(rec.fields.get("StageName").and_then(Value::as_str) == Some("Closed Won"))
            }
            "IsConverted" => json!(false),
            _ => rec.fields.get(name).cloned().unwrap_or(Value::Null),
        }
    }

    fn parent_value(
        &self,
        st: &SalesforceState,
        obj: SObject,
        rec: &Record,
        parent: &str,
        rest: &str,
    ) -> Value {
        let reference = match (obj, parent.to_ascii_lowercase().as_str()) {
            (SObject::Contact | SObject::Opportunity, "account") => rec.fields.get("AccountId"),
            (SObject::Task, "who") => rec.fields.get("WhoId"),
            (SObject::Task, "what") => rec.fields.get("WhatId"),
            (SObject::CampaignMember, "campaign") => rec.fields.get("CampaignId"),
            (SObject::CampaignMember, "contact") => rec.fields.get("ContactId"),
            (SObject::CampaignMember, "lead") => rec.fields.get("LeadId"),
            _ => None,
        };
        let Some((pobj, pi)) = reference.and_then(Value::as_str).and_then(parse_sf_id) else {
            return Value::Null;
        };
        match st.objects[pobj.slot()].get(pi) {
            Some(prec) => self.value(st, pobj, pi, &prec, false, rest),
            None => Value::Null,
        }
    }

    fn attributes(&self, obj: SObject, index: u64, version: &str) -> Value {
        json!({"type": obj.name(), "url": format!("/services/data/{version}/sobjects/{}/{}", obj.name(), sf_id(obj, index))})
    }

    /// The record with `fields` (all fields when `None`), parent fields nested as Salesforce does.
    #[allow(clippy::too_many_arguments)] // a row is (object, index, record, deleted); bundling them would only rename the problem
    fn render(
        &self,
        st: &SalesforceState,
        obj: SObject,
        index: u64,
        rec: &Record,
        deleted: bool,
        fields: Option<&[String]>,
        version: &str,
    ) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("attributes".into(), self.attributes(obj, index, version));
        let all: Vec<String>;
        let list: &[String] = match fields {
            Some(f) => f,
            None => {
                all = obj
                    .system_fields()
                    .chain(obj.fields())
                    .map(|f| f.0.to_string())
                    .collect();
                &all
            }
        };
        for f in list {
            if let Some((parent, rest)) = f.split_once('.') {
                let canonical_parent = match parent.to_ascii_lowercase().as_str() {
                    "account" => "Account",
                    "who" => "Who",
                    "what" => "What",
                    "campaign" => "Campaign",
                    "contact" => "Contact",
                    "lead" => "Lead",
                    _ => parent,
                };
                let reference = match canonical_parent {
                    "Account" => rec.fields.get("AccountId"),
                    "Who" => rec.fields.get("WhoId"),
                    "What" => rec.fields.get("WhatId"),
                    "Campaign" => rec.fields.get("CampaignId"),
                    "Contact" => rec.fields.get("ContactId"),
                    "Lead" => rec.fields.get("LeadId"),
                    _ => None,
                };
                let nested = reference
                    .and_then(Value::as_str)
                    .and_then(parse_sf_id)
                    .and_then(|(pobj, pi)| {
                        let prec = st.objects[pobj.slot()].get(pi)?;
                        let canonical = pobj.field(rest).map(|d| d.0).unwrap_or(rest);
                        Some((
                            pobj,
                            pi,
                            canonical.to_string(),
                            self.value(st, pobj, pi, &prec, false, rest),
                        ))
                    });
                match nested {
                    Some((pobj, pi, name, v)) => {
                        let entry = out.entry(canonical_parent.to_string()).or_insert_with(
                            || json!({"attributes": self.attributes(pobj, pi, version)}),
                        );
                        entry[name] = v;
                    }
                    None => {
                        out.insert(canonical_parent.to_string(), Value::Null);
                    }
                }
                continue;
            }
            let name = obj.field(f).map(|d| d.0).unwrap_or(f.as_str());
            out.insert(
                name.to_string(),
                self.value(st, obj, index, rec, deleted, f),
            );
        }
        Value::Object(out)
    }
}

// ---------------------------------------------------------------- OAuth

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        json!({"error": error, "error_description": description}),
    )
}

async fn authorize_page(RawQuery(q): RawQuery) -> Response {
    let p: AuthorizeParams =
        serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    oauth::consent_page(
        Vendor::Salesforce,
        "/services/oauth2/authorize",
        CONSUMER_KEY,
        &p,
    )
}

async fn authorize_decision(State(s): State<Arc<Salesforce>>, body: Bytes) -> Response {
    let p: AuthorizeParams = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    oauth::decide(
        &oauth::Consent {
            vendor: Vendor::Salesforce,
            known_client: CONSUMER_KEY,
            user: USERNAME,
            code_lifetime_ms: s.code_ms,
            code_prefix: "aPrx",
        },
        &s.hub.tokens,
        s.now(),
        &p,
        &[],
    )
}

async fn token(
    State(s): State<Arc<Salesforce>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = token_params(q.as_deref(), &headers, &body);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let now = s.now();
    match get("grant_type") {
        JWT_GRANT => s.jwt_bearer(get("assertion")),
        "authorization_code" | "refresh_token" => {
            if get("client_id") != CONSUMER_KEY {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client_id",
                    "client identifier invalid",
                );
            }
            if get("client_secret") != CONSUMER_SECRET {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    "invalid client credentials",
                );
            }
            let (grant, refresh) = if get("grant_type") == "authorization_code" {
                let Some(code) = s
                    .hub
                    .tokens
                    .take_code(get("code"))
                    .filter(|c| c.grant.vendor == Vendor::Salesforce && c.expires_ms > now)
                else {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "expired authorization code",
                    );
                };
                if code.redirect_uri != get("redirect_uri") {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "redirect_uri_mismatch",
                        "redirect_uri must match configuration",
                    );
                }
                let r = format!("5Aep{}", s.hub.tokens.random_hex(40));
                s.hub.tokens.put_refresh(
                    r.clone(),
                    RefreshToken {
                        grant: code.grant.clone(),
                        expires_ms: i64::MAX,
                        minted: VecDeque::new(),
                    },
                );
                (code.grant, Some(r))
            } else {
                let Some(stored) = s
                    .hub
                    .tokens
                    .refresh(get("refresh_token"))
                    .filter(|r| r.grant.vendor == Vendor::Salesforce)
                else {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "expired access/refresh token",
                    );
                };
                // Salesforce keeps the refresh token; the answer carries none.
                (stored.grant, None)
            };
            let access = s.mint(
                grant.clone(),
                refresh
                    .clone()
                    .or_else(|| Some(get("refresh_token").to_string())),
            );
            let issued_at = now.to_string();
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, CONSUMER_SECRET.as_bytes());
            let signature = STANDARD.encode(
                ring::hmac::sign(&key, format!("{}{issued_at}", s.identity_url()).as_bytes())
                    .as_ref(),
            );
            let mut body = json!({
                "access_token": access, "signature": signature, "scope": grant.scope, "instance_url": s.base(),
                "id": s.identity_url(), "token_type": "Bearer", "issued_at": issued_at,
            });
            if let Some(r) = refresh {
                body["refresh_token"] = json!(r);
            }
            json_response(StatusCode::OK, body)
        }
        "" => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant type not supported",
        ),
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type not supported",
        ),
    }
}

impl Salesforce {
    /// The OAuth 2.0 JWT bearer flow: RS256 signature, then `iss`, `sub`, `aud`, `exp`.
    fn jwt_bearer(&self, assertion: &str) -> Response {
        let invalid = || {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "invalid assertion",
            )
        };
        let parts: Vec<&str> = assertion.split('.').collect();
        if parts.len() != 3 {
            return invalid();
        }
        let decode = |p: &str| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok();
        let (Some(h), Some(c), Some(sig)) = (decode(parts[0]), decode(parts[1]), decode(parts[2]))
        else {
            return invalid();
        };
        let (Ok(header), Ok(claims)) = (
            serde_json::from_slice::<Value>(&h),
            serde_json::from_slice::<Value>(&c),
        ) else {
            return invalid();
        };
        if header["alg"] != "RS256" {
            return invalid();
        }
        let signed = format!("{}.{}", parts[0], parts[1]);
        if !keys::verify_rs256(&self.jwt_key, signed.as_bytes(), &sig) {
            return invalid();
        }
        if claims["iss"] != CONSUMER_KEY {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_id",
                "client identifier invalid",
            );
        }
        let aud = claims["aud"].as_str().unwrap_or("").trim_end_matches('/');
        let audiences = [
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            self.base(),
        ];
        if !audiences.contains(&aud) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "audience is invalid",
            );
        }
        let now_s = self.now() / 1_000;
        let Some(exp) = jwt_seconds(&claims["exp"]) else {
            return invalid();
        };
        if exp <= now_s {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "expired authorization code",
            );
        }
        if exp > now_s + self.limits.jwt_max_lifetime.as_secs() as i64 {
            return invalid();
        }
        let sub = claims["sub"].as_str().unwrap_or("");
        if !sub.eq_ignore_ascii_case(USERNAME) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "user hasn't approved this consumer",
            );
        }
        let grant = Grant {
            vendor: Vendor::Salesforce,
            client_id: CONSUMER_KEY.into(),
            user: USERNAME.into(),
            scope: DEMO_SCOPE.into(),
        };
        let access = self.mint(grant, None);
        json_response(
            StatusCode::OK,
            json!({"access_token": access, "scope": DEMO_SCOPE, "instance_url": self.base(), "id": self.identity_url(), "token_type": "Bearer"}),
        )
    }
}

/// A JWT time claim in seconds since the epoch. RFC 7519 makes it a JSON number (integral or
/// fractional); Salesforce also accepts a string of digits, which simple-salesforce sends
/// (`f'{expiration.timestamp():.0f}'`) and which logs in against real orgs. The string form is
/// inferred from that client's working login, not from Salesforce's documentation, which only
/// says "number of seconds since 1970-01-01".
fn jwt_seconds(claim: &Value) -> Option<i64> {
    match claim {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.floor() as i64)),
        Value::String(s) => {
            let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
            let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
            (digits(whole) && digits(fraction))
                .then(|| whole.parse().ok())
                .flatten()
        }
        _ => None,
    }
}

async fn revoke(
    State(s): State<Arc<Salesforce>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = token_params(q.as_deref(), &headers, &body);
    let t = p.get("token").map(String::as_str).unwrap_or("");
    if s.hub.tokens.refresh(t).is_some() {
        s.hub.tokens.revoke_refresh(t);
    } else if !s.hub.tokens.revoke_access(t) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            "this token type is not supported",
        );
    }
    StatusCode::OK.into_response()
}

async fn identity(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    headers: HeaderMap,
) -> Response {
    s.guarded(&headers, &ctx, || {
        json_response(
            StatusCode::OK,
            json!({"id": s.identity_url(), "user_id": user_id(), "organization_id": org_id(), "username": USERNAME, "email": USERNAME, "display_name": "Weft Demo", "active": true, "urls": {"rest": format!("{}/services/data/v{{version}}/", s.base())}}),
        )
    })
}

// ---------------------------------------------------------------- metadata

async fn versions() -> Response {
    let list: Vec<Value> = (60..=66).map(|v| json!({"label": format!("v{v}.0"), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")})).collect();
    json_response(StatusCode::OK, json!(list))
}

async fn resources(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(v): Path<String>,
    headers: HeaderMap,
) -> Response {
    if valid_version(&v).is_none() {
        return not_found();
    }
    s.guarded(&headers, &ctx, || {
        let r = |p: &str| format!("/services/data/{v}/{p}");
        json_response(StatusCode::OK, json!({"sobjects": r("sobjects"), "query": r("query"), "queryAll": r("queryAll"), "composite": r("composite"), "limits": r("limits")}))
    })
}

async fn limits(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(v): Path<String>,
    headers: HeaderMap,
) -> Response {
    if valid_version(&v).is_none() {
        return not_found();
    }
    s.guarded(&headers, &ctx, || {
        let used = s.state.lock().expect("salesforce state").api_calls.len() as u64;
        let max = s.limits.daily_api_requests;
        json_response(
            StatusCode::OK,
            json!({
                "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
                "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
                "DataStorageMB": {"Max": 5, "Remaining": 5},
            }),
        )
    })
}

async fn describe_global(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(v): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.guarded(&headers, &ctx, || {
        let list: Vec<Value> = SObject::ALL
            .iter()
            .map(|o| json!({"name": o.name(), "label": o.name(), "keyPrefix": o.prefix(), "queryable": true, "createable": true, "updateable": true, "urls": {"sobject": format!("/services/data/{v}/sobjects/{}", o.name())}}))
            .collect();
        json_response(StatusCode::OK, json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list}))
    })
}

fn field_type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Id => "id",
        FieldType::Text => "string",
        FieldType::Email => "email",
        FieldType::Picklist => "picklist",
        FieldType::Currency => "currency",
        FieldType::Int => "int",
        FieldType::Date => "date",
        FieldType::DateTime => "datetime",
        FieldType::Boolean => "boolean",
        FieldType::Reference(_) => "reference",
    }
}

// ---------------------------------------------------------------- SOQL

async fn query(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(v): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if valid_version(&v).is_none() {
        return not_found();
    }
    s.guarded(&headers, &ctx, || {
        s.start_query(&v, q.as_deref(), &headers, false)
    })
}

async fn query_all(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(v): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if valid_version(&v).is_none() {
        return not_found();
    }
    s.guarded(&headers, &ctx, || {
        s.start_query(&v, q.as_deref(), &headers, true)
    })
}

async fn query_more(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((v, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    s.guarded(&headers, &ctx, || s.next_batch(&v, &locator))
}

fn malformed(msg: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", msg, None)
}

impl Salesforce {
    fn start_query(
        &self,
        version: &str,
        q: Option<&str>,
        headers: &HeaderMap,
        include_deleted: bool,
    ) -> Response {
        let p = query_params(q);
        let Some(text) = p.get("q") else {
            return malformed("A query string must be provided in the q parameter");
        };
        let batch = header_str(headers, "sforce-query-options")
            .and_then(|h| {
                h.split(',').find_map(|kv| {
                    kv.trim()
                        .strip_prefix("batchSize=")
                        .and_then(|n| n.parse::<u64>().ok())
                })
            })
            // 200 is Salesforce's smallest batchSize; a sandbox configured below it keeps its own.
            .map(|n| {
                n.clamp(
                    200.min(self.limits.query_batch_size),
                    self.limits.query_batch_size,
                )
            })
            .unwrap_or(self.limits.query_batch_size);
        let mut st = self.state.lock().expect("salesforce state");
        match self.plan(&st, text, include_deleted, batch) {
            Err(r) => r,
            Ok(Planned::Count(n)) => json_response(
                StatusCode::OK,
                json!({"totalSize": n, "done": true, "records": []}),
            ),
            Ok(Planned::Rows(cursor, total)) => {
                let locator = format!("01g{}", &self.hub.tokens.random_hex(8).to_uppercase()[..12]);
                self.respond(&mut st, version, locator, *cursor, Some(total))
            }
        }
    }

    /// Parses and checks a SOQL query and positions a cursor at its first row; shared by the
    /// REST query resource and Bulk API 2.0 query jobs.
    fn plan(
        &self,
        st: &SalesforceState,
        text: &str,
        include_deleted: bool,
        batch: u64,
    ) -> Result<Planned, Response> {
        let query = soql::parse(text).map_err(|msg| malformed(&msg))?;
        let Some(obj) = SObject::parse(&query.object) else {
            return Err(sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                &format!(
                    "\n{text}\n^\nERROR at Row:1:Column:1\nsObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name.",
                    query.object
                ),
                None,
            ));
        };
        let mut mentioned: Vec<String> = query.fields.clone();
        if let Some(f) = &query.filter {
            soql::filter_fields(f, &mut mentioned);
        }
        mentioned.extend(query.order.iter().map(|o| o.field.clone()));
        for f in &mentioned {
            let ok = match f.split_once('.') {
                Some((parent, rest)) => match (obj, parent.to_ascii_lowercase().as_str()) {
                    (SObject::Contact | SObject::Opportunity, "account") => {
                        SObject::Account.field(rest).is_some()
                    }
                    (SObject::Task, "who") => SObject::Contact.field(rest).is_some(),
                    (SObject::Task, "what") => SObject::Opportunity.field(rest).is_some(),
                    _ => false,
                },
                None => obj.field(f).is_some(),
            };
            if !ok {
                return Err(sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!(
                        "\n{text}\n^\nERROR at Row:1:Column:1\nNo such column '{f}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                        obj.name()
                    ),
                    None,
                ));
            }
        }
        if query.offset.is_some_and(|o| o > 2_000) {
            return Err(sf_error(
                StatusCode::BAD_REQUEST,
                "NUMBER_OUTSIDE_VALID_RANGE",
                "Maximum SOQL offset allowed is 2000",
                None,
            ));
        }
        let now = self.now();
        let total = self.count_matches(st, obj, &query, include_deleted);
        if query.count {
            return Ok(Planned::Count(total));
        }
        let by_modstamp = query.order.len() == 1
            && !query.order[0].desc
            && matches!(
                obj.field(&query.order[0].field).map(|d| d.0),
                Some("SystemModstamp" | "LastModifiedDate")
            );
        let by_id = query.order.is_empty()
            || (query.order.len() == 1
                && obj.field(&query.order[0].field).map(|d| d.0) == Some("Id"));
        let position = if include_deleted || !(by_id || by_modstamp) {
            Position::Materialized {
                rows: Arc::new(self.materialize(st, obj, &query, include_deleted)),
                next: 0,
            }
        } else if by_modstamp {
            Position::Modstamp {
                after: (i64::MIN, 0),
            }
        } else {
            Position::Index {
                dir: if query.order.first().is_some_and(|o| o.desc) {
                    Dir::Desc
                } else {
                    Dir::Asc
                },
                after: None,
            }
        };
        let offset = query.offset.unwrap_or(0);
        let total_after = total
            .saturating_sub(offset)
            .min(query.limit.unwrap_or(u64::MAX));
        let mut cursor = Cursor {
            remaining: query.limit,
            query,
            obj,
            position,
            served: 0,
            total: total_after,
            expires_ms: now + 15 * 60_000,
            batch,
        };
        if offset > 0 {
            self.advance(st, &mut cursor, offset as usize);
        }
        Ok(Planned::Rows(Box::new(cursor), total_after))
    }

    fn next_batch(&self, version: &str, locator: &str) -> Response {
        let Some((id, _)) = locator.rsplit_once('-') else {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
                None,
            );
        };
        let mut st = self.state.lock().expect("salesforce state");
        let now = self.now();
        st.cursors.retain(|_, c| c.expires_ms > now);
        let Some(cursor) = st.cursors.remove(id) else {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
                None,
            );
        };
        self.respond(&mut st, version, id.to_string(), cursor, None)
    }

    /// Serves one batch from `cursor`, storing it again when more records follow.
    fn respond(
        &self,
        st: &mut SalesforceState,
        version: &str,
        locator: String,
        mut cursor: Cursor,
        total: Option<u64>,
    ) -> Response {
        let want = cursor.batch.min(cursor.remaining.unwrap_or(u64::MAX)) as usize;
        let rows = self.take(st, &mut cursor, want);
        cursor.served += rows.len() as u64;
        if let Some(r) = cursor.remaining.as_mut() {
            *r -= rows.len() as u64;
        }
        let more = cursor.remaining != Some(0) && rows.len() == want && self.has_more(st, &cursor);
        let fields: Option<Vec<String>> = Some(cursor.query.fields.clone());
        let records: Vec<Value> = rows
            .iter()
            .filter_map(|(i, deleted)| {
                let rec = if *deleted {
                    st.objects[cursor.obj.slot()]
                        .tombstones()
                        .find(|(x, _)| x == i)
                        .map(|(_, t)| t.last.clone())
                } else {
                    st.objects[cursor.obj.slot()].get(*i)
                }?;
                Some(self.render(
                    st,
                    cursor.obj,
                    *i,
                    &rec,
                    *deleted,
                    fields.as_deref(),
                    version,
                ))
            })
            .collect();
        let total = total.unwrap_or(cursor.total);
        let mut body = json!({"totalSize": total, "done": !more, "records": records});
        if more {
            body["nextRecordsUrl"] = json!(format!(
                "/services/data/{version}/query/{locator}-{}",
                cursor.served
            ));
            cursor.expires_ms = self.now() + 15 * 60_000;
            st.cursors.insert(locator, cursor);
        }
        json_response(StatusCode::OK, body)
    }

    fn matches(
        &self,
        st: &SalesforceState,
        obj: SObject,
        i: u64,
        rec: &Record,
        deleted: bool,
        filter: Option<&Expr>,
    ) -> bool {
        match filter {
            None => true,
            Some(e) => soql::eval(e, &|f: &str| self.value(st, obj, i, rec, deleted, f)),
        }
    }

    fn count_matches(
        &self,
        st: &SalesforceState,
        obj: SObject,
        q: &Query,
        include_deleted: bool,
    ) -> u64 {
        let c = &st.objects[obj.slot()];
        let mut n = match &q.filter {
            None => c.len(),
            Some(f) => c
                .scan(Dir::Asc, None)
                .filter(|i| {
                    c.get(*i)
                        .is_some_and(|r| self.matches(st, obj, *i, &r, false, Some(f)))
                })
                .count() as u64,
        };
        if include_deleted {
            n += c
                .tombstones()
                .filter(|(i, t)| self.matches(st, obj, *i, &t.last, true, q.filter.as_ref()))
                .count() as u64;
        }
        n
    }

    fn materialize(
        &self,
        st: &SalesforceState,
        obj: SObject,
        q: &Query,
        include_deleted: bool,
    ) -> Vec<(u64, bool)> {
        let c = &st.objects[obj.slot()];
        let mut rows: Vec<(u64, bool, Record)> = c
            .scan(Dir::Asc, None)
            .filter_map(|i| c.get(i).map(|r| (i, false, r)))
            .filter(|(i, d, r)| self.matches(st, obj, *i, r, *d, q.filter.as_ref()))
            .collect();
        if include_deleted {
            rows.extend(
                c.tombstones()
                    .map(|(i, t)| (i, true, t.last.clone()))
                    .filter(|(i, d, r)| self.matches(st, obj, *i, r, *d, q.filter.as_ref())),
            );
            rows.sort_by_key(|r| r.0);
        }
        if !q.order.is_empty() {
            rows.sort_by(|a, b| {
                for o in &q.order {
                    let ord = soql::order_values(
                        &self.value(st, obj, a.0, &a.2, a.1, &o.field),
                        &self.value(st, obj, b.0, &b.2, b.1, &o.field),
                        o,
                    );
                    if ord != std::cmp::Ordering::Equal {
                        return ord;
                    }
                }
                a.0.cmp(&b.0)
            });
        }
        rows.into_iter().map(|(i, d, _)| (i, d)).collect()
    }

    /// Takes up to `n` matching rows from the cursor's position.
    fn take(&self, st: &SalesforceState, cursor: &mut Cursor, n: usize) -> Vec<(u64, bool)> {
        let obj = cursor.obj;
        let c = &st.objects[obj.slot()];
        let filter = cursor.query.filter.clone();
        let mut out = Vec::with_capacity(n.min(4_096));
        match &mut cursor.position {
            Position::Index { dir, after } => {
                for i in c.scan(*dir, *after) {
                    if out.len() == n {
                        break;
                    }
                    *after = Some(i);
                    if filter.is_none()
                        || c.get(i)
                            .is_some_and(|r| self.matches(st, obj, i, &r, false, filter.as_ref()))
                    {
                        out.push((i, false));
                    }
                }
            }
            Position::Modstamp { after } => {
                while out.len() < n {
                    let chunk = c.changes_after(*after, i64::MAX, false, (n - out.len()).max(64));
                    if chunk.is_empty() {
                        break;
                    }
                    for ch in chunk {
                        if out.len() == n {
                            break;
                        }
                        *after = ch.key;
                        if filter.is_none()
                            || c.get(ch.index).is_some_and(|r| {
                                self.matches(st, obj, ch.index, &r, false, filter.as_ref())
                            })
                        {
                            out.push((ch.index, false));
                        }
                    }
                }
            }
            Position::Materialized { rows, next } => {
                let end = (*next + n).min(rows.len());
                out.extend_from_slice(&rows[*next..end]);
                *next = end;
            }
        }
        out
    }

    fn advance(&self, st: &SalesforceState, cursor: &mut Cursor, n: usize) {
        let _ = self.take(st, cursor, n);
    }

    fn has_more(&self, st: &SalesforceState, cursor: &Cursor) -> bool {
        let mut probe = cursor.clone();
        !self.take(st, &mut probe, 1).is_empty()
    }
}

// ---------------------------------------------------------------- DML

/// One checked collection item: the type, the fields to write and the row it updates.
type Prepared = Result<(SObject, Fields, Option<u64>), DmlError>;

/// One failed item: `errorCode`, message, fields.
#[derive(Debug, Clone)]
struct DmlError {
    code: &'static str,
    message: String,
    fields: Vec<String>,
}

impl DmlError {
    fn new(code: &'static str, message: impl Into<String>, fields: &[&str]) -> Self {
        Self {
            code,
            message: message.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn response(&self, status: StatusCode) -> Response {
        json_response(
            status,
            json!([{"message": self.message, "errorCode": self.code, "fields": self.fields}]),
        )
    }

    /// Collections report `statusCode` rather than `errorCode`.
    fn item(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }
}

impl Salesforce {
    /// Checks and normalises input fields for a create (`existing` None) or update.
    /// External IDs are not unique here (Salesforce's default), so upserts can meet 300.
    fn validate(
        &self,
        st: &mut SalesforceState,
        obj: SObject,
        input: &serde_json::Map<String, Value>,
        existing: Option<u64>,
    ) -> Result<Fields, DmlError> {
        let mut out = Fields::new();
        let mut not_writable = Vec::new();
        for (k, v) in input {
            if k == "attributes" {
                continue;
            }
            let Some((name, ty, _, writable)) = obj.field(k) else {
                return Err(DmlError::new(
                    "INVALID_FIELD",
                    format!("No such column '{k}' on sobject of type {}", obj.name()),
                    &[],
                ));
            };
            if name == "Id" && existing.is_some() {
                continue;
            }
            if !writable {
                not_writable.push(name);
                continue;
            }
            let ok = match (ty, v) {
                (_, Value::Null) => true,
                (FieldType::Currency | FieldType::Int, Value::Number(_)) => true,
                (FieldType::Currency | FieldType::Int, Value::String(s)) => {
                    s.parse::<f64>().is_ok()
                }
                (FieldType::Boolean, Value::Bool(_)) => true,
                (FieldType::Date, Value::String(s)) => s.len() == 10 && parse_iso(s).is_some(),
                (FieldType::DateTime, Value::String(s)) => parse_iso(s).is_some(),
                (
                    FieldType::Text
                    | FieldType::Email
                    | FieldType::Picklist
                    | FieldType::Id
                    | FieldType::Reference(_),
                    Value::String(_),
                ) => true,
                _ => false,
            };
            if !ok {
                return Err(DmlError::new(
                    "JSON_PARSER_ERROR",
                    format!(
                        "Cannot deserialize instance of {} from {} value {v} or request may be missing a required field",
                        field_type_name(ty),
                        if v.is_string() {
                            "VALUE_STRING"
                        } else {
                            "VALUE"
                        }
                    ),
                    &[],
                ));
            }
            if ty == FieldType::Email
                && let Some(s) = v.as_str()
                && !s.is_empty()
                && !valid_email(s)
            {
                return Err(DmlError::new(
                    "INVALID_EMAIL_ADDRESS",
                    format!("{name}: invalid email address: {s}"),
                    &[name],
                ));
            }
            if let FieldType::Reference(target) = ty
                && let Some(s) = v.as_str()
            {
                match parse_sf_id(s) {
                    None => {
                        return Err(DmlError::new(
                            "MALFORMED_ID",
                            format!(
                                "{}: id value of incorrect type: {s}",
                                name.trim_end_matches("Id")
                            ),
                            &[name],
                        ));
                    }
                    Some((o, i)) if !target.contains(&o) || !st.objects[o.slot()].is_live(i) => {
                        return Err(DmlError::new(
                            "INVALID_CROSS_REFERENCE_KEY",
                            "invalid cross reference id",
                            &[name],
                        ));
                    }
                    Some((o, i)) => {
                        out.insert(name.to_string(), json!(sf_id(o, i)));
                        continue;
                    }
                }
            }
            out.insert(name.to_string(), v.clone());
        }
        if !not_writable.is_empty() {
            return Err(DmlError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    not_writable.join(", ")
                ),
                &not_writable,
            ));
        }
        let missing: Vec<&str> = match existing {
            None => obj
                .fields()
                .iter()
                .filter(|f| {
                    f.2 && out
                        .get(f.0)
                        .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
                })
                .map(|f| f.0)
                .collect(),
            Some(_) => obj
                .fields()
                .iter()
                .filter(|f| {
                    f.2 && out
                        .get(f.0)
                        .is_some_and(|v| v.is_null() || v.as_str() == Some(""))
                })
                .map(|f| f.0)
                .collect(),
        };
        if !missing.is_empty() {
            return Err(DmlError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                &missing,
            ));
        }
        Ok(out)
    }

    fn apply(
        &self,
        st: &mut SalesforceState,
        obj: SObject,
        fields: Fields,
        existing: Option<u64>,
    ) -> u64 {
        let now = self.now();
        match existing {
            Some(i) => {
                st.objects[obj.slot()].merge(i, &fields, now);
                i
            }
            None => st.objects[obj.slot()].insert(fields, now),
        }
    }

    fn live(&self, st: &SalesforceState, obj: SObject, id: &str) -> Result<u64, DmlError> {
        match parse_sf_id(id) {
            Some((o, i)) if o == obj && st.objects[o.slot()].is_live(i) => Ok(i),
            Some((o, i)) if o == obj && st.objects[o.slot()].tombstones().any(|(x, _)| x == i) => {
                Err(DmlError::new("ENTITY_IS_DELETED", "entity is deleted", &[]))
            }
            Some(_) | None if id.len() == 15 || id.len() == 18 => Err(DmlError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                format!("invalid cross reference id: {id}"),
                &[],
            )),
            _ => Err(DmlError::new(
                "MALFORMED_ID",
                format!("malformed id {id}"),
                &[],
            )),
        }
    }
}

fn object_or_404(name: &str) -> Result<SObject, Response> {
    SObject::parse(name).ok_or_else(|| {
        sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
            None,
        )
    })
}

async fn sobject_root(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((v, name)): Path<(String, String)>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let obj = match object_or_404(&name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    s.guarded(&headers, &ctx, || {
        if method == http::Method::GET {
            let st = s.state.lock().expect("salesforce state");
            let recent: Vec<Value> = st.objects[obj.slot()].scan(Dir::Desc, None).take(10).filter_map(|i| st.objects[obj.slot()].get(i).map(|r| s.render(&st, obj, i, &r, false, Some(&["Id".to_string(), "Name".to_string()]), &v))).collect();
            return json_response(StatusCode::OK, json!({"objectDescribe": {"name": obj.name(), "keyPrefix": obj.prefix()}, "recentItems": recent}));
        }
        let input = match parse_json_body(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", "The request body must be a JSON object", None),
            Err(msg) => return sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", &msg, None),
        };
        let mut st = s.state.lock().expect("salesforce state");
        match s.validate(&mut st, obj, &input, None) {
            Ok(f) => {
                let i = s.apply(&mut st, obj, f, None);
                json_response(StatusCode::CREATED, json!({"id": sf_id(obj, i), "success": true, "errors": []}))
            }
            Err(e) => e.response(StatusCode::BAD_REQUEST),
        }
    })
}

async fn describe(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((_v, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let obj = match object_or_404(&name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    s.guarded(&headers, &ctx, || {
        let fields: Vec<Value> = obj
            .system_fields()
            .chain(obj.fields())
            .map(|(n, t, req, w)| {
                json!({
                    "name": n, "label": n, "type": field_type_name(*t), "createable": w, "updateable": w, "nillable": !req,
                    "externalId": obj.is_external_id(n), "unique": false, "idLookup": *n == "Id" || obj.is_external_id(n),
                    "referenceTo": match t { FieldType::Reference(to) => json!(to.iter().map(|o| o.name()).collect::<Vec<_>>()), _ => json!([]) },
                })
            })
            .collect();
        json_response(StatusCode::OK, json!({"name": obj.name(), "label": obj.name(), "keyPrefix": obj.prefix(), "fields": fields, "createable": true, "updateable": true, "queryable": true}))
    })
}

/// `/sobjects/{SObject}/{id}` (GET/PATCH/DELETE) and `/sobjects/{SObject}/{field}/{value}`
/// share the router: an ID-shaped segment is a record, anything else an external-ID field.
async fn sobject_record(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((v, name, id)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let obj = match object_or_404(&name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match id.as_str() {
        "describe" => return describe(State(s), Extension(ctx), Path((v, name)), headers).await,
        "updated" => return replication(s, ctx, obj, q, headers, false),
        "deleted" => return replication(s, ctx, obj, q, headers, true),
        _ => {}
    }
    s.guarded(&headers, &ctx, || {
        let mut st = s.state.lock().expect("salesforce state");
        let i = match s.live(&st, obj, &id) {
            Ok(i) => i,
            Err(e) if e.code == "ENTITY_IS_DELETED" => return e.response(StatusCode::NOT_FOUND),
            Err(_) => return not_found(),
        };
        match method {
            http::Method::GET => {
                let fields: Option<Vec<String>> =
                    query_params(q.as_deref()).get("fields").map(|f| {
                        let mut v: Vec<String> =
                            f.split(',').map(|x| x.trim().to_string()).collect();
                        v.insert(0, "Id".into());
                        v
                    });
                if let Some(bad) = fields
                    .as_ref()
                    .and_then(|f| f.iter().find(|x| obj.field(x).is_none()))
                {
                    return sf_error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        &format!("No such column '{bad}' on entity '{}'", obj.name()),
                        None,
                    );
                }
                let rec = st.objects[obj.slot()].get(i).expect("live");
                json_response(
                    StatusCode::OK,
                    s.render(&st, obj, i, &rec, false, fields.as_deref(), &v),
                )
            }
            http::Method::PATCH => {
                let input = match parse_json_body(&body) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => {
                        return sf_error(
                            StatusCode::BAD_REQUEST,
                            "JSON_PARSER_ERROR",
                            "The request body must be a JSON object",
                            None,
                        );
                    }
                    Err(msg) => {
                        return sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", &msg, None);
                    }
                };
                match s.validate(&mut st, obj, &input, Some(i)) {
                    Ok(f) => {
                        s.apply(&mut st, obj, f, Some(i));
                        StatusCode::NO_CONTENT.into_response()
                    }
                    Err(e) => e.response(StatusCode::BAD_REQUEST),
                }
            }
            http::Method::DELETE => {
                let now = s.now();
                st.objects[obj.slot()].delete(i, now);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => sf_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                &format!("HTTP Method '{method}' not allowed. Allowed are GET,PATCH,DELETE"),
                None,
            ),
        }
    })
}

/// `/sobjects/{SObject}/{ExternalIdField}/{value}`: get or upsert by external ID.
async fn by_external_id(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((v, name, field, value)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let obj = match object_or_404(&name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    s.guarded(&headers, &ctx, || {
        if !obj.is_external_id(&field) {
            return sf_error(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("Provided external ID field does not exist or is not accessible: {field}"), None);
        }
        let canonical = obj.field(&field).map(|d| d.0).unwrap_or("External_Id__c");
        let mut st = s.state.lock().expect("salesforce state");
        let matches = st.objects[obj.slot()].find(canonical, &json!(value));
        match method {
            http::Method::GET => match matches.as_slice() {
                [] => not_found(),
                [i] => {
                    let rec = st.objects[obj.slot()].get(*i).expect("live");
                    json_response(StatusCode::OK, s.render(&st, obj, *i, &rec, false, None, &v))
                }
                many => multiple_choices(obj, many, &v),
            },
            http::Method::PATCH => {
                let mut input = match parse_json_body(&body) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => return sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", "The request body must be a JSON object", None),
                    Err(msg) => return sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", &msg, None),
                };
                let update_only = query_params(q.as_deref()).get("updateOnly").is_some_and(|x| x == "true");
                match matches.as_slice() {
                    [] if update_only => not_found(),
                    [] => {
                        input.insert(canonical.to_string(), json!(value));
                        match s.validate(&mut st, obj, &input, None) {
                            Ok(f) => {
                                let i = s.apply(&mut st, obj, f, None);
                                json_response(StatusCode::CREATED, json!({"id": sf_id(obj, i), "success": true, "errors": [], "created": true}))
                            }
                            Err(e) => e.response(StatusCode::BAD_REQUEST),
                        }
                    }
                    [i] => match s.validate(&mut st, obj, &input, Some(*i)) {
                        Ok(f) => {
                            s.apply(&mut st, obj, f, Some(*i));
                            // API v46.0 and later answer an update with 200 and a body; older with 204.
                            if valid_version(&v).is_some_and(|n| n >= 46.0) {
                                json_response(StatusCode::OK, json!({"id": sf_id(obj, *i), "success": true, "errors": [], "created": false}))
                            } else {
                                StatusCode::NO_CONTENT.into_response()
                            }
                        }
                        Err(e) => e.response(StatusCode::BAD_REQUEST),
                    },
                    many => multiple_choices(obj, many, &v),
                }
            }
            _ => sf_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", &format!("HTTP Method '{method}' not allowed. Allowed are GET,PATCH"), None),
        }
    })
}

/// Several records share the external ID: 300 with their URLs.
fn multiple_choices(obj: SObject, many: &[u64], version: &str) -> Response {
    let urls: Vec<String> = many
        .iter()
        .map(|i| {
            format!(
                "/services/data/{version}/sobjects/{}/{}",
                obj.name(),
                sf_id(obj, *i)
            )
        })
        .collect();
    json_response(StatusCode::MULTIPLE_CHOICES, json!(urls))
}

// ---------------------------------------------------------------- getUpdated / getDeleted

fn replication(
    s: Arc<Salesforce>,
    ctx: RequestCtx,
    obj: SObject,
    q: Option<String>,
    headers: HeaderMap,
    deleted: bool,
) -> Response {
    s.guarded(&headers, &ctx, || {
        let p = query_params(q.as_deref());
        let (Some(start), Some(end)) = (p.get("start").and_then(|x| parse_iso(x)), p.get("end").and_then(|x| parse_iso(x))) else {
            return sf_error(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 date-times, e.g. 2026-05-01T00:00:00+00:00", None);
        };
        let now = s.now();
        if end <= start {
            return sf_error(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", "EndDate must chronologically follow the StartDate", None);
        }
        let days = if deleted { s.limits.get_deleted_window_days } else { s.limits.get_updated_window_days };
        let earliest = now - days * 86_400_000;
        if start < earliest {
            return sf_error(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", &format!("startDate cannot be more than {days} days ago"), None);
        }
        // Coverage is whole minutes, never past now.
        let latest = (end.min(now) / 60_000) * 60_000;
        let st = s.state.lock().expect("salesforce state");
        let c = &st.objects[obj.slot()];
        if deleted {
            let mut rows: Vec<(i64, u64)> = c.tombstones().filter(|(_, t)| t.deleted_ms >= start && t.deleted_ms < latest).map(|(i, t)| (t.deleted_ms, i)).collect();
            rows.sort();
            if rows.len() > s.limits.get_updated_max_ids {
                return sf_error(StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT", &format!("the result exceeds the limit of {} ids; ask for a shorter window", s.limits.get_updated_max_ids), None);
            }
            let list: Vec<Value> = rows.iter().map(|(t, i)| json!({"id": sf_id(obj, *i), "deletedDate": sf_time(*t)})).collect();
            return json_response(StatusCode::OK, json!({"deletedRecords": list, "earliestDateAvailable": sf_time((earliest / 60_000) * 60_000), "latestDateCovered": sf_time(latest)}));
        }
        let changes = c.changes_after((start - 1, u64::MAX), latest, false, s.limits.get_updated_max_ids + 1);
        if changes.len() > s.limits.get_updated_max_ids {
            return sf_error(StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT", &format!("the result exceeds the limit of {} ids; ask for a shorter window", s.limits.get_updated_max_ids), None);
        }
        let ids: Vec<String> = changes.iter().map(|ch| sf_id(obj, ch.index)).collect();
        json_response(StatusCode::OK, json!({"ids": ids, "latestDateCovered": sf_time(latest)}))
    })
}

// ---------------------------------------------------------------- sObject collections

impl Salesforce {
    fn collection_records(
        &self,
        body: &[u8],
    ) -> Result<(bool, Vec<serde_json::Map<String, Value>>), Response> {
        let v = parse_json_body(body)
            .map_err(|m| sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", &m, None))?;
        let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
        let records: Vec<serde_json::Map<String, Value>> = v
            .get("records")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    "records is required",
                    None,
                )
            })?
            .iter()
            .map(|r| r.as_object().cloned().unwrap_or_default())
            .collect();
        if records.len() > self.limits.collection_max_records {
            return Err(sf_error(
                StatusCode::BAD_REQUEST,
                "EXCEEDED_ID_LIMIT",
                &format!(
                    "record limit reached. cannot submit more than {} records into this call",
                    self.limits.collection_max_records
                ),
                None,
            ));
        }
        Ok((all_or_none, records))
    }

    /// Runs prepared items; with `all_or_none` nothing is written unless every item is valid.
    fn run_collection(
        &self,
        st: &mut SalesforceState,
        all_or_none: bool,
        prepared: Vec<Prepared>,
        with_created: bool,
    ) -> Response {
        let any_failed = prepared.iter().any(Result::is_err);
        let results: Vec<Value> = prepared
            .into_iter()
            .map(|p| match p {
                Err(e) => json!({"success": false, "errors": [e.item()]}),
                Ok(_) if all_or_none && any_failed => json!({"id": null, "success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]}),
                Ok((obj, fields, existing)) => {
                    let i = self.apply(st, obj, fields, existing);
                    let mut r = json!({"id": sf_id(obj, i), "success": true, "errors": []});
                    if with_created {
                        r["created"] = json!(existing.is_none());
                    }
                    r
                }
            })
            .collect();
        json_response(StatusCode::OK, json!(results))
    }
}

async fn collections(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(v): Path<String>,
    RawQuery(q): RawQuery,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if valid_version(&v).is_none() {
        return not_found();
    }
    s.guarded(&headers, &ctx, || {
        if method == http::Method::DELETE {
            let p = query_params(q.as_deref());
            let ids: Vec<String> = p.get("ids").map(|x| x.split(',').map(|i| i.trim().to_string()).collect()).unwrap_or_default();
            if ids.len() > s.limits.collection_max_records {
                return sf_error(StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT", &format!("record limit reached. cannot submit more than {} records into this call", s.limits.collection_max_records), None);
            }
            let all_or_none = p.get("allOrNone").is_some_and(|x| x == "true");
            let mut st = s.state.lock().expect("salesforce state");
            let checked: Vec<Result<(SObject, u64), DmlError>> = ids
                .iter()
                .map(|id| {
                    let (obj, _) = parse_sf_id(id).ok_or_else(|| DmlError::new("MALFORMED_ID", format!("malformed id {id}"), &[]))?;
                    s.live(&st, obj, id).map(|i| (obj, i))
                })
                .collect();
            let any_failed = checked.iter().any(Result::is_err);
            let now = s.now();
            let results: Vec<Value> = checked
                .into_iter()
                .zip(&ids)
                .map(|(c, id)| match c {
                    Err(e) => json!({"id": id, "success": false, "errors": [e.item()]}),
                    Ok(_) if all_or_none && any_failed => json!({"id": id, "success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]}),
                    Ok((obj, i)) => {
                        st.objects[obj.slot()].delete(i, now);
                        json!({"id": id, "success": true, "errors": []})
                    }
                })
                .collect();
            return json_response(StatusCode::OK, json!(results));
        }
        let (all_or_none, records) = match s.collection_records(&body) {
            Ok(x) => x,
            Err(r) => return r,
        };
        // Consecutive records of one type form a chunk; at most ten chunks per call.
        let types: Vec<Option<String>> = records.iter().map(|r| r.get("attributes").and_then(|a| a.get("type")).and_then(Value::as_str).map(str::to_string)).collect();
        let chunks = types.windows(2).filter(|w| w[0] != w[1]).count() + usize::from(!types.is_empty());
        if chunks > s.limits.collection_max_chunks {
            return sf_error(StatusCode::BAD_REQUEST, "INVALID_BATCH_REQUEST", &format!("Cannot have more than {} chunks in a single operation. Please rearrange the data to reduce chunking.", s.limits.collection_max_chunks), None);
        }
        let mut st = s.state.lock().expect("salesforce state");
        let prepared: Vec<Prepared> = records
            .iter()
            .zip(&types)
            .map(|(r, t)| {
                let obj = t.as_deref().and_then(SObject::parse).ok_or_else(|| DmlError::new("INVALID_TYPE", "Must send a concrete entity type in attributes.type", &[]))?;
                let existing = if method == http::Method::PATCH {
                    let id = r.get("Id").or_else(|| r.get("id")).and_then(Value::as_str).ok_or_else(|| DmlError::new("MISSING_ARGUMENT", "Id not specified in an update call", &[]))?;
                    Some(s.live(&st, obj, id)?)
                } else {
                    if r.contains_key("Id") {
                        return Err(DmlError::new("INVALID_FIELD", "cannot specify Id in an insert call", &["Id"]));
                    }
                    None
                };
                let mut input = r.clone();
                input.remove("Id");
                s.validate(&mut st, obj, &input, existing).map(|f| (obj, f, existing))
            })
            .collect();
        s.run_collection(&mut st, all_or_none, prepared, false)
    })
}

async fn collection_upsert(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((v, name, field)): Path<(String, String, String)>,
    method: http::Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let obj = match object_or_404(&name) {
        Ok(o) => o,
        Err(r) => return r,
    };
    s.guarded(&headers, &ctx, || {
        if method == http::Method::GET {
            let p = query_params(q.as_deref());
            let fields: Vec<String> = p.get("fields").map(|f| f.split(',').map(|x| x.trim().to_string()).collect()).unwrap_or_else(|| vec!["Id".into()]);
            let st = s.state.lock().expect("salesforce state");
            let ids = p.get("ids").cloned().unwrap_or_default();
            let list: Vec<Value> = ids
                .split(',')
                .map(|id| match s.live(&st, obj, id.trim()) {
                    Ok(i) => {
                        let rec = st.objects[obj.slot()].get(i).expect("live");
                        s.render(&st, obj, i, &rec, false, Some(&fields), &v)
                    }
                    Err(_) => Value::Null,
                })
                .collect();
            return json_response(StatusCode::OK, json!(list));
        }
        if !obj.is_external_id(&field) {
            return sf_error(StatusCode::BAD_REQUEST, "INVALID_FIELD", &format!("{field} is not an external ID field on {}", obj.name()), None);
        }
        let canonical = obj.field(&field).map(|d| d.0).unwrap_or("External_Id__c");
        let (all_or_none, records) = match s.collection_records(&body) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let mut st = s.state.lock().expect("salesforce state");
        let prepared: Vec<Prepared> = records
            .iter()
            .map(|r| {
                let t = r.get("attributes").and_then(|a| a.get("type")).and_then(Value::as_str);
                if t.is_some_and(|t| !t.eq_ignore_ascii_case(obj.name())) {
                    return Err(DmlError::new("INVALID_TYPE", "Upserting records of multiple types is not supported; send one sObject type per request", &[]));
                }
                let key = r.get(canonical).filter(|v| !v.is_null()).ok_or_else(|| DmlError::new("MISSING_ARGUMENT", format!("{canonical} not specified"), &[]))?;
                let found = st.objects[obj.slot()].find(canonical, key);
                if found.len() > 1 {
                    return Err(DmlError::new("DUPLICATE_EXTERNAL_ID", format!("{canonical}: more than one record found for external id field: {found:?}"), &[canonical]));
                }
                let existing = found.first().copied();
                s.validate(&mut st, obj, r, existing).map(|f| (obj, f, existing))
            })
            .collect();
        s.run_collection(&mut st, all_or_none, prepared, true)
    })
}

// ---------------------------------------------------------------- Bulk API 2.0 ingest

/// RFC 4180 CSV: quoted fields, doubled quotes, newlines inside quotes.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field in the CSV".into());
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    Ok(rows
        .into_iter()
        .filter(|r| !(r.len() == 1 && r[0].is_empty()))
        .collect())
}

fn csv_line(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(",")
}

fn job_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(status, json!([{"errorCode": code, "message": message}]))
}

impl Salesforce {
    fn job_json(&self, j: &BulkJob, version: &str) -> Value {
        let mut v = json!({
            "id": j.id, "operation": j.operation, "object": j.object.name(), "createdById": user_id(), "createdDate": sf_time(j.created_ms),
            "systemModstamp": sf_time(j.modified_ms), "state": j.state, "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": version.trim_start_matches('v').parse::<f64>().unwrap_or(66.0), "jobType": "V2Ingest", "lineEnding": j.line_ending,
            "columnDelimiter": "COMMA", "contentUrl": format!("services/data/{version}/jobs/ingest/{}/batches", j.id),
            "numberRecordsProcessed": j.successes.len() + j.failures.len(), "numberRecordsFailed": j.failures.len(), "retries": 0,
            "totalProcessingTime": 0, "apiActiveProcessingTime": 0, "apexProcessingTime": 0,
        });
        if let Some(e) = &j.external_id {
            v["externalIdFieldName"] = json!(e);
        }
        if let Some(e) = &j.error_message {
            v["errorMessage"] = json!(e);
        }
        v
    }

    /// Applies every row of a job; each row succeeds or fails on its own.
    fn process_job(&self, id: &str) {
        let mut st = self.state.lock().expect("salesforce state");
        let Some(mut job) = st.jobs.get(id).cloned() else {
            return;
        };
        let rows = match parse_csv(&job.data) {
            Ok(r) => r,
            Err(e) => {
                job.state = "Failed";
                job.error_message = Some(format!("InvalidBatch : {e}"));
                st.jobs.insert(id.to_string(), job);
                return;
            }
        };
        let Some((header, data)) = rows.split_first() else {
            job.state = "Failed";
            job.error_message = Some("InvalidBatch : no data was uploaded".into());
            st.jobs.insert(id.to_string(), job);
            return;
        };
        job.header = header.clone();
        let obj = job.object;
        let now = self.now();
        for row in data {
            let mut input = serde_json::Map::new();
            for (h, v) in header.iter().zip(row) {
                if v.is_empty() {
                    continue;
                }
                let value = if v == "#N/A" {
                    Value::Null
                } else {
                    match obj.field(h).map(|d| d.1) {
                        Some(FieldType::Currency | FieldType::Int) => v
                            .parse::<f64>()
                            .map(|n| json!(n))
                            .unwrap_or_else(|_| json!(v)),
                        Some(FieldType::Boolean) => json!(v.eq_ignore_ascii_case("true")),
                        _ => json!(v),
                    }
                };
                input.insert(h.clone(), value);
            }
            let id_col = input.get("Id").and_then(Value::as_str).map(str::to_string);
            let outcome: Result<(u64, bool), DmlError> = match job.operation.as_str() {
                "insert" => self
                    .validate(&mut st, obj, &input, None)
                    .map(|f| (self.apply(&mut st, obj, f, None), true)),
                "update" | "delete" => match id_col.as_deref().map(|i| self.live(&st, obj, i)) {
                    None => Err(DmlError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified",
                        &["Id"],
                    )),
                    Some(Err(e)) => Err(e),
                    Some(Ok(i)) if job.operation == "delete" => {
                        st.objects[obj.slot()].delete(i, now);
                        Ok((i, false))
                    }
                    Some(Ok(i)) => {
                        let mut rest = input.clone();
                        rest.remove("Id");
                        self.validate(&mut st, obj, &rest, Some(i))
                            .map(|f| (self.apply(&mut st, obj, f, Some(i)), false))
                    }
                },
                _ => {
                    let key = job.external_id.clone().unwrap_or_default();
                    match input.get(&key).filter(|v| !v.is_null()).cloned() {
                        None => Err(DmlError::new(
                            "MISSING_ARGUMENT",
                            format!("{key} not specified"),
                            &[],
                        )),
                        Some(k) => {
                            let found = st.objects[obj.slot()].find(&key, &k);
                            if found.len() > 1 {
                                Err(DmlError::new(
                                    "DUPLICATE_EXTERNAL_ID",
                                    format!(
                                        "{key}: more than one record found for external id field"
                                    ),
                                    &[],
                                ))
                            } else {
                                let existing = found.first().copied();
                                self.validate(&mut st, obj, &input, existing).map(|f| {
                                    (self.apply(&mut st, obj, f, existing), existing.is_none())
                                })
                            }
                        }
                    }
                }
            };
            match outcome {
                Ok((i, created)) => job.successes.push((sf_id(obj, i), created, row.clone())),
                Err(e) => job.failures.push((
                    id_col.unwrap_or_default(),
                    format!("{}:{}:{} --", e.code, e.message, e.fields.join(",")),
                    row.clone(),
                )),
            }
        }
        job.state = "JobComplete";
        job.modified_ms = self.now();
        st.jobs.insert(id.to_string(), job);
    }
}

async fn jobs(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(v): Path<String>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.guarded(&headers, &ctx, || {
        if method == http::Method::GET {
            let st = s.state.lock().expect("salesforce state");
            let records: Vec<Value> = st.jobs.values().map(|j| s.job_json(j, &v)).collect();
            return json_response(
                StatusCode::OK,
                json!({"done": true, "records": records, "nextRecordsUrl": null}),
            );
        }
        let req = match parse_json_body(&body) {
            Ok(v) => v,
            Err(m) => return job_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", &m),
        };
        let Some(obj) = req
            .get("object")
            .and_then(Value::as_str)
            .and_then(SObject::parse)
        else {
            return job_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                &format!(
                    "Entity '{}' is not supported by the Bulk API.",
                    req.get("object").and_then(Value::as_str).unwrap_or("")
                ),
            );
        };
        let operation = req
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !matches!(
            operation.as_str(),
            "insert" | "update" | "upsert" | "delete"
        ) {
            return job_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                &format!("operation must be insert, update, upsert or delete, got {operation:?}"),
            );
        }
        let external_id = req
            .get("externalIdFieldName")
            .and_then(Value::as_str)
            .map(str::to_string);
        if operation == "upsert"
            && !external_id
                .as_deref()
                .is_some_and(|e| obj.is_external_id(e))
        {
            return job_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                "upsert jobs need externalIdFieldName naming an external ID field",
            );
        }
        if req
            .get("contentType")
            .and_then(Value::as_str)
            .is_some_and(|c| c != "CSV")
        {
            return job_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                "contentType must be CSV",
            );
        }
        let mut st = s.state.lock().expect("salesforce state");
        let n = st.next_job;
        st.next_job += 1;
        let id = with_checksum(&format!("750Hs0{:09}", n));
        let now = s.now();
        let job = BulkJob {
            id: id.clone(),
            object: obj,
            operation,
            external_id: external_id.and_then(|e| obj.field(&e).map(|d| d.0.to_string())),
            line_ending: req
                .get("lineEnding")
                .and_then(Value::as_str)
                .unwrap_or("LF")
                .to_string(),
            state: "Open",
            created_ms: now,
            modified_ms: now,
            data: String::new(),
            header: Vec::new(),
            successes: Vec::new(),
            failures: Vec::new(),
            unprocessed: Vec::new(),
            error_message: None,
        };
        let body = s.job_json(&job, &v);
        st.jobs.insert(id, job);
        json_response(StatusCode::OK, body)
    })
}

async fn job(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((v, id)): Path<(String, String)>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s2 = Arc::clone(&s);
    s.guarded(&headers, &ctx, || {
        let mut st = s.state.lock().expect("salesforce state");
        let Some(job) = st.jobs.get_mut(&id) else {
            return job_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist",
            );
        };
        match method {
            http::Method::GET => json_response(StatusCode::OK, s.job_json(job, &v)),
            http::Method::DELETE => {
                if matches!(job.state, "Open" | "InProgress") {
                    return job_error(
                        StatusCode::BAD_REQUEST,
                        "INVALIDJOBSTATE",
                        &format!(
                            "a job in state {} cannot be deleted; close or abort it first",
                            job.state
                        ),
                    );
                }
                st.jobs.remove(&id);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => {
                let wanted = parse_json_body(&body)
                    .ok()
                    .and_then(|b| b.get("state").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                match (job.state, wanted.as_str()) {
                    ("Open", "UploadComplete") => {
                        job.state = "UploadComplete";
                        job.modified_ms = s.now();
                        let body = s.job_json(job, &v);
                        let id = id.clone();
                        let s3 = Arc::clone(&s2);
                        // Processing starts after the close, as on the platform.
                        tokio::spawn(async move {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            if let Some(j) =
                                s3.state.lock().expect("salesforce state").jobs.get_mut(&id)
                            {
                                j.state = "InProgress";
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            s3.process_job(&id);
                        });
                        json_response(StatusCode::OK, body)
                    }
                    ("Open" | "UploadComplete", "Aborted") => {
                        job.state = "Aborted";
                        job.unprocessed = parse_csv(&job.data)
                            .unwrap_or_default()
                            .into_iter()
                            .skip(1)
                            .collect();
                        job.header = parse_csv(&job.data)
                            .ok()
                            .and_then(|r| r.first().cloned())
                            .unwrap_or_default();
                        json_response(StatusCode::OK, s.job_json(job, &v))
                    }
                    (from, to) => job_error(
                        StatusCode::BAD_REQUEST,
                        "INVALIDJOBSTATE",
                        &format!("a job cannot move from {from} to {to:?}"),
                    ),
                }
            }
        }
    })
}

async fn job_upload(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((_v, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.guarded(&headers, &ctx, || {
        if !header_str(&headers, "content-type").is_some_and(|c| c.starts_with("text/csv")) {
            return job_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                "upload the data with Content-Type: text/csv",
            );
        }
        let mut st = s.state.lock().expect("salesforce state");
        let Some(job) = st.jobs.get_mut(&id) else {
            return job_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist",
            );
        };
        if job.state != "Open" {
            return job_error(
                StatusCode::CONFLICT,
                "INVALIDJOBSTATE",
                &format!(
                    "data can only be uploaded while the job is Open; it is {}",
                    job.state
                ),
            );
        }
        let text = String::from_utf8_lossy(&body);
        if job.data.is_empty() {
            job.data = text.into_owned();
        } else {
            // Later uploads repeat the header row; keep only their data rows.
            job.data
                .push_str(text.split_once('\n').map(|(_, rest)| rest).unwrap_or(""));
        }
        StatusCode::CREATED.into_response()
    })
}

async fn job_results(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((_v, id, kind)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    s.guarded(&headers, &ctx, || {
        let st = s.state.lock().expect("salesforce state");
        let Some(job) = st.jobs.get(&id) else {
            return job_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist",
            );
        };
        let csv = match kind.as_str() {
            "successfulResults" => {
                let mut lines = vec![csv_line(
                    &[
                        vec!["sf__Id".to_string(), "sf__Created".to_string()],
                        job.header.clone(),
                    ]
                    .concat(),
                )];
                lines.extend(job.successes.iter().map(|(id, created, row)| {
                    csv_line(&[vec![id.clone(), created.to_string()], row.clone()].concat())
                }));
                lines
            }
            "failedResults" => {
                let mut lines = vec![csv_line(
                    &[
                        vec!["sf__Id".to_string(), "sf__Error".to_string()],
                        job.header.clone(),
                    ]
                    .concat(),
                )];
                lines.extend(job.failures.iter().map(|(id, err, row)| {
                    csv_line(&[vec![id.clone(), err.clone()], row.clone()].concat())
                }));
                lines
            }
            "unprocessedrecords" => {
                let mut lines = vec![csv_line(&job.header)];
                lines.extend(job.unprocessed.iter().map(|r| csv_line(r)));
                lines
            }
            _ => {
                return job_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource does not exist",
                );
            }
        };
        let mut r = (StatusCode::OK, csv.join("\n") + "\n").into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
        r
    })
}

// ---------------------------------------------------------------- Bulk API 2.0 query

/// Rows per results page when the client gives no `maxRecords`.
const DEFAULT_RESULT_ROWS: u64 = 50_000;

impl Salesforce {
    fn query_job_json(&self, j: &QueryJob, version: &str) -> Value {
        json!({
            "id": j.id, "operation": j.operation, "object": j.object.name(), "createdById": user_id(), "createdDate": sf_time(j.created_ms),
            "systemModstamp": sf_time(j.modified_ms), "state": j.state, "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": version.trim_start_matches('v').parse::<f64>().unwrap_or(66.0), "jobType": "V2Query", "lineEnding": "LF",
            "columnDelimiter": "COMMA", "numberRecordsProcessed": if j.state == "JobComplete" { j.total } else { 0 }, "retries": 0, "totalProcessingTime": 0,
        })
    }
}

async fn query_jobs(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path(v): Path<String>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s2 = Arc::clone(&s);
    s.guarded(&headers, &ctx, || {
        if method == http::Method::GET {
            let st = s.state.lock().expect("salesforce state");
            let records: Vec<Value> = st
                .query_jobs
                .values()
                .map(|j| s.query_job_json(j, &v))
                .collect();
            return json_response(
                StatusCode::OK,
                json!({"done": true, "records": records, "nextRecordsUrl": null}),
            );
        }
        let req = match parse_json_body(&body) {
            Ok(v) => v,
            Err(m) => return job_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", &m),
        };
        let operation = req
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("query")
            .to_string();
        if !matches!(operation.as_str(), "query" | "queryAll") {
            return job_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOB",
                "operation must be query or queryAll",
            );
        }
        let Some(text) = req.get("query").and_then(Value::as_str) else {
            return job_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "query is required");
        };
        let mut st = s.state.lock().expect("salesforce state");
        let (cursor, total) = match s.plan(&st, text, operation == "queryAll", u64::MAX) {
            Err(r) => return r,
            Ok(Planned::Count(_)) => {
                return job_error(
                    StatusCode::BAD_REQUEST,
                    "INVALIDJOB",
                    "COUNT() queries are not supported by Bulk API 2.0 query jobs",
                );
            }
            Ok(Planned::Rows(c, t)) => (*c, t),
        };
        let n = st.next_job;
        st.next_job += 1;
        let id = with_checksum(&format!("750Hs1{n:09}"));
        let now = s.now();
        let job = QueryJob {
            id: id.clone(),
            operation,
            object: cursor.obj,
            state: "UploadComplete",
            created_ms: now,
            modified_ms: now,
            total,
            fields: cursor.query.fields.clone(),
            start: cursor,
            locators: HashMap::new(),
        };
        let body = s.query_job_json(&job, &v);
        st.query_jobs.insert(id.clone(), job);
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if let Some(j) = s2
                .state
                .lock()
                .expect("salesforce state")
                .query_jobs
                .get_mut(&id)
            {
                j.state = "InProgress";
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let now = s2.now();
            if let Some(j) = s2
                .state
                .lock()
                .expect("salesforce state")
                .query_jobs
                .get_mut(&id)
                .filter(|j| j.state == "InProgress")
            {
                j.state = "JobComplete";
                j.modified_ms = now;
            }
        });
        json_response(StatusCode::OK, body)
    })
}

async fn query_job(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((v, id)): Path<(String, String)>,
    method: http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.guarded(&headers, &ctx, || {
        let mut st = s.state.lock().expect("salesforce state");
        let Some(job) = st.query_jobs.get_mut(&id) else {
            return job_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist",
            );
        };
        match method {
            http::Method::GET => json_response(StatusCode::OK, s.query_job_json(job, &v)),
            http::Method::DELETE => {
                st.query_jobs.remove(&id);
                StatusCode::NO_CONTENT.into_response()
            }
            _ => {
                let wanted = parse_json_body(&body)
                    .ok()
                    .and_then(|b| b.get("state").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                if wanted != "Aborted" || matches!(job.state, "JobComplete" | "Aborted" | "Failed")
                {
                    return job_error(
                        StatusCode::BAD_REQUEST,
                        "INVALIDJOBSTATE",
                        &format!(
                            "a query job in state {} cannot move to {wanted:?}",
                            job.state
                        ),
                    );
                }
                job.state = "Aborted";
                json_response(StatusCode::OK, s.query_job_json(job, &v))
            }
        }
    })
}

/// `GET /jobs/query/{id}/results?maxRecords=&locator=`: CSV pages chained by `Sforce-Locator`.
async fn query_job_results(
    State(s): State<Arc<Salesforce>>,
    Extension(ctx): Extension<RequestCtx>,
    Path((_v, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    s.guarded(&headers, &ctx, || {
        let p = query_params(q.as_deref());
        let max = p
            .get("maxRecords")
            .and_then(|m| m.parse::<u64>().ok())
            .filter(|m| *m > 0)
            .unwrap_or(DEFAULT_RESULT_ROWS);
        let mut st = s.state.lock().expect("salesforce state");
        let Some(job) = st.query_jobs.get(&id).cloned() else {
            return job_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "The requested resource does not exist",
            );
        };
        if job.state != "JobComplete" {
            return job_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOBSTATE",
                &format!(
                    "results are available once the job is JobComplete; it is {}",
                    job.state
                ),
            );
        }
        let mut cursor = match p.get("locator") {
            None => job.start.clone(),
            Some(l) => match job.locators.get(l) {
                Some(c) => c.clone(),
                None => {
                    return job_error(
                        StatusCode::BAD_REQUEST,
                        "INVALIDLOCATOR",
                        "the locator is not one this job issued",
                    );
                }
            },
        };
        let want = max.min(cursor.remaining.unwrap_or(u64::MAX)) as usize;
        let rows = s.take(&st, &mut cursor, want);
        if let Some(r) = cursor.remaining.as_mut() {
            *r -= rows.len() as u64;
        }
        let more = cursor.remaining != Some(0) && rows.len() == want && s.has_more(&st, &cursor);
        let obj = job.object;
        let mut csv = vec![csv_line(&job.fields)];
        for (i, deleted) in &rows {
            let rec = if *deleted {
                st.objects[obj.slot()]
                    .tombstones()
                    .find(|(x, _)| x == i)
                    .map(|(_, t)| t.last.clone())
            } else {
                st.objects[obj.slot()].get(*i)
            };
            let Some(rec) = rec else { continue };
            let cells: Vec<String> = job
                .fields
                .iter()
                .map(|f| match s.value(&st, obj, *i, &rec, *deleted, f) {
                    Value::Null => String::new(),
                    Value::String(x) => x,
                    other => other.to_string(),
                })
                .collect();
            csv.push(csv_line(&cells));
        }
        let next = more.then(|| {
            let l = URL_SAFE_NO_PAD.encode(s.hub.tokens.random_hex(6));
            if let Some(j) = st.query_jobs.get_mut(&id) {
                j.locators.insert(l.clone(), cursor);
            }
            l
        });
        let mut r = (StatusCode::OK, csv.join("\n") + "\n").into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
        set_header(&mut r, "Sforce-NumberOfRecords", rows.len());
        set_header(
            &mut r,
            "Sforce-Locator",
            next.unwrap_or_else(|| "null".into()),
        );
        r
    })
}

// ---------------------------------------------------------------- emulator

impl Emulator for Salesforce {
    fn vendor(&self) -> Vendor {
        Vendor::Salesforce
    }

    fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(
                "/services/oauth2/authorize",
                get(authorize_page).post(authorize_decision),
            )
            .route("/services/oauth2/token", post(token))
            .route("/services/oauth2/revoke", post(revoke))
            .route("/id/{org}/{user}", get(identity))
            .route("/services/data", get(versions))
            .route("/services/data/{v}", get(resources))
            .route("/services/data/{v}/limits", get(limits))
            .route("/services/data/{v}/query", get(query))
            .route("/services/data/{v}/queryAll", get(query_all))
            .route("/services/data/{v}/query/{locator}", get(query_more))
            .route("/services/data/{v}/queryAll/{locator}", get(query_more))
            .route("/services/data/{v}/sobjects", get(describe_global))
            .route(
                "/services/data/{v}/sobjects/{name}",
                get(sobject_root).post(sobject_root),
            )
            .route(
                "/services/data/{v}/sobjects/{name}/{id}",
                get(sobject_record)
                    .patch(sobject_record)
                    .delete(sobject_record),
            )
            .route(
                "/services/data/{v}/sobjects/{name}/{field}/{value}",
                get(by_external_id).patch(by_external_id),
            )
            .route(
                "/services/data/{v}/composite/sobjects",
                post(collections).patch(collections).delete(collections),
            )
            .route(
                "/services/data/{v}/composite/sobjects/{name}/{field}",
                get(collection_upsert).patch(collection_upsert),
            )
            .route(
                "/services/data/{v}/composite/sobjects/{name}",
                get(collection_get),
            )
            .route(
                "/services/data/{v}/jobs/query",
                get(query_jobs).post(query_jobs),
            )
            .route(
                "/services/data/{v}/jobs/query/{id}",
                get(query_job).patch(query_job).delete(query_job),
            )
            .route(
                "/services/data/{v}/jobs/query/{id}/results",
                get(query_job_results),
            )
            .route("/services/data/{v}/jobs/ingest", get(jobs).post(jobs))
            .route(
                "/services/data/{v}/jobs/ingest/{id}",
                get(job).patch(job).delete(job),
            )
            .route(
                "/services/data/{v}/jobs/ingest/{id}/batches",
                put(job_upload),
            )
            .route(
                "/services/data/{v}/jobs/ingest/{id}/{kind}",
                get(job_results),
            )
            .fallback(|| async { not_found() })
            .with_state(self)
    }

    fn reset(&self, data: DemoData) {
        let demo = Demo::from(data);
        *self.state.lock().expect("salesforce state") = SalesforceState {
            demo,
            objects: build_collections(demo),
            cursors: HashMap::new(),
            api_calls: VecDeque::new(),
            jobs: BTreeMap::new(),
            query_jobs: BTreeMap::new(),
            next_job: 1,
        };
    }

    fn snapshot(&self) -> Value {
        let st = self.state.lock().expect("salesforce state");
        let objects: serde_json::Map<String, Value> = SObject::ALL
            .iter()
            .map(|o| (o.name().to_string(), json!({"records": st.objects[o.slot()].len(), "deleted": st.objects[o.slot()].tombstones().count()})))
            .collect();
        json!({
            "vendor": "salesforce", "seed": st.demo.seed, "objects": objects, "open_query_cursors": st.cursors.len(),
            "api_requests_24h": st.api_calls.len(), "api_request_limit": self.limits.daily_api_requests,
            "live_sessions": self.hub.tokens.live_access_count(Vendor::Salesforce, self.now()),
        })
    }

    fn record(&self, object: &str, id: &str) -> Option<Value> {
        let obj = SObject::parse(object)?;
        let st = self.state.lock().expect("salesforce state");
        let (o, i) = parse_sf_id(id)?;
        if o != obj {
            return None;
        }
        let rec = st.objects[obj.slot()].get(i)?;
        Some(self.render(
            &st,
            obj,
            i,
            &rec,
            false,
            None,
            &format!("v{LATEST_VERSION}"),
        ))
    }

    fn throttled(&self) -> Response {
        self.limit_exceeded()
    }

    fn server_error(&self) -> Response {
        sf_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server is temporarily unavailable; retry later",
            None,
        )
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            client_id: CONSUMER_KEY.into(),
            client_secret: CONSUMER_SECRET.into(),
            refresh_token: None,
            api_token: None,
            username: USERNAME.into(),
            extra: [
                (
                    "token_url".to_string(),
                    format!("{}/services/oauth2/token", self.base()),
                ),
                (
                    "authorize_url".to_string(),
                    format!("{}/services/oauth2/authorize", self.base()),
                ),
                (
                    "jwt_audience".to_string(),
                    "https://login.salesforce.com".to_string(),
                ),
                (
                    "jwt_private_key_pem".to_string(),
                    DEMO_PRIVATE_KEY_PEM.to_string(),
                ),
                (
                    "jwt_certificate_pem".to_string(),
                    DEMO_CERTIFICATE_PEM.to_string(),
                ),
                ("api_version".to_string(), format!("v{LATEST_VERSION}")),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn base_url(&self) -> &OnceLock<String> {
        &self.base
    }

    /// Salesforce paths work with or without a trailing slash (`/sobjects/Lead/`).
    fn rewrite_path(&self, path: &str) -> Option<String> {
        (path.len() > 1)
            .then(|| path.strip_suffix('/'))
            .flatten()
            .map(str::to_string)
    }
}

async fn collection_get(
    s: State<Arc<Salesforce>>,
    ctx: Extension<RequestCtx>,
    Path((v, name)): Path<(String, String)>,
    method: http::Method,
    q: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    collection_upsert(
        s,
        ctx,
        Path((v, name, "Id".to_string())),
        method,
        q,
        headers,
        body,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_18_characters_with_a_valid_checksum_and_round_trip() {
        // A well-known real ID and its 18-character form.
        assert_eq!(with_checksum("001D000000IRFma"), "001D000000IRFmaIAH");
        let id = sf_id(SObject::Contact, 123_456);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("003"));
        assert_eq!(parse_sf_id(&id), Some((SObject::Contact, 123_456)));
        assert_eq!(parse_sf_id(&id[..15]), Some((SObject::Contact, 123_456)));
        let mut bad = id.clone();
        bad.replace_range(15..18, "AAA");
        assert_eq!(parse_sf_id(&bad), None);
    }
}
