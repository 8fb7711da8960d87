//! `{{name}}`: a weft transform written in Rust.
//!
//! A `map`-like transform: each output record gets the fields the step config names, taken
//! from the input record (a dotted path reaches into nested objects), and records lacking a
//! required one are rejected, each by its index, while the rest of the batch goes on:
//!
//! ```toml
//! [[steps]]
//! id = "people"
//! transform = { plugin = "{{name}}", input = "users" }
//! config.fields = { user_id = "id", full_name = "name", city = "address.city" }
//! config.required = ["user_id"]
//! ```
//!
//! Replace `process` (and `output_schema`) with what your transform does. Each batch runs in
//! a fresh instance: keep nothing between calls.

use std::collections::BTreeMap;

use serde::Deserialize;
use weft_sdk::{Error, Output, Record, Result, Transform, TransformInfo, Value, json};

/// The step's config, as its `config_schema` describes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Output field → input field (a dotted path reaches into nested objects).
    fields: BTreeMap<String, String>,
    /// Output fields every record must have (not missing, not null).
    #[serde(default)]
    required: Vec<String>,
}

impl Config {
    fn checked(&self) -> Result<&Self> {
        for (target, from) in &self.fields {
            if from.is_empty() {
                return Err(Error::config(format!("`fields.{target}` must name an input field")));
            }
        }
        match self.required.iter().find(|r| !self.fields.contains_key(*r)) {
            Some(r) => Err(Error::config(format!("`required` names `{r}`, which is not one of `fields`"))),
            None => Ok(self),
        }
    }
}

/// The value at a dotted path, if there is one.
fn value_at<'a>(record: &'a Record, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = record.get(parts.next()?)?;
    for key in parts {
        value = value.get(key)?;
    }
    Some(value)
}

/// The schema of the field at a dotted path: `{}` (anything) where the input schema lists no
/// properties, `None` where it lists them and the field is not among them.
fn schema_at(schema: &Value, path: &str) -> Option<Value> {
    let mut current = schema;
    for key in path.split('.') {
        let Some(properties) = current.get("properties").and_then(Value::as_object) else {
            return Some(json!({}));
        };
        current = properties.get(key)?;
    }
    Some(current.clone())
}

pub struct Plugin;

impl Transform for Plugin {
    type Config = Config;

    fn describe() -> TransformInfo {
        TransformInfo::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .description("Renames and picks fields; rejects records missing a required one.")
            .config_schema(json!({
                "type": "object",
                "required": ["fields"],
                "properties": {
                    "fields": {
                        "type": "object",
                        "description": "Output field name to input field (a dotted path reaches into nested objects).",
                        "additionalProperties": {"type": "string"}
                    },
                    "required": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Output fields every record must have (not missing, not null)."
                    }
                }
            }))
    }

    // Called before a run with the schema of the step's input: a config naming a field the
    // input does not have fails here, naming it, before any data moves.
    fn output_schema(config: &Config, input: &Value, _lookup: Option<&Value>) -> Result<Value> {
        let config = config.checked()?;
        let mut properties = serde_json::Map::new();
        for (target, from) in &config.fields {
            let Some(schema) = schema_at(input, from) else {
                let has: Vec<&String> = input["properties"].as_object().map(|p| p.keys().collect()).unwrap_or_default();
                return Err(Error::config(format!(
                    "`{target}` maps from `{from}`, which the input does not have; it has: {}",
                    has.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )));
            };
            properties.insert(target.clone(), schema);
        }
        Ok(json!({"type": "object", "properties": properties, "required": config.required}))
    }

    fn process(config: &Config, records: Vec<Record>, _lookup: Option<Vec<Record>>) -> Result<Output> {
        let config = config.checked()?;
        let mut output = Output::default();
        for (index, record) in records.iter().enumerate() {
            let mut mapped = Record::new();
            for (target, from) in &config.fields {
                if let Some(value) = value_at(record, from) {
                    mapped.insert(target.clone(), value.clone());
                }
            }
            let missing = config.required.iter().find(|r| mapped.get(*r).is_none_or(Value::is_null));
            match missing {
                Some(target) => {
                    let from = &config.fields[target];
                    output.reject(index, format!("required field `{target}` (from `{from}`) is missing"), Some(from));
                }
                None => output.records.push(mapped),
            }
        }
        Ok(output)
    }
}

weft_sdk::export_transform!(Plugin);
