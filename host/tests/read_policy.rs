//! Tests of the read policies and the balancing rule (`read_policy.rs`,
//! shared with the kernel module): the policy names, the cost of a read on a
//! leg, the choice over a snapshot of the legs, and a model of a mirror's
//! legs serving streams of reads (who gets how many).

use dm_mirror_rs_host::read_policy::{
    c_order_rank, choose_balanced, LegLoad, ReadPolicy, NEAR_SECTORS, NONROT_JUMP, PENDING_COST,
    ROT_FAR, ROT_NEAR,
};
use std::collections::VecDeque;

mod common;
use common::Rng;

fn nonrot(pending: u32, next_sector: u64) -> Option<LegLoad> {
    Some(LegLoad {
        pending,
        next_sector,
        rotational: false,
        last_sent: 0,
    })
}

fn rot(pending: u32, next_sector: u64) -> Option<LegLoad> {
    Some(LegLoad {
        pending,
        next_sector,
        rotational: true,
        last_sent: 0,
    })
}

/// An idle leg whose last read ended at `next_sector`, sent at `last_sent`.
fn idle(rotational: bool, next_sector: u64, last_sent: u64) -> Option<LegLoad> {
    Some(LegLoad {
        pending: 0,
        next_sector,
        rotational,
        last_sent,
    })
}

// ---------------------------------------------------------------------------
// Policy names
// ---------------------------------------------------------------------------

#[test]
fn policy_names_parse_exactly() {
    assert_eq!(ReadPolicy::parse("balance"), Some(ReadPolicy::Balance));
    assert_eq!(
        ReadPolicy::parse("default_leg"),
        Some(ReadPolicy::DefaultLeg)
    );
    for bad in [
        "",
        "Balance",
        "BALANCE",
        "balance ",
        " balance",
        "balance\n",
        "default-leg",
        "default",
        "defaultleg",
        "round_robin",
        "balanced",
        "default_leg2",
    ] {
        assert_eq!(ReadPolicy::parse(bad), None, "{bad:?} accepted");
    }
}

#[test]
fn policy_names_round_trip() {
    for p in [ReadPolicy::DefaultLeg, ReadPolicy::Balance] {
        assert_eq!(ReadPolicy::parse(p.name()), Some(p));
        assert_eq!(ReadPolicy::from_u8(p.to_u8()), p);
    }
    assert_ne!(ReadPolicy::DefaultLeg.to_u8(), ReadPolicy::Balance.to_u8());
}

#[test]
fn balance_is_the_default() {
    assert_eq!(ReadPolicy::default(), ReadPolicy::Balance);
    assert_eq!(ReadPolicy::default().name(), "balance");
}

// ---------------------------------------------------------------------------
// Cost of a read on one leg
// ---------------------------------------------------------------------------

#[test]
fn penalties_follow_zfs_ratios_doubled() {
    // ZFS: rotating 0 / 2.5 / 5, non-rotating 0 / 1, one per queued I/O.
    assert_eq!(PENDING_COST, 2);
    assert_eq!(NONROT_JUMP, 2);
    assert_eq!(ROT_NEAR, 5);
    assert_eq!(ROT_FAR, 10);
    assert_eq!(NEAR_SECTORS, 2048);
}

#[test]
fn cost_of_a_read_on_a_non_rotational_leg() {
    let l = nonrot(3, 1000).unwrap();
    assert_eq!(l.cost(1000), 6);
    assert_eq!(l.cost(1001), 8);
    assert_eq!(l.cost(999), 8);
    assert_eq!(l.cost(1 << 40), 8);
    assert_eq!(nonrot(0, 0).unwrap().cost(0), 0);
}

#[test]
fn cost_of_a_read_on_a_rotational_leg() {
    let l = rot(1, 10_000).unwrap();
    assert_eq!(l.cost(10_000), 2);
    assert_eq!(l.cost(10_000 + NEAR_SECTORS), 2 + 5);
    assert_eq!(l.cost(10_000 - NEAR_SECTORS), 2 + 5);
    assert_eq!(l.cost(10_001 + NEAR_SECTORS), 2 + 10);
    assert_eq!(l.cost(10_000 - NEAR_SECTORS - 1), 2 + 10);
    assert_eq!(l.cost(0), 2 + 10);
    assert_eq!(l.cost(u64::MAX), 2 + 10);
}

