// SPDX-License-Identifier: GPL-2.0

//! A workqueue owned by the module (the `kernel` crate only offers the system
//! queues). kmirrord runs on one with `WQ_MEM_RECLAIM`, so it keeps making
//! progress under memory pressure.
//!
//! Destroying a workqueue drains it: it waits for every item queued on it.
//! Done from one of its own items, that wait would never end (and the queue
//! would be freed under the running item). So a queue dropped inside any
//! work item is not destroyed there: its destruction is handed to the
//! system's unbound queue, with a work item allocated when the queue was.

use crate::binding::raw;
use core::ptr::NonNull;
use kernel::c_str;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::workqueue::{self, impl_has_work, new_work, Queue, RawWorkItem, Work, WorkItem};

/// An allocated workqueue, destroyed (after draining) on drop.
///
/// # Invariants
///
/// `ptr` points to a live workqueue created by `alloc_workqueue`, and
/// `destroy` is the work item that destroys that same queue (`Some` until
/// the drop).
pub(crate) struct OwnedQueue {
    ptr: NonNull<raw::workqueue_struct>,
    destroy: Option<Pin<KBox<DeferredDestroy>>>,
}

// SAFETY: A workqueue may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: Queueing work concurrently is what workqueues are made for.
unsafe impl Sync for OwnedQueue {}

/// Destroys a workqueue from the system's unbound queue.
///
/// # Invariants
///
/// `wq` is a live workqueue that nothing else destroys or uses once this
/// item is queued.
#[pin_data]
struct DeferredDestroy {
    wq: NonNull<raw::workqueue_struct>,
    #[pin]
    work: Work<DeferredDestroy>,
}

// SAFETY: The queue pointer may be destroyed from any thread.
unsafe impl Send for DeferredDestroy {}
// SAFETY: No shared access to the pointer is offered.
unsafe impl Sync for DeferredDestroy {}

impl_has_work! {
    impl HasWork<Self> for DeferredDestroy { self.work }
}

impl WorkItem for DeferredDestroy {
    type Pointer = Pin<KBox<Self>>;

    fn run(this: Pin<KBox<Self>>) {
        // SAFETY: The queue is live and its owner is gone (type invariant);
        // this runs on the system's unbound queue, not on the queue being
        // destroyed, so draining it cannot wait for this item.
        unsafe { raw::destroy_workqueue(this.wq.as_ptr()) };
    }
}

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
        let destroy = KBox::pin_init(
            pin_init!(DeferredDestroy {
                wq: ptr,
                work <- new_work!("OwnedQueue::destroy"),
            }),
            GFP_KERNEL,
        );
        match destroy {
            // INVARIANT: `ptr` was just allocated, and `destroy` is for it.
            Ok(destroy) => Ok(Self {
                ptr,
                destroy: Some(destroy),
            }),
            Err(e) => {
                // SAFETY: The queue was just made and nothing was queued.
                unsafe { raw::destroy_workqueue(ptr.as_ptr()) };
                Err(e)
            }
        }
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
        // An item that is already pending will run anyway; the pointer it
        // gives back is dropped.
        let _ = self.queue().enqueue(w);
    }

    /// Waits until every work item queued so far has finished. Called from
    /// one of the queue's own items, it would wait for itself.
    pub(crate) fn flush(&self) {
        // SAFETY: The workqueue is live (type invariant).
        unsafe { raw::__flush_workqueue(self.ptr.as_ptr()) };
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: No precondition; it reads the current task's worker state.
        let in_work_item = !unsafe { raw::current_work() }.is_null();
        if let (true, Some(destroy)) = (in_work_item, self.destroy.take()) {
            // Possibly one of this queue's own items: destroy the queue
            // elsewhere. The system queue frees the item after running it.
            workqueue::system_unbound().enqueue(destroy);
        } else {
            // SAFETY: The workqueue is live, not the current task's queue
            // (no work item runs here), and nothing uses it after this.
            unsafe { raw::destroy_workqueue(self.ptr.as_ptr()) };
        }
    }
}
