// SPDX-License-Identifier: GPL-2.0

//! Allocation flags the `kernel` crate cannot express (it has no `GFP_NOIO`).

use crate::binding::raw;

/// A set of GFP flags for a kernel allocation.
///
/// The values come from the kernel's headers through bindgen, so they always
/// match the kernel the module is built against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gfp(raw::gfp_t);

impl Gfp {
    /// May sleep and reclaim, but never starts I/O: for the I/O path.
    pub(crate) const NOIO: Gfp = Gfp(raw::GFP_NOIO);
    /// Never sleeps; may use the atomic reserves.
    pub(crate) const ATOMIC: Gfp = Gfp(raw::GFP_ATOMIC);
    /// Ordinary process-context allocation (table load, not the I/O path).
    pub(crate) const KERNEL: Gfp = Gfp(raw::GFP_KERNEL);

    /// The allocation retries until it succeeds.
    pub(crate) const fn nofail(self) -> Gfp {
        Gfp(self.0 | raw::__GFP_NOFAIL)
    }

    /// Failure is expected and handled: do not warn about it.
    pub(crate) const fn nowarn(self) -> Gfp {
        Gfp(self.0 | raw::__GFP_NOWARN)
    }

    /// The raw flag bits.
    pub(crate) const fn raw(self) -> raw::gfp_t {
        self.0
    }
}
