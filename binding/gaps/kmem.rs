// SPDX-License-Identifier: GPL-2.0

//! Allocations with explicit GFP flags, and kmalloc-backed mempools.
//!
//! The `kernel` crate's `KBox` cannot allocate with `GFP_NOIO`; [`KmBox`]
//! can. [`KmallocPool`] wraps the kernel's mempool (`mempool_kmalloc`
//! elements). A [`PoolBox`] remembers where its memory came from — the pool
//! or a plain kmalloc — and gives it back to the right place on drop.

use super::gfp::Gfp;
use crate::binding::raw;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

/// kmalloc's guaranteed alignment (`ARCH_KMALLOC_MINALIGN` is at least 8).
const KMALLOC_ALIGN: usize = 8;

/// Allocates room for a `T` with kmalloc.
fn kmalloc_for<T>(gfp: Gfp) -> Option<NonNull<T>> {
    build_assert!(align_of::<T>() <= KMALLOC_ALIGN);
    // SAFETY: No precondition: kmalloc with the caller's flags.
    let p = unsafe { raw::dmrs_kmalloc(size_of::<T>().max(1), gfp.raw()) };
    NonNull::new(p.cast())
}

/// A `T` in memory from kmalloc with flags of the caller's choice.
///
/// # Invariants
///
/// `ptr` is a kmalloc allocation holding an initialised `T`, owned here.
pub(crate) struct KmBox<T> {
    ptr: NonNull<T>,
}

// SAFETY: `KmBox<T>` owns its `T` like `KBox` does.
unsafe impl<T: Send> Send for KmBox<T> {}
// SAFETY: As above.
unsafe impl<T: Sync> Sync for KmBox<T> {}

impl<T> KmBox<T> {
    /// Moves `value` into a fresh allocation; gives it back on failure.
    pub(crate) fn new(value: T, gfp: Gfp) -> Result<Self, T> {
        let Some(ptr) = kmalloc_for::<T>(gfp) else {
            return Err(value);
        };
        // SAFETY: `ptr` is a fresh allocation large and aligned enough.
        unsafe { ptr.as_ptr().write(value) };
        // INVARIANT: `ptr` is our kmalloc allocation, initialised just above.
        Ok(Self { ptr })
    }

    /// Gives up ownership, e.g. to pass the value through a C callback.
    pub(crate) fn into_raw(self) -> *mut c_void {
        let p = self.ptr.as_ptr();
        core::mem::forget(self);
        p.cast()
    }

    /// # Safety
    ///
    /// `p` must come from [`KmBox::into_raw`] of the same `T`, and be used
    /// only once.
    pub(crate) unsafe fn from_raw(p: *mut c_void) -> Option<Self> {
        // INVARIANT: `p` came from `into_raw`, which gave up an owned,
        // initialised allocation; the caller uses it only once.
        NonNull::new(p.cast()).map(|ptr| Self { ptr })
    }

    /// Moves the value out, freeing the allocation.
    pub(crate) fn into_inner(self) -> T {
        let p = self.ptr.as_ptr();
        core::mem::forget(self);
        // SAFETY: We own an initialised `T` in a kmalloc allocation; it is
        // read once and the memory freed without dropping it again.
        unsafe {
            let v = p.read();
            raw::kfree(p.cast());
            v
        }
    }
}

