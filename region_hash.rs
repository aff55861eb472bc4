// SPDX-License-Identifier: GPL-2.0

//! The region hash: per-region state of the mirror, in the manner of the C
//! dm-region-hash.
//!
//! The mirror is cut into power-of-two regions. A region with writes in
//! flight, or out of sync, or being recovered, has an entry here; a clean,
//! idle, in-sync region has none. Entries are chained in buckets.
//!
//! States:
//! - `Clean`: in sync, no writes in flight; kmirrord clears it in the log and
//!   drops the entry.
//! - `Dirty`: writes in flight; marked in the log before the first one.
//! - `NoSync`: out of sync; writes go to the default leg only, and only
//!   recovery makes it clean again.
//! - `Recovering`: being copied from the default leg; new writes wait in
//!   the entry's delayed list until the copy is over.
//!
//! All of it sits behind one interrupt-safe lock together with the dirty log,
//! because write completions (interrupt context) decrement pending counts.
//!
//! This file is kernel-free and shared with the host test crate. What it
//! needs from the kernel comes in through `HashParts`: the box an entry
//! lives in, the list its delayed writes wait in, and the bucket array. The
//! module's instantiation (`mirror/mod.rs`) uses pool boxes from a
//! `FallbackPool` (see `mempool.rs`), bio lists and a vmalloc'ed vector; the
//! caller allocates every entry and the buckets, so nothing here allocates
//! (in particular not under the lock).

use crate::region_state::{RegionEntry, Update, WriteRoute};
use core::ops::DerefMut;

/// What the region hash needs from a dirty log, under its lock. (kmirrord
/// also uses the log's resync scan, sync count and resume, inherent to each
/// log type.) Making the log persistent is not part of it: that may sleep,
/// so kmirrord does it with no spinlock held (see `dirty_log::flush`).
pub trait DirtyLog {
    /// Whether `region` is known to be identical on every leg.
    fn in_sync(&self, region: u32) -> bool;
    /// Records that writes to `region` are about to start.
    fn mark_region(&mut self, region: u32);
    /// Records that `region` has no writes in flight any more.
    fn clear_region(&mut self, region: u32);
    /// Ends recovery of `region` (or marks it out of sync): sets its state.
    fn set_region_sync(&mut self, region: u32, in_sync: bool);
}

/// A FIFO list of writes (in the module, a bio list). None of its
/// operations may allocate or sleep: they run under the hash's lock.
pub trait WriteList {
    /// One write.
    type Write;
    /// An empty list.
    fn empty() -> Self;
    /// Appends `write`.
    fn push(&mut self, write: Self::Write);
    /// Moves every write of `other` to the end of this list.
    fn append(&mut self, other: &mut Self);
}

/// The types a region hash is built from.
pub trait HashParts: Sized {
    /// An owned, allocated entry. Dropping it frees the entry (in the
    /// module, back to the pool or to kfree; never sleeps).
    type Entry: DerefMut<Target = Region<Self>>;
    /// Writes held while their region is recovered.
    type Writes: WriteList;
    /// The bucket array: a power of two of chain heads.
    type Buckets: DerefMut<Target = [Option<Self::Entry>]>;
}

/// How a target's sectors map to regions.
#[derive(Clone, Copy, Debug)]
pub struct RegionGeometry {
    /// First sector of the target in the mapped device.
    begin: u64,
    /// Target length in sectors.
    len: u64,
    /// log2 of the region size in sectors.
    shift: u32,
    /// Number of regions (the last one may be short).
    nr_regions: u32,
}

impl RegionGeometry {
    /// `region_size` must be a power of two (the table parser checks it).
    pub fn new(begin: u64, len: u64, region_size: u32, nr_regions: u32) -> Self {
        Self {
            begin,
            len,
            shift: region_size.trailing_zeros(),
            nr_regions,
        }
    }

    /// Number of regions.
    pub fn nr_regions(&self) -> u32 {
        self.nr_regions
    }

    /// Offset of `sector` (of the mapped device) inside the target.
    pub fn target_offset(&self, sector: u64) -> u64 {
        sector.wrapping_sub(self.begin)
    }

