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
        return Err(format!("`{text}` is not a valid {kind}: use lowercase letters (try `{}`)", text.to_ascii_lowercase()));
    }
    if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("`{text}` is not a valid {kind}: it must start with a letter"));
    }
    if let Some(bad) = text.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(format!("`{text}` is not a valid {kind}: `{bad}` is not allowed; use lowercase letters, digits and '-'"));
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
        return Err(format!("`{text}` is not a valid {kind}: it must start with a lowercase letter"));
    }
    if let Some(bad) = text.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        return Err(format!("`{text}` is not a valid {kind}: `{bad}` is not allowed; use lowercase letters, digits and '_'"));
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
        let bad = || format!("`{text}` is not an interval: write a number and a unit, e.g. `30s`, `15m`, `4h` or `1d`");
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
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
            return Err(format!("`{text}` is not an interval: it must be longer than zero"));
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
        if let Some(bad) = fields.iter().find(|f| !f.chars().all(|c| c.is_ascii_alphanumeric() || "*/,-".contains(c))) {
            return Err(format!("`{text}` is not a cron expression: `{bad}` is not a cron field"));
        }
        Ok(Cron(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscores_get_their_own_message() {
        let err = StepId::try_from("save_cases".to_owned()).unwrap_err();
        assert_eq!(err, "`save_cases` is not a valid step id: words are separated with '-', not '_' (try `save-cases`)");
    }

    #[test]
    fn intervals_read_units() {
        assert_eq!(Interval::try_from("4h".to_owned()).unwrap().0, Duration::from_secs(14_400));
        assert!(Interval::try_from("4 hours".to_owned()).is_err());
        assert!(Interval::try_from("0m".to_owned()).is_err());
    }
}
