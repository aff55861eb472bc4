// SPDX-License-Identifier: GPL-2.0

//! The target functions (dm-raid1.c's "Target functions" section): the
//! constructor, destructor, map, end_io, suspend and resume, status and
//! message.

use super::kmirrord;
use super::legs::{LegErrorCounts, LegReads};
use super::scrub::{ScrubBufs, ScrubCtl};
use super::{new_region_hash, BioData, Leg, LogArgsOwned, MirrorSet, Queues, RhCore};
use crate::binding::bio::{BioList, DmBio, Op};
use crate::binding::bounded_writer::BoundedWriter;
use crate::binding::compat::AsDisplay;
use crate::binding::dm::{
    CtrError, DeviceVisitor, EndIoBio, MapResult, StatusType, TargetOps, TargetSetup, VisitStop,
};
use crate::binding::dmio::IoClient;
use crate::binding::gaps::lock::new_irq_spinlock;
use crate::binding::gaps::wq::OwnedQueue;
use crate::binding::kcopyd::KcopydClient;
use crate::binding::target::{TargetBorrow, TargetState};
use crate::dirty_log::{self, new_log, DiskLogDev};
use crate::mempool::FallbackPool;
use crate::read_policy::ReadPolicy;
use crate::region_hash::RegionGeometry;
use crate::scrub::{parse_sync_message, write_sync_action, SyncMessage};
use crate::table::{self, LegArg, LogArgs, LogKind, LogStatus, MirrorTable};
use crate::{MAX_LEGS, VERSION};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use kernel::alloc::VVec;
use kernel::c_str;
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, new_spinlock};
use kernel::workqueue::new_work;

fn ctr_err(e: table::TableError) -> CtrError {
    CtrError::inval(e.message())
}

fn nomem<E>(_: E) -> CtrError {
    CtrError::new(c"Cannot allocate mirror context", ENOMEM)
}

/// Opens the disk log's device and its I/O buffer (nothing for a core log).
fn open_log(
    ti: &TargetSetup<'_>,
    t: &MirrorTable<'_>,
    nr_regions: u32,
) -> Result<(Option<DiskLogDev>, VVec<u8>), CtrError> {
    match (t.log.kind, t.log.dev) {
        (LogKind::Disk, Some(path)) => {
            let log_err = |e| CtrError::new(c"Error creating mirror dirty log", e);
            let dev = ti.get_device(path).map_err(log_err)?;
            let (d, buf) = DiskLogDev::new(dev, nr_regions).map_err(log_err)?;
            Ok((Some(d), buf))
        }
        _ => Ok((None, VVec::new())),
    }
}

/// Opens every leg and checks that the mirrored area fits on it.
fn open_legs(ti: &TargetSetup<'_>, t: &MirrorTable<'_>, len: u64) -> Result<KVec<Leg>, CtrError> {
    let mut legs = KVec::with_capacity(t.legs().len(), GFP_KERNEL).map_err(nomem)?;
    for LegArg { path, offset } in t.legs() {
        let dev = ti
            .get_device(path)
            .map_err(|e| CtrError::new(c"Device lookup failure", e))?;
        let fits = offset
            .checked_add(len)
            .is_some_and(|end| end <= dev.size_sectors());
        if !fits {
            return Err(CtrError::inval(
                c"Mirror leg lies beyond the end of its device",
            ));
        }
        legs.push(
            Leg {
                dev,
                offset: *offset,
                errors: LegErrorCounts::default(),
                reads: LegReads::default(),
            },
            GFP_KERNEL,
        )
        .map_err(nomem)?;
    }
    Ok(legs)
}

#[vtable]
impl TargetOps for MirrorSet {
    type BioData = BioData;

    // A write goes to every leg in one dm-io request with its flags, or as
    // it came to the default leg alone (a region out of sync), and never
    // crosses a region (device-mapper splits bios at `max_io_len`, and
    // refuses an atomic write it would have to split).
    const ATOMIC_WRITES: bool = true;

