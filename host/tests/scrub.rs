//! Tests of check and repair's kernel-free parts (`scrub.rs`): the messages,
//! the pass over the regions (order, skips, out-of-order ends, suspend and
//! resume), the vote over copies, the region compare, and the pacer, with a
//! model of a pass run against random in-sync maps, completion orders and
//! suspends.

use dm_mirror_rs_host::scrub::{
    compare_region, parse_sync_message, vote, write_sync_action, Next, Pacer, RateError, Rates,
    ScrubKind, ScrubPass, StartError, SyncAction, SyncMessage, SyncMessageError,
    COMPARE_UNIT_BYTES, COMPARE_UNIT_SECTORS, PACE_BACKOFF_MS, PACE_WINDOW_MS, SCRUB_WINDOW,
};

mod common;
use common::Rng;

fn msg(s: &str) -> Option<Result<SyncMessage, SyncMessageError>> {
    let args: Vec<&str> = s.split_whitespace().collect();
    parse_sync_message(&args)
}

#[test]
fn messages_in_dm_raid_words() {
    assert_eq!(msg("check"), Some(Ok(SyncMessage::Start(ScrubKind::Check))));
    assert_eq!(
        msg("repair"),
        Some(Ok(SyncMessage::Start(ScrubKind::Repair)))
    );
    assert_eq!(msg("idle"), Some(Ok(SyncMessage::Idle)));
    assert_eq!(msg("sync_action"), Some(Ok(SyncMessage::Report)));
    assert_eq!(
        msg("max_recovery_rate 0"),
        Some(Ok(SyncMessage::MaxRate(0)))
    );
    assert_eq!(
        msg("max_recovery_rate 4294967295"),
        Some(Ok(SyncMessage::MaxRate(u32::MAX)))
    );
    assert_eq!(
        msg("min_recovery_rate 1000"),
        Some(Ok(SyncMessage::MinRate(1000)))
    );
    // not ours: other parts of the target answer these
    assert_eq!(msg("stats"), None);
    assert_eq!(msg("read_policy balance"), None);
    assert_eq!(msg("Check"), None);
    assert_eq!(parse_sync_message(&[]), None);
}

#[test]
fn bad_messages_refused_with_a_reason() {
    use SyncMessageError::*;
    for (m, want) in [
        ("check now", ExtraArguments("check")),
        ("repair 1", ExtraArguments("repair")),
        ("idle idle", ExtraArguments("idle")),
        ("sync_action x", ExtraArguments("sync_action")),
        ("max_recovery_rate", MissingRate("max_recovery_rate")),
        ("min_recovery_rate", MissingRate("min_recovery_rate")),
        ("max_recovery_rate 1 2", MissingRate("max_recovery_rate")),
        ("max_recovery_rate -1", BadRate("max_recovery_rate")),
        ("max_recovery_rate +1", BadRate("max_recovery_rate")),
        ("max_recovery_rate 1k", BadRate("max_recovery_rate")),
        ("max_recovery_rate 0x10", BadRate("max_recovery_rate")),
        ("min_recovery_rate 4294967296", BadRate("min_recovery_rate")),
        (
            "min_recovery_rate 99999999999999999999",
            BadRate("min_recovery_rate"),
        ),
        ("min_recovery_rate 1.5", BadRate("min_recovery_rate")),
    ] {
        assert_eq!(msg(m), Some(Err(want)), "{m}");
        assert!(!want.to_string().is_empty());
    }
    // an empty argument (dmsetup passes one for "")
    assert_eq!(
        parse_sync_message(&["max_recovery_rate", ""]),
        Some(Err(BadRate("max_recovery_rate")))
    );
}

#[test]
fn sync_action_line() {
    let mut s = String::new();
    write_sync_action(&mut s, SyncAction::Check, 1024, 2048, 16).unwrap();
    assert_eq!(s, "check 1024/2048 16");
    for (a, w) in [
        (SyncAction::Idle, "idle"),
        (SyncAction::Resync, "resync"),
        (SyncAction::Check, "check"),
        (SyncAction::Repair, "repair"),
    ] {
        assert_eq!(a.name(), w);
    }
    assert_eq!(ScrubKind::Repair.action(), SyncAction::Repair);
}

