//! A tiny deterministic PRNG. Demo data must be identical for a given seed on every machine
//! and every run, and must be computable for record N without generating records 0..N, so the
//! generator hashes `(seed, stream, index)` statelessly instead of stepping a global state.

/// SplitMix64 finaliser: a good 64-bit mix, cheap enough to call per field.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream of pseudo-random numbers derived from a seed and a key; used both for per-record
/// fields (keyed by record) and for fault injection (keyed by request sequence).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix {
    state: u64,
}

impl SplitMix {
    pub(crate) fn new(seed: u64, stream: u64, index: u64) -> Self {
        Self {
            state: mix(seed ^ mix(stream ^ mix(index))),
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant for demo data.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_gives_same_numbers() {
        let a: Vec<u64> = {
            let mut r = SplitMix::new(7, 1, 42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix::new(7, 1, 42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut c = SplitMix::new(7, 1, 43);
        assert_ne!(a[0], c.next_u64());
    }
}
