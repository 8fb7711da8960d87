use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::connector::exports::weft::plugin::connector_api as api;
use crate::http::{Method, RequestBuilder};
use crate::{Error, Record, RecordsJson, Result, decode_batch, encode_batch};

pub use crate::bindings::connector::weft::plugin::types::{SyncMode, WriteMode};
use crate::bindings::connector::weft::plugin::webhook_keys as keys;
pub use crate::bindings::connector::weft::plugin::webhook_keys::MacAlgorithm;
pub use api::{
    AuthKind, AuthMethod, CredentialPlacement, HeaderTemplate, InboundRequest, Reply, Subscription,
    WriteStatus,
};

/// A connector plugin: one API seen as streams.
///
/// Only [`describe`](Connector::describe), [`check`](Connector::check) and
/// [`read`](Connector::read) are required; a connector without writable streams or webhooks
/// keeps the defaults, which answer with a clear error.
pub trait Connector {
    /// What the connector offers. Called once when the host loads the plugin.
    fn describe() -> ConnectorInfo;

    /// Tests the connection: credentials accepted, upstream reachable.
    fn check(conn: &Connection) -> Result<()>;

    /// One page of a stream. Return [`Page::last`] when there is nothing more; the host loops
    /// until then and stores the cursor between runs.
    fn read(conn: &Connection, req: ReadRequest) -> Result<Page>;

    /// A batch of records; one [`WriteOutcome`] per record, in order.
    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        let _ = conn;
        Err(Error::config(format!(
            "stream `{}` is read-only in this connector",
            req.stream
        )))
    }

    /// Authenticates an inbound webhook request and turns it into events.
    fn verify(conn: &Connection, req: InboundRequest) -> Result<Verification> {
        let _ = (conn, req);
        Ok(Verification::Rejected(
            "this connector does not accept webhooks".into(),
        ))
    }

    /// Registers `callback_url` with the vendor for `events`.
    fn subscribe(conn: &Connection, callback_url: &str, events: &[String]) -> Result<Subscription> {
        let _ = (conn, callback_url, events);
        Err(Error::config("this connector cannot subscribe to webhooks"))
    }

    /// Removes a registration made by [`subscribe`](Connector::subscribe).
    fn unsubscribe(conn: &Connection, subscription_id: &str) -> Result<()> {
        let _ = (conn, subscription_id);
        Err(Error::config("this connector cannot subscribe to webhooks"))
    }
}

/// What [`Connector::describe`] returns.
#[derive(Debug, Clone)]
pub struct ConnectorInfo {
    /// The connector's name, e.g. `zendesk`.
    pub name: String,
    /// The plugin's version; `env!("CARGO_PKG_VERSION")` keeps it in step with the crate.
    pub version: String,
    /// One line for operators choosing a connector.
    pub description: String,
    /// JSON Schema of a connection's `config`.
    pub config_schema: Value,
    /// The streams every connection of this connector offers.
    pub streams: Vec<Stream>,
    /// The ways a connection may authenticate. The host obtains, refreshes and applies the
    /// credential; the plugin never sees it.
    pub auth: Vec<AuthMethod>,
    /// URL or host templates over the connection config, e.g. `https://{subdomain}.zendesk.com`;
    /// see [`ConnectorInfo::host`]. Requests anywhere else are denied by the host.
    pub hosts: Vec<String>,
    /// The vendor's documented request limit per credential (requests, period); the host's
    /// default budget for connections that set none.
    pub rate_limit: Option<(u32, std::time::Duration)>,
}

