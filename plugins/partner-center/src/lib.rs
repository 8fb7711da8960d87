//! `partner-center`: Microsoft Partner Center co-sell referrals (`/v1.0/engagements/referrals`
//! on `https://api.partner.microsoft.com`) and Partner Center webhooks.
//!
//! **Reads** the stream `referrals` with `$top=N` and follows `@odata.nextLink` (its
//! `$skiptoken`) unchanged; `@odata.count` is passed on as the total. Incremental reads filter
//! `updatedDateTime gt <cursor>` ordered by `updatedDateTime`, and the cursor keeps the newest
//! `updatedDateTime` seen (one-second resolution: a change in the same second as the newest
//! one read waits for the referral's next change). Listing needs an App+User token, so the
//! connection authenticates with a delegated refresh token (`oauth2-refresh`). The read option
//! `id` reads that one referral (`GET /{id}`; an unknown id is a 404, a record-level failure),
//! which is how a `for_each` over webhook events fetches what each event points at.
//!
//! **Writes**: create is `POST` of the referral; update is `PATCH /{id}` with a JSON Patch of
//! `add` operations, one per leaf field of the record (nested objects are merged, arrays
//! replaced), sent with `If-Match`: the record's `eTag` if it carries one (a referral changed
//! since it was read then fails with 412), otherwise the current one, read first. Upsert
//! matches on `id` or on one field named as the key (e.g. `externalReferenceId`, found with
//! `$filter`). Invalid referrals and refused status transitions fail only their record.
//!
//! **Webhooks** (on `https://api.partnercenter.microsoft.com`): `subscribe` registers the
//! callback for referral-created, referral-updated, related-referral-created and
//! related-referral-updated (or the events given), replacing any existing registration, since
//! Partner Center keeps one URL per event; `unsubscribe` deletes it. Deliveries carry only a
//! pointer (`ResourceUri`), signed RSA-SHA256 over the body (`Authorization: Signature …`) with
//! the certificate at `X-MS-Certificate-Url`. `verify` accepts the certificate only from
//! `certificate_url_prefix` (Microsoft's storage account by default), checks that its subject
//! is `O=Microsoft Corporation`, that it is valid now and, when `trusted_ca_pem` is set, that
//! this CA issued it; then it checks the body's signature with the certificate's key (pure Rust
//! RSA, `src/signature.rs`). Each event carries the referral's id, the `ResourceUri` and the
//! referrals API URL to fetch it from.
//!
//! Config: `api_url` (default `https://api.partner.microsoft.com`), `webhooks_url` (default
//! `https://api.partnercenter.microsoft.com`), `certificate_url_prefix` (default
//! `https://3psostorageacct.blob.core.windows.net/cert/`), `trusted_ca_pem` (optional),
//! `tenant_id` (for the default token URL).

pub mod signature;

use serde::{Deserialize, Serialize};
use weft_sdk::serde_json::Map;
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, Error, Event, InboundRequest, Page,
    ReadRequest, Record, Result, Stream, Subscription, SyncMode, Value, Verification, WriteMode,
    WriteOutcome, WriteRequest, authorization_header, json,
};

use signature::Certificate;

const DEFAULT_API: &str = "https://api.partner.microsoft.com";
const DEFAULT_WEBHOOKS: &str = "https://api.partnercenter.microsoft.com";
const DEFAULT_CERTIFICATES: &str = "https://3psostorageacct.blob.core.windows.net/cert/";
const DEFAULT_PAGE_SIZE: u32 = 100;
const EVENTS: [&str; 4] = [
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
];
/// Fields Partner Center sets itself; a JSON Patch must not touch them.
const READ_ONLY: [&str; 11] = [
    "id",
    "eTag",
    "createdDateTime",
    "updatedDateTime",
    "direction",
    "organizationId",
    "organizationName",
    "links",
    "acceptedDateTime",
    "closedDateTime",
    "expirationDateTime",
];

#[derive(Deserialize)]
struct Config {
    #[serde(default = "default_api")]
    api_url: String,
    #[serde(default = "default_webhooks")]
    webhooks_url: String,
    #[serde(default = "default_certificates")]
    certificate_url_prefix: String,
    #[serde(default)]
    trusted_ca_pem: Option<String>,
}

