//! Validated names and values: a mistake is reported where it is written, with the fix.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Checks a kebab-case identifier; says what to write instead when it is not one.
fn kebab(kind: &str, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("a {kind} cannot be empty"));
    }
    if text.contains('_') {
        return Err(format!(
            "`{text}` is not a valid {kind}: words are separated with '-', not '_' (try `{}`)",
            text.replace('_', "-")
        ));
    }
    if text.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "`{text}` is not a valid {kind}: use lowercase letters (try `{}`)",
            text.to_ascii_lowercase()
        ));
    }
    if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "`{text}` is not a valid {kind}: it must start with a letter"
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{text}` is not a valid {kind}: `{bad}` is not allowed; use lowercase letters, digits and '-'"
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:ident, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                $check($kind, &text)?;
                Ok($name(text))
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "pattern": $pattern, "description": concat!("A ", $kind, ".")})
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A flow's name, unique per tenant; job chains refer to flows by it.
    FlowName, "flow name", kebab, "^[a-z][a-z0-9-]*$"
);
name_type!(
    /// A step's id, unique in its flow; other steps name it as their input.
    StepId, "step id", kebab, "^[a-z][a-z0-9-]*$"
);
name_type!(
    /// A connection's name in its flow.
    ConnectionName, "connection name", kebab, "^[a-z][a-z0-9-]*$"
);

fn variable(kind: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || !text.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "`{text}` is not a valid {kind}: it must start with a lowercase letter"
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "`{text}` is not a valid {kind}: `{bad}` is not allowed; use lowercase letters, digits and '_'"
        ));
    }
    Ok(())
}

name_type!(
    /// A variable's name, referred to as `${var.NAME}` in strings.
    VarName, "variable name", variable, "^[a-z][a-z0-9_]*$"
);

/// A length of time written as a number and a unit: `30s`, `15m`, `4h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Interval(pub Duration);

impl TryFrom<String> for Interval {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{text}` is not an interval: write a number and a unit, e.g. `30s`, `15m`, `4h` or `1d`"
            )
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(bad)?;
        let (number, unit) = trimmed.split_at(split);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        if number == 0 {
            return Err(format!(
                "`{text}` is not an interval: it must be longer than zero"
            ));
        }
        Ok(Interval(Duration::from_secs(number * seconds)))
    }
}

impl schemars::JsonSchema for Interval {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Interval".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-9]+[smhd]$", "description": "A number and a unit: 30s, 15m, 4h, 1d."})
    }
}

impl schemars::JsonSchema for Cron {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cron".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "Five cron fields: minute hour day-of-month month day-of-week."})
    }
}

/// A five-field cron expression (`minute hour day-of-month month day-of-week`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cron(pub String);

impl TryFrom<String> for Cron {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "`{text}` is not a cron expression: it needs 5 fields (minute hour day-of-month month day-of-week), it has {}",
                fields.len()
            ));
        }
        if let Some(bad) = fields.iter().find(|f| {
            !f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "*/,-".contains(c))
        }) {
            return Err(format!(
                "`{text}` is not a cron expression: `{bad}` is not a cron field"
            ));
        }
        Ok(Cron(text))
    }
}

/// Each field's name and range, in order.
const CRON_FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    (
        "month",
        1,
        12,
        &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    ),
    (
        "day of week",
        0,
        7,
        &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    ),
];

/// A field of a cron expression out of its range: where it is in the text and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFieldError {
    /// Byte offset of the field in the expression.
    pub at: usize,
    /// The field's length in bytes.
    pub len: usize,
    pub message: String,
    pub help: String,
}

impl Cron {
    /// Checks every field against its range (`*`, `*/n`, `a`, `a-b`, `a-b/n`, `a/n`, lists of
    /// those; months and weekdays also by name).
    pub fn check_ranges(&self) -> Result<(), CronFieldError> {
        let mut at = 0;
        for (i, field) in self.0.split_whitespace().enumerate() {
            at += self.0[at..].find(field).unwrap_or(0);
            let (name, min, max, names) = CRON_FIELDS[i];
            let fail = |why: String| CronFieldError {
                at,
                len: field.len(),
                message: format!("cron {name} `{field}` {why}"),
                help: format!(
                    "the {name} field takes {min}-{max}{}",
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(" or {}-{}", names[0], names[names.len() - 1])
                    }
                ),
            };
            let value = |text: &str| -> Result<u32, CronFieldError> {
                if let Some(pos) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
                    return Ok(pos as u32 + min);
                }
                let v: u32 = text
                    .parse()
                    .map_err(|_| fail(format!("has `{text}`, which is not a number")))?;
                if v < min || v > max {
                    return Err(fail(format!(
                        "is out of range: {v} is not within {min}-{max}"
                    )));
                }
                Ok(v)
            };
            for part in field.split(',') {
                let (range, step) = match part.split_once('/') {
                    Some((r, s)) => (r, Some(s)),
                    None => (part, None),
                };
                if let Some(step) = step {
                    match step.parse::<u32>() {
                        Ok(n) if n >= 1 && n <= max => {}
                        _ => {
                            return Err(fail(format!(
                                "has the step `/{step}`, which is not a number within 1-{max}"
                            )));
                        }
                    }
                }
                if range == "*" {
                    continue;
                }
                match range.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (value(a)?, value(b)?);
                        if a > b {
                            return Err(fail(format!(
                                "has the range `{range}`, which runs backwards"
                            )));
                        }
                    }
                    None => {
                        value(range)?;
                    }
                }
            }
            at += field.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_fields_are_range_checked() {
        let cron = |t: &str| Cron::try_from(t.to_owned()).unwrap().check_ranges();
        assert!(cron("*/5 9-17 * JAN-MAR mon-fri").is_ok());
        assert!(cron("0 0 1,15 */2 0,7").is_ok());
        let err = cron("*/5 25 * * *").unwrap_err();
        assert_eq!((err.at, err.len), (4, 2));
        assert_eq!(
            err.message,
            "cron hour `25` is out of range: 25 is not within 0-23"
        );
        assert_eq!(
            cron("61 * * * *").unwrap_err().message,
            "cron minute `61` is out of range: 61 is not within 0-59"
        );
        assert_eq!(cron("0 9 * * 8").unwrap_err().at, 8);
        assert!(
            cron("0 9 * * 5-1")
                .unwrap_err()
                .message
                .contains("runs backwards")
        );
        assert!(cron("*/0 * * * *").unwrap_err().message.contains("step"));
        assert!(cron("0 0 0 * *").is_err(), "day of month starts at 1");
    }

    #[test]
    fn underscores_get_their_own_message() {
        let err = StepId::try_from("save_cases".to_owned()).unwrap_err();
        assert_eq!(
            err,
            "`save_cases` is not a valid step id: words are separated with '-', not '_' (try `save-cases`)"
        );
    }

    #[test]
    fn intervals_read_units() {
        assert_eq!(
            Interval::try_from("4h".to_owned()).unwrap().0,
            Duration::from_secs(14_400)
        );
        assert!(Interval::try_from("4 hours".to_owned()).is_err());
        assert!(Interval::try_from("0m".to_owned()).is_err());
    }
}
