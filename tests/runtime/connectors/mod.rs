//! The connector conformance suite (`weft_tests::conformance`) for every first-party
//! connector, against its vendor's emulator; one module per vendor.

mod hubspot;
mod salesforce;
mod zendesk;
mod zoho;
mod dynamics365;
mod monday;
mod partner_center;
