//! `filter`: keeps the records a condition holds for. Conditions are CEL (the Common Expression
//! Language), with the record as `record`:
//!
//! ```toml
//! [[steps]]
//! id = "open-deals"
//! transform = { plugin = "filter", input = "deals" }
//! config.when = "record.Stage != 'Closed Lost' && record.Amount > 0 && has(record.Account_Id)"
//! # config.reject_others = true   # log the records left out instead of dropping them quietly
//! ```
//!
//! The fields the condition reads from `record` are checked against the input's schema before
//! anything runs (`weft validate`): `record.yeer` where the input has `year` is a configuration
//! error with a did-you-mean. Fields only tested with `has(record.x)` may be absent.
//!
//! With `output = "positions"` the filter hands on, instead of the records it keeps, one
//! `{"position": i}` per kept record (its index in the batch): a caller that holds the batch
//! itself (the engine, splitting a condition step's records into `then` and `else`) needs no
//! copy of the records back, and one call serves both branches.
//!
//! A record the condition cannot be evaluated on (a missing field used without `has`, a type
//! mismatch) is rejected with CEL's reason, so a bad condition shows up in the error log rather
//! than as silently missing data.

use serde::Deserialize;
use weft_sdk::{Error, Output, Record, Result, Transform, TransformInfo, Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    when: String,
    #[serde(default)]
    reject_others: bool,
    #[serde(default)]
    output: Kept,
}

/// What the filter hands on for each record it keeps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kept {
    /// The record itself.
    #[default]
    Records,
    /// `{"position": i}`, its index in the batch.
    Positions,
}

fn compile(config: &FilterConfig) -> Result<cel::Program> {
    cel::Program::compile(&config.when)
        .map_err(|e| Error::config(format!("`when` is not a valid CEL condition: {e}")))
}

/// The field paths the expression reads from `record` (`record.a.b` is `[a, b]`), leaving out
/// those it only tests for with `has(...)`, which may be absent.
fn record_paths(expr: &cel::common::ast::IdedExpr, out: &mut Vec<Vec<String>>) {
    use cel::common::ast::{EntryExpr, Expr};
    match &expr.expr {
        Expr::Select(select) => {
            let mut path = vec![select.field.clone()];
            let mut operand = &select.operand.expr;
            loop {
                match operand {
                    Expr::Select(inner) if !inner.test => {
                        path.insert(0, inner.field.clone());
                        operand = &inner.operand.expr;
                    }
                    Expr::Ident(name) if name == "record" => {
                        if !select.test {
                            out.push(path);
                        }
                        return;
                    }
                    _ => break,
                }
            }
            record_paths(&select.operand, out);
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                record_paths(target, out);
            }
            call.args.iter().for_each(|a| record_paths(a, out));
        }
        Expr::Comprehension(c) => {
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                record_paths(e, out);
            }
        }
        Expr::List(list) => list.elements.iter().for_each(|e| record_paths(e, out)),
        Expr::Map(map) => map.entries.iter().for_each(|e| match &e.expr {
            EntryExpr::MapEntry(m) => {
                record_paths(&m.key, out);
                record_paths(&m.value, out);
            }
            EntryExpr::StructField(f) => record_paths(&f.value, out),
        }),
        Expr::Struct(st) => st.entries.iter().for_each(|e| match &e.expr {
            EntryExpr::MapEntry(m) => record_paths(&m.value, out),
            EntryExpr::StructField(f) => record_paths(&f.value, out),
        }),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Whether an object schema has `path`; anything goes where a schema lists no properties. The
/// error lists the properties where the path left the schema.
fn schema_has(schema: &Value, path: &[String]) -> std::result::Result<(), Vec<String>> {
    let mut current = schema;
    for part in path {
        let Some(properties) = current.get("properties").and_then(Value::as_object) else {
            return Ok(());
        };
        match properties.get(part) {
            Some(s) => current = s,
            None => return Err(properties.keys().cloned().collect()),
        }
    }
    Ok(())
}

/// The known name nearest to `name` (at most two edits away), for a did-you-mean.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let current = row[j + 1];
                row[j + 1] = (previous + usize::from(ca != *cb))
                    .min(row[j] + 1)
                    .min(current + 1);
                previous = current;
            }
        }
        row[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(name, k), k.as_str()))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

pub struct Filter;

impl Transform for Filter {
    type Config = FilterConfig;

