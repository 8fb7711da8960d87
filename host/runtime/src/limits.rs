use std::time::Duration;

/// The bounds every guest call runs under. All of them are configurable; the defaults suit a
/// connector moving batches of a few thousand records.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest linear memory one plugin instance may grow to.
    pub memory_bytes: usize,
    /// CPU time a single call may spend executing guest code, measured in epoch ticks.
    pub cpu_time: Duration,
    /// Wall-clock time a single call may take, host calls (HTTP) included.
    pub wall_time: Duration,
    /// Longest time one host import (an HTTP request, a state write) may take before the guest
    /// gets a timeout error.
    pub host_call_time: Duration,
    /// Largest batch, page or event list a plugin may hand back, in bytes of JSON.
    pub output_bytes: usize,
    /// Plugin instances alive at once across the process (the pooling allocator's slots).
    pub instances: u32,
    /// Calls one tenant may have running at once; more wait their turn, so one tenant's burst
    /// cannot take every instance slot from the others.
    pub calls_per_tenant: u32,
    /// How often the epoch advances; the granularity of `cpu_time`.
    pub epoch_tick: Duration,
    /// Log lines and bytes one call may emit; the rest are dropped and counted.
    pub log: weft_capabilities::log::LogBudget,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            cpu_time: Duration::from_secs(10),
            wall_time: Duration::from_secs(300),
            host_call_time: Duration::from_secs(120),
            output_bytes: 64 << 20,
            instances: 64,
            calls_per_tenant: 16,
            epoch_tick: Duration::from_millis(10),
            log: weft_capabilities::log::LogBudget::default(),
        }
    }
}

impl Limits {
    /// `cpu_time` in epoch ticks, at least one.
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        (self.cpu_time.as_nanos() / tick).max(1) as u64
    }
}