impl ConnectorInfo {
    /// A connector with no streams, no authentication and a config schema that accepts any
    /// object; add them with the methods below.
    pub fn new(name: &str, version: &str) -> Self {
        ConnectorInfo {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            config_schema: serde_json::json!({"type": "object"}),
            streams: Vec::new(),
            auth: Vec::new(),
            hosts: Vec::new(),
            rate_limit: None,
        }
    }
    /// One line for operators choosing a connector.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }
    /// The JSON Schema a connection's `config` follows; `weft plugin inspect` shows it.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }
    /// Offers `stream` on every connection.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.streams.push(stream);
        self
    }
    /// Accepts `kind`, applying the credential as `placement`.
    pub fn auth(mut self, kind: AuthKind, placement: CredentialPlacement) -> Self {
        self.auth.push(AuthMethod {
            kind,
            placement,
            token_url: None,
        });
        self
    }
    /// Accepts an OAuth2 or JWT bearer `kind` whose token endpoint defaults to `token_url`.
    pub fn oauth(
        mut self,
        kind: AuthKind,
        placement: CredentialPlacement,
        token_url: &str,
    ) -> Self {
        self.auth.push(AuthMethod {
            kind,
            placement,
            token_url: Some(token_url.into()),
        });
        self
    }
    /// Allows requests to `template`, a URL or host template over the connection config. Hosts
    /// come from what the operator wrote, so a template needs a placeholder:
    ///
    /// - `{key}`: the config value (`https://{subdomain}.zendesk.com`); inside a host name only
    ///   letters, digits, `-` and `.`; a template that is only `{key}` takes a whole URL;
    /// - `{key:us=zohoapis.com,eu=zohoapis.eu}`: the value mapped, other values refused;
    /// - `{key?}`: optional, the template allows nothing when the config has no `key`.
    ///
    /// A template without a placeholder (`https://api.hubapi.com`) is a fixed host: the host
    /// allows it only where the flow lists it in the connection's `egress`. The auth's token URL
    /// is allowed as the flow gives it. Every other host is denied.
    pub fn host(mut self, template: &str) -> Self {
        self.hosts.push(template.into());
        self
    }
    /// Declares the vendor's documented limit: `requests` per `per` for one credential. The
    /// host paces every connection sharing the credential to it unless a flow sets its own.
    pub fn rate_limit(mut self, requests: u32, per: std::time::Duration) -> Self {
        self.rate_limit = Some((requests, per));
        self
    }
}

/// `Authorization: {prefix} {token}` — the common placement.
pub fn authorization_header(prefix: &str) -> CredentialPlacement {
    CredentialPlacement::Header(HeaderTemplate {
        name: "Authorization".into(),
        value: format!("{prefix} {{token}}"),
    })
}

/// A stream the connector exposes, with the JSON Schema of its records.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The name a flow's read or write step uses, e.g. `tickets`.
    pub name: String,
    /// One line for operators.
    pub description: String,
    /// JSON Schema of one record. The host checks a flow's field references against it before
    /// running anything.
    pub schema: Value,
    /// The fields that identify a record; `id` unless set.
    pub primary_key: Vec<String>,
    /// The field incremental reads order by; set by [`Stream::incremental`].
    pub cursor_field: Option<String>,
    /// How the stream can be read; full reads are always offered.
    pub sync_modes: Vec<SyncMode>,
    /// Empty for a read-only stream.
    pub write_modes: Vec<WriteMode>,
}

impl Stream {
    /// A stream readable in full, with `schema` describing one record.
    pub fn new(name: &str, schema: Value) -> Self {
        Stream {
            name: name.into(),
            description: String::new(),
            schema,
            primary_key: vec!["id".into()],
            cursor_field: None,
            sync_modes: vec![SyncMode::Full],
            write_modes: Vec::new(),
        }
    }
    /// One line for operators.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }
    /// The fields that identify a record, when not `id`.
    pub fn primary_key(mut self, fields: &[&str]) -> Self {
        self.primary_key = fields.iter().map(|f| (*f).to_owned()).collect();
        self
    }
    /// Supports incremental reads ordered by `field`.
    pub fn incremental(mut self, field: &str) -> Self {
        self.cursor_field = Some(field.into());
        if !self.sync_modes.contains(&SyncMode::Incremental) {
            self.sync_modes.push(SyncMode::Incremental);
        }
        self
    }
    /// Accepts writes in `modes`; without this the stream is read-only.
    pub fn writable(mut self, modes: &[WriteMode]) -> Self {
        self.write_modes = modes.to_vec();
        self
    }
}

/// The connection a call runs for: its name (the handle for HTTP requests) and config.
#[derive(Debug, Clone)]
pub struct Connection {
    name: String,
    config: Value,
}

