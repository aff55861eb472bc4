// SPDX-License-Identifier: GPL-2.0

//! What Linux 6.12's `kernel` crate lacks and the target needs, kept apart
//! from the device-mapper abstractions so each piece can be dropped for the
//! kernel's own type once the kernel has one. Where 7.3's crate has a type
//! that fits the interface below, the item is a thin wrapper over it on 7.3
//! (`#[cfg(dmrs_kernel_ge_7_3)]` in its file) and ours on 6.12; the last
//! column says which, or why ours stays (read in 7.3.4's `rust/`):
//!
//! | here | why | the kernel's own, where it exists |
//! |---|---|---|
//! | `clock::monotonic_ns`, `clock::monotonic_ms` | the monotonic clock, the same call on every kernel | 7.3: `kernel::time::Monotonic` (`ClockSource::ktime_get()`). Not `Instant<Monotonic>`: its nanoseconds are `pub(crate)`, so it gives no absolute reading |
//! | `debugfs::{DebugDir, DebugFile, FaultPoint}` | test knobs under debugfs, fault points of the kernel's fault-injection framework | ours on 7.3 too: `kernel::debugfs` has no fault-injection abstraction, and `FaultPoint` needs the directory's `dentry` for `fault_create_debugfs_attr()`, which `debugfs::Dir` keeps private (`Entry::as_ptr` is `pub(crate)`); a `debugfs::File` can only be made in a `debugfs::Dir`, so `DebugFile` cannot move alone. `Dir::new` also never fails (without debugfs it holds an error), where `DebugDir::new` returns `None` |
//! | `gfp::Gfp` | `GFP_NOIO`, `__GFP_NOFAIL`, `__GFP_NOWARN` (the crate's `Flags` cannot be built outside it) | ours on 7.3 too: 7.3's `kernel::alloc::flags` still has no `GFP_NOIO` and no `__GFP_NOFAIL`, and `Flags` still cannot be built from raw bits |
//! | `kmem::KmBox`, `kmem::KmallocPool`, `kmem::PoolBox` | boxes allocated with explicit GFP flags; the C mempool | ours on 7.3 too: no mempool abstraction in 7.3, and `KBox` cannot allocate with `GFP_NOIO` (no such `Flags`) |
//! | `lock::IrqSpinLock` | interrupts disabled while held, for state shared with bio completions | 7.3: `kernel::sync::SpinLockIrq` (`spin_lock_irq_disable()`), its data wrapped to be `Unpin` so the guard gives `&mut T` as ours does; 6.12: `spin_lock_irqsave()` |
//! | `cond_resched` | lets other tasks run between the items of a long loop in process context, which a kernel without preemption (`PREEMPT_NONE`) needs | ours on 7.3 too: 7.3's crate has no `cond_resched` (`cond_resched()` is a macro, hence the C helper) |
//! | `io_error_ratelimit` | `pr_err_ratelimited` | ours on 7.3 too: 7.3's crate has no rate limiting at all (no `pr_*_ratelimited!`, only `pr_*_once!`), and a print macro would not give the one shared state and the `bool` the callers use |
//! | `wq::OwnedQueue` | a workqueue of the module's own (`WQ_MEM_RECLAIM`) | ours on 7.3 too: 7.3's `kernel::workqueue` has no owned queue (only `Queue::from_raw` and the system queues), so nothing allocates, flushes or destroys one |

pub(crate) mod clock;
pub(crate) mod debugfs;
pub(crate) mod gfp;
pub(crate) mod kmem;
pub(crate) mod lock;
pub(crate) mod wq;

/// Whether an I/O error message may be printed now: the kernel's default
/// rate limit (10 messages per 5 s) for all of the module's I/O errors.
pub(crate) fn io_error_ratelimit() -> bool {
    // SAFETY: No precondition; the helper takes a spinlock of its own.
    unsafe { crate::binding::raw::dmrs_io_error_ratelimit() }
}

/// Gives the CPU to another task if one is due to run (`cond_resched()`).
///
/// For long loops in process context: without kernel preemption
/// (`PREEMPT_NONE`) nothing else runs on this CPU, not even RCU's
/// grace-period thread, until the running task sleeps or calls this. It may
/// sleep, so it must not be called in atomic context, where the kernel's
/// `might_resched` check reports it (as for any sleeping call).
pub(crate) fn cond_resched() {
    // SAFETY: No precondition. As with the kernel crate's own sleeping
    // calls (`Mutex::lock`, `CondVar::wait`), a call in atomic context is a
    // bug that the kernel's `might_resched` check reports at run time.
    unsafe { crate::binding::raw::dmrs_cond_resched() }
}
