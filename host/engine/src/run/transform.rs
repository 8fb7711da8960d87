//! Transform steps: a batch through the plugin; what it returns goes on, what it rejects goes
//! to the error log and to the steps on its `rejected` branch.

use serde_json::json;
use weft_flow::model::Branch;
use weft_runtime::Batch;

use super::call::{bounded, with_retry};
use super::records::{self, Record};
use super::{Execution, Include, Stop};
use crate::plan::{PlannedStep, TransformWork};

impl Execution<'_> {
    pub(super) async fn transform(
        &mut self,
        step: &PlannedStep,
        work: &TransformWork,
        records: &[Record],
        include: Include<'_>,
    ) -> Result<(), Stop> {
        let id = &step.id;
        let lookup = work.lookup.as_ref().map(|l| self.lookup(l).to_string());
        let batch = Batch {
            config: work.config.clone(),
            records: records::join(records),
            lookup,
        };
        let context = self.context_for(id);
        let result = bounded(
            step.timeout,
            with_retry(&self.options.retry, || {
                work.plugin.process(&context, batch.clone())
            }),
        )
        .await;
        drop(batch);
        self.took_in(id, records.len());
        let result = match result {
            Ok(result) => result,
            Err(e) => return Err(self.fail(id, e.to_string()).await),
        };
        let out = match records::split(&result.records) {
            Ok(out) => out,
            Err(e) => {
                let why = format!("the transform returned records that are not a JSON array: {e}");
                return Err(self.fail(id, why).await);
            }
        };
        self.record(id).records_out += out.len() as u64;
        let keep_rejected = step.is_read_on(Branch::Rejected);
        let mut rejected = Vec::new();
        let mut failures = Vec::with_capacity(result.rejects.len());
        for reject in &result.rejects {
            let field = reject
                .field
                .as_deref()
                .map(|f| format!(" (field `{f}`)"))
                .unwrap_or_default();
            let reason = format!("rejected{field}: {}", reject.reason);
            // The runtime refused any reject naming a record past the batch.
            let record = records.get(reject.index as usize);
            failures.push((record.map(|r| r.get()), reason));
            if keep_rejected && let Some(record) = record {
                let why = json!({"reason": reject.reason, "field": reject.field});
                rejected.extend(records::with_field(record, "_rejected", &why));
            }
        }
        self.log_errors(id, failures).await?;
        self.counted(id);
        self.keep(id, &out);
        self.propagate(id, &out, include).await?;
        self.hand_on(id, Branch::Rejected, &rejected, include).await
    }
}
