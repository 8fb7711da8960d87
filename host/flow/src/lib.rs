//! Flow files: what they say and whether it holds together.
//!
//! A flow file is TOML: a trigger, variables (with per-environment values), connections and
//! steps that form a graph through their inputs. [`parse`] reads one strictly (unknown keys are
//! errors, names are validated where written) and checks it as a whole (references, cycles,
//! one-of choices), reporting every problem with file, line, column and a caret, plus what to do.
//! Nothing here loads plugins: checks against connectors' streams and schemas come after.

mod diagnostic;
pub mod model;
mod names;
mod step;
mod validate;

use std::path::Path;

pub use diagnostic::{Diagnostic, FlowError};
pub use model::FlowFile;
pub use names::{ConnectionName, Cron, FlowName, Interval, StepId, VarName};
pub use step::{Step, StepKind};
pub use validate::References;

/// A flow file that parsed and holds together.
#[derive(Debug)]
pub struct Flow {
    /// Where the flow was read from, for messages.
    pub path: std::path::PathBuf,
    /// The file's text, for messages that point into it.
    pub text: String,
    /// The file as written, but for its steps, which are in [`Flow::steps`].
    pub file: FlowFile,
    /// The steps, in file order, each of one kind.
    pub steps: Vec<Step>,
    /// Steps in an order where each comes after the steps it depends on.
    pub order: Vec<StepId>,
    /// The secrets and environment variables the flow refers to.
    pub references: References,
}

impl Flow {
    /// An error pointing into this flow's file.
    pub fn error(&self, diagnostics: Vec<Diagnostic>) -> FlowError {
        FlowError::new(&self.path, &self.text, diagnostics)
    }

    /// The step with `id`.
    pub fn step(&self, id: &StepId) -> Option<&Step> {
        self.steps.iter().find(|s| s.id.get_ref() == id)
    }
}

/// The JSON Schema of flow files, generated from the types above: editors use it to complete
/// and check flow files as they are written (e.g. with taplo's `#:schema` directive).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(FlowFile)).unwrap_or_default()
}

/// Reads and checks the flow file at `path`.
pub fn load(path: &Path) -> Result<Flow, FlowError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        FlowError::new(
            path,
            "",
            vec![Diagnostic::new(
                format!("cannot read the flow file: {e}"),
                None,
            )],
        )
    })?;
    parse(path, &text)
}

/// Parses and checks flow text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Flow, FlowError> {
    let mut file: FlowFile = toml::from_str(text).map_err(|e| {
        FlowError::new(
            path,
            text,
            vec![with_hint(Diagnostic::new(e.message().trim_end(), e.span()))],
        )
    })?;
    let tables = std::mem::take(&mut file.steps);
    let checked = validate::check(&file, tables);
    if !checked.diagnostics.is_empty() {
        return Err(FlowError::new(path, text, checked.diagnostics));
    }
    Ok(Flow {
        path: path.to_owned(),
        text: text.to_owned(),
        file,
        steps: checked.steps,
        order: checked.order,
        references: checked.references,
    })
}

/// The common mistakes get a sentence of their own.
fn with_hint(d: Diagnostic) -> Diagnostic {
    let message = d.message.clone();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        if field == "step" {
            return d.help("steps are a list: write each one as `[[steps]]`");
        }
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        if let Some(c) = diagnostic::closest(field, candidates.iter().copied()) {
            return d.help(format!("did you mean `{c}`?"));
        }
        if field.contains('-') && candidates.contains(&field.replace('-', "_").as_str()) {
            return d.help(format!("keys use '_': `{}`", field.replace('-', "_")));
        }
        return d;
    }
    if message.contains("invalid type: map, expected a sequence") {
        return d.help("steps are a list: write each one as `[[steps]]`, not `[steps]`");
    }
    if message.starts_with("invalid type: string") && message.contains("expected struct Schedule") {
        return d.help("write `{ every = \"4h\" }` or `{ cron = \"0 */4 * * *\" }`");
    }
    d
}
