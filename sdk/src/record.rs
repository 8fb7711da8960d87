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