impl<T> Deref for KmBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` holds an initialised `T` owned by us.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for KmBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: `ptr` holds an initialised `T` owned by us.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for KmBox<T> {
    fn drop(&mut self) {
        // SAFETY: We own an initialised `T` in a kmalloc allocation.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            raw::kfree(self.ptr.as_ptr().cast());
        }
    }
}

/// A kernel mempool of kmalloc'ed elements sized for a `T`.
///
/// # Invariants
///
/// `pool` is a live mempool created by `mempool_create_node` with
/// `mempool_kmalloc`/`mempool_kfree` and element size `size_of::<T>()`.
pub(crate) struct KmallocPool<T> {
    pool: NonNull<raw::mempool_t>,
    _t: PhantomData<T>,
}

// SAFETY: mempools may be used from any context and thread.
unsafe impl<T: Send> Send for KmallocPool<T> {}
// SAFETY: As above.
unsafe impl<T: Send> Sync for KmallocPool<T> {}

impl<T> KmallocPool<T> {
    /// Creates a pool that keeps `min_nr` elements in reserve.
    pub(crate) fn new(min_nr: u32) -> Result<Arc<Self>> {
        build_assert!(align_of::<T>() <= KMALLOC_ALIGN);
        // SAFETY: `mempool_kmalloc`/`mempool_kfree` take the element size as
        // pool data; GFP_KERNEL is fine in the constructor.
        let pool = unsafe {
            raw::mempool_create_node_noprof(
                min_nr as i32,
                Some(raw::mempool_kmalloc),
                Some(raw::mempool_kfree),
                size_of::<T>().max(1) as *mut c_void,
                Gfp::KERNEL.raw(),
                raw::NUMA_NO_NODE,
            )
        };
        let pool = NonNull::new(pool).ok_or(ENOMEM)?;
        // INVARIANT: `pool` was just created with `mempool_kmalloc`,
        // `mempool_kfree` and the size of `T`.
        Ok(Arc::new(
            Self {
                pool,
                _t: PhantomData,
            },
            GFP_KERNEL,
        )?)
    }

    /// Takes an element without ever sleeping: from the allocator, or from
    /// the pool's reserve. Gives `value` back if both are empty.
    pub(crate) fn alloc_atomic(self: &Arc<Self>, value: T) -> Result<PoolBox<T>, T> {
        let gfp = Gfp::ATOMIC.nowarn();
        // SAFETY: The pool is live (type invariant); GFP_ATOMIC never sleeps.
        let p = unsafe { raw::mempool_alloc_noprof(self.pool.as_ptr(), gfp.raw()) };
        let Some(ptr) = NonNull::new(p.cast::<T>()) else {
            return Err(value);
        };
        // SAFETY: Pool elements are kmalloc'ed with room for a `T`.
        unsafe { ptr.as_ptr().write(value) };
        // INVARIANT: `ptr` now holds a `T` and came from this pool.
        Ok(PoolBox {
            ptr,
            origin: Origin::Pool(self.clone()),
        })
    }

    /// Allocates outside the pool with plain kmalloc and `gfp` (e.g.
    /// `GFP_NOIO | __GFP_NOFAIL`, which may sleep but cannot fail).
    pub(crate) fn alloc_kmalloc(value: T, gfp: Gfp) -> Result<PoolBox<T>, T> {
        let Some(ptr) = kmalloc_for::<T>(gfp) else {
            return Err(value);
        };
        // SAFETY: `ptr` is a fresh allocation with room for a `T`.
        unsafe { ptr.as_ptr().write(value) };
        // INVARIANT: `ptr` now holds a `T` and came from kmalloc.
        Ok(PoolBox {
            ptr,
            origin: Origin::Kmalloc,
        })
    }
}

impl<T> Drop for KmallocPool<T> {
    fn drop(&mut self) {
        // SAFETY: Every `PoolBox` from the pool holds an `Arc` of it, so none
        // is outstanding; the pool is live.
        unsafe { raw::mempool_destroy(self.pool.as_ptr()) };
    }
}

enum Origin<T> {
    Pool(Arc<KmallocPool<T>>),
    Kmalloc,
}

/// A `T` allocated from a [`KmallocPool`] or by its kmalloc fallback.
///
/// # Invariants
///
/// `ptr` holds an initialised `T`; its memory came from `origin`.
pub(crate) struct PoolBox<T> {
    ptr: NonNull<T>,
    origin: Origin<T>,
}

// SAFETY: `PoolBox<T>` owns its `T`; pools may be used from any thread.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: As above.
unsafe impl<T: Sync + Send> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Whether the memory came from the pool (not the kmalloc fallback).
    pub(crate) fn is_from_pool(&self) -> bool {
        matches!(self.origin, Origin::Pool(_))
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` holds an initialised `T` owned by us.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: `ptr` holds an initialised `T` owned by us.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: We own the initialised `T`; its memory goes back where it
        // came from (type invariant). Neither free sleeps.
        unsafe {
            core::ptr::drop_in_place(self.ptr.as_ptr());
            match &self.origin {
                Origin::Pool(pool) => {
                    raw::mempool_free(self.ptr.as_ptr().cast(), pool.pool.as_ptr())
                }
                Origin::Kmalloc => raw::kfree(self.ptr.as_ptr().cast()),
            }
        }
    }
}
