//! Tests of the region bitsets and the core dirty log's logic
//! (`log_bits.rs`, shared with the kernel module), against the behaviour of
//! the C dm-log core log.

use dm_mirror_rs_host::log_bits::{CoreLogState, RegionBits};
use dm_mirror_rs_host::table::SyncMode;

mod common;
use common::{Rng, Words};

const SIZES: [u32; 6] = [0, 1, 63, 64, 65, 1000];

/// Pattern left in fresh stores, to check that `new` overwrites them.
const GARBAGE: u64 = 0xA5A5_5A5A_DEAD_BEEF;

fn words_for(nr: u32) -> usize {
    nr.div_ceil(64) as usize
}

fn store(nr: u32) -> Words {
    Words(vec![GARBAGE; words_for(nr)])
}

fn bits(nr: u32, value: bool) -> RegionBits<Words> {
    RegionBits::new(store(nr), nr, value)
}

fn log(nr: u32, sync: SyncMode) -> CoreLogState<Words> {
    CoreLogState::new(nr, sync, store(nr), store(nr), store(nr))
}

/// Bits past `nr` in the words are all 0.
fn assert_tail_clear(b: &RegionBits<Words>, nr: u32) {
    for (w, &word) in b.words().iter().enumerate() {
        for bit in 0..64u32 {
            let i = w as u64 * 64 + u64::from(bit);
            if i >= u64::from(nr) {
                assert_eq!(word >> bit & 1, 0, "nr {nr}: tail bit {i} set");
            }
        }
    }
}

fn naive_next_zero(v: &[bool], from: u32) -> Option<u32> {
    (from as usize..v.len()).find(|&i| !v[i]).map(|i| i as u32)
}

// ---------------------------------------------------------------------------
// RegionBits
// ---------------------------------------------------------------------------

#[test]
fn new_all_set() {
    for nr in SIZES {
        let b = bits(nr, true);
        assert_eq!(b.len(), nr);
        assert_eq!(b.is_empty(), nr == 0);
        assert_eq!(b.count(), u64::from(nr), "nr {nr}");
        assert!((0..nr).all(|i| b.get(i)), "nr {nr}");
        assert!(!b.get(nr));
        assert_tail_clear(&b, nr);
        assert_eq!(b.next_zero(0), None, "nr {nr}");
    }
}

#[test]
fn new_all_clear_overwrites_old_contents() {
    for nr in SIZES {
        let b = bits(nr, false);
        assert_eq!(b.count(), 0, "nr {nr}");
        assert!(b.words().iter().all(|&w| w == 0), "nr {nr}");
        assert!((0..nr).all(|i| !b.get(i)));
        assert_eq!(b.next_zero(0), (nr > 0).then_some(0), "nr {nr}");
    }
}

#[test]
fn new_clears_extra_words_past_the_end() {
    // A store larger than needed: its extra words do not count.
    for nr in SIZES {
        let b = RegionBits::new(Words(vec![GARBAGE; words_for(nr) + 2]), nr, true);
        assert_eq!(b.count(), u64::from(nr), "nr {nr}");
        assert_tail_clear(&b, nr);
        assert_eq!(b.next_zero(0), None, "nr {nr}");
    }
}

#[test]
fn tail_words_exact() {
    assert_eq!(bits(1, true).words(), [1]);
    assert_eq!(bits(63, true).words(), [u64::MAX >> 1]);
    assert_eq!(bits(64, true).words(), [u64::MAX]);
    assert_eq!(bits(65, true).words(), [u64::MAX, 1]);
    let b = bits(1000, true);
    assert_eq!(b.words().len(), 16);
    assert!(b.words()[..15].iter().all(|&w| w == u64::MAX));
    assert_eq!(b.words()[15], (1 << (1000 - 960)) - 1);
}

#[test]
fn bit_layout_is_little_endian_words() {
    let mut b = bits(200, false);
    for i in [0, 63, 64, 130, 199] {
        b.set(i, true);
    }
    assert_eq!(b.words(), [1 | 1 << 63, 1, 1 << 2, 1 << (199 - 192)]);
}

