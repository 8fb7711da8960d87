//! Host-side bindings to the `weft:plugin` contract, generated from `wit/`.

/// The connector world: imports every capability, exports `connector-api`.
///
/// `state` and `webhook-keys` calls fail with an [`ImportError`]: what the plugin can act on
/// goes back to it as the contract's error value, a host fault traps the call.
pub mod connector {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "weft:plugin/connector",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: {
            "weft:plugin/state.state-error" => crate::bindings::StateFailure,
            "weft:plugin/webhook-keys.mac-error" => crate::bindings::MacFailure,
        },
    });
}

/// The transform world: imports only `log`, exports `transform-api`. Shares the connector
/// world's types and log interface so one host implementation serves both.
pub mod transform {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "weft:plugin/transform",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "weft:plugin/types": super::connector::weft::plugin::types,
            "weft:plugin/log": super::connector::weft::plugin::log,
        },
    });
}

pub use connector::weft::plugin::state::StateError;
pub use connector::weft::plugin::types::{
    PluginError, RateLimit, StreamDescriptor, SyncMode, UpstreamFailure, WriteMode,
};
pub use connector::weft::plugin::webhook_keys::MacError;

/// How a host import fails: either something the plugin asked for that the host refuses,
/// which goes back to the plugin as the contract's error value `E`, or a failure of the host
/// itself, which the plugin can do nothing about and must not be able to swallow.
#[derive(Debug)]
pub enum ImportError<E> {
    /// Returned to the plugin as the contract's error value.
    Refused(E),
    /// Traps the call; it fails with [`CallError::HostFault`](crate::CallError::HostFault).
    Fault(HostFault),
}

/// What a `state` call fails with on the host side.
pub type StateFailure = ImportError<StateError>;
/// What a `webhook-keys` call fails with on the host side.
pub type MacFailure = ImportError<MacError>;

impl<E> ImportError<E> {
    /// The contract's error value for the plugin, or the trap that stops its call.
    pub(crate) fn into_guest(self) -> wasmtime::Result<E> {
        match self {
            ImportError::Refused(e) => Ok(e),
            ImportError::Fault(fault) => Err(wasmtime::Error::new(fault)),
        }
    }
}

/// A failure of the host while it served a plugin's import: the state database failed or did
/// not answer in time, or the host is inconsistent. It traps the guest, and the runtime reports
/// the call as [`CallError::HostFault`](crate::CallError::HostFault) with this text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the host failed while serving the plugin's `{import}` call: {cause}")]
pub struct HostFault {
    /// The import, as `interface.function`, e.g. `state.set`.
    pub import: &'static str,
    /// What failed, e.g. the store's error with the query it was running.
    pub cause: String,
}

impl HostFault {
    pub(crate) fn new(import: &'static str, cause: impl std::fmt::Display) -> Self {
        HostFault {
            import,
            cause: cause.to_string(),
        }
    }
}

impl PluginError {
    /// The error as a sentence for people (bindgen's `Display` is its `Debug`).
    pub fn message(&self) -> String {
        let f = &mut String::new();
        use std::fmt::Write;
        let _ = match self {
            PluginError::Config(m) => write!(f, "configuration error: {m}"),
            PluginError::Auth(m) => write!(f, "authentication failed: {m}"),
            PluginError::RateLimited(r) => match r.retry_after_ms {
                Some(ms) => write!(f, "rate limited, retry after {ms} ms: {}", r.message),
                None => write!(f, "rate limited: {}", r.message),
            },
            PluginError::Upstream(u) => {
                write!(f, "upstream answered {}: {}", u.status, u.body_excerpt)
            }
            PluginError::Unavailable(m) => write!(f, "upstream unavailable: {m}"),
            PluginError::InvalidRecord(m) => write!(f, "invalid record: {m}"),
            PluginError::Denied(m) => write!(f, "denied by egress policy: {m}"),
            PluginError::Timeout(m) => write!(f, "timed out: {m}"),
            PluginError::Internal(m) => write!(f, "internal plugin error: {m}"),
        };
        f.clone()
    }

    /// The same error with its text cleaned by `clean` (the runtime passes every plugin
    /// error through a [`Redactor`](weft_capabilities::Redactor) before anything sees it).
    pub fn map_text(self, clean: impl Fn(&str) -> String) -> PluginError {
        match self {
            PluginError::Config(m) => PluginError::Config(clean(&m)),
            PluginError::Auth(m) => PluginError::Auth(clean(&m)),
            PluginError::RateLimited(r) => PluginError::RateLimited(RateLimit {
                message: clean(&r.message),
                ..r
            }),
            PluginError::Upstream(u) => PluginError::Upstream(UpstreamFailure {
                body_excerpt: clean(&u.body_excerpt),
                ..u
            }),
            PluginError::Unavailable(m) => PluginError::Unavailable(clean(&m)),
            PluginError::InvalidRecord(m) => PluginError::InvalidRecord(clean(&m)),
            PluginError::Denied(m) => PluginError::Denied(clean(&m)),
            PluginError::Timeout(m) => PluginError::Timeout(clean(&m)),
            PluginError::Internal(m) => PluginError::Internal(clean(&m)),
        }
    }

    /// Whether the host may retry the call that failed with this error.
    pub fn is_retryable(&self) -> bool {
        match self {
            PluginError::RateLimited(_) | PluginError::Unavailable(_) | PluginError::Timeout(_) => {
                true
            }
            PluginError::Upstream(u) => u.status == 408 || u.status >= 500,
            _ => false,
        }
    }
}