    /// Region holding `sector` (of the mapped device).
    pub fn region_of(&self, sector: u64) -> u32 {
        // A bio never addresses past the target, so this fits a region index.
        (self.target_offset(sector) >> self.shift) as u32
    }

    /// First sector of `region`, relative to the target, and its length (the
    /// last region may be short).
    pub fn region_extent(&self, region: u32) -> (u64, u64) {
        let start = u64::from(region) << self.shift;
        let size = 1u64 << self.shift;
        (start, size.min(self.len.saturating_sub(start)))
    }
}

/// The entry of one region.
pub struct Region<P: HashParts> {
    key: u32,
    entry: RegionEntry,
    /// Writes that arrived while the region was being recovered.
    delayed: P::Writes,
    /// Next entry of the same bucket.
    next: Option<P::Entry>,
}

impl<P: HashParts> Region<P> {
    /// A fresh entry; its state is set from the log when it is inserted.
    pub fn new(key: u32) -> Self {
        Self {
            key,
            entry: RegionEntry::new(true),
            delayed: P::Writes::empty(),
            next: None,
        }
    }

    /// The region this entry is for.
    pub fn key(&self) -> u32 {
        self.key
    }

    /// The region's state.
    pub fn entry(&self) -> &RegionEntry {
        &self.entry
    }

    /// The writes held until the region's recovery is over.
    pub fn delayed(&self) -> &P::Writes {
        &self.delayed
    }
}

/// The hash of region entries.
pub struct RegionHash<P: HashParts> {
    /// In the module vmalloc'ed: up to 64Ki buckets of 16 bytes.
    buckets: P::Buckets,
    mask: u32,
    /// Number of entries.
    count: u32,
    /// Regions chosen for recovery whose recovery has not ended.
    recovering: u32,
    /// A flush failed on some leg: whether any write that ended since made
    /// it to stable storage is unknown, so idle regions go out of sync
    /// instead of clean (until the table is reloaded).
    flush_failure: bool,
}

/// Bucket count for `nr_regions`: the C target's choice, a power of two
/// about one bucket per 128 regions, from 64 (here at most 64Ki). Only
/// regions with writes in flight or under recovery are hashed, so chains
/// stay short even on the largest devices.
pub fn bucket_count(nr_regions: u32) -> u32 {
    let want = (nr_regions >> 6).max(128).next_power_of_two() / 2;
    want.min(1 << 16)
}

impl<P: HashParts> RegionHash<P> {
    /// An empty hash over `buckets`, which must all be empty. Their number
    /// should be a power of two ([`bucket_count`]); with any other number
    /// some buckets go unused, and with none every insertion is refused.
    pub fn new(buckets: P::Buckets) -> Self {
        let n = u32::try_from(buckets.len()).unwrap_or(u32::MAX);
        Self {
            buckets,
            mask: n.saturating_sub(1),
            count: 0,
            recovering: 0,
            flush_failure: false,
        }
    }

    fn bucket(&self, key: u32) -> usize {
        // Multiplicative hashing spreads neighbouring regions.
        (key.wrapping_mul(0x9E37_79B1) >> 7 & self.mask) as usize
    }

    /// The entry of `key`, if it has one.
    pub fn get_mut(&mut self, key: u32) -> Option<&mut Region<P>> {
        let b = self.bucket(key);
        let mut cur = self.buckets.get_mut(b)?.as_deref_mut();
        while let Some(r) = cur {
            if r.key == key {
                return Some(r);
            }
            cur = r.next.as_deref_mut();
        }
        None
    }

    /// Whether `key` has an entry.
    pub fn contains(&mut self, key: u32) -> bool {
        self.get_mut(key).is_some()
    }

    /// Number of entries.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Regions being recovered (chosen and not yet ended).
    pub fn recovering(&self) -> u32 {
        self.recovering
    }

