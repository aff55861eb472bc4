// SPDX-License-Identifier: GPL-2.0

//! debugfs and fault injection, for test knobs that must not be part of the
//! target's user interface (6.12's `kernel` crate has neither).
//!
//! - [`DebugDir`]: a debugfs directory, removed with everything in it.
//! - [`FaultPoint`]: a `struct fault_attr` (the kernel's fault-injection
//!   framework, as `failslab` uses), configured under debugfs with the
//!   usual `probability`, `interval`, `times`, `verbose` files when the
//!   kernel has `CONFIG_FAULT_INJECTION_DEBUG_FS`; without
//!   `CONFIG_FAULT_INJECTION` it never fails.
//! - [`DebugFile`]: a debugfs file whose writes and reads go to a
//!   [`DebugFileOps`] handler.

use super::super::bounded_writer::BoundedWriter;
use crate::binding::raw;
use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::ffi::c_char;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::Opaque;

/// Turns debugfs's return value into a dentry, if it made one.
fn dentry(p: *mut raw::dentry) -> Option<NonNull<raw::dentry>> {
    super::super::from_err_ptr(p).ok()
}

/// A debugfs directory, removed recursively on drop.
///
/// # Invariants
///
/// `dentry` is a directory created by `debugfs_create_dir`, removed only by
/// the drop.
pub(crate) struct DebugDir {
    dentry: NonNull<raw::dentry>,
}

// SAFETY: debugfs entries may be created in and removed from any thread.
unsafe impl Send for DebugDir {}
// SAFETY: No method mutates the directory through `&self` unsafely.
unsafe impl Sync for DebugDir {}

impl DebugDir {
    /// Creates `/sys/kernel/debug/<name>`; `None` without debugfs.
    pub(crate) fn new(name: &CStr) -> Option<Self> {
        // SAFETY: `name` is NUL-terminated; a null parent is debugfs's root.
        let d = unsafe { raw::dmrs_debugfs_create_dir(name.as_char_ptr(), core::ptr::null_mut()) };
        // INVARIANT: Created just now; removed by the drop only.
        dentry(d).map(|dentry| Self { dentry })
    }
}

impl Drop for DebugDir {
    fn drop(&mut self) {
        // SAFETY: The directory exists (type invariant). Removal waits for
        // the file operations in progress on files inside it.
        unsafe { raw::dmrs_debugfs_remove(self.dentry.as_ptr()) };
    }
}

/// A fault-injection point. Meant to be a `static`: [`FaultPoint::register`]
/// initialises it at module load; before that it never fails.
///
/// # Invariants
///
/// Once `ready` is set, `attr` is an initialised `struct fault_attr`, never
/// moved again (it lives in a `static`).
pub(crate) struct FaultPoint {
    attr: Opaque<raw::fault_attr>,
    ready: AtomicBool,
}

// SAFETY: `should_fail` may be called concurrently (the kernel's fault
// attributes are shared by all tasks); initialisation happens once, before
// `ready` is published.
unsafe impl Sync for FaultPoint {}

impl FaultPoint {
    /// A fault point that is not initialised yet.
    pub(crate) const fn new() -> Self {
        Self {
            attr: Opaque::uninit(),
            ready: AtomicBool::new(false),
        }
    }

    /// Initialises the point (failing nothing until configured) and creates
    /// its debugfs directory `name` in `dir`. Does nothing the second time.
    pub(crate) fn register(&'static self, name: &CStr, dir: Option<&DebugDir>) {
        if self.ready.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: `attr` is valid for writes and not in use yet (`ready` is
        // not set, so `should_fail` does not touch it).
        unsafe { raw::dmrs_fault_attr_init(self.attr.get()) };
        // INVARIANT: Initialised above; a static never moves.
        self.ready.store(true, Ordering::Release);
        if let Some(dir) = dir {
            // SAFETY: `attr` is initialised and static; the parent exists. The
            // directory made is removed with its parent.
            unsafe {
                raw::dmrs_fault_create_debugfs_attr(
                    name.as_char_ptr(),
                    dir.dentry.as_ptr(),
                    self.attr.get(),
                )
            };
        }
    }

    /// Whether the caller should act as if its operation failed.
    pub(crate) fn should_fail(&self) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return false;
        }
        // SAFETY: `attr` is initialised (type invariant, `ready` is set).
        unsafe { raw::dmrs_should_fail(self.attr.get()) }
    }
}

/// What a [`DebugFile`] does with what is written to it and read from it.
pub(crate) trait DebugFileOps: Sync + 'static {
    /// Handles a write of `input` (at most 63 bytes, one line).
    fn write(&self, input: &str) -> Result;
    /// Writes what a read of the file shows.
    fn show(&self, out: &mut BoundedWriter<'_>);
}

