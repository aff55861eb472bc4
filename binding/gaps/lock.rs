// SPDX-License-Identifier: GPL-2.0

//! A spinlock that disables interrupts while held.
//!
//! The `kernel` crate's `SpinLock` uses plain `spin_lock()`. State that bio
//! completion callbacks touch (they may run in interrupt context) needs
//! interrupts disabled while the lock is held:
//!
//! - 6.12 (no such lock in its crate): a `spinlock_t` of our own, taken with
//!   `spin_lock_irqsave()`.
//! - 7.3: the kernel's `SpinLockIrq` (`spin_lock_irq_disable()`: interrupts
//!   off, the previous state kept in a per-CPU count, so guards may drop in
//!   any order), behind the same interface.

#[cfg(not(dmrs_kernel_ge_7_3))]
use crate::binding::raw;
#[cfg(not(dmrs_kernel_ge_7_3))]
use core::cell::UnsafeCell;
#[cfg(not(dmrs_kernel_ge_7_3))]
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
#[cfg(dmrs_kernel_ge_7_3)]
use core::pin::Pin;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::LockClassKey;
#[cfg(dmrs_kernel_ge_7_3)]
use kernel::sync::{SpinLockIrq, SpinLockIrqGuard};
#[cfg(not(dmrs_kernel_ge_7_3))]
use kernel::types::Opaque;

/// Creates an [`IrqSpinLock`] initialiser with a lock class of its own.
macro_rules! new_irq_spinlock {
    ($inner:expr, $name:literal) => {
        $crate::binding::gaps::lock::IrqSpinLock::new(
            $inner,
            kernel::c_str!($name),
            $crate::binding::compat::static_lock_class!(),
        )
    };
}
pub(crate) use new_irq_spinlock;

/// A spinlock taken with interrupts disabled, protecting a `T`.
///
/// # Invariants
///
/// `lock` is an initialised `spinlock_t`; `data` is only accessed while it is
/// held.
#[cfg(not(dmrs_kernel_ge_7_3))]
#[pin_data]
pub(crate) struct IrqSpinLock<T> {
    #[pin]
    lock: Opaque<raw::spinlock_t>,
    data: UnsafeCell<T>,
}

#[cfg(not(dmrs_kernel_ge_7_3))]
// SAFETY: The lock hands out access to `data` to one holder at a time, so it
// can be shared between threads whenever `T` can be sent between them.
unsafe impl<T: Send> Sync for IrqSpinLock<T> {}
#[cfg(not(dmrs_kernel_ge_7_3))]
// SAFETY: Moving the lock moves the `T` it owns; the spinlock itself is not
// tied to a thread.
unsafe impl<T: Send> Send for IrqSpinLock<T> {}

#[cfg(not(dmrs_kernel_ge_7_3))]
impl<T> IrqSpinLock<T> {
    /// Returns an initialiser of a lock protecting `data`.
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: &'static LockClassKey,
    ) -> impl PinInit<Self> {
        // INVARIANT: `lock` is initialised by `ffi_init` before the lock
        // can be reached; `data` is only handed out by `lock`.
        pin_init!(Self {
            data: UnsafeCell::new(data),
            // SAFETY: `slot` is valid for writes; `name` and `key` are static.
            // `LockClassKey` is a transparent wrapper of `lock_class_key`.
            lock <- Opaque::ffi_init(|slot| unsafe {
                raw::dmrs_spin_lock_init(
                    slot,
                    name.as_char_ptr(),
                    core::ptr::from_ref(key).cast_mut().cast(),
                )
            }),
        })
    }

    /// Takes the lock, disabling interrupts on this CPU until the guard drops.
    pub(crate) fn lock(&self) -> IrqGuard<'_, T> {
        // SAFETY: `self.lock` is initialised (type invariant).
        let flags = unsafe { raw::dmrs_spin_lock_irqsave(self.lock.get()) };
        // INVARIANT: The lock was just taken, and `flags` are what saving
        // the interrupt state returned.
        IrqGuard {
            lock: self,
            flags,
            _not_send: PhantomData,
        }
    }
}

/// Access to the data of a held [`IrqSpinLock`].
///
/// # Invariants
///
/// The lock is held by this guard and `flags` are the interrupt flags saved
/// when it was taken.
#[cfg(not(dmrs_kernel_ge_7_3))]
pub(crate) struct IrqGuard<'a, T> {
    lock: &'a IrqSpinLock<T>,
    flags: kernel::ffi::c_ulong,
    _not_send: PhantomData<*mut ()>,
}

#[cfg(not(dmrs_kernel_ge_7_3))]
impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The lock is held (type invariant), so no one else accesses
        // the data.
        unsafe { &*self.lock.data.get() }
    }
}

#[cfg(not(dmrs_kernel_ge_7_3))]
impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: The lock is held (type invariant), so no one else accesses
        // the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

#[cfg(not(dmrs_kernel_ge_7_3))]
impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The lock is held with these saved flags (type invariant).
        unsafe { raw::dmrs_spin_unlock_irqrestore(self.lock.lock.get(), self.flags) };
    }
}

/// The data of a 7.3 [`IrqSpinLock`]. Nothing projects a pin onto it (only
/// `&T` and `&mut T` are handed out), so it is `Unpin` whatever `T` is, and
/// the kernel's guard gives `&mut` access to it as ours does on 6.12.
#[cfg(dmrs_kernel_ge_7_3)]
struct Unpinned<T> {
    data: T,
}

#[cfg(dmrs_kernel_ge_7_3)]
impl<T> Unpin for Unpinned<T> {}

/// A spinlock taken with interrupts disabled, protecting a `T`: the kernel's
/// `SpinLockIrq`.
#[cfg(dmrs_kernel_ge_7_3)]
#[pin_data]
pub(crate) struct IrqSpinLock<T> {
    #[pin]
    inner: SpinLockIrq<Unpinned<T>>,
}

#[cfg(dmrs_kernel_ge_7_3)]
impl<T> IrqSpinLock<T> {
    /// Returns an initialiser of a lock protecting `data`.
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: &'static LockClassKey,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- SpinLockIrq::new(Unpinned { data }, name, Pin::static_ref(key)),
        })
    }

    /// Takes the lock, disabling interrupts on this CPU until the guard drops
    /// (and every other guard that disabled them on this CPU has dropped).
    pub(crate) fn lock(&self) -> IrqGuard<'_, T> {
        IrqGuard {
            guard: self.inner.lock(),
        }
    }
}

/// Access to the data of a held [`IrqSpinLock`].
#[cfg(dmrs_kernel_ge_7_3)]
pub(crate) struct IrqGuard<'a, T> {
    guard: SpinLockIrqGuard<'a, Unpinned<T>>,
}

#[cfg(dmrs_kernel_ge_7_3)]
impl<T> Deref for IrqGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard.data
    }
}

#[cfg(dmrs_kernel_ge_7_3)]
impl<T> DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard.data
    }
}