fn default_api() -> String {
    DEFAULT_API.into()
}
fn default_webhooks() -> String {
    DEFAULT_WEBHOOKS.into()
}
fn default_certificates() -> String {
    DEFAULT_CERTIFICATES.into()
}

impl Config {
    fn of(conn: &Connection) -> Result<Config> {
        let mut c: Config = conn.config_as()?;
        c.api_url = c.api_url.trim_end_matches('/').to_owned();
        c.webhooks_url = c.webhooks_url.trim_end_matches('/').to_owned();
        Ok(c)
    }

    fn referrals(&self) -> String {
        format!("{}/v1.0/engagements/referrals", self.api_url)
    }

    fn registration(&self) -> String {
        format!("{}/webhooks/v1/registration", self.webhooks_url)
    }
}

/// Partner Center's `{"code", "description"}` errors, readable.
fn message(body: &[u8]) -> String {
    weft_sdk::serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            Some(format!(
                "{}: {}",
                v.get("code")?.as_str()?,
                v.get("description")?.as_str()?
            ))
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned())
}

/// A whole-call failure (auth, throttling, outage) or, for a single record, why it failed.
fn failure(resp: &weft_sdk::http::Response) -> Error {
    match resp.status {
        401 => Error::auth(format!(
            "Partner Center refused the credential: {}",
            message(&resp.body)
        )),
        403 => Error::auth(format!(
            "Partner Center refused the request (listing needs an App+User token of a Referrals Admin or User): {}",
            message(&resp.body)
        )),
        429 => Error::rate_limited(resp.retry_after(), message(&resp.body)),
        400 | 404 | 409 | 412 | 422 => Error::invalid_record(message(&resp.body)),
        _ => Error::upstream(resp.status, &resp.body),
    }
}

/// Whether a record-level failure should fail the whole call instead (nothing the record did).
fn whole_call(e: &Error) -> bool {
    matches!(
        e,
        Error::Auth(_)
            | Error::RateLimited { .. }
            | Error::Unavailable(_)
            | Error::Timeout(_)
            | Error::Denied(_)
    ) || matches!(e, Error::Upstream { status, .. } if *status >= 500)
}

fn send(req: weft_sdk::http::RequestBuilder<'_>) -> Result<weft_sdk::http::Response> {
    let resp = req.header("Accept", "application/json").send()?;
    if resp.is_success() {
        Ok(resp)
    } else {
        Err(failure(&resp))
    }
}

fn referral_schema() -> Value {
    let s = |t: &str| json!({"type": [t, "null"]});
    json!({
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"}, "engagementId": s("string"), "name": s("string"), "externalReferenceId": s("string"),
            "organizationId": s("string"), "organizationName": s("string"),
            "createdDateTime": {"type": "string", "format": "date-time"}, "updatedDateTime": {"type": "string", "format": "date-time"},
            "expirationDateTime": s("string"), "acceptedDateTime": s("string"), "closedDateTime": s("string"),
            "eTag": {"type": "string"},
            "status": {"enum": ["None", "New", "Active", "Closed"]},
            "substatus": {"enum": ["None", "Pending", "Received", "Accepted", "Won", "Lost", "Declined", "Expired"]},
            "statusReason": s("string"),
            "type": {"enum": ["Independent", "Shared"]},
            "qualification": s("string"), "direction": {"enum": ["Incoming", "Outgoing"]},
            "customerProfile": {"type": "object", "properties": {
                "name": s("string"), "size": s("string"), "isMatchingComplete": s("boolean"),
                "address": {"type": "object", "properties": {"addressLine1": s("string"), "addressLine2": s("string"), "city": s("string"), "state": s("string"), "postalCode": s("string"), "country": s("string"), "region": s("string")}},
                "team": {"type": "array"}, "ids": {"type": "array"}
            }},
            "consent": {"type": "object", "properties": {"consentToToShareInfoWithOthers": s("boolean"), "consentToContact": s("boolean"), "consentToShareReferralWithMicrosoftSellers": s("boolean")}},
            "details": {"type": "object", "properties": {"notes": s("string"), "dealValue": {"type": ["number", "string", "null"]}, "currency": s("string"), "closingDateTime": s("string"), "requirements": {"type": "object"}}},
            "team": {"type": "array"}, "inviteContext": {"type": "object"}, "target": {"type": "array"}, "links": {"type": "object"}
        }
    })
}