    fn ctr(ti: &mut TargetSetup<'_>, args: &[&str]) -> Result<TargetState<Self>, CtrError> {
        // In steps, as the C target: parse, open the log (a disk log needs
        // its device), open the legs, then build the set.
        let len = ti.len();
        let t: MirrorTable<'_> = table::parse(args, len).map_err(ctr_err)?;
        let nr_regions = t.nr_regions(len);
        let (disk_log, log_buf) = open_log(ti, &t, nr_regions)?;
        let legs = open_legs(ti, &t, len)?;
        let region_size = t.log.region_size;
        let log = new_log(nr_regions, t.log.sync).map_err(nomem)?;
        let hash = new_region_hash(nr_regions).map_err(nomem)?;
        let regions = FallbackPool::new().map_err(nomem)?;
        let kcopyd =
            KcopydClient::new().map_err(|e| CtrError::new(c"Couldn't create kcopyd client", e))?;
        let io_client =
            IoClient::new().map_err(|e| CtrError::new(c"Error creating dm_io client", e))?;
        let wq = OwnedQueue::new_mem_reclaim(c_str!("kmirrord"))
            .map_err(|e| CtrError::new(c"couldn't start kmirrord", e))?;
        ti.set_max_io_len(region_size)
            .map_err(|e| CtrError::new(c"Invalid region size", e))?;
        ti.set_num_flush_bios(1);
        ti.set_num_discard_bios(1);

        let ms = pin_init!(MirrorSet {
            target: ti.target(),
            legs,
            geo: RegionGeometry::new(ti.target().begin(), len, region_size, nr_regions),
            default_leg: AtomicUsize::new(0),
            read_policy: AtomicU8::new(ReadPolicy::default().to_u8()),
            log_args: LogArgsOwned {
                kind: t.log.kind,
                region_size,
                sync: t.log.sync,
            },
            features: t.features,
            rh <- new_irq_spinlock!(RhCore { hash, log }, "MirrorSet::rh"),
            disk_log,
            log_buf <- new_mutex!(log_buf, "MirrorSet::log_buf"),
            log_health: AtomicU8::new(0),
            log_failure: AtomicBool::new(false),
            regions,
            io_client,
            kcopyd,
            recovery_stopped: AtomicBool::new(true),
            in_sync: AtomicBool::new(false),
            leg_failure: AtomicBool::new(false),
            suspended: AtomicBool::new(false),
            event_pending: AtomicBool::new(false),
            copies <- new_spinlock!(0, "MirrorSet::copies"),
            copies_done <- new_condvar!("MirrorSet::copies_done"),
            queues <- new_irq_spinlock!(
                Queues {
                    writes: BioList::new(),
                    reads: BioList::new(),
                    failures: BioList::new(),
                    holds: BioList::new(),
                },
                "MirrorSet::queues"
            ),
            work <- new_work!("MirrorSet::work"),
            scrub <- new_mutex!(
                ScrubCtl::new(nr_regions, u64::from(region_size), len),
                "MirrorSet::scrub"
            ),
            scrub_wake <- new_condvar!("MirrorSet::scrub_wake"),
            scrub_bufs <- new_mutex!(ScrubBufs::new(), "MirrorSet::scrub_bufs"),
            fg_ios: AtomicU64::new(0),
            paced: AtomicBool::new(false),
            scrub_work <- new_work!("MirrorSet::scrub_work"),
            bg_wq <- new_mutex!(None, "MirrorSet::bg_wq"),
            wq,
        });
        let ms = TargetState::new(ms)
            .map_err(|e| CtrError::new(c"Cannot allocate mirror context", e))?;
        // A first pass, as the C target does: it notes a set that is in
        // sync from the start.
        kmirrord::wake(ms.borrow());
        Ok(ms)
    }

    fn dtr(this: TargetBorrow<'_, Self>) {
        // No new recovery (a table that was never resumed has none anyway).
        // Passes still queued, and copies and I/O completions still running,
        // hold references: the binding drops the set after the last of them.
        this.recovery_stopped.store(true, Ordering::Release);
        this.interrupt_pause();
    }

    fn map(this: TargetBorrow<'_, Self>, mut bio: DmBio<Self>) -> MapResult<Self> {
        this.note_foreground();
        match bio.op() {
            Op::Read => {
                let region = this.geo.region_of(bio.sector());
                if bio.is_readahead() && !this.region_in_sync(region) {
                    // Read-ahead is optional; don't spend effort on regions
                    // that may differ between legs.
                    return MapResult::Kill(bio);
                }
                match this.choose_read_leg(&bio) {
                    Some(leg) if this.remap_read(&mut bio, leg) => MapResult::Remapped(bio),
                    // No leg can serve it: fail the read.
                    _ => MapResult::Kill(bio),
                }
            }
            Op::Write | Op::Discard => {
                kmirrord::queue_bio(this, bio, |q| &mut q.writes);
                MapResult::Submitted
            }
            Op::Other => MapResult::Kill(bio),
        }
    }

    fn end_io(this: TargetBorrow<'_, Self>, bio: &mut EndIoBio<'_, Self>) {
        if bio.is_read() {
            return Self::read_done(this, bio);
        }
        if let Some(key) = bio.data().region {
            if this.rh.lock().hash.end_write(key) {
                kmirrord::wake(this);
            }
        }
    }

