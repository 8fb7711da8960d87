//! Loading plugins and calling them under limits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, UpdateDeadline};

use crate::bindings::HostFault;
use crate::bindings::connector::exports::weft::plugin::connector_api as capi;
use crate::bindings::connector::{Connector, ConnectorPre};
use crate::bindings::transform::exports::weft::plugin::transform_api as tapi;
use crate::bindings::transform::{Transform, TransformPre};
use crate::cache::{CacheOutcome, ComponentCache, compile};
use crate::contract::{self, PluginKind};
use crate::engine::{self, EpochTicker};
use crate::host::{CallContext, StoreData};
use crate::{CallError, Limits, LoadError, PluginError};
use weft_capabilities::Redactor;
use weft_capabilities::untrusted::MAX_MESSAGE_BYTES;

pub use capi::{
    AuthKind, AuthMethod, Connection, ConnectorInfo, CredentialPlacement, Event, HeaderTemplate,
    InboundRequest, Page, ReadRequest, Reply, Subscription, Verification, WriteOutcome,
    WriteRequest, WriteStatus,
};
pub use tapi::{Batch, BatchResult, Reject, TransformInfo};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the runtime is set up.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub limits: Limits,
    /// Where compiled components are kept between runs; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
}

/// The component host: one engine, linkers for both worlds, the component cache and the epoch
/// ticker. Cheap to clone; plugins loaded from it keep it alive.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    connector_linker: Linker<StoreData>,
    transform_linker: Linker<StoreData>,
    limits: Limits,
    cache: Option<ComponentCache>,
    /// Components compiled, by the digest of their bytes.
    compiled: Mutex<HashMap<Vec<u8>, Component>>,
    /// Plugins loaded, shared by every plan naming the same bytes.
    shelf: crate::shelf::Shelf,
    /// Each tenant's share of the instance slots.
    tenants: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    _ticker: EpochTicker,
}

impl Inner {
    fn tenant_slots(&self, tenant: &str) -> Arc<tokio::sync::Semaphore> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let per_tenant = self.limits.calls_per_tenant.max(1) as usize;
        Arc::clone(
            tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(per_tenant))),
        )
    }
}

