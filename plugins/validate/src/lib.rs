//! `validate`: rejects the records that break rules, before they reach an upstream that would
//! refuse them anyway (or worse, accept them). Each rejected record goes to the run's error log
//! with every rule it broke.
//!
//! ```toml
//! [[steps]]
//! id = "checked"
//! transform = { plugin = "validate", input = "opportunities" }
//! config.rules = [
//!   { field = "Name", check = "required" },
//!   { field = "BillingCountry", check = "country" },       # ISO 3166-1 alpha-2
//!   { field = "CurrencyIsoCode", check = "currency" },     # ISO 4217
//!   { field = "Amount", check = "non-zero" },              # a number, not 0, not empty
//!   { field = "StageName", check = "enum", values = ["Prospecting", "Closed Won"] },
//!   { field = "Email", check = "pattern", pattern = "^[^@ ]+@[^@ ]+$" },
//! ]
//! ```

use serde::Deserialize;
use weft_sdk::{Error, Output, Record, Result, Transform, TransformInfo, Value, json};

mod iso;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateConfig {
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    /// A dotted path into the record.
    field: String,
    check: Check,
    #[serde(default)]
    values: Vec<Value>,
    #[serde(default)]
    pattern: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Check {
    Required,
    Country,
    Currency,
    NonZero,
    Enum,
    Pattern,
}

/// A rule with its pattern compiled.
struct Compiled<'a> {
    rule: &'a Rule,
    regex: Option<regex::Regex>,
}

fn lookup<'a>(record: &'a Record, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = record.get(parts.next()?)?;
    for part in parts {
        current = current.get(part)?;
    }
    Some(current).filter(|v| !v.is_null())
}

fn compile(config: &ValidateConfig) -> Result<Vec<Compiled<'_>>> {
    config
        .rules
        .iter()
        .map(|rule| {
            let regex = match (rule.check, &rule.pattern) {
                (Check::Pattern, Some(p)) => Some(regex::Regex::new(p).map_err(|e| {
                    Error::config(format!("rule for `{}`: bad pattern: {e}", rule.field))
                })?),
                (Check::Pattern, None) => {
                    return Err(Error::config(format!(
                        "rule for `{}`: `check = \"pattern\"` needs `pattern = \"...\"`",
                        rule.field
                    )));
                }
                (Check::Enum, _) if rule.values.is_empty() => {
                    return Err(Error::config(format!(
                        "rule for `{}`: `check = \"enum\"` needs `values = [...]`",
                        rule.field
                    )));
                }
                _ => None,
            };
            Ok(Compiled { rule, regex })
        })
        .collect()
}

impl Compiled<'_> {
    /// Why the record breaks this rule, if it does.
    fn broken(&self, record: &Record) -> Option<String> {
        let field = &self.rule.field;
        let value = lookup(record, field);
        let text = value.and_then(Value::as_str).map(str::trim);
        match self.rule.check {
            Check::Required => match value {
                None => Some(format!("`{field}` is required")),
                Some(Value::String(s)) if s.trim().is_empty() => {
                    Some(format!("`{field}` is required"))
                }
                _ => None,
            },
            Check::Country => match text {
                Some(code) if iso::COUNTRIES.contains(&code) => None,
                Some(code) => Some(format!(
                    "`{field}` is `{code}`, not an ISO 3166-1 alpha-2 country code (like `DE` or `US`)"
                )),
                None => Some(format!(
                    "`{field}` needs a two-letter ISO 3166-1 country code"
                )),
            },
            Check::Currency => match text {
                Some(code) if iso::CURRENCIES.contains(&code) => None,
                Some(code) => Some(format!(
                    "`{field}` is `{code}`, not an ISO 4217 currency code (like `EUR` or `USD`)"
                )),
                None => Some(format!("`{field}` needs an ISO 4217 currency code")),
            },
            Check::NonZero => {
                let number = match value {
                    Some(Value::Number(n)) => n.as_f64(),
                    Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                match number {
                    Some(n) if n != 0.0 && n.is_finite() => None,
                    Some(_) => Some(format!("`{field}` is zero")),
                    None => Some(format!("`{field}` needs a number other than zero")),
                }
            }
            Check::Enum => match value {
                Some(v) if self.rule.values.contains(v) => None,
                other => Some(format!(
                    "`{field}` is {}, not one of {}",
                    other.map_or_else(|| "empty".to_owned(), |v| format!("`{v}`")),
                    self.rule
                        .values
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
            Check::Pattern => match (text, &self.regex) {
                (Some(t), Some(re)) if re.is_match(t) => None,
                _ => Some(format!(
                    "`{field}` does not match `{}`",
                    self.rule.pattern.as_deref().unwrap_or("")
                )),
            },
        }
    }
}

pub struct Validate;

impl Transform for Validate {
    type Config = ValidateConfig;

    fn describe() -> TransformInfo {
        TransformInfo::new("validate", env!("CARGO_PKG_VERSION"))
            .description("Rejects records that break rules: required, ISO country, ISO currency, non-zero number, enum, pattern.")
            .config_schema(json!({
                "type": "object",
                "required": ["rules"],
                "additionalProperties": false,
                "properties": {"rules": {"type": "array", "items": {
                    "type": "object",
                    "required": ["field", "check"],
                    "additionalProperties": false,
                    "properties": {
                        "field": {"type": "string"},
                        "check": {"enum": ["required", "country", "currency", "non-zero", "enum", "pattern"]},
                        "values": {"type": "array"},
                        "pattern": {"type": "string"}
                    }
                }}}
            }))
    }

    fn output_schema(
        config: &ValidateConfig,
        input: &Value,
        _lookup: Option<&Value>,
    ) -> Result<Value> {
        compile(config)?;
        if let Some(p) = input.get("properties").and_then(Value::as_object) {
            for rule in &config.rules {
                let top = rule.field.split('.').next().unwrap_or("");
                if !p.contains_key(top) {
                    let has: Vec<&str> = p.keys().map(String::as_str).collect();
                    return Err(Error::config(format!(
                        "a rule checks `{}`, which the input does not have; it has: {}",
                        rule.field,
                        has.join(", ")
                    )));
                }
            }
        }
        Ok(input.clone())
    }

    fn process(
        config: &ValidateConfig,
        records: Vec<Record>,
        _lookup: Option<Vec<Record>>,
    ) -> Result<Output> {
        let rules = compile(config)?;
        let mut output = Output::default();
        for (i, record) in records.into_iter().enumerate() {
            let broken: Vec<(String, &str)> = rules
                .iter()
                .filter_map(|r| r.broken(&record).map(|why| (why, r.rule.field.as_str())))
                .collect();
            match broken.first() {
                None => output.records.push(record),
                Some((_, field)) => {
                    let reasons: Vec<&str> = broken.iter().map(|(why, _)| why.as_str()).collect();
                    output.reject(i, reasons.join("; "), Some(field));
                }
            }
        }
        Ok(output)
    }
}

#[cfg(target_arch = "wasm32")]
weft_sdk::export_transform!(Validate);
