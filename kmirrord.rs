// SPDX-License-Identifier: GPL-2.0

//! kmirrord: the mirror's worker.
//!
//! `map` queues every write, flush and discard and wakes kmirrord, which runs
//! on the mirror's own `WQ_MEM_RECLAIM` workqueue. Each pass:
//! 1. updates region states (clean regions leave the hash, ended recoveries
//!    set their sync state and release the writes they held);
//! 2. runs recovery: picks out-of-sync regions and copies each from the
//!    default leg to the others once its writes in flight are done;
//! 3. retries reads that failed on one leg on another;
//! 4. handles the queued writes: regions are marked dirty and the log
//!    flushed before any data write; then one dm-io request writes each bio
//!    to every leg (a region out of sync gets the default leg only);
//! 5. handles writes that failed on some leg: their region goes out of
//!    sync; then they are held until the device is suspended (with
//!    `handle_errors`), failed (no good leg left), or completed.
//!
//! Table events due to leg failures are raised at the start of a pass:
//! raising one sleeps, and failures are seen in interrupt context.

use crate::binding::bio::Status;
use crate::binding::bio::{BioList, DmBio, Op, ReqOp};
use crate::binding::dmio::IoRegion;
use crate::binding::gaps::io_error_ratelimit;
use crate::binding::kcopyd::CopyDone;
use crate::binding::target::{TargetBorrow, TargetRef};
use crate::dirty_log::DirtyLog;
use crate::region_hash::{ensure_region, FreeList};
use crate::region_state::WriteRoute;
use crate::{ErrorKind, MirrorSet, MAX_LEGS};
use core::sync::atomic::Ordering;
use kernel::prelude::*;
use kernel::workqueue::WorkItem;

/// Regions recovered at the same time.
pub(crate) const MAX_RECOVERY: usize = 4;

impl WorkItem for MirrorSet {
    type Pointer = TargetRef<MirrorSet>;

    fn run(this: TargetRef<MirrorSet>) {
        do_mirror(&this);
    }
}

/// Asks kmirrord to run (from any context). The queued pass holds a
/// reference to the set until it has run.
pub(crate) fn wake(ms: TargetBorrow<'_, MirrorSet>) {
    ms.wq.enqueue(ms.to_ref());
}

/// One pass of kmirrord.
fn do_mirror(ms: &TargetRef<MirrorSet>) {
    raise_pending_event(ms);
    let mut writes = BioList::new();
    update_states(ms, &mut writes);
    do_recovery(ms);
    let mut reads = BioList::new();
    let mut failures = BioList::new();
    {
        let mut q = ms.queues.lock();
        writes.append(&mut q.writes);
        reads.append(&mut q.reads);
        failures.append(&mut q.failures);
    }
    do_reads(ms, reads);
    do_writes(ms, writes, &mut failures);
    do_failures(ms, failures);
    // Failures seen during this pass (e.g. a flush of the legs).
    raise_pending_event(ms);
}

/// Raises the table event leg failures made due.
fn raise_pending_event(ms: &MirrorSet) {
    if ms.event_pending.swap(false, Ordering::Relaxed) {
        ms.target.table_event();
    }
}

/// Writes that failed on some leg, or that were not issued because the log
/// or a leg failed (`handle_errors`).
fn do_failures(ms: &MirrorSet, mut failures: BioList<MirrorSet>) {
    let handle = ms.features.handle_errors;
    let keep_log = ms.features.keep_log;
    while let Some(bio) = failures.pop() {
        let log_failed = ms.log_failure.load(Ordering::Relaxed);
        if !log_failed {
            // The legs may differ where the write went: out of sync. (With
            // the log failed, nothing can be recorded.)
            ms.in_sync.store(false, Ordering::Relaxed);
            let mut g = ms.rh.lock();
            let rh = &mut *g;
            match bio.data().region {
                Some(key) => rh.hash.mark_nosync(key, &mut rh.log),
                // A failed flush: any region may have lost writes.
                None if bio.is_preflush() => rh.hash.set_flush_failure(),
                None => {}
            }
        }
        if !ms.any_valid_leg() || (keep_log && log_failed) {
            bio.endio(Status::IOERR);
        } else if handle && !keep_log {
            ms.hold(bio);
        } else {
            // As the C target: the write reached a good leg; the failed
            // leg's health character shows the rest.
            bio.endio(Status::OK);
        }
    }
}

