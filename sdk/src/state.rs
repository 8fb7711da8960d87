//! A small key/value store the host keeps for the plugin, scoped to its connection and flow:
//! webhook subscription ids, vendor watermarks. By default keys up to 256 bytes, values up to
//! 64 KiB and 1,000 keys per scope; the host says which limit a refusal is about
//! ([`StateError`]).
//!
//! Each call runs in a fresh instance, so nothing in memory outlives it; keep here what must.
//! Read positions belong in the cursor instead: the host commits that in step with writes.
//!
//! When the host itself fails (its state database), the call is stopped rather than answered:
//! a plugin never sees, and never has to handle, the host's own faults.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::connector::weft::plugin::state as wit;
use crate::{Error, Result};

/// Why the host refused a state call: something the plugin asked for, which it can change.
///
/// `?` turns it into [`Error::Internal`] (a plugin that outgrows its state has a bug, which
/// retrying will not fix); match on it to act instead, e.g. delete old keys on
/// [`StateError::TooManyKeys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The key is empty.
    KeyEmpty,
    /// The key is longer than `limit` bytes of UTF-8.
    KeyTooLong {
        /// The host's limit, in bytes.
        limit: u64,
    },
    /// The value is larger than `limit` bytes.
    ValueTooLarge {
        /// The host's limit, in bytes.
        limit: u64,
    },
    /// The key is new and the scope already holds `limit` keys, the most it may.
    TooManyKeys {
        /// The most keys one scope may hold.
        limit: u64,
    },
    /// This call has no state (it runs for no connection, or the host keeps none), with the
    /// host's reason.
    Unavailable(String),
}

impl From<wit::StateError> for StateError {
    fn from(e: wit::StateError) -> Self {
        match e {
            wit::StateError::KeyEmpty => StateError::KeyEmpty,
            wit::StateError::KeyTooLong(limit) => StateError::KeyTooLong { limit },
            wit::StateError::ValueTooLarge(limit) => StateError::ValueTooLarge { limit },
            wit::StateError::TooManyKeys(limit) => StateError::TooManyKeys { limit },
            wit::StateError::Unavailable(reason) => StateError::Unavailable(reason),
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::KeyEmpty => write!(f, "state key is empty"),
            StateError::KeyTooLong { limit } => {
                write!(f, "state key is over the host's limit of {limit} bytes")
            }
            StateError::ValueTooLarge { limit } => write!(
                f,
                "state value is over the host's limit of {limit} bytes; keep data in records, not in state"
            ),
            StateError::TooManyKeys { limit } => write!(
                f,
                "cannot add a state key: the scope already holds the maximum of {limit} keys; delete keys that are no longer needed"
            ),
            StateError::Unavailable(reason) => write!(f, "no state for this call: {reason}"),
        }
    }
}

impl std::error::Error for StateError {}

impl From<StateError> for Error {
    fn from(e: StateError) -> Self {
        Error::Internal(e.to_string())
    }
}

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, StateError> {
    wit::get(key).map_err(StateError::from)
}

/// Stores `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
    wit::set(key, value).map_err(StateError::from)
}

/// Removes the value under `key`; a key that is not there is no error.
pub fn delete(key: &str) -> Result<(), StateError> {
    wit::delete(key).map_err(StateError::from)
}

/// A value stored with [`set_json`].
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
    }
}

/// Stores `value` as JSON under `key`; read it back with [`get_json`].
pub fn set_json<T: Serialize>(key: &str, value: &T) -> Result<()> {
    Ok(set(key, &serde_json::to_vec(value)?)?)
}
