// SPDX-License-Identifier: GPL-2.0

//! The mirror target, laid out as the C `drivers/md/dm-raid1.c` is:
//! this file holds the mirror set's structures (its "Mirror set structures"
//! section); then, each next to its completion callback,
//! - `legs.rs`: the legs, their error accounting and the default leg
//!   (`fail_mirror`, `get_default_mirror`, `get_valid_mirror`);
//! - `recovery.rs`: copying out-of-sync regions (`recover`, `do_recovery`,
//!   `recovery_complete`);
//! - `reads.rs`: choosing a leg, remapping and retrying reads
//!   (`choose_mirror`, `read_callback`, `do_reads`, and the read half of
//!   `mirror_end_io`);
//! - `writes.rs`: writing every leg (`do_writes`, `do_write`,
//!   `write_callback`);
//! - `failures.rs`: failed writes and held bios (`do_failures`,
//!   `hold_bio`);
//! - `scrub.rs`: check and repair of in-sync regions, and the pace of
//!   background work (no C counterpart; md's `sync_action` is the model);
//! - `kmirrord.rs`: the worker (`do_mirror`, `wakeup_mirrord`);
//! - `target.rs`: the target functions (`mirror_ctr`, `mirror_dtr`,
//!   `mirror_map`, `mirror_end_io`, suspend and resume, status, message).
//!
//! Fields are private to this module and its files, except what the dirty
//! log (`dirty_log.rs`) uses. The region hash (`region_hash.rs`) is
//! kernel-free: this file instantiates it with the kernel's types
//! ([`MirrorParts`]) and allocates its entries ([`MirrorSet::ensure_region`]).

mod failures;
mod kmirrord;
mod legs;
mod reads;
mod recovery;
mod scrub;
mod target;
mod writes;

pub(crate) use legs::{ErrorKind, Leg};

use crate::binding::bio::{BioList, DmBio};
use crate::binding::dm::Target;
use crate::binding::dmio::IoClient;
use crate::binding::gaps::kmem::PoolBox;
use crate::binding::gaps::lock::IrqSpinLock;
use crate::binding::gaps::wq::OwnedQueue;
use crate::binding::kcopyd::KcopydClient;
use crate::dirty_log::{DiskLogDev, MirrorLog};
use crate::mempool::FallbackPool;
use crate::read_policy::ReadPolicy;
use crate::region_hash::{self, bucket_count, DirtyLog, HashParts, RegionGeometry, WriteList};
use crate::table::{self, Features, LogKind};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use kernel::alloc::VVec;
use kernel::prelude::*;
use kernel::sync::{CondVar, Mutex, SpinLock};
use kernel::workqueue::{impl_has_work, Work};

/// The region hash's kernel parts: entries are pool boxes from
/// `MirrorSet::regions`, delayed writes wait in bio lists, and the buckets
/// are vmalloc'ed.
pub(crate) struct MirrorParts;

impl HashParts for MirrorParts {
    type Entry = PoolBox<Region>;
    type Writes = BioList<MirrorSet>;
    type Buckets = VVec<Option<PoolBox<Region>>>;
}

/// A region entry of the mirror's region hash.
pub(crate) type Region = region_hash::Region<MirrorParts>;
/// The mirror's region hash.
pub(crate) type RegionHash = region_hash::RegionHash<MirrorParts>;
/// Region entries dropped under the lock, freed after it.
pub(crate) type FreeList = region_hash::FreeList<MirrorParts>;

impl WriteList for BioList<MirrorSet> {
    type Write = DmBio<MirrorSet>;

    fn empty() -> Self {
        BioList::new()
    }

    fn push(&mut self, write: DmBio<MirrorSet>) {
        BioList::push(self, write)
    }

    fn append(&mut self, other: &mut Self) {
        BioList::append(self, other)
    }
}

/// An empty region hash for `nr_regions` regions (at table load: the
/// buckets are allocated with GFP_KERNEL).
pub(crate) fn new_region_hash(nr_regions: u32) -> Result<RegionHash> {
    let n = bucket_count(nr_regions) as usize;
    let mut buckets = VVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        buckets.push(None, GFP_KERNEL)?;
    }
    Ok(RegionHash::new(buckets))
}

/// The region hash and the dirty log, under one interrupt-safe lock.
pub(crate) struct RhCore {
    hash: RegionHash,
    pub(crate) log: MirrorLog,
}

/// What the mirror keeps with each bio.
#[derive(Default)]
pub(crate) struct BioData {
    /// The region whose pending count this write holds.
    region: Option<u32>,
    /// Reads: the leg the bio was last sent to.
    read_leg: usize,
    /// Reads: the region read.
    read_region: u32,
    /// Reads: the legs tried so far, one bit each.
    tried: u16,
    /// Reads: the bio is counted in flight on `read_leg` (set when it is
    /// sent there, cleared when it ends, so an end is counted once).
    read_counted: bool,
}

