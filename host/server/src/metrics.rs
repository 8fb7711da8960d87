//! What the server counts, for a Prometheus scrape (OpenMetrics text): runs ended by tenant and
//! status, what they used by tenant, webhook deliveries by tenant and outcome, and the runs
//! under way and waiting. Counted in this process since it started, as Prometheus expects;
//! several processes sharing a store are scraped each.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use weft_store::{RunStatus, RunUsage};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    tenant: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    tenant: String,
    outcome: String,
}

/// How a webhook delivery was answered.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    /// Verified, its events kept.
    Accepted,
    /// The vendor's handshake, answered.
    Handshake,
    /// Refused by the connector (a bad signature, say).
    Rejected,
    /// Not kept: the store or the connector failed, the sender delivers again.
    Failed,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Accepted => "accepted",
            Delivery::Handshake => "handshake",
            Delivery::Rejected => "rejected",
            Delivery::Failed => "failed",
        }
    }
}

/// The server's counters, shared with whoever serves them (the API's `/api/v1/metrics`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    records_read: Family<TenantLabel, Counter>,
    records_written: Family<TenantLabel, Counter>,
    records_failed: Family<TenantLabel, Counter>,
    requests: Family<TenantLabel, Counter>,
    bytes_in: Family<TenantLabel, Counter>,
    bytes_out: Family<TenantLabel, Counter>,
    cpu_ms: Family<TenantLabel, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    running: Gauge,
    waiting: Gauge,
    flows: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("weft"),
            runs: Family::default(),
            records_read: Family::default(),
            records_written: Family::default(),
            records_failed: Family::default(),
            requests: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            cpu_ms: Family::default(),
            deliveries: Family::default(),
            running: Gauge::default(),
            waiting: Gauge::default(),
            flows: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register("runs", "Runs ended, by tenant and status", m.runs.clone());
        let per_tenant = [
            (
                "records_read",
                "Records read by read steps",
                &m.records_read,
            ),
            (
                "records_written",
                "Records written by write steps",
                &m.records_written,
            ),
            (
                "records_failed",
                "Records sent to error logs",
                &m.records_failed,
            ),
            (
                "requests",
                "Requests connections sent for plugins",
                &m.requests,
            ),
            (
                "response_bytes",
                "Response bodies received, in bytes",
                &m.bytes_in,
            ),
            (
                "request_bytes",
                "Request bodies sent, in bytes",
                &m.bytes_out,
            ),
            (
                "plugin_cpu_ms",
                "Plugin CPU time in milliseconds, in epoch ticks",
                &m.cpu_ms,
            ),
        ];
        for (name, help, family) in per_tenant {
            r.register(name, help, family.clone());
        }
        r.register(
            "webhook_deliveries",
            "Webhook deliveries, by tenant and how they were answered",
            m.deliveries.clone(),
        );
        r.register("runs_running", "Runs under way", m.running.clone());
        r.register(
            "runs_waiting",
            "Due runs waiting for a worker",
            m.waiting.clone(),
        );
        r.register("flows_served", "Flows served", m.flows.clone());
        m
    }
}

impl Metrics {
    /// A run of `tenant` ended so, having used `usage`.
    pub fn run_ended(&self, tenant: &str, status: RunStatus, usage: &RunUsage) {
        let labels = RunLabels {
            tenant: tenant.to_owned(),
            status: status.as_str().to_owned(),
        };
        self.runs.get_or_create(&labels).inc();
        let tenant = TenantLabel {
            tenant: tenant.to_owned(),
        };
        for (family, value) in [
            (&self.records_read, usage.records_read),
            (&self.records_written, usage.records_written),
            (&self.records_failed, usage.records_failed),
            (&self.requests, usage.requests),
            (&self.bytes_in, usage.bytes_in),
            (&self.bytes_out, usage.bytes_out),
            (&self.cpu_ms, usage.cpu_ms),
        ] {
            family.get_or_create(&tenant).inc_by(value);
        }
    }

    /// A webhook delivery for a flow of `tenant` was answered so.
    pub fn delivery(&self, tenant: &str, outcome: Delivery) {
        let labels = DeliveryLabels {
            tenant: tenant.to_owned(),
            outcome: outcome.as_str().to_owned(),
        };
        self.deliveries.get_or_create(&labels).inc();
    }

    /// How many runs are under way and waiting, and flows served, now.
    pub(crate) fn load(&self, running: usize, waiting: usize, flows: usize) {
        self.running.set(running as i64);
        self.waiting.set(waiting as i64);
        self.flows.set(flows as i64);
    }

    /// Everything, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
