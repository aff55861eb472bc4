// SPDX-License-Identifier: GPL-2.0

//! Reads: an in-sync region is read from any leg without errors, chosen by
//! the read policy (`balance`: by load and locality, `read_policy.rs`;
//! `default_leg`: the default leg, or after errors another good one, as the
//! C target); a region out of sync only from the default leg. A failed read
//! is counted against its leg and retried by kmirrord on another leg that
//! can serve it, in the C target's order (dm-raid1.c's `choose_mirror`,
//! `mirror_map` for reads, `mirror_end_io` for reads and `do_reads`).
//!
//! Each leg counts its reads in flight and where its last read ended
//! (`legs.rs` `LegReads`, atomics): `remap_read` counts a read on the leg it
//! sends it to and marks the bio counted; `read_done`, which device-mapper
//! calls for every completion of a bio we remapped (successful or not, and
//! again for each retry we resubmit, or end ourselves), uncounts it once.

use super::kmirrord;
use super::{ErrorKind, MirrorSet};
use crate::binding::bio::{BioList, DmBio, Status};
use crate::binding::dm::EndIoBio;
use crate::binding::gaps::{clock, cond_resched};
use crate::binding::target::TargetBorrow;
use crate::read_policy::{self, LegLoad, ReadPolicy};
use crate::MAX_LEGS;
use kernel::prelude::*;

impl MirrorSet {
    /// The leg to read `bio` from: for an in-sync region, under the
    /// `balance` policy and on the first try, the leg `read_policy.rs`
    /// chooses among those without errors; else (`default_leg`, or a retry
    /// after a read error) the default leg or the nearest one before it
    /// (wrapping round, the order of the C target) that has no errors and
    /// was not tried yet; for a region out of sync, only the default leg
    /// (others may be stale), if it has no errors and was not tried.
    pub(crate) fn choose_read_leg(&self, bio: &DmBio<Self>) -> Option<usize> {
        let tried = bio.data().tried;
        let usable = |i: usize| self.leg_can_serve(tried, i);
        let default = self.default_leg_index();
        if !self.region_in_sync(self.geo.region_of(bio.sector())) {
            return usable(default).then_some(default);
        }
        if tried == 0 && self.read_policy() == ReadPolicy::Balance {
            return self.choose_balanced(bio.sector());
        }
        // No `%`: its division-by-zero panic path upsets objtool.
        let n = self.legs.len();
        let d = default.min(n.saturating_sub(1));
        Iterator::chain((0..=d).rev(), (d + 1..n).rev()).find(|&i| usable(i))
    }

    /// The `balance` choice for a first read at `sector` of a region in
    /// sync: a snapshot of every leg without errors (its counters and its
    /// queue's rotational flag, read now: both are a few loads, no lock).
    fn choose_balanced(&self, sector: u64) -> Option<usize> {
        let mut loads: [Option<LegLoad>; MAX_LEGS] = [None; MAX_LEGS];
        for (i, (slot, leg)) in loads.iter_mut().zip(self.legs.iter()).enumerate() {
            if self.leg_can_serve(0, i) {
                *slot = Some(leg.reads.load(leg.dev.is_rotational()));
            }
        }
        let n = self.legs.len().min(MAX_LEGS);
        read_policy::choose_balanced(
            loads.get(..n).unwrap_or(&[]),
            self.default_leg_index(),
            self.geo.target_offset(sector),
        )
    }

    /// Whether leg `i` may serve a read whose tried legs are the bits of
    /// `tried`: not tried yet, and without errors.
    pub(crate) fn leg_can_serve(&self, tried: u16, i: usize) -> bool {
        tried & (1 << i) == 0 && self.legs.get(i).is_some_and(|l| !l.errors.any())
    }

    /// Sends a read to `leg` (the binding records the bio first, so a
    /// failure can be retried elsewhere).
    pub(crate) fn remap_read(&self, bio: &mut DmBio<Self>, leg: usize) -> bool {
        let Some(l) = self.legs.get(leg) else {
            return false;
        };
        let region = self.geo.region_of(bio.sector());
        let start = self.geo.target_offset(bio.sector());
        let data = bio.data_mut();
        data.read_region = region;
        data.read_leg = leg;
        data.tried |= 1 << leg;
        // Counted before device-mapper (or kmirrord) sends it: it cannot end
        // before. A retry was uncounted on its failed leg by `read_done`.
        data.read_counted = true;
        l.reads
            .start(start.saturating_add(bio.sectors()), clock::monotonic_ns());
        bio.remap(&l.dev, l.offset + start);
        true
    }

    /// A read completed. A failed one is counted against its leg and, if
    /// another leg can serve it, handed to kmirrord to be sent there.
    pub(super) fn read_done(this: TargetBorrow<'_, Self>, bio: &mut EndIoBio<'_, Self>) {
        let st = bio.status();
        // Uncount the read on its leg, once: a bio that kmirrord fails
        // without resending ends here again, no longer counted.
        let leg = bio.data().read_leg;
        if let Some(data) = bio.data_mut() {
            if core::mem::take(&mut data.read_counted) {
                if let Some(l) = this.legs.get(leg) {
                    l.reads.end(st.is_ok());
                }
            }
        }
        // A failed read-ahead says little about the leg (C ignores it too).
        // Nor does a read the leg refused as unsupported or invalid (C
        // 1.15.0 counts INVAL so too; 1.14.0 only NOTSUPP).
        if st.is_ok() || st == Status::NOTSUPP || st == Status::INVAL || bio.is_readahead() {
            return;
        }
        let failed = bio.data().read_leg;
        let event = this.fail_leg(failed, ErrorKind::Read);
        if let Some(leg) = this.legs.get(failed) {
            pr_err!("read failed from {}, trying another leg\n", leg.dev.name());
        }
        // `choose_read_leg` is asked again by kmirrord; here only whether a
        // retry has a chance: the default leg is good (it may have just
        // changed), or the region is in sync and some good leg is left.
        let tried = bio.data().tried;
        let untried_good = |i: usize| this.leg_can_serve(tried, i);
        let retry = untried_good(this.default_leg_index())
            || (this.region_in_sync(bio.data().read_region)
                && (0..this.legs.len()).any(untried_good));
        if !retry {
            pr_err!("no leg left to read from, failing the read\n");
            if event {
                kmirrord::wake(this);
            }
            return;
        }
        if let Some(retry) = bio.take_restored() {
            // Taken back: kmirrord sends it again (the binding keeps the set
            // alive until this call returns).
            this.queues.lock().reads.push(retry);
            kmirrord::wake(this);
        }
    }
}

/// Retries reads that failed on one leg on another that can serve them, or
/// fails them if none is left.
pub(super) fn do_reads(ms: &MirrorSet, mut reads: BioList<MirrorSet>) {
    while let Some(mut bio) = reads.pop() {
        cond_resched();
        match ms.choose_read_leg(&bio) {
            Some(leg) if ms.remap_read(&mut bio, leg) => bio.submit_remapped(),
            _ => bio.endio(Status::IOERR),
        }
    }
}
