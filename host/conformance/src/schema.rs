//! The little JSON Schema the checks need: a record's top-level members against the types an
//! object schema declares, and an object schema inferred from sample records.

use serde_json::{Map, Value, json};

/// The JSON Schema type names `value` satisfies (`integer` values are `number`s too).
fn type_names(value: &Value) -> &'static [&'static str] {
    match value {
        Value::Null => &["null"],
        Value::Bool(_) => &["boolean"],
        Value::Number(n) if n.is_i64() || n.is_u64() => &["integer", "number"],
        Value::Number(_) => &["number"],
        Value::String(_) => &["string"],
        Value::Array(_) => &["array"],
        Value::Object(_) => &["object"],
    }
}

/// The properties an object schema declares, or why it is not one.
pub fn properties(schema: &Value) -> Result<&Map<String, Value>, String> {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(format!(
            "the schema does not describe an object (its \"type\" is {})",
            schema.get("type").unwrap_or(&Value::Null)
        ));
    }
    schema
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| "the schema lists no \"properties\"".to_owned())
}

/// Whether `record` fits the object schema: an object, every `required` member there, every
/// declared member of a declared type. Members the schema does not declare are allowed, and a
/// member the schema does not require may be `null` (vendors send absent values as null far
/// more often than their schemas say so).
pub fn check_record(schema: &Value, record: &Value) -> Result<(), String> {
    let Some(members) = record.as_object() else {
        return Err(format!("a record is not an object: {}", excerpt(record)));
    };
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !members.contains_key(name) {
                return Err(format!(
                    "a record lacks `{name}`, which the schema requires: {}",
                    excerpt(record)
                ));
            }
        }
    }
    let Ok(declared) = properties(schema) else {
        return Ok(());
    };
    let required = |name: &str| {
        schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|x| x == name))
    };
    for (name, value) in members {
        if value.is_null() && !required(name) {
            continue;
        }
        let Some(expected) = declared.get(name).and_then(|p| p.get("type")) else {
            continue;
        };
        let allowed: Vec<&str> = match expected {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        if !type_names(value).iter().any(|t| allowed.contains(t)) {
            return Err(format!(
                "`{name}` is {} where the schema declares {expected}: {}",
                type_names(value)[0],
                excerpt(record)
            ));
        }
    }
    Ok(())
}

/// An object schema for `records`: each member seen, with every type it was seen with.
pub fn infer(records: &[Value]) -> Value {
    let mut seen: Map<String, Value> = Map::new();
    for record in records {
        let Some(members) = record.as_object() else {
            continue;
        };
        for (name, value) in members {
            let name_of_type = match type_names(value)[0] {
                "integer" => "number",
                other => other,
            };
            let types = seen
                .entry(name.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(types) = types
                && !types.iter().any(|t| t == name_of_type)
            {
                types.push(json!(name_of_type));
            }
        }
    }
    let properties: Map<String, Value> = seen
        .into_iter()
        .map(|(name, types)| {
            let schema = match types.as_array().map(Vec::as_slice) {
                Some([one]) => json!({ "type": one }),
                _ => json!({ "type": types }),
            };
            (name, schema)
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

/// The start of a value's JSON, for messages.
pub fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(160) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_fits_its_schema_or_the_message_names_the_member() {
        let schema = json!({"type": "object", "required": ["id"], "properties": {
            "id": {"type": "integer"}, "name": {"type": ["string", "null"]}, "score": {"type": "number"}
        }});
        assert_eq!(
            check_record(
                &schema,
                &json!({"id": 1, "name": null, "score": 2, "x": []})
            ),
            Ok(())
        );
        let wrong = check_record(&schema, &json!({"id": "1"})).unwrap_err();
        assert!(
            check_record(&schema, &json!({"id": null})).is_err(),
            "a required member is not null"
        );
        assert_eq!(
            check_record(&schema, &json!({"id": 1, "score": null})),
            Ok(()),
            "an optional one may be"
        );
        assert!(
            wrong.starts_with("`id` is string where the schema declares \"integer\""),
            "{wrong}"
        );
        let missing = check_record(&schema, &json!({"name": "a"})).unwrap_err();
        assert!(missing.contains("lacks `id`"), "{missing}");
        assert!(check_record(&schema, &json!([1])).is_err());
    }

    #[test]
    fn an_inferred_schema_holds_every_type_seen() {
        let schema = infer(&[json!({"a": 1, "b": "x"}), json!({"a": 1.5, "b": null})]);
        assert_eq!(schema["properties"]["a"], json!({"type": "number"}));
        assert_eq!(
            schema["properties"]["b"],
            json!({"type": ["string", "null"]})
        );
        for record in [json!({"a": 1, "b": "x"}), json!({"a": 1.5, "b": null})] {
            assert_eq!(check_record(&schema, &record), Ok(()));
        }
    }
}
