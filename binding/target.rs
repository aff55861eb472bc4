// SPDX-License-Identifier: GPL-2.0

//! The lifetime of a target's state: one owner, counted references for
//! asynchronous work, and a destructor that waits for all of them.
//!
//! A device-mapper target hands references to its state to work that ends
//! later on its own: work items on its queues, I/O and copy completions.
//! If such a reference were the last one, the state would be freed in
//! whatever context dropped it: a worker of the state's own workqueue
//! (whose destruction then waits for itself), a kcopyd completion (whose
//! client destruction then waits for itself), or after device-mapper has
//! already freed the target the state's devices belong to.
//!
//! So the state has exactly one owner, [`TargetState`], which device-mapper
//! keeps in `ti->private` from the constructor to the destructor. Work that
//! outlives a callback holds a [`TargetRef`]; dropping one never frees the
//! state. Dropping the owner waits until every [`TargetRef`] is gone and
//! only then drops the state, in the owner's (the destructor's) context.
//! Callbacks borrow the state as a [`TargetBorrow`] for their duration.
//!
//! The wait uses the kernel's `wait_var_event()`/`wake_up_var()`, whose
//! wait queues are hashed by address and live outside the state: the last
//! [`TargetRef`] may wake the owner after the state is gone without
//! touching the state's memory again.

use super::raw;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::workqueue::{HasWork, RawWorkItem, Work, WorkItem, WorkItemPointer};

/// The allocation behind a target's state.
#[pin_data]
#[repr(C)]
struct TargetBox<T> {
    /// The number of live [`TargetRef`]s (the owner is not counted).
    refs: AtomicUsize,
    #[pin]
    state: T,
}

/// The one owner of a target's state.
///
/// Dropping it waits (sleeping) until no [`TargetRef`] to the state is left,
/// then drops and frees the state in the dropping context. So the state must
/// not keep a [`TargetRef`] to itself (the owner would wait forever), and
/// the owner must be dropped where sleeping is allowed (device-mapper's
/// destructor, or the constructor's error path).
///
/// # Invariants
///
/// `ptr` points to a pinned, initialised `TargetBox<T>` allocated by
/// [`TargetState::new`]. It is freed only by this owner's drop, after
/// `refs` reached zero.
pub(crate) struct TargetState<T> {
    ptr: NonNull<TargetBox<T>>,
}

// SAFETY: The owner gives shared access to `T` from any thread (`T: Sync`)
// and may drop `T` on another thread than the one that made it (`T: Send`).
unsafe impl<T: Send + Sync> Send for TargetState<T> {}
// SAFETY: As above; the owner itself has no interior state.
unsafe impl<T: Send + Sync> Sync for TargetState<T> {}

impl<T> TargetState<T> {
    /// Allocates the state (process context, may sleep).
    pub(crate) fn new<E>(init: impl PinInit<T, E>) -> Result<Self>
    where
        Error: From<E>,
    {
        let b = KBox::<TargetBox<T>>::pin_init::<Error>(
            try_pin_init!(TargetBox::<T> {
                refs: AtomicUsize::new(0),
                state <- init,
            }? Error),
            GFP_KERNEL,
        )?;
        // SAFETY: The box stays pinned: only `drop` takes it back, to drop it
        // in place.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(b) });
        // INVARIANT: `raw` is the pinned box just initialised, and no
        // reference to it exists yet.
        Ok(Self {
            // SAFETY: `KBox::into_raw` never returns null.
            ptr: unsafe { NonNull::new_unchecked(raw) },
        })
    }

