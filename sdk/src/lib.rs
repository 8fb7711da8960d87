//! # weft-sdk
//!
//! Everything a plugin author needs to write a weft plugin in Rust: the bindings to the
//! `weft:plugin` WIT contract and an ergonomic layer over them.
//!
//! A plugin is either a **connector** (one API: streams read page by page and written in
//! batches, webhooks verified) or a **transform** (batches of records in, records out).
//! Implement [`Connector`] or [`Transform`] and export it with its macro:
//!
//! ```ignore
//! use weft_sdk::{Record, Transform, TransformInfo, Output, Result};
//!
//! struct Upper;
//!
//! impl Transform for Upper {
//!     type Config = serde_json::Value;
//!     fn describe() -> TransformInfo { TransformInfo::new("upper", env!("CARGO_PKG_VERSION")) }
//!     fn process(_: &Self::Config, records: Vec<Record>, _: Option<Vec<Record>>) -> Result<Output> {
//!         Ok(Output::records(records))
//!     }
//! }
//!
//! weft_sdk::export_transform!(Upper);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the `.wasm` produced is already a
//! component, ready for `weft plugin inspect`.
//!
//! Plugins never see credentials. A connector names the connection a request belongs to and
//! the host attaches the credential, enforces the connection's egress policy and returns
//! refusals as [`Error::Denied`] values.

#![warn(missing_docs)]

pub mod arena;
pub mod base64;
mod connector;
pub mod cursor;
mod error;
pub mod http;
pub mod log;
mod record;
pub mod state;
pub mod time;
mod transform;

pub use connector::*;
pub use error::{Error, Result};
pub use record::{Record, RecordsJson, decode_batch, encode_batch};
pub use serde_json::{self, Value, json};
pub use transform::*;

/// The raw bindings generated from the WIT contract. Plugins normally need none of it.
///
/// Both worlds are generated here; each keeps its exports out of this crate's custom section
/// and puts them in its export macro, so a plugin's component claims only the world it exports.
#[doc(hidden)]
pub mod bindings {
    pub mod connector {
        wit_bindgen::generate!({
            path: "wit",
            world: "weft:plugin/connector",
            default_bindings_module: "weft_sdk::bindings::connector",
            pub_export_macro: true,
            export_macro_name: "export_world",
        });
    }

    pub mod transform {
        wit_bindgen::generate!({
            path: "wit",
            world: "weft:plugin/transform",
            default_bindings_module: "weft_sdk::bindings::transform",
            pub_export_macro: true,
            export_macro_name: "export_world",
        });
    }
}