    fn describe() -> TransformInfo {
        TransformInfo::new("filter", env!("CARGO_PKG_VERSION"))
            .description("Keeps the records a CEL condition on `record` holds for.")
            .config_schema(json!({
                "type": "object",
                "required": ["when"],
                "additionalProperties": false,
                "properties": {
                    "when": {"type": "string", "description": "A CEL condition over `record`."},
                    "reject_others": {"type": "boolean"},
                    "output": {"enum": ["records", "positions"], "description": "`positions`: hand on `{\"position\": i}` for each kept record instead of the record."}
                }
            }))
    }

    fn output_schema(
        config: &FilterConfig,
        input: &Value,
        _lookup: Option<&Value>,
    ) -> Result<Value> {
        let program = compile(config)?;
        let mut paths = Vec::new();
        record_paths(program.expression(), &mut paths);
        for path in paths {
            if let Err(known) = schema_has(input, &path) {
                let hint = closest(path.last().map(String::as_str).unwrap_or_default(), &known)
                    .map(|k| format!("did you mean `{k}`? "))
                    .unwrap_or_default();
                return Err(Error::config(format!(
                    "`when` refers to `record.{}`, which the input does not have; {hint}it has: {}",
                    path.join("."),
                    known.join(", ")
                )));
            }
        }
        Ok(match config.output {
            Kept::Records => input.clone(),
            Kept::Positions => json!({
                "type": "object",
                "required": ["position"],
                "properties": {"position": {"type": "integer", "minimum": 0}}
            }),
        })
    }

    fn process(
        config: &FilterConfig,
        records: Vec<Record>,
        _lookup: Option<Vec<Record>>,
    ) -> Result<Output> {
        let program = compile(config)?;
        let mut context = cel::Context::default();
        let mut output = Output::default();
        for (i, record) in records.into_iter().enumerate() {
            let value = cel::to_value(&record).map_err(|e| {
                Error::internal(format!("record {i} cannot become a CEL value: {e}"))
            })?;
            context.add_variable_from_value("record", value);
            match program.execute(&context) {
                Ok(cel::Value::Bool(true)) => output.records.push(match config.output {
                    Kept::Records => record,
                    Kept::Positions => position(i),
                }),
                Ok(cel::Value::Bool(false)) if config.reject_others => {
                    output.reject(i, format!("`{}` is false", config.when), None)
                }
                Ok(cel::Value::Bool(false)) => {}
                Ok(other) => output.reject(
                    i,
                    format!("`{}` gave {other:?}, not true or false", config.when),
                    None,
                ),
                Err(e) => output.reject(
                    i,
                    format!("`{}` could not be evaluated: {e}", config.when),
                    None,
                ),
            }
        }
        Ok(output)
    }
}

fn position(i: usize) -> Record {
    let mut marker = Record::new();
    marker.insert("position".into(), json!(i));
    marker
}

#[cfg(target_arch = "wasm32")]
weft_sdk::export_transform!(Filter);

#[cfg(test)]
mod tests {
    use super::*;

    fn check(when: &str) -> Result<Value> {
        let config = FilterConfig {
            when: when.into(),
            reject_others: false,
            output: Kept::Records,
        };
        let input = json!({"type": "object", "properties": {"year": {"type": "integer"}, "owner": {"type": "object", "properties": {"name": {"type": "string"}}}, "extra": {}}});
        Filter::output_schema(&config, &input, None)
    }

    #[test]
    fn a_field_the_input_lacks_is_a_config_error_with_a_suggestion() {
        let err = check("record.yeer > 2000").unwrap_err().to_string();
        assert!(
            err.contains("`record.yeer`") && err.contains("did you mean `year`?"),
            "{err}"
        );
        let err = check("record.owner.nmae == 'x'").unwrap_err().to_string();
        assert!(
            err.contains("`record.owner.nmae`") && err.contains("did you mean `name`?"),
            "{err}"
        );
    }

    #[test]
    fn positions_name_the_kept_records_in_batch_order() {
        let config: FilterConfig =
            serde_json::from_value(json!({"when": "record.n > 1", "output": "positions"})).unwrap();
        let records = [1, 2, 0, 3]
            .into_iter()
            .map(|n| json!({"n": n}).as_object().unwrap().clone())
            .collect();
        let out = Filter::process(&config, records, None).unwrap();
        assert_eq!(out.records, [position(1), position(3)]);
    }

    #[test]
    fn known_fields_tests_and_unlisted_properties_pass() {
        assert!(check("record.year > 2000 && record.owner.name == 'x'").is_ok());
        assert!(check("has(record.missing) && size(record.owner.name) > 0").is_ok());
        assert!(
            check("record.extra.anything == 1").is_ok(),
            "a property without a schema of its own takes anything"
        );
        assert!(check("[1, 2].exists(x, x == record.year)").is_ok());
        assert!(check("[1, 2].exists(x, x == record.yr)").is_err());
    }
}
