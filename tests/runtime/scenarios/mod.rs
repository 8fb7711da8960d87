//! The scenarios of SCENARIOS.md end to end: the example flows under `examples/` run against
//! the sandbox, with the target's final state checked through the vendor's own API.

mod partner_center_salesforce;
