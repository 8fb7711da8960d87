//! HTTP through the host. Every request belongs to a [`Connection`]: the host checks it
//! against the connection's egress policy and attaches the credential.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::connector::weft::plugin::http as wit;
use crate::{Connection, Error, Result};

pub use wit::Method;

/// A request being built; see [`Connection::get`] and friends.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<'c> {
    conn: &'c Connection,
    method: Method,
    url: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl<'c> RequestBuilder<'c> {
    pub(crate) fn new(conn: &'c Connection, method: Method, url: &str) -> Self {
        RequestBuilder {
            conn,
            method,
            url: url.to_owned(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    /// Adds a query parameter, percent-encoded.
    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }

    /// Adds a query parameter when `value` is `Some`.
    pub fn query_opt(self, name: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    /// Adds a header. Host, Authorization, Cookie and Proxy-* headers are refused: the host
    /// owns them.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A JSON body, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self> {
        self.body = Some(serde_json::to_vec(body)?);
        self.headers
            .push(("Content-Type".into(), "application/json".into()));
        Ok(self)
    }

    /// A raw body; set its `Content-Type` with [`header`](Self::header).
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    /// At most the connection's maximum; the host never waits longer than that.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The URL with the query parameters appended.
    pub fn url(&self) -> String {
        let mut url = self.url.clone();
        for (i, (k, v)) in self.query.iter().enumerate() {
            let sep = if i == 0 && !self.url.contains('?') {
                '?'
            } else {
                '&'
            };
            url.push(sep);
            url.push_str(&percent_encode(k));
            url.push('=');
            url.push_str(&percent_encode(v));
        }
        url
    }

    /// Sends the request. Any status is a response; see [`Response::error_for_status`].
    pub fn send(self) -> Result<Response> {
        let request = wit::Request {
            connection: self.conn.name().to_owned(),
            method: self.method,
            url: self.url(),
            headers: self.headers,
            body: self.body,
            timeout_ms: self
                .timeout
                .map(|t| t.as_millis().min(u32::MAX as u128) as u32),
        };
        wit::send(&request)
            .map(|r| Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(map_http_error)
    }

    /// Sends the request, maps error statuses to [`Error`]s and parses the JSON body.
    pub fn send_json<T: DeserializeOwned>(self) -> Result<T> {
        self.send()?.error_for_status()?.json()
    }
}

pub(crate) fn map_http_error(e: wit::HttpError) -> Error {
    match e {
        wit::HttpError::Denied(m) => Error::Denied(m),
        wit::HttpError::Timeout(m) => Error::Timeout(m),
        wit::HttpError::Transport(m) => Error::Unavailable(m),
        wit::HttpError::TooLarge(limit) => Error::Internal(format!(
            "the response exceeded the host's limit of {limit} bytes"
        )),
        wit::HttpError::Auth(m) => Error::Auth(m),
        wit::HttpError::InvalidRequest(m) => Error::Internal(format!("invalid request: {m}")),
    }
}

/// An upstream response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Any status arrives here; [`Response::error_for_status`] turns errors into [`Error`]s.
    pub status: u16,
    /// As received; look one up with [`Response::header`].
    pub headers: Vec<(String, String)>,
    /// At most the host's response size limit; a larger body is an error instead.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The wait a 429 or 503 asks for in `Retry-After` (seconds).
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.header("retry-after")?.trim();
        value
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    }

    /// The response itself when its status is 2xx or 3xx; otherwise the matching error:
    /// 401 is [`Error::Auth`], 429 [`Error::RateLimited`] with `Retry-After`, and every other
    /// status [`Error::Upstream`] with the start of the body.
    pub fn error_for_status(self) -> Result<Self> {
        match self.status {
            200..=399 => Ok(self),
            401 => Err(Error::auth(format!(
                "upstream answered 401: {}",
                crate::error::excerpt(&self.body)
            ))),
            429 => Err(Error::rate_limited(
                self.retry_after(),
                crate::error::excerpt(&self.body),
            )),
            status => Err(Error::upstream(status, &self.body)),
        }
    }

    /// The body parsed as JSON; an [`Error::Upstream`] quoting the body when it is not. `T` may
    /// borrow from the body (`&str`, `&RawValue` members) for as long as the response lives.
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Upstream {
            status: self.status,
            body: format!(
                "unexpected response body ({e}): {}",
                crate::error::excerpt(&self.body)
            ),
        })
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
