//! Cursors: the state a connector needs to resume reading, as an opaque string the host
//! stores between pages and runs.
//!
//! A connector keeps a typed state (a page token, an offset, the newest modification time) and
//! lets these helpers turn it into the cursor and back:
//!
//! ```ignore
//! #[derive(Serialize, Deserialize)]
//! struct Resume { page_token: String }
//!
//! let resume: Option<Resume> = req.cursor_state()?;
//! // ... fetch the page ...
//! Ok(Page::more(records, &Resume { page_token }))
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The cursor text for `state`.
pub fn encode<T: Serialize>(state: &T) -> String {
    serde_json::to_string(state).unwrap_or_default()
}

/// The state stored in `cursor`, or a config error when the cursor was not written by this
/// connector (e.g. a flow's stored cursor after the connector changed its format).
pub fn decode<T: DeserializeOwned>(cursor: Option<&str>) -> Result<Option<T>> {
    match cursor {
        None | Some("") => Ok(None),
        Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
            Error::config(format!(
                "the stored cursor `{text}` is not one this connector understands ({e}); \
                 reset the flow's cursor to read from the beginning"
            ))
        }),
    }
}
