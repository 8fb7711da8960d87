//! Integration tests of weft-capabilities: real HTTP against upstreams on loopback.
//!
//! Loopback is a non-global address, so every happy path here allows 127.0.0.1 explicitly as a
//! private, plain-http host — exactly what a flow using a local emulator does.

mod support;

mod auth;
mod budget;
mod egress;
mod hmac;
mod http;
mod log;
mod secrets;
