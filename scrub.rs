// SPDX-License-Identifier: GPL-2.0

// Check and repair ("scrub") and the pace of background work, kernel-free so
// the host crate tests it (issue #15). Four parts:
//
// - The messages, in dm-raid's words: `check`, `repair`, `idle`,
//   `sync_action`, `max_recovery_rate <kB/s>`, `min_recovery_rate <kB/s>`
//   (`parse_sync_message`). A message that is ours but malformed is refused
//   with a sentence saying why; nothing changes.
// - The pass (`ScrubPass`): which region a check or repair looks at next,
//   how far it got and how many sectors differed. Regions are handed out in
//   order, several may be in flight, and they may end in any order; a
//   suspend gives back the ones in flight (`abandon_in_flight`) and the
//   resume hands them out again, so no region is counted twice and none is
//   skipped. Regions that are not in sync are passed over: resync owns them.
// - The vote (`vote`): what one compare unit's copies say. With three or
//   more legs a strict majority of the readable copies wins, even over the
//   default leg; without one, the default leg's copy wins (as md's repair
//   takes the first readable disk), and if the default leg could not be read,
//   the first readable leg's. Every leg whose copy is not the winner's (or
//   that could not be read) is to be rewritten.
// - The pace (`Pacer`): background work (resync, check, repair) runs at up
//   to `max_recovery_rate` while the device has no foreground I/O and backs
//   off to `min_recovery_rate` while it has, both in kB/s per leg as dm-raid
//   counts them, 0 meaning no limit. The rate is measured over a window that
//   restarts every few seconds, so a pause (idle legs, a suspend) is not
//   banked as credit for a burst later. Changing a rate only changes the
//   next delay; nothing is stopped or restarted.
//
// md counts `mismatch_cnt` in 512-byte sectors, whole compare units at a
// time; ours are `COMPARE_UNIT_SECTORS` (a 4 KiB page), so damage of one
// aligned 4 KiB block counts 8.

use core::fmt::{self, Write};

/// Sectors per compare unit: `mismatch_cnt` grows by this much for each unit
/// whose readable copies are not all equal.
pub const COMPARE_UNIT_SECTORS: u32 = 8;

/// Bytes per compare unit.
pub const COMPARE_UNIT_BYTES: usize = COMPARE_UNIT_SECTORS as usize * 512;

/// What the mirror's background work does, in dm-raid's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncAction {
    /// Nothing runs (the set may still have regions out of sync that wait
    /// for a resume).
    Idle,
    /// Regions out of sync are being copied from the default leg.
    Resync,
    /// A check runs: copies are compared, nothing is written.
    Check,
    /// A repair runs: copies are compared and the odd ones rewritten.
    Repair,
}

impl SyncAction {
    /// The word `sync_action` prints.
    pub fn name(self) -> &'static str {
        match self {
            SyncAction::Idle => "idle",
            SyncAction::Resync => "resync",
            SyncAction::Check => "check",
            SyncAction::Repair => "repair",
        }
    }
}

/// Which kind of pass compares the legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScrubKind {
    /// Compare and count.
    Check,
    /// Compare, count and rewrite what differs.
    Repair,
}

impl ScrubKind {
    /// The action `sync_action` shows while it runs.
    pub fn action(self) -> SyncAction {
        match self {
            ScrubKind::Check => SyncAction::Check,
            ScrubKind::Repair => SyncAction::Repair,
        }
    }
}

/// A `dmsetup message` about background work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMessage {
    /// `check` or `repair`: start a pass over the in-sync regions.
    Start(ScrubKind),
    /// `idle`: stop a running check or repair (a resync is not stopped:
    /// regions out of sync must be copied before they can be trusted).
    Idle,
    /// `sync_action`: print `<action> <done>/<total> <mismatch_cnt>`.
    Report,
    /// `max_recovery_rate <kB/s>`.
    MaxRate(u32),
    /// `min_recovery_rate <kB/s>`.
    MinRate(u32),
}

/// Why a message about background work was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMessageError {
    /// The word takes no argument but got some.
    ExtraArguments(&'static str),
    /// A rate message without its number.
    MissingRate(&'static str),
    /// A rate that is not a decimal number of kB/s that fits in 32 bits
    /// (signs, blanks and other characters included).
    BadRate(&'static str),
}

impl fmt::Display for SyncMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncMessageError::ExtraArguments(w) => write!(f, "{w} takes no arguments"),
            SyncMessageError::MissingRate(w) => {
                write!(f, "{w} takes one argument, a rate in kB/s per leg (0: no limit)")
            }
            SyncMessageError::BadRate(w) => write!(
                f,
                "{w}: the rate must be a whole number of kB/s per leg, 0 to 4294967295 (0: no limit)"
            ),
        }
    }
}

