//! `map`: builds each output record from an input record.
//!
//! ```toml
//! [[steps]]
//! id = "cases"
//! transform = { plugin = "map", input = "tickets" }
//! config.fields = { Subject = "subject", Zendesk_Ticket_ID = "id", City = "address.city" }
//! config.constants = { Source = "zendesk" }
//! config.case.Status = { from = "status", map = { new = "Active", open = "Active", closed = "Inactive" }, default = "Inactive" }
//! ```
//!
//! - `fields`: output field = input path (dotted for nested objects, numbers index arrays), or
//!   `{ from = "path", default = VALUE, required = true, type = "number" }` where `type`
//!   (string, number, integer, boolean, domain) converts the value; one that cannot be converted
//!   rejects the record. `domain` takes a website's host without scheme, `www.`, port or path
//!   (`https://www.acme.example/about` is `acme.example`), the form CRMs match companies on.
//! - `constants`: output field = a fixed value.
//! - `clear = ["external_id"]`: output fields set to null, for APIs where null clears a value
//!   (TOML has no null to write as a constant).
//! - `format`: output field = a text with `{path}` placeholders filled from the input
//!   (`{ Name = "{name} (Partner Center)" }`; `{{` and `}}` are literal braces). A placeholder
//!   whose field is missing or null rejects the record.
//! - `case`: output field = `map[input value]`, else `default`; without a default an unmatched
//!   value rejects the record.
//! - `keep_unmapped = true` copies the input fields no rule names.
//! - `nest = true` builds nested output: an output field `details.currency` is `currency` in
//!   the object `details`, and a number in the path indexes an array (`team.0.email`), for
//!   APIs that take nested documents (a Partner Center referral).
//! - `type = "date"` turns an RFC 3339 date-time (`2026-12-31T00:00:00Z`) into its date.
//! - `skip_nulls = true` leaves out the output fields whose value is null (missing in the input
//!   and no default), and with `nest` an object none of whose fields is left: for APIs where
//!   absent means "leave as it is" and null means "clear", or where a lookup `{ id: null }` is
//!   refused (a Zoho lookup to a record the source does not know).
//!
//! A required field that is missing, or a case value with no match and no default, rejects
//! that record (it goes to the run's error log); the rest of the batch carries on.

use std::collections::BTreeMap;

use serde::Deserialize;
use weft_sdk::{Error, Output, Record, Result, Transform, TransformInfo, Value, json};

/// The step's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    #[serde(default)]
    pub fields: BTreeMap<String, FieldRule>,
    #[serde(default)]
    pub constants: BTreeMap<String, Value>,
    #[serde(default)]
    pub case: BTreeMap<String, CaseRule>,
    #[serde(default)]
    pub format: BTreeMap<String, String>,
    #[serde(default)]
    pub clear: Vec<String>,
    #[serde(default)]
    pub keep_unmapped: bool,
    #[serde(default)]
    pub nest: bool,
    #[serde(default)]
    pub skip_nulls: bool,
}

/// Where a mapped field comes from.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FieldRule {
    Path(String),
    Spec(FieldSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub from: String,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub required: bool,
    /// Converts the value: `"1.5"` to a number, `1` to a string, `"yes"` to a boolean.
    #[serde(default, rename = "type")]
    pub convert: Option<Conversion>,
}

/// A target type for a mapped value.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conversion {
    String,
    Number,
    Integer,
    Boolean,
    /// A website's bare host, lowercased: `https://www.acme.example/about` is `acme.example`.
    Domain,
    /// `YYYY-MM-DD`, from a date or an RFC 3339 date-time.
    Date,
}