impl Connection {
    /// A connection handle; the host builds these, tests may too.
    pub fn new(name: &str, config: Value) -> Self {
        Connection {
            name: name.into(),
            config,
        }
    }
    /// The handle the host knows the connection by; it picks the credential and egress
    /// policy for requests that name it.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The connection's non-secret configuration; credentials are never part of it.
    pub fn config(&self) -> &Value {
        &self.config
    }
    /// The config deserialised into the connector's own type, or a config error naming the
    /// connection and what is wrong with it.
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| Error::config(format!("connection `{}`: {e}", self.name)))
    }
    /// A string field of the config, or a config error saying it is missing.
    pub fn config_str(&self, field: &str) -> Result<&str> {
        self.config
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::config(format!(
                    "connection `{}` needs a string `{field}` in its config",
                    self.name
                ))
            })
    }

    /// A `GET` request to `url` for this connection. When it is sent, the host checks it
    /// against the connection's egress policy and attaches the credential.
    pub fn get(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(self, Method::Get, url)
    }
    /// A `POST` request to `url`; see [`Connection::get`].
    pub fn post(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(self, Method::Post, url)
    }
    /// A `PUT` request to `url`; see [`Connection::get`].
    pub fn put(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(self, Method::Put, url)
    }
    /// A `PATCH` request to `url`; see [`Connection::get`].
    pub fn patch(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(self, Method::Patch, url)
    }
    /// A `DELETE` request to `url`; see [`Connection::get`].
    pub fn delete(&self, url: &str) -> RequestBuilder<'_> {
        RequestBuilder::new(self, Method::Delete, url)
    }

    /// Non-secret values of the connection's token response (Salesforce `instance_url`, Zoho
    /// `api_domain`). The token itself never reaches the plugin.
    pub fn token_info(&self) -> Result<BTreeMap<String, String>> {
        crate::bindings::connector::weft::plugin::http::token_info(&self.name)
            .map(|fields| fields.into_iter().collect())
            .map_err(crate::http::map_http_error)
    }

    /// The MAC of `message` under the connection's webhook secret, to compare with a
    /// signature header. Compare with [`constant_time_eq`].
    pub fn webhook_mac(
        &self,
        algorithm: MacAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, MacError> {
        keys::mac(&self.name, algorithm, message).map_err(MacError::from)
    }
}

/// Why the host computed no webhook MAC. The text of each is the host's, naming the connection
/// and what to do.
///
/// `?` turns it into an [`Error`]: [`Error::Denied`] for another connection (as an HTTP request
/// for one would be), [`Error::Config`] for a secret that is missing or unreadable, which an
/// operator fixes in the flow file or the secret store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacError {
    /// The connection named is not the one this call runs for; a plugin acts only for its own.
    NotOwnConnection(String),
    /// The connection has no webhook secret configured.
    NoSecret(String),
    /// The webhook secret is configured but cannot be read (not set, or not decryptable).
    SecretUnavailable(String),
}

impl From<keys::MacError> for MacError {
    fn from(e: keys::MacError) -> Self {
        match e {
            keys::MacError::NotOwnConnection(m) => MacError::NotOwnConnection(m),
            keys::MacError::NoSecret(m) => MacError::NoSecret(m),
            keys::MacError::SecretUnavailable(m) => MacError::SecretUnavailable(m),
        }
    }
}

impl std::fmt::Display for MacError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MacError::NotOwnConnection(m) => write!(f, "webhook MAC denied: {m}"),
            MacError::NoSecret(m) | MacError::SecretUnavailable(m) => {
                write!(f, "no webhook MAC: {m}")
            }
        }
    }
}

impl std::error::Error for MacError {}

