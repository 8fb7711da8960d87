//! Binding a checked flow to its plugins: every check that needs the plugins' own words.
//!
//! A flow that plans cleanly names streams its connectors have, in sync and write modes they
//! support, with credentials they accept, and its transforms refer only to fields their inputs
//! carry: the JSON Schemas the connectors declare flow through each transform's
//! `output-schema`, step by step, before any data moves.
//!
//! The plan is a list of [`PlannedStep`]s in dependency order, each with what its kind needs
//! bound ([`Work`]: plugins, encoded configs, where records come from or go) and the steps that
//! read it. Planning one kind is one function of the `steps` module.

mod connections;
mod steps;
mod variables;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use toml::Spanned;
use weft_capabilities::{Connection, ConnectionError, ConnectionSpec, Connections, Secrets};
use weft_flow::model::{Branch, RunAfter, SyncMode, WriteMode};
use weft_flow::{Diagnostic, Flow, FlowError, StepId};
use weft_runtime::bindings::PluginError;
use weft_runtime::{
    CallContext, CallError, ConnectorPlugin, Runtime, SharedPlugin, TransformPlugin,
};

use crate::plugins::{Connector, Transformer};
use crate::registry::PluginDirectory;

pub use variables::Variables;

/// A connection ready to be built: its plugin and the capability spec from the flow's entry.
pub struct BoundConnection {
    pub plugin: Arc<ConnectorPlugin>,
    pub config: Value,
    pub spec: ConnectionSpec,
}

impl BoundConnection {
    /// A context for calling this connection's plugin outside a run (a webhook delivery, a
    /// registration, a check): the connection alone, with its credential, for `flow`.
    pub fn context(
        &self,
        secrets: &Secrets,
        tenant: &str,
        flow: &str,
    ) -> Result<CallContext, ConnectionError> {
        let mut connections = Connections::new();
        connections.insert(Connection::new(self.spec.clone(), secrets.clone())?);
        Ok(CallContext::new(tenant.to_owned())
            .with_connections(connections)
            .in_flow(flow.to_owned()))
    }
}

/// A flow bound to its plugins, for one environment.
pub struct Plan {
    pub connections: BTreeMap<String, Box<BoundConnection>>,
    /// Connections to weft's own datasets (`plugin = "dataset"`): streams are dataset names.
    pub datasets: BTreeSet<String>,
    /// Every step, each after the steps it reads.
    pub steps: Vec<PlannedStep>,
    /// Variable values in force.
    pub variables: Variables,
}

impl Plan {
    /// The planned step `id`.
    pub fn step(&self, id: &StepId) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| &s.id == id)
    }
}

/// One step as it will run.
pub struct PlannedStep {
    pub id: StepId,
    pub work: Work,
    /// The JSON Schema of the records the step hands on (`null`: whatever they are, or a
    /// write's that no step reads).
    pub schema: Arc<Value>,
    /// The steps taking this one's records, in flow order, with the branch each takes.
    pub readers: Vec<Reader>,
    /// How long one call of the step may take, retries included.
    pub timeout: Option<Duration>,
    /// Steps that must have ended so before this (a read) starts.
    pub run_after: Vec<(StepId, RunAfter)>,
}

impl PlannedStep {
    /// The step whose records this one takes (all kinds but `read`), and on which branch.
    pub fn input(&self) -> Option<(&StepId, Branch)> {
        match &self.work {
            Work::Read(_) => None,
            Work::Transform(t) => Some((&t.input, t.branch)),
            Work::Condition(c) => Some((&c.input, c.branch)),
            Work::ForEach(f) => Some((&f.input, f.branch)),
            Work::Write(w) => Some((&w.input, w.branch)),
        }
    }

    /// Whether any step reads this one's `branch`.
    pub fn is_read_on(&self, branch: Branch) -> bool {
        self.readers.iter().any(|r| r.branch == branch)
    }
}