    /// Borrows the state.
    pub(crate) fn borrow(&self) -> TargetBorrow<'_, T> {
        // INVARIANT: The box lives at least as long as its owner, and `self`
        // is borrowed for the returned lifetime.
        TargetBorrow {
            // SAFETY: The box is live (type invariant).
            b: unsafe { self.ptr.as_ref() },
        }
    }

    /// Gives up ownership as a raw pointer (for `ti->private`).
    pub(crate) fn into_raw(self) -> *mut core::ffi::c_void {
        let p = self.ptr.as_ptr();
        core::mem::forget(self);
        p.cast()
    }

    /// Takes ownership back from [`TargetState::into_raw`].
    ///
    /// # Safety
    ///
    /// `p` must come from [`TargetState::into_raw`] for a `T`, and be taken
    /// back only once.
    pub(crate) unsafe fn from_raw(p: *mut core::ffi::c_void) -> Self {
        // INVARIANT: The caller hands back the owner's pointer.
        Self {
            // SAFETY: Guaranteed non-null by the caller.
            ptr: unsafe { NonNull::new_unchecked(p.cast()) },
        }
    }

    /// Borrows the state behind a raw owner pointer.
    ///
    /// # Safety
    ///
    /// `p` must come from [`TargetState::into_raw`] for a `T`, and the owner
    /// must not be taken back and dropped before `'a` ends.
    pub(crate) unsafe fn borrow_raw<'a>(p: *const core::ffi::c_void) -> TargetBorrow<'a, T> {
        // INVARIANT: The caller guarantees the box outlives `'a`.
        TargetBorrow {
            // SAFETY: As guaranteed by the caller, `p` is a live box.
            b: unsafe { &*p.cast::<TargetBox<T>>() },
        }
    }
}

impl<T> Drop for TargetState<T> {
    fn drop(&mut self) {
        // SAFETY: The box is live (type invariant); `refs` is a field of it.
        let refs = unsafe { &(*self.ptr.as_ptr()).refs };
        // SAFETY: `refs` is an atomic word of the live box. The helper
        // sleeps until it reads zero with acquire ordering, which pairs
        // with the release decrement in `TargetRef::drop`: everything the
        // holders did happens before the state is dropped below.
        unsafe { raw::dmrs_wait_var_zero(refs.as_ptr().cast()) };
        // SAFETY: No `TargetRef` is left, none can be made without a borrow
        // of this owner, and the owner is being dropped: nobody else can
        // reach the box. It was allocated pinned by `new`; it is dropped in
        // place and freed here.
        drop(unsafe { KBox::from_raw(self.ptr.as_ptr()) });
    }
}

/// A counted reference to a target's state, for work that ends after the
/// callback that started it (work items, I/O and copy completions).
///
/// Dropping the last one never frees the state; it wakes the owner if it is
/// waiting to drop it.
///
/// # Invariants
///
/// `ptr` points to a live `TargetBox<T>` whose `refs` counts this reference;
/// the owner does not free the box while `refs` is not zero.
pub(crate) struct TargetRef<T> {
    ptr: NonNull<TargetBox<T>>,
}

// SAFETY: A reference gives shared access to `T` from any thread; it never
// drops `T` (the owner does).
unsafe impl<T: Sync> Send for TargetRef<T> {}
// SAFETY: As above.
unsafe impl<T: Sync> Sync for TargetRef<T> {}

impl<T> TargetRef<T> {
    /// Borrows the state for as long as this reference is borrowed.
    pub(crate) fn borrow(&self) -> TargetBorrow<'_, T> {
        // INVARIANT: The box lives while this reference does.
        TargetBorrow {
            // SAFETY: The box is live (type invariant).
            b: unsafe { self.ptr.as_ref() },
        }
    }

    fn into_raw(self) -> *mut TargetBox<T> {
        let p = self.ptr.as_ptr();
        core::mem::forget(self);
        p
    }

    /// # Safety
    ///
    /// `p` must come from [`TargetRef::into_raw`], taken back once.
    unsafe fn from_raw(p: *mut TargetBox<T>) -> Self {
        // INVARIANT: The count `into_raw` kept is handed back.
        Self {
            // SAFETY: `into_raw` returned a non-null pointer.
            ptr: unsafe { NonNull::new_unchecked(p) },
        }
    }
}

impl<T> Clone for TargetRef<T> {
    fn clone(&self) -> Self {
        self.borrow().to_ref()
    }
}

impl<T> Deref for TargetRef<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The box is live while this reference exists (type
        // invariant).
        unsafe { &self.ptr.as_ref().state }
    }
}

