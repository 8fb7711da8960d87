//! What a run used, counted as it goes: the CPU its plugins spent, the requests its
//! connections made and their bytes, the most memory a plugin instance held. Shared by a run's
//! plugin calls and connections, read once at its end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters one run's calls and connections add to.
#[derive(Debug, Default)]
pub struct Usage {
    cpu_micros: AtomicU64,
    requests: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
    peak_memory: AtomicU64,
}

/// What [`Usage`] counted, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    /// Time plugins spent running guest code, counted in the runtime's epoch ticks (10 ms by
    /// default): a call shorter than a tick may count as none.
    pub cpu: Duration,
    /// HTTP requests connections sent for plugins.
    pub requests: u64,
    /// Request bodies sent, in bytes.
    pub bytes_out: u64,
    /// Response bodies received, in bytes.
    pub bytes_in: u64,
    /// The most linear memory one plugin instance held, in bytes.
    pub peak_memory: u64,
}

impl Usage {
    /// Guest execution time spent by one call.
    pub fn add_cpu(&self, spent: Duration) {
        self.cpu_micros
            .fetch_add(spent.as_micros() as u64, Ordering::Relaxed);
    }

    /// One request, with the bytes of its body and of the response's (0 when it failed).
    pub fn add_request(&self, bytes_out: u64, bytes_in: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
    }

    /// A plugin instance held `bytes` of memory.
    pub fn note_memory(&self, bytes: u64) {
        self.peak_memory.fetch_max(bytes, Ordering::Relaxed);
    }

    /// What was counted so far.
    pub fn read(&self) -> Used {
        Used {
            cpu: Duration::from_micros(self.cpu_micros.load(Ordering::Relaxed)),
            requests: self.requests.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            peak_memory: self.peak_memory.load(Ordering::Relaxed),
        }
    }
}
