//! Helpers shared by the host test files.

#![allow(dead_code)]

use dm_mirror_rs_host::log_bits::WordStore;

/// Host storage for a bitset.
#[derive(Debug, Clone)]
pub(crate) struct Words(pub(crate) Vec<u64>);

impl WordStore for Words {
    fn words(&self) -> &[u64] {
        &self.0
    }

    fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

/// xorshift64* pseudo-random numbers (deterministic, no crates).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A generator from `seed` (any value; made odd so it is never zero).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next number.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True once in `one_in` times on average.
    pub(crate) fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}
