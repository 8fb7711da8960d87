//! Retrying the records a run logged as failed: each goes back into the step that failed it
//! (a transform's rejects, a write's failed outcomes) and on downstream from there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::value::RawValue;
use weft_capabilities::Secrets;
use weft_flow::{Flow, StepId};
use weft_store::{StepStatus, Store, StoreError};

use super::records::Record;
use super::{Execution, Progress, RunError, RunOptions, RunReport, Stop, begin, run_span};
use crate::plan::Plan;
use tracing::Instrument;

/// Runs again only the records run `run_id` logged as failed. The retry is a run of its own,
/// with its own error log.
pub async fn retry_failed(
    flow: &Flow,
    plan: &Plan,
    store: &Store,
    secrets: &Secrets,
    options: &RunOptions,
    run_id: &str,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<RunReport, RunError> {
    let mut failures: BTreeMap<StepId, Vec<Record>> = BTreeMap::new();
    for entry in store.run_errors(run_id).await? {
        let (Ok(step), Some(record)) = (StepId::try_from(entry.step.clone()), entry.record) else {
            continue;
        };
        // Records were logged as weft read them, so they are JSON; a row that is not (its
        // text cut, say) cannot be sent again.
        if let Ok(record) = RawValue::from_string(record) {
            failures.entry(step).or_default().push(record);
        }
    }
    let started = Instant::now();
    let (run, context, hold) = begin(flow, plan, store, secrets, options).await?;
    let mut execution = Execution::new(flow, plan, store, options, context, run.clone(), progress);
    let outcome = execution
        .again(failures)
        .instrument(run_span(flow, options, &run))
        .await;
    execution.conclude(hold, outcome, started).await
}

impl Execution<'_> {
    /// Each step's failed records through that step and everything downstream of it, nothing
    /// beside it; which steps stopped the retry, if any.
    async fn again(
        &mut self,
        failures: BTreeMap<StepId, Vec<Record>>,
    ) -> Result<Option<String>, StoreError> {
        let mut failed = Vec::new();
        for (step, records) in failures {
            let Some(planned) = self.plan.step(&step) else {
                continue;
            };
            if planned.input().is_none() {
                continue;
            }
            let mut reach = BTreeSet::from([step.clone()]);
            let mut frontier = vec![step.clone()];
            while let Some(s) = frontier.pop() {
                for d in self.downstream(&s) {
                    if reach.insert(d.clone()) {
                        frontier.push(d);
                    }
                }
            }
            let only = |s: &StepId| reach.contains(s);
            match self.enter(&step, &records, &only).await {
                Ok(()) => {}
                Err(Stop::Step(stopped)) => failed.push(stopped.to_string()),
                Err(Stop::Store(e)) => return Err(e),
            }
        }
        let running: Vec<StepId> = self
            .steps
            .iter()
            .filter(|(_, s)| s.status == StepStatus::Running)
            .map(|(id, _)| id.clone())
            .collect();
        for id in running {
            self.finish(&id, None).await?;
        }
        Ok((!failed.is_empty()).then(|| format!("retry stopped at {}", failed.join(", "))))
    }
}