    /// Inserts a freshly allocated entry, its state taken from the log. If
    /// another entry for the key appeared meanwhile, `region` is handed back
    /// to be freed (outside the lock).
    pub fn insert(&mut self, mut region: P::Entry, log: &dyn DirtyLog) -> Option<P::Entry> {
        let key = region.key;
        if self.contains(key) {
            return Some(region);
        }
        region.entry = RegionEntry::new(log.in_sync(key));
        let b = self.bucket(key);
        let Some(slot) = self.buckets.get_mut(b) else {
            return Some(region);
        };
        region.next = slot.take();
        *slot = Some(region);
        self.count = self.count.saturating_add(1);
        None
    }

    /// Decides the route of a write to `key` and, unless it is delayed,
    /// counts it as pending. The entry must exist. A clean region becomes
    /// dirty and is marked in the log (the caller flushes the log before
    /// issuing the write).
    pub fn start_write(&mut self, key: u32, log: &mut dyn DirtyLog) -> Option<WriteRoute> {
        let r = self.get_mut(key)?;
        let (route, mark) = r.entry.start_write();
        if mark {
            log.mark_region(key);
        }
        Some(route)
    }

    /// Holds a write for a region under recovery.
    pub fn delay(&mut self, key: u32, write: <P::Writes as WriteList>::Write) {
        if let Some(r) = self.get_mut(key) {
            r.delayed.push(write);
        }
        // Without an entry the write is dropped here, which (for a bio)
        // fails it: that cannot happen, as only kmirrord removes entries.
    }

    /// A write to `key` completed. Returns true if kmirrord has work to do
    /// because of it (a region became clean or quiesced).
    pub fn end_write(&mut self, key: u32) -> bool {
        self.get_mut(key).is_some_and(|r| r.entry.end_write())
    }

    /// A write to `key` failed on some leg: the legs may now differ there.
    pub fn mark_nosync(&mut self, key: u32, log: &mut dyn DirtyLog) {
        log.set_region_sync(key, false);
        if let Some(r) = self.get_mut(key) {
            r.entry.mark_nosync();
        }
    }

    /// A flush failed on some leg (see `flush_failure`).
    pub fn set_flush_failure(&mut self) {
        self.flush_failure = true;
    }

    /// Chooses `key` (an entry that exists, picked by the log's resync scan)
    /// for recovery. Returns false if there is no entry.
    pub fn begin_recovery(&mut self, key: u32) -> bool {
        let Some(r) = self.get_mut(key) else {
            return false;
        };
        r.entry.begin_recovery();
        self.recovering = self.recovering.saturating_add(1);
        true
    }

    /// Chooses `key` (an in-sync region with an entry) for a check or
    /// repair: it is quiesced as for a recovery. Returns false if it has no
    /// entry, is not in sync, or is being recovered or scrubbed already.
    pub fn begin_scrub(&mut self, key: u32) -> bool {
        let Some(r) = self.get_mut(key) else {
            return false;
        };
        if !r.entry.begin_scrub() {
            return false;
        }
        self.recovering = self.recovering.saturating_add(1);
        true
    }

    /// If region `key`, chosen for a scrub, has no writes in flight, marks
    /// it as being compared and returns true.
    pub fn try_start_scrub(&mut self, key: u32) -> bool {
        self.get_mut(key)
            .is_some_and(|r| r.entry.scrub && r.entry.try_start_copy())
    }

