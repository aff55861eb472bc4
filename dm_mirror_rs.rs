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

/// The unsafe binding layer. It is the API the target is written against,
/// sized for the whole target (read retries, per-bio data, GFP_NOIO
/// allocation), so not every item is called yet.
#[allow(dead_code)]
mod binding;
mod dirty_log;
mod kmirrord;
mod region_hash;
/// Table arguments and status text, shared with the host test crate.
#[allow(unreachable_pub, dead_code)]
mod table;

use binding::bio::{DmBio, Op, Status};
use binding::dm::{
    CtrError, DeviceVisitor, LegDevice, MapResult, Registration, StatusType, Target, TargetOps,
    TargetSetup,
};
use binding::dmio::{BioIoDone, IoClient};
use binding::lock::{new_irq_spinlock, IrqSpinLock};
use binding::wq::OwnedQueue;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use dirty_log::CoreLog;
use kernel::c_str;
use kernel::ffi::c_int;
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow};
use kernel::workqueue::{impl_has_work, new_work, Work};
use region_hash::RegionGeometry;
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
}

impl kernel::Module for DmMirrorModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let reg = Registration::<MirrorSet>::new(c_str!("mirror"), VERSION, module)?;
        pr_info!(
            "dm-mirror-rs {}.{}.{} registered as \"mirror\"\n",
            VERSION[0],
            VERSION[1],
            VERSION[2]
        );
        Ok(Self { _reg: reg })
    }
}

/// Error kinds counted per leg; each shows as a health character.
#[derive(Default)]
struct LegErrorCounts {
    flush: AtomicU32,
    write: AtomicU32,
    sync: AtomicU32,
    read: AtomicU32,
}

impl LegErrorCounts {
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
    pub(crate) dev: LegDevice,
    /// Start of the mirrored data on the device, in sectors.
    pub(crate) offset: u64,
    errors: LegErrorCounts,
}

/// Bios kmirrord has still to handle.
pub(crate) struct Queues {
    pub(crate) writes: binding::bio::BioList<MirrorSet>,
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
    log: CoreLog,
    pub(crate) io_client: IoClient,
    #[pin]
    pub(crate) queues: IrqSpinLock<Queues>,
    #[pin]
    work: Work<MirrorSet>,
    /// Declared last: dropped after everything that could queue work.
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
    fn default_leg(&self) -> Option<&Leg> {
        let i = self.default_leg.load(Ordering::Relaxed);
        self.legs.get(i).or_else(|| self.legs.first())
    }

    fn write_table(&self, out: &mut impl Write) -> core::fmt::Result {
        let log = LogArgs {
            kind: self.log_args.kind,
            dev: None,
            region_size: self.log_args.region_size,
            sync: self.log_args.sync,
        };
        table::write_table_log(out, &log, None)?;
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
        table::write_status(
            out,
            names.get(..nr).unwrap_or(&[]),
            health.get(..nr).unwrap_or(&[]),
            self.log.sync_count(),
            u64::from(self.geo.nr_regions()),
            LogStatus::Core,
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

impl TargetOps for MirrorSet {
    type BioData = ();

    fn ctr(ti: &mut TargetSetup<'_>, args: &[&str]) -> Result<Arc<Self>, CtrError> {
        let len = ti.len();
        let t: MirrorTable<'_> = table::parse(args, len).map_err(ctr_err)?;
        if t.log.kind == LogKind::Disk {
            return Err(CtrError::inval(c"The disk log is not supported yet"));
        }
        let nomem = |_| CtrError::new(c"Cannot allocate mirror context", ENOMEM);
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
        let nr_regions = t.nr_regions(len);
        let log = CoreLog::new(nr_regions, t.log.sync)
            .map_err(|_| CtrError::new(c"Cannot allocate mirror context", ENOMEM))?;
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
            geo: RegionGeometry::new(ti.target().begin(), region_size, nr_regions),
            default_leg: AtomicUsize::new(0),
            log_args: LogArgsOwned {
                kind: t.log.kind,
                region_size,
                sync: t.log.sync,
            },
            features: t.features,
            log,
            io_client,
            queues <- new_irq_spinlock!(
                Queues {
                    writes: binding::bio::BioList::new(),
                },
                "MirrorSet::queues"
            ),
            work <- new_work!("MirrorSet::work"),
            wq,
        });
        Arc::pin_init(ms, GFP_KERNEL)
            .map_err(|e| CtrError::new(c"Cannot allocate mirror context", e))
    }

    fn dtr(this: ArcBorrow<'_, Self>) {
        // kmirrord may hold a reference; let it finish so the last one is
        // dropped here, not inside the workqueue being destroyed.
        this.wq.flush();
    }

    fn map(this: ArcBorrow<'_, Self>, mut bio: DmBio<Self>) -> MapResult<Self> {
        match bio.op() {
            Op::Read => {
                let region = this.geo.region_of(bio.sector());
                if !this.log.in_sync(region) && bio.is_readahead() {
                    // Read-ahead is optional; don't spend effort on regions
                    // that may differ between legs.
                    return MapResult::Kill(bio);
                }
                let Some(leg) = this.default_leg() else {
                    return MapResult::Kill(bio);
                };
                let sector = leg.offset + this.geo.target_offset(bio.sector());
                bio.remap(&leg.dev, sector);
                MapResult::Remapped(bio)
            }
            Op::Write | Op::Discard => {
                let was_empty = {
                    let mut q = this.queues.lock();
                    let was_empty = q.writes.is_empty();
                    q.writes.push(bio);
                    was_empty
                };
                if was_empty {
                    let arc: Arc<Self> = this.into();
                    kmirrord::wake(&arc);
                }
                MapResult::Submitted
            }
            Op::Other => MapResult::Kill(bio),
        }
    }

    fn status(this: ArcBorrow<'_, Self>, ty: StatusType, out: &mut table::BoundedWriter<'_>) {
        // A full buffer truncates the line; device-mapper then retries with
        // a bigger one.
        let _ = match ty {
            StatusType::Info => this.write_info(out),
            StatusType::Table => this.write_table(out),
            StatusType::Ima => this.write_ima(out),
        };
    }

    fn iterate_devices(this: ArcBorrow<'_, Self>, visit: &mut DeviceVisitor<'_>) -> c_int {
        let len = this.target.len();
        for leg in this.legs.iter() {
            let ret = visit.visit(&leg.dev, leg.offset, len);
            if ret != 0 {
                return ret;
            }
        }
        0
    }
}

impl BioIoDone for MirrorSet {
    fn bio_io_done(this: ArcBorrow<'_, Self>, bio: DmBio<Self>, error_bits: u64) {
        if error_bits == 0 {
            bio.endio(Status::OK);
            return;
        }
        if bio.op() == Op::Discard {
            // A failed discard says nothing about the leg's health.
            bio.endio(Status::NOTSUPP);
            return;
        }
        let mut any_ok = false;
        for (i, leg) in this.legs.iter().enumerate() {
            if error_bits & (1 << i) != 0 {
                let counter = if bio.is_preflush() && bio.size() == 0 {
                    &leg.errors.flush
                } else {
                    &leg.errors.write
                };
                counter.fetch_add(1, Ordering::Relaxed);
            } else {
                any_ok = true;
            }
        }
        // Without handle_errors, a write that reached at least one leg
        // completes, as in the C target; the leg's health shows the error.
        bio.endio(if any_ok { Status::OK } else { Status::IOERR });
    }
}
