//! A run's record of each step as it goes: the counters a page adds, written to the store once
//! a page (not once a step), the status a step ends with, and its failed records in the error
//! log, every text scrubbed of the run's secrets.

use std::time::SystemTime;

use weft_flow::StepId;
use weft_store::{StepRunRecord, StepStatus, StoreError};

use super::{Execution, MAX_STORED_ERROR_BYTES, Progress, Stop};

impl Execution<'_> {
    /// The record of step `id`, made (running) the first time a step is seen.
    pub(super) fn record(&mut self, id: &StepId) -> &mut StepRunRecord {
        self.steps
            .entry(id.clone())
            .or_insert_with(|| StepRunRecord {
                step: id.to_string(),
                status: StepStatus::Running,
                pages: 0,
                records_in: 0,
                records_out: 0,
                failed: 0,
                started_at: SystemTime::now(),
                finished_at: None,
                error: None,
            })
    }

    /// Counts a batch a step took in.
    pub(super) fn took_in(&mut self, id: &StepId, records: usize) {
        let record = self.record(id);
        record.pages += 1;
        record.records_in += records as u64;
    }

    /// Tells the progress of step `id` and marks its record to be written with the next
    /// [`Execution::flush`]: a page's counters go to the store in one write, not one a step.
    pub(super) fn counted(&mut self, id: &StepId) {
        self.record(id);
        (self.progress)(&Progress {
            step: &self.steps[id],
            total: self.totals.get(id).copied(),
        });
        self.unsaved.insert(id.clone());
    }

    /// Writes the records of every step counted since the last flush, in one store call.
    pub(super) async fn flush(&mut self) -> Result<(), StoreError> {
        if self.unsaved.is_empty() {
            return Ok(());
        }
        let records: Vec<StepRunRecord> = std::mem::take(&mut self.unsaved)
            .iter()
            .map(|id| self.steps[id].clone())
            .collect();
        self.store.steps_save(&self.run, &records).await
    }

    /// [`Execution::counted`] and [`Execution::flush`] at once: for a step's status changing.
    pub(super) async fn save(&mut self, id: &StepId) -> Result<(), StoreError> {
        self.counted(id);
        self.flush().await
    }

    pub(super) async fn finish(
        &mut self,
        id: &StepId,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        // Step errors quote plugins and upstreams: scrubbed of every secret the run holds and
        // escaped before they are stored (and so before `weft runs show` prints them).
        let error = error.map(|e| self.context.redactor().clean(&e, MAX_STORED_ERROR_BYTES));
        let record = self.record(id);
        if record.status == StepStatus::Running {
            record.status = StepStatus::Succeeded;
        }
        if error.is_some() {
            record.status = StepStatus::Failed;
            record.error = error;
        }
        record.finished_at = Some(SystemTime::now());
        self.save(id).await
    }

    /// Fails step `id` with `error`: the source feeding it stops.
    pub(super) async fn fail(&mut self, id: &StepId, error: String) -> Stop {
        match self.finish(id, Some(error)).await {
            Ok(()) => Stop::Step(id.clone()),
            Err(e) => Stop::Store(e),
        }
    }

    pub(super) async fn log_error(
        &mut self,
        id: &StepId,
        record: Option<&str>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.log_errors(id, vec![(record, error.to_owned())]).await
    }

    /// Logs the failed records of one of `id`'s batches (the record, if known, and why) in one
    /// write to the store, secrets redacted.
    pub(super) async fn log_errors(
        &mut self,
        id: &StepId,
        failures: Vec<(Option<&str>, String)>,
    ) -> Result<(), StoreError> {
        if failures.is_empty() {
            return Ok(());
        }
        self.record(id).failed += failures.len() as u64;
        let redactor = self.context.redactor();
        let cleaned: Vec<(Option<String>, String)> = failures
            .into_iter()
            .map(|(record, error)| {
                let record = record.map(|r| redactor.redact(r));
                (record, redactor.clean(&error, MAX_STORED_ERROR_BYTES))
            })
            .collect();
        let rows: Vec<(Option<&str>, &str)> = cleaned
            .iter()
            .map(|(record, error)| (record.as_deref(), error.as_str()))
            .collect();
        self.store
            .errors_append(&self.run, id.as_str(), &rows)
            .await
    }
}
