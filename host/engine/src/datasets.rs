//! weft's own datasets as a connector like any other: a stream is a dataset of the run's
//! tenant, read in key order a page at a time (the cursor is the last key read) and written by
//! key (upsert, or delete). A record whose key field is missing or null is refused as an
//! invalid record; the store's answer says which records were created, updated or unchanged.

use serde_json::Value;
use serde_json::value::RawValue;
use weft_runtime::bindings::{PluginError, WriteMode};
use weft_runtime::{
    CallContext, CallError, Page, ReadRequest, WriteOutcome, WriteRequest, WriteStatus,
};
use weft_store::{Store, StoreError, Upserted};

use crate::plugins::{Call, Connector};
use crate::run::records::{join_texts, raw_dataset_key};

/// Records in a page of a dataset when the read step does not say.
const PAGE: u32 = 500;

/// What the engine names the datasets connector in messages.
const NAME: &str = "dataset";

/// The datasets of the store a run's calls carry.
pub struct Datasets;

/// The run's store; a call outside a run has none.
fn store(context: &CallContext) -> Result<&Store, CallError> {
    context.store.as_ref().ok_or_else(|| CallError::HostFault {
        plugin: NAME.into(),
        message: "datasets are read and written within a run, which has a store".into(),
    })
}

fn fault(e: StoreError) -> CallError {
    CallError::HostFault {
        plugin: NAME.into(),
        message: format!("the state database failed: {e}"),
    }
}

impl Connector for Datasets {
    fn read<'a>(
        &'a self,
        context: &'a CallContext,
        _connection: &'a str,
        _config: &'a Value,
        request: ReadRequest,
    ) -> Call<'a, Page> {
        Box::pin(async move {
            let size = request.page_size.unwrap_or(PAGE).max(1);
            let after = request.cursor.as_deref();
            let rows = store(context)?
                .dataset_page(&context.tenant, &request.stream, after, size)
                .await
                .map_err(fault)?;
            let done = rows.len() < size as usize;
            let next_cursor = rows.last().map(|(key, _)| key.clone()).or(request.cursor);
            // Rows hold what weft wrote, each one JSON value checked on the way in.
            let records = join_texts(rows.iter().map(|(_, row)| row.as_str()));
            Ok(Page {
                records,
                next_cursor,
                done,
                total: None,
            })
        })
    }

    fn write<'a>(
        &'a self,
        context: &'a CallContext,
        _connection: &'a str,
        _config: &'a Value,
        request: WriteRequest,
        _records: usize,
    ) -> Call<'a, Vec<WriteOutcome>> {
        Box::pin(async move {
            let records: Vec<Box<RawValue>> =
                serde_json::from_str(&request.records).map_err(|e| CallError::Malformed {
                    plugin: NAME.into(),
                    reason: format!("the batch is not a JSON array: {e}"),
                })?;
            let mut outcomes = Vec::with_capacity(records.len());
            let mut rows = Vec::with_capacity(records.len());
            for record in &records {
                match raw_dataset_key(record, &request.key) {
                    Ok(key) => {
                        outcomes.push(outcome(WriteStatus::Unchanged, Some(key.clone()), None));
                        rows.push((key, record.get().to_owned()));
                    }
                    Err(missing) => outcomes.push(outcome(
                        WriteStatus::Failed,
                        None,
                        Some(format!("key field `{missing}` is missing or null")),
                    )),
                }
            }
            let store = store(context)?;
            let (tenant, dataset) = (&context.tenant, &request.stream);
            let statuses: Vec<WriteStatus> = if request.mode == WriteMode::Delete {
                // Deleting what is already gone counts as deleted, so a replay is harmless.
                let keys: Vec<String> = rows.iter().map(|(k, _)| k.clone()).collect();
                store
                    .dataset_delete(tenant, dataset, &keys)
                    .await
                    .map_err(fault)?;
                vec![WriteStatus::Deleted; keys.len()]
            } else {
                let done = store
                    .dataset_upsert(tenant, dataset, &rows)
                    .await
                    .map_err(fault)?;
                done.into_iter().map(upserted).collect()
            };
            let keyed = outcomes
                .iter_mut()
                .filter(|o| o.status != WriteStatus::Failed);
            for (outcome, status) in keyed.zip(statuses) {
                outcome.status = status;
            }
            Ok(outcomes)
        })
    }
}

fn outcome(status: WriteStatus, id: Option<String>, refused: Option<String>) -> WriteOutcome {
    WriteOutcome {
        status,
        id,
        error: refused.map(PluginError::InvalidRecord),
    }
}

fn upserted(outcome: Upserted) -> WriteStatus {
    match outcome {
        Upserted::Created => WriteStatus::Created,
        Upserted::Updated => WriteStatus::Updated,
        Upserted::Unchanged => WriteStatus::Unchanged,
    }
}
