//! Read steps: a connector's stream (a dataset is one), page by page, or the records of
//! webhook events. The next page is read while the page before it goes downstream; pages are
//! handed on in order. Between pages the run's watch may stop it (see [`super::watch`]).

use std::time::{Duration, SystemTime};

use weft_flow::StepId;
use weft_flow::model::SyncMode;
use weft_runtime::bindings;
use weft_runtime::{CallContext, Page, ReadRequest};
use weft_store::{StepStatus, StoreError};

use super::call::{RetryPolicy, bounded, with_retry};
use super::records::{self, Record};
use super::{Execution, Include, Stop};
use crate::plan::{ReadWork, Work};

fn sync_mode(mode: SyncMode) -> bindings::SyncMode {
    match mode {
        SyncMode::Full => bindings::SyncMode::Full,
        SyncMode::Incremental => bindings::SyncMode::Incremental,
    }
}

/// What reading one more page of a read step's stream takes.
struct PageFetch<'w> {
    context: CallContext,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    work: &'w ReadWork,
}

impl PageFetch<'_> {
    /// Starts reading the page at `cursor` on a task of its own.
    fn start(&self, cursor: Option<String>) -> PageAhead {
        let request = ReadRequest {
            stream: self.work.stream.clone(),
            mode: sync_mode(self.work.sync),
            cursor,
            page_size: self.work.page_size,
            options: self.work.options.clone(),
        };
        let (connector, context) = (self.work.from.clone(), self.context.clone());
        let (timeout, retry) = (self.timeout, self.retry.clone());
        PageAhead(tokio::spawn(async move {
            let page = bounded(
                timeout,
                with_retry(&retry, || {
                    connector.plugin.read(
                        &context,
                        &connector.connection,
                        &connector.config,
                        request.clone(),
                    )
                }),
            )
            .await;
            page.map_err(|e| e.to_string())
        }))
    }
}

/// A page being read; the read is stopped when this is dropped unfinished.
struct PageAhead(tokio::task::JoinHandle<Result<Page, String>>);

impl PageAhead {
    /// The page, or why it could not be read.
    async fn finish(&mut self) -> Result<Page, String> {
        match (&mut self.0).await {
            Ok(page) => page,
            Err(e) => Err(format!("reading the page stopped: {e}")),
        }
    }
}

impl Drop for PageAhead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Execution<'_> {
    /// Reads `source` page by page, pushing each page downstream; commits the cursor after each
    /// page whose writes all succeeded (incremental reads only: a full read starts over).
    pub(super) async fn read(
        &mut self,
        source: &StepId,
        include: Include<'_>,
        commit: bool,
    ) -> Result<(), StoreError> {
        if let Some(events) = self.injected.remove(source) {
            let records: Vec<Record> = events.iter().map(records::from_value).collect();
            let failed = self.deliver(source, &records, include).await?;
            return self.finish(source, failed).await;
        }
        let Work::Read(work) = &self.planned(source).work else {
            unreachable!("sources are read steps")
        };
        if self.halted() {
            // Stopped before this source began: it never ran.
            let record = self.record(source);
            record.status = StepStatus::Skipped;
            record.finished_at = Some(SystemTime::now());
            return self.save(source).await;
        }
        self.read_pages(source, work, include, commit).await
    }

    /// Reads the step's stream from its connector. While a page goes downstream, the next one
    /// is already being read (on another task, so on another core when there is one): the
    /// connector's call and the steps below overlap instead of taking turns. A page is handed
    /// on only after the one before it, and the cursor is committed only for pages whose writes
    /// all succeeded; when a page fails downstream, the page read ahead is dropped.
    async fn read_pages(
        &mut self,
        source: &StepId,
        work: &ReadWork,
        include: Include<'_>,
        commit: bool,
    ) -> Result<(), StoreError> {
        let flow_name = self.flow.file.name.get_ref().to_string();
        let cursor = match work.sync {
            SyncMode::Incremental => {
                self.store
                    .cursor_get(&self.options.tenant, &flow_name, source.as_str())
                    .await?
            }
            SyncMode::Full => None,
        };
        let fetch = PageFetch {
            context: self.context_for(source),
            timeout: self.planned(source).timeout,
            retry: self.options.retry.clone(),
            work,
        };
        self.record(source);
        let mut next = fetch.start(cursor);
        loop {
            let page = match next.finish().await {
                Ok(page) => page,
                Err(why) => return self.finish(source, Some(why)).await,
            };
            if let Some(total) = page.total {
                self.totals.insert(source.clone(), total);
            }
            // The next page is asked for first: a connector's paging waits on nothing else.
            if !page.done {
                next = fetch.start(page.next_cursor.clone());
            }
            let records = match records::split(&page.records) {
                Ok(records) => records,
                Err(e) => {
                    let why =
                        format!("the connector returned records that are not a JSON array: {e}");
                    return self.finish(source, Some(why)).await;
                }
            };
            if let Some(failed) = self.deliver(source, &records, include).await? {
                // The page's writes were not all acknowledged: keep the cursor where it was.
                return self.finish(source, Some(failed)).await;
            }
            // The page went through: the counters of every step it reached, then its cursor.
            self.flush().await?;
            if commit
                && work.sync == SyncMode::Incremental
                && let Some(cursor) = &page.next_cursor
            {
                self.store
                    .cursor_set(&self.options.tenant, &flow_name, source.as_str(), cursor)
                    .await?;
            }
            if page.done {
                break;
            }
            if self.halted() {
                // The page read ahead is dropped unread downstream: the cursor stays after
                // the last page delivered, where the next run goes on.
                let pages = self.record(source).pages;
                let why = self.halt.as_ref().map_or("", |h| &h.reason);
                let why = format!("stopped after page {pages}: {why}");
                return self.finish(source, Some(why)).await;
            }
        }
        self.finish(source, None).await
    }

    /// Counts a page a source produced and pushes it downstream; why the source must stop, if
    /// a step downstream failed.
    async fn deliver(
        &mut self,
        source: &StepId,
        records: &[Record],
        include: Include<'_>,
    ) -> Result<Option<String>, StoreError> {
        let record = self.record(source);
        record.pages += 1;
        record.records_in += records.len() as u64;
        record.records_out += records.len() as u64;
        self.counted(source);
        self.keep(source, records);
        match self.propagate(source, records, include).await {
            Ok(()) => Ok(None),
            Err(Stop::Step(failed)) => Ok(Some(format!("stopped because step `{failed}` failed"))),
            Err(Stop::Store(e)) => Err(e),
        }
    }
}
