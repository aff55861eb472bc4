// SPDX-License-Identifier: GPL-2.0

//! Check and repair, and the pace of background work (no counterpart in
//! dm-raid1.c; md's `sync_action` and dm-raid's messages are the model).
//!
//! A check or repair walks the regions that are in sync, one at a time:
//! 1. kmirrord (`do_scrub`) takes the next region from the pass
//!    (`crate::scrub::ScrubPass`) and quiesces it the way a region chosen
//!    for recovery is quiesced (`RegionHash::begin_scrub`): new writes to it
//!    wait in its entry, and once the writes in flight have ended
//!    (`try_start_scrub`) the compare may start. Regions out of sync are
//!    passed over: resync owns them.
//! 2. The compare runs in the background work item (`run_background`), off
//!    kmirrord, as synchronous dm-io: each leg's copy of a chunk of the region
//!    is read into its own buffer, and `crate::scrub::compare_region` votes
//!    over every 4 KiB unit. A repair writes the winner's copy of each odd
//!    unit over the legs that differ (or could not be read).
//! 3. The region's "recovery" ends (`end_recovery`): in sync if nothing
//!    failed, out of sync (to be resynced) if a rewrite failed. kmirrord's
//!    next pass releases the writes that waited, and takes the next region.
//!
//! A suspend gives back a region still waiting for its writes (it stays in
//! sync) and waits for a compare that runs, as for recovery copies; the pass
//! keeps its place and goes on after the resume. `idle` stops the pass.
//!
//! Pace: resync copies and compares record what they moved in one `Pacer`
//! per set. With a `max_recovery_rate` or `min_recovery_rate` set, kmirrord
//! starts no new background piece while the pacer says to wait; the
//! background work item then sleeps that long (woken early by `idle`, a rate
//! change, a suspend or the destructor) and wakes kmirrord. With neither set,
//! background work is not paced, as in the C target.

use super::kmirrord::wake;
use super::{ErrorKind, MirrorSet};
use crate::binding::bio::ReqOp;
use crate::binding::compat::AsDisplay;
use crate::binding::dmio::{IoRegion, SyncMem};
use crate::binding::gaps::clock::monotonic_ms;
use crate::binding::gaps::wq::OwnedQueue;
use crate::binding::target::{TargetBorrow, TargetRef};
use crate::region_hash::DirtyLog;
use crate::scrub::{compare_region, Next, Pacer, Rates, ScrubKind, ScrubPass, COMPARE_UNIT_BYTES};
use crate::MAX_LEGS;
use core::sync::atomic::Ordering;
use kernel::alloc::VVec;
use kernel::c_str;
use kernel::prelude::*;
use kernel::sync::CondVarTimeoutResult;
use kernel::time::msecs_to_jiffies;
use kernel::workqueue::WorkItem;

/// Bytes of one leg's copy read at a time (at most a region).
const CHUNK_BYTES: usize = 64 * 1024;

/// The longest single pause (ms): a pause is cut into pieces this long so
/// that a changed rate applies soon.
const MAX_PAUSE_MS: u32 = 1000;

/// Where the scrub stands with its current region.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No region is taken.
    Idle,
    /// Region chosen, waiting for its writes in flight to end.
    Quiescing(u32),
    /// The background work item compares the region.
    Comparing(u32),
}

/// Check/repair progress and the pace of background work of one set.
pub(crate) struct ScrubCtl {
    pass: ScrubPass,
    phase: Phase,
    rates: Rates,
    pacer: Pacer,
    /// The foreground I/O count at the last pace decision.
    fg_seen: u64,
    /// A pause asked for by kmirrord (ms); the background work item sleeps
    /// it and wakes kmirrord.
    pause_ms: u32,
    /// Cut a running pause short (idle, rate change, suspend, destructor).
    interrupt: bool,
}

impl ScrubCtl {
    pub(crate) fn new(nr_regions: u32, region_sectors: u64, total_sectors: u64) -> Self {
        ScrubCtl {
            pass: ScrubPass::new(nr_regions, region_sectors, total_sectors),
            phase: Phase::Idle,
            rates: Rates::default(),
            pacer: Pacer::new(monotonic_ms()),
            fg_seen: 0,
            pause_ms: 0,
            interrupt: false,
        }
    }
}