#[test]
fn set_returns_previous_value() {
    for nr in SIZES.into_iter().filter(|&n| n > 0) {
        let mut b = bits(nr, false);
        for i in [0, nr / 2, nr - 1] {
            let was = b.get(i);
            assert_eq!(b.set(i, true), was, "nr {nr} bit {i}");
            assert!(b.get(i));
            assert!(b.set(i, true), "nr {nr} bit {i}: set twice");
            assert!(b.set(i, false), "nr {nr} bit {i}");
            assert!(!b.get(i));
            assert!(!b.set(i, false), "nr {nr} bit {i}: cleared twice");
        }
        assert_eq!(b.count(), 0);
    }
}

#[test]
fn set_touches_only_its_bit() {
    let nr = 1000;
    let mut b = bits(nr, false);
    let mut v = vec![false; nr as usize];
    let mut rng = Rng::new(7);
    for _ in 0..5000 {
        let i = rng.below(u64::from(nr)) as u32;
        let value = rng.chance(2);
        assert_eq!(b.set(i, value), v[i as usize]);
        v[i as usize] = value;
    }
    for i in 0..nr {
        assert_eq!(b.get(i), v[i as usize], "bit {i}");
    }
    assert_eq!(b.count(), v.iter().filter(|&&x| x).count() as u64);
    assert_tail_clear(&b, nr);
}

#[test]
fn out_of_range_access_is_harmless() {
    for nr in SIZES {
        for value in [false, true] {
            let mut b = bits(nr, value);
            let before = b.words().to_vec();
            for i in [nr, nr + 1, nr.saturating_add(64), u32::MAX] {
                assert!(!b.get(i), "nr {nr} get({i})");
                assert!(!b.set(i, true), "nr {nr} set({i})");
                assert!(!b.set(i, false), "nr {nr} set({i})");
            }
            assert_eq!(b.words(), before, "nr {nr}: out-of-range set wrote");
            assert_eq!(b.count(), if value { u64::from(nr) } else { 0 });
        }
    }
}

#[test]
fn short_store_is_harmless() {
    // A store smaller than the contract asks for must not panic.
    for words in [0, 1] {
        let mut b = RegionBits::new(Words(vec![GARBAGE; words]), 200, true);
        assert_eq!(b.count(), 64 * words as u64);
        assert!(!b.get(150));
        assert!(!b.set(150, true));
        assert!(!b.get(150));
        let _ = b.next_zero(0);
        let _ = b.next_zero(100);
    }
}

#[test]
fn next_zero_at_word_boundaries() {
    let nr = 1000;
    let mut b = bits(nr, true);
    for i in [63, 64, 127, 128, 999] {
        b.set(i, false);
    }
    assert_eq!(b.next_zero(0), Some(63));
    assert_eq!(b.next_zero(63), Some(63));
    assert_eq!(b.next_zero(64), Some(64));
    assert_eq!(b.next_zero(65), Some(127));
    assert_eq!(b.next_zero(128), Some(128));
    assert_eq!(b.next_zero(129), Some(999));
    assert_eq!(b.next_zero(999), Some(999));
    assert_eq!(b.next_zero(1000), None);
    assert_eq!(b.next_zero(u32::MAX), None);
}

#[test]
fn next_zero_skips_full_words() {
    let mut b = bits(1000, true);
    b.set(130, false);
    assert_eq!(b.next_zero(0), Some(130));
    assert_eq!(b.next_zero(1), Some(130));
    b.set(130, true);
    b.set(960, false);
    assert_eq!(b.next_zero(0), Some(960));
    assert_eq!(b.next_zero(961), None);
}

#[test]
fn next_zero_never_reports_the_tail() {
    // The clear bits past nr in the last word are not regions.
    for nr in [1, 63, 65, 1000] {
        let b = bits(nr, true);
        for from in nr.saturating_sub(3)..=nr + 2 {
            assert_eq!(b.next_zero(from), None, "nr {nr} from {from}");
        }
    }
    let mut b = bits(65, true);
    b.set(64, false);
    assert_eq!(b.next_zero(0), Some(64));
    assert_eq!(b.next_zero(64), Some(64));
    assert_eq!(b.next_zero(65), None);
    let mut b = bits(64, true);
    b.set(63, false);
    assert_eq!(b.next_zero(0), Some(63));
    assert_eq!(b.next_zero(64), None);
}

