//! Host-side bindings to the `weft:plugin` contract, generated from `wit/`.

/// The connector world: imports every capability, exports `connector-api`.
pub mod connector {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "weft:plugin/connector",
        imports: { default: async | trappable },
        exports: { default: async },
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

pub use connector::weft::plugin::types::{
    PluginError, RateLimit, StreamDescriptor, SyncMode, UpstreamFailure, WriteMode,
};

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
