use crate::{Error, Result};

/// One record: a JSON object. Records nest (lookups, addresses, associations), so they are
/// JSON values rather than flat rows.
pub type Record = serde_json::Map<String, serde_json::Value>;

/// Parses a batch as it crosses the contract: a JSON array of objects.
pub fn decode_batch(json: &str) -> Result<Vec<Record>> {
    serde_json::from_str(json).map_err(|e| {
        Error::internal(format!(
            "the host sent a batch that is not a JSON array of objects: {e}"
        ))
    })
}

/// Serialises a batch for the contract.
pub fn encode_batch(records: &[Record]) -> String {
    // Serialising maps of JSON values cannot fail.
    serde_json::to_string(records).unwrap_or_else(|_| "[]".to_owned())
}

/// A page's records written as JSON text while they are built, for connectors that can write a
/// record without making a [`Record`] of it first (values copied as the upstream sent them):
/// a large page then costs one pass over the text instead of a tree of maps per record.
#[derive(Debug, Clone)]
pub struct RecordsJson {
    text: String,
    count: usize,
}

impl Default for RecordsJson {
    fn default() -> Self {
        RecordsJson {
            text: String::from("["),
            count: 0,
        }
    }
}

impl RecordsJson {
    /// No records yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one record of `members`: each a name and the JSON text of its value (e.g. a
    /// `serde_json::value::RawValue`'s text), written in the order given. The names must be
    /// distinct and the texts valid JSON: the host refuses a page that is not.
    pub fn push<'a>(&mut self, members: impl IntoIterator<Item = (&'a str, &'a str)>) {
        if self.count > 0 {
            self.text.push(',');
        }
        self.text.push('{');
        for (i, (name, value)) in members.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            push_name(&mut self.text, name);
            self.text.push(':');
            self.text.push_str(value);
        }
        self.text.push('}');
        self.count += 1;
    }

    /// How many records were pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records so far as the JSON text of an array.
    pub fn to_json(&self) -> String {
        format!("{}]", self.text)
    }

    pub(crate) fn finish(mut self) -> String {
        self.text.push(']');
        self.text
    }
}

/// Writes `name` as a JSON string: as it is when nothing in it needs escaping (the usual
/// field name), else through serde_json.
fn push_name(text: &mut String, name: &str) {
    if name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        text.push('"');
        text.push_str(name);
        text.push('"');
    } else {
        // A name serialises as a JSON string; that cannot fail.
        text.push_str(&serde_json::to_string(name).unwrap_or_default());
    }
}