impl<T> Drop for TargetRef<T> {
    fn drop(&mut self) {
        let refs = {
            // SAFETY: The box is live until the decrement below.
            let b = unsafe { self.ptr.as_ref() };
            &b.refs
        };
        let word = refs.as_ptr();
        // Release: what this holder did is seen by the owner that reads zero.
        if refs.fetch_sub(1, Ordering::Release) == 1 {
            // The owner may free the box from here on: only the address is
            // used, as the key of the wait queue the owner sleeps on.
            // SAFETY: `wake_up_var` hashes the address and never reads it.
            unsafe { raw::dmrs_wake_up_var(word.cast()) };
        }
    }
}

/// A borrow of a target's state for the duration of a callback (or of a
/// borrow of its owner or of a [`TargetRef`]).
///
/// # Invariants
///
/// `b` is a live box whose owner is not dropped before `'a` ends.
pub(crate) struct TargetBorrow<'a, T> {
    b: &'a TargetBox<T>,
}

impl<T> Clone for TargetBorrow<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for TargetBorrow<'_, T> {}

impl<'a, T> TargetBorrow<'a, T> {
    /// A counted reference, for work that may outlive the borrow.
    pub(crate) fn to_ref(self) -> TargetRef<T> {
        // Relaxed, as for `Arc::clone`: the borrow keeps the count above
        // zero, or the owner from waiting, until the increment is done.
        self.b.refs.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: The box is live (the borrow) and now counts this
        // reference, so the owner does not free it before it is dropped.
        TargetRef {
            ptr: NonNull::from(self.b),
        }
    }

    /// The address of the state's box, to find it again from a bio.
    pub(crate) fn as_raw(self) -> *const core::ffi::c_void {
        let p: *const TargetBox<T> = self.b;
        p.cast()
    }
}

impl<T> Deref for TargetBorrow<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.b.state
    }
}

// Work items whose pointer is a `TargetRef`: a queued or running item holds
// a counted reference, so the state it lives in (and the queue, if the state
// owns it) is dropped only by the owner, after the item has run.

// SAFETY: `__enqueue` passes the `work_struct` of a `Work<T, ID>` inside a
// box kept alive by the reference it leaks into the queue; `run` takes that
// reference back exactly once.
unsafe impl<T, const ID: u64> RawWorkItem<ID> for TargetRef<T>
where
    T: WorkItem<ID, Pointer = Self> + HasWork<T, ID>,
{
    type EnqueueOutput = core::result::Result<(), Self>;

    unsafe fn __enqueue<F>(self, queue_work_on: F) -> Self::EnqueueOutput
    where
        F: FnOnce(*mut kernel::bindings::work_struct) -> bool,
    {
        let b = self.into_raw();
        // SAFETY: `b` is a live box (the count just leaked keeps it so).
        let state = unsafe { core::ptr::addr_of_mut!((*b).state) };
        // SAFETY: `state` points to a valid `T`.
        let work = unsafe { Work::raw_get(T::raw_get_work(state)) };
        if queue_work_on(work) {
            Ok(())
        } else {
            // SAFETY: The queue did not take the reference: it is ours again.
            Err(unsafe { Self::from_raw(b) })
        }
    }
}

// SAFETY: `Work::new` installs this `run` for items of type `T`, and
// `__enqueue` only queues the `Work<T, ID>` of a `TargetBox<T>`.
unsafe impl<T, const ID: u64> WorkItemPointer<ID> for TargetRef<T>
where
    T: WorkItem<ID, Pointer = Self> + HasWork<T, ID>,
{
    unsafe extern "C" fn run(ptr: *mut kernel::bindings::work_struct) {
        // SAFETY: The queue calls this with the `work_struct` that
        // `__enqueue` gave it, which is the `Work<T, ID>` of a `T`.
        let state = unsafe { T::work_container_of(ptr.cast::<Work<T, ID>>()) };
        // SAFETY: That `T` is the `state` field of a `#[repr(C)]`
        // `TargetBox<T>`, at this offset.
        let b = unsafe {
            state
                .cast::<u8>()
                .sub(core::mem::offset_of!(TargetBox<T>, state))
                .cast::<TargetBox<T>>()
        };
        // SAFETY: `__enqueue` leaked this reference into the queue.
        T::run(unsafe { TargetRef::from_raw(b) })
    }
}