/// Parses a rate: decimal digits only (no sign, no blank), at most
/// `u32::MAX` kB/s.
fn parse_rate(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok()
}

/// Parses a message about background work. `None`: the first word is not
/// one of ours (another part of the target may know it); `Some(Err(_))`: it
/// is ours but malformed.
pub fn parse_sync_message(args: &[&str]) -> Option<Result<SyncMessage, SyncMessageError>> {
    let (&word, rest) = args.split_first()?;
    let no_args = |w: &'static str, m: SyncMessage| {
        if rest.is_empty() {
            Ok(m)
        } else {
            Err(SyncMessageError::ExtraArguments(w))
        }
    };
    let rate = |w: &'static str, make: fn(u32) -> SyncMessage| match rest {
        [] => Err(SyncMessageError::MissingRate(w)),
        [n] => parse_rate(n).map(make).ok_or(SyncMessageError::BadRate(w)),
        _ => Err(SyncMessageError::MissingRate(w)),
    };
    Some(match word {
        "check" => no_args("check", SyncMessage::Start(ScrubKind::Check)),
        "repair" => no_args("repair", SyncMessage::Start(ScrubKind::Repair)),
        "idle" => no_args("idle", SyncMessage::Idle),
        "sync_action" => no_args("sync_action", SyncMessage::Report),
        "max_recovery_rate" => rate("max_recovery_rate", SyncMessage::MaxRate),
        "min_recovery_rate" => rate("min_recovery_rate", SyncMessage::MinRate),
        _ => return None,
    })
}

/// Writes the answer to `sync_action`: `<action> <done>/<total> <mismatch_cnt>`.
pub fn write_sync_action<W: Write + ?Sized>(
    w: &mut W,
    action: SyncAction,
    done: u64,
    total: u64,
    mismatch: u64,
) -> fmt::Result {
    write!(w, "{} {}/{} {}", action.name(), done, total, mismatch)
}

/// How many regions of a pass may be in flight at once, and how far past
/// the oldest unfinished one the pass may hand out regions.
pub const SCRUB_WINDOW: u32 = 64;

/// Why a pass could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// A check or repair is running: `idle` stops it first.
    Busy(ScrubKind),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Busy(k) => write!(
                f,
                "a {} is running; send idle to stop it first",
                k.action().name()
            ),
        }
    }
}

/// What the pass says to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Compare this region.
    Region(u32),
    /// Nothing to hand out now: regions are in flight, or the window is
    /// full; ask again when one ends.
    Wait,
    /// The pass has just ended (every region passed): raise a table event.
    /// Returned once.
    Finished,
    /// No pass runs.
    Idle,
}

/// One check or repair pass over a set's regions, and the figures of the
/// last one once it has ended or been stopped.
///
/// Regions below `low` are done; regions from `low` below `next` were
/// handed out, and `done_mask` bit `i` says region `low + i` is done
/// (`in_flight_mask`: handed out and not ended).
#[derive(Clone, Debug)]
pub struct ScrubPass {
    kind: Option<ScrubKind>,
    running: bool,
    nr_regions: u32,
    region_sectors: u64,
    total_sectors: u64,
    low: u32,
    next: u32,
    done_mask: u64,
    in_flight_mask: u64,
    done_sectors: u64,
    mismatch: u64,
}

impl ScrubPass {
    /// A set of `nr_regions` regions of `region_sectors` each, the last one
    /// cut at `total_sectors`; no pass has run.
    pub fn new(nr_regions: u32, region_sectors: u64, total_sectors: u64) -> Self {
        ScrubPass {
            kind: None,
            running: false,
            nr_regions,
            region_sectors,
            total_sectors,
            low: 0,
            next: 0,
            done_mask: 0,
            in_flight_mask: 0,
            done_sectors: 0,
            mismatch: 0,
        }
    }

    /// The kind of the running or last pass.
    pub fn kind(&self) -> Option<ScrubKind> {
        self.kind
    }

    /// Whether a pass runs (it may be paused by a suspend).
    pub fn running(&self) -> bool {
        self.running
    }

    /// Sectors the running or last pass has got through.
    pub fn done_sectors(&self) -> u64 {
        self.done_sectors
    }

