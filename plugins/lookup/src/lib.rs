//! `lookup`: derived mapping. Fills a field of each record with a value (usually an id) found
//! by matching up to six of its columns against another dataset, e.g. the Zoho account id of a
//! contact whose company name and country match an account.
//!
//! ```toml
//! [[steps]]
//! id = "with-account-ids"
//! transform = { plugin = "lookup", input = "contacts", lookup = "accounts" }
//! config.set = "Account_Id"                                   # the field to fill
//! config.value = "id"                                         # taken from the matching lookup record
//! config.match = { Company = "Account_Name", Country = "Billing_Country" }   # 1 to 6 pairs
//! config.ignore_case = true
//! config.missing = "reject"                                   # or "null", or "keep" (leave the field alone)
//! ```
//!
//! Several lookup records matching one record is ambiguous: the record is rejected with the
//! number of candidates, so a wrong id is never written.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use weft_sdk::{Error, Output, Record, Result, Transform, TransformInfo, Value, json};

/// The most columns a match may use.
pub const MAX_COLUMNS: usize = 6;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct LookupConfig {
    set: String,
    value: String,
    #[serde(rename = "match")]
    on: BTreeMap<String, String>,
    #[serde(default)]
    ignore_case: bool,
    #[serde(default)]
    missing: Missing,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Missing {
    #[default]
    Reject,
    Null,
    Keep,
}

impl LookupConfig {
    fn check(&self) -> Result<()> {
        match self.on.len() {
            0 => Err(Error::config(
                "`match` needs at least one pair: { input_field = \"lookup_field\" }",
            )),
            n if n > MAX_COLUMNS => Err(Error::config(format!(
                "`match` has {n} pairs; a lookup matches on at most {MAX_COLUMNS} columns"
            ))),
            _ => Ok(()),
        }
    }

    fn normalise(&self, value: &Value) -> String {
        let text = match value {
            Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        if self.ignore_case {
            text.to_lowercase()
        } else {
            text
        }
    }

    fn key<'a>(&self, record: &Record, fields: impl Iterator<Item = &'a String>) -> Option<String> {
        let mut key = String::new();
        for field in fields {
            key.push_str(&self.normalise(record.get(field).filter(|v| !v.is_null())?));
            key.push('\u{1f}');
        }
        Some(key)
    }
}

fn properties(schema: &Value) -> Option<&serde_json::Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

pub struct Lookup;

impl Transform for Lookup {
    type Config = LookupConfig;

    fn describe() -> TransformInfo {
        TransformInfo::new("lookup", env!("CARGO_PKG_VERSION"))
            .description("Fills a field with a value found by matching up to six columns against the lookup input.")
            .takes_lookup()
            .config_schema(json!({
                "type": "object",
                "required": ["set", "value", "match"],
                "additionalProperties": false,
                "properties": {
                    "set": {"type": "string"},
                    "value": {"type": "string"},
                    "match": {"type": "object", "minProperties": 1, "maxProperties": MAX_COLUMNS, "additionalProperties": {"type": "string"}},
                    "ignore_case": {"type": "boolean"},
                    "missing": {"enum": ["reject", "null", "keep"]}
                }
            }))
    }

    fn output_schema(
        config: &LookupConfig,
        input: &Value,
        lookup: Option<&Value>,
    ) -> Result<Value> {
        config.check()?;
        let lookup = lookup
            .ok_or_else(|| Error::config("lookup needs a second input: `lookup = \"step\"`"))?;
        let mut fields: Vec<(&Value, &String, &str)> = config
            .on
            .iter()
            .flat_map(|(m, t)| [(input, m, "input"), (lookup, t, "lookup")])
            .collect();
        fields.push((lookup, &config.value, "lookup"));
        for (schema, field, side) in fields {
            if let Some(p) = properties(schema)
                && !p.contains_key(field)
            {
                let has: Vec<&str> = p.keys().map(String::as_str).collect();
                return Err(Error::config(format!(
                    "`{field}` is not a field of the {side}; it has: {}",
                    has.join(", ")
                )));
            }
        }
        // An input of unknown shape (a dataset) stays unknown: its records may have any field.
        let Some(mut out) = properties(input).cloned() else {
            return Ok(json!({"type": "object"}));
        };
        let value_schema = properties(lookup)
            .and_then(|p| p.get(&config.value))
            .cloned()
            .unwrap_or(json!({}));
        out.insert(config.set.clone(), value_schema);
        Ok(json!({"type": "object", "properties": out}))
    }

    fn process(
        config: &LookupConfig,
        records: Vec<Record>,
        lookup: Option<Vec<Record>>,
    ) -> Result<Output> {
        config.check()?;
        let lookup = lookup
            .ok_or_else(|| Error::config("lookup needs a second input: `lookup = \"step\"`"))?;
        let mut index: HashMap<String, Vec<Value>> = HashMap::new();
        for row in &lookup {
            if let (Some(key), Some(value)) =
                (config.key(row, config.on.values()), row.get(&config.value))
            {
                index.entry(key).or_default().push(value.clone());
            }
        }
        let columns: Vec<&str> = config.on.keys().map(String::as_str).collect();
        let mut output = Output::default();
        for (i, mut record) in records.into_iter().enumerate() {
            let found = config
                .key(&record, config.on.keys())
                .and_then(|k| index.get(&k));
            match (found.map(Vec::as_slice), config.missing) {
                (Some([value]), _) => {
                    record.insert(config.set.clone(), value.clone());
                }
                (Some(many), _) if many.len() > 1 => {
                    output.reject(
                        i,
                        format!(
                            "{} lookup records match on {}: ambiguous",
                            many.len(),
                            columns.join(", ")
                        ),
                        Some(&config.set),
                    );
                    continue;
                }
                (_, Missing::Reject) => {
                    output.reject(
                        i,
                        format!("no lookup record matches on {}", columns.join(", ")),
                        Some(&config.set),
                    );
                    continue;
                }
                (_, Missing::Null) => {
                    record.insert(config.set.clone(), Value::Null);
                }
                (_, Missing::Keep) => {}
            }
            output.records.push(record);
        }
        Ok(output)
    }
}

#[cfg(target_arch = "wasm32")]
weft_sdk::export_transform!(Lookup);
