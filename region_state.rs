// SPDX-License-Identifier: GPL-2.0

// The state machine of one region of the region hash, kernel-free so the
// host crate can test it. `region_hash.rs` keeps one `RegionEntry` per
// hashed region, always under the region hash lock.

/// The state of a region with an entry in the region hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionState {
    /// In sync, no writes in flight: the entry is dropped (and the region
    /// cleared in the log) on kmirrord's next pass.
    Clean,
    /// Writes in flight; marked in the log before the first one.
    Dirty,
    /// Out of sync: writes go to the default leg only, and only recovery
    /// makes the region clean again.
    NoSync,
    /// Being recovered: new writes wait until the copy is over.
    Recovering,
}

/// Where a region is in its recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Not being recovered.
    Idle,
    /// Chosen for recovery; waits for its writes in flight to finish.
    Quiescing,
    /// The copy is running.
    Copying,
    /// The copy is over; kmirrord records the outcome.
    Done {
        /// Whether every leg now holds the default leg's data.
        ok: bool,
    },
}

/// Where a write goes, decided by its region's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteRoute {
    /// To every leg.
    AllLegs,
    /// To the default leg only: the region is out of sync.
    DefaultLeg,
    /// Held until the region's recovery is over.
    Delayed,
}

/// What kmirrord's bookkeeping pass does with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// Nothing to do yet.
    Keep,
    /// Clean and idle: clear the region in the log and drop the entry.
    DropClean,
    /// Recovery ended: set the region's sync state in the log to `ok`,
    /// release its held writes; drop the entry if `drop`.
    RecoveryEnded {
        /// The copy succeeded.
        ok: bool,
        /// No writes in flight: the entry can go.
        drop: bool,
    },
}

/// The state of one hashed region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionEntry {
    /// The region's state.
    pub state: RegionState,
    /// Writes in flight to the region.
    pub pending: u32,
    /// Recovery progress.
    pub recovery: Recovery,
    /// The "recovery" is a check or repair of an in-sync region: it is
    /// quiesced the same way, but compared instead of copied, and if it is
    /// given up on suspend the region is still in sync.
    pub scrub: bool,
}

impl RegionEntry {
    /// A new entry for a region the log says is (or is not) in sync.
    pub fn new(in_sync: bool) -> Self {
        Self {
            state: if in_sync {
                RegionState::Clean
            } else {
                RegionState::NoSync
            },
            pending: 0,
            recovery: Recovery::Idle,
            scrub: false,
        }
    }

    /// A write to the region is about to be issued. Returns its route and
    /// whether the region must first be marked dirty in the log. A delayed
    /// write is not counted as pending.
    pub fn start_write(&mut self) -> (WriteRoute, bool) {
        match self.state {
            RegionState::Clean => {
                self.state = RegionState::Dirty;
                self.pending = self.pending.saturating_add(1);
                (WriteRoute::AllLegs, true)
            }
            RegionState::Dirty => {
                self.pending = self.pending.saturating_add(1);
                (WriteRoute::AllLegs, false)
            }
            RegionState::NoSync => {
                self.pending = self.pending.saturating_add(1);
                (WriteRoute::DefaultLeg, false)
            }
            RegionState::Recovering => (WriteRoute::Delayed, false),
        }
    }

    /// A counted write completed. Returns true if kmirrord has work because
    /// of it: the region became clean, or became quiet for its recovery.
    pub fn end_write(&mut self) -> bool {
        self.pending = self.pending.saturating_sub(1);
        if self.pending != 0 {
            return false;
        }
        match self.state {
            RegionState::Dirty => {
                self.state = RegionState::Clean;
                true
            }
            RegionState::Recovering => self.recovery == Recovery::Quiescing,
            RegionState::Clean | RegionState::NoSync => false,
        }
    }

    /// A write failed on some leg: the legs may differ in this region.
    pub fn mark_nosync(&mut self) {
        if self.state != RegionState::Recovering {
            self.state = RegionState::NoSync;
        }
    }

    /// The region was chosen for recovery.
    pub fn begin_recovery(&mut self) {
        self.state = RegionState::Recovering;
        self.recovery = Recovery::Quiescing;
    }

    /// The region was chosen for a check or repair: quiesced as for a
    /// recovery. Refused (false) unless it is in sync (clean or dirty) and no
    /// recovery or scrub of it is under way.
    pub fn begin_scrub(&mut self) -> bool {
        if self.recovery != Recovery::Idle
            || !matches!(self.state, RegionState::Clean | RegionState::Dirty)
        {
            return false;
        }
        self.state = RegionState::Recovering;
        self.recovery = Recovery::Quiescing;
        self.scrub = true;
        true
    }

    /// If the region waits for recovery and has no writes in flight, the
    /// copy (or compare) may start now: returns true and records it.
    pub fn try_start_copy(&mut self) -> bool {
        if self.recovery == Recovery::Quiescing && self.pending == 0 {
            self.recovery = Recovery::Copying;
            true
        } else {
            false
        }
    }

    /// The copy ended. Ignored unless a copy is running: a recovery that
    /// never started its copy has nothing to report.
    pub fn end_recovery(&mut self, ok: bool) {
        if self.state == RegionState::Recovering && self.recovery == Recovery::Copying {
            self.recovery = Recovery::Done { ok };
        }
    }

    /// Gives up a recovery whose copy has not started (suspend). Returns
    /// true if one was given up; the region is out of sync again, unless it
    /// was a scrub's: that region was in sync and still is (clean, or dirty
    /// if writes are in flight).
    pub fn abandon_recovery(&mut self) -> bool {
        if self.recovery != Recovery::Quiescing {
            return false;
        }
        self.recovery = Recovery::Idle;
        self.state = if !self.scrub {
            RegionState::NoSync
        } else if self.pending != 0 {
            RegionState::Dirty
        } else {
            RegionState::Clean
        };
        self.scrub = false;
        true
    }

    /// kmirrord's bookkeeping pass over this entry.
    pub fn update(&mut self) -> Update {
        match (self.state, self.recovery) {
            (RegionState::Clean, _) if self.pending == 0 => Update::DropClean,
            (_, Recovery::Done { ok }) => {
                self.recovery = Recovery::Idle;
                self.scrub = false;
                self.state = if ok {
                    RegionState::Clean
                } else {
                    RegionState::NoSync
                };
                Update::RecoveryEnded {
                    ok,
                    // A recovered region with no writes has nothing left to
                    // track; nor has a failed one (the log holds its state).
                    drop: self.pending == 0,
                }
            }
            _ => Update::Keep,
        }
    }
}
