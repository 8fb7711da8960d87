//! Condition steps: the records `when` holds for go to the steps reading the step, the others
//! to the steps reading it with `branch = "else"`. One call to the filter decides both: it names
//! the positions of the records `when` holds for, and rejects those it cannot be evaluated on
//! (they go to the error log, and to neither branch).

use serde::Deserialize;
use weft_flow::model::Branch;
use weft_runtime::Batch;

use super::call::{bounded, with_retry};
use super::records::{self, Record};
use super::{Execution, Include, Stop};
use crate::plan::{ConditionWork, PlannedStep};

/// What the filter hands on for each record `when` holds for.
#[derive(Deserialize)]
struct Kept {
    position: usize,
}

impl Execution<'_> {
    pub(super) async fn condition(
        &mut self,
        step: &PlannedStep,
        work: &ConditionWork,
        records: &[Record],
        include: Include<'_>,
    ) -> Result<(), Stop> {
        let id = &step.id;
        let then = self.readers_on(id, Branch::Then, include);
        let otherwise = self.readers_on(id, Branch::Else, include);
        let keep = self.collected.contains_key(id);
        self.took_in(id, records.len());
        if then.is_empty() && otherwise.is_empty() && !keep {
            return Ok(());
        }
        let context = self.context_for(id);
        let batch = Batch {
            config: work.config.clone(),
            records: records::join(records),
            lookup: None,
        };
        let result = bounded(
            step.timeout,
            with_retry(&self.options.retry, || {
                work.plugin.process(&context, batch.clone())
            }),
        )
        .await;
        let result = match result {
            Ok(result) => result,
            Err(e) => return Err(self.fail(id, e.to_string()).await),
        };
        // Where each record goes: `Some(true)` then, `Some(false)` else, `None` the error log.
        let mut branch = vec![Some(false); records.len()];
        let mut failures = Vec::with_capacity(result.rejects.len());
        for reject in &result.rejects {
            let record = records.get(reject.index as usize).map(|r| r.get());
            failures.push((record, format!("condition: {}", reject.reason)));
            if let Some(b) = branch.get_mut(reject.index as usize) {
                *b = None;
            }
        }
        self.log_errors(id, failures).await?;
        let kept: Vec<Kept> = match serde_json::from_str(&result.records) {
            Ok(kept) => kept,
            Err(e) => {
                let why = format!("the condition's answer is not a list of positions: {e}");
                return Err(self.fail(id, why).await);
            }
        };
        let mut last = None;
        for Kept { position } in kept {
            // In batch order, each once, of a record not rejected.
            if last.is_some_and(|l| position <= l) || branch.get(position) != Some(&Some(false)) {
                let why = format!(
                    "the condition named position {position} of a batch of {}: out of order, repeated, rejected or out of range",
                    records.len()
                );
                return Err(self.fail(id, why).await);
            }
            branch[position] = Some(true);
            last = Some(position);
        }
        let pick = |wanted: bool| -> Vec<Record> {
            records
                .iter()
                .zip(&branch)
                .filter(|(_, b)| **b == Some(wanted))
                .map(|(r, _)| r.clone())
                .collect()
        };
        // Only the branches something reads (or keeps) are made, and counted.
        let held = if then.is_empty() && !keep {
            Vec::new()
        } else {
            pick(true)
        };
        let not_held = if otherwise.is_empty() {
            Vec::new()
        } else {
            pick(false)
        };
        self.record(id).records_out += (held.len() + not_held.len()) as u64;
        self.counted(id);
        if keep {
            self.keep(id, &held);
        }
        for (children, out) in [(then, &held), (otherwise, &not_held)] {
            for child in children {
                Box::pin(self.enter(&child, out, include)).await?;
            }
        }
        Ok(())
    }
}
