// SPDX-License-Identifier: GPL-2.0

//! Dirty logs: which regions are known to be identical on every leg, which
//! may be being written, and which need recovery.
//!
//! The region hash talks to a log through [`DirtyLog`] (defined with the
//! hash in `region_hash.rs`, which is kernel-free). Both log types keep
//! the same bits in memory ([`MirrorLog`], logic in the kernel-free
//! `log_bits.rs`): which regions are clean, in sync and being recovered.
//!
//! The **core** log keeps nothing else: after a (re)load, a `sync` or default
//! table starts with every region out of sync, a `nosync` table with every
//! region in sync.
//!
//! The **disk** log also keeps the clean bits on a log device, in the C
//! dm-log's format (`disk_log_format.rs`), so a mirror that was not shut
//! down cleanly resyncs only the regions that may have been written. The
//! ordering rules:
//! - a region is recorded dirty on disk (and the log device flushed) before
//!   any write to it is issued (kmirrord calls [`flush`] between marking the
//!   regions of a batch and writing them);
//! - a region is recorded clean only after a flush of every leg, so that no
//!   write it had can still sit in a volatile cache; if that flush fails, no
//!   region is recorded clean again until the table is reloaded.
//!
//! The bits change under the region hash's spinlock; the disk I/O happens in
//! [`flush`] and [`resume`], with no spinlock held, under the sleeping
//! `MirrorSet::log_buf` mutex that owns the I/O buffer.

use crate::binding::bio::ReqOp;
use crate::binding::dm::TargetDevice;
use crate::binding::dmio::{IoClient, IoError, IoRegion, SyncMem};
use crate::disk_log_format::{
    bits_to_disk, buffer_len, buffer_sectors, resume_plan, ResumePlan, Touched,
};
use crate::log_bits::{CoreLogState, WordStore};
use crate::region_hash::DirtyLog;
use crate::table::SyncMode;
use crate::MirrorSet;
use core::sync::atomic::Ordering;
use kernel::alloc::VVec;
use kernel::prelude::*;

/// Bitset storage allocated at table load. It is vmalloc'ed: a large device
/// with small regions needs megabytes per bitset (32 Mi regions take 4 MiB),
/// more than kmalloc can be relied on to find contiguous.
pub(crate) struct Words(VVec<u64>);

impl Words {
    fn for_regions(nr: u32) -> Result<Self> {
        let n = (nr as usize).div_ceil(64);
        Ok(Words(VVec::from_elem(0, n, GFP_KERNEL)?))
    }
}

impl WordStore for Words {
    fn words(&self) -> &[u64] {
        &self.0
    }

    fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

/// The log's bits, under the region hash's lock.
pub(crate) struct MirrorLog {
    bits: CoreLogState<Words>,
    /// What changed since the log was last written out.
    touched: Touched,
    /// A flush of the legs failed: every region stays recorded dirty.
    flush_failed: bool,
}

/// Creates the in-memory half of a log with `nr_regions` regions. Before the
/// first resume, `nosync` tables count every region in sync and other
/// tables none (a disk log then loads its bits from the device).
pub(crate) fn new_log(nr_regions: u32, sync: SyncMode) -> Result<MirrorLog> {
    Ok(MirrorLog {
        bits: CoreLogState::new(
            nr_regions,
            sync,
            Words::for_regions(nr_regions)?,
            Words::for_regions(nr_regions)?,
            Words::for_regions(nr_regions)?,
        ),
        touched: Touched::default(),
        flush_failed: false,
    })
}

impl DirtyLog for MirrorLog {
    fn in_sync(&self, region: u32) -> bool {
        self.bits.in_sync(region)
    }

    fn mark_region(&mut self, region: u32) {
        if self.bits.mark_region(region) {
            self.touched.dirtied = true;
        }
    }

    fn clear_region(&mut self, region: u32) {
        if !self.flush_failed && self.bits.clear_region(region) {
            self.touched.cleaned = true;
        }
    }

