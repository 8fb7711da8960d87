//! Conformance tests: every emulator behaviour a connector depends on, over real HTTP on
//! loopback. One module per vendor; `support` holds the shared harness.

mod dataverse;
mod framework;
mod hubspot;
mod monday;
mod official_clients;
mod partner_center;
mod proxy;
mod salesforce;
mod support;
mod zendesk;
mod zoho;
