//! How runs and steps stand, as the store keeps them (lower-case words in a `TEXT` column).

use std::fmt;

use crate::StoreError;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Its process is working on it (and renews its flow's lease).
    Running,
    /// Every step ended well and no record failed.
    Succeeded,
    /// Every step ran to its end, but some records were rejected or failed to be written: they
    /// are in the run's error log, to fix and retry.
    Partial,
    /// A step failed, or the run could not go on.
    Failed,
    /// Its process died: its lease lapsed with the run unfinished.
    Abandoned,
    /// It was not started, or was stopped after a page: its tenant was over a quota (the error
    /// says which, its limit and when it resets).
    Refused,
    /// It was asked to stop (`POST /api/v1/runs/{run}/cancel`) and stopped after the page it
    /// was on: what it committed before stays, its cursor is where that page left it.
    Cancelled,
}

/// How a step of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    /// It is taking records.
    Running,
    /// It ended without failing (records of it may still be in the error log).
    Succeeded,
    /// A call of it failed for good; the source feeding it stopped.
    Failed,
    /// It never ran: its `run_after` condition did not hold, or nothing reached it.
    Skipped,
}

impl RunStatus {
    /// Every status, in the order a run passes through them.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Partial,
        RunStatus::Failed,
        RunStatus::Abandoned,
        RunStatus::Refused,
        RunStatus::Cancelled,
    ];

    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
            RunStatus::Refused => "refused",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Whether every step of the run ran to its end (records may have failed on the way).
    pub fn completed(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Partial)
    }
}

impl StepStatus {
    /// Every status.
    pub const ALL: [StepStatus; 4] = [
        StepStatus::Running,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
    ];

    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

// `pad`, so tables can align statuses with `{:<9}`.
impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, StoreError> {
        RunStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| unknown("run", text))
    }
}

impl std::str::FromStr for StepStatus {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, StoreError> {
        StepStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| unknown("step", text))
    }
}

fn unknown(of: &'static str, text: &str) -> StoreError {
    StoreError::UnknownStatus {
        of,
        value: text.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
        }
        for status in StepStatus::ALL {
            assert_eq!(status.as_str().parse::<StepStatus>().unwrap(), status);
        }
    }

    #[test]
    fn a_status_this_weft_does_not_know_is_an_error_naming_it() {
        let e = "paused".parse::<RunStatus>().unwrap_err().to_string();
        assert!(e.contains("`paused`") && e.contains("newer weft"), "{e}");
        assert!("Succeeded".parse::<StepStatus>().is_err());
    }
}
