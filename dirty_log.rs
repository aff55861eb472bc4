// SPDX-License-Identifier: GPL-2.0

//! Dirty logs: which regions are known to be identical on every leg, which
//! may be being written, and which need recovery.
//!
//! The region hash talks to a log through [`DirtyLog`]. The **core** log
//! keeps everything in memory: after a (re)load, a `sync` or default table
//! starts with every region out of sync, a `nosync` table with every region
//! in sync. Its logic is in the kernel-free `log_bits.rs`.

use crate::log_bits::{CoreLogState, WordStore};
use crate::table::SyncMode;
use kernel::prelude::*;

/// What the region hash needs from a dirty log, under its lock. (kmirrord
/// also uses the log's resync scan, sync count and resume, inherent to each
/// log type.) Making the log persistent is not part of it: that may sleep,
/// so kmirrord does it with no spinlock held (see `kmirrord::flush_log`).
pub(crate) trait DirtyLog {
    /// Whether `region` is known to be identical on every leg.
    fn in_sync(&self, region: u32) -> bool;
    /// Records that writes to `region` are about to start.
    fn mark_region(&mut self, region: u32);
    /// Records that `region` has no writes in flight any more.
    fn clear_region(&mut self, region: u32);
    /// Ends recovery of `region` (or marks it out of sync): sets its state.
    fn set_region_sync(&mut self, region: u32, in_sync: bool);
}

/// Bitset storage allocated at table load.
pub(crate) struct Words(KVec<u64>);

impl Words {
    fn for_regions(nr: u32) -> Result<Self> {
        let n = (nr as usize).div_ceil(64);
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            v.push(0, GFP_KERNEL)?;
        }
        Ok(Words(v))
    }
}

impl WordStore for Words {
    fn words(&self) -> &[u64] {
        &self.0
    }

    fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

/// The in-memory dirty log.
pub(crate) type CoreLog = CoreLogState<Words>;

/// Creates the core log of a table with `nr_regions` regions.
pub(crate) fn new_core_log(nr_regions: u32, sync: SyncMode) -> Result<CoreLog> {
    Ok(CoreLogState::new(
        nr_regions,
        sync,
        Words::for_regions(nr_regions)?,
        Words::for_regions(nr_regions)?,
        Words::for_regions(nr_regions)?,
    ))
}

impl DirtyLog for CoreLog {
    fn in_sync(&self, region: u32) -> bool {
        CoreLogState::in_sync(self, region)
    }

    fn mark_region(&mut self, region: u32) {
        CoreLogState::mark_region(self, region)
    }

    fn clear_region(&mut self, region: u32) {
        CoreLogState::clear_region(self, region)
    }

    fn set_region_sync(&mut self, region: u32, in_sync: bool) {
        CoreLogState::set_region_sync(self, region, in_sync)
    }
}
