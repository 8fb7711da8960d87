use std::path::PathBuf;

use crate::PluginError;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{name} is not a WebAssembly component: {reason}. Build plugins with `cargo build --release --target wasm32-wasip2`"
    )]
    NotAComponent { name: String, reason: String },
    #[error(
        "{name} was built against weft:plugin@{found}, but this host implements weft:plugin@{supported}; \
         rebuild the plugin with a weft-sdk for contract {supported}"
    )]
    IncompatibleContract {
        name: String,
        found: String,
        supported: String,
    },
    #[error(
        "{name} exports neither weft:plugin/connector-api nor weft:plugin/transform-api, so it is not a weft plugin (it exports: {exports})"
    )]
    NotAPlugin { name: String, exports: String },
    #[error("{name} imports {import}, which weft does not provide to plugins")]
    UnknownImport { name: String, import: String },
    #[error("{name}: {reason}")]
    Instantiate { name: String, reason: String },
    #[error("{name}: describe failed: {reason}")]
    Describe { name: String, reason: String },
    #[error("component cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// Why a call into a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin answered with an error value: the ordinary way for a call to fail.
    #[error("{plugin}: {}", error.message())]
    Plugin { plugin: String, error: PluginError },
    #[error(
        "{plugin} used more than its CPU time limit of {limit_ms} ms in one call and was stopped"
    )]
    CpuLimit { plugin: String, limit_ms: u128 },
    #[error("{plugin} took longer than the call limit of {limit_ms} ms and was stopped")]
    WallLimit { plugin: String, limit_ms: u128 },
    #[error(
        "{plugin} tried to grow its memory past the limit of {limit_bytes} bytes and was stopped"
    )]
    MemoryLimit { plugin: String, limit_bytes: usize },
    #[error(
        "{plugin} returned {size} bytes, more than the limit of {limit} bytes; use smaller pages or batches"
    )]
    OutputTooLarge {
        plugin: String,
        size: usize,
        limit: usize,
    },
    #[error("{plugin} returned malformed data: {reason}")]
    Malformed { plugin: String, reason: String },
    /// The host failed while serving one of the plugin's imports (its state database failed or
    /// did not answer, say) and stopped the call: the fault is the host's, not the plugin's,
    /// and `message` says what failed.
    #[error("{plugin} was stopped: {message}")]
    HostFault { plugin: String, message: String },
    /// The guest trapped: a panic, an out-of-bounds access, an `unreachable`.
    #[error("{plugin} crashed: {message}")]
    Trap { plugin: String, message: String },
    #[error(
        "{plugin} could not start: every instance slot is in use ({reason}); raise `Limits::instances` or run fewer calls at once"
    )]
    Capacity { plugin: String, reason: String },
}

impl CallError {
    /// The plugin's error value, if the call failed that way.
    pub fn plugin_error(&self) -> Option<&PluginError> {
        match self {
            CallError::Plugin { error, .. } => Some(error),
            _ => None,
        }
    }
}
