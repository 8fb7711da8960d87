//! `merge`: joins each input record with the matching record of a second input, on key
//! columns, the way Deals are merged with their Accounts.
//!
//! ```toml
//! [[steps]]
//! id = "deals-with-accounts"
//! transform = { plugin = "merge", input = "deals", lookup = "accounts" }
//! config.on = { Account_Id = "id" }     # input field = lookup field (several pairs: all must match)
//! config.join = "left"                  # "inner" (default) drops unmatched records, "left" keeps them
//! config.into = "account"               # lookup fields nested under this name ...
//! # config.prefix = "Account_"          # ... or flattened with this prefix (one of the two)
//! # config.fields = ["Account_Name"]    # only these lookup fields (default: all)
//! ```
//!
//! With `reject_unmatched = true` an unmatched record is a reject in the run's error log rather
//! than silently dropped (inner) or passed on (left).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use weft_sdk::{Error, Output, Record, Result, Transform, TransformInfo, Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// Input field = lookup field.
    on: BTreeMap<String, String>,
    #[serde(default)]
    join: Join,
    #[serde(default)]
    into: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    reject_unmatched: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Join {
    #[default]
    Inner,
    Left,
}

impl MergeConfig {
    fn check(&self) -> Result<()> {
        if self.on.is_empty() {
            return Err(Error::config(
                "`on` needs at least one pair: { input_field = \"lookup_field\" }",
            ));
        }
        if self.into.is_some() && self.prefix.is_some() {
            return Err(Error::config(
                "give `into` (nest the lookup record) or `prefix` (flatten it), not both",
            ));
        }
        Ok(())
    }

    /// The join key of a record, or `None` when a key field is missing or null.
    fn key<'a>(record: &Record, fields: impl Iterator<Item = &'a String>) -> Option<String> {
        let mut key = String::new();
        for field in fields {
            let value = record.get(field).filter(|v| !v.is_null())?;
            key.push_str(&value.to_string());
            key.push('\u{1f}');
        }
        Some(key)
    }

    fn attach(&self, mut record: Record, matched: Option<&Record>) -> Record {
        let Some(other) = matched else { return record };
        let keep = |k: &String| self.fields.as_ref().is_none_or(|f| f.contains(k));
        match (&self.into, &self.prefix) {
            (Some(into), _) => {
                let nested: Record = other
                    .iter()
                    .filter(|(k, _)| keep(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                record.insert(into.clone(), Value::Object(nested));
            }
            (None, prefix) => {
                let prefix = prefix.as_deref().unwrap_or("");
                for (k, v) in other.iter().filter(|(k, _)| keep(k)) {
                    record.insert(format!("{prefix}{k}"), v.clone());
                }
            }
        }
        record
    }
}

fn properties(schema: &Value) -> Option<&serde_json::Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

pub struct Merge;

impl Transform for Merge {
    type Config = MergeConfig;

    fn describe() -> TransformInfo {
        TransformInfo::new("merge", env!("CARGO_PKG_VERSION"))
            .description("Joins each input record with the matching record of the lookup input, on key columns.")
            .takes_lookup()
            .config_schema(json!({
                "type": "object",
                "required": ["on"],
                "additionalProperties": false,
                "properties": {
                    "on": {"type": "object", "additionalProperties": {"type": "string"}},
                    "join": {"enum": ["inner", "left"]},
                    "into": {"type": "string"},
                    "prefix": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "string"}},
                    "reject_unmatched": {"type": "boolean"}
                }
            }))
    }

    fn output_schema(config: &MergeConfig, input: &Value, lookup: Option<&Value>) -> Result<Value> {
        config.check()?;
        let lookup = lookup
            .ok_or_else(|| Error::config("merge needs a second input: `lookup = \"step\"`"))?;
        for (mine, theirs) in &config.on {
            for (schema, field, side) in [(input, mine, "input"), (lookup, theirs, "lookup")] {
                if let Some(p) = properties(schema)
                    && !p.contains_key(field)
                {
                    let has: Vec<&str> = p.keys().map(String::as_str).collect();
                    return Err(Error::config(format!(
                        "`on` names `{field}`, which the {side} does not have; it has: {}",
                        has.join(", ")
                    )));
                }
            }
        }
        let mut out = properties(input).cloned().unwrap_or_default();
        let theirs = match properties(lookup) {
            Some(p) => p.clone(),
            // A lookup of unknown shape (a dataset): the fields the config names are what it brings.
            None => config
                .fields
                .iter()
                .flatten()
                .map(|f| (f.clone(), json!({})))
                .collect(),
        };
        let keep = |k: &String| config.fields.as_ref().is_none_or(|f| f.contains(k));
        match (&config.into, &config.prefix) {
            (Some(into), _) => {
                let nested: serde_json::Map<String, Value> =
                    theirs.into_iter().filter(|(k, _)| keep(k)).collect();
                out.insert(
                    into.clone(),
                    json!({"type": ["object", "null"], "properties": nested}),
                );
            }
            (None, prefix) => {
                for (k, v) in theirs.into_iter().filter(|(k, _)| keep(k)) {
                    out.insert(format!("{}{k}", prefix.as_deref().unwrap_or("")), v);
                }
            }
        }
        Ok(json!({"type": "object", "properties": out}))
    }

    fn process(
        config: &MergeConfig,
        records: Vec<Record>,
        lookup: Option<Vec<Record>>,
    ) -> Result<Output> {
        config.check()?;
        let lookup = lookup
            .ok_or_else(|| Error::config("merge needs a second input: `lookup = \"step\"`"))?;
        let mut index: HashMap<String, Record> = HashMap::with_capacity(lookup.len());
        for row in lookup {
            if let Some(key) = MergeConfig::key(&row, config.on.values()) {
                // The first row with a key wins, as the lookup input ordered them.
                index.entry(key).or_insert(row);
            }
        }
        let mut output = Output::default();
        for (i, record) in records.into_iter().enumerate() {
            let matched = MergeConfig::key(&record, config.on.keys()).and_then(|k| index.get(&k));
            match (matched, config.join, config.reject_unmatched) {
                (Some(m), _, _) => output.records.push(config.attach(record, Some(m))),
                (None, _, true) => {
                    let fields: Vec<&str> = config.on.keys().map(String::as_str).collect();
                    output.reject(
                        i,
                        format!("no lookup record matches on {}", fields.join(", ")),
                        fields.first().copied(),
                    );
                }
                (None, Join::Left, false) => {
                    let mut record = record;
                    if let Some(into) = &config.into {
                        record.insert(into.clone(), Value::Null);
                    }
                    output.records.push(record);
                }
                (None, Join::Inner, false) => {}
            }
        }
        Ok(output)
    }
}

#[cfg(target_arch = "wasm32")]
weft_sdk::export_transform!(Merge);
