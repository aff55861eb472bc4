// SPDX-License-Identifier: GPL-2.0

//! Recovery: regions out of sync are copied from the default leg to the
//! others with kcopyd, up to [`MAX_RECOVERY`] at a time, once the writes in
//! flight to them are done (dm-raid1.c's `recover`, `do_recovery` and
//! `recovery_complete`).

use super::kmirrord::wake;
use super::{ErrorKind, MirrorSet};
use crate::binding::dmio::IoRegion;
use crate::binding::kcopyd::CopyDone;
use crate::binding::target::TargetRef;
use crate::region_hash::DirtyLog;
use crate::MAX_LEGS;
use core::sync::atomic::Ordering;

/// Regions recovered at the same time.
pub(crate) const MAX_RECOVERY: usize = 4;

impl MirrorSet {
    pub(crate) fn copy_started(&self) {
        let mut c = self.copies.lock();
        *c = c.saturating_add(1);
    }

    pub(crate) fn copy_ended(&self) {
        let mut c = self.copies.lock();
        *c = c.saturating_sub(1);
        if *c == 0 {
            self.copies_done.notify_all();
        }
    }

    pub(super) fn wait_for_copies(&self) {
        let mut c = self.copies.lock();
        while *c != 0 {
            self.copies_done.wait(&mut c);
        }
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
        ms.record_background(ms.geo.region_extent(self.key).1);
        ms.copy_ended();
        wake(ms.borrow());
    }
}

pub(super) fn do_recovery(ms: &TargetRef<MirrorSet>) {
    if ms.recovery_stopped.load(Ordering::Acquire) {
        return;
    }
    // Choose regions to recover. Paced background work asks first, once
    // per pass (`background_may_start`); if it must wait, a pause is under
    // way, after which kmirrord runs again.
    let nr_regions = u64::from(ms.geo.nr_regions());
    let mut may_start = None;
    loop {
        {
            let g = ms.rh.lock();
            if g.hash.recovering() as usize >= MAX_RECOVERY || g.log.sync_count() >= nr_regions {
                break;
            }
        }
        if !*may_start.get_or_insert_with(|| MirrorSet::background_may_start(ms.borrow())) {
            break;
        }
        let key = {
            let mut g = ms.rh.lock();
            match g.log.get_resync_work() {
                Some(k) => k,
                None => break,
            }
        };
        if ms.ensure_region(key).is_err() {
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
