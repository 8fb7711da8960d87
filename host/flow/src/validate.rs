//! Checks that need the whole file: references between steps, connections and variables, the
//! step graph, and one-of choices. Plugin-aware checks (streams, write modes a stream supports,
//! field references against JSON Schemas) run later, when the plugins are loaded.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use crate::diagnostic::{Diagnostic, closest};
use crate::model::{Branch, FOR_EACH_MAX_CONCURRENCY, FlowFile, StepTable, VarType, WriteMode};
use crate::names::StepId;
use crate::step::{Step, StepKind};

/// What a checked flow needs from the outside: secrets and environment variables it refers to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct References {
    /// `secret:NAME` references, with where they are written.
    pub secrets: Vec<(String, Range<usize>)>,
    /// `env:NAME` references.
    pub env: Vec<(String, Range<usize>)>,
}

fn span<T>(s: &Spanned<T>) -> Option<Range<usize>> {
    Some(s.span())
}

/// What checking a flow file finds: every problem, the steps of one kind each, the steps in an
/// order that respects their dependencies, and what the flow needs from outside.
pub(crate) struct Checked {
    pub diagnostics: Vec<Diagnostic>,
    pub steps: Vec<Step>,
    pub order: Vec<StepId>,
    pub references: References,
}

/// Checks `flow`, whose steps as written are `tables` (taken out of the file).
pub(crate) fn check(flow: &FlowFile, tables: Vec<Spanned<StepTable>>) -> Checked {
    let mut out = Vec::new();
    let connections: BTreeSet<&str> = flow
        .connections
        .keys()
        .map(|k| k.get_ref().as_str())
        .collect();
    let variables: BTreeMap<&str, VarType> = flow
        .variables
        .iter()
        .map(|(k, v)| (k.get_ref().as_str(), v.get_ref().kind))
        .collect();

    let unknown_connection = |name: &Spanned<crate::names::ConnectionName>,
                              out: &mut Vec<Diagnostic>| {
        let n = name.get_ref().as_str();
        if !connections.contains(n) {
            let mut d = Diagnostic::new(
                format!("there is no connection `{n}` in this flow"),
                span(name),
            );
            d = match closest(n, connections.iter().copied()) {
                Some(c) => d.help(format!("did you mean `{c}`?")),
                None => d.help(format!(
                    "declare it as [connections.{n}] with its plugin, config and auth"
                )),
            };
            out.push(d);
        }
    };

    // Trigger: exactly one kind, and a schedule has exactly one of every/cron.
    if let Some(trigger) = &flow.trigger {
        let t = trigger.get_ref();
        let kinds = [
            t.manual.is_some(),
            t.schedule.is_some(),
            t.webhook.is_some(),
            t.poll.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => out.push(
                Diagnostic::new("the trigger says nothing about when to run", span(trigger))
                    .help("give one of `manual = true`, `schedule = { every = \"4h\" }`, `webhook = { connection = \"...\" }` or `poll = { every = \"15m\" }`"),
            ),
            1 => {}
            _ => out.push(
                Diagnostic::new("a flow has one trigger, this one has several kinds", span(trigger))
                    .help("keep one of `manual`, `schedule`, `webhook` and `poll`; chain flows with `after = [...]` instead"),
            ),
        }
        for schedule in [&t.schedule, &t.poll].into_iter().flatten() {
            let s = schedule.get_ref();
            match (&s.every, &s.cron) {
                (Some(_), Some(_)) => out.push(Diagnostic::new(
                    "a schedule has either `every` or `cron`, not both",
                    span(schedule),
                )),
                (None, None) => out.push(
                    Diagnostic::new("this schedule does not say when", span(schedule))
                        .help("write `{ every = \"4h\" }` or `{ cron = \"0 */4 * * *\" }`"),
                ),
                _ => {}
            }
            if let Some(cron) = &s.cron
                && let Err(e) = cron.get_ref().check_ranges()
            {
                // The caret on the field: past the value's opening quote.
                let start = cron.span().start + 1 + e.at;
                out.push(Diagnostic::new(e.message, Some(start..start + e.len)).help(e.help));
            }
        }
        if let Some(webhook) = &t.webhook {
            unknown_connection(&webhook.get_ref().connection, &mut out);
        }
    }

    // Variables: defaults of the declared type; environments set only declared variables.
    for (name, variable) in &flow.variables {
        if let Some(default) = &variable.get_ref().default
            && let Err(message) = type_check(variable.get_ref().kind, default.get_ref())
        {
            out.push(Diagnostic::new(
                format!("the default of `{}` {message}", name.get_ref()),
                span(default),
            ));
        }
    }
    for (env_name, env) in &flow.environments {
        for (name, value) in &env.get_ref().variables {
            match variables.get(name.get_ref().as_str()) {
                None => {
                    let mut d = Diagnostic::new(
                        format!(
                            "environment `{}` sets `{}`, which the flow does not declare",
                            env_name.get_ref(),
                            name.get_ref()
                        ),
                        span(name),
                    );
                    d = match closest(name.get_ref().as_str(), variables.keys().copied()) {
                        Some(c) => d.help(format!("did you mean `{c}`?")),
                        None => d.help(format!(
                            "declare it under [variables.{}] with its type",
                            name.get_ref()
                        )),
                    };
                    out.push(d);
                }
                Some(kind) => {
                    if let Err(message) = type_check(*kind, value.get_ref()) {
                        out.push(Diagnostic::new(
                            format!(
                                "environment `{}` sets `{}`, which {message}",
                                env_name.get_ref(),
                                name.get_ref()
                            ),
                            span(value),
                        ));
                    }
                }
            }
        }
        for name in env.get_ref().connections.keys() {
            unknown_connection(name, &mut out);
        }
    }

    // Steps: each of exactly one kind; a table of none or several is reported here and its id
    // still counts as a step, so references to it add no noise.
    if tables.is_empty() {
        out.push(
            Diagnostic::new("this flow has no steps", span(&flow.name))
                .help("add at least one `[[steps]]` with `read`, `transform` or `write`"),
        );
    }
    let mut steps = Vec::with_capacity(tables.len());
    let mut kindless: Vec<Spanned<StepId>> = Vec::new();
    for table in tables {
        match table.into_inner().into_step() {
            Ok(step) => steps.push(step),
            Err((id, kinds)) => {
                let name = id.get_ref();
                out.push(if kinds.is_empty() {
                    Diagnostic::new(format!("step `{name}` does nothing"), span(&id))
                        .help("give it one of `read = {...}`, `transform = {...}`, `write = {...}`, `condition = {...}` or `for_each = {...}`")
                } else {
                    Diagnostic::new(format!("step `{name}` is both {}", kinds.join(" and ")), span(&id))
                        .help("split it into one step per kind, the later one naming the earlier as its `input`")
                });
                kindless.push(id);
            }
        }
    }
    // Every id written, with its step when it has exactly one kind.
    let mut ids: BTreeMap<&str, Option<&Step>> = BTreeMap::new();
    let written = steps
        .iter()
        .map(|s| (&s.id, Some(s)))
        .chain(kindless.iter().map(|id| (id, None)));
    for (id, step) in written {
        if ids.contains_key(id.get_ref().as_str()) {
            out.push(
                Diagnostic::new(
                    format!("a second step is called `{}`", id.get_ref()),
                    span(id),
                )
                .help("step ids are unique within a flow; rename one of them"),
            );
            continue;
        }
        ids.insert(id.get_ref().as_str(), step);
    }
    let kind_of = |id: &str| ids.get(id).copied().flatten().map(|s| &s.kind);
    let produces_records = |id: &str| kind_of(id).is_none_or(StepKind::produces_records);
    let unknown_step =
        |reference: &Spanned<StepId>, role: &str, out: &mut Vec<Diagnostic>| -> bool {
            let r = reference.get_ref().as_str();
            if ids.contains_key(r) {
                return true;
            }
            let mut d = Diagnostic::new(
                format!("{role} `{r}` is not a step of this flow"),
                span(reference),
            );
            if let Some(c) = closest(r, ids.keys().copied()) {
                d = d.help(format!("did you mean `{c}`?"));
            }
            out.push(d);
            false
        };

    let mut edges: BTreeMap<&str, Vec<&str>> = kindless
        .iter()
        .map(|id| (id.get_ref().as_str(), Vec::new()))
        .collect();
    for step in &steps {
        let id = step.id.get_ref().as_str();
        let deps = edges.entry(id).or_default();
        if let StepKind::Read(read) = &step.kind {
            unknown_connection(&read.get_ref().connection, &mut out);
        }
        // Every kind but `read` takes records from an input (a transform also from a lookup).
        for (reference, role) in [(step.input(), "input"), (step.kind.lookup(), "lookup")] {
            let Some(reference) = reference else { continue };
            if unknown_step(reference, role, &mut out) {
                deps.push(reference.get_ref().as_str());
                let takes_written = role == "input" && step.branch() == Branch::Written;
                if !produces_records(reference.get_ref().as_str()) && !takes_written {
                    out.push(Diagnostic::new(
                        format!("{role} `{}` is a write step, which produces no records", reference.get_ref()),
                        span(reference),
                    ).help("use a read, transform, condition or for_each step as input, or take what the write accepted with `branch = \"written\"`"));
                }
            }
        }
        // A branch of a step with no single kind is not judged: that step is reported already.
        let input = step.input().map(|i| i.get_ref().as_str());
        if let Some(branch) = step.kind.branch()
            && let Some(input) = input.filter(|i| !matches!(ids.get(i), Some(None)))
        {
            let input = kind_of(input);
            match branch.get_ref() {
                Branch::Rejected if !matches!(input, Some(StepKind::Transform(_))) => out.push(
                    Diagnostic::new(format!("step `{id}` takes the `rejected` branch, but its input is not a transform"), span(branch))
                        .help("`branch = \"rejected\"` picks the records a transform step rejected (validate, map, lookup, ...); point `input` at one"),
                ),
                Branch::Written if !matches!(input, Some(StepKind::Write(_))) => out.push(
                    Diagnostic::new(format!("step `{id}` takes the `written` branch, but its input is not a write"), span(branch))
                        .help("`branch = \"written\"` picks the records a write step's upstream accepted, with their ids; point `input` at one"),
                ),
                Branch::Then | Branch::Else if !matches!(input, Some(StepKind::Condition(_))) => out.push(
                    Diagnostic::new(format!("step `{id}` takes a `branch`, but its input is not a condition"), span(branch))
                        .help("`branch = \"else\"` picks the records a `condition` step's `when` does not hold for; `branch = \"rejected\"` a transform's rejects; remove it here"),
                ),
                _ => {}
            }
        }
        if let Some(config) = &step.config
            && !matches!(step.kind, StepKind::Transform(_))
        {
            out.push(
                Diagnostic::new(format!("step `{id}` has a `config`, but only transform steps take one"), span(config))
                    .help("read options go in `read = { ..., options = {...} }`; a condition's test in `condition = { ..., when = \"...\" }`"),
            );
        }
        if let StepKind::Write(write) = &step.kind {
            let w = write.get_ref();
            unknown_connection(&w.connection, &mut out);
            let mode = *w.mode.get_ref();
            if mode != WriteMode::Create && w.key.is_empty() {
                out.push(
                    Diagnostic::new(
                        format!(
                            "step `{id}` writes in {} mode but gives no `key`",
                            mode.as_str()
                        ),
                        span(&w.mode),
                    )
                    .help(
                        "add `key = [\"field\", ...]`: the fields that identify a record upstream",
                    ),
                );
            }
        }
        if let StepKind::ForEach(for_each) = &step.kind {
            let f = for_each.get_ref();
            unknown_connection(&f.connection, &mut out);
            if let Some(c) = &f.concurrency
                && !(1..=FOR_EACH_MAX_CONCURRENCY).contains(c.get_ref())
            {
                out.push(
                    Diagnostic::new(
                        format!("a concurrency of {} is out of range", c.get_ref()),
                        span(c),
                    )
                    .help(format!(
                        "between 1 and {FOR_EACH_MAX_CONCURRENCY} reads at once"
                    )),
                );
            }
        }
        if !matches!(step.kind, StepKind::Read(_))
            && let Some((other, _)) = step.run_after.iter().next()
        {
            out.push(
                    Diagnostic::new(format!("step `{id}` has a `run_after`, but only read steps, where a branch starts, take one"), span(other))
                        .help(format!("step `{id}` runs as records arrive from its input; put `run_after` on the read step its branch starts from")),
                );
        }
        for (other, when) in &step.run_after {
            if unknown_step(other, "run_after names", &mut out) {
                deps.push(other.get_ref().as_str());
                // A write step that succeeds ends with the run (it takes records until every
                // source is read), so a branch waiting for its success would never start; its
                // failure ends it at once.
                let is_write =
                    matches!(kind_of(other.get_ref().as_str()), Some(StepKind::Write(_)));
                if is_write && *when.get_ref() != crate::model::RunAfter::Failed {
                    out.push(
                        Diagnostic::new(format!("step `{id}` waits for the write step `{}` to succeed, which it only does when the run ends", other.get_ref()), span(other))
                            .help("wait for the read (or transform) step that feeds the write instead: it ends once its records are read and handed on; or make this a flow of its own with `after = [...]`; `= \"failed\"` on a write works"),
                    );
                }
            }
        }
    }

    let ids_written: Vec<&Spanned<StepId>> = steps.iter().map(|s| &s.id).chain(&kindless).collect();
    let order = topological(&ids_written, &edges, &mut out);

    // `${var.NAME}`, `secret:NAME` and `env:NAME` in connection and step tables.
    let mut references = References::default();
    let mut tables: Vec<&Spanned<toml::Table>> = Vec::new();
    for connection in flow.connections.values() {
        tables.extend(connection.get_ref().config.iter());
        tables.extend(connection.get_ref().auth.iter());
    }
    for env in flow.environments.values() {
        for connection in env.get_ref().connections.values() {
            tables.extend(connection.get_ref().config.iter());
            tables.extend(connection.get_ref().auth.iter());
        }
    }
    for step in &steps {
        tables.extend(step.config.iter());
        if let StepKind::Read(read) = &step.kind {
            tables.extend(read.get_ref().options.iter());
        }
    }
    for table in tables {
        scan_table(
            table.get_ref(),
            &table.span(),
            &variables,
            false,
            &mut references,
            &mut out,
        );
    }
    // A plugin may be named through a variable (`hubspot@${var.hubspot_version}`).
    let plugins = flow
        .connections
        .values()
        .map(|c| &c.get_ref().plugin)
        .chain(steps.iter().filter_map(|step| match &step.kind {
            StepKind::Transform(t) => Some(&t.get_ref().plugin),
            _ => None,
        }));
    for plugin in plugins {
        scan_value(
            &toml::Value::String(plugin.get_ref().clone()),
            &plugin.span(),
            &variables,
            false,
            // A plugin's name refers to no secret.
            &mut References::default(),
            &mut out,
        );
    }
    for step in &steps {
        if let StepKind::ForEach(f) = &step.kind
            && let Some(options) = &f.get_ref().options
        {
            scan_table(
                options.get_ref(),
                &options.span(),
                &variables,
                true,
                &mut references,
                &mut out,
            );
        }
    }
    Checked {
        diagnostics: out,
        steps,
        order,
        references,
    }
}