/// Runs a pass to its end, ending regions in the order handed out.
fn run_all(p: &mut ScrubPass, in_sync: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut seen = Vec::new();
    loop {
        match p.next_region(&in_sync) {
            Next::Region(r) => {
                seen.push(r);
                p.region_done(r, 0);
            }
            Next::Finished => return seen,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_pass_visits_every_in_sync_region_once() {
    let mut p = ScrubPass::new(10, 128, 10 * 128 - 28);
    assert_eq!(p.next_region(|_| true), Next::Idle);
    p.start(ScrubKind::Check).unwrap();
    let seen = run_all(&mut p, |r| r % 3 != 1);
    assert_eq!(seen, vec![0, 2, 3, 5, 6, 8, 9]);
    assert!(!p.running());
    assert_eq!(p.done_sectors(), p.total_sectors());
    assert_eq!(p.done_sectors(), 10 * 128 - 28);
    // after the end: idle, figures kept
    assert_eq!(p.next_region(|_| true), Next::Idle);
    assert_eq!(p.kind(), Some(ScrubKind::Check));
    assert_eq!(p.region_len(9), 100);
    assert_eq!(p.region_len(10), 0);
}

#[test]
fn mismatches_kept_until_the_next_pass() {
    let mut p = ScrubPass::new(4, 8, 32);
    p.start(ScrubKind::Repair).unwrap();
    let Next::Region(r) = p.next_region(|_| true) else {
        panic!()
    };
    assert_eq!(
        p.start(ScrubKind::Check),
        Err(StartError::Busy(ScrubKind::Repair))
    );
    assert!(!StartError::Busy(ScrubKind::Repair).to_string().is_empty());
    p.region_done(r, 8);
    p.region_done(r, 8); // a second end of the same region is ignored
    assert_eq!(p.mismatch_sectors(), 8);
    assert!(p.stop());
    assert!(!p.stop());
    assert_eq!(p.mismatch_sectors(), 8);
    assert_eq!(p.done_sectors(), 8);
    assert_eq!(p.next_region(|_| true), Next::Idle);
    p.start(ScrubKind::Check).unwrap();
    assert_eq!(p.mismatch_sectors(), 0);
    assert_eq!(p.done_sectors(), 0);
}

#[test]
fn the_window_bounds_what_is_handed_out() {
    let n = SCRUB_WINDOW + 10;
    let mut p = ScrubPass::new(n, 8, u64::from(n) * 8);
    p.start(ScrubKind::Check).unwrap();
    let mut out = Vec::new();
    while let Next::Region(r) = p.next_region(|_| true) {
        out.push(r);
    }
    assert_eq!(out.len() as u32, SCRUB_WINDOW);
    assert_eq!(p.next_region(|_| true), Next::Wait);
    // ending a later one does not move the window; ending the first does
    p.region_done(5, 0);
    assert_eq!(p.next_region(|_| true), Next::Wait);
    p.region_done(0, 0);
    assert_eq!(p.next_region(|_| true), Next::Region(SCRUB_WINDOW));
}

/// A model run: random in-sync maps, random completion order, random
/// suspends (in-flight regions abandoned), random skips. Each in-sync
/// region is compared exactly once, mismatches add up, done reaches total,
/// and Finished comes exactly once.
#[test]
fn model_out_of_order_ends_and_suspends() {
    let mut rng = Rng::new(0x5c7b);
    for round in 0..300 {
        let n = 1 + rng.below(200) as u32;
        let rs = 1 + rng.below(64);
        let total = u64::from(n) * rs - rng.below(rs);
        let insync: Vec<bool> = (0..n).map(|_| rng.below(5) != 0).collect();
        let mut p = ScrubPass::new(n, rs, total);
        p.start(ScrubKind::Check).unwrap();
        let mut compared = vec![0u32; n as usize];
        let mut skipped = vec![false; n as usize];
        let mut flight: Vec<u32> = Vec::new();
        let mut want_mismatch = 0u64;
        let mut finished = 0;
        for _step in 0..100_000 {
            let act = rng.below(10);
            if act < 5 {
                match p.next_region(|r| insync[r as usize]) {
                    Next::Region(r) => {
                        assert!(insync[r as usize], "round {round}: {r} not in sync");
                        assert!(!flight.contains(&r));
                        flight.push(r);
                    }
                    Next::Finished => {
                        finished += 1;
                        break;
                    }
                    Next::Wait => assert!(!flight.is_empty() || p.in_flight() > 0),
                    Next::Idle => panic!("round {round}: idle while running"),
                }
            } else if act < 9 && !flight.is_empty() {
                let i = rng.below(flight.len() as u64) as usize;
                let r = flight.swap_remove(i);
                if rng.below(20) == 0 {
                    p.region_skipped(r);
                    skipped[r as usize] = true;
                } else {
                    let m = rng.below(3) * u64::from(COMPARE_UNIT_SECTORS);
                    want_mismatch += m;
                    compared[r as usize] += 1;
                    p.region_done(r, m);
                }
            } else if rng.below(4) == 0 {
                // a suspend: the copies in flight are abandoned
                p.abandon_in_flight();
                flight.clear();
            }
            assert_eq!(p.in_flight() as usize, flight.len());
        }
        assert_eq!(finished, 1, "round {round}: the pass did not finish");
        assert_eq!(p.next_region(|_| true), Next::Idle);
        for r in 0..n as usize {
            let want = if insync[r] && !skipped[r] { 1 } else { 0 };
            assert_eq!(compared[r], want, "round {round}: region {r}");
        }
        assert_eq!(p.mismatch_sectors(), want_mismatch);
        assert_eq!(p.done_sectors(), total, "round {round}");
    }
}

#[test]
fn vote_two_legs() {
    let a = [1u8; 16];
    let b = [2u8; 16];
    // equal: nothing to do
    let v = vote(&[Some(&a), Some(&a)], 0);
    assert_eq!((v.source, v.stale, v.differs), (Some(0), 0, false));
    // differ: no majority of two; the default leg wins
    let v = vote(&[Some(&a), Some(&b)], 0);
    assert_eq!((v.source, v.stale, v.differs), (Some(0), 0b10, true));
    let v = vote(&[Some(&a), Some(&b)], 1);
    assert_eq!((v.source, v.stale, v.differs), (Some(1), 0b01, true));
    // the default leg unreadable: the other wins, the default is rewritten,
    // and one readable copy is no mismatch
    let v = vote(&[None, Some(&b)], 0);
    assert_eq!((v.source, v.stale, v.differs), (Some(1), 0b01, false));
    // nothing readable
    let v = vote(&[None, None], 0);
    assert_eq!((v.source, v.stale, v.differs), (None, 0, false));
}

#[test]
fn vote_majority_outvotes_the_default_leg() {
    let good = [7u8; 8];
    let bad = [9u8; 8];
    let other = [3u8; 8];
    // 3 legs, the default leg (1) odd: the majority wins
    let v = vote(&[Some(&good), Some(&bad), Some(&good)], 1);
    assert_eq!((v.source, v.stale, v.differs), (Some(0), 0b010, true));
    // three different copies: no majority, the default leg's
    let v = vote(&[Some(&good), Some(&bad), Some(&other)], 2);
    assert_eq!((v.source, v.stale, v.differs), (Some(2), 0b011, true));
    // a majority among the readable legs only
    let v = vote(&[None, Some(&bad), Some(&good), Some(&good)], 1);
    assert_eq!((v.source, v.stale, v.differs), (Some(2), 0b0011, true));
    // the default agrees with the majority: read from it
    let v = vote(&[Some(&good), Some(&good), Some(&bad)], 1);
    assert_eq!((v.source, v.stale, v.differs), (Some(1), 0b100, true));
    // 4 legs split 2:2: no strict majority
    let v = vote(&[Some(&good), Some(&good), Some(&bad), Some(&bad)], 3);
    assert_eq!((v.source, v.stale), (Some(3), 0b0011));
}

#[test]
fn region_compare_counts_whole_units() {
    let len = 6 * COMPARE_UNIT_BYTES + 1024; // a short last unit
    let base: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let mut leg1 = base.clone();
    let mut leg2 = base.clone();
    leg1[5] ^= 1; // unit 0
    leg1[COMPARE_UNIT_BYTES + 17] ^= 1; // unit 1
    leg1[COMPARE_UNIT_BYTES + 18] ^= 1; // unit 1 again
    leg2[6 * COMPARE_UNIT_BYTES + 3] ^= 1; // the short last unit
    let mut writes = Vec::new();
    let v = compare_region(&[Some(&base), Some(&leg1), Some(&leg2)], 0, |off, n, v| {
        writes.push((off, n, v.source, v.stale))
    });
    assert_eq!(
        v.mismatched_sectors,
        2 * u64::from(COMPARE_UNIT_SECTORS) + 2
    );
    assert_eq!(v.stale, 0b110);
    assert_eq!(v.unreadable_units, 0);
    assert_eq!(
        writes,
        vec![
            (0, COMPARE_UNIT_BYTES, Some(0), 0b010),
            (COMPARE_UNIT_BYTES, COMPARE_UNIT_BYTES, Some(0), 0b010),
            (6 * COMPARE_UNIT_BYTES, 1024, Some(0), 0b100),
        ]
    );
    // a repair applied: the legs compare equal
    for (off, n, src, stale) in writes {
        let s = [&base, &leg1, &leg2][src.unwrap()][off..off + n].to_vec();
        if stale & 0b010 != 0 {
            leg1[off..off + n].copy_from_slice(&s);
        }
        if stale & 0b100 != 0 {
            leg2[off..off + n].copy_from_slice(&s);
        }
    }
    let v = compare_region(&[Some(&base), Some(&leg1), Some(&leg2)], 0, |_, _, _| {
        panic!("nothing left to rewrite")
    });
    assert_eq!(v, Default::default());
    // one leg unreadable: rewritten everywhere, no mismatch counted
    let mut n = 0;
    let v = compare_region(&[Some(&base), None], 0, |_, _, v| {
        assert_eq!(v.stale, 0b10);
        n += 1
    });
    assert_eq!((v.mismatched_sectors, v.stale, n), (0, 0b10, 7));
    let v = compare_region(&[None, None], 0, |_, _, _| panic!());
    assert_eq!(v.unreadable_units, 0); // no copy: no length
}

#[test]
fn rates_keep_min_at_most_max() {
    let r = Rates::default();
    let r = r.with_max(5000).unwrap();
    let r = r.with_min(1000).unwrap();
    assert_eq!(
        r,
        Rates {
            min_kbs: 1000,
            max_kbs: 5000
        }
    );
    assert_eq!(
        r.with_min(6000),
        Err(RateError::MinAboveMax {
            min: 6000,
            max: 5000
        })
    );
    assert_eq!(
        r.with_max(500),
        Err(RateError::MinAboveMax {
            min: 1000,
            max: 500
        })
    );
    assert!(!RateError::MinAboveMax { min: 2, max: 1 }
        .to_string()
        .is_empty());
    // max 0 is no limit: any minimum fits
    assert_eq!(
        r.with_max(0).unwrap().with_min(u32::MAX).unwrap().min_kbs,
        u32::MAX
    );
}

/// Simulates background work in pieces of `piece_kib` against the pacer
/// for `ms` milliseconds, `busy(t)` saying whether foreground I/O runs;
/// returns the KiB done.
fn simulate(
    rates: impl Fn(u64) -> Rates,
    busy: impl Fn(u64) -> bool,
    piece_kib: u64,
    piece_ms: u64,
    ms: u64,
) -> u64 {
    let mut p = Pacer::new(0);
    let mut t = 0;
    let mut done = 0;
    while t < ms {
        let d = u64::from(p.delay(t, rates(t), busy(t)));
        if d > 0 {
            t += d.min(50);
            continue;
        }
        t += piece_ms;
        done += piece_kib;
        p.record(t, piece_kib);
    }
    done
}

/// The rate (KiB/s) the pacer allows for `secs` seconds of 512 KiB pieces
/// that take 2 ms each, with foreground I/O running or not.
fn paced_rate(min_kbs: u32, max_kbs: u32, busy: bool, secs: u64) -> u64 {
    let rates = Rates { min_kbs, max_kbs };
    simulate(|_| rates, |_| busy, 512, 2, secs * 1000) / secs
}

#[test]
fn pacer_holds_the_maximum_when_idle() {
    // unpaced: 256 MB/s
    let unpaced = paced_rate(0, 0, false, 20);
    assert!(unpaced > 250_000, "{unpaced}");
    let rate = paced_rate(1000, 10_000, false, 20);
    assert!(
        (9_000..=10_600).contains(&rate),
        "idle at max 10000: {rate} KiB/s"
    );
}

#[test]
fn pacer_backs_off_to_the_minimum_under_foreground_io() {
    let rate = paced_rate(2000, 50_000, true, 30);
    assert!(
        (1_700..=2_600).contains(&rate),
        "busy at min 2000: {rate} KiB/s"
    );
    // no minimum: one piece per backoff period, never starved
    let rates = Rates {
        min_kbs: 0,
        max_kbs: 50_000,
    };
    let done = simulate(|_| rates, |_| true, 64, 1, 10_000);
    let pieces = done / 64;
    let want = 10_000 / u64::from(PACE_BACKOFF_MS);
    assert!(
        pieces >= want * 8 / 10 && pieces <= want + 2,
        "{pieces} pieces, want ~{want}"
    );
}

#[test]
fn pacer_banks_no_credit_across_a_pause() {
    // idle for a minute, then work at max 4000: the first seconds must not
    // burst to make up for the pause
    let mut p = Pacer::new(0);
    let rates = Rates {
        min_kbs: 0,
        max_kbs: 4000,
    };
    let mut t = 60_000;
    let mut done = 0;
    while t < 60_000 + 2 * PACE_WINDOW_MS {
        let d = u64::from(p.delay(t, rates, false));
        if d > 0 {
            t += d;
            continue;
        }
        t += 1;
        done += 256;
        p.record(t, 256);
    }
    let rate = done * 1000 / (2 * PACE_WINDOW_MS);
    assert!(rate <= 4400, "{rate} KiB/s after a pause");
    assert!(p.rate_kbs(t) <= 4400);
}

#[test]
fn a_rate_change_applies_at_once() {
    // max 2000 for 10 s, then lifted to 20000: the second half is faster,
    // and nothing restarts (the pacer just answers the next delay)
    let done_first = simulate(
        |_| Rates {
            min_kbs: 0,
            max_kbs: 2000,
        },
        |_| false,
        128,
        1,
        10_000,
    );
    let both = simulate(
        |t| Rates {
            min_kbs: 0,
            max_kbs: if t < 10_000 { 2000 } else { 20_000 },
        },
        |_| false,
        128,
        1,
        20_000,
    );
    let second = both - done_first;
    assert!(
        second > 5 * done_first,
        "first {done_first} KiB, second {second} KiB"
    );
}

#[test]
fn pacer_carries_over_pieces_larger_than_a_window_allows() {
    // 2 MiB pieces (4 recovery regions at once) at max 128 KiB/s: each
    // piece is 16 s of work at that rate, far longer than a window; a
    // window that forgot it would let a piece through every window
    // (~680 KiB/s)
    for secs in [60u64, 120] {
        let rate = paced_rate_piece(0, 128, false, secs, 2048);
        assert!(
            rate <= 128 * 12 / 10 + 2048 / secs,
            "{secs} s of 2 MiB pieces at max 128: {rate} KiB/s"
        );
        assert!(rate >= 100, "{rate} KiB/s: held back too much");
    }
    // and under foreground I/O at min 64
    let rate = paced_rate_piece(64, 1000, true, 120, 2048);
    assert!(
        rate <= 64 * 12 / 10 + 2048 / 120,
        "busy, min 64: {rate} KiB/s"
    );
}

fn paced_rate_piece(min_kbs: u32, max_kbs: u32, busy: bool, secs: u64, kib: u64) -> u64 {
    let rates = Rates { min_kbs, max_kbs };
    simulate(|_| rates, |_| busy, kib, 2, secs * 1000) / secs
}

#[test]
fn pacer_restart_forgets_work_done_before_a_rate_was_set() {
    // 16 MiB done unpaced in the last second; then max 256 KiB/s: without
    // a restart that would be a minute of debt
    let mut p = Pacer::new(0);
    for i in 0..32 {
        p.record(1000 + i * 30, 512);
    }
    let rates = Rates {
        min_kbs: 0,
        max_kbs: 256,
    };
    assert!(p.delay(2000, rates, false) > 60_000);
    p.restart(2000);
    assert_eq!(p.delay(2000, rates, false), 0);
    // the next 512 KiB then cost 2 s at 256 KiB/s
    p.record(2100, 512);
    let d = p.delay(2100, rates, false);
    assert!((1800..=2000).contains(&d), "{d} ms");
}
