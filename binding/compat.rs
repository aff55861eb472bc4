// SPDX-License-Identifier: GPL-2.0

//! What differs between the `kernel` crates of the kernels dm-mirror-rs
//! builds against, selected at build time: `Kbuild` passes
//! `--cfg dmrs_kernel_ge_7_3` when the tree is Linux 7.3 or newer, and
//! nothing for 6.12. Everything outside this file calls the items below the
//! same way on every kernel; `docs/kernels.md` lists what differs and why.

/// `fmt!`, which builds the `fmt::Arguments` of `CString::try_from_fmt`: a
/// `macro_rules!` in 6.12's crate, a procedural macro of the prelude in 7.3.
#[cfg(not(dmrs_kernel_ge_7_3))]
pub(crate) use kernel::fmt;
#[cfg(dmrs_kernel_ge_7_3)]
pub(crate) use kernel::prelude::fmt;

/// The body of a `#[vtable]` trait method with a default: a build error if
/// the default is ever called. 6.12 exports `build_error` as a function,
/// 7.3 as a macro.
#[cfg(not(dmrs_kernel_ge_7_3))]
macro_rules! vtable_default {
    () => {
        kernel::build_error(kernel::error::VTABLE_DEFAULT_ERROR)
    };
}
#[cfg(dmrs_kernel_ge_7_3)]
macro_rules! vtable_default {
    () => {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    };
}
pub(crate) use vtable_default;

/// A lock class of its own for each use: `&'static LockClassKey`. 7.3's
/// `static_lock_class!` returns it pinned.
#[cfg(not(dmrs_kernel_ge_7_3))]
macro_rules! static_lock_class {
    () => {
        kernel::static_lock_class!()
    };
}
#[cfg(dmrs_kernel_ge_7_3)]
macro_rules! static_lock_class {
    () => {
        kernel::static_lock_class!().get_ref()
    };
}
pub(crate) use static_lock_class;

/// `module!` with one author: 6.12 takes `author: "..."`, 7.3 only
/// `authors: ["..."]`.
#[cfg(not(dmrs_kernel_ge_7_3))]
macro_rules! module_one_author {
    (type: $t:ident, name: $n:tt, author: $a:tt, description: $d:tt,
     license: $l:tt $(,)?) => {
        kernel::prelude::module! {
            type: $t,
            name: $n,
            author: $a,
            description: $d,
            license: $l,
        }
    };
}
#[cfg(dmrs_kernel_ge_7_3)]
macro_rules! module_one_author {
    (type: $t:ident, name: $n:tt, author: $a:tt, description: $d:tt,
     license: $l:tt $(,)?) => {
        kernel::prelude::module! {
            type: $t,
            name: $n,
            authors: [$a],
            description: $d,
            license: $l,
        }
    };
}
pub(crate) use module_one_author;

/// The user memory `[addr, addr + len)` of a debugfs write: 7.3's
/// `UserSlice::new` takes a `UserPtr`, 6.12's the address.
pub(crate) fn user_slice(
    addr: *const kernel::ffi::c_char,
    len: usize,
) -> kernel::uaccess::UserSlice {
    #[cfg(not(dmrs_kernel_ge_7_3))]
    let ptr = addr as usize;
    #[cfg(dmrs_kernel_ge_7_3)]
    let ptr = kernel::uaccess::UserPtr::from_addr(addr as usize);
    kernel::uaccess::UserSlice::new(ptr, len)
}

/// A dm-io completion, called with the bits of the regions that failed and
/// of those that refused the request as unsupported or invalid.
pub(crate) trait DmIoNotify {
    /// The request finished: bit `i` of `error` is set if region `i` failed,
    /// bit `i` of `unsup` if region `i` refused the operation as unsupported
    /// or invalid (`BLK_STS_NOTSUPP`, `BLK_STS_INVAL`). 7.3's dm-io tells
    /// the two apart; 6.12's counts both as failures, so `unsup` is 0 there.
    ///
    /// # Safety
    ///
    /// `context` is the context of a request this notifier was given to, and
    /// the request has finished.
    unsafe fn notify(
        error: kernel::ffi::c_ulong,
        unsup: kernel::ffi::c_ulong,
        context: *mut core::ffi::c_void,
    );
}