    fn set_region_sync(&mut self, region: u32, in_sync: bool) {
        self.bits.set_region_sync(region, in_sync)
    }
}

impl MirrorLog {
    /// The next region to recover, now marked as being recovered.
    pub(crate) fn get_resync_work(&mut self) -> Option<u32> {
        self.bits.get_resync_work()
    }

    /// Regions in sync.
    pub(crate) fn sync_count(&self) -> u64 {
        self.bits.sync_count()
    }

    /// Takes what changed since the last write-out, and if anything did,
    /// copies the clean bits into the log buffer.
    fn take_touched(&mut self, buf: &mut [u8]) -> Touched {
        let touched = core::mem::take(&mut self.touched);
        if touched.needs_write() {
            // The buffer was sized for these bits at table load.
            let _ = bits_to_disk(self.bits.clean_bits(), buf);
        }
        touched
    }

    /// A write-out did not complete: what it carried must be written again.
    fn untake(&mut self, t: Touched) {
        self.touched.cleaned |= t.cleaned;
        self.touched.dirtied |= t.dirtied;
    }

    /// The legs could not be flushed: whether the regions recorded clean
    /// since the last write-out really are is unknown, so every region is
    /// recorded dirty, and stays so until reload.
    fn fail_flush(&mut self, buf: &mut [u8]) {
        self.flush_failed = true;
        self.bits.mark_all_unclean();
        // The buffer was sized for these bits at table load.
        let _ = bits_to_disk(self.bits.clean_bits(), buf);
    }

    /// Loads the bits from the log buffer as `plan` says, updating the
    /// buffer to match; then in sync means clean.
    fn load(&mut self, plan: &ResumePlan, buf: &mut [u8]) -> bool {
        let ok = plan.apply(buf, self.bits.clean_bits_mut()).is_some();
        if !ok {
            // Cannot happen (the buffer and bits are sized for the table);
            // if it did, trusting nothing is the safe outcome.
            self.bits.mark_all_unclean();
        }
        self.bits.sync_from_clean();
        self.untake(plan.touched);
        ok
    }
}

/// The log device of a disk log.
pub(crate) struct DiskLogDev {
    pub(crate) dev: TargetDevice,
    /// dm-io client for the log's own (synchronous) I/O.
    io: IoClient,
    /// Sectors read and written at once, from sector 0.
    sectors: u64,
}

impl DiskLogDev {
    /// Checks that `dev` can hold the log of `nr_regions` regions and
    /// returns it with the zeroed I/O buffer (vmalloc'ed, as the C log's).
    pub(crate) fn new(dev: TargetDevice, nr_regions: u32) -> Result<(Self, VVec<u8>)> {
        let len = buffer_len(nr_regions, dev.logical_block_size()).ok_or(EINVAL)?;
        let needed = len as u64;
        if needed > dev.size_sectors().saturating_mul(512) {
            pr_warn!(
                "log device {} too small: need {} bytes\n",
                dev.name(),
                needed
            );
            return Err(EINVAL);
        }
        let buf = VVec::from_elem(0u8, len, GFP_KERNEL)?;
        let io = IoClient::new()?;
        Ok((
            Self {
                sectors: buffer_sectors(len),
                dev,
                io,
            },
            buf,
        ))
    }

    fn rw(&self, write: bool, buf: &mut VVec<u8>) -> core::result::Result<(), IoError> {
        let op = if write { ReqOp::WRITE } else { ReqOp::READ };
        let region = [IoRegion::new(&self.dev, 0, self.sectors)];
        self.io.sync_io(&region, op, SyncMem::Vmalloc(buf))
    }