/// A step taking another's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub step: StepId,
    pub branch: Branch,
}

/// What a step does, with everything it needs bound.
pub enum Work {
    Read(ReadWork),
    Transform(TransformWork),
    Condition(ConditionWork),
    ForEach(ForEachWork),
    Write(WriteWork),
}

/// A connector behind a connection of the flow.
#[derive(Clone)]
pub struct BoundConnector {
    pub connection: String,
    pub plugin: Arc<dyn Connector>,
    pub config: Value,
}

pub struct ReadWork {
    /// The connector read: a plugin, or weft's datasets.
    pub from: BoundConnector,
    pub stream: String,
    pub sync: SyncMode,
    /// The read's `options`, with variables filled in, as JSON text.
    pub options: String,
    pub page_size: Option<u32>,
}

pub struct TransformWork {
    pub input: StepId,
    pub branch: Branch,
    pub plugin: Arc<dyn Transformer>,
    /// The step's config with variables filled in, as JSON text.
    pub config: String,
    /// The step whose records are the lookup table.
    pub lookup: Option<StepId>,
}

pub struct ConditionWork {
    pub input: StepId,
    pub branch: Branch,
    /// The transform evaluating CEL.
    pub plugin: Arc<dyn Transformer>,
    /// The filter's config naming the positions of the records `when` holds for, as JSON
    /// text.
    pub config: String,
}

pub struct ForEachWork {
    pub input: StepId,
    pub branch: Branch,
    pub connector: BoundConnector,
    pub stream: String,
    /// The options, variables filled in; `${record.FIELD}` is filled per record.
    pub options: Value,
    pub page_size: Option<u32>,
    pub concurrency: usize,
    pub parent_field: Option<String>,
}

pub struct WriteWork {
    pub input: StepId,
    pub branch: Branch,
    /// The connector written: a plugin, or weft's datasets.
    pub to: BoundConnector,
    pub stream: String,
    pub mode: WriteMode,
    pub key: Vec<String>,
    pub batch_size: Option<usize>,
}

/// The plugin name of weft's built-in dataset connection.
pub const DATASET: &str = "dataset";

/// The transform that evaluates `condition` steps: one place for CEL, inside the sandbox.
pub const CONDITION_PLUGIN: &str = "filter";

fn at<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    Some(s.span())
}

fn plugin_message(e: &CallError) -> String {
    match e.plugin_error() {
        Some(PluginError::Config(m)) => m.clone(),
        Some(other) => other.message(),
        None => e.to_string(),
    }
}

/// Loads each plugin a flow names once.
struct Loader<'a> {
    plugins: &'a PluginDirectory,
    runtime: &'a Runtime,
    flow_dir: std::path::PathBuf,
    /// A plugin named `${var.NAME}` (or `hubspot@${var.NAME}`) is found by the variable's
    /// value.
    variables: &'a Variables,
    loaded: BTreeMap<String, Result<SharedPlugin, String>>,
}

impl Loader<'_> {
    /// The plugin a flow names, variables filled in.
    fn name(&self, name: &Spanned<String>) -> String {
        variables::substitute_text(name.get_ref(), self.variables)
    }

    async fn get(&mut self, name: &Spanned<String>) -> Result<SharedPlugin, Diagnostic> {
        let key = &self.name(name);
        if !self.loaded.contains_key(key) {
            let result = match self.plugins.find(key, &self.flow_dir) {
                Ok(path) => self
                    .runtime
                    .load_file_shared(&path)
                    .await
                    .map_err(|e| e.to_string()),
                Err(message) => Err(message),
            };
            self.loaded.insert(key.clone(), result);
        }
        self.loaded[key]
            .clone()
            .map_err(|message| Diagnostic::new(message, at(name)))
    }

    /// The transform `name`, or why it cannot be one.
    async fn transform(
        &mut self,
        name: &Spanned<String>,
    ) -> Result<Arc<TransformPlugin>, Diagnostic> {
        match self.get(name).await? {
            SharedPlugin::Transform(p) => Ok(p),
            SharedPlugin::Connector(_) => Err(Diagnostic::new(
                format!(
                    "plugin `{}` is a connector, not a transform",
                    self.name(name)
                ),
                at(name),
            )),
        }
    }
}

