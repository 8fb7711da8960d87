//! The `log` capability: a plugin's log call becomes a `tracing` event attributed to the plugin.
//!
//! Plugin text is untrusted: messages and fields are length-capped and control characters
//! escaped (no forged log lines), fields named like credentials or bodies are dropped, and known
//! secret values are redacted, so a careless plugin cannot put a token or a payload in the logs.

use std::fmt::Write as _;

use crate::secrets::{REDACTED, Secret, redact};

/// The `tracing` target of every plugin event, so operators can filter them
/// (`RUST_LOG=weft::plugin=debug`).
pub const TARGET: &str = "weft::plugin";

/// Longest message kept, in bytes; the rest is cut with a marker.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// Longest field value kept, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// Most fields kept per event.
pub const MAX_FIELDS: usize = 32;

/// A plugin's log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// A failure.
    Error,
}

/// Who logged: the plugin, and where it ran when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogContext {
    /// The plugin's name.
    pub plugin: String,
    /// The tenant.
    pub tenant: Option<String>,
    /// The flow.
    pub flow: Option<String>,
    /// The run's id.
    pub run: Option<String>,
    /// The step's id.
    pub step: Option<String>,
}

impl LogContext {
    /// A context naming only the plugin.
    pub fn plugin(plugin: impl Into<String>) -> Self {
        Self {
            plugin: plugin.into(),
            ..Self::default()
        }
    }
}

/// Turns one plugin's log calls into `tracing` events.
#[derive(Debug, Clone, Default)]
pub struct PluginLogger {
    context: LogContext,
    secrets: Vec<Secret>,
}

impl PluginLogger {
    /// A logger attributing events to `context`.
    pub fn new(context: LogContext) -> Self {
        Self {
            context,
            secrets: Vec::new(),
        }
    }

    /// Also redacts these values (e.g. [`Connection::known_secrets`](crate::Connection::known_secrets)
    /// of the plugin's connections).
    pub fn with_secrets(mut self, secrets: Vec<Secret>) -> Self {
        self.secrets = secrets;
        self
    }

    /// The context events are attributed to.
    pub fn context(&self) -> &LogContext {
        &self.context
    }

    /// Emits one event.
    pub fn log(&self, level: LogLevel, message: &str, fields: &[(String, String)]) {
        let message = self.clean(message, MAX_MESSAGE_BYTES);
        let fields = self.render_fields(fields);
        let c = &self.context;
        let (tenant, flow, run, step) = (
            c.tenant.as_deref(),
            c.flow.as_deref(),
            c.run.as_deref(),
            c.step.as_deref(),
        );
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: TARGET,
                    $level,
                    plugin = %c.plugin,
                    tenant,
                    flow,
                    run,
                    step,
                    fields = %fields,
                    "{message}"
                )
            };
        }
        match level {
            LogLevel::Trace => emit!(tracing::Level::TRACE),
            LogLevel::Debug => emit!(tracing::Level::DEBUG),
            LogLevel::Info => emit!(tracing::Level::INFO),
            LogLevel::Warn => emit!(tracing::Level::WARN),
            LogLevel::Error => emit!(tracing::Level::ERROR),
        }
    }

    fn render_fields(&self, fields: &[(String, String)]) -> String {
        let mut out = String::new();
        for (key, value) in fields.iter().take(MAX_FIELDS) {
            let key = self.clean(key, 64);
            let value = if is_sensitive_field(&key) {
                REDACTED.to_owned()
            } else if is_body_field(&key) {
                "<omitted>".to_owned()
            } else {
                self.clean(value, MAX_FIELD_BYTES)
            };
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{key}={value:?}");
        }
        if fields.len() > MAX_FIELDS {
            let _ = write!(out, " (+{} fields dropped)", fields.len() - MAX_FIELDS);
        }
        out
    }

    fn clean(&self, text: &str, max: usize) -> String {
        let redacted = redact(text, &self.secrets);
        let mut out = String::with_capacity(redacted.len().min(max + 16));
        for ch in redacted.chars() {
            if out.len() >= max {
                out.push_str("...(truncated)");
                break;
            }
            if ch.is_control() {
                out.extend(ch.escape_default());
            } else {
                out.push(ch);
            }
        }
        out
    }
}

/// Field names whose values are credentials.
fn is_sensitive_field(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "authorization",
        "cookie",
        "api_key",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Field names whose values are payloads, which do not belong in logs.
fn is_body_field(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "body" || k.ends_with("_body") || k == "payload" || k == "records"
}