/// The bare host of a website written as a URL or as a host.
fn domain_of(text: &str) -> Option<String> {
    let rest = text.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host
        .split(':')
        .next()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_owned();
    (host.contains('.')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    .then_some(host)
}

impl Conversion {
    /// The value as this type, or why it cannot be.
    fn apply(self, value: &Value) -> std::result::Result<Value, String> {
        let text = match value {
            Value::String(s) => Some(s.trim()),
            _ => None,
        };
        let fail = || format!("`{value}` cannot be converted to {}", self.name());
        match self {
            Conversion::String => Ok(match value {
                Value::String(_) => value.clone(),
                Value::Null => Value::Null,
                other => Value::String(other.to_string()),
            }),
            Conversion::Number => match (value, text) {
                (Value::Number(_), _) => Ok(value.clone()),
                (_, Some(t)) => t
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(fail),
                _ => Err(fail()),
            },
            Conversion::Integer => match (value, text) {
                (Value::Number(n), _) if n.is_i64() || n.is_u64() => Ok(value.clone()),
                (Value::Number(n), _) => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
                    _ => Err(fail()),
                },
                (_, Some(t)) => t.parse::<i64>().map(Value::from).map_err(|_| fail()),
                _ => Err(fail()),
            },
            Conversion::Date => match text {
                Some(t)
                    if t.len() >= 10
                        && is_date(&t[..10])
                        && (t.len() == 10 || t.as_bytes()[10] == b'T') =>
                {
                    Ok(Value::String(t[..10].to_owned()))
                }
                _ => Err(fail()),
            },
            Conversion::Boolean => match (value, text.map(str::to_ascii_lowercase).as_deref()) {
                (Value::Bool(_), _) => Ok(value.clone()),
                (_, Some("true" | "yes" | "y" | "1" | "on")) => Ok(Value::Bool(true)),
                (_, Some("false" | "no" | "n" | "0" | "off")) => Ok(Value::Bool(false)),
                (Value::Number(n), _) if n.as_f64() == Some(1.0) => Ok(Value::Bool(true)),
                (Value::Number(n), _) if n.as_f64() == Some(0.0) => Ok(Value::Bool(false)),
                _ => Err(fail()),
            },
            Conversion::Domain => text.and_then(domain_of).map(Value::String).ok_or_else(fail),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Conversion::String => "string",
            Conversion::Number => "number",
            Conversion::Integer => "integer",
            Conversion::Boolean => "boolean",
            Conversion::Domain => "domain",
            Conversion::Date => "date",
        }
    }

    /// The JSON Schema of converted values.
    fn schema(self) -> Value {
        match self {
            Conversion::Date => json!({"type": "string", "format": "date"}),
            Conversion::Domain => json!({"type": "string", "format": "hostname"}),
            other => json!({"type": other.name()}),
        }
    }
}

fn is_date(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Puts `value` at the dotted `path` of `into`, creating objects (and arrays, for numbers).
fn insert_nested(into: &mut Value, path: &str, value: Value) {
    let mut current = into;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let next_is_index = parts.get(i + 1).is_some_and(|p| p.parse::<usize>().is_ok());
        let fresh = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(Default::default())
            }
        };
        current = match (current, part.parse::<usize>()) {
            (Value::Array(items), Ok(index)) => {
                while items.len() <= index {
                    items.push(Value::Null);
                }
                if last {
                    items[index] = value;
                    return;
                }
                if !items[index].is_object() && !items[index].is_array() {
                    items[index] = fresh();
                }
                &mut items[index]
            }
            (Value::Object(map), _) => {
                if last {
                    map.insert((*part).to_owned(), value);
                    return;
                }
                let slot = map.entry((*part).to_owned()).or_insert_with(fresh);
                if !slot.is_object() && !slot.is_array() {
                    *slot = fresh();
                }
                slot
            }
            // A path that indexes into a scalar or names a field of an array: the later rule wins.
            (slot, _) => {
                *slot = Value::Object(Default::default());
                if last {
                    slot[*part] = value;
                    return;
                }
                slot.as_object_mut()
                    .expect("just made")
                    .entry((*part).to_owned())
                    .or_insert_with(fresh)
            }
        };
    }
}