/// Where a `referrals` read resumes.
#[derive(Serialize, Deserialize, Default)]
struct Resume {
    /// The next page's link within a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// Incremental: the pass reads referrals updated after this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// The newest `updatedDateTime` seen in this pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest: Option<String>,
}

fn is_instant(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
        && text.ends_with('Z')
}

/// A JSON Patch of `add` operations, one per leaf of `record`: objects are merged into the
/// referral, everything else (arrays included) replaces the value at its path.
fn patch(record: &Record) -> Vec<Value> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    walk(
                        &format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1")),
                        v,
                        out,
                    );
                }
            }
            other => out.push(json!({"op": "add", "path": prefix, "value": other})),
        }
    }
    let mut ops = Vec::new();
    for (k, v) in record {
        if !READ_ONLY.contains(&k.as_str()) {
            walk(
                &format!("/{}", k.replace('~', "~0").replace('/', "~1")),
                v,
                &mut ops,
            );
        }
    }
    ops
}

fn odata_literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => other.to_string(),
    }
}

pub struct PartnerCenter;

impl PartnerCenter {
    fn create(conn: &Connection, config: &Config, record: &Record) -> Result<WriteOutcome> {
        let mut body = record.clone();
        body.retain(|k, _| !READ_ONLY.contains(&k.as_str()));
        let resp = conn
            .post(&config.referrals())
            .header("Accept", "application/json")
            .json(&body)?
            .send()?;
        if !resp.is_success() {
            return Err(failure(&resp));
        }
        let created: Value = resp.json()?;
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::upstream(resp.status, b"the created referral has no id"))?;
        Ok(WriteOutcome::created(id))
    }

    fn update(
        conn: &Connection,
        config: &Config,
        id: &str,
        record: &Record,
    ) -> Result<WriteOutcome> {
        let url = format!(
            "{}/{}",
            config.referrals(),
            weft_sdk::http::percent_encode(id)
        );
        let etag = match record.get("eTag").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => {
                let current: Value = send(conn.get(&url))?.json()?;
                current
                    .get("eTag")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| Error::upstream(200, b"the referral has no eTag"))?
            }
        };
        let resp = conn
            .patch(&url)
            .header("Accept", "application/json")
            .header("If-Match", &etag)
            .header("Prefer", "return=representation")
            .json(&patch(record))?
            .send()?;
        match resp.status {
            200 | 204 => Ok(WriteOutcome::updated(id)),
            412 => Err(Error::invalid_record(format!(
                "referral {id} changed since it was read (its eTag no longer matches); read it again: {}",
                message(&resp.body)
            ))),
            _ => Err(failure(&resp)),
        }
    }

    /// The id of the referral whose `field` equals `value`, if one does.
    fn find(
        conn: &Connection,
        config: &Config,
        field: &str,
        value: &Value,
    ) -> Result<Option<String>> {
        let answer: Value = send(
            conn.get(&config.referrals())
                .query("$filter", format!("{field} eq {}", odata_literal(value)))
                .query("$top", 1),
        )?
        .json()?;
        Ok(answer
            .pointer("/value/0/id")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    fn write_one(
        conn: &Connection,
        config: &Config,
        mode: WriteMode,
        key: &[String],
        record: &Record,
    ) -> Result<WriteOutcome> {
        let id = record.get("id").and_then(Value::as_str).map(str::to_owned);
        match mode {
            WriteMode::Create => Self::create(conn, config, record),
            WriteMode::Update => Self::update(
                conn,
                config,
                &id.ok_or_else(|| Error::invalid_record("an update needs the referral's `id`"))?,
                record,
            ),
            WriteMode::Upsert => {
                let found = match key {
                    [] => id,
                    [k] if k == "id" => id,
                    [k] => match record.get(k).filter(|v| !v.is_null()) {
                        Some(v) => Self::find(conn, config, k, v)?,
                        None => {
                            return Err(Error::invalid_record(format!(
                                "the record has no value for its key `{k}`"
                            )));
                        }
                    },
                    _ => return Err(Error::config("referral upserts match on one field")),
                };
                match found {
                    Some(id) => Self::update(conn, config, &id, record),
                    None => Self::create(conn, config, record),
                }
            }
            WriteMode::Delete => Err(Error::invalid_record(
                "Partner Center does not delete referrals; close them (status Closed) instead",
            )),
        }
    }
}

/// Now as `YYYYMMDDHHMMSS`, UTC, to compare with certificate validity.
fn now_compact() -> String {
    // `YYYYMMDDhhmmss` from the SDK's RFC 3339 form of now.
    weft_sdk::time::format_rfc3339_ms(weft_sdk::time::now_ms())[..19]
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

impl Connector for PartnerCenter {
    fn describe() -> ConnectorInfo {
        let bearer = authorization_header("Bearer");
        ConnectorInfo::new("partner-center", env!("CARGO_PKG_VERSION"))
            .description("Microsoft Partner Center co-sell referrals: OData reads, JSON Patch updates with If-Match, RSA-signed webhook events.")
            .config_schema(json!({
                "type": "object",
                "properties": {
                    "api_url": {"type": "string", "format": "uri", "default": DEFAULT_API},
                    "webhooks_url": {"type": "string", "format": "uri", "default": DEFAULT_WEBHOOKS},
                    "certificate_url_prefix": {"type": "string", "default": DEFAULT_CERTIFICATES, "description": "webhook signing certificates are fetched only from URLs starting with this"},
                    "trusted_ca_pem": {"type": "string", "description": "PEM of a CA that must have issued the webhook signing certificate"},
                    "tenant_id": {"type": "string", "description": "Entra ID tenant, for the default token URL (resource https://api.partner.microsoft.com)"}
                }
            }))
            .stream(
                Stream::new("referrals", referral_schema())
                    .description("Co-sell referrals (leads and opportunities) shared with or by Microsoft.")
                    .incremental("updatedDateTime")
                    .writable(&[WriteMode::Create, WriteMode::Update, WriteMode::Upsert]),
            )
            .oauth(AuthKind::Oauth2Refresh, bearer, "https://login.microsoftonline.com/{tenant_id}/oauth2/token")
            // The configured endpoints are allowed as given; Microsoft's defaults are literals,
            // which a flow allows in the connection's egress.
            .host("{api_url?}")
            .host("{webhooks_url?}")
            .host("https://api.partner.microsoft.com")
            .host("https://api.partnercenter.microsoft.com")
            .host("https://login.microsoftonline.com")
            .host("https://3psostorageacct.blob.core.windows.net")
    }

    fn check(conn: &Connection) -> Result<()> {
        let config = Config::of(conn)?;
        send(conn.get(&config.referrals()).query("$top", 1))?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        if req.stream != "referrals" {
            return Err(Error::config(format!(
                "unknown stream `{}`; this connector offers referrals",
                req.stream
            )));
        }
        let config = Config::of(conn)?;
        // `options.id`: that one referral (a for-each over webhook events reads each by id).
        if let Some(id) = req.options.get("id").filter(|v| !v.is_null()) {
            let Some(id) = id.as_str().filter(|s| !s.is_empty()) else {
                return Err(Error::config(format!(
                    "read option `id` must be a referral id, got {id}"
                )));
            };
            let url = format!(
                "{}/{}",
                config.referrals(),
                weft_sdk::http::percent_encode(id)
            );
            let referral: Value = send(conn.get(&url))?.json()?;
            let records = match referral {
                Value::Object(m) => vec![m],
                _ => return Err(Error::upstream(200, b"the referral is not a JSON object")),
            };
            return Ok(Page::last::<()>(records, None));
        }
        let mut resume: Resume = req.cursor_state()?.unwrap_or_default();
        if req.mode == SyncMode::Full {
            resume.since = None;
        }
        if let Some(bad) = [&resume.since, &resume.newest]
            .into_iter()
            .flatten()
            .find(|s| !is_instant(s))
        {
            return Err(Error::config(format!(
                "the stored cursor's instant `{bad}` is not RFC 3339; reset the flow's cursor"
            )));
        }
        let request = match &resume.next {
            Some(link) if link.starts_with(&config.referrals()) => conn.get(link),
            Some(link) => {
                return Err(Error::config(format!(
                    "the stored cursor points at {link}, not at this connection's referrals; reset the flow's cursor"
                )));
            }
            None => {
                let first = conn.get(&config.referrals()).query(
                    "$top",
                    req.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 100),
                );
                match &resume.since {
                    Some(since) => first
                        .query("$filter", format!("updatedDateTime gt {since}"))
                        .query("$orderby", "updatedDateTime asc"),
                    None => first,
                }
            }
        };
        let mut answer: Value = send(request)?.json()?;
        let records: Vec<Record> = match answer.get_mut("value").map(Value::take) {
            Some(Value::Array(rows)) => rows
                .into_iter()
                .filter_map(|r| match r {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect(),
            _ => return Err(Error::upstream(200, b"the answer has no `value` array")),
        };
        for r in &records {
            if let Some(u) = r
                .get("updatedDateTime")
                .and_then(Value::as_str)
                .filter(|u| is_instant(u))
                && resume.newest.as_deref().is_none_or(|n| u > n)
            {
                resume.newest = Some(u.to_owned());
            }
        }
        let total = answer.get("@odata.count").and_then(Value::as_u64);
        let page = match answer.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => Page::more(
                records,
                &Resume {
                    next: Some(next.to_owned()),
                    ..resume
                },
            ),
            None => {
                let since = resume.newest.clone().or(resume.since.clone());
                Page::last(
                    records,
                    Some(&Resume {
                        next: None,
                        since,
                        newest: resume.newest,
                    }),
                )
            }
        };
        Ok(match total {
            Some(t) => page.with_total(t),
            None => page,
        })
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        let config = Config::of(conn)?;
        let mut outcomes = Vec::with_capacity(req.records.len());
        for record in &req.records {
            match Self::write_one(conn, &config, req.mode, &req.key, record) {
                Ok(o) => outcomes.push(o),
                // Throttling or an outage before anything was written: the host retries the call.
                Err(e) if whole_call(&e) && outcomes.is_empty() => return Err(e),
                Err(e) => outcomes.push(WriteOutcome::failed(e)),
            }
        }
        Ok(outcomes)
    }

    fn verify(conn: &Connection, req: InboundRequest) -> Result<Verification> {
        let config = Config::of(conn)?;
        let signature = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Signature "))
            .or_else(|| req.header("x-ms-signature"));
        let (Some(signature), Some(cert_url)) = (signature, req.header("x-ms-certificate-url"))
        else {
            return Ok(Verification::Rejected(
                "the delivery lacks its Signature or X-MS-Certificate-Url header".into(),
            ));
        };
        if !req
            .header("x-ms-signature-algorithm")
            .unwrap_or("rsa-sha256")
            .eq_ignore_ascii_case("rsa-sha256")
        {
            return Ok(Verification::Rejected(
                "the delivery is not signed with rsa-sha256".into(),
            ));
        }
        if !cert_url.starts_with(&config.certificate_url_prefix) || cert_url.contains("..") {
            return Ok(Verification::Rejected(format!(
                "the signing certificate {cert_url} is not under {}",
                config.certificate_url_prefix
            )));
        }
        let Some(signature) = signature::base64(signature.trim()) else {
            return Ok(Verification::Rejected("the signature is not base64".into()));
        };
        let cert_bytes = send(conn.get(cert_url))?.body;
        let cert = match Certificate::parse(&cert_bytes) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Verification::Rejected(format!(
                    "the signing certificate cannot be read: {e}"
                )));
            }
        };
        if !cert
            .organizations()
            .iter()
            .any(|o| o == "Microsoft Corporation")
        {
            return Ok(Verification::Rejected(
                "the signing certificate is not issued to O=Microsoft Corporation".into(),
            ));
        }
        if !cert.valid_at(&now_compact()) {
            return Ok(Verification::Rejected(
                "the signing certificate is not valid now".into(),
            ));
        }
        if let Some(pem) = &config.trusted_ca_pem {
            let ca = Certificate::parse(pem.as_bytes())
                .map_err(|e| Error::config(format!("trusted_ca_pem is not a certificate: {e}")))?;
            if !cert.issued_by(&ca) {
                return Ok(Verification::Rejected(
                    "the signing certificate was not issued by the trusted CA".into(),
                ));
            }
        }
        if !signature::verify(&cert.key, &req.body, &signature) {
            return Ok(Verification::Rejected(
                "the RSA-SHA256 signature does not match the body".into(),
            ));
        }
        let body: Value = weft_sdk::serde_json::from_slice(&req.body)
            .map_err(|e| Error::invalid_record(format!("the delivery is not JSON: {e}")))?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(event), Some(uri)) = (text("EventName"), text("ResourceUri")) else {
            return Ok(Verification::Rejected(
                "the delivery has no EventName or ResourceUri".into(),
            ));
        };
        let changed = text("ResourceChangeUtcDate");
        let id = uri
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned();
        let mut record = Map::new();
        record.insert("id".into(), json!(id));
        record.insert("resource_uri".into(), json!(uri));
        // The pointer names Partner Center's own path; the referrals API serves the referral.
        record.insert(
            "referral_url".into(),
            json!(format!("{}/{}", config.referrals(), id)),
        );
        record.insert("resource_name".into(), json!(text("ResourceName")));
        record.insert(
            "audit_uri".into(),
            body.get("AuditUri").cloned().unwrap_or(Value::Null),
        );
        record.insert("changed_at".into(), json!(changed));
        Ok(Verification::Accepted(vec![Event {
            id: format!("{event}:{id}:{}", changed.clone().unwrap_or_default()),
            stream: "referrals".into(),
            action: event,
            record,
            occurred_at: changed,
        }]))
    }

    fn subscribe(conn: &Connection, callback_url: &str, events: &[String]) -> Result<Subscription> {
        let config = Config::of(conn)?;
        let events: Vec<String> = if events.is_empty() {
            EVENTS.iter().map(|e| (*e).to_owned()).collect()
        } else {
            events.to_vec()
        };
        let body = json!({"WebhookUrl": callback_url, "WebhookEvents": events});
        // One URL per event: an existing registration is replaced, not added to.
        let existing = conn
            .get(&config.registration())
            .header("Accept", "application/json")
            .send()?;
        let resp = match existing.status {
            200 => send(conn.put(&config.registration()).json(&body)?)?,
            404 => send(conn.post(&config.registration()).json(&body)?)?,
            _ => return Err(failure(&existing)),
        };
        let registered: Value = resp.json()?;
        let id = registered
            .get("SubscriberId")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::upstream(resp.status, b"the registration has no SubscriberId"))?;
        Ok(Subscription {
            id: id.to_owned(),
            expires_at: None,
        })
    }

    fn unsubscribe(conn: &Connection, _subscription_id: &str) -> Result<()> {
        let config = Config::of(conn)?;
        let resp = conn.delete(&config.registration()).send()?;
        match resp.status {
            200..=299 | 404 => Ok(()),
            _ => Err(failure(&resp)),
        }
    }
}

weft_sdk::export_connector!(PartnerCenter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_merge_objects_and_skip_read_only_fields() {
        let record = json!({"id": "x", "eTag": "e", "status": "Active", "details": {"dealValue": 10, "currency": "USD"}, "team": [{"email": "a@x"}]});
        let ops = patch(record.as_object().unwrap());
        assert_eq!(ops.len(), 4);
        assert!(ops.contains(&json!({"op": "add", "path": "/details/dealValue", "value": 10})));
        assert!(ops.contains(&json!({"op": "add", "path": "/team", "value": [{"email": "a@x"}]})));
        assert!(
            !ops.iter()
                .any(|o| o["path"] == "/id" || o["path"] == "/eTag")
        );
    }
}
