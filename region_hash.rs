// SPDX-License-Identifier: GPL-2.0

//! Regions: the mirror is cut into equal power-of-two regions, the unit of
//! dirty tracking and recovery.
//!
//! For now this holds the geometry (sector ↔ region). The region hash proper
//! (per-region state, pending writes, the clean/recovering lists) grows here.

/// How a target's sectors map to regions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegionGeometry {
    /// First sector of the target in the mapped device.
    begin: u64,
    /// log2 of the region size in sectors.
    shift: u32,
    /// Number of regions (the last one may be short).
    nr_regions: u32,
}

impl RegionGeometry {
    /// `region_size` must be a power of two (the table parser checks it).
    pub(crate) fn new(begin: u64, region_size: u32, nr_regions: u32) -> Self {
        Self {
            begin,
            shift: region_size.trailing_zeros(),
            nr_regions,
        }
    }

    pub(crate) fn nr_regions(&self) -> u32 {
        self.nr_regions
    }

    /// Offset of `sector` (of the mapped device) inside the target.
    pub(crate) fn target_offset(&self, sector: u64) -> u64 {
        sector.wrapping_sub(self.begin)
    }

    /// Region holding `sector` (of the mapped device).
    pub(crate) fn region_of(&self, sector: u64) -> u32 {
        // A bio never addresses past the target, so this fits a region index.
        (self.target_offset(sector) >> self.shift) as u32
    }
}