#[test]
fn cost_saturates() {
    for l in [nonrot(u32::MAX, 0), rot(u32::MAX, 0), rot(u32::MAX / 2, 7)] {
        let l = l.unwrap();
        assert_eq!(l.cost(u64::MAX), u32::MAX);
    }
    let l = rot(0, u64::MAX).unwrap();
    assert_eq!(l.cost(0), ROT_FAR);
    assert_eq!(l.cost(u64::MAX), 0);
}

// ---------------------------------------------------------------------------
// The C order (ties, and what an idle set does)
// ---------------------------------------------------------------------------

/// The order of `mirror/reads.rs` `choose_read_leg` (and of the C target's
/// `choose_mirror`): the default leg, the ones before it, then from the
/// last leg down.
fn c_order(n: usize, d: usize) -> Vec<usize> {
    Iterator::chain((0..=d).rev(), (d + 1..n).rev()).collect()
}

#[test]
fn c_order_rank_is_the_position_in_the_c_order() {
    for n in 1..=9 {
        for d in 0..n {
            for (pos, i) in c_order(n, d).into_iter().enumerate() {
                assert_eq!(c_order_rank(i, d, n), pos, "n={n} d={d} i={i}");
            }
        }
    }
}

#[test]
fn idle_set_reads_from_the_default_leg() {
    for n in 2..=9 {
        for d in 0..n {
            let legs = vec![nonrot(0, 0); n];
            assert_eq!(choose_balanced(&legs, d, 0), Some(d));
            // no leg continues: all cost the same, heads equally far
            assert_eq!(choose_balanced(&legs, d, 123_456), Some(d));
            let legs = vec![rot(0, 0); n];
            assert_eq!(choose_balanced(&legs, d, 0), Some(d));
            assert_eq!(choose_balanced(&legs, d, 1 << 30), Some(d));
        }
    }
}

#[test]
fn ties_skip_unusable_legs_in_c_order() {
    // default leg 2 of 4 has errors: next in C order is 1, then 0, then 3
    let mut legs = vec![nonrot(0, 0); 4];
    legs[2] = None;
    assert_eq!(choose_balanced(&legs, 2, 64), Some(1));
    legs[1] = None;
    assert_eq!(choose_balanced(&legs, 2, 64), Some(0));
    legs[0] = None;
    assert_eq!(choose_balanced(&legs, 2, 64), Some(3));
    legs[3] = None;
    assert_eq!(choose_balanced(&legs, 2, 64), None);
}

// ---------------------------------------------------------------------------
// Choices over a snapshot
// ---------------------------------------------------------------------------

#[test]
fn no_leg_no_choice() {
    assert_eq!(choose_balanced(&[], 0, 0), None);
    assert_eq!(choose_balanced(&[None, None, None], 1, 0), None);
}

#[test]
fn non_rotational_fewest_pending_wins() {
    let legs = [nonrot(3, 0), nonrot(1, 0), nonrot(2, 0)];
    assert_eq!(choose_balanced(&legs, 0, 5000), Some(1));
    let legs = [nonrot(3, 0), None, nonrot(2, 0)];
    assert_eq!(choose_balanced(&legs, 0, 5000), Some(2));
}

#[test]
fn non_rotational_continuing_is_worth_one_read_in_flight() {
    // leg 1 continues with one read in flight: ties an idle leg 0, and
    // the tie goes to the nearest head (leg 1's)
    let legs = [nonrot(0, 0), nonrot(1, 8192)];
    assert_eq!(choose_balanced(&legs, 0, 8192), Some(1));
    // two in flight: the idle leg takes it
    let legs = [nonrot(0, 0), nonrot(2, 8192)];
    assert_eq!(choose_balanced(&legs, 0, 8192), Some(0));
}

#[test]
fn non_rotational_ties_go_to_the_leg_idle_longest() {
    let leg = |next_sector, last_sent| idle(false, next_sector, last_sent);
    // nobody continues the read: the head nearest it does not matter, the
    // leg sent a read longest ago takes it
    let legs = [leg(8000, 7), leg(0, 3), leg(8100, 9)];
    assert_eq!(choose_balanced(&legs, 0, 8192), Some(1));
    // a leg the read continues wins the tie
    let legs = [leg(8000, 7), leg(0, 3), leg(8192, 9)];
    assert_eq!(choose_balanced(&legs, 0, 8192), Some(2));
    // the same stamp: the C order
    let legs = [leg(8000, 3), leg(0, 3), leg(8100, 3)];
    assert_eq!(choose_balanced(&legs, 1, 8192), Some(1));
    assert_eq!(choose_balanced(&legs, 2, 8192), Some(2));
}

