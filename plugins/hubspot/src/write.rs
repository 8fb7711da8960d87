//! Writes: batch calls of at most 100 inputs, each outcome mapped back to its record, and
//! associations.

use super::read::ApiObject;
use super::*;

/// A 207's failure entry.
#[derive(Deserialize)]
struct BatchError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, Vec<Value>>,
}

impl BatchError {
    fn error(&self) -> Error {
        Error::invalid_record(format!(
            "{}: {}",
            self.category.as_deref().unwrap_or("error"),
            self.message
        ))
    }

    fn context(&self, key: &str) -> Vec<String> {
        self.context
            .get(key)
            .into_iter()
            .flatten()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<ApiObject>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The properties of a record to write: everything but the envelope and HubSpot's own fields.
fn properties_of(t: &ObjectType, record: &Record) -> serde_json::Map<String, Value> {
    record
        .iter()
        .filter(|(k, _)| !ENVELOPE.contains(&k.as_str()) && !t.read_only.contains(&k.as_str()))
        .map(|(k, v)| {
            (
                k.clone(),
                match v {
                    Value::Null | Value::String(_) => v.clone(),
                    other => json!(other.to_string()),
                },
            )
        })
        .collect()
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (text(a), text(b)) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(&y),
        (None, None) => true,
        _ => false,
    }
}

/// Maps a batch answer back to its inputs: `matches(result, input)` says whether a result is
/// that input's, and `names(input)` the values an error's context may name it by.
fn map_batch(
    answer: BatchAnswer,
    count: usize,
    matches: impl Fn(&ApiObject, usize) -> bool,
    names: impl Fn(usize) -> Vec<String>,
    success: impl Fn(&ApiObject) -> WriteOutcome,
) -> Vec<WriteOutcome> {
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; count];
    for result in &answer.results {
        if let Some(i) = (0..count).find(|i| outcomes[*i].is_none() && matches(result, *i)) {
            outcomes[i] = Some(success(result));
        }
    }
    let mut unclaimed = Vec::new();
    for error in &answer.errors {
        let named: Vec<String> = ["id", "objectWriteTraceId", "fromObjectId", "toObjectId"]
            .iter()
            .flat_map(|k| error.context(k))
            .collect();
        match (0..count).find(|i| {
            outcomes[*i].is_none() && names(*i).iter().any(|n| !n.is_empty() && named.contains(n))
        }) {
            Some(i) => outcomes[i] = Some(WriteOutcome::failed(error.error())),
            None => unclaimed.push(error),
        }
    }
    // Failures no context names: in input order, as HubSpot lists them.
    let mut unclaimed = unclaimed.into_iter();
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| match unclaimed.next() {
                Some(e) => WriteOutcome::failed(e.error()),
                None => WriteOutcome::failed(Error::invalid_record(
                    "HubSpot's batch answer does not mention this record",
                )),
            })
        })
        .collect()
}

fn batch_call(
    conn: &Connection,
    t: &ObjectType,
    action: &str,
    inputs: Vec<Value>,
    extra: Option<(&str, Value)>,
) -> Result<BatchAnswer> {
    let mut body = json!({"inputs": inputs});
    if let Some((k, v)) = extra {
        body[k] = v;
    }
    let resp = checked(
        conn.post(&format!(
            "{}/crm/v3/objects/{}/batch/{action}",
            base_url(conn)?,
            t.stream
        ))
        .json(&body)?
        .send()?,
    )?;
    if resp.status == 204 || resp.body.is_empty() {
        return Ok(BatchAnswer {
            results: Vec::new(),
            errors: Vec::new(),
        });
    }
    resp.json()
}

