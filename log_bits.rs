// SPDX-License-Identifier: GPL-2.0

// Region bitsets and the core dirty log's logic, kernel-free so the host
// crate can test them. The storage (`VVec<u64>` in the kernel, `Vec<u64>` on
// the host) is the caller's, behind [`WordStore`]. Bit `i` is bit `i % 64`
// of word `i / 64`, which is also the little-endian on-disk order of the C
// dm-log's bitsets.

use crate::table::SyncMode;

/// Storage for a bitset.
pub trait WordStore {
    /// The words.
    fn words(&self) -> &[u64];
    /// The words, mutably.
    fn words_mut(&mut self) -> &mut [u64];
}

/// A bitset of `nr` regions.
pub struct RegionBits<S> {
    store: S,
    nr: u32,
}

impl<S: WordStore> RegionBits<S> {
    /// Wraps `store` (at least `nr.div_ceil(64)` words), setting every bit
    /// to `value` and the bits past `nr` to 0.
    pub fn new(mut store: S, nr: u32, value: bool) -> Self {
        let fill = if value { u64::MAX } else { 0 };
        for w in store.words_mut() {
            *w = fill;
        }
        let mut bits = Self { store, nr };
        bits.clear_tail();
        bits
    }

    fn clear_tail(&mut self) {
        let used = self.nr % 64;
        let full = (self.nr / 64) as usize;
        for (i, w) in self.store.words_mut().iter_mut().enumerate() {
            if i == full && used != 0 {
                *w &= (1u64 << used) - 1;
            } else if i >= full {
                *w = 0;
            }
        }
    }

    /// Number of regions.
    pub fn len(&self) -> u32 {
        self.nr
    }

    /// Whether there are no regions.
    pub fn is_empty(&self) -> bool {
        self.nr == 0
    }

    /// Bit `i` (false past the end).
    pub fn get(&self, i: u32) -> bool {
        i < self.nr
            && self
                .store
                .words()
                .get((i / 64) as usize)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Sets bit `i` to `value`; returns its previous value. Out-of-range
    /// bits are left alone.
    pub fn set(&mut self, i: u32, value: bool) -> bool {
        if i >= self.nr {
            return false;
        }
        let Some(w) = self.store.words_mut().get_mut((i / 64) as usize) else {
            return false;
        };
        let mask = 1u64 << (i % 64);
        let old = *w & mask != 0;
        if value {
            *w |= mask;
        } else {
            *w &= !mask;
        }
        old
    }

    /// Number of set bits.
    pub fn count(&self) -> u64 {
        self.store
            .words()
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// The first clear bit at or after `from`.
    pub fn next_zero(&self, from: u32) -> Option<u32> {
        let mut i = from;
        while i < self.nr {
            let w = self.store.words().get((i / 64) as usize)?;
            let rest = !w >> (i % 64);
            if rest != 0 {
                let found = i.checked_add(rest.trailing_zeros())?;
                return (found < self.nr).then_some(found);
            }
            i = (i / 64).checked_add(1)?.checked_mul(64)?;
        }
        None
    }

    /// The words, e.g. to write them to disk.
    pub fn words(&self) -> &[u64] {
        self.store.words()
    }

    /// Makes these bits a copy of `other`'s (same length; extra words of
    /// either side are left alone or read as 0).
    pub fn copy_from<T: WordStore>(&mut self, other: &RegionBits<T>) {
        let src = other.words();
        for (i, w) in self.store.words_mut().iter_mut().enumerate() {
            *w = src.get(i).copied().unwrap_or(0);
        }
        self.clear_tail();
    }

    /// Sets every bit to `value` (bits past the end stay 0).
    pub fn fill(&mut self, value: bool) {
        let fill = if value { u64::MAX } else { 0 };
        for w in self.store.words_mut() {
            *w = fill;
        }
        self.clear_tail();
    }
}

/// The core log: what is in sync, clean and being recovered, in memory.
pub struct CoreLogState<S> {
    clean: RegionBits<S>,
    in_sync: RegionBits<S>,
    recovering: RegionBits<S>,
    sync_count: u64,
    /// Where the next resync scan starts.
    sync_search: u32,
}

impl<S: WordStore> CoreLogState<S> {
    /// A log of `nr` regions, with three stores of `nr.div_ceil(64)` words.
    /// `nosync` tables start in sync; `sync` and default ones out of sync.
    pub fn new(nr: u32, sync: SyncMode, clean: S, in_sync: S, recovering: S) -> Self {
        let in_sync = RegionBits::new(in_sync, nr, sync == SyncMode::NoSync);
        Self {
            clean: RegionBits::new(clean, nr, true),
            sync_count: in_sync.count(),
            in_sync,
            recovering: RegionBits::new(recovering, nr, false),
            sync_search: 0,
        }
    }

    /// Whether `region` is identical on every leg.
    pub fn in_sync(&self, region: u32) -> bool {
        self.in_sync.get(region)
    }

    /// Whether `region` has no writes recorded as in flight.
    pub fn is_clean(&self, region: u32) -> bool {
        self.clean.get(region)
    }

    /// Writes to `region` are about to start. Returns whether its clean
    /// bit changed.
    pub fn mark_region(&mut self, region: u32) -> bool {
        self.clean.set(region, false)
    }

    /// `region` has no writes in flight any more. Returns whether its clean
    /// bit changed.
    pub fn clear_region(&mut self, region: u32) -> bool {
        region < self.clean.len() && !self.clean.set(region, true)
    }

    /// The clean bits (what a disk log writes out).
    pub fn clean_bits(&self) -> &RegionBits<S> {
        &self.clean
    }

    /// The clean bits, to load them from a disk log.
    pub fn clean_bits_mut(&mut self) -> &mut RegionBits<S> {
        &mut self.clean
    }

    /// Records every region as possibly written (not clean).
    pub fn mark_all_unclean(&mut self) {
        self.clean.fill(false);
    }

    /// What a disk log does on resume: a region is in sync exactly when it
    /// is clean, no region is being recovered, the resync scan restarts.
    pub fn sync_from_clean(&mut self) {
        self.in_sync.copy_from(&self.clean);
        self.sync_count = self.in_sync.count();
        self.recovering.fill(false);
        self.sync_search = 0;
    }

    /// The next out-of-sync region nobody recovers, now marked recovering.
    pub fn get_resync_work(&mut self) -> Option<u32> {
        loop {
            let region = self.in_sync.next_zero(self.sync_search)?;
            self.sync_search = region.saturating_add(1);
            if !self.recovering.get(region) {
                self.recovering.set(region, true);
                return Some(region);
            }
        }
    }

    /// Ends recovery of `region`, or marks it out of sync.
    pub fn set_region_sync(&mut self, region: u32, in_sync: bool) {
        self.recovering.set(region, false);
        if region >= self.in_sync.len() {
            return;
        }
        let was = self.in_sync.set(region, in_sync);
        match (was, in_sync) {
            (false, true) => self.sync_count = self.sync_count.saturating_add(1),
            (true, false) => self.sync_count = self.sync_count.saturating_sub(1),
            _ => {}
        }
    }

    /// Regions in sync.
    pub fn sync_count(&self) -> u64 {
        self.sync_count
    }

    /// Restarts the resync scan from region 0.
    pub fn resume(&mut self) {
        self.sync_search = 0;
    }
}
