// SPDX-License-Identifier: GPL-2.0

//! dm-io: one request writing a bio's data to several devices at once.

use super::bio::DmBio;
use super::dm::{bio_target, LegDevice, TargetOps};
use super::raw;
use core::ffi::{c_ulong, c_void};
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::ArcBorrow;

/// A target that learns when its dm-io requests on bios complete.
pub(crate) trait BioIoDone: TargetOps {
    /// `bio`'s dm-io request finished; bit `i` of `error_bits` is set if the
    /// I/O to region `i` failed. Runs in interrupt context: must not sleep.
    fn bio_io_done(this: ArcBorrow<'_, Self>, bio: DmBio<Self>, error_bits: u64);
}

/// An area of one device for dm-io.
#[derive(Clone, Copy)]
pub(crate) struct IoRegion(raw::dm_io_region);

impl IoRegion {
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
        if ptr.is_null() || (ptr as usize) >= (-4095isize) as usize {
            return Err(ENOMEM);
        }
        // SAFETY: `ptr` is neither null nor an error pointer.
        Ok(Self {
            ptr: unsafe { NonNull::new_unchecked(ptr) },
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
        // dm-io only reads `regions` while it submits.
        let mut regions_copy = [raw::dm_io_region::default(); 16];
        for (dst, src) in regions_copy.iter_mut().zip(regions) {
            *dst = src.0;
        }
        // SAFETY: `req` describes a live bio (or no memory for a discard) and
        // a live client; `regions_copy` holds `nr` valid regions; completion
        // comes through `bio_notify::<T>` with the bio as context.
        let ret = unsafe {
            raw::dm_io(
                &mut req,
                nr.min(16),
                regions_copy.as_mut_ptr(),
                core::ptr::null_mut(),
                raw::IOPRIO_DEFAULT,
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

impl Drop for IoClient {
    fn drop(&mut self) {
        // SAFETY: The client is live and no request uses it any more.
        unsafe { raw::dm_io_client_destroy(self.ptr.as_ptr()) };
    }
}

unsafe extern "C" fn bio_notify<T: BioIoDone>(error: c_ulong, context: *mut c_void) {
    let Some(bio) = NonNull::new(context.cast::<raw::bio>()) else {
        return;
    };
    // SAFETY: The context is the `T` bio handed to `submit_bio_to_all`, whose
    // target lives while it is in flight.
    let this = unsafe { bio_target::<T>(bio) };
    // SAFETY: The request is over; its bio's completion is ours again.
    let bio = unsafe { DmBio::from_raw(bio) };
    T::bio_io_done(this, bio, error as u64);
}
