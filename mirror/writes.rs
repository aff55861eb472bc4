// SPDX-License-Identifier: GPL-2.0

//! Writes: kmirrord marks each write's region dirty in the log and flushes
//! the log before any data goes out, then writes every leg with one dm-io
//! request (a region out of sync: the default leg only); writes to a region
//! under recovery wait for the copy (dm-raid1.c's `do_writes`, `do_write`
//! and `write_callback`).

use super::kmirrord;
use super::{ErrorKind, MirrorSet};
use crate::binding::bio::{BioList, DmBio, Op, ReqOp, Status};
use crate::binding::dmio::{IoBits, IoDone, IoRegion};
use crate::binding::gaps::{cond_resched, io_error_ratelimit};
use crate::binding::target::TargetBorrow;
use crate::region_state::WriteRoute;
use crate::MAX_LEGS;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

pub(super) fn do_writes(
    ms: &MirrorSet,
    mut writes: BioList<MirrorSet>,
    failures: &mut BioList<MirrorSet>,
) {
    let mut all = BioList::new();
    let mut default_only = BioList::new();
    while let Some(mut bio) = writes.pop() {
        // A pass may take thousands of bios (buffered writeback comes a
        // page at a time); other tasks get the CPU between them.
        cond_resched();
        if bio.op() == Op::Discard || bio.sectors() == 0 {
            // Flushes and discards touch no region's data state.
            all.push(bio);
            continue;
        }
        let key = ms.geo.region_of(bio.sector());
        if ms.ensure_region(key).is_err() {
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
                // `ensure_region` just made the entry, and only kmirrord
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
        cond_resched();
        write_all_legs(ms, bio);
    }
    if handle && !ms.features.keep_log && ms.leg_failure.load(Ordering::Relaxed) {
        // Writing only the default leg would leave a failed leg further
        // behind: hold these too.
        failures.append(&mut default_only);
    }
    while let Some(mut bio) = default_only.pop() {
        cond_resched();
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
    let op = base.with(bio.write_flags());
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

impl IoDone for MirrorSet {
    fn bio_io_done(this: TargetBorrow<'_, Self>, bio: DmBio<Self>, bits: IoBits) {
        if bits.all_ok() {
            bio.endio(Status::OK);
            return;
        }
        if bio.op() == Op::Discard {
            // A failed discard says nothing about the leg's health.
            bio.endio(Status::NOTSUPP);
            return;
        }
        if bits.failed == 0 {
            // Legs that refused the write as unsupported or invalid (an
            // atomic write one of them cannot do) have not failed: the write
            // fails, the legs stay (C 1.15.0 does the same; 7.3 only).
            bio.endio(Status::INVAL);
            return;
        }
        for i in 0..this.legs.len() {
            if bits.failed & (1 << i) != 0 {
                this.fail_leg(i, ErrorKind::Write);
            }
        }
        // The rest (the region goes out of sync; the write is held, failed
        // or completed) is kmirrord's, which may sleep to raise the event.
        kmirrord::queue_bio(this, bio, |q| &mut q.failures);
    }
}
