// SPDX-License-Identifier: GPL-2.0

//! kmirrord: the mirror's worker.
//!
//! `map` queues every write, flush and discard and wakes kmirrord, which runs
//! on the mirror's own `WQ_MEM_RECLAIM` workqueue. Each pass:
//! 1. updates region states (clean regions leave the hash, ended recoveries
//!    set their sync state and release the writes they held);
//! 2. runs recovery: picks out-of-sync regions and copies each from the
//!    default leg to the others once its writes in flight are done; then
//!    the same for a check or repair, one in-sync region at a time
//!    (`scrub.rs`), both paced when a recovery rate is set;
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

use super::failures::do_failures;
use super::reads::do_reads;
use super::recovery::do_recovery;
use super::scrub::do_scrub;
use super::writes::do_writes;
use super::{FreeList, MirrorSet, Queues};
use crate::binding::bio::{BioList, DmBio};
use crate::binding::target::{TargetBorrow, TargetRef};
use core::sync::atomic::Ordering;
use kernel::workqueue::WorkItem;

impl WorkItem for MirrorSet {
    type Pointer = TargetRef<MirrorSet>;

    fn run(this: TargetRef<MirrorSet>) {
        do_mirror(&this);
    }
}

/// Asks kmirrord to run (from any context). The queued pass holds a
/// reference to the set until it has run.
pub(super) fn wake(ms: TargetBorrow<'_, MirrorSet>) {
    ms.wq.enqueue::<_, 0>(ms.to_ref());
}

/// Puts `bio` on one of kmirrord's lists (chosen by `list`) and wakes
/// kmirrord if that list was empty (else a pass is due already).
pub(super) fn queue_bio(
    ms: TargetBorrow<'_, MirrorSet>,
    bio: DmBio<MirrorSet>,
    list: fn(&mut Queues) -> &mut BioList<MirrorSet>,
) {
    let was_empty = {
        let mut q = ms.queues.lock();
        let l = list(&mut q);
        let was_empty = l.is_empty();
        l.push(bio);
        was_empty
    };
    if was_empty {
        wake(ms);
    }
}

/// One pass of kmirrord.
fn do_mirror(ms: &TargetRef<MirrorSet>) {
    raise_pending_event(ms);
    let mut writes = BioList::new();
    update_states(ms, &mut writes);
    do_recovery(ms);
    do_scrub(ms);
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
