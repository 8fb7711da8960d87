//! For-each steps: one read per input record, with the step's options filled in from the
//! record, `concurrency` reads in flight; what they return goes downstream in input order. A
//! record whose read the upstream refuses (a 4xx, an invalid record) goes to the error log; any
//! other failure fails the step.

use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use weft_runtime::ReadRequest;
use weft_runtime::bindings;

use super::call::{StepFailure, bounded, is_record_level, with_retry};
use super::records::{self, Record};
use super::{Execution, Include, Stop};
use crate::plan::{ForEachWork, PlannedStep};

/// Why one read of a for-each step produced nothing.
enum ForEachFailure {
    /// The record cannot fill the step's options.
    Record(String),
    Read(StepFailure),
    /// The connector misbehaved; the step stops.
    Step(String),
}

impl From<String> for ForEachFailure {
    fn from(reason: String) -> Self {
        ForEachFailure::Record(reason)
    }
}

/// The field at a dotted `path` of `record`.
fn field<'v>(record: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(record, |v, part| match v {
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => v.get(part),
    })
}

/// `template` with `${record.FIELD}` filled from `record`: a string that is only a reference
/// takes the field's value and type; a reference inside text is replaced by the value's text.
fn fill_record(template: &Value, record: &Value) -> Result<Value, String> {
    let lookup = |path: &str| {
        field(record, path)
            .filter(|v| !v.is_null())
            .cloned()
            .ok_or_else(|| format!("the record has no field `{path}` for `${{record.{path}}}`"))
    };
    Ok(match template {
        Value::String(s) => {
            if let Some(path) = s
                .strip_prefix("${record.")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|p| !p.contains('}'))
            {
                return lookup(path);
            }
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${record.") {
                let Some(end) = rest[start..].find('}') else {
                    break;
                };
                out.push_str(&rest[..start]);
                match lookup(&rest[start + 9..start + end])? {
                    Value::String(text) => out.push_str(&text),
                    other => out.push_str(&other.to_string()),
                }
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill_record(v, record))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill_record(v, record)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

impl Execution<'_> {
    pub(super) async fn for_each(
        &mut self,
        step: &PlannedStep,
        work: &ForEachWork,
        records: &[Record],
        include: Include<'_>,
    ) -> Result<(), Stop> {
        let id = &step.id;
        let connector = &work.connector;
        let context = self.context_for(id);
        self.took_in(id, records.len());
        let retry = &self.options.retry;
        let reads = records.iter().map(|input| {
            let context = &context;
            async move {
                let input: Value = serde_json::from_str(input.get())
                    .map_err(|e| ForEachFailure::Record(format!("the record is not JSON: {e}")))?;
                let options = fill_record(&work.options, &input)?.to_string();
                let mut found = Vec::new();
                let mut cursor = None;
                loop {
                    let request = ReadRequest {
                        stream: work.stream.clone(),
                        mode: bindings::SyncMode::Full,
                        cursor: cursor.clone(),
                        page_size: work.page_size,
                        options: options.clone(),
                    };
                    let page = bounded(
                        step.timeout,
                        with_retry(retry, || {
                            connector.plugin.read(
                                context,
                                &connector.connection,
                                &connector.config,
                                request.clone(),
                            )
                        }),
                    )
                    .await
                    .map_err(ForEachFailure::Read)?;
                    let batch = records::split(&page.records).map_err(|e| {
                        ForEachFailure::Step(format!(
                            "the connector returned records that are not a JSON array: {e}"
                        ))
                    })?;
                    found.extend(batch);
                    if page.done || page.next_cursor.is_none() {
                        return Ok((input, found));
                    }
                    cursor = page.next_cursor;
                }
            }
        });
        let results: Vec<Result<(Value, Vec<Record>), ForEachFailure>> = stream::iter(reads)
            .buffered(work.concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::new();
        for (input, result) in records.iter().zip(results) {
            match result {
                Ok((parent, found)) => match &work.parent_field {
                    None => out.extend(found),
                    Some(name) => out.extend(found.iter().map(|r| {
                        records::with_field(r, name, &parent).unwrap_or_else(|| r.clone())
                    })),
                },
                Err(ForEachFailure::Record(reason)) => {
                    self.log_error(id, Some(input.get()), &reason).await?;
                }
                Err(ForEachFailure::Read(StepFailure::Call(e)))
                    if e.plugin_error().is_some_and(is_record_level) =>
                {
                    self.log_error(id, Some(input.get()), &e.to_string())
                        .await?;
                }
                Err(ForEachFailure::Read(e)) => return Err(self.fail(id, e.to_string()).await),
                Err(ForEachFailure::Step(reason)) => return Err(self.fail(id, reason).await),
            }
        }
        self.record(id).records_out += out.len() as u64;
        self.counted(id);
        self.keep(id, &out);
        self.propagate(id, &out, include).await
    }
}
