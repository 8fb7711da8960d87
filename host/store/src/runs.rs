//! Runs of flows: their steps with counts and durations, the cursors reads resume from, and the
//! error log of records that failed.

use std::time::SystemTime;

/// One run of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The run's id, as `weft runs show` takes it.
    pub id: String,
    /// The tenant the flow belongs to.
    pub tenant: String,
    /// The flow's name.
    pub flow: String,
    /// The environment the run used (`--env`), if any.
    pub environment: Option<String>,
    /// `running`, `succeeded`, `failed`, or `abandoned` (its process died: its lease lapsed).
    pub status: String,
    /// When the run started.
    pub started_at: SystemTime,
    /// When it ended; `None` while running (or if the process died).
    pub finished_at: Option<SystemTime>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One step of a run, with what went through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRunRecord {
    /// The step's id in its flow.
    pub step: String,
    /// `running`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// Pages (batches) the step handled.
    pub pages: u64,
    /// Records the step received (for reads: records read).
    pub records_in: u64,
    /// Records the step produced or wrote.
    pub records_out: u64,
    /// Records that went to the error log.
    pub failed: u64,
    /// When the step started.
    pub started_at: SystemTime,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One record that failed, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEntry {
    /// Order within the run's error log, from 1.
    pub seq: u64,
    /// The step where it failed.
    pub step: String,
    /// The record as JSON, when the failure concerns one.
    pub record: Option<String>,
    /// What went wrong, upstream's words included.
    pub error: String,
    /// When it was logged.
    pub created_at: SystemTime,
}

/// What an upsert did to one dataset record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// The key was new.
    Created,
    /// The key existed with other content.
    Updated,
    /// The key existed with the same content.
    Unchanged,
}

/// What one page of dataset upserts does, worked out in memory from the records the keys hold
/// now: one outcome per row, in order (a key repeated in the page sees its earlier row), and
/// the rows to write, once per key, in the page's order of their last occurrence.
pub(crate) fn upsert_plan(
    rows: &[(String, String)],
    existing: std::collections::HashMap<String, String>,
) -> (Vec<Upserted>, Vec<(&str, &str)>) {
    let mut current: std::collections::HashMap<&str, (&str, bool)> =
        std::collections::HashMap::with_capacity(rows.len());
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut order: Vec<&str> = Vec::new();
    for (key, record) in rows {
        let before: Option<&str> = match current.get(key.as_str()) {
            Some((r, _)) => Some(r),
            None => existing.get(key).map(String::as_str),
        };
        let outcome = match before {
            Some(old) if old == record => Upserted::Unchanged,
            Some(_) => Upserted::Updated,
            None => Upserted::Created,
        };
        let changed =
            outcome != Upserted::Unchanged || current.get(key.as_str()).is_some_and(|(_, c)| *c);
        if !current.contains_key(key.as_str()) {
            order.push(key);
        }
        current.insert(key, (record, changed));
        outcomes.push(outcome);
    }
    let writes = order
        .into_iter()
        .filter_map(|k| {
            current
                .get(k)
                .filter(|(_, changed)| *changed)
                .map(|(r, _)| (k, *r))
        })
        .collect();
    (outcomes, writes)
}

/// Rows per multi-row statement: five parameters each, well under both databases' limits.
pub(crate) const UPSERT_CHUNK: usize = 1_000;

/// A dataset and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    /// The dataset's name.
    pub name: String,
    /// How many records it holds.
    pub records: u64,
    /// When a record last changed.
    pub updated_at: SystemTime,
}

/// A flow's webhook registration with its vendor, as `weft serve` made it: kept so that a
/// restart does not register again, and so that it can be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    /// The flow whose endpoint is registered.
    pub flow: String,
    /// The flow's webhook connection, whose plugin registered it.
    pub connection: String,
    /// The vendor's id for it, which unsubscribing needs.
    pub subscription_id: String,
    /// Where the vendor delivers.
    pub callback_url: String,
    /// The vendor event names subscribed to; every event the connector knows when empty.
    pub events: Vec<String>,
    /// When the vendor drops it, if it does.
    pub expires_at: Option<SystemTime>,
    /// When it was made.
    pub created_at: SystemTime,
}

/// A webhook event as the store keeps it between its arrival and its processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The vendor's event id; a second delivery with the same id is dropped.
    pub event_id: String,
    /// Arrival order within the flow.
    pub seq: u64,
    /// The stream the event's record belongs to.
    pub stream: String,
    /// What happened, in the vendor's words.
    pub action: String,
    /// The record, as JSON.
    pub record: String,
}

/// Who holds a flow: the one run of it that may be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLease {
    /// The run holding the flow.
    pub run_id: String,
    /// The process running it (`host:pid`), for messages.
    pub holder: String,
    /// When the lease lapses unless its holder renews it.
    pub expires_at: SystemTime,
}

/// What [`Store::lease_acquire`](crate::Store::lease_acquire) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The run holds the flow now. If a lapsed lease was taken over, `abandoned` names the run
    /// that held it, now marked `abandoned`.
    Acquired {
        /// The run whose holder died.
        abandoned: Option<String>,
    },
    /// Another run holds the flow.
    Held(FlowLease),
}

/// The error a run abandoned by its process gets.
pub(crate) fn abandoned_reason(holder: &str, lapsed_at_ms: i64) -> String {
    format!(
        "abandoned: the process running it ({holder}) stopped renewing its lease, which lapsed at {} ms since the epoch; the next run resumes from the last committed checkpoint",
        lapsed_at_ms
    )
}
