// SPDX-License-Identifier: GPL-2.0

//! dm-io: one request writing a bio's data to several devices at once.

use super::bio::DmBio;
use super::dm::{bio_target, LegDevice, TargetOps};
use super::raw;
use super::target::TargetBorrow;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::alloc::VVec;
use kernel::ffi::c_ulong;
use kernel::prelude::*;

/// Bytes per sector, the unit of [`IoRegion`] lengths.
const SECTOR_BYTES: u64 = 512;

/// The memory of a synchronous dm-io request.
pub(crate) enum SyncMem<'a> {
    /// No data: the request only carries flags (an empty flush).
    None,
    /// A vmalloc'ed buffer: read into, or written from, starting at its
    /// first byte for every region.
    Vmalloc(&'a mut VVec<u8>),
}

/// A target that learns when its dm-io requests on bios complete.
pub(crate) trait BioIoDone: TargetOps {
    /// `bio`'s dm-io request finished; bit `i` of `error_bits` is set if the
    /// I/O to region `i` failed. Runs in interrupt context: must not sleep.
    fn bio_io_done(this: TargetBorrow<'_, Self>, bio: DmBio<Self>, error_bits: u64);
}

/// An area of one device for dm-io.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct IoRegion(raw::dm_io_region);

impl IoRegion {
    /// No area at all (a placeholder in fixed-size arrays).
    pub(crate) const fn empty() -> Self {
        IoRegion(raw::dm_io_region {
            bdev: core::ptr::null_mut(),
            sector: 0,
            count: 0,
        })
    }

    /// `count` sectors of `leg` from `sector` (of that device).
    pub(crate) fn new(leg: &LegDevice, sector: u64, count: u64) -> Self {
        IoRegion(raw::dm_io_region {
            bdev: leg.bdev(),
            sector,
            count,
        })
    }
}

/// A dm-io client: the mempools dm-io allocates requests from.
///
/// # Invariants
///
/// `ptr` is a live client from `dm_io_client_create`.
pub(crate) struct IoClient {
    ptr: NonNull<raw::dm_io_client>,
}

// SAFETY: dm-io clients are used concurrently by design.
unsafe impl Send for IoClient {}
// SAFETY: As above.
unsafe impl Sync for IoClient {}

impl IoClient {
    /// Creates a client (process context, may sleep).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: No preconditions; the result is an ERR_PTR or a client.
        let ptr = unsafe { raw::dm_io_client_create() };
        Ok(Self {
            ptr: super::from_err_ptr(ptr)?,
        })
    }

    /// Writes `bio` (its data, or just its flush) to every region, or
    /// discards the regions if `bio` is a discard. Asynchronous: completion
    /// is reported through [`BioIoDone::bio_io_done`]. `opf` is the request
    /// operation and flags.
    pub(crate) fn submit_bio_to_all<T: BioIoDone>(
        &self,
        bio: DmBio<T>,
        regions: &[IoRegion],
        opf: raw::blk_opf_t,
        discard: bool,
    ) {
        let nr = regions.len() as u32;
        let bio = bio.into_raw();
        let mut mem = raw::dm_io_memory::default();
        if discard {
            mem.type_ = raw::dm_io_mem_type_DM_IO_KMEM;
        } else {
            mem.type_ = raw::dm_io_mem_type_DM_IO_BIO;
            mem.ptr.bio = bio.as_ptr();
        }
        let mut req = raw::dm_io_request {
            bi_opf: opf,
            mem,
            notify: raw::dm_io_notify {
                fn_: Some(bio_notify::<T>),
                context: bio.as_ptr().cast(),
            },
            client: self.ptr.as_ptr(),
        };
        // dm-io only reads the regions while it submits, and never writes
        // them, despite the non-const pointer.
        let regions_ptr = regions.as_ptr() as *mut raw::dm_io_region;
        // SAFETY: `req` describes a live bio (or no memory for a discard) and
        // a live client; `IoRegion` is a transparent `dm_io_region`, `nr` of
        // them valid; completion
        // comes through `bio_notify::<T>` with the bio as context.
        let ret = unsafe {
            raw::dm_io(
                &mut req,
                nr,
                regions_ptr,
                core::ptr::null_mut(),
                raw::dmrs_ioprio_default(),
            )
        };
        if ret != 0 {
            // dm-io refused the request without calling back: fail every
            // region.
            // SAFETY: The bio is still ours: no callback will run.
            unsafe { bio_notify::<T>(c_ulong::MAX, bio.as_ptr().cast()) };
        }
    }
}

