//! Plugin log calls become attributed, sanitized tracing events.

use std::io::Write;
use std::sync::{Arc, Mutex};

use weft_capabilities::{LogContext, LogLevel, PluginLogger, Secret};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn plugin_log_is_attributed_and_never_carries_secrets_or_bodies() {
    let logger = PluginLogger::new(LogContext {
        plugin: "zendesk".into(),
        tenant: Some("default".into()),
        flow: Some("tickets-to-zoho".into()),
        run: Some("run-7".into()),
        step: Some("tickets".into()),
    })
    .with_secrets(vec![Secret::new("at-live-token-999")]);
    let output = capture(|| {
        logger.log(
            LogLevel::Warn,
            "retrying with at-live-token-999\nINFO forged line",
            &[
                ("page".into(), "3".into()),
                ("access_token".into(), "whatever".into()),
                ("body".into(), "{\"email\":\"a@b.c\"}".into()),
            ],
        );
    });
    assert!(output.contains("WARN"), "{output}");
    for expected in [
        "plugin=zendesk",
        "tenant=\"default\"",
        "flow=\"tickets-to-zoho\"",
        "run=\"run-7\"",
        "step=\"tickets\"",
        "page=\"3\"",
        "weft::plugin",
    ] {
        assert!(output.contains(expected), "missing {expected}: {output}");
    }
    assert!(!output.contains("at-live-token-999"), "{output}");
    assert!(!output.contains("whatever"), "{output}");
    assert!(!output.contains("a@b.c"), "{output}");
    assert_eq!(
        output.lines().count(),
        1,
        "a newline in the message cannot forge a log line: {output}"
    );
}

#[test]
fn levels_map_to_tracing_levels_and_long_messages_are_cut() {
    let logger = PluginLogger::new(LogContext::plugin("map"));
    let output = capture(|| {
        logger.log(LogLevel::Error, &"x".repeat(10_000), &[]);
        logger.log(LogLevel::Debug, "detail", &[]);
    });
    assert!(
        output.contains("ERROR") && output.contains("DEBUG"),
        "{output}"
    );
    assert!(output.contains("(truncated)"), "{output}");
    assert!(output.len() < 4_000, "{}", output.len());
}
