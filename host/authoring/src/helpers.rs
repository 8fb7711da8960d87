//! The helper layers written into JavaScript and Python projects: what `weft-sdk` is to Rust
//! plugins (HTTP with errors mapped to the contract's, cursors, logging, the export glue).

/// `weft.js`, an ES module over componentize-js's bindings.
pub const JS: &str = include_str!("../../../sdk/js/weft.js");
/// `weft_plugin.py`, over componentize-py's bindings.
pub const PYTHON: &str = include_str!("../../../sdk/python/weft_plugin.py");