/// Bios kmirrord has still to handle, and writes held after failures.
pub(crate) struct Queues {
    writes: BioList<MirrorSet>,
    /// Reads that failed on a leg and are to be retried on another.
    reads: BioList<MirrorSet>,
    /// Writes that failed on some leg (or could not be logged).
    failures: BioList<MirrorSet>,
    /// Writes held (`handle_errors`) until the device is suspended.
    holds: BioList<MirrorSet>,
}

/// The state of one mirror target.
#[pin_data]
pub(crate) struct MirrorSet {
    pub(crate) target: Target,
    pub(crate) legs: KVec<Leg>,
    pub(crate) geo: RegionGeometry,
    default_leg: AtomicUsize,
    /// How reads of in-sync regions are routed (`ReadPolicy::to_u8`).
    read_policy: AtomicU8,
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
    log_failure: AtomicBool,
    /// Where region entries come from (atomic pool, else GFP_NOIO kmalloc).
    regions: FallbackPool<Region>,
    pub(crate) io_client: IoClient,
    kcopyd: KcopydClient,
    /// Set from presuspend until resume (and before the first resume).
    recovery_stopped: AtomicBool,
    /// Every region was in sync at some point since the table was loaded
    /// or a write last failed (the "in sync" event was raised then, and
    /// the legs' error flags cleared).
    in_sync: AtomicBool,
    /// Some leg failed since the set was last in sync.
    leg_failure: AtomicBool,
    /// Between presuspend and resume: held writes are completed at once.
    suspended: AtomicBool,
    /// A table event is due; kmirrord raises it (it may sleep).
    event_pending: AtomicBool,
    /// Recovery copies in flight, and their end.
    #[pin]
    copies: SpinLock<u32>,
    #[pin]
    copies_done: CondVar,
    #[pin]
    queues: IrqSpinLock<Queues>,
    #[pin]
    work: Work<MirrorSet>,
    /// Check/repair progress and the pace of background work.
    #[pin]
    scrub: Mutex<scrub::ScrubCtl>,
    /// Wakes the background work item out of a pause.
    #[pin]
    scrub_wake: CondVar,
    /// The compare buffers of check and repair (the mutex also keeps a
    /// single compare at a time).
    #[pin]
    scrub_bufs: Mutex<scrub::ScrubBufs>,
    /// Foreground reads and writes mapped so far, counted only while a
    /// recovery rate is set (`paced`): background work yields while this
    /// moves.
    fg_ios: AtomicU64,
    /// A recovery rate is set: `map` counts foreground I/O. Without one,
    /// nothing is counted (a shared counter costs every I/O a contended
    /// atomic).
    paced: AtomicBool,
    /// The background work item: compares of check and repair, and pauses.
    #[pin]
    scrub_work: Work<MirrorSet, 1>,
    /// Its queue, made when a check or repair starts or a rate is set
    /// (kmirrord's queue runs one item at a time per CPU, and a compare or a
    /// pause must not hold kmirrord up). `WQ_MEM_RECLAIM`: writes to the
    /// region being compared wait for the compare.
    #[pin]
    bg_wq: Mutex<Option<OwnedQueue>>,
    /// kmirrord's queue. Every queued pass holds a `TargetRef`, so the set
    /// (and this queue) is dropped only after the last pass has run, by the
    /// destructor (see `binding/target.rs`).
    wq: OwnedQueue,
}

impl_has_work! {
    impl HasWork<Self> for MirrorSet { self.work }
    impl HasWork<Self, 1> for MirrorSet { self.scrub_work }
}

/// The log arguments of the table, kept to print the table back.
struct LogArgsOwned {
    kind: LogKind,
    region_size: u32,
    sync: table::SyncMode,
}

impl MirrorSet {
    pub(crate) fn read_policy(&self) -> ReadPolicy {
        ReadPolicy::from_u8(self.read_policy.load(Ordering::Relaxed))
    }

    pub(crate) fn set_read_policy(&self, p: ReadPolicy) {
        self.read_policy.store(p.to_u8(), Ordering::Relaxed);
    }

    pub(crate) fn region_in_sync(&self, region: u32) -> bool {
        self.rh.lock().log.in_sync(region)
    }

    /// Allocates the entry for `key` if it has none. May sleep (pool
    /// fallback), so it is called without the lock; kmirrord is the only
    /// caller that adds or removes entries.
    pub(crate) fn ensure_region(&self, key: u32) -> Result {
        if self.rh.lock().hash.contains(key) {
            return Ok(());
        }
        let region = self.regions.alloc(Region::new(key))?;
        let leftover = {
            let mut g = self.rh.lock();
            let rh = &mut *g;
            rh.hash.insert(region, &rh.log)
        };
        drop(leftover);
        Ok(())
    }
}
