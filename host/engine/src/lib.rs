//! Running flows: binding a checked flow file to its plugins ([`plan`]) and, from there,
//! executing it.

pub mod plan;
pub mod registry;

pub use plan::{BoundConnection, Plan, plan};
pub use registry::PluginDirectory;