fn engine_error(e: wasmtime::Error) -> LoadError {
    LoadError::Engine(format!("{e:#}"))
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let engine = engine::build(&config.limits)?;
        let mut connector_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut connector_linker).map_err(engine_error)?;
        Connector::add_to_linker::<_, HasSelf<_>>(&mut connector_linker, |s| s)
            .map_err(engine_error)?;
        let mut transform_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut transform_linker).map_err(engine_error)?;
        Transform::add_to_linker::<_, HasSelf<_>>(&mut transform_linker, |s| s)
            .map_err(engine_error)?;
        let cache = config
            .cache_dir
            .map(|dir| ComponentCache::new(&engine, dir));
        let ticker = EpochTicker::start(engine.clone(), config.limits.epoch_tick);
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                connector_linker,
                transform_linker,
                limits: config.limits,
                cache,
                compiled: Mutex::new(HashMap::new()),
                shelf: Default::default(),
                tenants: Default::default(),
                _ticker: ticker,
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub(crate) fn shelf(&self) -> &crate::shelf::Shelf {
        &self.inner.shelf
    }

    fn compiled(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Component>> {
        self.inner
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads a plugin from a `.wasm` file.
    pub async fn load_file(&self, path: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        let path = path.as_ref();
        let wasm = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.to_owned(),
                source,
            })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.load(&name, wasm).await
    }

    /// Loads a plugin from its bytes: compiles it (or takes it from the cache), checks its
    /// contract version, links it and asks it to describe itself. The same bytes are compiled
    /// once per runtime: a server planning ten thousand flows that use one connector compiles
    /// it, and holds its code, once.
    pub async fn load(&self, name: &str, wasm: Vec<u8>) -> Result<Plugin, LoadError> {
        let started = Instant::now();
        let digest = ring::digest::digest(&ring::digest::SHA256, &wasm)
            .as_ref()
            .to_vec();
        let compiled = self.compiled().get(&digest).cloned();
        let (component, outcome) = match compiled {
            Some(component) => (component, CacheOutcome::Cached),
            None => {
                let inner = self.inner.clone();
                let label = name.to_owned();
                let (component, outcome) =
                    tokio::task::spawn_blocking(move || match &inner.cache {
                        Some(cache) => cache.load(&inner.engine, &label, &wasm),
                        None => compile(&inner.engine, &label, &wasm)
                            .map(|c| (c, CacheOutcome::Compiled)),
                    })
                    .await
                    .map_err(|e| LoadError::Engine(format!("compilation task failed: {e}")))??;
                self.compiled().insert(digest, component.clone());
                (component, outcome)
            }
        };
        let (kind, contract) = contract::classify(&self.inner.engine, &component, name)?;
        let instantiate_error = |e: wasmtime::Error| LoadError::Instantiate {
            name: name.to_owned(),
            reason: format!("{e:#}"),
        };
        let load = LoadReport {
            file: name.to_owned(),
            contract,
            outcome,
            took: started.elapsed(),
        };
        match kind {
            PluginKind::Connector => {
                let pre = self
                    .inner
                    .connector_linker
                    .instantiate_pre(&component)
                    .map_err(instantiate_error)?;
                let pre = ConnectorPre::new(pre).map_err(instantiate_error)?;
                let runner = Runner {
                    inner: self.inner.clone(),
                    name: Arc::from(name),
                };
                let info = runner
                    .invoke(&CallContext::default(), None, &pre, |i, s| {
                        Box::pin(async move {
                            i.weft_plugin_connector_api().call_describe(s).await.map(Ok)
                        })
                    })
                    .await
                    .map_err(|e| LoadError::Describe {
                        name: name.to_owned(),
                        reason: e.to_string(),
                    })?;
                let schemas = stream_schemas(&info).map_err(|reason| LoadError::Describe {
                    name: name.to_owned(),
                    reason,
                })?;
                let runner = Runner {
                    inner: self.inner.clone(),
                    name: Arc::from(info.name.as_str()),
                };
                Ok(Plugin::Connector(ConnectorPlugin {
                    runner,
                    pre,
                    info,
                    schemas,
                    load,
                }))
            }
            PluginKind::Transform => {
                let pre = self
                    .inner
                    .transform_linker
                    .instantiate_pre(&component)
                    .map_err(instantiate_error)?;
                let pre = TransformPre::new(pre).map_err(instantiate_error)?;
                let runner = Runner {
                    inner: self.inner.clone(),
                    name: Arc::from(name),
                };
                let info = runner
                    .invoke(&CallContext::default(), None, &pre, |i, s| {
                        Box::pin(async move {
                            i.weft_plugin_transform_api().call_describe(s).await.map(Ok)
                        })
                    })
                    .await
                    .map_err(|e| LoadError::Describe {
                        name: name.to_owned(),
                        reason: e.to_string(),
                    })?;
                let runner = Runner {
                    inner: self.inner.clone(),
                    name: Arc::from(info.name.as_str()),
                };
                Ok(Plugin::Transform(TransformPlugin {
                    runner,
                    pre,
                    info,
                    load,
                }))
            }
        }
    }
}

/// How a plugin was loaded.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The file (or label) it was loaded from.
    pub file: String,
    /// The `weft:plugin` version the plugin was built against.
    pub contract: String,
    pub outcome: CacheOutcome,
    pub took: std::time::Duration,
}

/// A loaded plugin of either kind.
pub enum Plugin {
    Connector(ConnectorPlugin),
    Transform(TransformPlugin),
}

impl Plugin {
    pub fn kind(&self) -> PluginKind {
        match self {
            Plugin::Connector(_) => PluginKind::Connector,
            Plugin::Transform(_) => PluginKind::Transform,
        }
    }
    pub fn name(&self) -> &str {
        match self {
            Plugin::Connector(p) => &p.info.name,
            Plugin::Transform(p) => &p.info.name,
        }
    }
    pub fn version(&self) -> &str {
        match self {
            Plugin::Connector(p) => &p.info.version,
            Plugin::Transform(p) => &p.info.version,
        }
    }
    pub fn load_report(&self) -> &LoadReport {
        match self {
            Plugin::Connector(p) => &p.load,
            Plugin::Transform(p) => &p.load,
        }
    }
    pub fn into_connector(self) -> Option<ConnectorPlugin> {
        match self {
            Plugin::Connector(p) => Some(p),
            Plugin::Transform(_) => None,
        }
    }
    pub fn into_transform(self) -> Option<TransformPlugin> {
        match self {
            Plugin::Transform(p) => Some(p),
            Plugin::Connector(_) => None,
        }
    }
}