/// The C callback of a [`DmIoNotify`] for `dm_io_notify.fn` (see
/// `docs/kernels.md`).
pub(crate) fn notify_fn<N: DmIoNotify>() -> super::raw::io_notify_fn {
    /// # Safety
    ///
    /// Called by dm-io only, once the request with this callback and
    /// `context` has finished.
    #[cfg(not(dmrs_kernel_ge_7_3))]
    unsafe extern "C" fn notify<N: DmIoNotify>(
        error: kernel::ffi::c_ulong,
        context: *mut core::ffi::c_void,
    ) {
        // SAFETY: dm-io calls this once its request, made with this
        // notifier and `context`, has finished.
        unsafe { N::notify(error, 0, context) }
    }
    /// # Safety
    ///
    /// Called by dm-io only, once the request with this callback and
    /// `context` has finished.
    #[cfg(dmrs_kernel_ge_7_3)]
    unsafe extern "C" fn notify<N: DmIoNotify>(
        error: kernel::ffi::c_ulong,
        unsup: kernel::ffi::c_ulong,
        context: *mut core::ffi::c_void,
    ) {
        // SAFETY: dm-io calls this once its request, made with this
        // notifier and `context`, has finished.
        unsafe { N::notify(error, unsup, context) }
    }
    Some(notify::<N>)
}

/// `dm_io()`. For a synchronous request, `error_bits` and `unsup_bits`
/// (both null or both writable) receive the bits of the regions that failed
/// and of those that refused the request as unsupported or invalid, as for
/// [`DmIoNotify::notify`]: `unsup_bits` is always 0 on 6.12.
///
/// # Safety
///
/// As for the C `dm_io()`: `req` is a valid request whose client is live,
/// `regions` points to `nr` regions, `error_bits` and `unsup_bits` are both
/// null or both writable.
pub(crate) unsafe fn dm_io(
    req: *mut super::raw::dm_io_request,
    nr: u32,
    regions: *mut super::raw::dm_io_region,
    error_bits: *mut kernel::ffi::c_ulong,
    unsup_bits: *mut kernel::ffi::c_ulong,
) -> kernel::ffi::c_int {
    // SAFETY: No precondition.
    let ioprio = unsafe { super::raw::dmrs_ioprio_default() };
    #[cfg(not(dmrs_kernel_ge_7_3))]
    {
        if !unsup_bits.is_null() {
            // SAFETY: Writable (caller).
            unsafe { *unsup_bits = 0 };
        }
        // SAFETY: The caller's guarantees are dm_io()'s.
        unsafe { super::raw::dm_io(req, nr, regions, error_bits, ioprio) }
    }
    #[cfg(dmrs_kernel_ge_7_3)]
    {
        // SAFETY: The caller's guarantees are dm_io()'s (7.3's takes both
        // pointers, each null or writable).
        unsafe { super::raw::dm_io(req, nr, regions, error_bits, unsup_bits, ioprio) }
    }
}

/// The `target_type.features` bit of a target that takes atomic writes
/// (`REQ_ATOMIC` bios) and passes each whole to its devices: 7.3's
/// device-mapper then offers atomic writes on the target's devices where
/// all the devices below have them. 6.12's device-mapper has no such bit
/// and never sends an atomic write to a target.
#[cfg(dmrs_kernel_ge_7_3)]
pub(crate) const DM_TARGET_ATOMIC_WRITES: Option<u64> = Some(super::raw::DM_TARGET_ATOMIC_WRITES);
#[cfg(not(dmrs_kernel_ge_7_3))]
pub(crate) const DM_TARGET_ATOMIC_WRITES: Option<u64> = None;

/// A kernel-free value that implements `core::fmt::Display`, for the
/// kernel's print macros: `pr_err!("{}\n", AsDisplay(&e))`. 6.12's macros
/// take `core::fmt::Display`; 7.3's take the kernel's own
/// `kernel::fmt::Display` (implemented for the kernel's and core's types,
/// not for ours, which stay free of kernel types).
pub(crate) struct AsDisplay<'a, T: core::fmt::Display>(pub(crate) &'a T);

#[cfg(not(dmrs_kernel_ge_7_3))]
impl<T: core::fmt::Display> core::fmt::Display for AsDisplay<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self.0, f)
    }
}

#[cfg(dmrs_kernel_ge_7_3)]
impl<T: core::fmt::Display> kernel::fmt::Display for AsDisplay<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self.0, f)
    }
}
