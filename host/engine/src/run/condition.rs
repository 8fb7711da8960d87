//! Condition steps: the records `when` holds for go to the steps reading the step, the others
//! to the steps reading it with `branch = "else"`. Records the condition cannot be evaluated on
//! go to the error log once.

use weft_flow::model::Branch;
use weft_runtime::Batch;

use super::call::{bounded, with_retry};
use super::records::{self, Record};
use super::{Execution, Include, Stop};
use crate::plan::{ConditionWork, PlannedStep};

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
        let context = self.context_for(id);
        let text = records::join(records);
        let mut rejects_logged = false;
        let branches = [
            (then, &work.then, Branch::Then),
            (otherwise, &work.otherwise, Branch::Else),
        ];
        for (children, config, branch) in branches {
            let kept_here = branch == Branch::Then && keep;
            if children.is_empty() && !kept_here {
                continue;
            }
            let batch = Batch {
                config: config.clone(),
                records: text.clone(),
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
            if !rejects_logged {
                for reject in &result.rejects {
                    let record = records.get(reject.index as usize).map(|r| r.get());
                    let why = format!("condition: {}", reject.reason);
                    self.log_error(id, record, &why).await?;
                }
                rejects_logged = true;
            }
            let out = match records::split(&result.records) {
                Ok(out) => out,
                Err(e) => {
                    let why =
                        format!("the condition returned records that are not a JSON array: {e}");
                    return Err(self.fail(id, why).await);
                }
            };
            self.record(id).records_out += out.len() as u64;
            self.save(id).await?;
            if kept_here {
                self.keep(id, &out);
            }
            for child in children {
                Box::pin(self.enter(&child, &out, include)).await?;
            }
        }
        Ok(())
    }
}
