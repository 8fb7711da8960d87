//! The store data of one invocation and the host side of every import.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weft_capabilities::log::LogBudget;
use weft_capabilities::{
    Connections, HmacAlgorithm, LogLevel, MacError, PluginLogger, Redactor, http as cap_http,
    printable,
};
use weft_store::{StateScope, Store, StoreError};

use crate::bindings::connector::weft::plugin::{http, log, state, types, webhook_keys};
use crate::bindings::{HostFault, ImportError, MacFailure, StateFailure};

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
    /// Where plugin state lives; without it, state calls are refused as `unavailable`.
    pub store: Option<Store>,
    /// Where the run's plugin CPU time and memory are counted, if they are.
    pub usage: Option<Arc<weft_capabilities::Usage>>,
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
    pub fn with_usage(mut self, usage: Arc<weft_capabilities::Usage>) -> Self {
        self.usage = Some(usage);
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
    /// The most linear memory the instance asked for, in bytes.
    pub(crate) memory_peak: usize,
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
                memory_peak: 0,
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

    /// The store and the scope of this call's state, or why the call has none.
    fn state_scope(&self) -> Result<(Store, StateScope), StateFailure> {
        let unavailable =
            |reason: &str| ImportError::Refused(state::StateError::Unavailable(reason.to_owned()));
        let store =
            self.context.store.clone().ok_or_else(|| {
                unavailable("this host keeps no plugin state (no store configured)")
            })?;
        let connection = self.connection.clone().ok_or_else(|| {
            unavailable("state is only available in calls made for a connection, not in describe")
        })?;
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
        self.guard.memory_peak = self.guard.memory_peak.max(desired);
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

/// What the plugin gets for a store refusal, or the fault that traps its `import` call: a key or
/// value over its limit and a full scope are the plugin's to fix; anything else (the database
/// failing) is the host's.
fn state_failure(import: &'static str, error: StoreError) -> StateFailure {
    let limit = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    ImportError::Refused(match error {
        StoreError::StateKeyEmpty => state::StateError::KeyEmpty,
        StoreError::StateKeyTooLong { limit: n, .. } => state::StateError::KeyTooLong(limit(n)),
        StoreError::StateValueTooLarge { limit: n, .. } => {
            state::StateError::ValueTooLarge(limit(n))
        }
        StoreError::StateTooManyKeys { limit: n, .. } => state::StateError::TooManyKeys(n),
        fault => return ImportError::Fault(HostFault::new(import, fault)),
    })
}

/// A state call to the store under the host-call time limit: a database that does not answer
/// in time is a fault like one that fails.
async fn state_call<T>(
    limit: Duration,
    import: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StateFailure> {
    match bounded(limit, "the state database", call).await {
        Ok(result) => result.map_err(|e| state_failure(import, e)),
        Err(message) => Err(ImportError::Fault(HostFault::new(import, message))),
    }
}

/// What the plugin gets for a MAC the connection cannot compute, or the fault that traps the
/// call when the secret's store failed.
fn mac_failure(error: MacError) -> MacFailure {
    let message = error.to_string();
    ImportError::Refused(match error {
        MacError::NoSecret { .. } => webhook_keys::MacError::NoSecret(message),
        e if e.is_host_fault() => {
            return ImportError::Fault(HostFault::new("webhook-keys.mac", message));
        }
        MacError::Secret { .. } => webhook_keys::MacError::SecretUnavailable(message),
    })
}

impl webhook_keys::Host for StoreData {
    async fn mac(
        &mut self,
        connection: String,
        algorithm: webhook_keys::MacAlgorithm,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, MacFailure> {
        let connection = self.own_connection(&connection).map_err(|e| match e {
            cap_http::HttpError::Denied(m) => {
                ImportError::Refused(webhook_keys::MacError::NotOwnConnection(m))
            }
            // The call's own connection is missing from its flow: the host's inconsistency.
            other => ImportError::Fault(HostFault::new("webhook-keys.mac", other)),
        })?;
        let algorithm = match algorithm {
            webhook_keys::MacAlgorithm::HmacSha1 => HmacAlgorithm::Sha1,
            webhook_keys::MacAlgorithm::HmacSha256 => HmacAlgorithm::Sha256,
        };
        match bounded(
            self.host_call_time,
            "reading the webhook secret",
            connection.hmac(algorithm, &message),
        )
        .await
        {
            Ok(result) => result.map_err(mac_failure),
            Err(message) => Err(ImportError::Fault(HostFault::new(
                "webhook-keys.mac",
                message,
            ))),
        }
    }

    fn convert_mac_error(&mut self, error: MacFailure) -> WasmResult<webhook_keys::MacError> {
        error.into_guest()
    }
}

impl state::Host for StoreData {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, StateFailure> {
        let (store, scope) = self.state_scope()?;
        state_call(
            self.host_call_time,
            "state.get",
            store.state_get(&scope, &key),
        )
        .await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), StateFailure> {
        let (store, scope) = self.state_scope()?;
        state_call(
            self.host_call_time,
            "state.set",
            store.state_set(&scope, &key, &value),
        )
        .await
    }

    async fn delete(&mut self, key: String) -> Result<(), StateFailure> {
        let (store, scope) = self.state_scope()?;
        state_call(
            self.host_call_time,
            "state.delete",
            store.state_delete(&scope, &key),
        )
        .await
        .map(drop)
    }

    fn convert_state_error(&mut self, error: StateFailure) -> WasmResult<state::StateError> {
        error.into_guest()
    }
}