/// A nested schema for flat dotted `properties`, the shape `nest` gives records.
fn nest_schema(properties: serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let mut root = json!({"type": "object", "properties": {}});
    for (path, schema) in properties {
        let mut current = &mut root;
        for part in path.split('.') {
            if part.parse::<usize>().is_ok() {
                current["type"] = json!("array");
                if current.get("items").is_none() {
                    current["items"] = json!({"type": "object", "properties": {}});
                }
                current = current.get_mut("items").expect("just set");
            } else {
                if current.get("properties").is_none() {
                    current["properties"] = json!({});
                }
                current = current["properties"]
                    .as_object_mut()
                    .expect("an object")
                    .entry(part.to_owned())
                    .or_insert_with(|| json!({"type": "object", "properties": {}}));
            }
        }
        *current = schema;
    }
    root["properties"].as_object().cloned().unwrap_or_default()
}

/// A value chosen by the source value: `map[value]`, else `default`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRule {
    pub from: String,
    pub map: BTreeMap<String, Value>,
    #[serde(default)]
    pub default: Option<Value>,
    /// Match `New` with a `new` key.
    #[serde(default)]
    pub ignore_case: bool,
}

impl FieldRule {
    fn from(&self) -> &str {
        match self {
            FieldRule::Path(p) => p,
            FieldRule::Spec(s) => &s.from,
        }
    }
}

/// The value at a dotted `path` of `record`.
pub fn lookup<'a>(record: &'a Record, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = record.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A piece of a `format` template: literal text, or a `{path}` placeholder.
enum Part<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// The pieces of a template, in order (`{{` and `}}` are literal braces); `Err` when a brace
/// is unbalanced.
fn parts(template: &str) -> std::result::Result<Vec<Part<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push(Part::Text(&rest[..at]));
        let (brace, after) = (rest.as_bytes()[at], &rest[at + 1..]);
        if after.as_bytes().first() == Some(&brace) {
            out.push(Part::Text(&rest[at..at + 1]));
            rest = &after[1..];
            continue;
        }
        if brace == b'}' {
            return Err(format!(
                "`{template}` has a `}}` without its `{{` (write `}}}}` for a brace)"
            ));
        }
        let Some(end) = after.find('}') else {
            return Err(format!(
                "`{template}` has a `{{` without its `}}` (write `{{{{` for a brace)"
            ));
        };
        out.push(Part::Field(after[..end].trim()));
        rest = &after[end + 1..];
    }
    out.push(Part::Text(rest));
    Ok(out)
}

/// The `{path}` placeholders of a template, in order.
fn placeholders(template: &str) -> std::result::Result<Vec<&str>, String> {
    Ok(parts(template)?
        .into_iter()
        .filter_map(|p| {
            if let Part::Field(f) = p {
                Some(f)
            } else {
                None
            }
        })
        .collect())
}

/// `template` with its placeholders filled from `record`: strings as they are, numbers and
/// booleans as written.
fn fill(template: &str, record: &Record) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    for part in parts(template)? {
        let path = match part {
            Part::Text(text) => {
                out.push_str(text);
                continue;
            }
            Part::Field(path) => path,
        };
        match lookup(record, path).filter(|v| !v.is_null()) {
            Some(Value::String(text)) => out.push_str(text),
            Some(Value::Array(_) | Value::Object(_)) => {
                return Err(format!(
                    "`{path}` is not text, a number or a boolean, so `{template}` cannot hold it"
                ));
            }
            Some(other) => out.push_str(&other.to_string()),
            None => {
                return Err(format!(
                    "`{path}` is missing or null, and `{template}` needs it"
                ));
            }
        }
    }
    Ok(out)
}

