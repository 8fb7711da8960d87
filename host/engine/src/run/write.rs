//! Write steps: batches to a connector's stream (a dataset is one: upserts and deletes by
//! key). Each record's outcome is counted; failed records go to the error log, written ones (with
//! `_written = { id, status }`) to the steps on the `written` branch, when there are any.

use serde_json::json;
use weft_flow::model::{Branch, WriteMode};
use weft_runtime::bindings::{self, PluginError};
use weft_runtime::{WriteRequest, WriteStatus};

use super::call::{bounded, with_retry};
use super::records::{self, Record};
use super::{Execution, Include, Stop};
use crate::plan::{PlannedStep, WriteWork};

fn write_mode(mode: WriteMode) -> bindings::WriteMode {
    match mode {
        WriteMode::Create => bindings::WriteMode::Create,
        WriteMode::Update => bindings::WriteMode::Update,
        WriteMode::Upsert => bindings::WriteMode::Upsert,
        WriteMode::Delete => bindings::WriteMode::Delete,
    }
}

fn written_status(status: WriteStatus) -> &'static str {
    match status {
        WriteStatus::Created => "created",
        WriteStatus::Updated => "updated",
        WriteStatus::Unchanged => "unchanged",
        WriteStatus::Deleted => "deleted",
        WriteStatus::Failed => "failed",
    }
}

/// `record` as the `written` branch carries it.
fn written(record: &Record, id: Option<&str>, status: &str) -> Option<Record> {
    records::with_field(record, "_written", &json!({"id": id, "status": status}))
}

impl Execution<'_> {
    pub(super) async fn write(
        &mut self,
        step: &PlannedStep,
        work: &WriteWork,
        records: &[Record],
        include: Include<'_>,
    ) -> Result<(), Stop> {
        let id = &step.id;
        let connector = &work.to;
        let chunk = work.batch_size.unwrap_or(self.options.write_batch).max(1);
        let context = self.context_for(id);
        let hand_on = step.is_read_on(Branch::Written);
        for part in records.chunks(chunk) {
            let request = WriteRequest {
                stream: work.stream.clone(),
                mode: write_mode(work.mode),
                key: work.key.clone(),
                records: records::join(part),
            };
            let result = bounded(
                step.timeout,
                with_retry(&self.options.retry, || {
                    connector.plugin.write(
                        &context,
                        &connector.connection,
                        &connector.config,
                        request.clone(),
                        part.len(),
                    )
                }),
            )
            .await;
            drop(request);
            self.took_in(id, part.len());
            let outcomes = match result {
                Ok(outcomes) => outcomes,
                Err(e) => return Err(self.fail(id, e.to_string()).await),
            };
            let mut accepted = Vec::new();
            let mut failures = Vec::new();
            for (outcome, record) in outcomes.iter().zip(part) {
                if outcome.status == WriteStatus::Failed {
                    let reason = outcome
                        .error
                        .as_ref()
                        .map_or_else(|| "failed".to_owned(), PluginError::message);
                    failures.push((Some(record.get()), reason));
                    continue;
                }
                self.record(id).records_out += 1;
                if hand_on {
                    let status = written_status(outcome.status);
                    accepted.extend(written(record, outcome.id.as_deref(), status));
                }
            }
            self.log_errors(id, failures).await?;
            self.counted(id);
            self.hand_on(id, Branch::Written, &accepted, include)
                .await?;
        }
        Ok(())
    }
}
