// SPDX-License-Identifier: GPL-2.0

//! The monotonic clock in nanoseconds and milliseconds, the same call on
//! every kernel the module builds against (the kernel crate's time types
//! differ between them): `ktime_get()`, through 7.3's
//! `kernel::time::Monotonic` clock source, directly on 6.12 (whose crate has
//! no clock source type).

#[cfg(not(dmrs_kernel_ge_7_3))]
use crate::binding::raw;
#[cfg(dmrs_kernel_ge_7_3)]
use kernel::time::{ClockSource, Monotonic};

/// Nanoseconds of the monotonic clock (`ktime_get`), from an arbitrary
/// start; never goes back. Any context.
#[cfg(not(dmrs_kernel_ge_7_3))]
pub(crate) fn monotonic_ns() -> u64 {
    // SAFETY: `ktime_get` has no preconditions and may be called from any
    // context.
    let ns = unsafe { raw::ktime_get() };
    u64::try_from(ns).unwrap_or(0)
}

/// Nanoseconds of the monotonic clock (`ktime_get`), from an arbitrary
/// start; never goes back. Any context.
#[cfg(dmrs_kernel_ge_7_3)]
pub(crate) fn monotonic_ns() -> u64 {
    // `Instant<Monotonic>` keeps its nanoseconds to the crate, so the clock
    // source is read directly: `ktime_get()`, in `0..=KTIME_MAX`.
    let ns = Monotonic::ktime_get();
    u64::try_from(ns).unwrap_or(0)
}

/// Milliseconds of the monotonic clock (`ktime_get`), from an arbitrary
/// start; never goes back.
pub(crate) fn monotonic_ms() -> u64 {
    monotonic_ns() / 1_000_000
}
