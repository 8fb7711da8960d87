//! The store data of one invocation and the host side of every import.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weft_capabilities::log::LogBudget;
use weft_capabilities::{
    Connections, HmacAlgorithm, LogLevel, PluginLogger, Redactor, http as cap_http, printable,
};
use weft_store::{StateScope, Store};

use crate::bindings::connector::weft::plugin::{http, log, state, types, webhook_keys};

/// Who is calling a plugin and what its imports may reach. One per step of a run; cheap to
/// clone.
#[derive(Clone, Default)]
pub struct CallContext {
    pub tenant: String,
    pub flow: Option<String>,
    pub run: Option<String>,
    pub step: Option<String>,
    /// The connections the flow configured; requests name one of these.
    pub connections: Arc<Connections>,
    /// Where plugin state lives; without it, state calls fail with a clear message.
    pub store: Option<Store>,
}

impl CallContext {
    pub fn new(tenant: impl Into<String>) -> Self {
        CallContext {
            tenant: tenant.into(),
            ..Default::default()
        }
    }
    pub fn with_connections(mut self, connections: Connections) -> Self {
        self.connections = Arc::new(connections);
        self
    }
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }
    pub fn in_flow(mut self, flow: impl Into<String>) -> Self {
        self.flow = Some(flow.into());
        self
    }

    /// What scrubs the secrets and tokens of every connection of the flow from text a plugin
    /// supplies.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.connections.clone())
    }
}

/// The data of one invocation's `Store`: created fresh per call, dropped after it.
pub(crate) struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) guard: Guard,
    context: CallContext,
    plugin: Arc<str>,
    /// The connection the current export was called for: scopes `state`.
    connection: Option<String>,
    logger: PluginLogger,
    host_call_time: Duration,
}

/// Tracks what stopped a guest, so a trap can be reported as the limit it hit.
pub(crate) struct Guard {
    pub(crate) memory_limit: usize,
    pub(crate) memory_exceeded: bool,
    pub(crate) cpu_ticks_left: u64,
    pub(crate) cpu_exceeded: bool,
}

impl StoreData {
    pub(crate) fn new(
        plugin: Arc<str>,
        context: CallContext,
        connection: Option<String>,
        memory_limit: usize,
        cpu_ticks: u64,
        host_call_time: Duration,
        log_budget: LogBudget,
    ) -> Self {
        let mut log_context = weft_capabilities::LogContext::plugin(plugin.to_string());
        log_context.tenant = Some(context.tenant.clone());
        log_context.flow = context.flow.clone();
        log_context.run = context.run.clone();
        log_context.step = context.step.clone();
        StoreData {
            // No environment, arguments, files, sockets or preopens: WASI is linked only
            // because a Rust guest's standard library imports it.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            guard: Guard {
                memory_limit,
                memory_exceeded: false,
                cpu_ticks_left: cpu_ticks,
                cpu_exceeded: false,
            },
            logger: PluginLogger::new(log_context)
                .with_redactor(context.redactor())
                .with_budget(log_budget),
            context,
            plugin,
            connection,
            host_call_time,
        }
    }

    /// The connection this call was made for, when `named` is it: a call is bound to its own
    /// connection, so naming another one of the flow (to borrow its credential, its token
    /// response or its webhook secret) is refused and that connection's upstream sees nothing.
    fn own_connection(
        &self,
        named: &str,
    ) -> Result<weft_capabilities::Connection, cap_http::HttpError> {
        match self.connection.as_deref() {
            Some(own) if own == named => {
                self.context.connections.require(named).cloned()
            }
            Some(own) => Err(cap_http::HttpError::Denied(format!(
                "this call runs for connection `{own}`; a plugin acts only for the connection its export was called with, not `{}`",
                printable(named, 64)
            ))),
            None => Err(cap_http::HttpError::Denied(
                "this call runs for no connection (describe or a transform), so it cannot act for one".to_owned(),
            )),
        }
    }

    fn state_scope(&self) -> Result<(Store, StateScope), String> {
        let store = self
            .context
            .store
            .clone()
            .ok_or("this host keeps no plugin state (no store configured)")?;
        let connection = self
            .connection
            .clone()
            .ok_or("state is only available in connector calls")?;
        let flow = self.context.flow.clone().unwrap_or_else(|| "-".to_owned());
        Ok((
            store,
            StateScope::new(
                self.context.tenant.clone(),
                self.plugin.to_string(),
                connection,
                flow,
            ),
        ))
    }
}

impl Drop for StoreData {
    /// The call is over: say once how much of its log was dropped.
    fn drop(&mut self) {
        self.logger.finish();
    }
}