    fn presuspend(this: TargetBorrow<'_, Self>) {
        // Held writes are completed now, and from here on as they come.
        let mut held = {
            let mut q = this.queues.lock();
            this.suspended.store(true, Ordering::Release);
            let mut held = BioList::new();
            held.append(&mut q.holds);
            held
        };
        while let Some(bio) = held.pop() {
            this.hold(bio);
        }
        // No new recovery, check or repair, and no pause; regions waiting to
        // be copied go back to the log's resync scan (a scrub's stays in
        // sync), and copies and compares already running are waited for.
        this.recovery_stopped.store(true, Ordering::Release);
        this.interrupt_pause();
        this.abandon_quiescing();
        this.wait_for_copies();
        // Let kmirrord record the ended copies and release held writes.
        kmirrord::wake(this);
        this.wq.flush();
        // A pass that was running when recovery stopped may have chosen a
        // region after the first look: give it back too. The check or
        // repair keeps its place for the resume.
        if this.abandon_quiescing() {
            kmirrord::wake(this);
        }
        this.pause_scrub();
    }

    fn resume(this: TargetBorrow<'_, Self>) {
        this.suspended.store(false, Ordering::Release);
        dirty_log::resume(&this, this.log_args.sync);
        this.recovery_stopped.store(false, Ordering::Release);
        kmirrord::wake(this);
    }

    fn message(this: TargetBorrow<'_, Self>, args: &[&str], out: &mut BoundedWriter<'_>) -> Result {
        Self::message(this, args, out)
    }

    fn status(this: TargetBorrow<'_, Self>, ty: StatusType, out: &mut BoundedWriter<'_>) {
        // A full buffer truncates the line; device-mapper then retries with
        // a bigger one.
        let _ = match ty {
            StatusType::Info => this.write_info(out),
            StatusType::Table => this.write_table(out),
            StatusType::Ima => this.write_ima(out),
        };
    }

    fn iterate_devices(
        this: TargetBorrow<'_, Self>,
        visit: &mut DeviceVisitor<'_>,
    ) -> core::result::Result<(), VisitStop> {
        let len = this.target.len();
        for leg in this.legs.iter() {
            visit.visit(&leg.dev, leg.offset, len)?;
        }
        Ok(())
    }
}

impl MirrorSet {
    /// `dmsetup message <dev> 0 stats`: the region allocation counters,
    /// then the read policy and, per leg, the reads it served and those in
    /// flight. `dmsetup message <dev> 0 read_policy default_leg|balance`:
    /// sets how reads of in-sync regions are routed.
    fn message(this: TargetBorrow<'_, Self>, args: &[&str], out: &mut BoundedWriter<'_>) -> Result {
        if let Some(m) = parse_sync_message(args) {
            return Self::sync_message(this, m, out);
        }
        let st = &this.regions.stats;
        match args {
            ["stats"] => {
                let (entries, in_sync) = {
                    let g = this.rh.lock();
                    (g.hash.len(), g.log.sync_count())
                };
                write!(
                    out,
                    "region_alloc_atomic={} region_alloc_fallback={} region_alloc_injected={} \
                     regions_hashed={} in_sync={}/{}",
                    st.atomic.load(Ordering::Relaxed),
                    st.fallback.load(Ordering::Relaxed),
                    st.injected.load(Ordering::Relaxed),
                    entries,
                    in_sync,
                    this.geo.nr_regions()
                )
                .map_err(|_| ENOSPC)?;
                this.write_read_stats(out).map_err(|_| ENOSPC)?;
                let r = this.rates();
                write!(
                    out,
                    " max_recovery_rate={} min_recovery_rate={}",
                    r.max_kbs, r.min_kbs
                )
                .map_err(|_| ENOSPC)
            }
            ["read_policy", name] => match ReadPolicy::parse(name) {
                Some(p) => {
                    this.set_read_policy(p);
                    Ok(())
                }
                None => {
                    pr_err!(
                        "read_policy: unknown policy \"{}\": use default_leg or balance\n",
                        name
                    );
                    Err(EINVAL)
                }
            },
            ["read_policy", ..] => {
                pr_err!(
                    "read_policy takes one argument (default_leg or balance), got {}\n",
                    args.len().saturating_sub(1)
                );
                Err(EINVAL)
            }
            _ => {
                pr_warn!(
                    "unrecognised message \"{}\" ({} words): the mirror knows stats, \
                     read_policy default_leg|balance, check, repair, idle, sync_action, \
                     max_recovery_rate <kB/s> and min_recovery_rate <kB/s>\n",
                    args.first().copied().unwrap_or(""),
                    args.len()
                );
                Err(EINVAL)
            }
        }
    }