#[test]
fn rotational_ties_go_to_the_nearest_head_before_the_idle_longest() {
    let leg = |next_sector, last_sent| idle(true, next_sector, last_sent);
    let legs = [leg(1 << 30, 1), leg(1 << 20, 9)];
    assert_eq!(choose_balanced(&legs, 0, 0), Some(1));
    // equidistant: the idle longest
    let legs = [leg(4096, 9), leg(4096, 1)];
    assert_eq!(choose_balanced(&legs, 0, 1 << 30), Some(1));
}

#[test]
fn rotational_stream_stays_whatever_the_load() {
    let legs = [rot(0, 0), rot(1000, 8192), rot(0, 4096)];
    assert_eq!(choose_balanced(&legs, 0, 8192), Some(1));
    // unless the leg may not serve it
    let legs = [rot(0, 0), None, rot(0, 4096)];
    assert_eq!(choose_balanced(&legs, 0, 8192), Some(2));
}

#[test]
fn rotational_far_jump_costs_a_seek() {
    // an idle leg whose head is near beats an idle leg far away
    let legs = [rot(0, 0), rot(0, 1 << 20)];
    assert_eq!(choose_balanced(&legs, 0, (1 << 20) + 1000), Some(1));
    // a near head with two reads queued (2*2+5 = 9) still beats a seek (10)
    let legs = [rot(0, 0), rot(2, 1 << 20)];
    assert_eq!(choose_balanced(&legs, 0, (1 << 20) + 1000), Some(1));
    // with three (11) the idle leg seeks
    let legs = [rot(0, 0), rot(3, 1 << 20)];
    assert_eq!(choose_balanced(&legs, 0, (1 << 20) + 1000), Some(0));
    // both far: the fewer pending
    let legs = [rot(4, 0), rot(3, 1 << 20)];
    assert_eq!(choose_balanced(&legs, 0, 1 << 30), Some(1));
    // equal cost: the nearer head
    let legs = [rot(1, 0), rot(1, 1 << 20)];
    assert_eq!(choose_balanced(&legs, 0, 1 << 30), Some(1));
    assert_eq!(choose_balanced(&legs, 1, 1 << 18), Some(0));
    // equidistant: the C order (default leg first)
    assert_eq!(choose_balanced(&legs, 1, 1 << 19), Some(1));
    assert_eq!(choose_balanced(&legs, 0, 1 << 19), Some(0));
}

#[test]
fn mixed_legs_compare_costs() {
    // an idle SSD-like leg (2) beats a rotational leg with a near head (5)
    let legs = [rot(0, 4096), nonrot(0, 0)];
    assert_eq!(choose_balanced(&legs, 0, 5000), Some(1));
    // ... unless the rotational leg's stream continues
    assert_eq!(choose_balanced(&legs, 0, 4096), Some(0));
}

/// Random snapshots: the choice is a leg that may serve the read, there is
/// one iff some leg may, a continuing rotational leg is taken, and
/// otherwise no usable leg costs less.
#[test]
fn random_snapshots_choose_a_usable_cheapest_leg() {
    let mut rng = Rng::new(14);
    for _ in 0..200_000 {
        let n = 1 + rng.below(9) as usize;
        let d = rng.below(n as u64) as usize;
        let sector = rng.below(64) * 512;
        let legs: Vec<Option<LegLoad>> = (0..n)
            .map(|_| {
                (!rng.chance(4)).then(|| LegLoad {
                    pending: if rng.chance(50) {
                        u32::MAX - rng.below(3) as u32
                    } else {
                        rng.below(6) as u32
                    },
                    next_sector: rng.below(64) * 512,
                    rotational: rng.chance(2),
                    last_sent: rng.below(4),
                })
            })
            .collect();
        let got = choose_balanced(&legs, d, sector);
        let usable: Vec<usize> = (0..n).filter(|&i| legs[i].is_some()).collect();
        let Some(i) = got else {
            assert!(usable.is_empty(), "{legs:?}: none chosen");
            continue;
        };
        let l = legs[i].unwrap_or_else(|| panic!("{legs:?}: chose unusable leg {i}"));
        let sticky = usable.iter().any(|&j| {
            let m = legs[j].unwrap();
            m.rotational && m.next_sector == sector
        });
        if sticky {
            assert!(l.rotational && l.next_sector == sector, "{legs:?} -> {i}");
        } else {
            let min = usable.iter().map(|&j| legs[j].unwrap().cost(sector)).min();
            assert_eq!(Some(l.cost(sector)), min, "{legs:?} -> {i}");
        }
    }
}

