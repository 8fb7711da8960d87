//! Text that comes from a plugin (its log lines, its error messages, its reject reasons), made
//! safe to store and print.
//!
//! Two things can go wrong with such text: it can carry a secret the plugin learned (a token its
//! upstream echoed, say), and it can carry bytes that forge terminal output (ESC sequences, CR
//! LF, NUL, bidirectional overrides). A [`Redactor`] removes every secret value the run's
//! connections hold, and [`printable`] escapes everything that is not visible text and caps the
//! length. Both are applied where plugin text enters the host, so everything downstream (the
//! store, `weft runs show`, tracing) only ever sees the cleaned text.

use std::sync::Arc;

use crate::connection::Connections;
use crate::secrets::{Secret, redact};

/// `text` with control and bidirectional-formatting characters escaped (`\u{1b}`, `\n`,
/// `\u{202e}`), cut to at most `max` bytes of output with a marker saying how much was cut.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 16);
    for (at, ch) in text.char_indices() {
        if out.len() >= max {
            out.push_str(&format!("...({} more bytes cut)", text.len() - at));
            return out;
        }
        if ch.is_control() || is_bidi_control(ch) {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Characters that reorder how a terminal shows the text around them (Trojan Source).
fn is_bidi_control(ch: char) -> bool {
    matches!(ch, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The longest plugin-supplied message kept (an error, a reject reason), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Scrubs every secret value held by a set of connections from text: the flow's stored and
/// environment secrets once resolved, every token issued to them, and the webhook secrets. The
/// set is read when text is scrubbed, so a token issued during a call is redacted from the
/// very next line. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    connections: Arc<Connections>,
    extra: Arc<Vec<Secret>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// Redacts what `connections` hold.
    pub fn new(connections: Arc<Connections>) -> Self {
        Self {
            connections,
            extra: Arc::default(),
        }
    }

    /// Also redacts `values` (secrets known without a connection, e.g. a webhook key).
    pub fn with(mut self, values: Vec<Secret>) -> Self {
        self.extra = Arc::new(values);
        self
    }

    /// `text` without any secret value.
    pub fn redact(&self, text: &str) -> String {
        redact(&self.connections.redact(text), &self.extra)
    }

    /// `text` without secrets, escaped and capped: what may be stored or printed of text a
    /// plugin supplied.
    pub fn clean(&self, text: &str, max: usize) -> String {
        printable(&self.redact(text), max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_control_and_bidi_characters() {
        assert_eq!(
            printable("ok\x1b[2J\r\nrun r1 succeeded\0", 100),
            "ok\\u{1b}[2J\\r\\nrun r1 succeeded\\u{0}"
        );
        assert_eq!(printable("a\u{202e}b", 100), "a\\u{202e}b");
        assert_eq!(printable("naïve café", 100), "naïve café");
    }

    #[test]
    fn caps_length_at_a_character_boundary() {
        let cut = printable(&"é".repeat(100), 11);
        assert!(cut.starts_with("éééééé..."), "{cut}");
        assert!(cut.ends_with("(188 more bytes cut)"), "{cut}");
    }

    #[test]
    fn redacts_extra_values() {
        let r = Redactor::default().with(vec![Secret::new("s3cr3t-value")]);
        assert_eq!(r.clean("token=s3cr3t-value\n", 100), "token=<redacted>\\n");
    }
}