    /// The messages of check, repair and the recovery rates, in dm-raid's
    /// words (see `crate::scrub`).
    fn sync_message(
        this: TargetBorrow<'_, Self>,
        m: core::result::Result<SyncMessage, crate::scrub::SyncMessageError>,
        out: &mut BoundedWriter<'_>,
    ) -> Result {
        let m = m.map_err(|e| {
            pr_err!("{}\n", AsDisplay(&e));
            EINVAL
        })?;
        match m {
            SyncMessage::Start(kind) => Self::start_scrub(this, kind),
            SyncMessage::Idle => {
                Self::stop_scrub(this);
                Ok(())
            }
            SyncMessage::Report => {
                let (action, done, total, mismatch) = this.sync_action();
                write_sync_action(out, action, done, total, mismatch).map_err(|_| ENOSPC)
            }
            SyncMessage::MaxRate(kbs) => this.set_rates(|r| r.with_max(kbs)),
            SyncMessage::MinRate(kbs) => this.set_rates(|r| r.with_min(kbs)),
        }
    }

    /// Gives up the regions chosen for recovery (or a scrub) whose copy has
    /// not started; the writes they held are queued for kmirrord (a suspend
    /// waits for them). Returns whether any was given up.
    fn abandon_quiescing(&self) -> bool {
        let mut released = BioList::new();
        let n = {
            let mut g = self.rh.lock();
            let rh = &mut *g;
            rh.hash.abandon_quiescing(&mut rh.log, &mut released)
        };
        // Writes held for an abandoned recovery must not wait for a resume
        // (device-mapper waits for them before the suspend completes).
        self.queues.lock().writes.append(&mut released);
        n != 0
    }

    /// The `stats` fields of reads: ` read_policy=<name> leg_reads=<n0>,<n1>...
    /// leg_pending=<p0>,<p1>...` (reads each leg completed without error,
    /// and has in flight).
    fn write_read_stats(&self, out: &mut impl Write) -> core::fmt::Result {
        write!(out, " read_policy={}", self.read_policy().name())?;
        for (field, served) in [(" leg_reads=", true), (" leg_pending=", false)] {
            out.write_str(field)?;
            for (i, leg) in self.legs.iter().enumerate() {
                if i > 0 {
                    out.write_str(",")?;
                }
                if served {
                    write!(out, "{}", leg.reads.served())?;
                } else {
                    write!(out, "{}", leg.reads.pending())?;
                }
            }
        }
        Ok(())
    }

    fn write_table(&self, out: &mut impl Write) -> core::fmt::Result {
        let log = LogArgs {
            kind: self.log_args.kind,
            dev: None,
            region_size: self.log_args.region_size,
            sync: self.log_args.sync,
        };
        let logdev = self.disk_log.as_ref().map(|d| d.dev.name());
        table::write_table_log(out, &log, logdev)?;
        let legs = self.legs.iter().map(|l| (l.dev.name(), l.offset));
        table::write_table_legs(out, legs, &self.features)
    }

    fn write_info(&self, out: &mut impl Write) -> core::fmt::Result {
        let mut names = [""; MAX_LEGS];
        let mut health = [b'A'; MAX_LEGS];
        for ((n, h), leg) in names
            .iter_mut()
            .zip(health.iter_mut())
            .zip(self.legs.iter())
        {
            *n = leg.dev.name();
            *h = leg.errors.health();
        }
        let nr = self.legs.len();
        let log_status = match self.disk_log.as_ref() {
            None => LogStatus::Core,
            Some(d) => LogStatus::Disk {
                dev: d.dev.name(),
                health: dirty_log::log_health_char(self.log_health.load(Ordering::Relaxed)),
            },
        };
        table::write_status(
            out,
            names.get(..nr).unwrap_or(&[]),
            health.get(..nr).unwrap_or(&[]),
            self.rh.lock().log.sync_count(),
            u64::from(self.geo.nr_regions()),
            log_status,
        )
    }

    fn write_ima(&self, out: &mut impl Write) -> core::fmt::Result {
        write!(
            out,
            "target_name=mirror,target_version={}.{}.{},nr_mirrors={}",
            VERSION[0],
            VERSION[1],
            VERSION[2],
            self.legs.len()
        )?;
        for (i, leg) in self.legs.iter().enumerate() {
            write!(
                out,
                ",mirror_device_{i}={},mirror_device_{i}_status={}",
                leg.dev.name(),
                char::from(leg.errors.health())
            )?;
        }
        let yn = |b: bool| if b { 'y' } else { 'n' };
        write!(
            out,
            ",handle_errors={},keep_log={},log_type_status=;",
            yn(self.features.handle_errors),
            yn(self.features.keep_log)
        )
    }
}
