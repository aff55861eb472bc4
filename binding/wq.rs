// SPDX-License-Identifier: GPL-2.0

//! A workqueue owned by the module (the `kernel` crate only offers the system
//! queues). kmirrord runs on one with `WQ_MEM_RECLAIM`, so it keeps making
//! progress under memory pressure.

use super::raw;
use core::ptr::NonNull;
use kernel::c_str;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::workqueue::{Queue, RawWorkItem};

/// An allocated workqueue, destroyed (after draining) on drop.
///
/// # Invariants
///
/// `ptr` points to a live workqueue created by `alloc_workqueue`.
pub(crate) struct OwnedQueue {
    ptr: NonNull<raw::workqueue_struct>,
}

// SAFETY: A workqueue may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: Queueing work concurrently is what workqueues are made for.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// Allocates a workqueue that can make progress during memory reclaim.
    pub(crate) fn new_mem_reclaim(name: &CStr) -> Result<Self> {
        // SAFETY: The format is "%s" with one NUL-terminated string argument.
        let ptr = unsafe {
            raw::alloc_workqueue(
                c_str!("%s").as_char_ptr(),
                raw::WQ_MEM_RECLAIM,
                1,
                name.as_char_ptr(),
            )
        };
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        Ok(Self { ptr })
    }

    fn queue(&self) -> &Queue {
        // SAFETY: The workqueue is live for as long as `self` is (type
        // invariant), and `workqueue_struct` is the same C type in both
        // binding sets.
        unsafe { Queue::from_raw(self.ptr.as_ptr().cast()) }
    }

    /// Queues a work item; if it is already queued, nothing changes.
    pub(crate) fn enqueue<W, const ID: u64>(&self, w: W)
    where
        W: RawWorkItem<ID> + Send + 'static,
    {
        // An item that is already pending will run anyway.
        let _ = self.queue().enqueue(w);
    }

    /// Waits until every work item queued so far has finished.
    pub(crate) fn flush(&self) {
        // SAFETY: The workqueue is live (type invariant).
        unsafe { raw::__flush_workqueue(self.ptr.as_ptr()) };
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: The workqueue is live and nothing uses it after this.
        unsafe { raw::destroy_workqueue(self.ptr.as_ptr()) };
    }
}