    /// Collects up to `out.len()` regions ready to be copied (chosen for
    /// recovery, not a scrub, no writes in flight) and marks them as
    /// copying. Returns how many.
    pub fn take_quiesced(&mut self, out: &mut [u32]) -> usize {
        let mut n = 0;
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.as_deref_mut();
            while let Some(r) = cur {
                let Some(slot) = out.get_mut(n) else {
                    return n;
                };
                if !r.entry.scrub && r.entry.try_start_copy() {
                    *slot = r.key;
                    n = n.saturating_add(1);
                }
                cur = r.next.as_deref_mut();
            }
        }
        n
    }

    /// The compare of `key`, chosen for a scrub, is over; `ok` unless a
    /// rewrite failed. A write that failed on some leg before the compare
    /// started (the log then says out of sync) leaves the region out of
    /// sync even if the compare found nothing to do: a check does not
    /// rewrite, so only resync can make the legs agree again.
    pub fn end_scrub(&mut self, key: u32, ok: bool, log: &dyn DirtyLog) {
        let ok = ok && log.in_sync(key);
        if let Some(r) = self.get_mut(key) {
            if r.entry.scrub {
                r.entry.end_recovery(ok);
            }
        }
    }

    /// The copy of `key` is over.
    pub fn end_recovery(&mut self, key: u32, ok: bool) {
        if let Some(r) = self.get_mut(key) {
            r.entry.end_recovery(ok);
        }
    }

    /// A chosen region whose copy has not started goes back to waiting for a
    /// later resync (on suspend); the writes it held move to `release`, to be
    /// written again (now to the default leg). A region chosen for a scrub
    /// stays in sync, and its writes go to every leg again. Returns how many
    /// were given up.
    pub fn abandon_quiescing(&mut self, log: &mut dyn DirtyLog, release: &mut P::Writes) -> u32 {
        let mut n = 0u32;
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.as_deref_mut();
            while let Some(r) = cur {
                let scrub = r.entry.scrub;
                if r.entry.abandon_recovery() {
                    if !scrub {
                        log.set_region_sync(r.key, false);
                    }
                    release.append(&mut r.delayed);
                    n = n.saturating_add(1);
                }
                cur = r.next.as_deref_mut();
            }
        }
        self.recovering = self.recovering.saturating_sub(n);
        n
    }

    /// kmirrord's bookkeeping pass: clean idle regions are cleared in the
    /// log and dropped; ended recoveries set the region's sync state, and
    /// their delayed writes move to `requeue`. Dropped entries go to `freed`,
    /// to be released once the lock is dropped.
    pub fn update_states(
        &mut self,
        log: &mut dyn DirtyLog,
        requeue: &mut P::Writes,
        freed: &mut FreeList<P>,
    ) {
        let mut ended = 0u32;
        let mut removed = 0u32;
        for bucket in self.buckets.iter_mut() {
            // Rebuild the chain, keeping the entries that stay.
            let mut chain = bucket.take();
            let mut kept: Option<P::Entry> = None;
            while let Some(mut r) = chain {
                chain = r.next.take();
                let drop_it = match r.entry.update() {
                    Update::Keep => false,
                    Update::DropClean if self.flush_failure => {
                        // Kept, out of sync, until a recovery copies it.
                        r.entry.mark_nosync();
                        log.set_region_sync(r.key, false);
                        false
                    }
                    Update::DropClean => {
                        log.clear_region(r.key);
                        true
                    }
                    Update::RecoveryEnded { ok, drop } => {
                        log.set_region_sync(r.key, ok);
                        if ok {
                            log.clear_region(r.key);
                        }
                        ended = ended.saturating_add(1);
                        requeue.append(&mut r.delayed);
                        drop
                    }
                };
                if drop_it {
                    removed = removed.saturating_add(1);
                    freed.push(r);
                } else {
                    r.next = kept.take();
                    kept = Some(r);
                }
            }
            *bucket = kept;
        }
        self.count = self.count.saturating_sub(removed);
        self.recovering = self.recovering.saturating_sub(ended);
    }
}

/// Entries removed under the lock, freed after it is dropped.
pub struct FreeList<P: HashParts> {
    head: Option<P::Entry>,
}

impl<P: HashParts> FreeList<P> {
    /// An empty list.
    pub fn new() -> Self {
        Self { head: None }
    }

    /// Whether the list holds no entry.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    fn push(&mut self, mut r: P::Entry) {
        r.next = self.head.take();
        self.head = Some(r);
    }
}

impl<P: HashParts> Default for FreeList<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: HashParts> Drop for FreeList<P> {
    fn drop(&mut self) {
        // Unlink iteratively so a long list does not recurse.
        let mut cur = self.head.take();
        while let Some(mut r) = cur {
            cur = r.next.take();
        }
    }
}

impl<P: HashParts> Drop for RegionHash<P> {
    fn drop(&mut self) {
        for bucket in self.buckets.iter_mut() {
            let mut cur = bucket.take();
            while let Some(mut r) = cur {
                cur = r.next.take();
            }
        }
    }
}
