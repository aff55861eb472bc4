// SPDX-License-Identifier: GPL-2.0

// Where a read of an in-sync region goes: the read policies and the
// balancing rule, kernel-free so the host crate can test them. The module
// (`mirror/reads.rs`) takes a snapshot of each leg's atomics (`LegLoad`) and
// asks `choose_balanced`; it never calls this for a region out of sync
// (read from the default leg only) or for a retry after a read error (the C
// order from the default leg, `mirror/reads.rs` `choose_read_leg`).
//
// The balancing rule (`balance`), in half-reads so that it stays integer:
//
//   cost(leg) = 2 * reads in flight on the leg + locality penalty
//
//   locality penalty, where `next` is the sector just past the last read
//   sent to the leg (its head, as far as we know):
//     non-rotational leg: 0 if the read starts at `next`, else 2
//     rotational leg:     0 if the read starts at `next` (and see below),
//                         5 if it starts within 1 MiB of `next`, else 10
//
//   A read that starts at a rotational leg's `next` goes to that leg
//   whatever its load. Otherwise the lowest cost wins. Ties go to a leg
//   the read continues; then, among rotational legs, to the one whose
//   `next` is nearest the read; then to the leg that was sent a read
//   longest ago; then to the first in the C target's order (the default
//   leg, then the ones before it, wrapping round).
//
// Why:
// - Load first, as ZFS's vdev_mirror does (its load is the queue length
//   plus a locality penalty: 0 to continue, 2.5 within 1 MiB and 5 further
//   on rotating disks, 0 or 1 on others; we double them). Counting reads in
//   flight per leg balances random reads by what each leg still has to do,
//   so a slower or busier leg gets fewer (md raid1 picks the leg with the
//   fewest pending I/Os on non-rotational disks for the same reason).
// - Non-rotational legs: continuing is worth one read in flight, no more.
//   A sequential stream with a queue (read-ahead, QD > 1, a large bio split
//   at region boundaries) stays on a leg while it has at most one read
//   queued there and then spills to an idler leg, whose `next` it then
//   continues: the stream is spread over the legs and reads at their summed
//   speed. md keeps a sequential stream on one disk unless the device
//   reports an optimal I/O size, which few do, and so reads it at one
//   disk's speed; btrfs's round-robin policy (switch legs after 256 KiB of
//   contiguous reads) roughly doubled single-reader throughput. Spreading
//   by load needs no stream length to tune.
// - Rotational legs: a seek costs far more than the transfer, so a stream
//   stays on the leg whose head is already there (md raid1: "don't change
//   to another disk for sequential reads"); splitting it would make every
//   leg seek and defeat their read-ahead. A far jump costs a seek (10, five
//   reads in flight), a near one half of that, so a leg whose head is near
//   wins over an idle one that would have to seek, until it has more than
//   two reads queued (ZFS's ratios).
// - Ties by head distance give md's "nearest head" among equals on
//   rotational legs. On non-rotational legs a head's distance means
//   nothing, and breaking ties by it starved a third leg: a stream whose
//   reads come a few at a time and end quickly spills from the leg it
//   continues to the leg that served it just before (whose `next` is
//   nearer than the third leg's), and back, so two legs of three shared
//   it (measured in tests/42-reads.sh, 3 legs: 768, 48384 and 49152
//   sectors of three passes). The leg idle longest takes turns with the
//   others instead. The C order last makes a set that has not read yet
//   behave as the C target (default leg first).
//
// Cost: a few loads per leg (at most 9) and no lock; the counters are
// updated with atomics by the module.

/// How reads of in-sync regions are routed (`dmsetup message <dev> 0
/// read_policy <name>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadPolicy {
    /// The C target's routing: the default leg (or, after errors, the
    /// nearest good leg before it).
    DefaultLeg,
    /// Spread over every in-sync leg without errors by load and locality
    /// (the rule above).
    #[default]
    Balance,
}