/// Checks `${var.NAME}` references (and `${record.FIELD}` where `records` says a record is in
/// scope) and collects `secret:`/`env:` references in a table. Values inside a table carry no
/// spans of their own, so problems point at the table.
fn scan_table(
    table: &toml::Table,
    at: &Range<usize>,
    variables: &BTreeMap<&str, VarType>,
    records: bool,
    refs: &mut References,
    out: &mut Vec<Diagnostic>,
) {
    for (key, value) in table {
        scan_value(
            &toml::Value::String(key.clone()),
            at,
            variables,
            records,
            refs,
            out,
        );
        scan_value(value, at, variables, records, refs, out);
    }
}

/// [`scan_table`] for one value (a string, or the keys and values inside an array or table).
fn scan_value(
    value: &toml::Value,
    at: &Range<usize>,
    variables: &BTreeMap<&str, VarType>,
    records: bool,
    refs: &mut References,
    out: &mut Vec<Diagnostic>,
) {
    match value {
        toml::Value::String(s) => {
            if let Some(name) = s.strip_prefix("secret:") {
                refs.secrets.push((name.to_owned(), at.clone()));
            } else if let Some(name) = s.strip_prefix("env:") {
                refs.env.push((name.to_owned(), at.clone()));
            }
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                let Some(end) = rest[start..].find('}') else {
                    break;
                };
                let inner = &rest[start + 2..start + end];
                match inner.strip_prefix("var.") {
                    _ if records && inner.starts_with("record.") => {}
                    Some(name) if variables.contains_key(name) => {}
                    Some(name) => {
                        let mut d = Diagnostic::new(format!("`${{var.{name}}}` refers to a variable the flow does not declare"), Some(at.clone()));
                        d = match closest(name, variables.keys().copied()) {
                            Some(c) => d.help(format!("did you mean `${{var.{c}}}`?")),
                            None => d.help(format!("declare it under [variables.{name}] with its type")),
                        };
                        out.push(d);
                    }
                    None => out.push(
                        Diagnostic::new(format!("`${{{inner}}}` is not a reference weft understands"), Some(at.clone())).help(if records {
                            "variables are written `${var.NAME}`, fields of the input record `${record.FIELD}`"
                        } else {
                            "variables are written `${var.NAME}`"
                        }),
                    ),
                }
                rest = &rest[start + end + 1..];
            }
        }
        toml::Value::Array(items) => items
            .iter()
            .for_each(|v| scan_value(v, at, variables, records, refs, out)),
        toml::Value::Table(t) => {
            for (key, v) in t {
                scan_value(
                    &toml::Value::String(key.clone()),
                    at,
                    variables,
                    records,
                    refs,
                    out,
                );
                scan_value(v, at, variables, records, refs, out);
            }
        }
        _ => {}
    }
}