impl From<MacError> for Error {
    fn from(e: MacError) -> Self {
        match e {
            MacError::NotOwnConnection(m) => Error::Denied(m),
            MacError::NoSecret(m) | MacError::SecretUnavailable(m) => Error::Config(m),
        }
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the host asks of [`Connector::read`].
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// One of the streams [`ConnectorInfo::streams`] lists.
    pub stream: String,
    /// Full reads start from the beginning; incremental ones resume from `cursor`.
    pub mode: SyncMode,
    /// The cursor this connector returned with the previous page; `None` on a first read.
    pub cursor: Option<String>,
    /// The largest page the host wants; returning fewer records is fine.
    pub page_size: Option<u32>,
    /// Stream-specific options from the flow's read step.
    pub options: Value,
}

impl ReadRequest {
    /// The typed state stored in the cursor by [`Page::more`], if any.
    pub fn cursor_state<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        crate::cursor::decode(self.cursor.as_deref())
    }
}

/// One page of records.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records of this page, shaped as the stream's schema says.
    pub records: Vec<Record>,
    /// Where to resume; build it with [`Page::more`] or [`Page::last`]. The host owns the
    /// cursor and commits it only once every write that depends on this page is acknowledged,
    /// so a crash re-reads the page rather than losing it.
    pub next_cursor: Option<String>,
    /// No page follows; the host stops reading.
    pub done: bool,
    /// The stream's record count, when the upstream reports it.
    pub total: Option<u64>,
    /// The records as JSON text already, when the connector wrote them so
    /// ([`Page::more_json`], [`Page::last_json`]); `records` is then empty.
    json: Option<String>,
}

impl Page {
    /// More pages follow; `state` is what the next read needs to continue.
    pub fn more<T: serde::Serialize>(records: Vec<Record>, state: &T) -> Self {
        Page {
            records,
            next_cursor: Some(crate::cursor::encode(state)),
            done: false,
            total: None,
            json: None,
        }
    }
    /// The last page. `state` is kept for the next incremental run (e.g. the newest
    /// modification time seen); pass `None` for full-only streams.
    pub fn last<T: serde::Serialize>(records: Vec<Record>, state: Option<&T>) -> Self {
        Page {
            records,
            next_cursor: state.map(crate::cursor::encode),
            done: true,
            total: None,
            json: None,
        }
    }
    /// [`Page::more`] with records written as JSON text.
    pub fn more_json<T: serde::Serialize>(records: RecordsJson, state: &T) -> Self {
        Page {
            json: Some(records.finish()),
            ..Page::more(Vec::new(), state)
        }
    }
    /// [`Page::last`] with records written as JSON text.
    pub fn last_json<T: serde::Serialize>(records: RecordsJson, state: Option<&T>) -> Self {
        Page {
            json: Some(records.finish()),
            ..Page::last(Vec::new(), state)
        }
    }
    /// Passes on the upstream's record count, when it gives one.
    pub fn with_total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }
}

/// What the host asks of [`Connector::write`].
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// A stream the connector made [`Stream::writable`].
    pub stream: String,
    /// One of the stream's write modes.
    pub mode: WriteMode,
    /// The fields that match a record to an existing one for upsert, update and delete.
    pub key: Vec<String>,
    /// The batch; answer with one [`WriteOutcome`] per record, in this order.
    pub records: Vec<Record>,
}

/// What happened to one record of a write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    /// What the upstream did with the record.
    pub status: WriteStatus,
    /// The upstream's id for the record; none when it failed.
    pub id: Option<String>,
    /// Why the record failed; set only with [`WriteStatus::Failed`].
    pub error: Option<Error>,
}

impl WriteOutcome {
    /// The upstream created the record as `id`.
    pub fn created(id: impl Into<String>) -> Self {
        WriteOutcome {
            status: WriteStatus::Created,
            id: Some(id.into()),
            error: None,
        }
    }
    /// The upstream changed existing record `id`.
    pub fn updated(id: impl Into<String>) -> Self {
        WriteOutcome {
            status: WriteStatus::Updated,
            id: Some(id.into()),
            error: None,
        }
    }
    /// Record `id` already held these values; nothing was written.
    pub fn unchanged(id: impl Into<String>) -> Self {
        WriteOutcome {
            status: WriteStatus::Unchanged,
            id: Some(id.into()),
            error: None,
        }
    }
    /// The upstream deleted record `id`.
    pub fn deleted(id: impl Into<String>) -> Self {
        WriteOutcome {
            status: WriteStatus::Deleted,
            id: Some(id.into()),
            error: None,
        }
    }
    /// This record failed: the host puts `error` in the run's error log with the record and
    /// counts the rest of the batch. Return `Err` from [`Connector::write`] instead when the
    /// whole batch failed.
    pub fn failed(error: Error) -> Self {
        WriteOutcome {
            status: WriteStatus::Failed,
            id: None,
            error: Some(error),
        }
    }
}