/// Makes one fresh instance per call and maps whatever stopped it to a [`CallError`].
#[derive(Clone)]
struct Runner {
    inner: Arc<Inner>,
    name: Arc<str>,
}

/// A pre-instantiated component of either world.
trait Instantiate: Send + Sync {
    type Instance: Send + Sync;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<StoreData>,
    ) -> BoxFuture<'a, wasmtime::Result<Self::Instance>>;
}

impl Instantiate for ConnectorPre<StoreData> {
    type Instance = Connector;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<StoreData>,
    ) -> BoxFuture<'a, wasmtime::Result<Connector>> {
        Box::pin(self.instantiate_async(store))
    }
}

impl Instantiate for TransformPre<StoreData> {
    type Instance = Transform;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<StoreData>,
    ) -> BoxFuture<'a, wasmtime::Result<Transform>> {
        Box::pin(self.instantiate_async(store))
    }
}

impl Runner {
    fn store(&self, context: &CallContext, connection: Option<String>) -> Store<StoreData> {
        let limits = &self.inner.limits;
        let data = StoreData::new(
            self.name.clone(),
            context.clone(),
            connection,
            limits.memory_bytes,
            limits.cpu_ticks(),
            limits.host_call_time,
            limits.log,
        );
        let mut store = Store::new(&self.inner.engine, data);
        store.limiter(|data| data);
        // Every tick of guest execution spends one tick of the CPU budget and yields to the
        // executor, so a busy guest never starves the host's other tasks.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let guard = &mut ctx.data_mut().guard;
            if guard.cpu_ticks_left == 0 {
                guard.cpu_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            guard.cpu_ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    async fn invoke<P, R>(
        &self,
        context: &CallContext,
        connection: Option<String>,
        pre: &P,
        call: impl for<'a> FnOnce(
            &'a P::Instance,
            &'a mut Store<StoreData>,
        ) -> BoxFuture<'a, wasmtime::Result<Result<R, PluginError>>>,
    ) -> Result<R, CallError>
    where
        P: Instantiate,
    {
        // Semaphores are never closed, so acquiring cannot fail.
        let _turn = self
            .inner
            .tenant_slots(&context.tenant)
            .acquire_owned()
            .await;
        // Everything the host does for this call (requests, logs, state) is told apart by
        // whose call it is.
        let span = tracing::info_span!(
            "plugin_call",
            tenant = %context.tenant,
            flow = context.flow.as_deref().unwrap_or_default(),
            run = context.run.as_deref().unwrap_or_default(),
            step = context.step.as_deref().unwrap_or_default(),
            plugin = %self.name,
            connection = connection.as_deref().unwrap_or_default(),
        );
        let mut store = self.store(context, connection);
        let wall = self.inner.limits.wall_time;
        let outcome = tokio::time::timeout(
            wall,
            tracing::Instrument::instrument(
                async {
                    let instance = pre.instantiate(&mut store).await?;
                    call(&instance, &mut store).await
                },
                span,
            ),
        )
        .await;
        if let Some(usage) = &context.usage {
            let guard = &store.data().guard;
            let ticks = self.inner.limits.cpu_ticks() - guard.cpu_ticks_left;
            usage.add_cpu(self.inner.limits.epoch_tick * ticks as u32);
            usage.note_memory(guard.memory_peak as u64);
        }
        // Whatever text the plugin supplied is scrubbed and escaped here, before the engine,
        // the store or a terminal sees it.
        let redactor = context.redactor();
        match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(CallError::Plugin {
                plugin: self.name.to_string(),
                error: clean_error(error, &redactor),
            }),
            Ok(Err(e)) => Err(match self.failure(&store, e) {
                CallError::Trap { plugin, message } => CallError::Trap {
                    plugin,
                    message: redactor.clean(&message, MAX_MESSAGE_BYTES),
                },
                // Its text may quote a state key the plugin chose.
                CallError::HostFault { plugin, message } => CallError::HostFault {
                    plugin,
                    message: redactor.clean(&message, MAX_MESSAGE_BYTES),
                },
                other => other,
            }),
            Err(_) => Err(CallError::WallLimit {
                plugin: self.name.to_string(),
                limit_ms: wall.as_millis(),
            }),
        }
    }

