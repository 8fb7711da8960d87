//! Real HTTP delivery of vendor webhooks, with each vendor's retry rule, and a record of every
//! attempt that the admin API exposes (`GET /admin/webhooks`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, rfc3339};
use crate::config::WebhookConfig;
use crate::vendor::Vendor;

const KEPT: usize = 2_000;

pub(crate) type BuildRequest =
    Box<dyn Fn(u32, i64) -> (Vec<(String, String)>, Vec<u8>) + Send + Sync>;

/// What to send; `build` is called per attempt because some vendors sign a timestamp or count
/// attempts inside the body (HubSpot `attemptNumber`).
pub(crate) struct Outgoing {
    pub vendor: Vendor,
    pub event: String,
    pub url: String,
    pub method: http::Method,
    pub max_attempts: u32,
    /// `(attempt starting at 0, now_ms) -> (headers, body)`.
    pub build: BuildRequest,
    /// Whether a response status should be retried (vendors differ: Zendesk 5xx/429 only).
    pub retry_on: fn(u16) -> bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub at: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub response_body: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: u64,
    pub vendor: Vendor,
    pub event: String,
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    pub attempts: Vec<Attempt>,
    /// The body of the first attempt, for inspection.
    pub body: String,
}

pub(crate) struct Outbox {
    client: reqwest::Client,
    config: WebhookConfig,
    next_id: AtomicU64,
    deliveries: Mutex<VecDeque<Delivery>>,
}

impl Outbox {
    pub(crate) fn new(config: WebhookConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .no_proxy()
            .build()
            .expect("an HTTP client with a crypto provider installed by Sandbox::start");
        Self {
            client,
            config,
            next_id: AtomicU64::new(1),
            deliveries: Mutex::new(VecDeque::new()),
        }
    }

    /// The client deliveries use, for vendors that call the receiver synchronously (monday's
    /// challenge on `create_webhook`).
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub(crate) fn default_target(&self) -> Option<&str> {
        self.config.target.as_deref()
    }

    pub(crate) fn attempts(&self, vendor_default: u32) -> u32 {
        self.config.max_attempts.unwrap_or(vendor_default).max(1)
    }

    /// Queues a delivery and returns its id; the attempts run in the background.
    pub(crate) fn send(self: &Arc<Self>, clock: Arc<Clock>, out: Outgoing) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (_, first_body) = (out.build)(0, clock.now_ms());
        let delivery = Delivery {
            id,
            vendor: out.vendor,
            event: out.event.clone(),
            url: out.url.clone(),
            state: "pending",
            attempts: Vec::new(),
            body: String::from_utf8_lossy(&first_body).into_owned(),
        };
        {
            let mut d = self.deliveries.lock().expect("deliveries");
            if d.len() == KEPT {
                d.pop_front();
            }
            d.push_back(delivery);
        }
        let this = Arc::clone(self);
        tokio::spawn(async move { this.run(id, clock, out).await });
        id
    }

    async fn run(&self, id: u64, clock: Arc<Clock>, out: Outgoing) {
        let mut delay = self.config.retry_base_delay;
        for attempt in 0..out.max_attempts {
            let (headers, body) = (out.build)(attempt, clock.now_ms());
            let mut req = self.client.request(out.method.clone(), &out.url).body(body);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            let result = req.send().await;
            let (status, error, response_body) = match result {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    (Some(status), None, text.chars().take(4_096).collect())
                }
                Err(e) => (None, Some(e.to_string()), String::new()),
            };
            let done = status.is_some_and(|s| (200..300).contains(&s));
            let retryable = status.is_none_or(out.retry_on);
            let last = done || !retryable || attempt + 1 == out.max_attempts;
            self.update(id, |d| {
                d.attempts.push(Attempt {
                    at: rfc3339(clock.now_ms()),
                    status,
                    error,
                    response_body,
                });
                if last {
                    d.state = if done { "delivered" } else { "failed" };
                }
            });
            if last {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2).min(Duration::from_secs(3_600));
        }
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Delivery)) {
        let mut d = self.deliveries.lock().expect("deliveries");
        if let Some(entry) = d.iter_mut().find(|d| d.id == id) {
            f(entry);
        }
    }

    pub(crate) fn list(&self, vendor: Option<Vendor>) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .expect("deliveries")
            .iter()
            .filter(|d| vendor.is_none_or(|v| d.vendor == v))
            .cloned()
            .collect()
    }

    pub(crate) fn get(&self, id: u64) -> Option<Delivery> {
        self.deliveries
            .lock()
            .expect("deliveries")
            .iter()
            .find(|d| d.id == id)
            .cloned()
    }

    pub(crate) fn clear(&self, vendor: Option<Vendor>) {
        self.deliveries
            .lock()
            .expect("deliveries")
            .retain(|d| vendor.is_some_and(|v| d.vendor != v));
    }
}

/// Retry on connection failures, 5xx and 429 (Zendesk, HubSpot, Partner Center).
pub(crate) fn retry_server_errors(status: u16) -> bool {
    status >= 500 || status == 429
}

/// Retry on anything but success.
pub(crate) fn retry_any(_status: u16) -> bool {
    true
}
