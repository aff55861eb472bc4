// SPDX-License-Identifier: GPL-2.0

//! dm-io: one request writing a bio's data to several devices at once.

use super::bio::{DmBio, ReqOp};
use super::compat::{dm_io, notify_fn, DmIoNotify};
use super::dm::{bio_target, TargetDevice, TargetOps};
use super::raw;
use super::target::TargetBorrow;
use core::ffi::c_void;
use core::marker::PhantomData;
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

/// How a dm-io request ended, one bit per region (bit `i` for region `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IoBits {
    /// The regions whose I/O failed.
    pub(crate) failed: u64,
    /// The regions whose device refused the request as unsupported or
    /// invalid (an atomic write it cannot do, say). Only 7.3's dm-io tells
    /// these apart; 6.12's counts them in `failed`.
    pub(crate) unsupported: u64,
}

impl IoBits {
    /// Every region did its part.
    pub(crate) fn all_ok(self) -> bool {
        self.failed == 0 && self.unsupported == 0
    }
}

/// A target that learns when its dm-io requests on bios complete.
pub(crate) trait IoDone: TargetOps {
    /// `bio`'s dm-io request finished, as `bits` says. Runs in interrupt
    /// context: must not sleep.
    fn bio_io_done(this: TargetBorrow<'_, Self>, bio: DmBio<Self>, bits: IoBits);
}

/// An area of one device for dm-io, borrowing the device.
///
/// # Invariants
///
/// `region.bdev` is null (an empty placeholder, `count` 0) or the block
/// device of a [`TargetDevice`] borrowed for `'a`.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct IoRegion<'a> {
    region: raw::dm_io_region,
    _dev: PhantomData<&'a TargetDevice>,
}

impl<'a> IoRegion<'a> {
    /// No area at all (a placeholder in fixed-size arrays).
    pub(crate) const fn empty() -> Self {
        // INVARIANT: A null device with no sectors.
        IoRegion {
            region: raw::dm_io_region {
                bdev: core::ptr::null_mut(),
                sector: 0,
                count: 0,
            },
            _dev: PhantomData,
        }
    }

    /// `count` sectors of `dev` from `sector` (of that device).
    pub(crate) fn new(dev: &'a TargetDevice, sector: u64, count: u64) -> Self {
        // INVARIANT: `dev` is borrowed for `'a`.
        IoRegion {
            region: raw::dm_io_region {
                bdev: dev.bdev(),
                sector,
                count,
            },
            _dev: PhantomData,
        }
    }
}

/// Why a synchronous dm-io request failed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IoError {
    /// The request was not made (arguments that do not fit, or dm-io could
    /// not set it up): nothing was read or written.
    Refused,
    /// The I/O to the regions whose bits are set failed (bit `i` for region
    /// `i`).
    Failed(u64),
    /// No region failed, but some refused the request as unsupported or
    /// invalid (7.3 only; see [`IoBits::unsupported`]).
    Unsupported,
}