    fn failure(&self, store: &Store<StoreData>, error: wasmtime::Error) -> CallError {
        let plugin = self.name.to_string();
        let guard = &store.data().guard;
        let limits = &self.inner.limits;
        if guard.cpu_exceeded {
            return CallError::CpuLimit {
                plugin,
                limit_ms: limits.cpu_time.as_millis(),
            };
        }
        if guard.memory_exceeded {
            return CallError::MemoryLimit {
                plugin,
                limit_bytes: limits.memory_bytes,
            };
        }
        if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
            return CallError::Capacity {
                plugin,
                reason: format!("{error:#}"),
            };
        }
        // A host fault traps with its own text: what failed, not the guest's backtrace.
        if let Some(fault) = error.downcast_ref::<HostFault>() {
            return CallError::HostFault {
                plugin,
                message: fault.to_string(),
            };
        }
        trapped(plugin, &error)
    }

    async fn instantiate_once<P: Instantiate>(&self, pre: &P) -> Result<(), CallError> {
        let mut store = self.store(&CallContext::default(), None);
        pre.instantiate(&mut store)
            .await
            .map(drop)
            .map_err(|e| self.failure(&store, e))
    }

    fn check_output(&self, size: usize) -> Result<(), CallError> {
        let limit = self.inner.limits.output_bytes;
        if size > limit {
            return Err(CallError::OutputTooLarge {
                plugin: self.name.to_string(),
                size,
                limit,
            });
        }
        Ok(())
    }
}

/// How many records the JSON array `records` holds (0 when it is not one).
fn count_records(records: &str) -> usize {
    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(records).map_or(0, |v| v.len())
}

fn clean_error(error: PluginError, redactor: &Redactor) -> PluginError {
    error.map_text(|t| redactor.clean(t, MAX_MESSAGE_BYTES))
}

/// The JSON text of `value`.
fn json(value: &serde_json::Value) -> String {
    value.to_string()
}

