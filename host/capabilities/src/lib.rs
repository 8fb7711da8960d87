//! What a weft plugin's host imports do, as plain async Rust.
//!
//! The runtime (the wasmtime glue) calls into this crate; nothing here knows about WebAssembly.
//! One module per capability:
//!
//! - [`egress`]: which hosts a connection may reach ([`EgressPolicy`], [`is_global`]) and the DNS
//!   resolver that enforces it;
//! - [`http`]: a guest's request sent on behalf of a [`Connection`], with its limits and the
//!   guest-visible [`HttpError`];
//! - [`auth`]: credential kinds ([`AuthSpec`]), where the credential goes
//!   ([`CredentialPlacement`]), token exchange and caching;
//! - [`secrets`]: `secret:` / `env:` references, encryption at rest, [`redact`];
//! - [`hmac`]: webhook MACs computed with a secret the plugin never sees;
//! - [`log`]: plugin log calls into `tracing`;
//! - [`connection`]: [`Connection`] and the per-flow [`Connections`] registry.

#![warn(missing_docs)]

pub mod auth;
pub mod connection;
pub mod egress;
pub mod hmac;
pub mod http;
pub mod log;
pub mod secrets;

pub use auth::{AuthSpec, CredentialPlacement};
pub use connection::{Connection, ConnectionError, ConnectionSpec, Connections};
pub use egress::{EgressDenied, EgressError, EgressPolicy, EgressResolver, HostRule, is_global};
pub use hmac::HmacAlgorithm;
pub use http::{HttpError, HttpLimits, Request, Response};
pub use log::{LogContext, LogLevel, PluginLogger};
pub use secrets::{MasterKey, Secret, SecretError, SecretRef, Secrets, redact};