impl IoError {
    /// The regions whose I/O failed, as bits: for a request that was not
    /// made, every one of the `nr` regions; none for one that was refused as
    /// unsupported, which says nothing against the devices.
    pub(crate) fn failed_regions(self, nr: usize) -> u64 {
        match self {
            IoError::Refused => u64::MAX.checked_shr(64 - nr.min(64) as u32).unwrap_or(0),
            IoError::Failed(bits) => bits,
            IoError::Unsupported => 0,
        }
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

    /// Writes `bio` (its data, or just its flush) to every region with
    /// `op`, or discards the regions if `op` is a discard. Asynchronous:
    /// completion is reported through [`IoDone::bio_io_done`].
    pub(crate) fn submit_bio<T: IoDone>(&self, bio: DmBio<T>, regions: &[IoRegion<'_>], op: ReqOp) {
        let nr = regions.len() as u32;
        let bio = bio.into_raw();
        let mut mem = raw::dm_io_memory::default();
        if op.is_discard() {
            mem.type_ = raw::dm_io_mem_type_DM_IO_KMEM;
        } else {
            mem.type_ = raw::dm_io_mem_type_DM_IO_BIO;
            mem.ptr.bio = bio.as_ptr();
        }
        let mut req = raw::dm_io_request {
            bi_opf: op.raw(),
            mem,
            notify: raw::dm_io_notify {
                fn_: notify_fn::<BioNotify<T>>(),
                context: bio.as_ptr().cast(),
            },
            client: self.ptr.as_ptr(),
        };
        // dm-io only reads the regions while it submits, and never writes
        // them, despite the non-const pointer.
        let regions_ptr = regions.as_ptr().cast::<raw::dm_io_region>().cast_mut();
        // SAFETY: `req` describes a live bio (or no memory for a discard) and
        // a live client; `IoRegion` is a transparent `dm_io_region`, `nr` of
        // them valid; completion
        // comes through `bio_notify::<T>` with the bio as context.
        let ret = unsafe {
            dm_io(
                &mut req,
                nr,
                regions_ptr,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            )
        };
        if ret != 0 {
            // dm-io refused the request without calling back: fail every
            // region.
            // SAFETY: The bio is still ours: no callback will run.
            unsafe { bio_notify::<T>(c_ulong::MAX, 0, bio.as_ptr().cast()) };
        }
    }
}

impl IoClient {
    /// Reads or writes `regions` with `op` and `mem` and waits for the
    /// result. Sleeps: process context only, no spinlock held.
    pub(crate) fn sync_io(
        &self,
        regions: &[IoRegion<'_>],
        op: ReqOp,
        mem: SyncMem<'_>,
    ) -> core::result::Result<(), IoError> {
        let mut req_mem = raw::dm_io_memory::default();
        match mem {
            SyncMem::None => {
                if regions.iter().any(|r| r.region.count != 0) {
                    return Err(IoError::Refused);
                }
                req_mem.type_ = raw::dm_io_mem_type_DM_IO_KMEM;
                req_mem.ptr.addr = core::ptr::null_mut();
            }
            SyncMem::Vmalloc(buf) => {
                let len = buf.len() as u64;
                let fits = |r: &IoRegion<'_>| {
                    r.region
                        .count
                        .checked_mul(SECTOR_BYTES)
                        .is_some_and(|b| b <= len)
                };
                if len == 0 || !regions.iter().all(fits) {
                    return Err(IoError::Refused);
                }
                req_mem.type_ = raw::dm_io_mem_type_DM_IO_VMA;
                req_mem.ptr.vma = buf.as_mut_ptr().cast();
            }
        }
        let mut req = raw::dm_io_request {
            bi_opf: op.raw(),
            mem: req_mem,
            notify: raw::dm_io_notify {
                fn_: None,
                context: core::ptr::null_mut(),
            },
            client: self.ptr.as_ptr(),
        };
        let mut error_bits: c_ulong = 0;
        let mut unsup_bits: c_ulong = 0;
        // dm-io only reads the regions, despite the non-const pointer.
        let regions_ptr = regions.as_ptr().cast::<raw::dm_io_region>().cast_mut();
        // SAFETY: `req` has no notify function, so dm-io waits for the I/O
        // before returning: the buffer (vmalloc memory, as DM_IO_VMA needs,
        // at least as long as every region) and the regions outlive it. The
        // client is live (type invariant); both bit masks are locals.
        let ret = unsafe {
            dm_io(
                &mut req,
                regions.len() as u32,
                regions_ptr,
                &mut error_bits,
                &mut unsup_bits,
            )
        };
        if error_bits != 0 {
            return Err(IoError::Failed(error_bits as u64));
        }
        if unsup_bits != 0 {
            return Err(IoError::Unsupported);
        }
        if ret != 0 {
            return Err(IoError::Refused);
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

/// The completion of requests made by [`IoClient::submit_bio`] for a `T`.
struct BioNotify<T>(PhantomData<T>);

impl<T: IoDone> DmIoNotify for BioNotify<T> {
    unsafe fn notify(error: c_ulong, unsup: c_ulong, context: *mut c_void) {
        // SAFETY: The context of a request with this notifier is a `T` bio
        // handed to `submit_bio`, whose request has finished (caller).
        unsafe { bio_notify::<T>(error, unsup, context) }
    }
}

/// dm-io's completion callback for requests made by [`IoClient::submit_bio`].
///
/// # Safety
///
/// `context` must be the raw pointer of a `T` bio whose dm-io request has
/// just finished (or was refused), and whose completion nobody else owns.
unsafe fn bio_notify<T: IoDone>(error: c_ulong, unsup: c_ulong, context: *mut c_void) {
    let Some(bio) = NonNull::new(context.cast::<raw::bio>()) else {
        return;
    };
    // SAFETY: The context is the `T` bio handed to `submit_bio`, whose
    // target lives while it is in flight. The counted reference keeps the
    // state alive for the whole callback, also after the callback has
    // completed the bio (which lets device-mapper destroy the target).
    let this = unsafe { bio_target::<T>(bio) }.to_ref();
    // SAFETY: The request is over; its bio's completion is ours again.
    let bio = unsafe { DmBio::from_raw(bio) };
    let bits = IoBits {
        failed: error as u64,
        unsupported: unsup as u64,
    };
    T::bio_io_done(this.borrow(), bio, bits);
}