/// Retries reads that failed on one leg on another that can serve them, or
/// fails them if none is left.
fn do_reads(ms: &MirrorSet, mut reads: BioList<MirrorSet>) {
    while let Some(mut bio) = reads.pop() {
        match ms.choose_read_leg(&bio) {
            Some(leg) if ms.remap_read(&mut bio, leg) => bio.submit_remapped(),
            _ => bio.endio(Status::IOERR),
        }
    }
}

fn update_states(ms: &MirrorSet, requeue: &mut BioList<MirrorSet>) {
    let mut freed = FreeList::new();
    let in_sync = {
        let mut g = ms.rh.lock();
        let rh = &mut *g;
        rh.hash.update_states(&mut rh.log, requeue, &mut freed);
        rh.log.sync_count()
    };
    drop(freed);
    // Clears and recovery results become persistent. The result is not
    // needed here (the C region hash ignores it too): a failed log device
    // already shows in the status and raised a table event, and the next
    // write batch's flush fails again and holds or fails the writes.
    let _ = crate::dirty_log::flush(ms);
    let all_in_sync = in_sync == u64::from(ms.geo.nr_regions());
    if all_in_sync && !ms.in_sync.swap(true, Ordering::Relaxed) {
        // As the C target: one event when the mirror is fully in sync
        // after the load or a write failure; the legs' error flags start
        // afresh. (For a table in sync from the start, this happens in the
        // pass the constructor asks for, before the table is live, so the
        // event reaches nobody, as with the C target.)
        ms.target.table_event();
        ms.reset_leg_errors();
    }
}

/// The end of one region's recovery copy.
struct RecoveryDone {
    ms: TargetRef<MirrorSet>,
    key: u32,
    /// Leg index of each copy destination, in order.
    dests: [u8; MAX_LEGS],
    source: usize,
}

impl CopyDone for RecoveryDone {
    fn copy_done(self, read_err: bool, write_err: u64) {
        let ms = &self.ms;
        if read_err {
            ms.fail_leg(self.source, ErrorKind::Sync);
        }
        for (i, &leg) in self.dests.iter().enumerate() {
            if write_err & (1 << i) != 0 {
                ms.fail_leg(usize::from(leg), ErrorKind::Sync);
            }
        }
        let ok = !read_err && write_err == 0;
        ms.rh.lock().hash.end_recovery(self.key, ok);
        ms.copy_ended();
        wake(ms.borrow());
    }
}

fn do_recovery(ms: &TargetRef<MirrorSet>) {
    if ms.recovery_stopped.load(Ordering::Acquire) {
        return;
    }
    // Choose regions to recover.
    loop {
        let key = {
            let mut g = ms.rh.lock();
            let rh = &mut *g;
            if rh.hash.recovering() as usize >= MAX_RECOVERY {
                break;
            }
            match rh.log.get_resync_work() {
                Some(k) => k,
                None => break,
            }
        };
        if ensure_region(ms, key).is_err() {
            ms.rh.lock().log.set_region_sync(key, false);
            break;
        }
        let chosen = ms.rh.lock().hash.begin_recovery(key);
        if !chosen {
            ms.rh.lock().log.set_region_sync(key, false);
        }
    }
    // Start the copies of regions with no writes in flight.
    let mut keys = [0u32; MAX_RECOVERY];
    let n = ms.rh.lock().hash.take_quiesced(&mut keys);
    for &key in keys.iter().take(n) {
        start_copy(ms, key);
    }
}

fn start_copy(ms: &TargetRef<MirrorSet>, key: u32) {
    let source = ms.default_leg_index();
    let (start, count) = ms.geo.region_extent(key);
    let mut dests = [IoRegion::empty(); MAX_LEGS];
    let mut dest_legs = [0u8; MAX_LEGS];
    let mut n = 0;
    let mut from = None;
    for (i, leg) in ms.legs.iter().enumerate() {
        let region = IoRegion::new(&leg.dev, leg.offset + start, count);
        if i == source {
            from = Some(region);
        } else if let (Some(d), Some(l)) = (dests.get_mut(n), dest_legs.get_mut(n)) {
            *d = region;
            *l = i as u8;
            n = n.saturating_add(1);
        }
    }
    let Some(from) = from else {
        ms.rh.lock().hash.end_recovery(key, false);
        return;
    };
    ms.copy_started();
    let done = RecoveryDone {
        ms: ms.clone(),
        key,
        dests: dest_legs,
        source,
    };
    // Without handle_errors, as the C target, a failing leg does not keep
    // the copy from the others.
    let ignore_errors = !ms.features.handle_errors;
    let dests = dests.get(..n).unwrap_or(&[]);
    if let Err(done) = ms.kcopyd.copy(from, dests, ignore_errors, done) {
        // No memory for the copy's context: try again on a later pass.
        done.ms.rh.lock().hash.end_recovery(key, false);
        done.ms.copy_ended();
    }
}