/// An event a verified webhook delivered.
#[derive(Debug, Clone)]
pub struct Event {
    /// The vendor's event id: the host drops duplicate deliveries by it.
    pub id: String,
    /// The stream the record belongs to.
    pub stream: String,
    /// What happened, in the vendor's words (`created`, `ticket.updated`, ...).
    pub action: String,
    /// The record the event is about.
    pub record: Record,
    /// When the vendor says the event happened.
    pub occurred_at: Option<String>,
}

/// The verdict of [`Connector::verify`].
#[derive(Debug, Clone)]
pub enum Verification {
    /// Genuine: the host processes these events.
    Accepted(Vec<Event>),
    /// A vendor handshake to answer; nothing to process.
    Handshake(Reply),
    /// Not genuine, with the reason; the host processes nothing.
    Rejected(String),
}

impl InboundRequest {
    /// A header's value, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[doc(hidden)]
pub mod __connector_glue {
    //! What [`export_connector!`](crate::export_connector) expands to call: conversions
    //! between the ergonomic types and the raw bindings.
    use super::*;
    use crate::bindings::connector::weft::plugin::types as wit;

    type R<T> = std::result::Result<T, wit::PluginError>;

    fn connection(c: api::Connection) -> R<Connection> {
        let config = serde_json::from_str(&c.config).map_err(|e| {
            wit::PluginError::Config(format!("connection `{}` config is not JSON: {e}", c.name))
        })?;
        Ok(Connection {
            name: c.name,
            config,
        })
    }

    pub fn describe<C: Connector>() -> api::ConnectorInfo {
        let info = C::describe();
        api::ConnectorInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            config_schema: info.config_schema.to_string(),
            streams: info
                .streams
                .into_iter()
                .map(|s| wit::StreamDescriptor {
                    name: s.name,
                    description: s.description,
                    schema: s.schema.to_string(),
                    primary_key: s.primary_key,
                    cursor_field: s.cursor_field,
                    sync_modes: s.sync_modes,
                    write_modes: s.write_modes,
                })
                .collect(),
            auth: info.auth,
            hosts: info.hosts,
            rate_limit: info.rate_limit.map(|(requests, per)| api::RateBudget {
                requests,
                per_ms: per.as_millis().min(u128::from(u64::MAX)) as u64,
            }),
        }
    }

    pub fn check<C: Connector>(conn: api::Connection) -> R<()> {
        Ok(C::check(&connection(conn)?)?)
    }

    pub fn read<C: Connector>(conn: api::Connection, req: api::ReadRequest) -> R<api::Page> {
        let options = if req.options.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(&req.options)
                .map_err(|e| wit::PluginError::Config(format!("read options are not JSON: {e}")))?
        };
        let page = C::read(
            &connection(conn)?,
            ReadRequest {
                stream: req.stream,
                mode: req.mode,
                cursor: req.cursor,
                page_size: req.page_size,
                options,
            },
        )?;
        Ok(api::Page {
            records: match page.json {
                Some(json) => json,
                None => encode_batch(&page.records),
            },
            next_cursor: page.next_cursor,
            done: page.done,
            total: page.total,
        })
    }

    pub fn write<C: Connector>(
        conn: api::Connection,
        req: api::WriteRequest,
    ) -> R<Vec<api::WriteOutcome>> {
        let records = decode_batch(&req.records)?;
        let outcomes = C::write(
            &connection(conn)?,
            WriteRequest {
                stream: req.stream,
                mode: req.mode,
                key: req.key,
                records,
            },
        )?;
        Ok(outcomes
            .into_iter()
            .map(|o| api::WriteOutcome {
                status: o.status,
                id: o.id,
                error: o.error.map(Into::into),
            })
            .collect())
    }

    pub fn verify<C: Connector>(
        conn: api::Connection,
        req: api::InboundRequest,
    ) -> R<api::Verification> {
        Ok(match C::verify(&connection(conn)?, req)? {
            Verification::Accepted(events) => api::Verification::Accepted(
                events
                    .into_iter()
                    .map(|e| api::Event {
                        id: e.id,
                        stream: e.stream,
                        action: e.action,
                        record: Value::Object(e.record).to_string(),
                        occurred_at: e.occurred_at,
                    })
                    .collect(),
            ),
            Verification::Handshake(reply) => api::Verification::Handshake(reply),
            Verification::Rejected(reason) => api::Verification::Rejected(reason),
        })
    }

    pub fn subscribe<C: Connector>(
        conn: api::Connection,
        url: String,
        events: Vec<String>,
    ) -> R<Subscription> {
        Ok(C::subscribe(&connection(conn)?, &url, &events)?)
    }

    pub fn unsubscribe<C: Connector>(conn: api::Connection, id: String) -> R<()> {
        Ok(C::unsubscribe(&connection(conn)?, &id)?)
    }
}

