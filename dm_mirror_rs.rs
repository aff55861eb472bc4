// SPDX-License-Identifier: GPL-2.0

//! dm-mirror-rs: the device-mapper "mirror" target (dm-raid1) in Rust.
//!
//! A mirror keeps 2 to 9 legs identical. Reads go to the default leg; writes,
//! flushes and discards are queued to kmirrord, which sends each one to every
//! leg with a single dm-io request. The table and status lines are those of
//! the C target, so dmsetup, dmraid and LVM drive this module unchanged.
//!
//! Files, in the order a reader of dm-raid1.c meets them: `table.rs` (table
//! syntax and status text, kernel-free), `region_hash.rs`, `dirty_log.rs`,
//! `kmirrord.rs`, and this file (constructor, map, status). The unsafe
//! binding layer is in `binding/`.

// `pin_init!` of `MirrorSet` expands one macro level per field.
#![recursion_limit = "256"]

/// The unsafe binding layer: the API the target is written against.
mod binding;
mod dirty_log;
/// The disk log's on-disk format and resume rules (kernel-free, host-tested
/// and fuzzed).
#[allow(unreachable_pub, dead_code)]
mod disk_log_format;
mod kmirrord;
/// Region bitsets and the core log's logic, shared with the host test crate.
#[allow(unreachable_pub, dead_code)]
mod log_bits;
mod mempool;
mod region_hash;
/// The per-region state machine, shared with the host test crate.
#[allow(unreachable_pub)]
mod region_state;
/// Table arguments and status text, shared with the host test crate.
#[allow(unreachable_pub, dead_code)]
mod table;

use binding::bio::{DmBio, Op, Status};
use binding::bounded_writer::BoundedWriter;
use binding::dm::{
    CtrError, DeviceVisitor, EndIoBio, MapResult, Registration, StatusType, Target, TargetDevice,
    TargetOps, TargetSetup, VisitStop,
};
use binding::dmio::{IoClient, IoDone};
use binding::gaps::debugfs::{DebugDir, DebugFile};
use binding::gaps::lock::{new_irq_spinlock, IrqSpinLock};
use binding::gaps::wq::OwnedQueue;
use binding::kcopyd::KcopydClient;
use binding::target::{TargetBorrow, TargetState};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use dirty_log::{new_log, DirtyLog, DiskLogDev, MirrorLog};
use kernel::alloc::VVec;
use kernel::c_str;
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, new_spinlock, CondVar, Mutex, SpinLock};
use kernel::workqueue::{impl_has_work, new_work, Work};
use mempool::{FallbackPool, PoolSelftest};
use region_hash::{Region, RegionGeometry, RegionHash};
use table::{Features, LegArg, LegErrors, LogArgs, LogKind, LogStatus, MirrorTable};

pub(crate) use table::MAX_LEGS;

module! {
    type: DmMirrorModule,
    name: "dm_mirror_rs",
    author: "dm-mirror-rs developers",
    description: "device-mapper mirror target (dm-raid1) in Rust",
    license: "GPL",
}

/// Version reported to userspace; lvm2 and dmraid want at least 1.14.0.
const VERSION: [u32; 3] = [1, 14, 0];

struct DmMirrorModule {
    _reg: Registration<MirrorSet>,
    // Test knobs: dropped after the registration, the file before its
    // directory.
    _pool_selftest: Option<DebugFile<PoolSelftest>>,
    _debug_dir: Option<DebugDir>,
}

impl Drop for DmMirrorModule {
    fn drop(&mut self) {
        // No mirror is left: destroy the kmirrord queues that were dropped
        // inside a work item (e.g. by a deferred remove).
        binding::gaps::wq::reap_deferred();
    }
}

impl kernel::Module for DmMirrorModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // Test knobs under /sys/kernel/debug/dm_mirror_rs (see mempool.rs);
        // the module works without debugfs.
        let debug_dir = DebugDir::new(c_str!("dm_mirror_rs"));
        mempool::FAIL_REGION_ATOMIC.register(c_str!("fail_region_atomic"), debug_dir.as_ref());
        let pool_selftest = match debug_dir.as_ref() {
            Some(dir) => Some(DebugFile::new(
                c_str!("pool_selftest"),
                dir,
                PoolSelftest::new()?,
            )?),
            None => None,
        };
        let reg = Registration::<MirrorSet>::new(c_str!("mirror"), VERSION, module)?;
        pr_info!(
            "dm-mirror-rs {}.{}.{} registered as \"mirror\"\n",
            VERSION[0],
            VERSION[1],
            VERSION[2]
        );
        Ok(Self {
            _reg: reg,
            _pool_selftest: pool_selftest,
            _debug_dir: debug_dir,
        })
    }
}