// ---------------------------------------------------------------------------
// A model of legs serving reads
// ---------------------------------------------------------------------------

/// A leg of the model: the counters the module keeps (`LegLoad`), its queue
/// of reads and how many it served.
#[derive(Clone)]
struct ModelLeg {
    load: LegLoad,
    usable: bool,
    queue: VecDeque<(u64, u64)>,
    served: u64,
}

/// Legs that each complete one queued read per tick, in order.
struct Model {
    legs: Vec<ModelLeg>,
    default: usize,
    /// The model's clock for `LegLoad::last_sent`: one step per read sent.
    clock: u64,
}

impl Model {
    fn new(n: usize, rotational: bool) -> Self {
        let leg = ModelLeg {
            load: LegLoad {
                pending: 0,
                next_sector: 0,
                rotational,
                last_sent: 0,
            },
            usable: true,
            queue: VecDeque::new(),
            served: 0,
        };
        Self {
            legs: vec![leg; n],
            default: 0,
            clock: 0,
        }
    }

    fn in_flight(&self) -> usize {
        self.legs.iter().map(|l| l.queue.len()).sum()
    }

    /// Sends a read as the module does: choose, count it pending on the
    /// leg, move the leg's head past it.
    fn submit(&mut self, sector: u64, len: u64) -> usize {
        let snap: Vec<Option<LegLoad>> = self
            .legs
            .iter()
            .map(|l| l.usable.then_some(l.load))
            .collect();
        let i = choose_balanced(&snap, self.default, sector).expect("a usable leg");
        self.clock += 1;
        let l = &mut self.legs[i];
        assert!(l.usable);
        l.load.pending += 1;
        l.load.next_sector = sector + len;
        l.load.last_sent = self.clock;
        l.queue.push_back((sector, len));
        i
    }

    /// One tick: every leg completes its oldest read.
    fn tick(&mut self) {
        for l in self.legs.iter_mut() {
            if l.queue.pop_front().is_some() {
                l.load.pending -= 1;
                l.served += 1;
            }
        }
    }

    /// Runs `total` reads from `next_read` keeping `qd` in flight.
    fn run(&mut self, total: u64, qd: usize, mut next_read: impl FnMut() -> (u64, u64)) {
        let mut sent = 0;
        while sent < total {
            while self.in_flight() < qd && sent < total {
                let (s, len) = next_read();
                self.submit(s, len);
                sent += 1;
            }
            self.tick();
        }
        while self.in_flight() > 0 {
            self.tick();
        }
        for l in &self.legs {
            assert_eq!(l.load.pending, 0);
        }
    }

    fn served(&self) -> Vec<u64> {
        self.legs.iter().map(|l| l.served).collect()
    }
}

/// A sequential stream of `len`-sector reads from sector 0.
fn stream(len: u64) -> impl FnMut() -> (u64, u64) {
    let mut s = 0;
    move || {
        let r = (s, len);
        s += len;
        r
    }
}

/// Random 4 KiB reads over 1 GiB.
fn random_4k(seed: u64) -> impl FnMut() -> (u64, u64) {
    let mut rng = Rng::new(seed);
    move || (rng.below(1 << 18) * 8, 8)
}

/// Each leg in `legs` served at least `min_pct` % of the reads.
fn assert_spread(served: &[u64], legs: &[usize], min_pct: u64, what: &str) {
    let total: u64 = served.iter().sum();
    for &i in legs {
        assert!(
            served[i] * 100 >= total * min_pct,
            "{what}: leg {i} served {:?} of {total}, want >= {min_pct}%",
            served
        );
    }
}

#[test]
fn model_non_rotational_stream_spreads_over_the_legs() {
    for n in [2, 3] {
        for qd in [4, 8, 16] {
            let mut m = Model::new(n, false);
            m.run(4000, qd, stream(1024));
            let all: Vec<usize> = (0..n).collect();
            let fair = 100 / n as u64;
            assert_spread(
                &m.served(),
                &all,
                fair * 9 / 10,
                &format!("{n} legs, qd {qd}"),
            );
        }
    }
}