#[test]
fn next_zero_matches_naive_scan() {
    let mut rng = Rng::new(0x1234_5678);
    for nr in SIZES.into_iter().chain([127, 128, 129, 257]) {
        for density in [1, 2, 8, 64] {
            let mut b = bits(nr, true);
            let mut v = vec![true; nr as usize];
            for i in 0..nr {
                if rng.chance(density) {
                    b.set(i, false);
                    v[i as usize] = false;
                }
            }
            for from in 0..=nr + 1 {
                assert_eq!(
                    b.next_zero(from),
                    naive_next_zero(&v, from),
                    "nr {nr} density {density} from {from}"
                );
            }
        }
    }
}

#[test]
fn count_tracks_sets() {
    for nr in SIZES {
        let mut b = bits(nr, false);
        for i in (0..nr).step_by(3) {
            b.set(i, true);
        }
        assert_eq!(b.count(), u64::from(nr.div_ceil(3)), "nr {nr}");
    }
}

// ---------------------------------------------------------------------------
// CoreLogState: initial state
// ---------------------------------------------------------------------------

#[test]
fn nosync_log_starts_in_sync() {
    for nr in SIZES {
        let mut l = log(nr, SyncMode::NoSync);
        assert_eq!(l.sync_count(), u64::from(nr), "nr {nr}");
        assert!((0..nr).all(|r| l.in_sync(r)));
        assert!((0..nr).all(|r| l.is_clean(r)));
        assert_eq!(l.get_resync_work(), None, "nr {nr}");
    }
}

#[test]
fn sync_and_default_logs_start_out_of_sync() {
    for mode in [SyncMode::Sync, SyncMode::Default] {
        for nr in SIZES {
            let l = log(nr, mode);
            assert_eq!(l.sync_count(), 0, "{mode:?} nr {nr}");
            assert!((0..nr).all(|r| !l.in_sync(r)), "{mode:?} nr {nr}");
            assert!((0..nr).all(|r| l.is_clean(r)), "{mode:?} nr {nr}");
        }
    }
}

#[test]
fn out_of_range_regions_are_harmless() {
    for mode in [SyncMode::NoSync, SyncMode::Default] {
        let nr = 100;
        let mut l = log(nr, mode);
        let count = l.sync_count();
        for r in [nr, nr + 1, u32::MAX] {
            assert!(!l.in_sync(r));
            assert!(!l.is_clean(r));
            l.mark_region(r);
            l.clear_region(r);
            l.set_region_sync(r, true);
            l.set_region_sync(r, false);
            assert!(!l.in_sync(r));
        }
        assert_eq!(l.sync_count(), count, "{mode:?}");
    }
}

// ---------------------------------------------------------------------------
// CoreLogState: mark / clear
// ---------------------------------------------------------------------------

#[test]
fn mark_and_clear_region() {
    let nr = 130;
    let mut l = log(nr, SyncMode::NoSync);
    for r in [0, 63, 64, 129] {
        l.mark_region(r);
        assert!(!l.is_clean(r), "region {r}");
    }
    for r in 0..nr {
        assert_eq!(l.is_clean(r), ![0, 63, 64, 129].contains(&r), "region {r}");
    }
    // Marking twice, clearing twice.
    l.mark_region(63);
    assert!(!l.is_clean(63));
    l.clear_region(63);
    assert!(l.is_clean(63));
    l.clear_region(63);
    assert!(l.is_clean(63));
    // Clean state is independent of sync state.
    assert_eq!(l.sync_count(), u64::from(nr));
    assert!((0..nr).all(|r| l.in_sync(r)));
    l.set_region_sync(0, false);
    assert!(!l.is_clean(0));
    l.clear_region(0);
    assert!(l.is_clean(0));
    assert!(!l.in_sync(0));
}

// ---------------------------------------------------------------------------
// CoreLogState: resync work
// ---------------------------------------------------------------------------