    /// Sectors of the set.
    pub fn total_sectors(&self) -> u64 {
        self.total_sectors
    }

    /// Sectors that differed in the running or last pass, in whole compare
    /// units; kept until the next pass starts.
    pub fn mismatch_sectors(&self) -> u64 {
        self.mismatch
    }

    /// How many regions are in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight_mask.count_ones()
    }

    /// The sectors of region `r` (the last one may be short).
    pub fn region_len(&self, r: u32) -> u64 {
        let start = u64::from(r) * self.region_sectors;
        self.total_sectors
            .saturating_sub(start)
            .min(self.region_sectors)
    }

    /// Starts a pass from the first region; the last pass's figures are
    /// dropped.
    pub fn start(&mut self, kind: ScrubKind) -> Result<(), StartError> {
        if self.running {
            if let Some(k) = self.kind {
                return Err(StartError::Busy(k));
            }
        }
        *self = ScrubPass {
            kind: Some(kind),
            running: true,
            ..ScrubPass::new(self.nr_regions, self.region_sectors, self.total_sectors)
        };
        Ok(())
    }

    /// `idle`: the pass stops where it is; its figures stay. Regions in
    /// flight still end (their results are counted if they end, see
    /// `region_done`). Returns whether a pass was running.
    pub fn stop(&mut self) -> bool {
        let was = self.running;
        self.running = false;
        was
    }

    fn bit(&self, r: u32) -> Option<u64> {
        let off = r.checked_sub(self.low)?;
        (off < SCRUB_WINDOW).then(|| 1u64 << off)
    }

    /// The next region to compare. `in_sync(r)` says whether region `r` is
    /// in sync now; those that are not are passed over (counted as got
    /// through: resync owns them).
    pub fn next_region(&mut self, mut in_sync: impl FnMut(u32) -> bool) -> Next {
        if !self.running {
            return Next::Idle;
        }
        while self.next < self.nr_regions {
            let Some(bit) = self.bit(self.next) else {
                return Next::Wait;
            };
            let r = self.next;
            self.next += 1;
            if self.done_mask & bit != 0 {
                continue; // done before a suspend gave back the ones below it
            }
            if in_sync(r) {
                self.in_flight_mask |= bit;
                return Next::Region(r);
            }
            self.mark_done(r, bit);
        }
        if self.in_flight_mask != 0 {
            return Next::Wait;
        }
        self.running = false;
        Next::Finished
    }

    fn mark_done(&mut self, r: u32, bit: u64) {
        self.done_mask |= bit;
        self.in_flight_mask &= !bit;
        self.done_sectors = self.done_sectors.saturating_add(self.region_len(r));
        while self.done_mask & 1 != 0 {
            self.done_mask >>= 1;
            self.in_flight_mask >>= 1;
            self.low += 1;
        }
        // After a suspend gave regions back, `next` may trail regions done
        // before it: never hand out below `low`.
        self.next = self.next.max(self.low);
    }

    /// Region `r` was compared (and, for a repair, rewritten where it
    /// differed); `mismatched` sectors differed. Ignored for a region not
    /// in flight.
    pub fn region_done(&mut self, r: u32, mismatched: u64) {
        let Some(bit) = self.bit(r) else { return };
        if self.in_flight_mask & bit == 0 {
            return;
        }
        self.mismatch = self.mismatch.saturating_add(mismatched);
        self.mark_done(r, bit);
    }

    /// Region `r` could not be compared now (say it went out of sync under
    /// a write failure, or the legs could not be read): it counts as got
    /// through, with no mismatch; resync or the error handling owns it.
    pub fn region_skipped(&mut self, r: u32) {
        let Some(bit) = self.bit(r) else { return };
        if self.in_flight_mask & bit != 0 {
            self.mark_done(r, bit);
        }
    }

    /// A suspend: regions in flight are given back (their copies were
    /// abandoned) and are handed out again after the resume; the pass
    /// keeps running and keeps its figures.
    pub fn abandon_in_flight(&mut self) {
        if self.in_flight_mask == 0 {
            return;
        }
        self.in_flight_mask = 0;
        // hand out again from the lowest region not done
        self.next = self.low;
    }
}

/// What one compare unit's copies say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The leg whose copy wins (`None`: no leg could be read).
    pub source: Option<usize>,
    /// Legs to rewrite with the winner's copy: their copy differs from it,
    /// or could not be read.
    pub stale: u32,
    /// Whether the readable copies were not all equal (the unit counts in
    /// `mismatch_cnt`).
    pub differs: bool,
}