/// Runs a host call under the host-call time limit.
async fn bounded<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("{what} did not finish within {} ms", limit.as_millis()))
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for StoreData {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        if desired > self.guard.memory_limit {
            self.guard.memory_exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes exceeded (wanted {desired})",
                self.guard.memory_limit
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> WasmResult<bool> {
        // Tables hold function references; a million is far beyond any real plugin.
        Ok(desired <= 1_000_000)
    }
}

impl types::Host for StoreData {}

impl log::Host for StoreData {
    async fn log(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> WasmResult<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.logger.log(level, &message, &fields);
        Ok(())
    }
}

fn to_wit_http_error(e: cap_http::HttpError) -> http::HttpError {
    match e {
        cap_http::HttpError::Denied(m) => http::HttpError::Denied(m),
        cap_http::HttpError::Timeout(m) => http::HttpError::Timeout(m),
        cap_http::HttpError::Transport(m) => http::HttpError::Transport(m),
        cap_http::HttpError::TooLarge { limit } => http::HttpError::TooLarge(limit),
        cap_http::HttpError::Auth(m) => http::HttpError::Auth(m),
        cap_http::HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
    }
}

fn method(m: http::Method) -> ::http::Method {
    use ::http::Method as M;
    match m {
        http::Method::Get => M::GET,
        http::Method::Head => M::HEAD,
        http::Method::Post => M::POST,
        http::Method::Put => M::PUT,
        http::Method::Patch => M::PATCH,
        http::Method::Delete => M::DELETE,
    }
}

impl http::Host for StoreData {
    async fn send(
        &mut self,
        req: http::Request,
    ) -> WasmResult<Result<http::Response, http::HttpError>> {
        let connection = match self.own_connection(&req.connection) {
            Ok(c) => c,
            Err(e) => return Ok(Err(to_wit_http_error(e))),
        };
        let request = cap_http::Request {
            method: method(req.method),
            url: req.url,
            headers: req.headers,
            body: req.body,
            timeout: req.timeout_ms.map(|ms| Duration::from_millis(ms.into())),
        };
        // The connection applies its own (shorter) timeouts; this bound keeps a wedged
        // credential exchange or resolver from holding the guest forever.
        Ok(
            match bounded(
                self.host_call_time,
                "the HTTP request",
                connection.send(request),
            )
            .await
            {
                Ok(Ok(r)) => Ok(http::Response {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                }),
                Ok(Err(e)) => Err(to_wit_http_error(e)),
                Err(message) => Err(http::HttpError::Timeout(message)),
            },
        )
    }

    async fn token_info(
        &mut self,
        connection: String,
    ) -> WasmResult<Result<Vec<(String, String)>, http::HttpError>> {
        let connection = match self.own_connection(&connection) {
            Ok(c) => c,
            Err(e) => return Ok(Err(to_wit_http_error(e))),
        };
        Ok(
            match bounded(
                self.host_call_time,
                "the token request",
                connection.token_info(),
            )
            .await
            {
                Ok(result) => result.map_err(to_wit_http_error),
                Err(message) => Err(http::HttpError::Timeout(message)),
            },
        )
    }
}

impl webhook_keys::Host for StoreData {
    async fn mac(
        &mut self,
        connection: String,
        algorithm: webhook_keys::MacAlgorithm,
        message: Vec<u8>,
    ) -> WasmResult<Result<Vec<u8>, String>> {
        let connection = match self.own_connection(&connection) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let algorithm = match algorithm {
            webhook_keys::MacAlgorithm::HmacSha1 => HmacAlgorithm::Sha1,
            webhook_keys::MacAlgorithm::HmacSha256 => HmacAlgorithm::Sha256,
        };
        Ok(
            match bounded(
                self.host_call_time,
                "the webhook MAC",
                connection.hmac(algorithm, &message),
            )
            .await
            {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(message) => Err(message),
            },
        )
    }
}

impl state::Host for StoreData {
    async fn get(&mut self, key: String) -> WasmResult<Result<Option<Vec<u8>>, String>> {
        let (store, scope) = match self.state_scope() {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(bounded(
            self.host_call_time,
            "reading state",
            store.state_get(&scope, &key),
        )
        .await
        .and_then(|r| r.map_err(|e| e.to_string())))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> WasmResult<Result<(), String>> {
        let (store, scope) = match self.state_scope() {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(bounded(
            self.host_call_time,
            "writing state",
            store.state_set(&scope, &key, &value),
        )
        .await
        .and_then(|r| r.map_err(|e| e.to_string())))
    }

    async fn delete(&mut self, key: String) -> WasmResult<Result<(), String>> {
        let (store, scope) = match self.state_scope() {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        Ok(bounded(
            self.host_call_time,
            "deleting state",
            store.state_delete(&scope, &key),
        )
        .await
        .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string())))
    }
}
