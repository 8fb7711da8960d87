//! The process-wide wasmtime engine and the thread that advances its epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::{Limits, LoadError};

/// Builds the engine every plugin shares: Cranelift, the component model, async host calls,
/// epoch interruption (CPU limits) and the pooling allocator (fast instantiation with
/// copy-on-write memory images).
pub(crate) fn build(limits: &Limits) -> Result<Engine, LoadError> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.instances)
        // A Rust component holds its main module plus a few adapter shims.
        .max_core_instances_per_component(16)
        .total_core_instances(limits.instances * 16)
        .max_memories_per_component(2)
        .total_memories(limits.instances * 2)
        .max_tables_per_component(8)
        .total_tables(limits.instances * 8)
        .total_stacks(limits.instances)
        .max_memory_size(limits.memory_bytes)
        // Reset the first pages of a reused slot with memset rather than madvise: cheaper for
        // the small heaps plugins touch between calls.
        .linear_memory_keep_resident(64 << 10)
        .table_keep_resident(16 << 10);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))
}

/// Advances the engine's epoch every tick until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: std::time::Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
