//! Binding a checked flow to its plugins: every check that needs the plugins' own words.
//!
//! A flow that plans cleanly names streams its connectors have, in sync and write modes they
//! support, with credentials they accept, and its transforms refer only to fields their inputs
//! carry: the JSON Schemas the connectors declare flow through each transform's
//! `output-schema`, step by step, before any data moves.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use toml::Spanned;
use weft_capabilities::{AuthSpec, ConnectionSpec, HostRule};
use weft_flow::model::{EgressRule, SyncMode};
use weft_flow::{Diagnostic, Flow, FlowError, StepId};
use weft_runtime::bindings::{PluginError, StreamDescriptor};
use weft_runtime::{CallContext, CallError, ConnectorPlugin, Plugin, Runtime, TransformPlugin};

use crate::registry::PluginDirectory;

/// A connection ready to be built: its plugin and the capability spec from the flow's entry.
pub struct BoundConnection {
    pub plugin: Arc<ConnectorPlugin>,
    pub config: Value,
    pub spec: ConnectionSpec,
}

/// A flow bound to its plugins, for one environment.
pub struct Plan {
    pub connections: BTreeMap<String, BoundConnection>,
    /// Connections to weft's own datasets (`plugin = "dataset"`): streams are dataset names.
    pub datasets: std::collections::BTreeSet<String>,
    /// The transform plugin of each transform step.
    pub transforms: BTreeMap<StepId, Arc<TransformPlugin>>,
    /// Each step's transform config with variables filled in (transform steps only).
    pub configs: BTreeMap<StepId, Value>,
    /// The JSON Schema of the records each step produces (read and transform steps).
    pub schemas: BTreeMap<StepId, Value>,
    /// Read and for-each steps' `options` with variables filled in.
    pub options: BTreeMap<StepId, Value>,
    /// Variable values in force.
    pub variables: BTreeMap<String, toml::Value>,
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

/// Replaces `${var.NAME}` in strings and keys: a string that is only a reference takes the
/// variable's value and type; references inside text are replaced by the value's text.
fn substitute(value: &mut toml::Value, vars: &BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::String(s) => {
            if let Some(name) = s.strip_prefix("${var.").and_then(|r| r.strip_suffix('}')) {
                if let Some(v) = vars.get(name) {
                    *value = v.clone();
                    return;
                }
            }
            *s = substitute_text(s, vars);
        }
        toml::Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, vars)),
        toml::Value::Table(t) => substitute_table(t, vars),
        _ => {}
    }
}

fn substitute_text(text: &str, vars: &BTreeMap<String, toml::Value>) -> String {
    let mut out = text.to_owned();
    for (name, value) in vars {
        let shown = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("${{var.{name}}}"), &shown);
    }
    out
}

fn substitute_table(table: &mut toml::Table, vars: &BTreeMap<String, toml::Value>) {
    let entries = std::mem::take(table);
    for (key, mut value) in entries {
        substitute(&mut value, vars);
        table.insert(substitute_text(&key, vars), value);
    }
}

fn json(table: Option<&Spanned<toml::Table>>, vars: &BTreeMap<String, toml::Value>) -> Value {
    let mut table = table.map(|t| t.get_ref().clone()).unwrap_or_default();
    substitute_table(&mut table, vars);
    serde_json::to_value(table).unwrap_or(Value::Null)
}

fn properties(schema: &Value) -> Option<Vec<&str>> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
}

/// A plugin as loaded for a plan, shared by every step and connection that names it.
#[derive(Clone)]
enum Loaded {
    Connector(Arc<ConnectorPlugin>),
    Transform(Arc<TransformPlugin>),
}

/// Loads each plugin a flow names once.
struct Loader<'a> {
    plugins: &'a PluginDirectory,
    runtime: &'a Runtime,
    flow_dir: std::path::PathBuf,
    loaded: BTreeMap<String, Result<Loaded, String>>,
}

