//! Variable values for a plan, and `${var.NAME}` filled in wherever a flow writes one.

use std::collections::BTreeMap;

use serde_json::Value;
use toml::Spanned;
use weft_flow::Diagnostic;
use weft_flow::model::{Environment, FlowFile, VarType};

use super::{PlanOptions, at};

/// Variable values by name.
pub type Variables = BTreeMap<String, toml::Value>;

/// The value of every declared variable: given at the command line, else the environment's,
/// else the default. Every variable without one, and every `--var` the flow does not declare,
/// is a diagnostic.
pub(super) fn resolve(
    file: &FlowFile,
    env: Option<&Environment>,
    options: &PlanOptions,
    out: &mut Vec<Diagnostic>,
) -> Variables {
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
    let mut variables = BTreeMap::new();
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
        let from_environment = env.and_then(|e| {
            e.variables
                .iter()
                .find(|(k, _)| k.get_ref() == name.get_ref())
                .map(|(_, v)| v.get_ref().clone())
        });
        let value = from_environment.or_else(|| {
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
                        options
                            .environment
                            .as_ref()
                            .map(|e| format!(" in environment `{e}`"))
                            .unwrap_or_default()
                    ),
                    at(name),
                )
                .help("give it a `default` or set it under [environments.NAME.variables]"),
            ),
        }
    }
    variables
}

/// A variable's value given as text, read as the variable's declared type.
fn typed_value(kind: VarType, text: &str) -> Result<toml::Value, String> {
    match kind {
        VarType::String => Ok(toml::Value::String(text.to_owned())),
        VarType::Number => text
            .parse::<i64>()
            .map(toml::Value::Integer)
            .or_else(|_| text.parse::<f64>().map(toml::Value::Float))
            .map_err(|_| format!("`{text}` is not a number")),
        VarType::Bool => text
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| format!("`{text}` is not `true` or `false`")),
        VarType::Json => {
            let json: Value =
                serde_json::from_str(text).map_err(|e| format!("`{text}` is not JSON: {e}"))?;
            toml::Value::try_from(json).map_err(|e| format!("`{text}` cannot be a flow value: {e}"))
        }
        VarType::Secret if text.starts_with("secret:") || text.starts_with("env:") => {
            Ok(toml::Value::String(text.to_owned()))
        }
        VarType::Secret => Err(
            "a secret variable takes a reference, `secret:NAME` or `env:NAME`, never the secret itself"
                .to_owned(),
        ),
    }
}

/// Replaces `${var.NAME}` in strings and keys: a string that is only a reference takes the
/// variable's value and type; references inside text are replaced by the value's text.
pub(super) fn substitute(value: &mut toml::Value, vars: &Variables) {
    match value {
        toml::Value::String(s) => {
            if let Some(name) = s.strip_prefix("${var.").and_then(|r| r.strip_suffix('}'))
                && let Some(v) = vars.get(name)
            {
                *value = v.clone();
                return;
            }
            *s = substitute_text(s, vars);
        }
        toml::Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, vars)),
        toml::Value::Table(t) => substitute_table(t, vars),
        _ => {}
    }
}

/// `text` with every `${var.NAME}` replaced by the variable's text.
pub(super) fn substitute_text(text: &str, vars: &Variables) -> String {
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

/// [`substitute`] over every key and value of a table.
pub(super) fn substitute_table(table: &mut toml::Table, vars: &Variables) {
    let entries = std::mem::take(table);
    for (key, mut value) in entries {
        substitute(&mut value, vars);
        table.insert(substitute_text(&key, vars), value);
    }
}

/// A flow table (config, options) as JSON, with variables filled in; `{}` when absent.
pub(super) fn json(table: Option<&Spanned<toml::Table>>, vars: &Variables) -> Value {
    let mut table = table.map(|t| t.get_ref().clone()).unwrap_or_default();
    substitute_table(&mut table, vars);
    serde_json::to_value(table).unwrap_or(Value::Null)
}
