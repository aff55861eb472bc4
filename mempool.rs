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

use crate::binding::gaps::gfp::Gfp;
use crate::binding::gaps::kmem::{KmallocPool, PoolBox};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// Elements the pool keeps in reserve (as the C region hash does).
const MIN_REGIONS: u32 = 64;

/// Counters of the two allocation paths.
#[derive(Default)]
pub(crate) struct AllocStats {
    /// Taken from the pool with GFP_ATOMIC.
    pub(crate) atomic: AtomicU64,
    /// The atomic path failed; taken with GFP_NOIO | __GFP_NOFAIL.
    pub(crate) fallback: AtomicU64,
    /// Atomic attempts skipped by the test fault point.
    pub(crate) injected: AtomicU64,
}

/// A pool of `T` with the atomic-then-blocking-kmalloc policy.
pub(crate) struct FallbackPool<T> {
    pool: Arc<KmallocPool<T>>,
    pub(crate) stats: AllocStats,
    /// Test fault point: when non-zero, every n-th atomic attempt is treated
    /// as failed (set with `dmsetup message <dev> 0 fail_atomic <n>`).
    fail_every: AtomicU32,
    attempts: AtomicU32,
}

impl<T> FallbackPool<T> {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            pool: KmallocPool::new(MIN_REGIONS)?,
            stats: AllocStats::default(),
            fail_every: AtomicU32::new(0),
            attempts: AtomicU32::new(0),
        })
    }

    /// Sets the test fault point (0 disables it).
    pub(crate) fn set_fail_every(&self, n: u32) {
        self.fail_every.store(n, Ordering::Relaxed);
    }

    fn inject_failure(&self) -> bool {
        let n = self.fail_every.load(Ordering::Relaxed);
        if n == 0 {
            return false;
        }
        let a = self.attempts.fetch_add(1, Ordering::Relaxed);
        a % n == 0
    }

    /// Tries the pool without sleeping; gives `value` back if it is empty.
    pub(crate) fn alloc_atomic(&self, value: T) -> Result<PoolBox<T>, T> {
        if self.inject_failure() {
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
