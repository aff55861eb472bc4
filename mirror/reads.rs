// SPDX-License-Identifier: GPL-2.0

//! Reads: an in-sync region is read from the default leg (or, after errors,
//! another good one); a region out of sync only from the default leg. A
//! failed read is counted against its leg and retried by kmirrord on another
//! leg that can serve it (dm-raid1.c's `choose_mirror`, `mirror_map` for
//! reads, `mirror_end_io` for reads and `do_reads`).

use super::kmirrord;
use super::{ErrorKind, MirrorSet};
use crate::binding::bio::{BioList, DmBio, Status};
use crate::binding::dm::EndIoBio;
use crate::binding::target::TargetBorrow;
use kernel::prelude::*;

impl MirrorSet {
    /// The leg to read `bio` from: for an in-sync region, the default leg
    /// or else the nearest one before it (wrapping round, the order of the
    /// C target) that has no errors and was not tried yet; for a region out
    /// of sync, only the default leg (others may be stale), if it has no
    /// errors and was not tried.
    pub(crate) fn choose_read_leg(&self, bio: &DmBio<Self>) -> Option<usize> {
        let tried = bio.data().tried;
        let usable = |i: usize| self.leg_can_serve(tried, i);
        let default = self.default_leg_index();
        if !self.region_in_sync(self.geo.region_of(bio.sector())) {
            return usable(default).then_some(default);
        }
        // No `%`: its division-by-zero panic path upsets objtool.
        let n = self.legs.len();
        let d = default.min(n.saturating_sub(1));
        Iterator::chain((0..=d).rev(), (d + 1..n).rev()).find(|&i| usable(i))
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
        let data = bio.data_mut();
        data.read_region = region;
        data.read_leg = leg;
        data.tried |= 1 << leg;
        let sector = l.offset + self.geo.target_offset(bio.sector());
        bio.remap(&l.dev, sector);
        true
    }

    /// A read completed. A failed one is counted against its leg and, if
    /// another leg can serve it, handed to kmirrord to be sent there.
    pub(super) fn read_done(this: TargetBorrow<'_, Self>, bio: &mut EndIoBio<'_, Self>) {
        let st = bio.status();
        // A failed read-ahead says little about the leg (C ignores it too).
        if st.is_ok() || st == Status::NOTSUPP || bio.is_readahead() {
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
        match ms.choose_read_leg(&bio) {
            Some(leg) if ms.remap_read(&mut bio, leg) => bio.submit_remapped(),
            _ => bio.endio(Status::IOERR),
        }
    }
}