impl Loader<'_> {
    async fn get(&mut self, name: &Spanned<String>) -> Result<Loaded, Diagnostic> {
        let key = name.get_ref();
        if !self.loaded.contains_key(key) {
            let result = match self.plugins.find(key, &self.flow_dir) {
                Ok(path) => self
                    .runtime
                    .load_file(&path)
                    .await
                    .map_err(|e| e.to_string())
                    .map(|p| match p {
                        Plugin::Connector(c) => Loaded::Connector(Arc::new(c)),
                        Plugin::Transform(t) => Loaded::Transform(Arc::new(t)),
                    }),
                Err(message) => Err(message),
            };
            self.loaded.insert(key.clone(), result);
        }
        self.loaded[key]
            .clone()
            .map_err(|message| Diagnostic::new(message, at(name)))
    }
}

/// The schema of a transform's rejected records: its input's, plus `_rejected`.
fn with_rejection(input: &Value) -> Value {
    with_field(
        input,
        "_rejected",
        serde_json::json!({"type": "object", "properties": {"reason": {"type": "string"}, "field": {"type": ["string", "null"]}}}),
    )
}

/// `schema` with one more property, when it lists its properties.
fn with_field(schema: &Value, name: &str, field: Value) -> Value {
    let mut schema = schema.clone();
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(name.into(), field);
    }
    schema
}

fn find_stream<'a>(
    connector: &'a ConnectorPlugin,
    name: &Spanned<String>,
) -> Result<&'a StreamDescriptor, Diagnostic> {
    connector.stream(name.get_ref()).ok_or_else(|| {
        let streams: Vec<&str> = connector
            .info()
            .streams
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let near = streams
            .iter()
            .find(|s| s.eq_ignore_ascii_case(name.get_ref()))
            .map(|s| format!("did you mean `{s}`? "));
        Diagnostic::new(
            format!(
                "connector `{}` has no stream `{}`",
                connector.info().name,
                name.get_ref()
            ),
            at(name),
        )
        .help(format!(
            "{}it has: {}",
            near.unwrap_or_default(),
            streams.join(", ")
        ))
    })
}