/// Votes over the copies of one compare unit. `copies[i]` is leg `i`'s copy,
/// `None` if it could not be read (or the leg has failed); `default` is the
/// default leg. A copy held by a strict majority of the readable legs wins;
/// otherwise the default leg's, if readable, else the first readable leg's.
pub fn vote(copies: &[Option<&[u8]>], default: usize) -> Verdict {
    let readable = copies.iter().filter(|c| c.is_some()).count();
    let mut differs = false;
    let mut majority = None;
    for (i, c) in copies.iter().enumerate() {
        let Some(c) = c else { continue };
        let same = copies.iter().flatten().filter(|o| *o == c).count();
        if same != readable {
            differs = true;
        }
        if majority.is_none() && 2 * same > readable {
            majority = Some(i);
        }
    }
    let source = majority
        .or_else(|| copies.get(default).and_then(|c| c.map(|_| default)))
        .or_else(|| copies.iter().position(|c| c.is_some()));
    // Among the legs that agree with the winner, prefer the default leg as
    // the source to read from (no difference in content).
    let source = source.map(|s| match (copies.get(default), copies.get(s)) {
        (Some(Some(d)), Some(Some(w))) if d == w => default,
        _ => s,
    });
    let mut stale = 0u32;
    if let Some(s) = source {
        let win = copies[s];
        for (i, c) in copies.iter().enumerate() {
            if *c != win {
                stale |= 1u32.checked_shl(i as u32).unwrap_or(0);
            }
        }
    }
    Verdict {
        source,
        stale,
        differs,
    }
}

/// The result of comparing a whole region unit by unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionVerdict {
    /// Sectors in units whose readable copies differed.
    pub mismatched_sectors: u64,
    /// Legs that have at least one unit to rewrite.
    pub stale: u32,
    /// Units no leg could be read for.
    pub unreadable_units: u32,
}

/// Compares a region's copies (`copies[i]` leg `i`'s, `None` if unreadable;
/// all of the same length) in compare units and calls `each(offset, len,
/// verdict)` for every unit whose verdict has something to rewrite (a
/// repair copies `copies[source][offset..offset + len]` to the stale legs).
pub fn compare_region(
    copies: &[Option<&[u8]>],
    default: usize,
    mut each: impl FnMut(usize, usize, &Verdict),
) -> RegionVerdict {
    let len = copies.iter().flatten().map(|c| c.len()).max().unwrap_or(0);
    let mut out = RegionVerdict::default();
    let mut off = 0;
    // at most 32 legs (the verdict's mask); the mirror has at most 9
    let mut units: [Option<&[u8]>; 32] = [None; 32];
    let n = copies.len().min(units.len());
    while off < len {
        let end = (off + COMPARE_UNIT_BYTES).min(len);
        for (u, c) in units.iter_mut().zip(copies.iter()).take(n) {
            *u = c.and_then(|c| c.get(off..end));
        }
        let v = vote(&units[..n], default);
        if v.differs {
            let sectors = (end - off).div_ceil(512) as u64;
            out.mismatched_sectors = out.mismatched_sectors.saturating_add(sectors);
        }
        if v.source.is_none() {
            out.unreadable_units = out.unreadable_units.saturating_add(1);
        }
        if v.stale != 0 && v.source.is_some() {
            out.stale |= v.stale;
            each(off, end - off, &v);
        }
        off = end;
    }
    out
}

/// The recovery rates of one device, in kB/s per leg; 0 is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    /// Background work is not held below this while foreground I/O runs
    /// (0: it may wait as long as foreground I/O goes on).
    pub min_kbs: u32,
    /// Background work never goes faster than this (0: as fast as it can).
    pub max_kbs: u32,
}

/// Why a rate change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateError {
    /// The minimum would be above the maximum (both non-zero).
    MinAboveMax {
        /// The minimum asked for or kept.
        min: u32,
        /// The maximum asked for or kept.
        max: u32,
    },
}

impl fmt::Display for RateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateError::MinAboveMax { min, max } => write!(
                f,
                "min_recovery_rate {min} would be above max_recovery_rate {max} (kB/s)"
            ),
        }
    }
}

impl Rates {
    /// The rates with the maximum set to `kbs`, if that keeps min ≤ max.
    pub fn with_max(self, kbs: u32) -> Result<Self, RateError> {
        Rates {
            max_kbs: kbs,
            ..self
        }
        .checked()
    }

