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
}

fn compile(config: &FilterConfig) -> Result<cel::Program> {
    cel::Program::compile(&config.when).map_err(|e| Error::config(format!("`when` is not a valid CEL condition: {e}")))
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
                    "reject_others": {"type": "boolean"}
                }
            }))
    }

    fn output_schema(config: &FilterConfig, input: &Value, _lookup: Option<&Value>) -> Result<Value> {
        compile(config)?;
        Ok(input.clone())
    }

    fn process(config: &FilterConfig, records: Vec<Record>, _lookup: Option<Vec<Record>>) -> Result<Output> {
        let program = compile(config)?;
        let mut context = cel::Context::default();
        let mut output = Output::default();
        for (i, record) in records.into_iter().enumerate() {
            let value = cel::to_value(&record).map_err(|e| Error::internal(format!("record {i} cannot become a CEL value: {e}")))?;
            context.add_variable_from_value("record", value);
            match program.execute(&context) {
                Ok(cel::Value::Bool(true)) => output.records.push(record),
                Ok(cel::Value::Bool(false)) if config.reject_others => output.reject(i, format!("`{}` is false", config.when), None),
                Ok(cel::Value::Bool(false)) => {}
                Ok(other) => output.reject(i, format!("`{}` gave {other:?}, not true or false", config.when), None),
                Err(e) => output.reject(i, format!("`{}` could not be evaluated: {e}", config.when), None),
            }
        }
        Ok(output)
    }
}

#[cfg(target_arch = "wasm32")]
weft_sdk::export_transform!(Filter);