/// What a plan is made for besides the flow: the environment, the tenant, and variable values
/// given at the command line (`--var NAME=VALUE`), which win over the environment's.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub environment: Option<String>,
    pub tenant: String,
    /// Values as text, read by each variable's declared type.
    pub variables: BTreeMap<String, String>,
}

/// Binds `flow` to its plugins for `environment` (none: the defaults), or reports every
/// problem the plugins reveal, pointing into the flow file.
pub async fn plan(
    flow: &Flow,
    environment: Option<&str>,
    tenant: &str,
    plugins: &PluginDirectory,
    runtime: &Runtime,
) -> Result<Plan, FlowError> {
    let options = PlanOptions {
        environment: environment.map(str::to_owned),
        tenant: tenant.to_owned(),
        variables: BTreeMap::new(),
    };
    plan_with(flow, &options, plugins, runtime).await
}

/// [`plan`] with variable values from the command line.
pub async fn plan_with(
    flow: &Flow,
    options: &PlanOptions,
    plugins: &PluginDirectory,
    runtime: &Runtime,
) -> Result<Plan, FlowError> {
    let file = &flow.file;
    let mut out: Vec<Diagnostic> = Vec::new();
    check_schedules(flow, &mut out);
    let env = match options.environment.as_deref() {
        None => None,
        Some(name) => match file.environments.iter().find(|(k, _)| k.get_ref() == name) {
            Some((_, env)) => Some(env.get_ref()),
            None => {
                let known: Vec<&str> = file
                    .environments
                    .keys()
                    .map(|k| k.get_ref().as_str())
                    .collect();
                return Err(flow.error(vec![
                    Diagnostic::new(
                        format!("this flow has no environment `{name}`"),
                        at(&file.name),
                    )
                    .help(if known.is_empty() {
                        format!("declare it as [environments.{name}]")
                    } else {
                        format!("it has: {}", known.join(", "))
                    }),
                ]));
            }
        },
    };
    let variables = variables::resolve(file, env, options, &mut out);
    let mut loader = Loader {
        plugins,
        runtime,
        flow_dir: flow.path.parent().unwrap_or(Path::new(".")).to_owned(),
        variables: &variables,
        loaded: BTreeMap::new(),
    };
    let (connections, datasets) = connections::bind(
        file,
        env,
        &variables,
        &options.tenant,
        &mut loader,
        &mut out,
    )
    .await;
    let steps = steps::plan(
        flow,
        &steps::Bindings {
            connections: &connections,
            datasets: &datasets,
            variables: &variables,
            tenant: &options.tenant,
        },
        &mut loader,
        &mut out,
    )
    .await;
    if !out.is_empty() {
        return Err(flow.error(out));
    }
    Ok(Plan {
        connections,
        datasets,
        steps,
        variables,
    })
}

/// A schedule that can never fire (the 30th of February) is a mistake, not a quiet flow.
fn check_schedules(flow: &Flow, out: &mut Vec<Diagnostic>) {
    let Some(trigger) = &flow.file.trigger else {
        return;
    };
    let t = trigger.get_ref();
    for cron in [&t.schedule, &t.poll]
        .into_iter()
        .flatten()
        .filter_map(|s| s.get_ref().cron.as_ref())
    {
        if crate::schedule::never_fires(&cron.get_ref().0) {
            out.push(
                Diagnostic::new(
                    format!(
                        "the schedule `{}` never fires: no date matches all of its fields",
                        cron.get_ref().0
                    ),
                    at(cron),
                )
                .help(
                    "check the day of month against the month (30 and 31 do not exist in every month)",
                ),
            );
        }
    }
}
