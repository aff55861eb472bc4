// SPDX-License-Identifier: GPL-2.0

//! The monotonic clock in milliseconds, the same call on every kernel the
//! module builds against (the kernel crate's time types differ between
//! them).

use crate::binding::raw;

/// Milliseconds of the monotonic clock (`ktime_get`), from an arbitrary
/// start; never goes back.
pub(crate) fn monotonic_ms() -> u64 {
    // SAFETY: `ktime_get` has no preconditions and may be called from any
    // context.
    let ns = unsafe { raw::ktime_get() };
    u64::try_from(ns).unwrap_or(0) / 1_000_000
}