#[test]
fn resync_work_returns_each_region_once_then_none() {
    for nr in SIZES {
        let mut l = log(nr, SyncMode::Sync);
        let got: Vec<u32> = core::iter::from_fn(|| l.get_resync_work()).collect();
        assert_eq!(got, (0..nr).collect::<Vec<_>>(), "nr {nr}");
        assert_eq!(l.get_resync_work(), None);
        assert_eq!(l.get_resync_work(), None);
        assert_eq!(l.sync_count(), 0, "handing out work changes no sync state");
    }
}

#[test]
fn resync_work_skips_in_sync_regions() {
    let nr = 200;
    let mut l = log(nr, SyncMode::NoSync);
    for r in [5, 64, 199] {
        l.set_region_sync(r, false);
    }
    assert_eq!(l.sync_count(), u64::from(nr) - 3);
    assert_eq!(l.get_resync_work(), Some(5));
    assert_eq!(l.get_resync_work(), Some(64));
    assert_eq!(l.get_resync_work(), Some(199));
    assert_eq!(l.get_resync_work(), None);
}

#[test]
fn resync_work_skips_recovering_regions() {
    let nr = 10;
    let mut l = log(nr, SyncMode::Default);
    assert_eq!(l.get_resync_work(), Some(0));
    assert_eq!(l.get_resync_work(), Some(1));
    // Restarting the scan does not hand out regions being recovered.
    l.resume();
    assert_eq!(l.get_resync_work(), Some(2));
    l.resume();
    let rest: Vec<u32> = core::iter::from_fn(|| l.get_resync_work()).collect();
    assert_eq!(rest, (3..nr).collect::<Vec<_>>());
    l.resume();
    assert_eq!(l.get_resync_work(), None, "all regions are being recovered");
}

#[test]
fn set_region_sync_true_counts_once() {
    let nr = 100;
    let mut l = log(nr, SyncMode::Default);
    let r = l.get_resync_work().unwrap();
    l.set_region_sync(r, true);
    assert!(l.in_sync(r));
    assert_eq!(l.sync_count(), 1);
    // Idempotent (the C core log counted again here).
    l.set_region_sync(r, true);
    l.set_region_sync(r, true);
    assert_eq!(l.sync_count(), 1);
    // An in-sync region is not handed out again, even after resume.
    l.resume();
    assert_eq!(l.get_resync_work(), Some(1));
}

#[test]
fn set_region_sync_false_on_in_sync_region_decrements() {
    let nr = 100;
    let mut l = log(nr, SyncMode::NoSync);
    l.set_region_sync(42, false);
    assert!(!l.in_sync(42));
    assert_eq!(l.sync_count(), 99);
    // Again: no change.
    l.set_region_sync(42, false);
    assert_eq!(l.sync_count(), 99);
    // Found by the scan (still at 0).
    assert_eq!(l.get_resync_work(), Some(42));
    l.set_region_sync(42, true);
    assert_eq!(l.sync_count(), 100);
}

#[test]
fn set_region_sync_false_on_out_of_sync_region_keeps_count() {
    let mut l = log(10, SyncMode::Default);
    l.set_region_sync(3, false);
    assert_eq!(l.sync_count(), 0, "sync_count must not underflow");
    assert!(!l.in_sync(3));
}

#[test]
fn given_up_region_found_again_after_resume() {
    let nr = 70;
    let mut l = log(nr, SyncMode::Sync);
    assert_eq!(l.get_resync_work(), Some(0));
    assert_eq!(l.get_resync_work(), Some(1));
    // Region 1's recovery is given up (suspend, or failed copy).
    l.set_region_sync(1, false);
    assert!(!l.in_sync(1));
    assert_eq!(l.sync_count(), 0);
    l.set_region_sync(0, true);
    // The scan goes on past region 1...
    let rest: Vec<u32> = core::iter::from_fn(|| l.get_resync_work()).collect();
    assert_eq!(rest, (2..nr).collect::<Vec<_>>());
    for r in rest {
        l.set_region_sync(r, true);
    }
    assert_eq!(l.get_resync_work(), None);
    assert_eq!(l.sync_count(), u64::from(nr) - 1);
    // ... and resume restarts it: region 1 is found again, and only it.
    l.resume();
    assert_eq!(l.get_resync_work(), Some(1));
    assert_eq!(l.get_resync_work(), None);
    l.set_region_sync(1, true);
    assert_eq!(l.sync_count(), u64::from(nr));
    l.resume();
    assert_eq!(l.get_resync_work(), None);
}

