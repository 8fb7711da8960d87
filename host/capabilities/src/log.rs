//! The `log` capability: a plugin's log call becomes a `tracing` event attributed to the plugin.
//!
//! Plugin text is untrusted: messages and fields are length-capped and control characters
//! escaped (no forged log lines), fields named like credentials or bodies are dropped, and known
//! secret values are redacted, so a careless plugin cannot put a token or a payload in the logs.
//! Each call has a budget of lines and bytes ([`LogBudget`]); past it, lines are dropped and
//! counted, and one line says how many when the call ends.

use std::fmt::Write as _;

use crate::secrets::{REDACTED, Secret};
use crate::untrusted::{Redactor, printable};

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

/// How much one plugin call may log. A plugin that logs in a loop would otherwise fill the
/// operator's disk (or terminal) at the speed of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBudget {
    /// Lines kept per call.
    pub lines: u32,
    /// Bytes kept per call, counting each line's message and fields as the plugin sent them.
    pub bytes: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        Self {
            lines: 1_000,
            bytes: 256 * 1024,
        }
    }
}

/// Turns one plugin call's log calls into `tracing` events. One per call: the budget is spent
/// by that call alone.
#[derive(Debug, Clone, Default)]
pub struct PluginLogger {
    context: LogContext,
    redactor: Redactor,
    budget: LogBudget,
    lines: u32,
    bytes: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl PluginLogger {
    /// A logger attributing events to `context`, with the default budget and nothing to redact.
    pub fn new(context: LogContext) -> Self {
        Self {
            context,
            ..Self::default()
        }
    }

    /// Redacts what `redactor` holds (the secrets and tokens of the run's connections).
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// Also redacts these values.
    pub fn with_secrets(self, secrets: Vec<Secret>) -> Self {
        let redactor = self.redactor.clone().with(secrets);
        self.with_redactor(redactor)
    }

    /// Keeps at most this much per call.
    pub fn with_budget(mut self, budget: LogBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The context events are attributed to.
    pub fn context(&self) -> &LogContext {
        &self.context
    }

    /// Lines dropped so far because the call's budget was spent.
    pub fn dropped(&self) -> u64 {
        self.dropped_lines
    }

    /// Emits one event, unless the call's budget is spent.
    pub fn log(&mut self, level: LogLevel, message: &str, fields: &[(String, String)]) {
        let size = message.len() as u64
            + fields
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum::<u64>();
        if self.lines >= self.budget.lines || self.bytes + size > self.budget.bytes {
            self.dropped_lines += 1;
            self.dropped_bytes += size;
            return;
        }
        self.lines += 1;
        self.bytes += size;
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

    /// Says, once, how much the call logged beyond its budget. Called when the call ends.
    pub fn finish(&mut self) {
        if self.dropped_lines == 0 {
            return;
        }
        let c = &self.context;
        tracing::warn!(
            target: TARGET,
            plugin = %c.plugin,
            tenant = c.tenant.as_deref(),
            flow = c.flow.as_deref(),
            run = c.run.as_deref(),
            step = c.step.as_deref(),
            dropped_lines = self.dropped_lines,
            dropped_bytes = self.dropped_bytes,
            "plugin logged more than its budget of {} lines or {} bytes in one call; {} more lines were dropped",
            self.budget.lines,
            self.budget.bytes,
            self.dropped_lines,
        );
        self.dropped_lines = 0;
        self.dropped_bytes = 0;
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
        // Redacted whole before it is cut, so a secret across the cut is not half shown (the
        // call's byte budget bounds the work).
        let redacted = self.redactor.redact(text);
        let mut end = max.min(redacted.len());
        while !redacted.is_char_boundary(end) {
            end -= 1;
        }
        let mut cleaned = printable(&redacted[..end], usize::MAX);
        if end < redacted.len() {
            cleaned.push_str("...(truncated)");
        }
        cleaned
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
