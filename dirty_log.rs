// SPDX-License-Identifier: GPL-2.0

//! Dirty logs: which regions are known to be identical on every leg.
//!
//! The **core** log keeps that knowledge in memory only: after a reload, a
//! `sync` or default table assumes every region out of sync, a `nosync`
//! table assumes every region in sync.

use crate::table::SyncMode;
use kernel::prelude::*;

/// A bitset of regions, one bit each (set = in sync).
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

    pub(crate) fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// The in-memory dirty log.
pub(crate) struct CoreLog {
    in_sync: RegionBits,
}

impl CoreLog {
    pub(crate) fn new(nr_regions: u32, sync: SyncMode) -> Result<Self> {
        let all_in_sync = sync == SyncMode::NoSync;
        Ok(Self {
            in_sync: RegionBits::new(nr_regions, all_in_sync)?,
        })
    }

    /// Whether `region` is known to be the same on every leg.
    pub(crate) fn in_sync(&self, region: u32) -> bool {
        self.in_sync.get(region)
    }

    /// Number of regions in sync.
    pub(crate) fn sync_count(&self) -> u64 {
        self.in_sync.count()
    }
}
