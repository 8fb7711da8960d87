//! The component host end to end: real components built from source, real HTTP on loopback.

mod api;
mod cache;
mod confinement;
mod connectors;
mod contract;
mod egress;
mod engine;
mod examples;
mod hostile;
mod plan;
mod plugins;
mod scenarios;
mod serve;
mod transforms;