    fn preflush(&self) -> core::result::Result<(), IoError> {
        let region = [IoRegion::new(&self.dev, 0, 0)];
        self.io
            .sync_io(&region, ReqOp::WRITE.preflush(), SyncMem::None)
    }
}

/// Log device health, as `dmsetup status` shows it.
pub(crate) const LOG_DEV_FAILED: u8 = 1;
/// A flush of the log device failed.
pub(crate) const LOG_DEV_FLUSH_FAILED: u8 = 2;

/// The status character of the log device: `F` (a flush failed), `D` (an
/// I/O failed) or `A`.
pub(crate) fn log_health_char(flags: u8) -> u8 {
    if flags & LOG_DEV_FLUSH_FAILED != 0 {
        b'F'
    } else if flags & LOG_DEV_FAILED != 0 {
        b'D'
    } else {
        b'A'
    }
}

/// Records a log device failure; the first one raises a table event.
fn fail_log_device(ms: &MirrorSet, flush: bool) {
    if flush {
        ms.log_health
            .fetch_or(LOG_DEV_FLUSH_FAILED, Ordering::Relaxed);
    }
    let old = ms.log_health.fetch_or(LOG_DEV_FAILED, Ordering::Relaxed);
    if old & LOG_DEV_FAILED == 0 {
        ms.target.table_event();
    }
}

/// Sends an empty flush to every leg and waits; a leg that fails it counts
/// a flush error (kmirrord raises the event this may make due).
fn flush_legs(ms: &MirrorSet) -> Result {
    let mut regions = [IoRegion::empty(); crate::MAX_LEGS];
    for (slot, leg) in regions.iter_mut().zip(ms.legs.iter()) {
        *slot = IoRegion::new(&leg.dev, 0, 0);
    }
    let regions = regions.get(..ms.legs.len()).unwrap_or(&[]);
    let op = ReqOp::WRITE.preflush().sync();
    match ms.io_client.sync_io(regions, op, SyncMem::None) {
        Ok(()) => Ok(()),
        Err(e) => {
            let bits = e.failed_regions(ms.legs.len());
            for i in 0..ms.legs.len() {
                if bits & (1 << i) != 0 {
                    ms.fail_leg(i, crate::ErrorKind::Flush);
                }
            }
            Err(EIO)
        }
    }
}

/// Makes the log's changes since the last call persistent: nothing for a
/// core log. Sleeps; called by kmirrord (and on resume) with no spinlock
/// held. An error means the log device failed: what the log says on disk
/// may be stale.
pub(crate) fn flush(ms: &MirrorSet) -> Result {
    let Some(disk) = ms.disk_log.as_ref() else {
        return Ok(());
    };
    let mut buf = ms.log_buf.lock();
    let mut touched = ms.rh.lock().log.take_touched(&mut buf);
    if !touched.needs_write() {
        return Ok(());
    }
    if touched.flush_legs_first() && flush_legs(ms).is_err() {
        ms.rh.lock().log.fail_flush(&mut buf);
        touched.mark_all_dirty(ms.geo.nr_regions());
    }
    if disk.rw(true, &mut buf).is_err() {
        ms.rh.lock().log.untake(touched);
        fail_log_device(ms, false);
        return Err(EIO);
    }
    touched.written();
    if touched.preflush_after_write() {
        if disk.preflush().is_err() {
            ms.rh.lock().log.untake(touched);
            fail_log_device(ms, true);
            return Err(EIO);
        }
        touched.preflushed();
    }
    Ok(())
}

/// Resumes the log: for a disk log, reads it from the device (a new one if
/// there is none, or the table asks for `sync`/`nosync`), sets what is in
/// sync from it, and writes the header back. Sleeps (resume runs in process
/// context).
pub(crate) fn resume(ms: &MirrorSet, sync: SyncMode) {
    let Some(disk) = ms.disk_log.as_ref() else {
        ms.rh.lock().log.bits.resume();
        return;
    };
    let mut buf = ms.log_buf.lock();
    let read_ok = disk.rw(false, &mut buf).is_ok();
    let plan = resume_plan(read_ok, &buf, ms.geo.nr_regions(), sync);
    if plan.log_failed {
        pr_warn!(
            "{}: cannot read the dirty log header (or it has an unknown version)\n",
            disk.dev.name()
        );
        fail_log_device(ms, false);
    }
    ms.rh.lock().log.load(&plan, &mut buf);
    let written = disk.rw(true, &mut buf);
    let flushed = written.and_then(|()| disk.preflush());
    if flushed.is_err() {
        pr_warn!("{}: cannot write the dirty log header\n", disk.dev.name());
        fail_log_device(ms, written.is_ok());
    }
}