/// A stream read in bursts, as `dd iflag=direct` over device-mapper sends
/// it: each burst of `burst` reads is chosen at once (device-mapper maps a
/// bio's pieces before any is sent), then every read in flight ends before
/// the next burst (fast legs). Under a tie-break by head distance the
/// stream ping-ponged between two legs of three, and the third got
/// nothing from bursts of 4 (tests/42-reads.sh saw 768, 48384 and 49152
/// sectors); the leg idle longest takes its turn instead.
#[test]
fn model_non_rotational_bursts_spread_over_every_leg() {
    for n in [2usize, 3, 4] {
        for burst in [3u64, 4, 5, 6, 8, 16] {
            let mut m = Model::new(n, false);
            let mut next = stream(128);
            for _ in 0..768 / burst {
                for _ in 0..burst {
                    let (s, len) = next();
                    m.submit(s, len);
                }
                while m.in_flight() > 0 {
                    m.tick();
                }
            }
            let all: Vec<usize> = (0..n).collect();
            let fair = 100 / n as u64;
            assert_spread(
                &m.served(),
                &all,
                fair / 2,
                &format!("{n} legs, bursts of {burst}"),
            );
        }
    }
}

#[test]
fn model_non_rotational_stream_at_qd1_stays_on_the_default_leg() {
    // one read at a time: nothing to gain from another leg
    let mut m = Model::new(3, false);
    m.default = 2;
    m.run(1000, 1, stream(256));
    assert_eq!(m.served(), vec![0, 0, 1000]);
}

#[test]
fn model_rotational_stream_stays_on_one_leg() {
    for n in [2, 3] {
        for qd in [1, 8, 32] {
            let mut m = Model::new(n, true);
            m.run(4000, qd, stream(1024));
            let s = m.served();
            assert_eq!(s[0], 4000, "{n} legs, qd {qd}: {s:?}");
        }
    }
}

#[test]
fn model_random_reads_spread_over_the_legs() {
    for rotational in [false, true] {
        for n in [2, 3] {
            for qd in [2, 4, 8] {
                if qd < n {
                    continue;
                }
                let mut m = Model::new(n, rotational);
                m.run(20_000, qd, random_4k(qd as u64));
                let all: Vec<usize> = (0..n).collect();
                let fair = 100 / n as u64;
                assert_spread(
                    &m.served(),
                    &all,
                    fair * 9 / 10,
                    &format!("rot {rotational}, {n} legs, qd {qd}"),
                );
            }
        }
    }
}

#[test]
fn model_legs_with_errors_serve_nothing() {
    for rotational in [false, true] {
        let mut m = Model::new(3, rotational);
        m.legs[0].usable = false;
        m.run(10_000, 8, random_4k(3));
        let s = m.served();
        assert_eq!(s[0], 0, "{s:?}");
        assert_spread(&s, &[1, 2], 40, "two good legs of three");
        let mut m = Model::new(3, rotational);
        m.legs[1].usable = false;
        m.run(2000, 8, stream(1024));
        assert_eq!(m.served()[1], 0);
    }
}

#[test]
fn model_a_leg_failing_mid_stream_is_left_at_once() {
    let mut m = Model::new(2, false);
    m.run(1000, 8, stream(1024));
    let before = m.served();
    assert!(before[1] > 0);
    m.legs[1].usable = false;
    m.run(1000, 8, random_4k(9));
    assert_eq!(m.served()[1], before[1]);
}

#[test]
fn model_two_rotational_streams_each_keep_a_leg() {
    // two sequential readers far apart, interleaved, on two rotational legs:
    // each ends up on its own leg and stays there
    let mut m = Model::new(2, true);
    let mut a = 0u64;
    let mut b = 1u64 << 30;
    let mut turn = false;
    let mut settled = Vec::new();
    for k in 0..2000 {
        turn = !turn;
        let s = if turn { &mut a } else { &mut b };
        let leg = m.submit(*s, 256);
        *s += 256;
        // the first read of each stream may land anywhere; from the
        // second on each stream has its leg
        if k < 2 {
        } else if k < 4 {
            settled.push(leg);
        } else {
            assert_eq!(leg, settled[k % 2], "read {k} moved");
        }
        m.tick();
    }
    assert_ne!(settled[0], settled[1]);
}