impl ReadPolicy {
    /// The policy named `name` (exactly `default_leg` or `balance`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "default_leg" => Some(Self::DefaultLeg),
            "balance" => Some(Self::Balance),
            _ => None,
        }
    }

    /// The policy's name, as `parse` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::DefaultLeg => "default_leg",
            Self::Balance => "balance",
        }
    }

    /// The policy as kept in an atomic byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::DefaultLeg => 0,
            Self::Balance => 1,
        }
    }

    /// The policy kept as `v` by `to_u8` (any other value: the default).
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::DefaultLeg,
            _ => Self::Balance,
        }
    }
}

/// A snapshot of one leg's read state, for `choose_balanced`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegLoad {
    /// Reads sent to the leg and not completed yet.
    pub pending: u32,
    /// The sector (relative to the start of the mirrored area) just past
    /// the last read sent to the leg.
    pub next_sector: u64,
    /// The leg's queue says it is rotational.
    pub rotational: bool,
    /// When the leg was last sent a read (any monotonic stamp; smaller is
    /// longer ago, 0 never).
    pub last_sent: u64,
}

/// Reads within this many sectors (1 MiB) of a rotational leg's head cost
/// a short seek.
pub const NEAR_SECTORS: u64 = 2048;
/// Cost of one read in flight, in half-reads.
pub const PENDING_COST: u32 = 2;
/// Locality penalty on a non-rotational leg for a read that does not
/// continue its last one.
pub const NONROT_JUMP: u32 = 2;
/// Locality penalty on a rotational leg for a read within `NEAR_SECTORS`.
pub const ROT_NEAR: u32 = 5;
/// Locality penalty on a rotational leg for a read further away.
pub const ROT_FAR: u32 = 10;

impl LegLoad {
    /// Whether a read at `sector` continues the leg's last read.
    pub fn continues(&self, sector: u64) -> bool {
        self.next_sector == sector
    }

    /// The locality penalty of a read at `sector` on this leg.
    pub fn penalty(&self, sector: u64) -> u32 {
        if self.continues(sector) {
            0
        } else if !self.rotational {
            NONROT_JUMP
        } else if self.next_sector.abs_diff(sector) <= NEAR_SECTORS {
            ROT_NEAR
        } else {
            ROT_FAR
        }
    }

    /// The cost of a read at `sector` on this leg (saturating).
    pub fn cost(&self, sector: u64) -> u32 {
        self.pending
            .saturating_mul(PENDING_COST)
            .saturating_add(self.penalty(sector))
    }
}

/// The position of leg `i` in the C target's order of `n` legs from the
/// default leg `default`: `default`, `default - 1`, ..., 0, `n - 1`, ...,
/// `default + 1` (0 for the default leg).
pub fn c_order_rank(i: usize, default: usize, n: usize) -> usize {
    if i <= default {
        default - i
    } else {
        default.saturating_add(n.saturating_sub(i))
    }
}

/// The leg to read a region in sync from, at `sector` (relative to the start
/// of the mirrored area), under the `balance` policy (the rule at the top of
/// this file). `legs[i]` is `None` for a leg that may not serve the read
/// (it has errors); `default` is the default leg. `None` if no leg can.
pub fn choose_balanced(legs: &[Option<LegLoad>], default: usize, sector: u64) -> Option<usize> {
    let n = legs.len();
    // A stream on a rotational leg stays there, whatever the load.
    let sticky = legs.iter().enumerate().filter_map(|(i, l)| match l {
        Some(l) if l.rotational && l.continues(sector) => Some(i),
        _ => None,
    });
    if let Some(i) = sticky.min_by_key(|&i| c_order_rank(i, default, n)) {
        return Some(i);
    }
    legs.iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.as_ref()?;
            let distance = if l.rotational {
                l.next_sector.abs_diff(sector)
            } else {
                0
            };
            let key = (
                l.cost(sector),
                !l.continues(sector),
                distance,
                l.last_sent,
                c_order_rank(i, default, n),
            );
            Some((key, i))
        })
        .min_by_key(|&(key, _)| key)
        .map(|(_, i)| i)
}
