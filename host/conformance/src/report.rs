//! What the checks found, in the order they ran.

use std::fmt;
use std::time::Duration;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The plugin did what the check pins; the text says what was seen.
    Passed(String),
    /// It did not; the text says what happened and what was expected.
    Failed(String),
    /// The check could not run here; the text says why and what would let it.
    Skipped(String),
}

/// One check: its name, what it pins, and how it ended.
#[derive(Debug, Clone)]
pub struct Check {
    /// `snake_case`, stable: scripts may look for it.
    pub name: &'static str,
    /// One line: the behaviour the check pins.
    pub pins: &'static str,
    pub outcome: Outcome,
    pub took: Duration,
}

/// Every check run on one plugin.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `NAME VERSION (KIND)` of the plugin checked.
    pub plugin: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(plugin: String) -> Report {
        Report {
            plugin,
            checks: Vec::new(),
        }
    }

    /// Runs `check` and records its outcome under `name`, with what it pins and how long it
    /// took.
    pub async fn timed<F: std::future::Future<Output = Outcome>>(
        &mut self,
        name: &'static str,
        pins: &'static str,
        check: F,
    ) {
        let started = std::time::Instant::now();
        let outcome = check.await;
        self.checks.push(Check {
            name,
            pins,
            outcome,
            took: started.elapsed(),
        });
    }

    /// Whether no check failed (skipped ones do not fail a plugin).
    pub fn passed(&self) -> bool {
        !self
            .checks
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Failed(_)))
    }

    /// How many checks passed, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: fn(&Outcome) -> bool| self.checks.iter().filter(|c| f(&c.outcome)).count();
        (
            count(|o| matches!(o, Outcome::Passed(_))),
            count(|o| matches!(o, Outcome::Failed(_))),
            count(|o| matches!(o, Outcome::Skipped(_))),
        )
    }

    /// The report as JSON, for tools.
    pub fn to_json(&self) -> serde_json::Value {
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                let (outcome, detail) = match &c.outcome {
                    Outcome::Passed(d) => ("passed", d),
                    Outcome::Failed(d) => ("failed", d),
                    Outcome::Skipped(d) => ("skipped", d),
                };
                serde_json::json!({
                    "name": c.name,
                    "pins": c.pins,
                    "outcome": outcome,
                    "detail": detail,
                    "took_ms": c.took.as_millis() as u64,
                })
            })
            .collect();
        serde_json::json!({"plugin": self.plugin, "passed": self.passed(), "checks": checks})
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.plugin)?;
        for check in &self.checks {
            let (mark, detail) = match &check.outcome {
                Outcome::Passed(d) => ("ok  ", d),
                Outcome::Failed(d) => ("FAIL", d),
                Outcome::Skipped(d) => ("skip", d),
            };
            writeln!(
                f,
                "  {mark} {} ({} ms)\n       {}\n       {detail}",
                check.name,
                check.took.as_millis(),
                check.pins
            )?;
        }
        let (passed, failed, skipped) = self.counts();
        write!(
            f,
            "{passed} passed, {failed} failed, {skipped} skipped: {}",
            if failed == 0 {
                "the plugin conforms"
            } else {
                "the plugin does not conform"
            }
        )
    }
}
