//! Writes as one OData `$batch` (multipart/mixed): each record is its own request outside any
//! changeset, so Dataverse runs them independently and answers one part per request, in order.

use weft_sdk::{Connection, Error, Record, Result, Value, WriteMode, WriteOutcome};

use crate::{Config, Table, failure, headers, id_in};

/// One inner request, or the reason the record cannot become one.
enum Op {
    Request {
        method: &'static str,
        url: String,
        headers: Vec<(&'static str, &'static str)>,
        body: Option<String>,
    },
    Refused(Error),
}

/// An inner response: status, headers (lower-case names) and body.
pub(crate) struct Part {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Part {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `(accountid)` → `(<guid>)`, alternate keys → `(accountnumber='A-1',other=2)`.
fn key_segment(t: &Table, key: &[String], record: &Record) -> Result<String> {
    let value = |k: &str| -> Result<&Value> {
        record.get(k).filter(|v| !v.is_null()).ok_or_else(|| {
            Error::invalid_record(format!("the record has no value for its key field `{k}`"))
        })
    };
    if key.len() == 1 && key[0] == t.key {
        let id = value(t.key)?
            .as_str()
            .ok_or_else(|| Error::invalid_record(format!("`{}` must be a GUID string", t.key)))?;
        return Ok(format!("({})", weft_sdk::http::percent_encode(id)));
    }
    let parts = key
        .iter()
        .map(|k| {
            Ok(match value(k)? {
                Value::String(s) => format!(
                    "{k}='{}'",
                    weft_sdk::http::percent_encode(&s.replace('\'', "''"))
                ),
                Value::Number(n) => format!("{k}={n}"),
                Value::Bool(b) => format!("{k}={b}"),
                other => {
                    return Err(Error::invalid_record(format!(
                        "key field `{k}` holds {other}, not a string or number"
                    )));
                }
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("({})", parts.join(",")))
}

/// The body Dataverse takes: annotations of reads and the synthetic `deleted` dropped; lookups
/// written with `@odata.bind` kept.
fn body_of(t: &Table, record: &Record, drop_id: bool) -> String {
    let mut body = record.clone();
    body.retain(|k, _| {
        (!k.contains('@') || k.ends_with("@odata.bind"))
            && k != "deleted"
            && !(drop_id && k == t.key)
    });
    Value::Object(body).to_string()
}

fn op(config: &Config, t: &Table, mode: WriteMode, key: &[String], record: &Record) -> Op {
    let set_url = format!("{}/{}", config.root(), t.set);
    let row_url =
        |record: &Record| key_segment(t, key, record).map(|seg| format!("{set_url}{seg}"));
    let result = match mode {
        WriteMode::Create => Ok(Op::Request {
            method: "POST",
            url: set_url.clone(),
            headers: vec![],
            body: Some(body_of(t, record, false)),
        }),
        WriteMode::Update => row_url(record).map(|url| Op::Request {
            method: "PATCH",
            url,
            headers: vec![("If-Match", "*")],
            body: Some(body_of(t, record, true)),
        }),
        WriteMode::Upsert => row_url(record).map(|url| Op::Request {
            method: "PATCH",
            url,
            headers: vec![("Prefer", "return=representation")],
            body: Some(body_of(t, record, true)),
        }),
        WriteMode::Delete => row_url(record).map(|url| Op::Request {
            method: "DELETE",
            url,
            headers: vec![],
            body: None,
        }),
    };
    result.unwrap_or_else(Op::Refused)
}

pub(crate) fn write(
    conn: &Connection,
    config: &Config,
    t: &Table,
    mode: WriteMode,
    key: &[String],
    records: &[Record],
) -> Result<Vec<WriteOutcome>> {
    let ops: Vec<Op> = records
        .iter()
        .map(|r| op(config, t, mode, key, r))
        .collect();
    let boundary = format!("batch_weft_{:016x}", records.len() as u64 ^ 0x5eed_d365);
    let mut body = String::new();
    let mut sent = 0;
    for (n, op) in ops.iter().enumerate() {
        let Op::Request {
            method,
            url,
            headers,
            body: content,
        } = op
        else {
            continue;
        };
        sent += 1;
        body.push_str(&format!("--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n", n + 1));
        body.push_str(&format!(
            "{method} {url} HTTP/1.1\r\nAccept: application/json\r\n"
        ));
        for (k, v) in headers {
            body.push_str(&format!("{k}: {v}\r\n"));
        }
        match content {
            Some(json) => body.push_str(&format!(
                "Content-Type: application/json; type=entry\r\n\r\n{json}\r\n"
            )),
            None => body.push_str("\r\n"),
        }
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let mut parts = if sent == 0 {
        Vec::new().into_iter()
    } else {
        let resp = headers(conn.post(&format!("{}/$batch", config.root())))
            .header(
                "Content-Type",
                &format!("multipart/mixed; boundary={boundary}"),
            )
            .header("Prefer", "odata.continue-on-error")
            .body(body.into_bytes())
            .send()?;
        if !resp.is_success() {
            return Err(match resp.status {
                401 | 429 => failure(resp.status, &resp.body, resp.retry_after()),
                status => Error::upstream(status, &resp.body),
            });
        }
        let content_type = resp.header("content-type").unwrap_or("").to_owned();
        let parts = parse(&content_type, &resp.text())?;
        if parts.len() != sent {
            return Err(Error::upstream(
                resp.status,
                format!("$batch answered {} parts for {sent} requests", parts.len()).as_bytes(),
            ));
        }
        parts.into_iter()
    };
    Ok(ops
        .into_iter()
        .zip(records)
        .map(|(op, record)| match op {
            Op::Refused(e) => WriteOutcome::failed(e),
            Op::Request { .. } => outcome(
                t,
                mode,
                key,
                record,
                parts.next().expect("one part per request"),
            ),
        })
        .collect())
}

fn outcome(
    t: &Table,
    mode: WriteMode,
    key: &[String],
    record: &Record,
    part: Part,
) -> WriteOutcome {
    let id_from_body = || {
        weft_sdk::serde_json::from_str::<Value>(&part.body)
            .ok()
            .and_then(|v| v.get(t.key).and_then(Value::as_str).map(str::to_owned))
    };
    let id = || {
        part.header("OData-EntityId")
            .and_then(id_in)
            .or_else(id_from_body)
            .or_else(|| {
                (key.len() == 1 && key[0] == t.key)
                    .then(|| record.get(t.key).and_then(Value::as_str).map(str::to_owned))
                    .flatten()
            })
    };
    match (mode, part.status) {
        (WriteMode::Delete, 204 | 200 | 404) => {
            let id = record
                .get(t.key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| key_text(key, record));
            WriteOutcome::deleted(id)
        }
        (_, 200..=299) => match id() {
            Some(id) => match (mode, part.status) {
                (WriteMode::Create, _) | (WriteMode::Upsert, 201) => WriteOutcome::created(id),
                _ => WriteOutcome::updated(id),
            },
            None => WriteOutcome::failed(Error::internal(format!(
                "Dataverse answered {} without the row's id",
                part.status
            ))),
        },
        (WriteMode::Update, 404) => WriteOutcome::failed(Error::invalid_record(format!(
            "no {} row has key {}; update does not create rows (use upsert)",
            t.logical,
            key_text(key, record)
        ))),
        (_, status) => {
            let retry = part
                .header("retry-after")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(std::time::Duration::from_secs);
            WriteOutcome::failed(failure(status, part.body.as_bytes(), retry))
        }
    }
}

fn key_text(key: &[String], record: &Record) -> String {
    key.iter()
        .map(|k| format!("{k}={}", record.get(k).unwrap_or(&Value::Null)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The inner responses of a `multipart/mixed` `$batch` answer, in order. A changeset part
/// (not sent by this connector) would be flattened into its responses.
pub(crate) fn parse(content_type: &str, body: &str) -> Result<Vec<Part>> {
    let boundary = boundary(content_type).ok_or_else(|| {
        Error::upstream(
            200,
            format!("$batch answered `{content_type}`, not multipart/mixed with a boundary")
                .as_bytes(),
        )
    })?;
    let mut out = Vec::new();
    for raw in split(body, &boundary) {
        let (part_headers, rest) = split_head(raw);
        let ct = part_headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if ct.starts_with("multipart/mixed") {
            out.extend(parse(ct, rest)?);
            continue;
        }
        let rest = rest.trim_start();
        let (status_line, message) = rest.split_once('\n').unwrap_or((rest, ""));
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| {
                Error::upstream(
                    200,
                    format!("a $batch part has no status line: {status_line}").as_bytes(),
                )
            })?;
        let (headers, body) = split_head(message);
        out.push(Part {
            status,
            headers,
            body: body.trim_end_matches(['\r', '\n']).to_owned(),
        });
    }
    Ok(out)
}

fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        p.trim()
            .strip_prefix("boundary=")
            .map(|b| b.trim_matches('"').to_owned())
    })
}

fn split<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    body.split(delimiter.as_str())
        .skip(1)
        .take_while(|p| !p.starts_with("--"))
        .map(|p| p.trim_start_matches("\r\n").trim_start_matches('\n'))
        .collect()
}

/// `(headers with lower-case names, rest)` of a MIME part or an HTTP message.
fn split_head(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((text, ""));
    let headers = head
        .lines()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    (headers, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_batch_answer_in_order() {
        let body = "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\nOData-EntityId: http://x/api/data/v9.2/accounts(abc)\r\n\r\n--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x1\",\"message\":\"bad\"}}\r\n--batchresponse_1--\r\n";
        let parts = parse("multipart/mixed; boundary=batchresponse_1", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].status, 204);
        assert_eq!(
            parts[0].header("odata-entityid"),
            Some("http://x/api/data/v9.2/accounts(abc)")
        );
        assert_eq!(parts[1].status, 400);
        assert!(parts[1].body.ends_with("}}"));
    }
}