#[test]
fn given_up_region_not_reoffered_without_resume() {
    // As in the C core log: the scan only moves forward until resume.
    let mut l = log(3, SyncMode::Default);
    assert_eq!(l.get_resync_work(), Some(0));
    l.set_region_sync(0, false);
    assert_eq!(l.get_resync_work(), Some(1));
    assert_eq!(l.get_resync_work(), Some(2));
    assert_eq!(l.get_resync_work(), None);
}

#[test]
fn full_resync_reaches_sync_count_n() {
    for nr in SIZES.into_iter().chain([4096]) {
        for mode in [SyncMode::Sync, SyncMode::Default] {
            let mut l = log(nr, mode);
            let mut done = 0;
            while let Some(r) = l.get_resync_work() {
                assert!(!l.in_sync(r));
                l.set_region_sync(r, true);
                done += 1;
            }
            assert_eq!(done, nr);
            assert_eq!(l.sync_count(), u64::from(nr), "{mode:?} nr {nr}");
            assert!((0..nr).all(|r| l.in_sync(r)));
            l.resume();
            assert_eq!(l.get_resync_work(), None);
        }
    }
}

#[test]
fn concurrent_resync_with_failures_and_suspends_completes() {
    // kmirrord recovers up to 4 regions at once; copies fail at random and
    // are given up; suspends give up the regions not yet copied, and resume
    // restarts the scan. Eventually everything is in sync.
    const MAX_RECOVERY: usize = 4;
    for (seed, nr) in [(1u64, 1u32), (2, 64), (3, 65), (4, 1000)] {
        let mut rng = Rng::new(seed);
        let mut l = log(nr, SyncMode::Sync);
        let mut active: Vec<u32> = Vec::new();
        let mut offered = vec![0u32; nr as usize];
        let mut rounds = 0;
        while l.sync_count() < u64::from(nr) {
            rounds += 1;
            assert!(rounds < 100_000, "nr {nr}: resync does not finish");
            while active.len() < MAX_RECOVERY {
                let Some(r) = l.get_resync_work() else {
                    break;
                };
                assert!(!l.in_sync(r), "in-sync region {r} offered");
                assert!(!active.contains(&r), "region {r} offered twice");
                offered[r as usize] += 1;
                active.push(r);
            }
            if active.is_empty() || rng.chance(50) {
                // Suspend/resume: the regions not yet copied are given up.
                for r in active.drain(..) {
                    l.set_region_sync(r, false);
                }
                l.resume();
                continue;
            }
            let r = active.swap_remove(rng.below(active.len() as u64) as usize);
            let before = l.sync_count();
            let ok = !rng.chance(5);
            l.set_region_sync(r, ok);
            assert_eq!(l.sync_count(), before + u64::from(ok));
        }
        assert!(active.is_empty());
        assert!((0..nr).all(|r| l.in_sync(r)));
        assert!(offered.iter().all(|&n| n >= 1));
        l.resume();
        assert_eq!(l.get_resync_work(), None);
    }
}

