// SPDX-License-Identifier: GPL-2.0

//! A workqueue owned by the module (the `kernel` crate only offers the system
//! queues). kmirrord runs on one with `WQ_MEM_RECLAIM`, so it keeps making
//! progress under memory pressure.
//!
//! Destroying a workqueue drains it: it waits for every item queued on it.
//! Done from one of its own items, that wait would never end (and the queue
//! would be freed under the running item). So a queue dropped inside any
//! work item is not destroyed there: it is put on a list of queues to
//! destroy, with a node allocated when the queue was, and destroyed later
//! from process context ([`reap_deferred`]: the next queue creation or
//! drop outside a work item, and module unload at the latest, which also
//! waits for the items still on it).

use crate::binding::raw;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::workqueue::{Queue, RawWorkItem};

/// An allocated workqueue, destroyed (after draining) on drop.
///
/// # Invariants
///
/// `ptr` points to a live workqueue created by `alloc_workqueue`; `node` is
/// `Some` until the drop.
pub(crate) struct OwnedQueue {
    ptr: NonNull<raw::workqueue_struct>,
    node: Option<KBox<Deferred>>,
}

// SAFETY: A workqueue may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: Queueing work concurrently is what workqueues are made for.
unsafe impl Sync for OwnedQueue {}

/// A queue whose owner was dropped inside a work item, waiting to be
/// destroyed.
struct Deferred {
    wq: *mut raw::workqueue_struct,
    next: *mut Deferred,
}

/// The queues waiting to be destroyed: a stack of leaked `KBox<Deferred>`s
/// that work items push onto and [`reap_deferred`] takes whole.
static DEFERRED: AtomicPtr<Deferred> = AtomicPtr::new(core::ptr::null_mut());

/// Whether the current task is running a work item.
fn in_work_item() -> bool {
    // SAFETY: No precondition; it reads the current task's worker state.
    !unsafe { raw::current_work() }.is_null()
}

/// Destroys the queues dropped inside work items so far. Does nothing when
/// called from a work item itself; the module calls it on unload.
pub(crate) fn reap_deferred() {
    if in_work_item() {
        return;
    }
    let mut p = DEFERRED.swap(core::ptr::null_mut(), Ordering::Acquire);
    while let Some(node) = NonNull::new(p) {
        // SAFETY: Every node on the stack is a leaked `KBox<Deferred>`, and
        // the swap above made this caller the only owner of the list.
        let node = unsafe { KBox::from_raw(node.as_ptr()) };
        p = node.next;
        // SAFETY: The queue is live, its owner is gone, and this is not a
        // work item (checked above), so draining it cannot wait for itself.
        unsafe { raw::destroy_workqueue(node.wq) };
    }
}

impl OwnedQueue {
    /// Allocates a workqueue that can make progress during memory reclaim.
    pub(crate) fn new_mem_reclaim(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated; the helper formats it with "%s".
        let ptr = unsafe { raw::dmrs_alloc_workqueue(name.as_char_ptr(), raw::WQ_MEM_RECLAIM) };
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        let node = KBox::new(
            Deferred {
                wq: ptr.as_ptr(),
                next: core::ptr::null_mut(),
            },
            GFP_KERNEL,
        );
        match node {
            Ok(node) => {
                reap_deferred();
                // INVARIANT: `ptr` was just allocated; the node is there.
                Ok(Self {
                    ptr,
                    node: Some(node),
                })
            }
            Err(e) => {
                // SAFETY: The queue was just made and nothing was queued.
                unsafe { raw::destroy_workqueue(ptr.as_ptr()) };
                Err(e.into())
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
        if let (true, Some(node)) = (in_work_item(), self.node.take()) {
            // Possibly one of this queue's own items: destroy it later.
            let p = KBox::into_raw(node);
            let mut head = DEFERRED.load(Ordering::Relaxed);
            loop {
                // SAFETY: `p` is the node just leaked, not shared yet.
                unsafe { (*p).next = head };
                match DEFERRED.compare_exchange(head, p, Ordering::Release, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(h) => head = h,
                }
            }
        } else {
            // SAFETY: The workqueue is live, not the current task's queue
            // (no work item runs here), and nothing uses it after this.
            unsafe { raw::destroy_workqueue(self.ptr.as_ptr()) };
            reap_deferred();
        }
    }
}
