//! Planning the steps, in dependency order, one function per kind, carrying each step's output
//! schema forward so every later step is checked against what its input really carries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};
use toml::Spanned;
use weft_flow::model::{
    Branch, ConditionStep, ForEachStep, ReadStep, SyncMode, TransformStep, WriteMode, WriteStep,
};
use weft_flow::{Diagnostic, Flow, Step, StepId, StepKind};
use weft_runtime::CallContext;
use weft_runtime::ConnectorPlugin;
use weft_runtime::bindings::{self, StreamDescriptor};

use super::variables::{Variables, json as table_json, substitute};
use super::{
    BoundConnection, BoundConnector, CONDITION_PLUGIN, ConditionWork, ForEachWork, Loader,
    PlannedStep, ReadWork, Reader, TransformWork, Work, WriteWork, at, plugin_message,
};
use crate::datasets::Datasets;

/// What the steps are planned against.
pub(super) struct Bindings<'a> {
    pub connections: &'a BTreeMap<String, Box<BoundConnection>>,
    pub datasets: &'a BTreeSet<String>,
    pub variables: &'a Variables,
    pub tenant: &'a str,
}

/// The schemas a planned step's records have on each of its outputs. Shared: a read's is its
/// connector's stream schema, held once for every plan that reads the stream.
#[derive(Default)]
struct Outputs {
    /// What it hands on (`then` and `else` of a condition, what a write wrote).
    main: Arc<Value>,
    /// What a transform's `rejected` branch carries: its input records, with `_rejected`.
    rejected: Option<Arc<Value>>,
}

/// The planning in progress.
struct Planner<'a, 'l> {
    bindings: &'a Bindings<'a>,
    loader: &'a mut Loader<'l>,
    out: &'a mut Vec<Diagnostic>,
    context: CallContext,
    outputs: BTreeMap<StepId, Outputs>,
    /// The steps some step reads, on each branch.
    read: BTreeSet<(StepId, Branch)>,
}

/// Every step of `flow` planned, in dependency order; problems go to `out`.
pub(super) async fn plan(
    flow: &Flow,
    bindings: &Bindings<'_>,
    loader: &mut Loader<'_>,
    out: &mut Vec<Diagnostic>,
) -> Vec<super::PlannedStep> {
    let mut planner = Planner {
        bindings,
        loader,
        out,
        context: CallContext::new(bindings.tenant),
        outputs: BTreeMap::new(),
        read: flow
            .order
            .iter()
            .filter_map(|r| flow.step(r))
            .filter_map(|s| Some((s.input()?.get_ref().clone(), s.branch())))
            .collect(),
    };
    let mut planned = Vec::with_capacity(flow.order.len());
    for id in &flow.order {
        let Some(step) = flow.step(id) else { continue };
        let work = match &step.kind {
            StepKind::Read(read) => planner.read(id, read),
            StepKind::Transform(transform) => planner.transform(id, step, transform).await,
            StepKind::Condition(condition) => planner.condition(id, condition).await,
            StepKind::ForEach(for_each) => planner.for_each(id, for_each),
            StepKind::Write(write) => planner.write(id, write),
        };
        let Some(work) = work else { continue };
        let schema = planner
            .outputs
            .get(id)
            .map_or_else(|| Arc::new(Value::Null), |o| Arc::clone(&o.main));
        planned.push(PlannedStep {
            id: id.clone(),
            work,
            schema,
            readers: readers(flow, id),
            timeout: step.timeout.as_ref().map(|t| t.get_ref().0),
            run_after: step
                .run_after
                .iter()
                .map(|(s, when)| (s.get_ref().clone(), *when.get_ref()))
                .collect(),
        });
    }
    planned
}

/// The steps reading `id`, in flow order.
fn readers(flow: &Flow, id: &StepId) -> Vec<Reader> {
    flow.order
        .iter()
        .filter_map(|r| flow.step(r))
        .filter(|s| s.input().is_some_and(|i| i.get_ref() == id))
        .map(|s| Reader {
            step: s.id.get_ref().clone(),
            branch: s.branch(),
        })
        .collect()
}

