//! Plugin log calls become attributed, sanitized tracing events.

use std::io::Write;
use std::sync::{Arc, Mutex};

use weft_capabilities::{LogContext, LogLevel, PluginLogger, Secret, log::LogBudget};

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
    let mut logger = PluginLogger::new(LogContext {
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
    let mut logger = PluginLogger::new(LogContext::plugin("map"));
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

#[test]
fn a_log_flood_is_cut_at_the_call_budget_and_counted_in_one_line() {
    let mut logger = PluginLogger::new(LogContext::plugin("chatty")).with_budget(LogBudget {
        lines: 10,
        bytes: 1_000_000,
    });
    let output = capture(|| {
        for i in 0..5_000 {
            logger.log(LogLevel::Info, &format!("line {i}"), &[]);
        }
        logger.finish();
    });
    assert_eq!(output.lines().count(), 11, "{output}");
    assert!(
        output.contains("line 9") && !output.contains("line 10"),
        "{output}"
    );
    let last = output.lines().last().unwrap();
    assert!(last.contains("4990 more lines were dropped"), "{last}");
    assert!(last.contains("budget of 10 lines"), "{last}");
}

#[test]
fn the_byte_budget_holds_however_lines_are_sized() {
    let mut logger = PluginLogger::new(LogContext::plugin("chatty")).with_budget(LogBudget {
        lines: 1_000_000,
        bytes: 10_000,
    });
    let output = capture(|| {
        for _ in 0..1_000 {
            logger.log(
                LogLevel::Info,
                &"y".repeat(1_000),
                &[("k".into(), "v".repeat(200))],
            );
        }
        logger.finish();
    });
    // Eight lines of 1,201 bytes fit in 10,000; the rest are counted.
    assert_eq!(output.lines().count(), 9, "{output}");
    assert!(output.contains("992 more lines were dropped"), "{output}");
    assert!(output.len() < 20_000, "{}", output.len());
}
