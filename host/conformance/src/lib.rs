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
mod upstream;

pub use report::{Check, Outcome, Report};

/// What is wrong with what every plugin says of itself: its name and description set, its
/// version a semantic version, its config schema an object schema. Empty when nothing is.
fn identity_problems(
    name: &str,
    version: &str,
    description: &str,
    config_schema: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    if name.is_empty() || description.is_empty() {
        problems.push("the name and the description must not be empty".to_owned());
    }
    if semver::Version::parse(version).is_err() {
        problems.push(format!(
            "version `{version}` is not a semantic version such as 1.2.0"
        ));
    }
    match serde_json::from_str::<serde_json::Value>(config_schema) {
        Ok(s) if s.get("type").and_then(serde_json::Value::as_str) == Some("object") => {}
        Ok(_) => problems.push("the config schema does not describe an object".to_owned()),
        Err(e) => problems.push(format!("the config schema is not JSON: {e}")),
    }
    problems
}
