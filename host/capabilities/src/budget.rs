//! Rate budgets: how many requests a credential may make per period, shared by every
//! connection in the process that uses the same credential — two flows syncing the same Zoho
//! account draw from one budget, as the vendor counts them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// `requests` per `per`, with bursts up to `requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    /// Requests allowed per period.
    pub requests: u32,
    /// The period.
    pub per: Duration,
}

/// A token bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    budget: RateBudget,
    state: tokio::sync::Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(budget: RateBudget) -> Self {
        Bucket {
            budget,
            state: tokio::sync::Mutex::new((f64::from(budget.requests), Instant::now())),
        }
    }

    fn per_second(&self) -> f64 {
        f64::from(self.budget.requests.max(1)) / self.budget.per.as_secs_f64().max(1e-3)
    }

    /// Waits until the budget allows one more request, and spends it.
    pub(crate) async fn acquire(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(state.1).as_secs_f64() * self.per_second();
                state.0 = (state.0 + refill).min(f64::from(self.budget.requests.max(1)));
                state.1 = now;
                if state.0 >= 1.0 {
                    state.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - state.0) / self.per_second())
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// What identifies a credential: its kind and fields, secrets by reference — and a literal
/// secret by a digest of its value, so two different literal tokens never share a budget.
pub(crate) fn credential_identity(tenant: &str, auth: &crate::AuthSpec) -> String {
    let mut identity = format!("{tenant}\u{1f}{auth:?}");
    for (field, reference) in auth.secret_fields() {
        if let crate::SecretRef::Literal(secret) = reference {
            let digest = ring::digest::digest(&ring::digest::SHA256, secret.expose().as_bytes());
            identity.push_str(field);
            identity.extend(digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")));
        }
    }
    identity
}

/// The bucket for `credential`, shared with every other live connection using it. The first
/// connection to ask sets the budget; later ones share it whatever they ask for.
pub(crate) fn shared(credential: &str, budget: RateBudget) -> Arc<Bucket> {
    static BUCKETS: OnceLock<Mutex<HashMap<String, Weak<Bucket>>>> = OnceLock::new();
    let mut buckets = BUCKETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(bucket) = buckets.get(credential).and_then(Weak::upgrade) {
        return bucket;
    }
    buckets.retain(|_, b| b.strong_count() > 0);
    let bucket = Arc::new(Bucket::new(budget));
    buckets.insert(credential.to_owned(), Arc::downgrade(&bucket));
    bucket
}