/// The kinds of leg errors, each shown as a health character.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// An empty flush of the legs (before clean bits are written) failed.
    Flush,
    /// A write failed.
    Write,
    /// A recovery copy failed to read from or write to the leg.
    Sync,
    /// A read failed.
    Read,
}

/// Error kinds counted per leg; each shows as a health character.
#[derive(Default)]
pub(crate) struct LegErrorCounts {
    pub(crate) flush: AtomicU32,
    pub(crate) write: AtomicU32,
    pub(crate) sync: AtomicU32,
    pub(crate) read: AtomicU32,
}

impl LegErrorCounts {
    /// Whether the leg has seen any error (it then serves no reads while
    /// another leg can).
    pub(crate) fn any(&self) -> bool {
        [&self.flush, &self.write, &self.sync, &self.read]
            .iter()
            .any(|c| c.load(Ordering::Relaxed) != 0)
    }

    fn counter(&self, kind: ErrorKind) -> &AtomicU32 {
        match kind {
            ErrorKind::Flush => &self.flush,
            ErrorKind::Write => &self.write,
            ErrorKind::Sync => &self.sync,
            ErrorKind::Read => &self.read,
        }
    }

    fn reset(&self) {
        for c in [&self.flush, &self.write, &self.sync, &self.read] {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn health(&self) -> u8 {
        table::health_char(LegErrors {
            flush: self.flush.load(Ordering::Relaxed) != 0,
            write: self.write.load(Ordering::Relaxed) != 0,
            sync: self.sync.load(Ordering::Relaxed) != 0,
            read: self.read.load(Ordering::Relaxed) != 0,
            unknown: false,
        })
    }
}

/// One leg of the mirror.
pub(crate) struct Leg {
    pub(crate) dev: TargetDevice,
    /// Start of the mirrored data on the device, in sectors.
    pub(crate) offset: u64,
    pub(crate) errors: LegErrorCounts,
}

/// The region hash and the dirty log, under one interrupt-safe lock.
pub(crate) struct RhCore {
    pub(crate) hash: RegionHash,
    pub(crate) log: MirrorLog,
}

/// What the mirror keeps with each bio.
#[derive(Default)]
pub(crate) struct BioData {
    /// The region whose pending count this write holds.
    pub(crate) region: Option<u32>,
    /// Reads: the leg the bio was last sent to.
    pub(crate) read_leg: usize,
    /// Reads: the region read.
    pub(crate) read_region: u32,
    /// Reads: the legs tried so far, one bit each.
    pub(crate) tried: u16,
}

/// Bios kmirrord has still to handle, and writes held after failures.
pub(crate) struct Queues {
    pub(crate) writes: binding::bio::BioList<MirrorSet>,
    /// Reads that failed on a leg and are to be retried on another.
    pub(crate) reads: binding::bio::BioList<MirrorSet>,
    /// Writes that failed on some leg (or could not be logged).
    pub(crate) failures: binding::bio::BioList<MirrorSet>,
    /// Writes held (`handle_errors`) until the device is suspended.
    pub(crate) holds: binding::bio::BioList<MirrorSet>,
}

/// The state of one mirror target.
#[pin_data]
pub(crate) struct MirrorSet {
    pub(crate) target: Target,
    pub(crate) legs: KVec<Leg>,
    pub(crate) geo: RegionGeometry,
    default_leg: AtomicUsize,
    log_args: LogArgsOwned,
    features: Features,
    #[pin]
    pub(crate) rh: IrqSpinLock<RhCore>,
    /// The log device of a disk log (`None` for a core log).
    pub(crate) disk_log: Option<DiskLogDev>,
    /// The disk log's I/O buffer (empty for a core log); the mutex also
    /// orders the log's writes.
    #[pin]
    pub(crate) log_buf: Mutex<VVec<u8>>,
    /// `dirty_log::LOG_DEV_*` bits.
    pub(crate) log_health: AtomicU8,
    /// A log write failed since the table was loaded.
    pub(crate) log_failure: AtomicBool,
    /// Where region entries come from (atomic pool, else GFP_NOIO kmalloc).
    pub(crate) regions: FallbackPool<Region>,
    pub(crate) io_client: IoClient,
    pub(crate) kcopyd: KcopydClient,
    /// Set from presuspend until resume (and before the first resume).
    pub(crate) recovery_stopped: AtomicBool,
    /// Every region was in sync at some point since the table was loaded
    /// or a write last failed (the "in sync" event was raised then, and
    /// the legs' error flags cleared).
    pub(crate) in_sync: AtomicBool,
    /// Some leg failed since the set was last in sync.
    pub(crate) leg_failure: AtomicBool,
    /// Between presuspend and resume: held writes are completed at once.
    suspended: AtomicBool,
    /// A table event is due; kmirrord raises it (it may sleep).
    pub(crate) event_pending: AtomicBool,
    /// Recovery copies in flight, and their end.
    #[pin]
    copies: SpinLock<u32>,
    #[pin]
    copies_done: CondVar,
    #[pin]
    pub(crate) queues: IrqSpinLock<Queues>,
    #[pin]
    work: Work<MirrorSet>,
    /// kmirrord's queue. Every queued pass holds a `TargetRef`, so the set
    /// (and this queue) is dropped only after the last pass has run, by the
    /// destructor (see `binding/target.rs`).
    pub(crate) wq: OwnedQueue,
}

impl_has_work! {
    impl HasWork<Self> for MirrorSet { self.work }
}

/// The log arguments of the table, kept to print the table back.
struct LogArgsOwned {
    kind: LogKind,
    region_size: u32,
    sync: table::SyncMode,
}

impl MirrorSet {
    pub(crate) fn default_leg_index(&self) -> usize {
        self.default_leg.load(Ordering::Relaxed)
    }

    pub(crate) fn default_leg(&self) -> Option<&Leg> {
        self.legs
            .get(self.default_leg_index())
            .or_else(|| self.legs.first())
    }

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

    fn wait_for_copies(&self) {
        let mut c = self.copies.lock();
        while *c != 0 {
            self.copies_done.wait(&mut c);
        }
    }

    pub(crate) fn region_in_sync(&self, region: u32) -> bool {
        self.rh.lock().log.in_sync(region)
    }

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

    /// Whether some leg has had no error since the set was last in sync.
    pub(crate) fn any_valid_leg(&self) -> bool {
        self.legs.iter().any(|l| !l.errors.any())
    }

    /// Records an error of `kind` on leg `index` (any context; never
    /// sleeps). With `handle_errors`, the first error of each kind on a leg
    /// makes a table event due (returns true: the caller wakes kmirrord,
    /// which raises it), and a failed default leg is replaced by one
    /// without errors, if the set is in sync or `keep_log` is set (an out
    /// of sync default leg stays: the others may hold stale data).
    pub(crate) fn fail_leg(&self, index: usize, kind: ErrorKind) -> bool {
        let Some(leg) = self.legs.get(index) else {
            return false;
        };
        self.leg_failure.store(true, Ordering::Relaxed);
        let first = leg.errors.counter(kind).fetch_add(1, Ordering::Relaxed) == 0;
        if !first || !self.features.handle_errors {
            return false;
        }
        if index == self.default_leg_index() {
            if !self.in_sync.load(Ordering::Relaxed) && !self.features.keep_log {
                pr_err!(
                    "default leg {} failed while out of sync: reads may fail\n",
                    leg.dev.name()
                );
            } else if let Some(new) = self.legs.iter().position(|l| !l.errors.any()) {
                self.default_leg.store(new, Ordering::Relaxed);
            } else {
                pr_warn!("every leg of the mirror has failed\n");
            }
        }
        self.event_pending.store(true, Ordering::Relaxed);
        true
    }

    /// The set is in sync again: the legs' error flags start afresh.
    pub(crate) fn reset_leg_errors(&self) {
        self.leg_failure.store(false, Ordering::Relaxed);
        for leg in self.legs.iter() {
            leg.errors.reset();
        }
    }

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

fn ctr_err(e: table::TableError) -> CtrError {
    CtrError::inval(e.message())
}

#[vtable]
impl TargetOps for MirrorSet {
    type BioData = BioData;

    fn ctr(ti: &mut TargetSetup<'_>, args: &[&str]) -> Result<TargetState<Self>, CtrError> {
        let len = ti.len();
        let t: MirrorTable<'_> = table::parse(args, len).map_err(ctr_err)?;
        fn nomem<E>(_: E) -> CtrError {
            CtrError::new(c"Cannot allocate mirror context", ENOMEM)
        }
        let nr_regions = t.nr_regions(len);
        // The log first, as the C target: a disk log needs its device.
        let (disk_log, log_buf) = match (t.log.kind, t.log.dev) {
            (LogKind::Disk, Some(path)) => {
                let log_err = |e| CtrError::new(c"Error creating mirror dirty log", e);
                let dev = ti.get_device(path).map_err(log_err)?;
                let (d, buf) = DiskLogDev::new(dev, nr_regions).map_err(log_err)?;
                (Some(d), buf)
            }
            _ => (None, VVec::new()),
        };
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
                },
                GFP_KERNEL,
            )
            .map_err(nomem)?;
        }
        let region_size = t.log.region_size;
        let log = new_log(nr_regions, t.log.sync).map_err(nomem)?;
        let hash = RegionHash::new(nr_regions).map_err(nomem)?;
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
                    writes: binding::bio::BioList::new(),
                    reads: binding::bio::BioList::new(),
                    failures: binding::bio::BioList::new(),
                    holds: binding::bio::BioList::new(),
                },
                "MirrorSet::queues"
            ),
            work <- new_work!("MirrorSet::work"),
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
    }

    fn map(this: TargetBorrow<'_, Self>, mut bio: DmBio<Self>) -> MapResult<Self> {
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
                let was_empty = {
                    let mut q = this.queues.lock();
                    let was_empty = q.writes.is_empty();
                    q.writes.push(bio);
                    was_empty
                };
                if was_empty {
                    kmirrord::wake(this);
                }
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
            let mut held = binding::bio::BioList::new();
            held.append(&mut q.holds);
            held
        };
        while let Some(bio) = held.pop() {
            this.hold(bio);
        }
        // No new recovery; regions waiting to be copied go back to the log's
        // resync scan, and copies already running are waited for.
        this.recovery_stopped.store(true, Ordering::Release);
        let mut released = binding::bio::BioList::new();
        {
            let mut g = this.rh.lock();
            let rh = &mut *g;
            rh.hash.abandon_quiescing(&mut rh.log, &mut released);
        }
        // Writes held for an abandoned recovery must not wait for a resume
        // (device-mapper waits for them before the suspend completes).
        this.queues.lock().writes.append(&mut released);
        this.wait_for_copies();
        // Let kmirrord record the ended copies and release held writes.
        kmirrord::wake(this);
        this.wq.flush();
    }

    fn resume(this: TargetBorrow<'_, Self>) {
        this.suspended.store(false, Ordering::Release);
        dirty_log::resume(&this, this.log_args.sync);
        this.recovery_stopped.store(false, Ordering::Release);
        kmirrord::wake(this);
    }

    fn message(this: TargetBorrow<'_, Self>, args: &[&str], out: &mut BoundedWriter<'_>) -> Result {
        this.message(args, out)
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
    /// A read completed. A failed one is counted against its leg and, if
    /// another leg can serve it, handed to kmirrord to be sent there.
    fn read_done(this: TargetBorrow<'_, Self>, bio: &mut EndIoBio<'_, Self>) {
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

    /// `dmsetup message <dev> 0 stats`: the region allocation counters.
    fn message(&self, args: &[&str], out: &mut BoundedWriter<'_>) -> Result {
        let st = &self.regions.stats;
        match args {
            ["stats"] => {
                let (entries, in_sync) = {
                    let g = self.rh.lock();
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
                    self.geo.nr_regions()
                )
                .map_err(|_| ENOSPC)
            }
            _ => {
                pr_warn!(
                    "unrecognised message \"{}\" ({} words): the mirror knows \"stats\"\n",
                    args.first().copied().unwrap_or(""),
                    args.len()
                );
                Err(EINVAL)
            }
        }
    }
}

impl IoDone for MirrorSet {
    fn bio_io_done(this: TargetBorrow<'_, Self>, bio: DmBio<Self>, error_bits: u64) {
        if error_bits == 0 {
            bio.endio(Status::OK);
            return;
        }
        if bio.op() == Op::Discard {
            // A failed discard says nothing about the leg's health.
            bio.endio(Status::NOTSUPP);
            return;
        }
        for i in 0..this.legs.len() {
            if error_bits & (1 << i) != 0 {
                this.fail_leg(i, ErrorKind::Write);
            }
        }
        // The rest (the region goes out of sync; the write is held, failed
        // or completed) is kmirrord's, which may sleep to raise the event.
        let was_empty = {
            let mut q = this.queues.lock();
            let was_empty = q.failures.is_empty();
            q.failures.push(bio);
            was_empty
        };
        if was_empty {
            kmirrord::wake(this);
        }
    }
}