/// The text a case rule matches on: strings as they are, numbers and booleans as written.
fn case_key(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl CaseRule {
    fn choose(&self, value: Option<&Value>) -> Option<&Value> {
        let hit = value.and_then(case_key).and_then(|key| {
            self.map.get(&key).or_else(|| {
                self.ignore_case
                    .then(|| {
                        self.map
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                            .map(|(_, v)| v)
                    })
                    .flatten()
            })
        });
        hit.or(self.default.as_ref())
    }
}

impl MapConfig {
    /// Maps one record, or says why it is rejected and which output field is at fault.
    pub fn apply(&self, record: &Record) -> std::result::Result<Record, (String, String)> {
        let mut out = if self.keep_unmapped {
            record.clone()
        } else {
            Record::new()
        };
        for (target, rule) in &self.fields {
            let value = lookup(record, rule.from()).filter(|v| !v.is_null());
            match (value, rule) {
                (
                    Some(v),
                    FieldRule::Spec(FieldSpec {
                        convert: Some(c), ..
                    }),
                ) => {
                    let converted = c
                        .apply(v)
                        .map_err(|why| (format!("`{}`: {why}", rule.from()), target.clone()))?;
                    out.insert(target.clone(), converted);
                }
                (Some(v), _) => {
                    out.insert(target.clone(), v.clone());
                }
                (
                    None,
                    FieldRule::Spec(FieldSpec {
                        default: Some(d), ..
                    }),
                ) => {
                    out.insert(target.clone(), d.clone());
                }
                (
                    None,
                    FieldRule::Spec(FieldSpec {
                        required: true,
                        from,
                        ..
                    }),
                ) => {
                    return Err((
                        format!("required field `{from}` is missing or null"),
                        target.clone(),
                    ));
                }
                (None, _) => {
                    out.insert(target.clone(), Value::Null);
                }
            }
        }
        for (target, value) in &self.constants {
            out.insert(target.clone(), value.clone());
        }
        for (target, template) in &self.format {
            let text = fill(template, record).map_err(|why| (why, target.clone()))?;
            out.insert(target.clone(), Value::String(text));
        }
        for target in &self.clear {
            out.insert(target.clone(), Value::Null);
        }
        for (target, rule) in &self.case {
            let source = lookup(record, &rule.from);
            match rule.choose(source) {
                Some(v) => {
                    out.insert(target.clone(), v.clone());
                }
                None => {
                    let shown = source.map_or_else(|| "nothing".to_owned(), |v| format!("`{v}`"));
                    return Err((
                        format!(
                            "`{}` is {shown}, which no case of `{target}` matches, and there is no default",
                            rule.from
                        ),
                        target.clone(),
                    ));
                }
            }
        }
        if self.skip_nulls {
            out.retain(|_, v| !v.is_null());
        }
        if self.nest {
            let mut nested = Value::Object(Default::default());
            for (k, v) in out {
                insert_nested(&mut nested, &k, v);
            }
            let Value::Object(nested) = nested else {
                unreachable!("built as an object")
            };
            return Ok(nested);
        }
        Ok(out)
    }

    /// Maps a batch; rejected records are reported by index.
    pub fn apply_batch(&self, records: Vec<Record>) -> Output {
        let mut output = Output {
            records: Vec::with_capacity(records.len()),
            rejects: Vec::new(),
        };
        for (index, record) in records.iter().enumerate() {
            match self.apply(record) {
                Ok(mapped) => output.records.push(mapped),
                Err((reason, field)) => output.reject(index, reason, Some(&field)),
            }
        }
        output
    }
}

/// The schema at a dotted path of an object schema; `Ok(None)` when the schema does not list
/// its properties (anything goes), an error when it lists them and the path is not there.
fn schema_at<'a>(
    schema: &'a Value,
    path: &str,
) -> std::result::Result<Option<&'a Value>, Vec<String>> {
    let mut current = schema;
    for part in path.split('.') {
        if let Some(items) = current
            .get("items")
            .filter(|_| part.parse::<usize>().is_ok())
        {
            current = items;
            continue;
        }
        let Some(properties) = current.get("properties").and_then(Value::as_object) else {
            return Ok(None);
        };
        match properties.get(part) {
            Some(s) => current = s,
            None => return Err(properties.keys().cloned().collect()),
        }
    }
    Ok(Some(current))
}