/// The buffers of a compare: one chunk per leg, and one compare unit for
/// the rewrites of a repair. Allocated when the first check or repair of the
/// set starts (process context), kept until the set goes.
pub(crate) struct ScrubBufs {
    legs: KVec<VVec<u8>>,
    unit: VVec<u8>,
}

impl ScrubBufs {
    /// No buffers yet.
    pub(crate) fn new() -> Self {
        ScrubBufs {
            legs: KVec::new(),
            unit: VVec::new(),
        }
    }

    fn ensure(&mut self, nr_legs: usize, chunk: usize) -> Result {
        if self.legs.len() == nr_legs && self.unit.len() == COMPARE_UNIT_BYTES {
            return Ok(());
        }
        let mut legs = KVec::with_capacity(nr_legs, GFP_KERNEL)?;
        for _ in 0..nr_legs {
            let mut b = VVec::with_capacity(chunk, GFP_KERNEL)?;
            b.extend_with(chunk, 0, GFP_KERNEL)?;
            legs.push(b, GFP_KERNEL)?;
        }
        let mut unit = VVec::with_capacity(COMPARE_UNIT_BYTES, GFP_KERNEL)?;
        unit.extend_with(COMPARE_UNIT_BYTES, 0, GFP_KERNEL)?;
        self.legs = legs;
        self.unit = unit;
        Ok(())
    }
}

impl MirrorSet {
    /// Bytes of a chunk: the region, up to `CHUNK_BYTES`.
    fn chunk_bytes(&self) -> usize {
        let region = self.geo.region_extent(0).1;
        usize::try_from(region.saturating_mul(512))
            .unwrap_or(CHUNK_BYTES)
            .clamp(512, CHUNK_BYTES)
    }

    /// `check` or `repair` (process context): starts a pass from the first
    /// region.
    pub(super) fn start_scrub(this: TargetBorrow<'_, Self>, kind: ScrubKind) -> Result {
        if this.legs.len() < 2 {
            pr_err!(
                "{}: a mirror of one leg has nothing to compare\n",
                kind.action().name()
            );
            return Err(EINVAL);
        }
        this.scrub_bufs
            .lock()
            .ensure(this.legs.len(), this.chunk_bytes())?;
        this.ensure_bg_queue()?;
        {
            let mut c = this.scrub.lock();
            if let Err(e) = c.pass.start(kind) {
                pr_err!("{}: {}\n", kind.action().name(), AsDisplay(&e));
                return Err(EBUSY);
            }
        }
        wake(this);
        Ok(())
    }

    /// `idle`: stops a running check or repair. Its region in flight ends
    /// as it would have.
    pub(super) fn stop_scrub(this: TargetBorrow<'_, Self>) {
        let stopped = {
            let mut c = this.scrub.lock();
            c.interrupt = true;
            this.scrub_wake.notify_all();
            c.pass.stop()
        };
        if stopped {
            // The pass ended: a table event, raised by kmirrord.
            this.event_pending.store(true, Ordering::Relaxed);
            wake(this);
        }
    }

    /// New rates: the next pace decision uses them; a running pause is cut
    /// short so a higher rate applies at once.
    pub(super) fn set_rates(
        &self,
        change: impl FnOnce(Rates) -> core::result::Result<Rates, crate::scrub::RateError>,
    ) -> Result {
        self.ensure_bg_queue()?;
        let mut c = self.scrub.lock();
        match change(c.rates) {
            Ok(r) => {
                c.rates = r;
                self.paced.store(r != Rates::default(), Ordering::Relaxed);
                // The new rates apply to what is done from now on.
                c.pacer.restart(monotonic_ms());
                c.interrupt = true;
                self.scrub_wake.notify_all();
                Ok(())
            }
            Err(e) => {
                pr_err!("{}\n", AsDisplay(&e));
                Err(EINVAL)
            }
        }
    }

    /// The rates, for `stats`.
    pub(super) fn rates(&self) -> Rates {
        self.scrub.lock().rates
    }

