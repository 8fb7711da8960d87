use std::fmt;
use std::time::Duration;

/// What can go wrong in a plugin call, as the host sees it.
///
/// The variant decides what the host does: it retries [`Error::RateLimited`],
/// [`Error::Unavailable`], [`Error::Timeout`] and 5xx [`Error::Upstream`] errors, reports
/// [`Error::InvalidRecord`] in the run's error log and carries on with the batch, and fails the
/// step on the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The connection or step configuration is wrong; retrying will not help.
    Config(String),
    /// The upstream refused the credential.
    Auth(String),
    /// The upstream asked to slow down, possibly saying for how long.
    RateLimited {
        /// How long the upstream asked to wait, when it said; the host waits that long before
        /// retrying.
        retry_after: Option<Duration>,
        /// The upstream's explanation.
        message: String,
    },
    /// The upstream answered with an error status.
    Upstream {
        /// The HTTP status; the host retries 408 and 5xx.
        status: u16,
        /// The start of the body, enough to see the vendor's error code.
        body: String,
    },
    /// The upstream could not be reached (connection refused or reset, DNS, TLS).
    Unavailable(String),
    /// One record could not be processed; the rest of the batch can be.
    InvalidRecord(String),
    /// The host refused an outbound request under the connection's egress policy.
    Denied(String),
    /// An outbound request ran out of time.
    Timeout(String),
    /// A bug or an unexpected state in the plugin.
    Internal(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest upstream body excerpt kept in an error: enough to see the vendor's error code.
pub(crate) const BODY_EXCERPT: usize = 512;

impl Error {
    /// The connection or step config is wrong: say which field and what it should be.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }
    /// The upstream refused the credential; an operator has to fix the connection.
    pub fn auth(message: impl Into<String>) -> Self {
        Error::Auth(message.into())
    }
    /// Only this record is bad: the host logs it and carries on with the batch.
    pub fn invalid_record(message: impl Into<String>) -> Self {
        Error::InvalidRecord(message.into())
    }
    /// A bug or an unexpected state in the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }
    /// The upstream asked to slow down; pass its wait when it gave one.
    pub fn rate_limited(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        Error::RateLimited {
            retry_after,
            message: message.into(),
        }
    }
    /// An upstream error status with the start of its body.
    pub fn upstream(status: u16, body: &[u8]) -> Self {
        Error::Upstream {
            status,
            body: excerpt(body),
        }
    }

    /// Whether the host may retry the call that failed with this error.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Unavailable(_) | Error::Timeout(_) => true,
            Error::Upstream { status, .. } => *status == 408 || *status >= 500,
            _ => false,
        }
    }
}

/// The start of a body as text, cut on a character boundary.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT * 4)]);
    match text.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "configuration error: {m}"),
            Error::Auth(m) => write!(f, "authentication failed: {m}"),
            Error::RateLimited {
                retry_after: Some(d),
                message,
            } => {
                write!(
                    f,
                    "rate limited (retry after {} ms): {message}",
                    d.as_millis()
                )
            }
            Error::RateLimited {
                retry_after: None,
                message,
            } => write!(f, "rate limited: {message}"),
            Error::Upstream { status, body } => write!(f, "upstream answered {status}: {body}"),
            Error::Unavailable(m) => write!(f, "upstream unavailable: {m}"),
            Error::InvalidRecord(m) => write!(f, "invalid record: {m}"),
            Error::Denied(m) => write!(f, "request denied by egress policy: {m}"),
            Error::Timeout(m) => write!(f, "timed out: {m}"),
            Error::Internal(m) => write!(f, "internal plugin error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("JSON: {e}"))
    }
}

/// Conversions to and from the contract's error, once per generated world.
macro_rules! wit_conversions {
    ($world:ident) => {
        mod $world {
            use super::super::Error;
            use crate::bindings::$world::weft::plugin::types::{
                PluginError, RateLimit, UpstreamFailure,
            };
            use std::time::Duration;

            impl From<Error> for PluginError {
                fn from(e: Error) -> Self {
                    match e {
                        Error::Config(m) => PluginError::Config(m),
                        Error::Auth(m) => PluginError::Auth(m),
                        Error::RateLimited {
                            retry_after,
                            message,
                        } => PluginError::RateLimited(RateLimit {
                            retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
                            message,
                        }),
                        Error::Upstream { status, body } => {
                            PluginError::Upstream(UpstreamFailure {
                                status,
                                body_excerpt: body,
                            })
                        }
                        Error::Unavailable(m) => PluginError::Unavailable(m),
                        Error::InvalidRecord(m) => PluginError::InvalidRecord(m),
                        Error::Denied(m) => PluginError::Denied(m),
                        Error::Timeout(m) => PluginError::Timeout(m),
                        Error::Internal(m) => PluginError::Internal(m),
                    }
                }
            }

            impl From<PluginError> for Error {
                fn from(e: PluginError) -> Self {
                    match e {
                        PluginError::Config(m) => Error::Config(m),
                        PluginError::Auth(m) => Error::Auth(m),
                        PluginError::RateLimited(r) => Error::RateLimited {
                            retry_after: r.retry_after_ms.map(Duration::from_millis),
                            message: r.message,
                        },
                        PluginError::Upstream(u) => Error::Upstream {
                            status: u.status,
                            body: u.body_excerpt,
                        },
                        PluginError::Unavailable(m) => Error::Unavailable(m),
                        PluginError::InvalidRecord(m) => Error::InvalidRecord(m),
                        PluginError::Denied(m) => Error::Denied(m),
                        PluginError::Timeout(m) => Error::Timeout(m),
                        PluginError::Internal(m) => Error::Internal(m),
                    }
                }
            }
        }
    };
}

mod wit_conversions {
    wit_conversions!(connector);
    wit_conversions!(transform);
}
