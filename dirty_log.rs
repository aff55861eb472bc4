// SPDX-License-Identifier: GPL-2.0

//! Dirty logs: which regions are known to be identical on every leg, which
//! may be being written, and which need recovery.
//!
//! The region hash talks to a log through [`DirtyLog`]. The **core** log
//! keeps everything in memory: after a (re)load, a `sync` or default table
//! starts with every region out of sync, a `nosync` table with every region
//! in sync.

use crate::table::SyncMode;
use kernel::prelude::*;

/// What the region hash needs from a dirty log.
pub(crate) trait DirtyLog {
    /// Whether `region` is known to be identical on every leg.
    fn in_sync(&self, region: u32) -> bool;
    /// Records that writes to `region` are about to start.
    fn mark_region(&mut self, region: u32);
    /// Records that `region` has no writes in flight any more.
    fn clear_region(&mut self, region: u32);
    /// Makes the marks and clears so far persistent.
    fn flush(&mut self) -> Result;
    /// Picks the next out-of-sync region nobody is recovering, and notes
    /// that it is being recovered.
    fn get_resync_work(&mut self) -> Option<u32>;
    /// Ends recovery of `region` (or marks it out of sync): sets its state.
    fn set_region_sync(&mut self, region: u32, in_sync: bool);
    /// Number of regions in sync.
    fn sync_count(&self) -> u64;
    /// Restart the resync scan from the first region (on resume).
    fn resume(&mut self);
}

/// A bitset of regions, one bit each.
pub(crate) struct RegionBits {
    words: KVec<u64>,
    nr: u32,
}

impl RegionBits {
    /// `nr` regions, all set to `value`.
    pub(crate) fn new(nr: u32, value: bool) -> Result<Self> {
        let nwords = (nr as usize).div_ceil(64);
        let fill = if value { u64::MAX } else { 0 };
        let mut words = KVec::with_capacity(nwords, GFP_KERNEL)?;
        for _ in 0..nwords {
            words.push(fill, GFP_KERNEL)?;
        }
        let mut bits = Self { words, nr };
        bits.clear_tail();
        Ok(bits)
    }

    fn clear_tail(&mut self) {
        let used = self.nr % 64;
        if used != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << used) - 1;
            }
        }
    }

    pub(crate) fn get(&self, i: u32) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Sets bit `i` to `value`; returns its previous value.
    pub(crate) fn set(&mut self, i: u32, value: bool) -> bool {
        let Some(w) = self.words.get_mut((i / 64) as usize) else {
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

    pub(crate) fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// First clear bit at or after `from`.
    pub(crate) fn next_zero(&self, from: u32) -> Option<u32> {
        let mut i = from;
        while i < self.nr {
            let w = self.words.get((i / 64) as usize)?;
            let rest = !w >> (i % 64);
            if rest != 0 {
                let found = i + rest.trailing_zeros();
                return (found < self.nr).then_some(found);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }
}

/// The in-memory dirty log.
pub(crate) struct CoreLog {
    nr_regions: u32,
    clean: RegionBits,
    in_sync: RegionBits,
    recovering: RegionBits,
    sync_count: u64,
    /// Where the next resync scan starts.
    sync_search: u32,
}

impl CoreLog {
    pub(crate) fn new(nr_regions: u32, sync: SyncMode) -> Result<Self> {
        let all_in_sync = sync == SyncMode::NoSync;
        let in_sync = RegionBits::new(nr_regions, all_in_sync)?;
        Ok(Self {
            nr_regions,
            clean: RegionBits::new(nr_regions, true)?,
            sync_count: in_sync.count(),
            in_sync,
            recovering: RegionBits::new(nr_regions, false)?,
            sync_search: 0,
        })
    }
}

impl DirtyLog for CoreLog {
    fn in_sync(&self, region: u32) -> bool {
        self.in_sync.get(region)
    }

    fn mark_region(&mut self, region: u32) {
        self.clean.set(region, false);
    }

    fn clear_region(&mut self, region: u32) {
        self.clean.set(region, true);
    }

    fn flush(&mut self) -> Result {
        // Nothing persists a core log.
        Ok(())
    }

    fn get_resync_work(&mut self) -> Option<u32> {
        loop {
            let region = self.in_sync.next_zero(self.sync_search)?;
            self.sync_search = region + 1;
            if !self.recovering.get(region) {
                self.recovering.set(region, true);
                return Some(region);
            }
        }
    }

    fn set_region_sync(&mut self, region: u32, in_sync: bool) {
        if region >= self.nr_regions {
            return;
        }
        self.recovering.set(region, false);
        let was = self.in_sync.set(region, in_sync);
        match (was, in_sync) {
            (false, true) => self.sync_count += 1,
            (true, false) => self.sync_count -= 1,
            _ => {}
        }
    }

    fn sync_count(&self) -> u64 {
        self.sync_count
    }

    fn resume(&mut self) {
        self.sync_search = 0;
    }
}
