//! The weft component host.
//!
//! Plugins are WebAssembly components implementing the `weft:plugin` WIT contract. This crate
//! compiles them (once: compiled code is cached on disk), checks the contract version they were
//! built against, and calls them under limits: a fresh instance per call from a pre-linked
//! [`InstancePre`](wasmtime::component::InstancePre) in the pooling allocator, a memory cap, a
//! CPU budget enforced by epoch interruption and a wall-clock deadline. A plugin that traps,
//! loops or balloons fails that call with a [`CallError`]; the host carries on.
//!
//! Plugins reach the world only through the capabilities in [`weft_capabilities`], which the
//! [`CallContext`] of each call provides: a plugin sees no environment, files or sockets.

pub mod bindings;
mod cache;
mod connection;
mod contract;
mod engine;
mod error;
mod host;
mod limits;
mod plugin;
mod shelf;

pub use bindings::PluginError;
pub use cache::CacheOutcome;
pub use connection::{Expansion, SpecError, TemplateError, auth_kind_name, expand_template};
pub use contract::{CONTRACT_VERSION, PluginKind, compatible};
pub use error::{CallError, LoadError};
pub use host::CallContext;
pub use limits::Limits;
pub use plugin::*;
pub use shelf::SharedPlugin;
