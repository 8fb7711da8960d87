//! The conformance kit: the checks a weft plugin should pass, runnable by any plugin author
//! through `weft plugin test`.
//!
//! A connector is checked against an upstream, either one of the sandbox's vendor emulators
//! or any URL the author points at, with a connection configured as a flow would configure it
//! ([`connector::Target`]). A transform is checked over sample records and a step config
//! ([`transform::Sample`]). Each check ends in an [`Outcome`]; a [`Report`] holds them in order
//! and renders them for people.
//!
//! The first-party connectors run a deeper suite against their own emulators
//! (`tests/src/conformance.rs`: changes made upstream, partial writes, genuine webhook
//! deliveries), which needs knowledge of each vendor; the checks here need only the plugin
//! and an upstream.

pub mod connector;
mod report;
mod schema;
pub mod transform;

pub use report::{Check, Outcome, Report};
