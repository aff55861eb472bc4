// SPDX-License-Identifier: GPL-2.0

//! The legs of a mirror and their error accounting: which kinds of error
//! each leg has seen (its health character), the default leg and its
//! replacement when it fails (dm-raid1.c's `fail_mirror`,
//! `get_default_mirror`, `get_valid_mirror`).

use super::MirrorSet;
use crate::binding::dm::TargetDevice;
use crate::read_policy::LegLoad;
use crate::table::{self, LegErrors};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;

/// The kinds of leg errors, each shown as a health character.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// An empty flush of the legs (before clean bits are written) failed.
    Flush,
    /// A write failed.
    Write,
    /// A recovery copy failed to read from or write to the leg.
    Sync,
    /// A read failed.
    Read,
}

/// Error kinds counted per leg; each shows as a health character.
#[derive(Default)]
pub(crate) struct LegErrorCounts {
    pub(crate) flush: AtomicU32,
    pub(crate) write: AtomicU32,
    pub(crate) sync: AtomicU32,
    pub(crate) read: AtomicU32,
}

impl LegErrorCounts {
    /// Whether the leg has seen any error (it then serves no reads while
    /// another leg can).
    pub(crate) fn any(&self) -> bool {
        [&self.flush, &self.write, &self.sync, &self.read]
            .iter()
            .any(|c| c.load(Ordering::Relaxed) != 0)
    }

    fn counter(&self, kind: ErrorKind) -> &AtomicU32 {
        match kind {
            ErrorKind::Flush => &self.flush,
            ErrorKind::Write => &self.write,
            ErrorKind::Sync => &self.sync,
            ErrorKind::Read => &self.read,
        }
    }

    fn reset(&self) {
        for c in [&self.flush, &self.write, &self.sync, &self.read] {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub(super) fn health(&self) -> u8 {
        table::health_char(LegErrors {
            flush: self.flush.load(Ordering::Relaxed) != 0,
            write: self.write.load(Ordering::Relaxed) != 0,
            sync: self.sync.load(Ordering::Relaxed) != 0,
            read: self.read.load(Ordering::Relaxed) != 0,
            unknown: false,
        })
    }
}

/// What read balancing (`read_policy.rs`) knows of a leg: lock-free
/// counters, updated when a read is sent to the leg and when it ends.
#[derive(Default)]
pub(crate) struct LegReads {
    /// Reads sent to the leg and not ended yet.
    pending: AtomicU32,
    /// The sector (relative to the mirrored area) just past the last read
    /// sent to the leg: where its head is, as far as we know.
    next_sector: AtomicU64,
    /// Reads the leg completed without error.
    served: AtomicU64,
    /// The monotonic clock (ns) when the leg was last sent a read: ties
    /// of the balancing rule go to the leg idle longest.
    last_sent: AtomicU64,
}

impl LegReads {
    /// A read of the mirrored area up to `end` (exclusive, relative to the
    /// mirrored area) is being sent to the leg, at `now` (monotonic ns).
    pub(crate) fn start(&self, end: u64, now: u64) {
        // Saturating: in-flight reads are far fewer than u32::MAX, but a
        // counter must never wrap. The closure always returns `Some`, so
        // the result is always `Ok` and says nothing.
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_add(1))
            });
        self.next_sector.store(end, Ordering::Relaxed);
        self.last_sent.store(now, Ordering::Relaxed);
    }

    /// A read counted by `start` ended, successfully if `ok`.
    pub(crate) fn end(&self, ok: bool) {
        // Never below zero, even if a completion were seen twice: at zero
        // the update is refused (`Err`), which is what we want, so the
        // result is not needed.
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| p.checked_sub(1));
        if ok {
            self.served.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The snapshot the balancing rule looks at.
    pub(crate) fn load(&self, rotational: bool) -> LegLoad {
        LegLoad {
            pending: self.pending.load(Ordering::Relaxed),
            next_sector: self.next_sector.load(Ordering::Relaxed),
            rotational,
            last_sent: self.last_sent.load(Ordering::Relaxed),
        }
    }

    /// Reads in flight on the leg.
    pub(crate) fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Reads the leg completed without error.
    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// One leg of the mirror.
pub(crate) struct Leg {
    pub(crate) dev: TargetDevice,
    /// Start of the mirrored data on the device, in sectors.
    pub(crate) offset: u64,
    pub(crate) errors: LegErrorCounts,
    /// Reads in flight and where the last one ended (read balancing).
    pub(crate) reads: LegReads,
}

impl MirrorSet {
    pub(crate) fn default_leg_index(&self) -> usize {
        self.default_leg.load(Ordering::Relaxed)
    }

    pub(crate) fn default_leg(&self) -> Option<&Leg> {
        self.legs
            .get(self.default_leg_index())
            .or_else(|| self.legs.first())
    }

    /// Whether some leg has had no error since the set was last in sync.
    pub(crate) fn any_valid_leg(&self) -> bool {
        self.legs.iter().any(|l| !l.errors.any())
    }

    /// Records an error of `kind` on leg `index` (any context; never
    /// sleeps). With `handle_errors`, the first error of each kind on a leg
    /// makes a table event due (returns true: the caller wakes kmirrord,
    /// which raises it), and a failed default leg is replaced by one
    /// without errors, if the set is in sync or `keep_log` is set (an out
    /// of sync default leg stays: the others may hold stale data).
    pub(crate) fn fail_leg(&self, index: usize, kind: ErrorKind) -> bool {
        let Some(leg) = self.legs.get(index) else {
            return false;
        };
        self.leg_failure.store(true, Ordering::Relaxed);
        let first = leg.errors.counter(kind).fetch_add(1, Ordering::Relaxed) == 0;
        if !first || !self.features.handle_errors {
            return false;
        }
        if index == self.default_leg_index() {
            if !self.in_sync.load(Ordering::Relaxed) && !self.features.keep_log {
                pr_err!(
                    "default leg {} failed while out of sync: reads may fail\n",
                    leg.dev.name()
                );
            } else if let Some(new) = self.legs.iter().position(|l| !l.errors.any()) {
                self.default_leg.store(new, Ordering::Relaxed);
            } else {
                pr_warn!("every leg of the mirror has failed\n");
            }
        }
        self.event_pending.store(true, Ordering::Relaxed);
        true
    }

    /// The set is in sync again: the legs' error flags start afresh.
    pub(crate) fn reset_leg_errors(&self) {
        self.leg_failure.store(false, Ordering::Relaxed);
        for leg in self.legs.iter() {
            leg.errors.reset();
        }
    }
}
