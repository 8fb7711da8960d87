//! How a run's end becomes the process's exit code, so scripts and schedulers can tell a clean
//! run from one that left records behind:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | the run succeeded: every step ended well, no record failed |
//! | 1 | the run failed (a step failed, the state database failed), or weft could not run it |
//! | 2 | the command line is wrong (clap's usage errors) |
//! | 3 | the run completed, but records were rejected or failed to be written; they are in its error log |

use std::process::ExitCode;

use anyhow::bail;
use weft_engine::RunReport;
use weft_store::RunStatus;

/// A run that completed with records in its error log.
#[derive(Debug, thiserror::Error)]
#[error(
    "run {run} completed, but {records} record(s) failed: `weft runs errors {run}` lists them with why, `weft runs retry {run}` sends them again once fixed"
)]
pub struct RecordsFailed {
    pub run: String,
    pub records: u64,
}

impl RecordsFailed {
    /// The exit code of a run that left records behind.
    pub const EXIT_CODE: u8 = 3;

    pub fn exit_code() -> ExitCode {
        ExitCode::from(Self::EXIT_CODE)
    }
}

/// `Ok` for a run that succeeded; the error saying what is left to do otherwise.
pub fn of_run(report: &RunReport) -> anyhow::Result<()> {
    match report.status {
        RunStatus::Succeeded => Ok(()),
        RunStatus::Partial => Err(RecordsFailed {
            run: report.id.clone(),
            records: report.steps.iter().map(|s| s.failed).sum(),
        }
        .into()),
        _ => bail!(
            "run {} failed; see `weft runs show {}`",
            report.id,
            report.id
        ),
    }
}
