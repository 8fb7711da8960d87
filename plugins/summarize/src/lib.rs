//! `summarize`: counts the records of its lookup input, in groups, for each input record: a
//! flow's totals, such as what an import will move and the API calls that costs. The lookup
//! input is read in full before the input, so the counts cover every page of it.
//!
//! ```toml
//! [[steps]]
//! id = "contact-calls"
//! transform = { plugin = "summarize", input = "hubspot-allocation", lookup = "contact-rows" }
//! config.group_by = ["object"]                 # 0 to 6 fields of the lookup; none: one total
//! config.count = "objects"                     # the count's field (default `count`)
//! config.batches = { upsert_calls = 100 }      # ⌈count / size⌉ each: calls in batches of 100
//! ```
//!
//! Each input record becomes one record per group (in group order): the input's fields, the
//! group's fields, the count and the batch counts. With no `group_by` and an empty lookup, the
//! one record counts 0; with `group_by`, an empty lookup has no groups and gives no record.

use std::collections::BTreeMap;

use serde::Deserialize;
use weft_sdk::{Error, Output, Record, Result, Transform, TransformInfo, Value, json};

/// The most fields a group may be keyed on.
pub const MAX_GROUP_FIELDS: usize = 6;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarizeConfig {
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default = "default_count")]
    count: String,
    #[serde(default)]
    batches: BTreeMap<String, u64>,
}

fn default_count() -> String {
    "count".into()
}

impl SummarizeConfig {
    fn check(&self) -> Result<()> {
        if self.group_by.len() > MAX_GROUP_FIELDS {
            return Err(Error::config(format!(
                "`group_by` names {} fields; a summary groups on at most {MAX_GROUP_FIELDS}",
                self.group_by.len()
            )));
        }
        if let Some((name, _)) = self.batches.iter().find(|(_, size)| **size == 0) {
            return Err(Error::config(format!(
                "batch `{name}` has size 0; give how many records one call takes"
            )));
        }
        Ok(())
    }

    /// The lookup's records counted per group, in group order.
    fn groups(&self, lookup: &[Record]) -> Vec<(Vec<Value>, u64)> {
        let mut counts: BTreeMap<String, (Vec<Value>, u64)> = BTreeMap::new();
        if self.group_by.is_empty() {
            counts.insert(String::new(), (Vec::new(), 0));
        }
        for row in lookup {
            let values: Vec<Value> = self
                .group_by
                .iter()
                .map(|f| row.get(f).cloned().unwrap_or(Value::Null))
                .collect();
            let entry = counts
                .entry(Value::Array(values.clone()).to_string())
                .or_insert((values, 0));
            entry.1 += 1;
        }
        counts.into_values().collect()
    }
}

pub struct Summarize;

impl Transform for Summarize {
    type Config = SummarizeConfig;

    fn describe() -> TransformInfo {
        TransformInfo::new("summarize", env!("CARGO_PKG_VERSION"))
            .description("Counts the lookup input's records per group, with batch counts, for each input record.")
            .takes_lookup()
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "group_by": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_GROUP_FIELDS},
                    "count": {"type": "string"},
                    "batches": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}
                }
            }))
    }

    fn output_schema(
        config: &SummarizeConfig,
        input: &Value,
        lookup: Option<&Value>,
    ) -> Result<Value> {
        config.check()?;
        let lookup = lookup
            .ok_or_else(|| Error::config("summarize counts a second input: `lookup = \"step\"`"))?;
        let lookup_props = lookup.get("properties").and_then(Value::as_object);
        let mut out = input
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for field in &config.group_by {
            let schema = match lookup_props {
                Some(p) => p.get(field).cloned().ok_or_else(|| {
                    let has: Vec<&str> = p.keys().map(String::as_str).collect();
                    Error::config(format!(
                        "`{field}` is not a field of the lookup; it has: {}",
                        has.join(", ")
                    ))
                })?,
                None => json!({}),
            };
            out.insert(field.clone(), schema);
        }
        for name in std::iter::once(&config.count).chain(config.batches.keys()) {
            out.insert(name.clone(), json!({"type": "integer", "minimum": 0}));
        }
        Ok(json!({"type": "object", "properties": out}))
    }

    fn process(
        config: &SummarizeConfig,
        records: Vec<Record>,
        lookup: Option<Vec<Record>>,
    ) -> Result<Output> {
        config.check()?;
        let lookup = lookup
            .ok_or_else(|| Error::config("summarize counts a second input: `lookup = \"step\"`"))?;
        let groups = config.groups(&lookup);
        let mut output = Output::default();
        for record in &records {
            for (values, count) in &groups {
                let mut out = record.clone();
                for (field, value) in config.group_by.iter().zip(values) {
                    out.insert(field.clone(), value.clone());
                }
                out.insert(config.count.clone(), json!(count));
                for (name, size) in &config.batches {
                    out.insert(name.clone(), json!(count.div_ceil(*size)));
                }
                output.records.push(out);
            }
        }
        Ok(output)
    }
}

#[cfg(target_arch = "wasm32")]
weft_sdk::export_transform!(Summarize);
