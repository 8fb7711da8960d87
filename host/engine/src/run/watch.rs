//! Stopping a run before its end: between pages, a run asks its [`Watch`] whether it goes on.
//! A run stopped so ends with the status and the reason the watch gave; what it committed
//! before (writes acknowledged, the cursor after the last whole page) stays, so the next run
//! goes on from there.

use std::fmt;

use weft_store::{RunStatus, RunUsage};

/// Why a run stops before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    /// The status the run ends with (`cancelled`, or `refused` for a quota).
    pub status: RunStatus,
    /// Why, for the run's history.
    pub reason: String,
}

/// Asked by a run between pages whether it goes on.
pub trait Watch: Send + Sync + fmt::Debug {
    /// The run began with this id.
    fn began(&self, run: &str) {
        let _ = run;
    }

    /// Whether the run stops now, having used `used` so far.
    fn halt(&self, used: &RunUsage) -> Option<Halt>;
}
