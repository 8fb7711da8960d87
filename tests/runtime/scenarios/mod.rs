//! The scenarios of SCENARIOS.md: the example flows under `examples/` run end to end against a
//! sandbox, and the final state of their targets checked upstream.

mod conversation_sync;
mod salesforce_hubspot;
