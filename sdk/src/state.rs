//! A small key/value store the host keeps for the plugin, scoped to its connection and flow:
//! webhook subscription ids, vendor watermarks. Keys up to 256 bytes, values up to 64 KiB.
//!
//! Each call runs in a fresh instance, so nothing in memory outlives it; keep here what must.
//! Read positions belong in the cursor instead: the host commits that in step with writes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::connector::weft::plugin::state as wit;
use crate::{Error, Result};

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    wit::get(key).map_err(Error::Internal)
}

/// Stores `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &[u8]) -> Result<()> {
    wit::set(key, value).map_err(Error::Internal)
}

/// Removes the value under `key`.
pub fn delete(key: &str) -> Result<()> {
    wit::delete(key).map_err(Error::Internal)
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
    set(key, &serde_json::to_vec(value)?)
}