/// A debugfs file served by a `T`, removed on drop.
///
/// # Invariants
///
/// `dentry` is a file made by `debugfs_create_file` with `fops::<T>` and
/// `handler` as its inode's private data; `handler` is a `KBox<T>` owned
/// here, freed after the file is removed.
pub(crate) struct DebugFile<T: DebugFileOps> {
    dentry: NonNull<raw::dentry>,
    handler: NonNull<T>,
}

// SAFETY: The handler is `Sync` and only shared; the file may be removed
// from any thread.
unsafe impl<T: DebugFileOps> Send for DebugFile<T> {}
// SAFETY: As above.
unsafe impl<T: DebugFileOps> Sync for DebugFile<T> {}

impl<T: DebugFileOps> DebugFile<T> {
    /// Creates file `name` (mode 0600) in `dir`, served by `handler`.
    pub(crate) fn new(name: &CStr, dir: &DebugDir, handler: T) -> Result<Self> {
        let handler = KBox::new(handler, GFP_KERNEL)?;
        let handler = NonNull::from(KBox::leak(handler));
        // SAFETY: `name` is NUL-terminated, the parent exists, `FOPS` is a
        // static table whose callbacks expect a `T` as the inode's private
        // data, which lives until the file is removed (drop).
        let d = unsafe {
            raw::dmrs_debugfs_create_file(
                name.as_char_ptr(),
                0o600,
                dir.dentry.as_ptr(),
                handler.as_ptr().cast(),
                &Self::FOPS,
            )
        };
        match dentry(d) {
            // INVARIANT: The file serves `handler`, owned from here on.
            Some(dentry) => Ok(Self { dentry, handler }),
            None => {
                // SAFETY: No file refers to the handler: take it back.
                drop(unsafe { KBox::from_raw(handler.as_ptr()) });
                Err(ENODEV)
            }
        }
    }

    const FOPS: raw::file_operations = raw::file_operations {
        read: Some(debug_read::<T>),
        write: Some(debug_write::<T>),
        // SAFETY: All-zero is a valid `file_operations` (no callbacks).
        ..unsafe { core::mem::zeroed() }
    };
}

impl<T: DebugFileOps> Drop for DebugFile<T> {
    fn drop(&mut self) {
        // SAFETY: The file exists (type invariant); removal waits for the
        // reads and writes in progress, so none uses the handler after it.
        unsafe { raw::dmrs_debugfs_remove(self.dentry.as_ptr()) };
        // SAFETY: The handler came from `KBox::leak` in `new`, and nothing
        // refers to it any more.
        drop(unsafe { KBox::from_raw(self.handler.as_ptr()) });
    }
}

/// The handler of an open debugfs file.
///
/// # Safety
///
/// `file` must be an open file of a [`DebugFile<T>`].
unsafe fn handler<'a, T: DebugFileOps>(file: *mut raw::file) -> &'a T {
    // SAFETY: The inode's private data is the `T` the file was made with,
    // alive while the file exists (debugfs keeps it while an operation runs).
    unsafe { &*(*(*file).f_inode).i_private.cast::<T>() }
}

/// debugfs's `write` for a [`DebugFile<T>`].
///
/// # Safety
///
/// The VFS calls it with an open file of a [`DebugFile<T>`] and `len` bytes
/// of user memory at `buf`.
unsafe extern "C" fn debug_write<T: DebugFileOps>(
    file: *mut raw::file,
    buf: *const c_char,
    len: usize,
    _ppos: *mut raw::loff_t,
) -> isize {
    let mut kbuf = [0u8; 64];
    let Some(dst) = kbuf.get_mut(..len) else {
        return EINVAL.to_errno() as isize;
    };
    if crate::binding::compat::user_slice(buf, len)
        .reader()
        .read_slice(dst)
        .is_err()
    {
        return EFAULT.to_errno() as isize;
    }
    let Ok(text) = core::str::from_utf8(dst) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: The VFS passes an open file of a `DebugFile<T>`.
    match unsafe { handler::<T>(file) }.write(text.trim()) {
        Ok(()) => len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// debugfs's `read` for a [`DebugFile<T>`].
///
/// # Safety
///
/// The VFS calls it with an open file of a [`DebugFile<T>`], `count` bytes
/// of user memory at `buf` and the file position at `ppos`.
unsafe extern "C" fn debug_read<T: DebugFileOps>(
    file: *mut raw::file,
    buf: *mut c_char,
    count: usize,
    ppos: *mut raw::loff_t,
) -> isize {
    let mut kbuf = [0u8; 256];
    let mut out = BoundedWriter::new(&mut kbuf);
    // SAFETY: The VFS passes an open file of a `DebugFile<T>`.
    unsafe { handler::<T>(file) }.show(&mut out);
    let len = out.len();
    // SAFETY: `buf`/`count`/`ppos` come from the VFS; `kbuf` holds `len`
    // bytes of text.
    unsafe {
        raw::simple_read_from_buffer(
            buf.cast::<c_void>(),
            count,
            ppos,
            kbuf.as_ptr().cast::<c_void>(),
            len,
        )
    }
}