fn type_check(kind: VarType, value: &toml::Value) -> Result<(), String> {
    let ok = match kind {
        VarType::String => value.is_str(),
        VarType::Number => value.is_integer() || value.is_float(),
        VarType::Bool => value.is_bool(),
        VarType::Json => true,
        VarType::Secret => value
            .as_str()
            .is_some_and(|s| s.starts_with("secret:") || s.starts_with("env:")),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        VarType::Secret => {
            "must be a `secret:NAME` or `env:NAME` reference, never the secret itself".to_owned()
        }
        kind => format!(
            "must be a {}, not {}",
            format!("{kind:?}").to_lowercase(),
            value.type_str()
        ),
    })
}

/// Steps ordered so each comes after what it depends on; a cycle is reported at the step that
/// closes it.
fn topological<'a>(
    steps: &[&'a Spanned<StepId>],
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    out: &mut Vec<Diagnostic>,
) -> Vec<StepId> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        id: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
        order: &mut Vec<&'a str>,
        cycle: &mut Option<Vec<&'a str>>,
    ) {
        match marks.get(id) {
            Some(Mark::Done) => return,
            Some(Mark::Visiting) => {
                if cycle.is_none() {
                    let start = path.iter().position(|p| *p == id).unwrap_or(0);
                    let mut c = path[start..].to_vec();
                    c.push(id);
                    *cycle = Some(c);
                }
                return;
            }
            None => {}
        }
        marks.insert(id, Mark::Visiting);
        path.push(id);
        for dep in edges.get(id).into_iter().flatten() {
            if edges.contains_key(dep) {
                visit(dep, edges, marks, path, order, cycle);
            }
        }
        path.pop();
        marks.insert(id, Mark::Done);
        order.push(id);
    }
    let mut marks = BTreeMap::new();
    let mut order = Vec::new();
    let mut cycle = None;
    for step in steps {
        visit(
            step.get_ref().as_str(),
            edges,
            &mut marks,
            &mut Vec::new(),
            &mut order,
            &mut cycle,
        );
    }
    if let Some(cycle) = cycle {
        let at = steps
            .iter()
            .find(|s| s.get_ref().as_str() == cycle[0])
            .map(|s| s.span());
        out.push(
            Diagnostic::new(format!("steps depend on each other in a circle: {}", cycle.join(" -> ")), at)
                .help("a flow is a graph without cycles; break the circle by removing one `input` or `run_after`"),
        );
    }
    let by_id: BTreeMap<&str, &StepId> = steps
        .iter()
        .map(|s| (s.get_ref().as_str(), s.get_ref()))
        .collect();
    order
        .into_iter()
        .filter_map(|id| by_id.get(id).map(|s| (*s).clone()))
        .collect()
}