fn value_schema(value: &Value) -> Value {
    match value {
        Value::Null => json!({"type": "null"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Array(_) => json!({"type": "array"}),
        Value::Object(_) => json!({"type": "object"}),
    }
}

pub struct Map;

impl Transform for Map {
    type Config = MapConfig;

    fn describe() -> TransformInfo {
        TransformInfo::new("map", env!("CARGO_PKG_VERSION"))
            .description("Builds output records from input fields, constants and case fields.")
            .config_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "fields": {
                        "type": "object",
                        "description": "Output field = input path, or { from, default, required }.",
                        "additionalProperties": {
                            "oneOf": [
                                {"type": "string"},
                                {
                                    "type": "object",
                                    "required": ["from"],
                                    "additionalProperties": false,
                                    "properties": {
                                        "from": {"type": "string"},
                                        "default": {},
                                        "required": {"type": "boolean"},
                                        "type": {"enum": ["string", "number", "integer", "boolean", "domain", "date"]}
                                    }
                                }
                            ]
                        }
                    },
                    "constants": {"type": "object", "description": "Output field = fixed value."},
                    "format": {"type": "object", "description": "Output field = text with {path} placeholders from the input.", "additionalProperties": {"type": "string"}},
                    "clear": {"type": "array", "items": {"type": "string"}, "description": "Output fields set to null."},
                    "case": {
                        "type": "object",
                        "description": "Output field = map[input value], else default.",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["from", "map"],
                            "additionalProperties": false,
                            "properties": {
                                "from": {"type": "string"},
                                "map": {"type": "object"},
                                "default": {},
                                "ignore_case": {"type": "boolean"}
                            }
                        }
                    },
                    "keep_unmapped": {"type": "boolean"},
                    "nest": {"type": "boolean", "description": "Dotted output fields build nested objects; numbers index arrays."},
                    "skip_nulls": {"type": "boolean", "description": "Leave out null output fields, and objects left empty."}
                }
            }))
    }

    fn output_schema(config: &MapConfig, input: &Value, _lookup: Option<&Value>) -> Result<Value> {
        let mut properties = serde_json::Map::new();
        if config.keep_unmapped
            && let Some(p) = input.get("properties").and_then(Value::as_object)
        {
            properties.extend(p.clone());
        }
        let sources = config
            .fields
            .iter()
            .map(|(target, rule)| (target, rule.from()))
            .chain(
                config
                    .case
                    .iter()
                    .map(|(target, rule)| (target, rule.from.as_str())),
            );
        for (target, from) in sources {
            match schema_at(input, from) {
                Ok(found) => {
                    let schema = match (config.fields.get(target), config.case.get(target)) {
                        (
                            Some(FieldRule::Spec(FieldSpec {
                                convert: Some(c), ..
                            })),
                            _,
                        ) => c.schema(),
                        (_, Some(rule)) => {
                            let choices: Vec<Value> = rule
                                .map
                                .values()
                                .chain(rule.default.iter())
                                .cloned()
                                .collect();
                            json!({"enum": choices})
                        }
                        _ => found.cloned().unwrap_or_else(|| json!({})),
                    };
                    properties.insert(target.clone(), schema);
                }
                Err(available) => {
                    return Err(Error::config(format!(
                        "`{target}` maps from `{from}`, which the input does not have; it has: {}",
                        available.join(", ")
                    )));
                }
            }
        }
        for (target, value) in &config.constants {
            properties.insert(target.clone(), value_schema(value));
        }
        for target in &config.clear {
            properties.insert(target.clone(), json!({"type": "null"}));
        }
        for (target, template) in &config.format {
            for path in placeholders(template).map_err(Error::config)? {
                if let Err(available) = schema_at(input, path) {
                    return Err(Error::config(format!(
                        "`{target}` formats `{{{path}}}`, which the input does not have; it has: {}",
                        available.join(", ")
                    )));
                }
            }
            properties.insert(target.clone(), json!({"type": "string"}));
        }
        if config.nest {
            properties = nest_schema(properties);
        }
        Ok(json!({"type": "object", "properties": properties}))
    }

    fn process(
        config: &MapConfig,
        records: Vec<Record>,
        _lookup: Option<Vec<Record>>,
    ) -> Result<Output> {
        Ok(config.apply_batch(records))
    }
}

/// Each call runs in a fresh instance: an arena is all a batch transform needs.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: weft_sdk::arena::Arena = weft_sdk::arena::Arena::new();

// Natively (the benchmark's baseline) the crate is a plain library: WebAssembly export names
// are not valid native symbols.
#[cfg(target_arch = "wasm32")]
weft_sdk::export_transform!(Map);