impl<'a> Planner<'a, '_> {
    /// The schema of what `input` hands on `branch` (`null` when unknown).
    fn input_schema(&self, input: &StepId, branch: Branch) -> Arc<Value> {
        let outputs = self.outputs.get(input);
        let schema = match branch {
            Branch::Rejected => outputs.and_then(|o| o.rejected.as_ref()),
            _ => outputs.map(|o| &o.main),
        };
        schema.map_or_else(|| Arc::new(Value::Null), Arc::clone)
    }

    /// Whether some step reads `id` on `branch`: a schema only that branch carries is made only
    /// then.
    fn is_read(&self, id: &StepId, branch: Branch) -> bool {
        self.read.contains(&(id.clone(), branch))
    }

    fn produces(&mut self, id: &StepId, main: impl Into<Arc<Value>>, rejected: Option<Value>) {
        let (main, rejected) = (main.into(), rejected.map(Arc::new));
        self.outputs.insert(id.clone(), Outputs { main, rejected });
    }

    fn is_dataset(&self, connection: &str) -> bool {
        self.bindings.datasets.contains(connection)
    }

    /// The connector behind `connection` as a run calls it, and the loaded plugin its streams
    /// are checked against (the flow's check made sure it is declared; a connection that failed
    /// to bind is reported already).
    fn connector(&self, connection: &str) -> Option<(BoundConnector, &'a ConnectorPlugin)> {
        self.bindings.connections.get(connection).map(|bound| {
            let connector = BoundConnector {
                connection: connection.to_owned(),
                plugin: bound.plugin.clone(),
                config: bound.config.clone(),
            };
            (connector, bound.plugin.as_ref())
        })
    }

    fn read(&mut self, id: &StepId, read: &Spanned<ReadStep>) -> Option<Work> {
        let r = read.get_ref();
        let connection = r.connection.get_ref().as_str();
        let mut sync = r.sync;
        let from = if self.is_dataset(connection) {
            // A dataset holds whatever was written to it, and is read whole.
            self.produces(id, Value::Null, None);
            sync = SyncMode::Full;
            datasets(connection)
        } else {
            let (connector, plugin) = self.connector(connection)?;
            let stream = find_stream(plugin, &r.stream)
                .map_err(|d| self.out.push(d))
                .ok()?;
            if r.sync == SyncMode::Incremental && stream.cursor_field.is_none() {
                self.out.push(
                    Diagnostic::new(
                        format!(
                            "stream `{}` of `{}` cannot be read incrementally",
                            stream.name,
                            plugin.info().name
                        ),
                        at(read),
                    )
                    .help("use `sync = \"full\"`"),
                );
            }
            let schema = stream_schema(plugin, stream);
            self.produces(id, schema, None);
            connector
        };
        Some(Work::Read(ReadWork {
            from,
            stream: r.stream.get_ref().clone(),
            sync,
            options: table_json(r.options.as_ref(), self.bindings.variables).to_string(),
            page_size: r.page_size,
        }))
    }

    async fn transform(
        &mut self,
        id: &StepId,
        step: &Step,
        transform: &Spanned<TransformStep>,
    ) -> Option<Work> {
        let t = transform.get_ref();
        let plugin = self
            .loader
            .transform(&t.plugin)
            .await
            .map_err(|d| self.out.push(d))
            .ok()?;
        if let Some(lookup) = &t.lookup
            && !plugin.info().takes_lookup
        {
            self.out.push(Diagnostic::new(
                format!("transform `{}` takes no lookup input", plugin.info().name),
                at(lookup),
            ));
        }
        let branch = t.branch.as_ref().map_or(Branch::Then, |b| *b.get_ref());
        let config = table_json(step.config.as_ref(), self.bindings.variables);
        let input = self.input_schema(t.input.get_ref(), branch);
        let lookup = t
            .lookup
            .as_ref()
            .map(|l| self.input_schema(l.get_ref(), Branch::Then));
        let schema = match plugin
            .output_schema(&self.context, &config, &input, lookup.as_deref())
            .await
        {
            Ok(schema) => schema,
            Err(e) => {
                let span = step.config.as_ref().map_or(transform.span(), |c| c.span());
                self.out.push(Diagnostic::new(
                    format!("step `{id}`: {}", plugin_message(&e)),
                    Some(span),
                ));
                Value::Null
            }
        };
        let rejected = self
            .is_read(id, Branch::Rejected)
            .then(|| with_rejection(&input));
        self.produces(id, schema, rejected);
        Some(Work::Transform(TransformWork {
            input: t.input.get_ref().clone(),
            branch,
            plugin,
            config: config.to_string(),
            lookup: t.lookup.as_ref().map(|l| l.get_ref().clone()),
        }))
    }

    async fn condition(&mut self, id: &StepId, condition: &Spanned<ConditionStep>) -> Option<Work> {
        let c = condition.get_ref();
        let name = Spanned::new(condition.span(), CONDITION_PLUGIN.to_owned());
        let plugin = match self.loader.transform(&name).await {
            Ok(p) => p,
            Err(d) => {
                self.out.push(d.help(format!("condition steps are evaluated by the built-in `{CONDITION_PLUGIN}` transform; build the first-party plugins")));
                return None;
            }
        };
        let mut when = toml::Value::String(c.when.get_ref().clone());
        substitute(&mut when, self.bindings.variables);
        let when = when.as_str().unwrap_or_default().to_owned();
        let then = json!({ "when": when });
        let branch = c.branch.as_ref().map_or(Branch::Then, |b| *b.get_ref());
        let input = self.input_schema(c.input.get_ref(), branch);
        let schema = match plugin
            .output_schema(&self.context, &then, &input, None)
            .await
        {
            Ok(schema) => schema,
            Err(e) => {
                self.out.push(Diagnostic::new(
                    format!("step `{id}`: {}", plugin_message(&e)),
                    at(&c.when),
                ));
                Value::Null
            }
        };
        self.produces(id, schema, None);
        Some(Work::Condition(ConditionWork {
            input: c.input.get_ref().clone(),
            branch,
            plugin,
            config: json!({ "when": when, "output": "positions" }).to_string(),
        }))
    }

    fn for_each(&mut self, id: &StepId, for_each: &Spanned<ForEachStep>) -> Option<Work> {
        let f = for_each.get_ref();
        if self.is_dataset(f.connection.get_ref().as_str()) {
            self.out.push(
                Diagnostic::new(
                    "for_each reads a connector's stream, not a dataset",
                    at(&f.connection),
                )
                .help("read the dataset with a read step and join it with `merge` or `lookup`"),
            );
            return None;
        }
        let (connector, plugin) = self.connector(f.connection.get_ref().as_str())?;
        let stream = find_stream(plugin, &f.stream)
            .map_err(|d| self.out.push(d))
            .ok()?;
        if !stream.sync_modes.contains(&bindings::SyncMode::Full) {
            self.out.push(Diagnostic::new(
                format!(
                    "stream `{}` of `{}` cannot be read",
                    stream.name,
                    plugin.info().name
                ),
                at(&f.stream),
            ));
        }
        let branch = f.branch.as_ref().map_or(Branch::Then, |b| *b.get_ref());
        let mut schema = Arc::unwrap_or_clone(stream_schema(plugin, stream));
        if let (Some(parent), Some(props)) = (
            &f.parent_field,
            schema.get_mut("properties").and_then(Value::as_object_mut),
        ) {
            let input = match Arc::unwrap_or_clone(self.input_schema(f.input.get_ref(), branch)) {
                Value::Null => json!({"type": "object"}),
                known => known,
            };
            props.insert(parent.clone(), input);
        }
        self.produces(id, schema, None);
        Some(Work::ForEach(ForEachWork {
            input: f.input.get_ref().clone(),
            branch,
            connector,
            stream: f.stream.get_ref().clone(),
            options: table_json(f.options.as_ref(), self.bindings.variables),
            page_size: f.page_size,
            concurrency: f.concurrency.as_ref().map_or(4, |c| *c.get_ref()) as usize,
            parent_field: f.parent_field.clone(),
        }))
    }

    fn write(&mut self, id: &StepId, write: &Spanned<WriteStep>) -> Option<Work> {
        let w = write.get_ref();
        let branch = w.branch.as_ref().map_or(Branch::Then, |b| *b.get_ref());
        let input = self.input_schema(w.input.get_ref(), branch);
        // What the `written` branch carries: the input records, with the upstream's id (made
        // when a step reads it).
        let written = if self.is_read(id, Branch::Written) || self.is_read(id, Branch::Then) {
            with_field(
                &input,
                "_written",
                json!({"type": "object", "properties": {"id": {"type": ["string", "null"]}, "status": {"type": "string"}}}),
            )
        } else {
            Value::Null
        };
        self.produces(id, written, None);
        let mode = *w.mode.get_ref();
        let connection = w.connection.get_ref().as_str();
        let to = if self.is_dataset(connection) {
            if !matches!(mode, WriteMode::Upsert | WriteMode::Delete) {
                self.out.push(
                    Diagnostic::new(
                        "datasets are written in upsert mode (or records deleted in delete mode)",
                        at(&w.mode),
                    )
                    .help("write `mode = \"upsert\", key = [...]`"),
                );
            }
            datasets(connection)
        } else {
            let (connector, plugin) = self.connector(connection)?;
            let stream = find_stream(plugin, &w.stream)
                .map_err(|d| self.out.push(d))
                .ok()?;
            self.check_write_mode(plugin, stream, w);
            let target = stream_schema(plugin, stream);
            for key in &w.key {
                for (schema, whose) in [
                    (&target, format!("stream `{}`", stream.name)),
                    (&input, format!("input `{}`", w.input.get_ref())),
                ] {
                    if let Some(fields) = properties(schema)
                        && !fields.contains(&key.get_ref().as_str())
                    {
                        self.out.push(
                            Diagnostic::new(
                                format!("key field `{}` is not a field of {whose}", key.get_ref()),
                                at(key),
                            )
                            .help(format!("it has: {}", fields.join(", "))),
                        );
                    }
                }
            }
            connector
        };
        Some(Work::Write(WriteWork {
            input: w.input.get_ref().clone(),
            branch,
            to,
            stream: w.stream.get_ref().clone(),
            mode,
            key: w.key.iter().map(|k| k.get_ref().clone()).collect(),
            batch_size: w.batch_size.map(|b| b as usize),
        }))
    }

    fn check_write_mode(
        &mut self,
        connector: &ConnectorPlugin,
        stream: &StreamDescriptor,
        w: &WriteStep,
    ) {
        let mode = *w.mode.get_ref();
        let supported: Vec<&str> = stream.write_modes.iter().map(|m| wit_mode(*m)).collect();
        if !supported.contains(&mode.as_str()) {
            self.out.push(
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
    }
}

fn properties(schema: &Value) -> Option<Vec<&str>> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
}

/// The schema of a transform's rejected records: its input's, plus `_rejected`.
fn with_rejection(input: &Value) -> Value {
    with_field(
        input,
        "_rejected",
        json!({"type": "object", "properties": {"reason": {"type": "string"}, "field": {"type": ["string", "null"]}}}),
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

/// A dataset connection, bound to weft's datasets.
fn datasets(connection: &str) -> BoundConnector {
    BoundConnector {
        connection: connection.to_owned(),
        plugin: Arc::new(Datasets),
        config: Value::Null,
    }
}

/// The record schema of `stream`, as parsed when the connector was loaded.
fn stream_schema(connector: &ConnectorPlugin, stream: &StreamDescriptor) -> Arc<Value> {
    connector
        .schema(&stream.name)
        .cloned()
        .unwrap_or_else(|| Arc::new(Value::Null))
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

fn wit_mode(mode: bindings::WriteMode) -> &'static str {
    use bindings::WriteMode as M;
    match mode {
        M::Create => "create",
        M::Update => "update",
        M::Upsert => "upsert",
        M::Delete => "delete",
    }
}
