// SPDX-License-Identifier: GPL-2.0

//! Failed writes and held bios: a write that failed on some leg puts its
//! region out of sync, then is held until the device is suspended (with
//! `handle_errors`), failed (no good leg left) or completed
//! (dm-raid1.c's `do_failures` and `hold_bio`).

use super::MirrorSet;
use crate::binding::bio::{BioList, DmBio, Status};
use crate::binding::gaps::cond_resched;
use core::sync::atomic::Ordering;

/// Writes that failed on some leg, or that were not issued because the log
/// or a leg failed (`handle_errors`).
pub(super) fn do_failures(ms: &MirrorSet, mut failures: BioList<MirrorSet>) {
    let handle = ms.features.handle_errors;
    let keep_log = ms.features.keep_log;
    while let Some(bio) = failures.pop() {
        cond_resched();
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

impl MirrorSet {
    /// Holds a failed write until the device is suspended; if it already
    /// is being suspended, completes it: requeued to device-mapper for a
    /// `--noflush` suspend (the next table issues it again), failed
    /// otherwise.
    pub(crate) fn hold(&self, bio: DmBio<Self>) {
        let mut q = self.queues.lock();
        if !self.suspended.load(Ordering::Acquire) {
            q.holds.push(bio);
            return;
        }
        drop(q);
        let status = if self.target.noflush_suspending() {
            Status::DM_REQUEUE
        } else {
            Status::IOERR
        };
        bio.endio(status);
    }
}
