// SPDX-License-Identifier: GPL-2.0

//! What Linux 6.12's `kernel` crate lacks and the target needs, kept apart
//! from the device-mapper abstractions so each piece can be dropped for the
//! kernel's own type once the kernel has one:
//!
//! | here | why | the kernel's own, where it exists |
//! |---|---|---|
//! | `clock::monotonic_ms` | the monotonic clock, the same call on every kernel | `kernel::time` (whose types differ between 6.12 and 7.3) |
//! | `debugfs::{DebugDir, DebugFile, FaultPoint}` | test knobs under debugfs, fault points of the kernel's fault-injection framework | `kernel::debugfs` (newer kernels); no fault-injection abstraction |
//! | `gfp::Gfp` | `GFP_NOIO`, `__GFP_NOFAIL`, `__GFP_NOWARN` (the crate's `Flags` cannot be built outside it) | `kernel::alloc::flags` (no `GFP_NOIO` yet) |
//! | `kmem::KmBox`, `kmem::KmallocPool`, `kmem::PoolBox` | boxes allocated with explicit GFP flags; the C mempool | none (no mempool abstraction) |
//! | `lock::IrqSpinLock` | `spin_lock_irqsave()` for state shared with bio completions | `kernel::sync::SpinLockIrq` (newer kernels) |
//! | `io_error_ratelimit` | `pr_err_ratelimited` | `pr_*_ratelimited!` (newer kernels) |
//! | `wq::OwnedQueue` | a workqueue of the module's own (`WQ_MEM_RECLAIM`) | `kernel::workqueue::OwnedQueue`-like types in newer kernels; 6.12 has the system queues only |

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
