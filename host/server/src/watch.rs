//! How the server watches the runs it carries out (a [`Watch`] each, asked between pages): a
//! cancel asked for through the API, and the tenant's counted quotas with what the run used so
//! far on top of what its tenant used before it started.

use std::sync::OnceLock;
use std::time::SystemTime;

use weft_engine::{Halt, Watch};
use weft_store::{RunStatus, RunUsage};

use crate::quota::{Exceeded, Quotas, Tally};

#[derive(Debug, Default)]
pub(crate) struct RunWatch {
    /// The run's id, once it began.
    run: OnceLock<String>,
    /// Why it was asked to stop, once it was.
    cancelled: OnceLock<String>,
    /// The tenant's quotas and what it used when the run started.
    budget: Option<(Quotas, Tally)>,
    /// The quota that stopped it, if one did.
    exceeded: OnceLock<Exceeded>,
}

impl RunWatch {
    pub fn new(budget: Option<(Quotas, Tally)>) -> Self {
        RunWatch {
            budget,
            ..RunWatch::default()
        }
    }

    /// The run's id, once it began.
    pub fn run(&self) -> Option<&str> {
        self.run.get().map(String::as_str)
    }

    /// Stops the run after its current page, saying `why`.
    pub fn cancel(&self, why: String) {
        let _ = self.cancelled.set(why);
    }

    /// The quota that stopped the run, if one did.
    pub fn exceeded(&self) -> Option<&Exceeded> {
        self.exceeded.get()
    }
}

impl Watch for RunWatch {
    fn began(&self, run: &str) {
        let _ = self.run.set(run.to_owned());
    }

    fn halt(&self, used: &RunUsage) -> Option<Halt> {
        if let Some(why) = self.cancelled.get() {
            return Some(Halt {
                status: RunStatus::Cancelled,
                reason: why.clone(),
            });
        }
        let (quotas, tally) = self.budget.as_ref()?;
        let exceeded = tally.exceeded(quotas, used, SystemTime::now())?;
        let reason = exceeded.to_string();
        let _ = self.exceeded.set(exceeded);
        Some(Halt {
            status: RunStatus::Refused,
            reason,
        })
    }
}
