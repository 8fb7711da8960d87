//! Records as they cross the host: JSON text, one allocation each, never a parsed tree unless
//! the host must look inside (a dataset key, a `${record.FIELD}`, a field added to a branch).
//!
//! A page from a connector is split into its records (a scan that checks the JSON and copies
//! each record's text), a batch for a plugin is those texts joined; nothing is re-encoded on
//! the way.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// One record: its JSON text, checked to be one JSON value.
pub type Record = Box<RawValue>;

/// The records of a JSON array's text; an error when the text is not a JSON array.
pub fn split(array: &str) -> Result<Vec<Record>, serde_json::Error> {
    serde_json::from_str(array)
}

/// The JSON array of `records`, as text.
pub fn join(records: &[Record]) -> String {
    join_texts(records.iter().map(|r| r.get()))
}

/// The JSON array of these JSON values' texts.
pub fn join_texts<'t>(texts: impl ExactSizeIterator<Item = &'t str> + Clone) -> String {
    let mut out = String::with_capacity(2 + texts.clone().map(|t| t.len() + 1).sum::<usize>());
    out.push('[');
    for (i, text) in texts.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(text);
    }
    out.push(']');
    out
}

/// A parsed value as a record.
pub fn from_value(value: &Value) -> Record {
    RawValue::from_string(value.to_string()).expect("a serialized value is one JSON value")
}

/// `record` with `field` set to `value`, when it is an object (other values have no fields).
pub fn with_field(record: &Record, field: &str, value: &Value) -> Option<Record> {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(record.get()) else {
        return None;
    };
    object.insert(field.to_owned(), value.clone());
    Some(from_value(&Value::Object(object)))
}

/// A dataset record's key: its key fields' values, as a JSON array; `Err` names the first key
/// field that is missing or null.
pub fn dataset_key(record: &Value, fields: &[String]) -> Result<String, String> {
    let mut values = Vec::with_capacity(fields.len());
    for field in fields {
        match record.get(field).filter(|v| !v.is_null()) {
            Some(v) => values.push(v.clone()),
            None => return Err(field.clone()),
        }
    }
    Ok(Value::Array(values).to_string())
}

/// [`dataset_key`] of a record's text, parsing only the key fields' values: one pass over the
/// text that skips every other member without building it (a record's key is read for each
/// record a dataset write takes).
pub fn raw_dataset_key(record: &RawValue, fields: &[String]) -> Result<String, String> {
    let mut text = serde_json::Deserializer::from_str(record.get());
    let Ok(found) = KeyFields(fields).deserialize(&mut text) else {
        // Not an object: it has no fields, so no key; said as the parsed record would say it.
        let whole: Value = serde_json::from_str(record.get()).unwrap_or(Value::Null);
        return dataset_key(&whole, fields);
    };
    let mut values = Vec::with_capacity(fields.len());
    for (field, value) in fields.iter().zip(found) {
        match value.filter(|v| !v.is_null()) {
            Some(v) => values.push(v),
            None => return Err(field.clone()),
        }
    }
    Ok(Value::Array(values).to_string())
}

/// Reads an object's members, keeping the values of `fields` (the last of a repeated member,
/// as a parser building the object would) and skipping the rest.
struct KeyFields<'f>(&'f [String]);

impl<'de> DeserializeSeed<'de> for KeyFields<'_> {
    type Value = Vec<Option<Value>>;

    fn deserialize<D: Deserializer<'de>>(self, text: D) -> Result<Self::Value, D::Error> {
        text.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyFields<'_> {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut members: M) -> Result<Self::Value, M::Error> {
        let mut values = vec![None; self.0.len()];
        while let Some(first) = members.next_key_seed(FieldName(self.0))? {
            let Some(first) = first else {
                members.next_value::<IgnoredAny>()?;
                continue;
            };
            let value: Value = members.next_value()?;
            // A field named twice in the key takes the value twice.
            for (i, field) in self.0.iter().enumerate().skip(first) {
                if *field == self.0[first] {
                    values[i] = Some(value.clone());
                }
            }
        }
        Ok(values)
    }
}

/// A member's name: the position of the first key field so named, if any. Names with escapes
/// are compared unescaped.
struct FieldName<'f>(&'f [String]);

impl<'de> DeserializeSeed<'de> for FieldName<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, text: D) -> Result<Self::Value, D::Error> {
        text.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldName<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|f| f == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_then_join_gives_the_records_back() {
        let records = split(r#"[ {"a": 1}, [2, 3] , "x", null ]"#).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(join(&records), r#"[{"a": 1},[2, 3],"x",null]"#);
        assert_eq!(join(&[]), "[]");
    }

    #[test]
    fn split_refuses_what_is_not_an_array() {
        assert!(split(r#"{"a": 1}"#).is_err());
        assert!(split(r#"[{"a": 1}"#).is_err());
    }

    #[test]
    fn a_raw_key_is_the_parsed_key() {
        let fields = vec!["id".to_owned(), "region".to_owned()];
        for record in [
            json!({"id": 7, "region": "eu", "x": {"deep": [1, 2]}}),
            json!({"id": "a\"b", "region": 1.5}),
            json!({"id": 1, "region": null}),
            json!({"id": 1}),
            json!({"i\u{0}d": 1, "id": [1, {"b": 2}], "region": "é"}),
        ] {
            let raw = from_value(&record);
            assert_eq!(
                raw_dataset_key(&raw, &fields),
                dataset_key(&record, &fields),
                "{record}"
            );
        }
        let escaped = RawValue::from_string(r#"{"\u0069d": 3, "region": "x"}"#.into()).unwrap();
        assert_eq!(raw_dataset_key(&escaped, &fields).unwrap(), r#"[3,"x"]"#);
        // A member given twice: the last, as a parser building the object keeps.
        let twice = RawValue::from_string(r#"{"id": 1, "region": "x", "id": 2}"#.into()).unwrap();
        assert_eq!(raw_dataset_key(&twice, &fields).unwrap(), r#"[2,"x"]"#);
        // A field named twice in the key.
        let doubled = vec!["id".to_owned(), "id".to_owned()];
        let record = from_value(&json!({"id": 4}));
        assert_eq!(raw_dataset_key(&record, &doubled).unwrap(), "[4,4]");
        // Not an object: no key field, named as the parsed record would name it.
        for text in ["[1, 2]", "\"id\"", "null"] {
            let raw = RawValue::from_string(text.into()).unwrap();
            assert_eq!(
                raw_dataset_key(&raw, &fields),
                Err("id".to_owned()),
                "{text}"
            );
        }
    }

    #[test]
    fn a_field_is_added_to_objects_only() {
        let record = from_value(&json!({"a": 1}));
        let with = with_field(&record, "_written", &json!({"id": "9"})).unwrap();
        let parsed: Value = serde_json::from_str(with.get()).unwrap();
        assert_eq!(parsed, json!({"a": 1, "_written": {"id": "9"}}));
        assert!(with_field(&from_value(&json!([1])), "_written", &json!(1)).is_none());
    }
}