pub(super) fn write_objects(
    conn: &Connection,
    t: &ObjectType,
    req: &WriteRequest,
) -> Result<Vec<WriteOutcome>> {
    let key = match req.key.as_slice() {
        [] => "id",
        [one] => one.as_str(),
        more => {
            return Err(Error::config(format!(
                "HubSpot matches records on one property, not {}",
                more.join(", ")
            )));
        }
    };
    let by_id = key == "id" || key == "hs_object_id";
    if !by_id && t.unique != Some(key) && req.mode != WriteMode::Create {
        return Err(Error::config(format!(
            "HubSpot {} can be matched on `id`{}, not `{key}`",
            t.stream,
            t.unique.map(|u| format!(" or `{u}`")).unwrap_or_default()
        )));
    }
    let key_value = |r: &Record| {
        r.get(if by_id { "id" } else { key })
            .and_then(text)
            .filter(|s| !s.is_empty())
    };
    let mut outcomes = Vec::with_capacity(req.records.len());
    for chunk in req.records.chunks(BATCH_LIMIT) {
        // Records that cannot be sent fail here; the rest go in one call.
        let mut local: Vec<Option<WriteOutcome>> = vec![None; chunk.len()];
        let mut sent: Vec<usize> = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            if req.mode != WriteMode::Create && key_value(r).is_none() {
                local[i] = Some(WriteOutcome::failed(Error::invalid_record(format!(
                    "the record has no `{}`",
                    if by_id { "id" } else { key }
                ))));
            } else {
                sent.push(i);
            }
        }
        if !sent.is_empty() {
            let records: Vec<&Record> = sent.iter().map(|i| &chunk[*i]).collect();
            let results = match req.mode {
                WriteMode::Create => {
                    let inputs = records.iter().enumerate().map(|(n, r)| json!({"properties": properties_of(t, r), "objectWriteTraceId": n.to_string()})).collect();
                    let answer = batch_call(conn, t, "create", inputs, None)?;
                    map_batch(
                        answer,
                        records.len(),
                        |res, i| {
                            properties_of(t, records[i]).iter().all(|(k, v)| {
                                res.properties.get(k).is_some_and(|x| same_value(x, v))
                            })
                        },
                        |i| vec![i.to_string()],
                        |res| WriteOutcome::created(res.id.clone()),
                    )
                }
                WriteMode::Update => {
                    let inputs = records
                        .iter()
                        .map(|r| {
                            let mut props = properties_of(t, r);
                            if by_id {
                                json!({"id": key_value(r), "properties": props})
                            } else {
                                props.insert(key.to_owned(), json!(key_value(r)));
                                json!({"id": key_value(r), "idProperty": key, "properties": props})
                            }
                        })
                        .collect();
                    let answer = batch_call(conn, t, "update", inputs, None)?;
                    map_batch(
                        answer,
                        records.len(),
                        |res, i| {
                            if by_id {
                                Some(res.id.clone()) == key_value(records[i])
                            } else {
                                res.properties.get(key).and_then(text).is_some_and(|v| {
                                    Some(v.to_lowercase())
                                        == key_value(records[i]).map(|k| k.to_lowercase())
                                })
                            }
                        },
                        |i| key_value(records[i]).into_iter().collect(),
                        |res| WriteOutcome::updated(res.id.clone()),
                    )
                }
                WriteMode::Upsert => {
                    if by_id {
                        return Err(Error::config(
                            "HubSpot upserts on a unique property such as `email`, not on `id`; use update for ids",
                        ));
                    }
                    let inputs = records
                        .iter()
                        .map(|r| {
                            let mut props = properties_of(t, r);
                            props.insert(key.to_owned(), json!(key_value(r)));
                            json!({"id": key_value(r), "idProperty": key, "properties": props})
                        })
                        .collect();
                    let answer = batch_call(conn, t, "upsert", inputs, None)?;
                    map_batch(
                        answer,
                        records.len(),
                        |res, i| {
                            res.properties.get(key).and_then(text).is_some_and(|v| {
                                Some(v.to_lowercase())
                                    == key_value(records[i]).map(|k| k.to_lowercase())
                            })
                        },
                        |i| key_value(records[i]).into_iter().collect(),
                        |res| {
                            if res.is_new == Some(true) {
                                WriteOutcome::created(res.id.clone())
                            } else {
                                WriteOutcome::updated(res.id.clone())
                            }
                        },
                    )
                }
                WriteMode::Delete => {
                    if !by_id {
                        return Err(Error::config("HubSpot archives records by `id`"));
                    }
                    let inputs = records
                        .iter()
                        .map(|r| json!({"id": key_value(r)}))
                        .collect();
                    batch_call(conn, t, "archive", inputs, None)?;
                    records
                        .iter()
                        .map(|r| WriteOutcome::deleted(key_value(r).unwrap_or_default()))
                        .collect()
                }
            };
            for (i, outcome) in sent.into_iter().zip(results) {
                local[i] = Some(outcome);
            }
        }
        outcomes.extend(local.into_iter().map(|o| {
            o.unwrap_or_else(|| WriteOutcome::failed(Error::internal("record was not sent")))
        }));
    }
    Ok(outcomes)
}

