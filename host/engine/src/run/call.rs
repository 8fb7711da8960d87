//! One call of a step's plugin: retried while the failure is worth retrying, bounded by the
//! step's timeout.

use std::time::{Duration, SystemTime};

use weft_runtime::CallError;
use weft_runtime::bindings::PluginError;

/// How failing calls are retried: 408, 429, 5xx and transport failures, with exponential
/// backoff and jitter, honouring the wait a rate-limited upstream asks for.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    /// The longest single wait, whatever `Retry-After` says.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(250),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Jitter without a random-number crate: good enough to spread retries apart.
fn jitter(attempt: u32) -> f64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (u64::from(nanos) ^ (u64::from(attempt) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    0.5 + (mixed >> 11) as f64 / (1u64 << 53) as f64
}

/// `call`, again after a wait while it fails in a way worth retrying and attempts remain.
pub(super) async fn with_retry<T, Fut>(
    policy: &RetryPolicy,
    mut call: impl FnMut() -> Fut,
) -> Result<T, CallError>
where
    Fut: Future<Output = Result<T, CallError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e)
                if attempt < policy.attempts
                    && e.plugin_error().is_some_and(PluginError::is_retryable) =>
            {
                let wait = match e.plugin_error() {
                    Some(PluginError::RateLimited(r)) if r.retry_after_ms.is_some() => {
                        Duration::from_millis(r.retry_after_ms.unwrap_or(0))
                    }
                    _ => policy
                        .base
                        .mul_f64(2f64.powi(attempt as i32 - 1) * jitter(attempt)),
                };
                tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                tokio::time::sleep(wait.min(policy.max_wait)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Why a step's call failed.
#[derive(Debug)]
pub(super) enum StepFailure {
    Call(CallError),
    /// The step's timeout ran out.
    TimedOut(Duration),
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepFailure::Call(e) => e.fmt(f),
            StepFailure::TimedOut(limit) => {
                write!(f, "the step's timeout of {} s ran out", limit.as_secs())
            }
        }
    }
}

/// `call` under the step's timeout, if it has one.
pub(super) async fn bounded<T>(
    limit: Option<Duration>,
    call: impl Future<Output = Result<T, CallError>>,
) -> Result<T, StepFailure> {
    match limit {
        None => call.await.map_err(StepFailure::Call),
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result.map_err(StepFailure::Call),
            Err(_) => Err(StepFailure::TimedOut(limit)),
        },
    }
}

/// Upstream answers about one record (it does not exist, it is invalid), as opposed to ones
/// about the connection or the upstream as a whole.
pub(super) fn is_record_level(error: &PluginError) -> bool {
    match error {
        PluginError::InvalidRecord(_) => true,
        PluginError::Upstream(u) => {
            (400..500).contains(&u.status) && ![401, 403, 408, 429].contains(&u.status)
        }
        _ => false,
    }
}