/// Each stream's record schema, parsed once at load; a schema that is not JSON refuses the
/// plugin.
/// A guest's trap as its run's history says it: what trapped and in which export, without the
/// guest's backtrace (which goes to the log, for the plugin's author).
fn trapped(plugin: String, error: &wasmtime::Error) -> CallError {
    tracing::warn!(plugin, error = format!("{error:#}"), "a plugin trapped");
    let trap = error.downcast_ref::<wasmtime::Trap>();
    let mut message = match trap {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    let export = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .and_then(|backtrace| backtrace.frames().last()?.func_name().map(str::to_owned));
    if let Some(export) = export {
        message.push_str(&format!(" in {export}"));
    }
    if trap == Some(&wasmtime::Trap::UnreachableCodeReached) {
        message.push_str(" (how a panic in a plugin ends)");
    }
    CallError::Trap { plugin, message }
}

fn stream_schemas(info: &ConnectorInfo) -> Result<HashMap<String, Arc<serde_json::Value>>, String> {
    info.streams
        .iter()
        .map(|s| match serde_json::from_str(&s.schema) {
            Ok(schema) => Ok((s.name.clone(), Arc::new(schema))),
            Err(e) => Err(format!(
                "the schema of stream `{}` is not JSON: {e}",
                s.name
            )),
        })
        .collect()
}

/// A loaded connector.
pub struct ConnectorPlugin {
    runner: Runner,
    pre: ConnectorPre<StoreData>,
    info: ConnectorInfo,
    /// Each stream's record schema, by stream name (shared by the plans reading it).
    schemas: HashMap<String, Arc<serde_json::Value>>,
    load: LoadReport,
}

impl ConnectorPlugin {
    pub fn info(&self) -> &ConnectorInfo {
        &self.info
    }
    pub fn load_report(&self) -> &LoadReport {
        &self.load
    }

    /// Creates one instance and drops it without calling into it: what every call pays before
    /// the guest runs. For benchmarks and readiness checks.
    pub async fn instantiate_once(&self) -> Result<(), CallError> {
        self.runner.instantiate_once(&self.pre).await
    }

    /// The stream `name`, if the connector has it.
    pub fn stream(&self, name: &str) -> Option<&crate::bindings::StreamDescriptor> {
        self.info.streams.iter().find(|s| s.name == name)
    }

    /// The JSON Schema of one record of stream `name`, if the connector has it.
    pub fn schema(&self, stream: &str) -> Option<&Arc<serde_json::Value>> {
        self.schemas.get(stream)
    }

    pub async fn check(
        &self,
        context: &CallContext,
        connection: &str,
        config: &serde_json::Value,
    ) -> Result<(), CallError> {
        let conn = Connection {
            name: connection.to_owned(),
            config: json(config),
        };
        self.runner
            .invoke(
                context,
                Some(connection.to_owned()),
                &self.pre,
                move |i, s| {
                    Box::pin(
                        async move { i.weft_plugin_connector_api().call_check(s, &conn).await },
                    )
                },
            )
            .await
    }

    pub async fn read(
        &self,
        context: &CallContext,
        connection: &str,
        config: &serde_json::Value,
        request: ReadRequest,
    ) -> Result<Page, CallError> {
        let conn = Connection {
            name: connection.to_owned(),
            config: json(config),
        };
        let page = self
            .runner
            .invoke(
                context,
                Some(connection.to_owned()),
                &self.pre,
                move |i, s| {
                    Box::pin(async move {
                        i.weft_plugin_connector_api()
                            .call_read(s, &conn, &request)
                            .await
                    })
                },
            )
            .await?;
        self.runner.check_output(page.records.len())?;
        Ok(page)
    }

    /// Writes a batch; the answer has exactly one outcome per record, in order.
    pub async fn write(
        &self,
        context: &CallContext,
        connection: &str,
        config: &serde_json::Value,
        request: WriteRequest,
        records: usize,
    ) -> Result<Vec<WriteOutcome>, CallError> {
        let conn = Connection {
            name: connection.to_owned(),
            config: json(config),
        };
        let outcomes = self
            .runner
            .invoke(
                context,
                Some(connection.to_owned()),
                &self.pre,
                move |i, s| {
                    Box::pin(async move {
                        i.weft_plugin_connector_api()
                            .call_write(s, &conn, &request)
                            .await
                    })
                },
            )
            .await?;
        if outcomes.len() != records {
            return Err(CallError::Malformed {
                plugin: self.runner.name.to_string(),
                reason: format!(
                    "write returned {} outcomes for {records} records",
                    outcomes.len()
                ),
            });
        }
        let redactor = context.redactor();
        Ok(outcomes
            .into_iter()
            .map(|o| WriteOutcome {
                error: o.error.map(|e| clean_error(e, &redactor)),
                ..o
            })
            .collect())
    }

    pub async fn verify(
        &self,
        context: &CallContext,
        connection: &str,
        config: &serde_json::Value,
        request: InboundRequest,
    ) -> Result<Verification, CallError> {
        let conn = Connection {
            name: connection.to_owned(),
            config: json(config),
        };
        let verification = self
            .runner
            .invoke(
                context,
                Some(connection.to_owned()),
                &self.pre,
                move |i, s| {
                    Box::pin(async move {
                        i.weft_plugin_connector_api()
                            .call_verify(s, &conn, &request)
                            .await
                    })
                },
            )
            .await?;
        match verification {
            Verification::Accepted(events) => {
                self.runner
                    .check_output(events.iter().map(|e| e.record.len()).sum())?;
                Ok(Verification::Accepted(events))
            }
            Verification::Rejected(reason) => Ok(Verification::Rejected(
                context.redactor().clean(&reason, MAX_MESSAGE_BYTES),
            )),
            handshake => Ok(handshake),
        }
    }

    pub async fn subscribe(
        &self,
        context: &CallContext,
        connection: &str,
        config: &serde_json::Value,
        callback_url: &str,
        events: Vec<String>,
    ) -> Result<Subscription, CallError> {
        let conn = Connection {
            name: connection.to_owned(),
            config: json(config),
        };
        let url = callback_url.to_owned();
        self.runner
            .invoke(
                context,
                Some(connection.to_owned()),
                &self.pre,
                move |i, s| {
                    Box::pin(async move {
                        i.weft_plugin_connector_api()
                            .call_subscribe(s, &conn, &url, &events)
                            .await
                    })
                },
            )
            .await
    }

    pub async fn unsubscribe(
        &self,
        context: &CallContext,
        connection: &str,
        config: &serde_json::Value,
        subscription_id: &str,
    ) -> Result<(), CallError> {
        let conn = Connection {
            name: connection.to_owned(),
            config: json(config),
        };
        let id = subscription_id.to_owned();
        self.runner
            .invoke(
                context,
                Some(connection.to_owned()),
                &self.pre,
                move |i, s| {
                    Box::pin(async move {
                        i.weft_plugin_connector_api()
                            .call_unsubscribe(s, &conn, &id)
                            .await
                    })
                },
            )
            .await
    }
}

/// A loaded transform.
pub struct TransformPlugin {
    runner: Runner,
    pre: TransformPre<StoreData>,
    info: TransformInfo,
    load: LoadReport,
}

impl TransformPlugin {
    pub fn info(&self) -> &TransformInfo {
        &self.info
    }
    pub fn load_report(&self) -> &LoadReport {
        &self.load
    }

    /// Creates one instance and drops it without calling into it: what every call pays before
    /// the guest runs. For benchmarks and readiness checks.
    pub async fn instantiate_once(&self) -> Result<(), CallError> {
        self.runner.instantiate_once(&self.pre).await
    }

    /// The schema of the records a step with `config` produces from `input` (and `lookup`).
    pub async fn output_schema(
        &self,
        context: &CallContext,
        config: &serde_json::Value,
        input: &serde_json::Value,
        lookup: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, CallError> {
        let (config, input, lookup) = (json(config), json(input), lookup.map(json));
        let schema = self
            .runner
            .invoke(context, None, &self.pre, move |i, s| {
                Box::pin(async move {
                    i.weft_plugin_transform_api()
                        .call_output_schema(s, &config, &input, lookup.as_ref())
                        .await
                })
            })
            .await?;
        serde_json::from_str(&schema).map_err(|e| CallError::Malformed {
            plugin: self.runner.name.to_string(),
            reason: format!("output schema is not JSON: {e}"),
        })
    }

    /// Runs one batch. `batch.records` is the JSON text of an array of records. Each reject
    /// names a record of the batch (an index past its end fails the call as malformed) and its
    /// text is scrubbed like an error's.
    pub async fn process(
        &self,
        context: &CallContext,
        batch: Batch,
    ) -> Result<BatchResult, CallError> {
        let (result, inputs) = self
            .runner
            .invoke(context, None, &self.pre, move |i, s| {
                Box::pin(async move {
                    let result = i
                        .weft_plugin_transform_api()
                        .call_process(s, &batch)
                        .await?;
                    // Counted only when needed: rejects are rare, batches are large.
                    let inputs = match &result {
                        Ok(r) if !r.rejects.is_empty() => count_records(&batch.records),
                        _ => 0,
                    };
                    Ok(result.map(|r| (r, inputs)))
                })
            })
            .await?;
        self.runner.check_output(result.records.len())?;
        if let Some(reject) = result.rejects.iter().find(|r| r.index as usize >= inputs) {
            return Err(CallError::Malformed {
                plugin: self.runner.name.to_string(),
                reason: format!(
                    "a reject names record {} of a batch of {inputs}",
                    reject.index
                ),
            });
        }
        let redactor = context.redactor();
        let rejects = result
            .rejects
            .into_iter()
            .map(|r| Reject {
                index: r.index,
                reason: redactor.clean(&r.reason, MAX_MESSAGE_BYTES),
                field: r.field.map(|f| redactor.clean(&f, 256)),
            })
            .collect();
        Ok(BatchResult {
            records: result.records,
            rejects,
        })
    }
}