#[test]
fn random_operations_match_a_naive_model() {
    let nr = 300;
    for (seed, mode) in [(11u64, SyncMode::NoSync), (12, SyncMode::Sync)] {
        let mut rng = Rng::new(seed);
        let mut l = log(nr, mode);
        let mut in_sync = vec![mode == SyncMode::NoSync; nr as usize];
        let mut clean = vec![true; nr as usize];
        let mut recovering = vec![false; nr as usize];
        let mut search = 0u32;
        for step in 0..50_000 {
            let r = rng.below(u64::from(nr) + 2) as u32; // sometimes out of range
            let i = r as usize;
            match rng.below(7) {
                0 => {
                    l.mark_region(r);
                    if r < nr {
                        clean[i] = false;
                    }
                }
                1 => {
                    l.clear_region(r);
                    if r < nr {
                        clean[i] = true;
                    }
                }
                2 | 3 => {
                    // The C scan: next clear sync bit from the search point
                    // that is not being recovered.
                    let mut want = None;
                    while let Some(c) = naive_next_zero(&in_sync, search) {
                        search = c + 1;
                        if !recovering[c as usize] {
                            recovering[c as usize] = true;
                            want = Some(c);
                            break;
                        }
                    }
                    assert_eq!(l.get_resync_work(), want, "step {step}");
                }
                4 | 5 => {
                    let value = rng.chance(2);
                    l.set_region_sync(r, value);
                    if r < nr {
                        recovering[i] = false;
                        in_sync[i] = value;
                    }
                }
                _ => {
                    if rng.chance(10) {
                        l.resume();
                        search = 0;
                    }
                }
            }
            let count = in_sync.iter().filter(|&&x| x).count() as u64;
            assert_eq!(l.sync_count(), count, "step {step}");
            if r < nr {
                assert_eq!(l.in_sync(r), in_sync[i], "step {step}");
                assert_eq!(l.is_clean(r), clean[i], "step {step}");
            }
        }
        for r in 0..nr {
            assert_eq!(l.in_sync(r), in_sync[r as usize]);
            assert_eq!(l.is_clean(r), clean[r as usize]);
        }
    }
}

// ---------------------------------------------------------------------------
// What the disk log adds: change reports, whole-bitset operations, resume
// ---------------------------------------------------------------------------

#[test]
fn mark_and_clear_report_changes() {
    let mut l = log(70, SyncMode::Default);
    assert!(l.mark_region(5), "clean -> dirty is a change");
    assert!(!l.mark_region(5), "dirty -> dirty is not");
    assert!(l.clear_region(5), "dirty -> clean is a change");
    assert!(!l.clear_region(5), "clean -> clean is not");
    assert!(!l.mark_region(70), "past the end: nothing changes");
    assert!(!l.clear_region(70), "past the end: nothing changes");
    assert!(!l.clear_region(u32::MAX));
}

#[test]
fn fill_and_copy_keep_the_tail_clear() {
    for nr in SIZES {
        let mut a = bits(nr, false);
        a.fill(true);
        assert_eq!(a.count(), u64::from(nr));
        assert_tail_clear(&a, nr);
        a.fill(false);
        assert_eq!(a.count(), 0);
        let mut rng = Rng::new(u64::from(nr) + 7);
        let mut src = bits(nr, false);
        for i in 0..nr {
            src.set(i, rng.below(2) == 1);
        }
        let mut dst = bits(nr, true);
        dst.copy_from(&src);
        assert_eq!(dst.words(), src.words(), "nr {nr}");
        assert_tail_clear(&dst, nr);
    }
}

#[test]
fn mark_all_unclean_then_sync_from_clean() {
    let nr = 200;
    let mut l = log(nr, SyncMode::NoSync);
    assert_eq!(l.sync_count(), u64::from(nr));
    l.mark_all_unclean();
    assert!((0..nr).all(|r| !l.is_clean(r)));
    // In sync bits are untouched until a resume loads them from the clean
    // bits, as the disk log does.
    assert_eq!(l.sync_count(), u64::from(nr));
    for r in [3, 64, 199] {
        l.clear_region(r);
    }
    // A recovery in progress is forgotten by the reload.
    l.set_region_sync(10, false);
    assert_eq!(l.get_resync_work(), Some(10));
    l.sync_from_clean();
    assert_eq!(l.sync_count(), 3);
    for r in 0..nr {
        assert_eq!(l.in_sync(r), [3, 64, 199].contains(&r), "region {r}");
    }
    assert_eq!(l.clean_bits().count(), 3);
    // The scan restarts at 0 and hands out every other region once.
    let mut got = Vec::new();
    while let Some(r) = l.get_resync_work() {
        got.push(r);
    }
    let want: Vec<u32> = (0..nr).filter(|r| ![3, 64, 199].contains(r)).collect();
    assert_eq!(got, want);
}
