// SPDX-License-Identifier: GPL-2.0

//! kcopyd: asynchronous copies from one device area to several others, used
//! to recover out-of-sync regions.

use super::dmio::IoRegion;
use super::gaps::gfp::Gfp;
use super::gaps::kmem::KmBox;
use super::raw;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::ffi::{c_int, c_ulong};
use kernel::prelude::*;

/// Learns when a kcopyd copy finishes. Runs in kcopyd's worker (process
/// context).
pub(crate) trait CopyDone: Send + Sized + 'static {
    /// `read_err`: the source failed; bit `i` of `write_err`: destination `i`
    /// failed.
    fn copy_done(self, read_err: bool, write_err: u64);
}

/// A kcopyd client.
///
/// # Invariants
///
/// `ptr` is a live client from `dm_kcopyd_client_create`.
pub(crate) struct KcopydClient {
    ptr: NonNull<raw::dm_kcopyd_client>,
}

// SAFETY: kcopyd clients are used concurrently by design.
unsafe impl Send for KcopydClient {}
// SAFETY: As above.
unsafe impl Sync for KcopydClient {}

impl KcopydClient {
    /// Creates an unthrottled client (process context).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: A null throttle is allowed.
        let ptr = unsafe { raw::dm_kcopyd_client_create(core::ptr::null_mut()) };
        // INVARIANT: `from_err_ptr` lets only a live client through.
        Ok(Self {
            ptr: super::from_err_ptr(ptr)?,
        })
    }

    /// Copies `from` to every region of `dests`; `done` is called when the
    /// copy is over. With `ignore_errors`, an error on one destination does
    /// not stop the copy to the others (it is still reported). Allocates a
    /// small context with GFP_NOIO; if that fails, `done` is given back.
    pub(crate) fn copy<D: CopyDone>(
        &self,
        from: IoRegion<'_>,
        dests: &[IoRegion<'_>],
        ignore_errors: bool,
        done: D,
    ) -> Result<(), D> {
        let flags = if ignore_errors {
            1 << raw::DM_KCOPYD_IGNORE_ERROR
        } else {
            0
        };
        let ctx = KmBox::new(done, Gfp::NOIO.nowarn())?;
        let mut from = from;
        // SAFETY: `IoRegion` is a transparent `dm_io_region`; kcopyd reads the
        // regions during this call only. The context comes back once through
        // `copy_notify::<D>`.
        unsafe {
            raw::dm_kcopyd_copy(
                self.ptr.as_ptr(),
                core::ptr::from_mut(&mut from).cast(),
                dests.len() as u32,
                dests.as_ptr().cast::<raw::dm_io_region>().cast_mut(),
                flags,
                Some(copy_notify::<D>),
                ctx.into_raw(),
            )
        };
        Ok(())
    }
}

impl Drop for KcopydClient {
    fn drop(&mut self) {
        // SAFETY: The client is live and has no copies in flight.
        unsafe { raw::dm_kcopyd_client_destroy(self.ptr.as_ptr()) };
    }
}

/// kcopyd's completion callback for [`KcopydClient::copy`].
///
/// # Safety
///
/// `context` must be the `KmBox<D>` handed to `dm_kcopyd_copy`, used once.
unsafe extern "C" fn copy_notify<D: CopyDone>(
    read_err: c_int,
    write_err: c_ulong,
    context: *mut c_void,
) {
    // SAFETY: guaranteed by the caller.
    if let Some(ctx) = unsafe { KmBox::<D>::from_raw(context) } {
        ctx.into_inner().copy_done(read_err != 0, write_err as u64);
    }
}