impl IoClient {
    /// Reads or writes `regions` (`opf`: operation and flags) with `mem`
    /// and waits for the result. Sleeps: process context only, no spinlock
    /// held. On failure, returns the failed regions as bits (bit `i` for
    /// region `i`; all bits if the request could not be made at all).
    pub(crate) fn sync_io(
        &self,
        regions: &[IoRegion],
        opf: raw::blk_opf_t,
        mem: SyncMem<'_>,
    ) -> core::result::Result<(), u64> {
        let mut req_mem = raw::dm_io_memory::default();
        match mem {
            SyncMem::None => {
                if regions.iter().any(|r| r.0.count != 0) {
                    return Err(u64::MAX);
                }
                req_mem.type_ = raw::dm_io_mem_type_DM_IO_KMEM;
                req_mem.ptr.addr = core::ptr::null_mut();
            }
            SyncMem::Vmalloc(buf) => {
                let len = buf.len() as u64;
                let fits = |r: &IoRegion| {
                    r.0.count
                        .checked_mul(SECTOR_BYTES)
                        .is_some_and(|b| b <= len)
                };
                if len == 0 || !regions.iter().all(fits) {
                    return Err(u64::MAX);
                }
                req_mem.type_ = raw::dm_io_mem_type_DM_IO_VMA;
                req_mem.ptr.vma = buf.as_mut_ptr().cast();
            }
        }
        let mut req = raw::dm_io_request {
            bi_opf: opf,
            mem: req_mem,
            notify: raw::dm_io_notify {
                fn_: None,
                context: core::ptr::null_mut(),
            },
            client: self.ptr.as_ptr(),
        };
        let mut error_bits: c_ulong = 0;
        // dm-io only reads the regions, despite the non-const pointer.
        let regions_ptr = regions.as_ptr() as *mut raw::dm_io_region;
        // SAFETY: `req` has no notify function, so dm-io waits for the I/O
        // before returning: the buffer (vmalloc memory, as DM_IO_VMA needs,
        // at least as long as every region) and the regions outlive it. The
        // client is live (type invariant).
        let ret = unsafe {
            raw::dm_io(
                &mut req,
                regions.len() as u32,
                regions_ptr,
                &mut error_bits,
                raw::dmrs_ioprio_default(),
            )
        };
        if error_bits != 0 {
            return Err(error_bits as u64);
        }
        if ret != 0 {
            return Err(u64::MAX);
        }
        Ok(())
    }
}

impl Drop for IoClient {
    fn drop(&mut self) {
        // SAFETY: The client is live and no request uses it any more.
        unsafe { raw::dm_io_client_destroy(self.ptr.as_ptr()) };
    }
}

/// dm-io's completion callback for requests made by `submit_bio_to_all`.
///
/// # Safety
///
/// `context` must be the raw pointer of a `T` bio whose dm-io request has
/// just finished (or was refused), and whose completion nobody else owns.
unsafe extern "C" fn bio_notify<T: BioIoDone>(error: c_ulong, context: *mut c_void) {
    let Some(bio) = NonNull::new(context.cast::<raw::bio>()) else {
        return;
    };
    // SAFETY: The context is the `T` bio handed to `submit_bio_to_all`, whose
    // target lives while it is in flight. The counted reference keeps the
    // state alive for the whole callback, also after the callback has
    // completed the bio (which lets device-mapper destroy the target).
    let this = unsafe { bio_target::<T>(bio) }.to_ref();
    // SAFETY: The request is over; its bio's completion is ours again.
    let bio = unsafe { DmBio::from_raw(bio) };
    T::bio_io_done(this.borrow(), bio, error as u64);
}