    /// The rates with the minimum set to `kbs`, if that keeps min ≤ max.
    pub fn with_min(self, kbs: u32) -> Result<Self, RateError> {
        Rates {
            min_kbs: kbs,
            ..self
        }
        .checked()
    }

    fn checked(self) -> Result<Self, RateError> {
        if self.max_kbs != 0 && self.min_kbs > self.max_kbs {
            return Err(RateError::MinAboveMax {
                min: self.min_kbs,
                max: self.max_kbs,
            });
        }
        Ok(self)
    }
}

/// The length of the pacer's window: the rate is measured since a mark at
/// most this old (ms).
pub const PACE_WINDOW_MS: u64 = 3000;

/// With no minimum rate, while foreground I/O runs background work does one
/// piece per this many ms: it yields, but is never starved.
pub const PACE_BACKOFF_MS: u32 = 100;

/// Paces background work: `delay` says how long to wait before the next
/// piece so that the rate since the window's mark stays at or under the
/// rate that applies now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pacer {
    mark_ms: u64,
    mark_kib: u64,
    done_kib: u64,
    prev_rate_kbs: u64,
    last_ms: u64,
}

impl Pacer {
    /// A pacer whose window starts at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Pacer {
            mark_ms: now_ms,
            ..Pacer::default()
        }
    }

    /// Starts a new window at `now_ms` and forgets what was done before:
    /// work done while no rate applied, or under other rates, is no debt
    /// under the rates that apply from now on.
    pub fn restart(&mut self, now_ms: u64) {
        self.prev_rate_kbs = self.rate_kbs(now_ms);
        self.mark_ms = now_ms;
        self.mark_kib = self.done_kib;
    }

    /// Background work moved `kib` KiB per leg, ending at `now_ms`.
    pub fn record(&mut self, now_ms: u64, kib: u64) {
        self.done_kib = self.done_kib.saturating_add(kib);
        self.last_ms = now_ms;
    }

    /// The rate over the current window, KiB/s (the previous window's, for
    /// the first half second of a new one).
    pub fn rate_kbs(&self, now_ms: u64) -> u64 {
        let ms = now_ms.saturating_sub(self.mark_ms);
        if ms < 500 {
            return self.prev_rate_kbs;
        }
        (self.done_kib - self.mark_kib).saturating_mul(1000) / ms
    }

    /// How long to wait before the next piece of background work: 0 to go
    /// on at once. `foreground` says whether the device has had foreground
    /// I/O since the last call.
    pub fn delay(&mut self, now_ms: u64, rates: Rates, foreground: bool) -> u32 {
        let limit = if foreground {
            if rates.min_kbs == 0 {
                self.roll(now_ms, 0);
                let next = self.last_ms.saturating_add(u64::from(PACE_BACKOFF_MS));
                return u32::try_from(next.saturating_sub(now_ms)).unwrap_or(PACE_BACKOFF_MS);
            }
            if rates.max_kbs == 0 {
                rates.min_kbs
            } else {
                rates.min_kbs.min(rates.max_kbs)
            }
        } else {
            rates.max_kbs
        };
        let ms = self.roll(now_ms, limit);
        if limit == 0 {
            return 0;
        }
        // the time the work done since the mark should have taken at `limit`
        let due = (self.done_kib - self.mark_kib).saturating_mul(1000) / u64::from(limit);
        u32::try_from(due.saturating_sub(ms)).unwrap_or(u32::MAX)
    }

    /// Starts a new window once the current one is `PACE_WINDOW_MS` old, and
    /// returns the milliseconds since the mark. Work done beyond what `limit`
    /// allowed in the old window (a piece larger than the limit lets through
    /// in a window) stays owed in the new one; time left unused is not
    /// carried over.
    fn roll(&mut self, now_ms: u64, limit: u32) -> u64 {
        let ms = now_ms.saturating_sub(self.mark_ms);
        if ms < PACE_WINDOW_MS {
            return ms;
        }
        self.prev_rate_kbs = self.rate_kbs(now_ms);
        let allowed = u64::from(limit).saturating_mul(ms) / 1000;
        let owed = if limit == 0 {
            0
        } else {
            (self.done_kib - self.mark_kib).saturating_sub(allowed)
        };
        self.mark_ms = now_ms;
        self.mark_kib = self.done_kib - owed;
        0
    }
}
