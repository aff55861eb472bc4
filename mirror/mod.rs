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
//! - `kmirrord.rs`: the worker (`do_mirror`, `wakeup_mirrord`);
//! - `target.rs`: the target functions (`mirror_ctr`, `mirror_dtr`,
//!   `mirror_map`, `mirror_end_io`, suspend and resume, status, message).
//!
//! Fields are private to this module and its files, except what the region
//! hash (`region_hash.rs`) and the dirty log (`dirty_log.rs`) use.

mod failures;
mod kmirrord;
mod legs;
mod reads;
mod recovery;
mod target;
mod writes;

pub(crate) use legs::{ErrorKind, Leg};

use crate::binding::bio::BioList;
use crate::binding::dm::Target;
use crate::binding::dmio::IoClient;
use crate::binding::gaps::lock::IrqSpinLock;
use crate::binding::gaps::wq::OwnedQueue;
use crate::binding::kcopyd::KcopydClient;
use crate::dirty_log::{DirtyLog, DiskLogDev, MirrorLog};
use crate::mempool::FallbackPool;
use crate::read_policy::ReadPolicy;
use crate::region_hash::{Region, RegionGeometry, RegionHash};
use crate::table::{self, Features, LogKind};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use kernel::alloc::VVec;
use kernel::prelude::*;
use kernel::sync::{CondVar, Mutex, SpinLock};
use kernel::workqueue::{impl_has_work, Work};

/// The region hash and the dirty log, under one interrupt-safe lock.
pub(crate) struct RhCore {
    pub(crate) hash: RegionHash,
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
    pub(crate) regions: FallbackPool<Region>,
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
    /// kmirrord's queue. Every queued pass holds a `TargetRef`, so the set
    /// (and this queue) is dropped only after the last pass has run, by the
    /// destructor (see `binding/target.rs`).
    wq: OwnedQueue,
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
    pub(crate) fn read_policy(&self) -> ReadPolicy {
        ReadPolicy::from_u8(self.read_policy.load(Ordering::Relaxed))
    }

    pub(crate) fn set_read_policy(&self, p: ReadPolicy) {
        self.read_policy.store(p.to_u8(), Ordering::Relaxed);
    }

    pub(crate) fn region_in_sync(&self, region: u32) -> bool {
        self.rh.lock().log.in_sync(region)
    }
}