fn do_writes(ms: &MirrorSet, mut writes: BioList<MirrorSet>, failures: &mut BioList<MirrorSet>) {
    let mut all = BioList::new();
    let mut default_only = BioList::new();
    while let Some(mut bio) = writes.pop() {
        if bio.op() == Op::Discard || bio.sectors() == 0 {
            // Flushes and discards touch no region's data state.
            all.push(bio);
            continue;
        }
        let key = ms.geo.region_of(bio.sector());
        if ensure_region(ms, key).is_err() {
            // Only possible if the NOFAIL fallback failed.
            fail_write(bio, "no memory for its region entry");
            continue;
        }
        let mut g = ms.rh.lock();
        let rh = &mut *g;
        match rh.hash.start_write(key, &mut rh.log) {
            Some(WriteRoute::AllLegs) => {
                bio.data_mut().region = Some(key);
                all.push(bio);
            }
            Some(WriteRoute::DefaultLeg) => {
                bio.data_mut().region = Some(key);
                default_only.push(bio);
            }
            Some(WriteRoute::Delayed) => rh.hash.delay(key, bio),
            None => {
                // ensure_region just made the entry, and only kmirrord
                // removes entries: not expected.
                drop(g);
                fail_write(bio, "its region entry is missing");
            }
        }
    }
    if all.is_empty() && default_only.is_empty() {
        return;
    }
    // The regions just marked dirty must be on record before their data
    // is written. A log failure sticks until the table is reloaded.
    if crate::dirty_log::flush(ms).is_err() {
        ms.log_failure.store(true, Ordering::Relaxed);
    }
    let handle = ms.features.handle_errors;
    if handle && ms.log_failure.load(Ordering::Relaxed) {
        // Not on record: these may not be written until userspace acts.
        failures.append(&mut all);
    }
    while let Some(bio) = all.pop() {
        write_all_legs(ms, bio);
    }
    if handle && !ms.features.keep_log && ms.leg_failure.load(Ordering::Relaxed) {
        // Writing only the default leg would leave a failed leg further
        // behind: hold these too.
        failures.append(&mut default_only);
    }
    while let Some(mut bio) = default_only.pop() {
        let Some(leg) = ms.default_leg() else {
            fail_write(bio, "the mirror has no leg");
            continue;
        };
        let sector = leg.offset + ms.geo.target_offset(bio.sector());
        bio.remap(&leg.dev, sector);
        bio.submit_remapped();
    }
}

/// Completes a write that cannot be issued with an I/O error.
fn fail_write(bio: DmBio<MirrorSet>, why: &str) {
    if io_error_ratelimit() {
        pr_err!("failing a write at sector {}: {}\n", bio.sector(), why);
    }
    bio.endio(Status::IOERR);
}

/// Sends `bio` to every leg with one dm-io request.
fn write_all_legs(ms: &MirrorSet, bio: DmBio<MirrorSet>) {
    let base = if bio.op() == Op::Discard {
        ReqOp::DISCARD
    } else {
        ReqOp::WRITE
    };
    let op = base.with(bio.cache_flags());
    let count = bio.sectors();
    let mut regions = [IoRegion::empty(); MAX_LEGS];
    for (slot, leg) in regions.iter_mut().zip(ms.legs.iter()) {
        // An empty flush has no data range: dm-io sends just the flush.
        let sector = if count == 0 {
            0
        } else {
            leg.offset + ms.geo.target_offset(bio.sector())
        };
        *slot = IoRegion::new(&leg.dev, sector, count);
    }
    let regions = regions.get(..ms.legs.len()).unwrap_or(&[]);
    ms.io_client.submit_bio(bio, regions, op);
}