fn wit_mode(mode: weft_runtime::bindings::WriteMode) -> &'static str {
    use weft_runtime::bindings::WriteMode as M;
    match mode {
        M::Create => "create",
        M::Update => "update",
        M::Upsert => "upsert",
        M::Delete => "delete",
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

/// A variable's value given as text, read as the variable's declared type.
fn typed_value(kind: weft_flow::model::VarType, text: &str) -> Result<toml::Value, String> {
    use weft_flow::model::VarType;
    match kind {
        VarType::String => Ok(toml::Value::String(text.to_owned())),
        VarType::Number => text
            .parse::<i64>()
            .map(toml::Value::Integer)
            .or_else(|_| text.parse::<f64>().map(toml::Value::Float))
            .map_err(|_| format!("`{text}` is not a number")),
        VarType::Bool => text.parse::<bool>().map(toml::Value::Boolean).map_err(|_| format!("`{text}` is not `true` or `false`")),
        VarType::Json => {
            let json: Value = serde_json::from_str(text).map_err(|e| format!("`{text}` is not JSON: {e}"))?;
            toml::Value::try_from(json).map_err(|e| format!("`{text}` cannot be a flow value: {e}"))
        }
        VarType::Secret if text.starts_with("secret:") || text.starts_with("env:") => Ok(toml::Value::String(text.to_owned())),
        VarType::Secret => Err("a secret variable takes a reference, `secret:NAME` or `env:NAME`, never the secret itself".to_owned()),
    }
}

/// [`plan`] with variable values from the command line.
pub async fn plan_with(
    flow: &Flow,
    options: &PlanOptions,
    plugins: &PluginDirectory,
    runtime: &Runtime,
) -> Result<Plan, FlowError> {
    let (environment, tenant) = (options.environment.as_deref(), options.tenant.as_str());
    let file = &flow.file;
    let mut out: Vec<Diagnostic> = Vec::new();
    let flow_dir = flow.path.parent().unwrap_or(Path::new(".")).to_owned();

    // A schedule that can never fire (the 30th of February) is a mistake, not a quiet flow.
    if let Some(trigger) = &file.trigger {
        let t = trigger.get_ref();
        for cron in [&t.schedule, &t.poll]
            .into_iter()
            .flatten()
            .filter_map(|s| s.get_ref().cron.as_ref())
        {
            if crate::schedule::never_fires(&cron.get_ref().0) {
                out.push(
                    Diagnostic::new(format!("the schedule `{}` never fires: no date matches all of its fields", cron.get_ref().0), at(cron))
                        .help("check the day of month against the month (30 and 31 do not exist in every month)"),
                );
            }
        }
    }

    // The environment: variable values and connection overrides.
    let env = match environment {
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
    let mut variables = BTreeMap::new();
    for given in options.variables.keys() {
        if !file.variables.keys().any(|k| k.get_ref().as_str() == given) {
            let known: Vec<&str> = file
                .variables
                .keys()
                .map(|k| k.get_ref().as_str())
                .collect();
            out.push(
                Diagnostic::new(
                    format!("`--var {given}=...` names a variable this flow does not declare"),
                    at(&file.name),
                )
                .help(if known.is_empty() {
                    "the flow declares no variables".to_owned()
                } else {
                    format!("it declares: {}", known.join(", "))
                }),
            );
        }
    }
    for (name, variable) in &file.variables {
        if let Some(text) = options.variables.get(name.get_ref().as_str()) {
            match typed_value(variable.get_ref().kind, text) {
                Ok(v) => {
                    variables.insert(name.get_ref().to_string(), v);
                }
                Err(why) => out.push(Diagnostic::new(
                    format!("`--var {}`: {why}", name.get_ref()),
                    at(name),
                )),
            }
            continue;
        }
        let value = env
            .and_then(|e| {
                e.variables
                    .iter()
                    .find(|(k, _)| k.get_ref() == name.get_ref())
                    .map(|(_, v)| v.get_ref().clone())
            })
            .or_else(|| {
                variable
                    .get_ref()
                    .default
                    .as_ref()
                    .map(|d| d.get_ref().clone())
            });
        match value {
            Some(v) => {
                variables.insert(name.get_ref().to_string(), v);
            }
            None => out.push(
                Diagnostic::new(
                    format!(
                        "variable `{}` has no value{}",
                        name.get_ref(),
                        environment
                            .map(|e| format!(" in environment `{e}`"))
                            .unwrap_or_default()
                    ),
                    at(name),
                )
                .help("give it a `default` or set it under [environments.NAME.variables]"),
            ),
        }
    }

    let mut loader = Loader {
        plugins,
        runtime,
        flow_dir,
        loaded: BTreeMap::new(),
    };

    // Connections.
    let mut connections = BTreeMap::new();
    let mut datasets = std::collections::BTreeSet::new();
    for (name, connection) in &file.connections {
        let c = connection.get_ref();
        if c.plugin.get_ref() == DATASET {
            datasets.insert(name.get_ref().to_string());
            continue;
        }
        let connector = match loader.get(&c.plugin).await {
            Ok(Loaded::Connector(p)) => p,
            Ok(Loaded::Transform(_)) => {
                out.push(Diagnostic::new(
                    format!(
                        "plugin `{}` is a transform, not a connector",
                        c.plugin.get_ref()
                    ),
                    at(&c.plugin),
                ));
                continue;
            }
            Err(d) => {
                out.push(d);
                continue;
            }
        };
        let overrides = env.and_then(|e| {
            e.connections
                .iter()
                .find(|(k, _)| k.get_ref() == name.get_ref())
                .map(|(_, v)| v.get_ref())
        });
        let config_table = overrides
            .and_then(|o| o.config.as_ref())
            .or(c.config.as_ref());
        let auth_table = overrides.and_then(|o| o.auth.as_ref()).or(c.auth.as_ref());
        let egress: &[Spanned<EgressRule>] = overrides
            .and_then(|o| o.egress.as_deref())
            .unwrap_or(&c.egress);
        let config = json(config_table, &variables);
        let auth = match auth_table {
            None => AuthSpec::None,
            Some(table) => {
                let mut t = table.get_ref().clone();
                substitute_table(&mut t, &variables);
                match toml::Value::Table(t).try_into::<AuthSpec>() {
                    Ok(a) => a,
                    Err(e) => {
                        out.push(Diagnostic::new(
                            format!(
                                "connection `{}` auth: {}",
                                name.get_ref(),
                                e.message().trim()
                            ),
                            at(table),
                        ));
                        continue;
                    }
                }
            }
        };
        let mut rules = Vec::new();
        for rule in egress {
            let r = rule.get_ref();
            match HostRule::parse(&substitute_text(r.host.get_ref(), &variables)) {
                Ok(h) => rules.push(
                    h.allow_http(r.allow_http)
                        .allow_private(r.allow_private)
                        .credential(r.credential),
                ),
                Err(e) => out.push(Diagnostic::new(e.to_string(), at(&r.host))),
            }
        }
        match connector.connection_spec(
            name.get_ref().as_str(),
            tenant,
            config.clone(),
            auth,
            rules,
        ) {
            Ok(mut spec) => {
                if let Some(secret) = &c.webhook_secret {
                    spec.webhook_secret = Some(weft_capabilities::SecretRef::from(
                        substitute_text(secret.get_ref(), &variables),
                    ));
                }
                if let Some(rate) = &c.rate {
                    let r = rate.get_ref();
                    if r.requests == 0 {
                        out.push(Diagnostic::new(
                            "a rate of zero requests would never send anything",
                            at(rate),
                        ));
                    }
                    spec.rate = Some(weft_capabilities::RateBudget {
                        requests: r.requests,
                        per: r.per.0,
                    });
                }
                connections.insert(
                    name.get_ref().to_string(),
                    BoundConnection {
                        plugin: connector,
                        config,
                        spec,
                    },
                );
            }
            Err(e) => out.push(Diagnostic::new(
                e.to_string(),
                Some(config_table.map_or(c.plugin.span(), |t| t.span())),
            )),
        }
    }

    // Steps, in dependency order, carrying each step's output schema forward.
    let mut schemas: BTreeMap<StepId, Value> = BTreeMap::new();
    // What a transform's `rejected` branch carries: its input records, with `_rejected`.
    let mut rejected: BTreeMap<StepId, Value> = BTreeMap::new();
    let mut configs = BTreeMap::new();
    let mut transforms = BTreeMap::new();
    let mut options = BTreeMap::new();
    let context = CallContext::new(tenant);
    // While a step on a transform's rejected branch is planned, the transform's schema is what
    // that branch carries (its input, plus why); restored before the next step.
    let mut restore: Option<(StepId, Option<Value>)> = None;
    for id in &flow.order {
        if let Some((input, saved)) = restore.take() {
            match saved {
                Some(schema) => schemas.insert(input, schema),
                None => schemas.remove(&input),
            };
        }
        let Some(step) = flow.step(id) else { continue };
        if let (Some(input), Some(branch)) = (step.input(), step.branch()) {
            if *branch.get_ref() == weft_flow::model::Branch::Rejected {
                if let Some(schema) = rejected.get(input.get_ref()).cloned() {
                    let saved = schemas.insert(input.get_ref().clone(), schema);
                    restore = Some((input.get_ref().clone(), saved));
                }
            }
        }
        if let Some(read) = &step.read {
            let r = read.get_ref();
            options.insert(id.clone(), json(r.options.as_ref(), &variables));
            if datasets.contains(r.connection.get_ref().as_str()) {
                // A dataset holds whatever was written to it.
                schemas.insert(id.clone(), Value::Null);
                continue;
            }
            let Some(bound) = connections.get(r.connection.get_ref().as_str()) else {
                continue;
            };
            let connector = &bound.plugin;
            match find_stream(connector, &r.stream) {
                Ok(stream) => {
                    if r.sync == SyncMode::Incremental && stream.cursor_field.is_none() {
                        out.push(
                            Diagnostic::new(
                                format!(
                                    "stream `{}` of `{}` cannot be read incrementally",
                                    stream.name,
                                    connector.info().name
                                ),
                                at(read),
                            )
                            .help("use `sync = \"full\"`"),
                        );
                    }
                    schemas.insert(
                        id.clone(),
                        serde_json::from_str(&stream.schema).unwrap_or(Value::Null),
                    );
                }
                Err(d) => out.push(d),
            }
        }
        if let Some(transform) = &step.transform {
            let t = transform.get_ref();
            let tp = match loader.get(&t.plugin).await {
                Ok(Loaded::Transform(p)) => p,
                Ok(Loaded::Connector(_)) => {
                    out.push(Diagnostic::new(
                        format!(
                            "plugin `{}` is a connector, not a transform",
                            t.plugin.get_ref()
                        ),
                        at(&t.plugin),
                    ));
                    continue;
                }
                Err(d) => {
                    out.push(d);
                    continue;
                }
            };
            if t.lookup.is_some() && !tp.info().takes_lookup {
                out.push(Diagnostic::new(
                    format!("transform `{}` takes no lookup input", tp.info().name),
                    at(t.lookup.as_ref().unwrap()),
                ));
            }
            let config = json(step.config.as_ref(), &variables);
            let input = schemas
                .get(t.input.get_ref())
                .cloned()
                .unwrap_or(Value::Null);
            rejected.insert(id.clone(), with_rejection(&input));
            let lookup = t
                .lookup
                .as_ref()
                .and_then(|l| schemas.get(l.get_ref()).cloned());
            match tp
                .output_schema(&context, &config, &input, lookup.as_ref())
                .await
            {
                Ok(schema) => {
                    schemas.insert(id.clone(), schema);
                }
                Err(e) => {
                    let span = step
                        .config
                        .as_ref()
                        .map(|c| c.span())
                        .unwrap_or(transform.span());
                    out.push(Diagnostic::new(
                        format!("step `{id}`: {}", plugin_message(&e)),
                        Some(span),
                    ));
                }
            }
            configs.insert(id.clone(), config);
            transforms.insert(id.clone(), tp);
        }
        if let Some(condition) = &step.condition {
            let c = condition.get_ref();
            let name = Spanned::new(condition.span(), CONDITION_PLUGIN.to_owned());
            let filter = match loader.get(&name).await {
                Ok(Loaded::Transform(p)) => p,
                Ok(Loaded::Connector(_)) => {
                    out.push(Diagnostic::new(format!("plugin `{CONDITION_PLUGIN}` evaluates conditions, but the one found is a connector"), at(condition)));
                    continue;
                }
                Err(d) => {
                    out.push(d.help(format!("condition steps are evaluated by the built-in `{CONDITION_PLUGIN}` transform; build the first-party plugins")));
                    continue;
                }
            };
            let mut when = toml::Value::String(c.when.get_ref().clone());
            substitute(&mut when, &variables);
            let config = serde_json::json!({ "when": when.as_str().unwrap_or_default() });
            let input = schemas
                .get(c.input.get_ref())
                .cloned()
                .unwrap_or(Value::Null);
            match filter.output_schema(&context, &config, &input, None).await {
                Ok(schema) => {
                    schemas.insert(id.clone(), schema);
                }
                Err(e) => out.push(Diagnostic::new(
                    format!("step `{id}`: {}", plugin_message(&e)),
                    at(&c.when),
                )),
            }
            configs.insert(id.clone(), config);
            transforms.insert(id.clone(), filter);
        }
        if let Some(for_each) = &step.for_each {
            let f = for_each.get_ref();
            options.insert(id.clone(), json(f.options.as_ref(), &variables));
            if datasets.contains(f.connection.get_ref().as_str()) {
                out.push(
                    Diagnostic::new(
                        "for_each reads a connector's stream, not a dataset",
                        at(&f.connection),
                    )
                    .help("read the dataset with a read step and join it with `merge` or `lookup`"),
                );
                continue;
            }
            let Some(bound) = connections.get(f.connection.get_ref().as_str()) else {
                continue;
            };
            match find_stream(&bound.plugin, &f.stream) {
                Ok(stream) => {
                    if !stream
                        .sync_modes
                        .contains(&weft_runtime::bindings::SyncMode::Full)
                    {
                        out.push(Diagnostic::new(
                            format!(
                                "stream `{}` of `{}` cannot be read",
                                stream.name,
                                bound.plugin.info().name
                            ),
                            at(&f.stream),
                        ));
                    }
                    let mut schema = serde_json::from_str(&stream.schema).unwrap_or(Value::Null);
                    if let (Some(parent), Some(props)) = (
                        &f.parent_field,
                        schema.get_mut("properties").and_then(Value::as_object_mut),
                    ) {
                        let input = schemas
                            .get(f.input.get_ref())
                            .cloned()
                            .unwrap_or_else(|| serde_json::json!({"type": "object"}));
                        props.insert(parent.clone(), input);
                    }
                    schemas.insert(id.clone(), schema);
                }
                Err(d) => out.push(d),
            }
        }
        if let Some(write) = &step.write {
            let w = write.get_ref();
            // What the `written` branch carries: the input records, with the upstream's id.
            let input = schemas
                .get(w.input.get_ref())
                .cloned()
                .unwrap_or(Value::Null);
            schemas.insert(id.clone(), with_field(&input, "_written", serde_json::json!({"type": "object", "properties": {"id": {"type": ["string", "null"]}, "status": {"type": "string"}}})));
            if datasets.contains(w.connection.get_ref().as_str()) {
                if !matches!(
                    *w.mode.get_ref(),
                    weft_flow::model::WriteMode::Upsert | weft_flow::model::WriteMode::Delete
                ) {
                    out.push(
                        Diagnostic::new("datasets are written in upsert mode (or records deleted in delete mode)", at(&w.mode))
                            .help("write `mode = \"upsert\", key = [...]`"),
                    );
                }
                continue;
            }
            let Some(bound) = connections.get(w.connection.get_ref().as_str()) else {
                continue;
            };
            let connector = &bound.plugin;
            let stream = match find_stream(connector, &w.stream) {
                Ok(s) => s,
                Err(d) => {
                    out.push(d);
                    continue;
                }
            };
            let mode = *w.mode.get_ref();
            let supported: Vec<&str> = stream.write_modes.iter().map(|m| wit_mode(*m)).collect();
            if !supported.contains(&mode.as_str()) {
                out.push(
                    Diagnostic::new(
                        format!(
                            "stream `{}` of `{}` cannot be written in {} mode",
                            stream.name,
                            connector.info().name,
                            mode.as_str()
                        ),
                        at(&w.mode),
                    )
                    .help(if supported.is_empty() {
                        "the stream is read-only".to_owned()
                    } else {
                        format!("it supports: {}", supported.join(", "))
                    }),
                );
            }
            let target = serde_json::from_str::<Value>(&stream.schema).unwrap_or(Value::Null);
            let input = schemas.get(w.input.get_ref());
            for key in &w.key {
                for (schema, whose) in [
                    (Some(&target), format!("stream `{}`", stream.name)),
                    (input, format!("input `{}`", w.input.get_ref())),
                ] {
                    if let Some(fields) = schema.and_then(properties) {
                        if !fields.contains(&key.get_ref().as_str()) {
                            out.push(
                                Diagnostic::new(
                                    format!(
                                        "key field `{}` is not a field of {whose}",
                                        key.get_ref()
                                    ),
                                    at(key),
                                )
                                .help(format!("it has: {}", fields.join(", "))),
                            );
                        }
                    }
                }
            }
        }
    }

    if !out.is_empty() {
        return Err(flow.error(out));
    }
    Ok(Plan {
        connections,
        datasets,
        transforms,
        configs,
        schemas,
        options,
        variables,
    })
}