    /// What `sync_action` reports: the action, the sectors done and in all,
    /// and the mismatch count.
    pub(super) fn sync_action(&self) -> (crate::scrub::SyncAction, u64, u64, u64) {
        let in_sync = self.rh.lock().log.sync_count();
        let c = self.scrub.lock();
        let total = c.pass.total_sectors();
        if c.pass.running() {
            if let Some(k) = c.pass.kind() {
                return (
                    k.action(),
                    c.pass.done_sectors(),
                    total,
                    c.pass.mismatch_sectors(),
                );
            }
        }
        if in_sync < u64::from(self.geo.nr_regions()) {
            // the in-sync part, in sectors (the last region may be short)
            let region = self.geo.region_extent(0).1;
            let done = in_sync.saturating_mul(region).min(total);
            return (
                crate::scrub::SyncAction::Resync,
                done,
                total,
                c.pass.mismatch_sectors(),
            );
        }
        (
            crate::scrub::SyncAction::Idle,
            c.pass.done_sectors(),
            total,
            c.pass.mismatch_sectors(),
        )
    }

    /// Counts one foreground I/O (map), so background work can yield; only
    /// while a rate is set.
    pub(super) fn note_foreground(&self) {
        if self.paced.load(Ordering::Relaxed) {
            self.fg_ios.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether background work may start a new piece now. If not, a pause
    /// is asked of the background work item, which wakes kmirrord after it.
    pub(super) fn background_may_start(this: TargetBorrow<'_, Self>) -> bool {
        {
            let mut c = this.scrub.lock();
            if c.rates == Rates::default() {
                // Unpaced: nothing done now is owed once a rate is set.
                c.pacer.restart(monotonic_ms());
                return true;
            }
            if c.pause_ms != 0 {
                return false; // a pause is under way
            }
            let fg = this.fg_ios.load(Ordering::Relaxed);
            let foreground = fg != c.fg_seen;
            c.fg_seen = fg;
            let rates = c.rates;
            let ms = c.pacer.delay(monotonic_ms(), rates, foreground);
            if ms == 0 {
                return true;
            }
            c.pause_ms = ms.min(MAX_PAUSE_MS);
            c.interrupt = false;
        }
        Self::enqueue_background(this);
        false
    }

    /// Makes the background work item's queue if it has none yet (process
    /// context).
    fn ensure_bg_queue(&self) -> Result {
        let mut q = self.bg_wq.lock();
        if q.is_none() {
            *q = Some(OwnedQueue::new_mem_reclaim(c_str!("kmirrord-bg"))?);
        }
        Ok(())
    }

    /// Queues the background work item (holding a reference to the set).
    /// Its queue exists: made when the check, repair or rate that asks for
    /// the work was set.
    fn enqueue_background(this: TargetBorrow<'_, Self>) {
        if let Some(q) = this.bg_wq.lock().as_ref() {
            q.enqueue::<_, 1>(this.to_ref());
        }
    }

    /// Cuts a running pause short (suspend, destructor).
    pub(super) fn interrupt_pause(&self) {
        let mut c = self.scrub.lock();
        c.interrupt = true;
        self.scrub_wake.notify_all();
    }

    /// Background work moved `sectors` per leg (a resync copy or a compare).
    pub(super) fn record_background(&self, sectors: u64) {
        let mut c = self.scrub.lock();
        c.pacer.record(monotonic_ms(), sectors / 2);
    }

    /// A suspend or the destructor: a pause ends at once, a region still
    /// waiting for its writes was given back (`abandon_quiescing`), and the
    /// pass hands it out again after the resume. Called after the compare
    /// in flight, if any, has ended (`wait_for_copies`).
    pub(super) fn pause_scrub(&self) {
        let mut c = self.scrub.lock();
        if let Phase::Quiescing(_) = c.phase {
            c.phase = Phase::Idle;
        }
        c.pass.abandon_in_flight();
    }
}

/// kmirrord's part of a check or repair: ends the pass, starts the compare
/// of a quiesced region, or takes the next region.
pub(super) fn do_scrub(ms: &TargetRef<MirrorSet>) {
    if ms.recovery_stopped.load(Ordering::Acquire) {
        return;
    }
    let phase = ms.scrub.lock().phase;
    match phase {
        Phase::Comparing(_) => {}
        Phase::Quiescing(key) => {
            if ms.rh.lock().hash.try_start_scrub(key) {
                start_compare(ms, key);
            }
        }
        Phase::Idle => {
            if !ms.scrub.lock().pass.running() || !MirrorSet::background_may_start(ms.borrow()) {
                return;
            }
            take_next_region(ms);
        }
    }
}

fn take_next_region(ms: &TargetRef<MirrorSet>) {
    loop {
        let next = {
            let mut c = ms.scrub.lock();
            c.pass.next_region(|r| ms.rh.lock().log.in_sync(r))
        };
        match next {
            Next::Region(key) => {
                if ms.ensure_region(key).is_err() {
                    // No memory for the entry: try this region again later.
                    ms.scrub.lock().pass.abandon_in_flight();
                    return;
                }
                if !ms.rh.lock().hash.begin_scrub(key) {
                    // Out of sync or being recovered by now: resync's.
                    ms.scrub.lock().pass.region_skipped(key);
                    continue;
                }
                ms.scrub.lock().phase = Phase::Quiescing(key);
                if ms.rh.lock().hash.try_start_scrub(key) {
                    start_compare(ms, key);
                }
                return;
            }
            Next::Finished => {
                let (kind, mismatch) = {
                    let c = ms.scrub.lock();
                    (c.pass.kind(), c.pass.mismatch_sectors())
                };
                if let Some(k) = kind {
                    pr_info!(
                        "mirror over {}: {} done, mismatch_cnt {}\n",
                        ms.legs.first().map_or("?", |l| l.dev.name()),
                        k.action().name(),
                        mismatch
                    );
                }
                ms.target.table_event();
                return;
            }
            Next::Wait | Next::Idle => return,
        }
    }
}

fn start_compare(ms: &TargetRef<MirrorSet>, key: u32) {
    ms.scrub.lock().phase = Phase::Comparing(key);
    // A suspend waits for the compare as for a recovery copy.
    ms.copy_started();
    if let Some(q) = ms.bg_wq.lock().as_ref() {
        q.enqueue::<_, 1>(ms.clone());
        return;
    }
    // Not reachable: the check or repair made the queue. Give the region
    // back rather than leave its writes waiting.
    {
        let mut g = ms.rh.lock();
        let rh = &mut *g;
        rh.hash.end_scrub(key, true, &rh.log);
    }
    {
        let mut c = ms.scrub.lock();
        c.pass.region_skipped(key);
        c.phase = Phase::Idle;
    }
    ms.copy_ended();
}

impl WorkItem<1> for MirrorSet {
    type Pointer = TargetRef<MirrorSet>;

    fn run(this: TargetRef<MirrorSet>) {
        run_background(&this);
    }
}

/// The background work item: the compare of the region kmirrord chose, and
/// the pauses of paced background work.
fn run_background(ms: &TargetRef<MirrorSet>) {
    let (phase, kind) = {
        let c = ms.scrub.lock();
        (c.phase, c.pass.kind())
    };
    if let (Phase::Comparing(key), Some(kind)) = (phase, kind) {
        let (start, count) = ms.geo.region_extent(key);
        let outcome = compare(ms, kind, start, count);
        {
            let mut g = ms.rh.lock();
            let rh = &mut *g;
            rh.hash
                .end_scrub(key, outcome != Outcome::RewriteFailed, &rh.log);
        }
        {
            let mut c = ms.scrub.lock();
            match outcome {
                Outcome::Compared(m) => c.pass.region_done(key, m),
                Outcome::NotCompared | Outcome::RewriteFailed => c.pass.region_skipped(key),
            }
            c.phase = Phase::Idle;
        }
        ms.record_background(count);
        ms.copy_ended();
        wake(ms.borrow());
    }
    pause(ms);
}

/// Sleeps a pause kmirrord asked for, unless something cut it short, then
/// wakes kmirrord.
fn pause(ms: &TargetRef<MirrorSet>) {
    let mut c = ms.scrub.lock();
    let ms_left = c.pause_ms;
    if ms_left == 0 {
        return;
    }
    if !c.interrupt {
        // A kworker has no signals to wait for; the result says only
        // whether the time ran out, which the loop does not need.
        let _: CondVarTimeoutResult = ms
            .scrub_wake
            .wait_interruptible_timeout(&mut c, msecs_to_jiffies(ms_left));
    }
    c.pause_ms = 0;
    c.interrupt = false;
    drop(c);
    wake(ms.borrow());
}

/// How the compare of a region ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Compared (and for a repair, rewritten where it differed): the
    /// sectors that differed.
    Compared(u64),
    /// Fewer than two copies could be read (a check), or no copy of some
    /// unit (a repair): nothing to compare; the read errors count against
    /// their legs, and the region stays as it was.
    NotCompared,
    /// A rewrite failed: the legs may differ, so the region goes out of
    /// sync for resync to settle.
    RewriteFailed,
}

/// Compares one region (`count` sectors from `start`, relative to the
/// target) over the legs without errors, and for a repair rewrites the odd
/// copies.
fn compare(ms: &MirrorSet, kind: ScrubKind, start: u64, count: u64) -> Outcome {
    let nr = ms.legs.len().min(MAX_LEGS);
    let default = ms.default_leg_index();
    // Legs with errors are neither read nor rewritten.
    let mut usable = [false; MAX_LEGS];
    for (u, leg) in usable.iter_mut().zip(ms.legs.iter()) {
        *u = !leg.errors.any();
    }
    let mut bufs = ms.scrub_bufs.lock();
    let ScrubBufs {
        legs: bufs_legs,
        unit,
    } = &mut *bufs;
    let chunk_sectors = (bufs_legs.first().map_or(0, |b| b.len()) / 512) as u64;
    if chunk_sectors == 0 {
        return Outcome::NotCompared;
    }
    let mut mismatched = 0u64;
    let mut off = 0u64;
    while off < count {
        let n = chunk_sectors.min(count - off);
        let bytes = (n * 512) as usize;
        let mut readable = [false; MAX_LEGS];
        for (i, (leg, buf)) in ms
            .legs
            .iter()
            .zip(bufs_legs.iter_mut())
            .enumerate()
            .take(nr)
        {
            if !usable[i] {
                continue;
            }
            let region = IoRegion::new(&leg.dev, leg.offset + start + off, n);
            match ms
                .io_client
                .sync_io(&[region], ReqOp::READ, SyncMem::Vmalloc(buf))
            {
                Ok(()) => readable[i] = true,
                Err(_) => {
                    ms.report_scrub_error(i, "read");
                    ms.fail_leg(i, ErrorKind::Read);
                }
            }
        }
        if readable.iter().filter(|r| **r).count() < 2 && kind == ScrubKind::Check {
            return Outcome::NotCompared;
        }
        let mut copies: [Option<&[u8]>; MAX_LEGS] = [None; MAX_LEGS];
        for (i, c) in copies.iter_mut().enumerate().take(nr) {
            if readable[i] {
                *c = bufs_legs.get(i).and_then(|b| b.get(..bytes));
            }
        }
        let mut rewrite_failed = false;
        let verdict = compare_region(&copies[..nr], default, |uoff, ulen, v| {
            if kind != ScrubKind::Repair {
                return;
            }
            let Some(src) = v.source.and_then(|s| copies[s]) else {
                return;
            };
            let (Some(from), Some(to)) = (src.get(uoff..uoff + ulen), unit.get_mut(..ulen)) else {
                return;
            };
            to.copy_from_slice(from);
            let sector = start + off + (uoff / 512) as u64;
            let len = (ulen / 512) as u64;
            for (i, leg) in ms.legs.iter().enumerate().take(nr) {
                if v.stale & (1 << i) == 0 || !usable[i] {
                    continue;
                }
                let region = IoRegion::new(&leg.dev, leg.offset + sector, len);
                if ms
                    .io_client
                    .sync_io(&[region], ReqOp::WRITE, SyncMem::Vmalloc(&mut *unit))
                    .is_err()
                {
                    ms.report_scrub_error(i, "rewrite");
                    ms.fail_leg(i, ErrorKind::Write);
                    rewrite_failed = true;
                }
            }
        });
        mismatched = mismatched.saturating_add(verdict.mismatched_sectors);
        if rewrite_failed {
            return Outcome::RewriteFailed;
        }
        if verdict.unreadable_units != 0 {
            return Outcome::NotCompared;
        }
        off += n;
    }
    Outcome::Compared(mismatched)
}

impl MirrorSet {
    fn report_scrub_error(&self, leg: usize, what: &str) {
        if crate::binding::gaps::io_error_ratelimit() {
            let name = self.legs.get(leg).map_or("?", |l| l.dev.name());
            pr_err!("scrub: {} failed on leg {}\n", what, name);
        }
    }
}