#[derive(Deserialize)]
struct AssociationResult {
    #[serde(rename = "fromObjectId", alias = "from")]
    from: Value,
    #[serde(rename = "toObjectId", alias = "to")]
    to: Value,
}

#[derive(Deserialize)]
struct AssociationAnswer {
    #[serde(default)]
    results: Vec<AssociationResult>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

pub(super) fn id_text(v: &Value) -> String {
    match v {
        Value::Object(o) => o.get("id").map(id_text).unwrap_or_default(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn write_associations(
    conn: &Connection,
    a: &Association,
    req: &WriteRequest,
) -> Result<Vec<WriteOutcome>> {
    let pair = |r: &Record| {
        Some((
            r.get(a.from_field).and_then(text)?,
            r.get(a.to_field).and_then(text)?,
        ))
    };
    let action = match req.mode {
        WriteMode::Create | WriteMode::Upsert => "associate/default",
        WriteMode::Delete => "archive",
        WriteMode::Update => {
            return Err(Error::config(
                "an association has nothing to update; write it with create or delete it",
            ));
        }
    };
    let mut outcomes = Vec::with_capacity(req.records.len());
    for chunk in req.records.chunks(BATCH_LIMIT) {
        let pairs: Vec<Option<(String, String)>> = chunk.iter().map(pair).collect();
        let inputs: Vec<Value> = pairs
            .iter()
            .flatten()
            .map(|(c, co)| json!({"from": {"id": c}, "to": {"id": co}}))
            .collect();
        let answer = if inputs.is_empty() {
            AssociationAnswer {
                results: Vec::new(),
                errors: Vec::new(),
            }
        } else {
            let resp = checked(
                conn.post(&format!(
                    "{}/crm/v4/associations/{}/{}/batch/{action}",
                    base_url(conn)?,
                    a.from,
                    a.to
                ))
                .json(&json!({"inputs": inputs}))?
                .send()?,
            )?;
            if resp.body.is_empty() {
                AssociationAnswer {
                    results: Vec::new(),
                    errors: Vec::new(),
                }
            } else {
                resp.json()?
            }
        };
        let done: BTreeSet<(String, String)> = answer
            .results
            .iter()
            .map(|r| (id_text(&r.from), id_text(&r.to)))
            .collect();
        for p in &pairs {
            let outcome = match p {
                None => WriteOutcome::failed(Error::invalid_record(format!(
                    "an association record needs `{}` and `{}`",
                    a.from_field, a.to_field
                ))),
                Some((c, co)) => {
                    let failed = answer.errors.iter().find(|e| {
                        e.context("fromObjectId").contains(c)
                            || e.context("toObjectId").contains(co)
                    });
                    match failed {
                        Some(e) => WriteOutcome::failed(e.error()),
                        None if action == "archive" => WriteOutcome::deleted(format!("{c}-{co}")),
                        None if done.contains(&(c.clone(), co.clone())) => {
                            WriteOutcome::created(format!("{c}-{co}"))
                        }
                        None => WriteOutcome::failed(Error::invalid_record(
                            "HubSpot's answer does not mention this association",
                        )),
                    }
                }
            };
            outcomes.push(outcome);
        }
    }
    Ok(outcomes)
}
