//! The connector conformance suite (`weft_tests::conformance`) for every first-party
//! connector, against its vendor's emulator; one module per vendor.

mod dynamics365;
mod hubspot;
mod monday;
mod partner_center;
mod salesforce;
mod zendesk;
mod zoho;