/// Exports a [`Connector`] implementation as the plugin's `connector` world.
#[macro_export]
macro_rules! export_connector {
    ($ty:ident) => {
        impl $crate::bindings::connector::exports::weft::plugin::connector_api::Guest for $ty {
            fn describe() -> $crate::bindings::connector::exports::weft::plugin::connector_api::ConnectorInfo {
                $crate::__connector_glue::describe::<$ty>()
            }
            fn check(
                conn: $crate::bindings::connector::exports::weft::plugin::connector_api::Connection,
            ) -> ::core::result::Result<(), $crate::bindings::connector::weft::plugin::types::PluginError> {
                $crate::__connector_glue::check::<$ty>(conn)
            }
            fn read(
                conn: $crate::bindings::connector::exports::weft::plugin::connector_api::Connection,
                req: $crate::bindings::connector::exports::weft::plugin::connector_api::ReadRequest,
            ) -> ::core::result::Result<
                $crate::bindings::connector::exports::weft::plugin::connector_api::Page,
                $crate::bindings::connector::weft::plugin::types::PluginError,
            > {
                $crate::__connector_glue::read::<$ty>(conn, req)
            }
            fn write(
                conn: $crate::bindings::connector::exports::weft::plugin::connector_api::Connection,
                req: $crate::bindings::connector::exports::weft::plugin::connector_api::WriteRequest,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::bindings::connector::exports::weft::plugin::connector_api::WriteOutcome>,
                $crate::bindings::connector::weft::plugin::types::PluginError,
            > {
                $crate::__connector_glue::write::<$ty>(conn, req)
            }
            fn verify(
                conn: $crate::bindings::connector::exports::weft::plugin::connector_api::Connection,
                req: $crate::bindings::connector::exports::weft::plugin::connector_api::InboundRequest,
            ) -> ::core::result::Result<
                $crate::bindings::connector::exports::weft::plugin::connector_api::Verification,
                $crate::bindings::connector::weft::plugin::types::PluginError,
            > {
                $crate::__connector_glue::verify::<$ty>(conn, req)
            }
            fn subscribe(
                conn: $crate::bindings::connector::exports::weft::plugin::connector_api::Connection,
                callback_url: ::std::string::String,
                events: ::std::vec::Vec<::std::string::String>,
            ) -> ::core::result::Result<
                $crate::bindings::connector::exports::weft::plugin::connector_api::Subscription,
                $crate::bindings::connector::weft::plugin::types::PluginError,
            > {
                $crate::__connector_glue::subscribe::<$ty>(conn, callback_url, events)
            }
            fn unsubscribe(
                conn: $crate::bindings::connector::exports::weft::plugin::connector_api::Connection,
                subscription_id: ::std::string::String,
            ) -> ::core::result::Result<(), $crate::bindings::connector::weft::plugin::types::PluginError> {
                $crate::__connector_glue::unsubscribe::<$ty>(conn, subscription_id)
            }
        }
        $crate::bindings::connector::export_world!($ty with_types_in $crate::bindings::connector);
    };
}
