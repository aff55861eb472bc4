// SPDX-License-Identifier: GPL-2.0

//! The region allocator, built around the lesson of the seed bug.
//!
//! The C dm-raid1 once deadlocked: kmirrord slept in `mempool_alloc()`
//! waiting for a region struct, and only kmirrord itself could free one.
//! Here a region comes from the pool with `GFP_ATOMIC` (never sleeps: the
//! allocator, then the pool's reserve) and, if both are empty, from a plain
//! `kmalloc(GFP_NOIO | __GFP_NOFAIL)`, which may sleep in reclaim but never
//! waits on the pool. Both paths are counted; the counts are readable with
//! `dmsetup message <dev> 0 stats`.
//!
//! Test knobs, under debugfs (`/sys/kernel/debug/dm_mirror_rs/`):
//! `fail_region_atomic/` is a fault point of the kernel's fault-injection
//! framework that fails the atomic attempt (e.g. `interval` 3,
//! `probability` 100, `times` -1: every third attempt), and writing `N` to
//! `pool_selftest` takes N entries through the same two paths, holds them
//! all, frees them, and shows how each was obtained.

use crate::binding::bounded_writer::BoundedWriter;
use crate::binding::gaps::debugfs::{DebugFileOps, FaultPoint};
use crate::binding::gaps::gfp::Gfp;
use crate::binding::gaps::kmem::{KmallocPool, PoolBox};
use crate::mirror::Region;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// The test fault point that fails atomic region allocations (see the
/// module documentation); registered at module load.
pub(crate) static FAIL_REGION_ATOMIC: FaultPoint = FaultPoint::new();

/// Elements the pool keeps in reserve (as the C region hash does).
const MIN_REGIONS: u32 = 64;

/// Counters of the two allocation paths.
#[derive(Default)]
pub(crate) struct AllocStats {
    /// Taken from the pool with GFP_ATOMIC.
    pub(crate) atomic: AtomicU64,
    /// The atomic path failed; taken with GFP_NOIO | __GFP_NOFAIL.
    pub(crate) fallback: AtomicU64,
    /// Atomic attempts failed by the test fault point.
    pub(crate) injected: AtomicU64,
}

/// A pool of `T` with the atomic-then-blocking-kmalloc policy.
pub(crate) struct FallbackPool<T> {
    pool: Arc<KmallocPool<T>>,
    pub(crate) stats: AllocStats,
}

impl<T> FallbackPool<T> {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            pool: KmallocPool::new(MIN_REGIONS)?,
            stats: AllocStats::default(),
        })
    }

    /// Tries the pool without sleeping; gives `value` back if it is empty.
    pub(crate) fn alloc_atomic(&self, value: T) -> Result<PoolBox<T>, T> {
        if FAIL_REGION_ATOMIC.should_fail() {
            self.stats.injected.fetch_add(1, Ordering::Relaxed);
            return Err(value);
        }
        let b = self.pool.alloc_atomic(value)?;
        self.stats.atomic.fetch_add(1, Ordering::Relaxed);
        Ok(b)
    }

    /// Allocates `value`: the pool with GFP_ATOMIC first, else a blocking
    /// kmalloc with GFP_NOIO that cannot fail. May sleep (never on the
    /// pool): process context only, no spinlock held.
    pub(crate) fn alloc(&self, value: T) -> Result<PoolBox<T>> {
        match self.alloc_atomic(value) {
            Ok(b) => Ok(b),
            Err(value) => {
                self.stats.fallback.fetch_add(1, Ordering::Relaxed);
                // __GFP_NOFAIL makes this retry in reclaim until it succeeds;
                // the error arm is only there because the API allows it.
                KmallocPool::alloc_kmalloc(value, Gfp::NOIO.nofail()).map_err(|_| ENOMEM)
            }
        }
    }
}

/// The `pool_selftest` debugfs file: a pool of its own, taken through the
/// allocation paths kmirrord uses, and the result of the last run.
pub(crate) struct PoolSelftest {
    pool: FallbackPool<Region>,
    /// allocated, from_pool, fallback, atomic_failed of the last run.
    last: [AtomicU32; 4],
}

impl PoolSelftest {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            pool: FallbackPool::new()?,
            last: Default::default(),
        })
    }

    /// Takes `n` region entries through the same path kmirrord uses, holds
    /// them all, then frees them, counting how each was obtained. With the
    /// pool's reserve used up and atomic allocations failing, the entries
    /// still come (from the blocking kmalloc fallback) instead of waiting on
    /// the pool.
    fn run(&self, n: u32) -> Result<[u32; 4]> {
        if n == 0 || n > 1_000_000 {
            return Err(EINVAL);
        }
        let mut held = KVec::with_capacity(n as usize, GFP_KERNEL)?;
        let (mut from_pool, mut fallback, mut atomic_failed) = (0u32, 0u32, 0u32);
        for i in 0..n {
            let r = match self.pool.alloc_atomic(Region::new(i)) {
                Ok(r) => r,
                Err(v) => {
                    atomic_failed = atomic_failed.saturating_add(1);
                    self.pool.alloc(v)?
                }
            };
            if r.is_from_pool() {
                from_pool = from_pool.saturating_add(1);
            } else {
                fallback = fallback.saturating_add(1);
            }
            held.push(r, GFP_KERNEL)?;
        }
        drop(held);
        Ok([n, from_pool, fallback, atomic_failed])
    }
}

impl DebugFileOps for PoolSelftest {
    fn write(&self, input: &str) -> Result {
        let n: u32 = input.parse().map_err(|_| EINVAL)?;
        let result = self.run(n)?;
        for (slot, v) in self.last.iter().zip(result) {
            slot.store(v, Ordering::Relaxed);
        }
        Ok(())
    }

    fn show(&self, out: &mut BoundedWriter<'_>) {
        let [n, from_pool, fallback, atomic_failed] =
            self.last.each_ref().map(|v| v.load(Ordering::Relaxed));
        // A line of under 100 bytes fits the file's buffer.
        let _ = writeln!(
            out,
            "allocated={n} from_pool={from_pool} fallback={fallback} atomic_failed={atomic_failed}"
        );
    }
}
