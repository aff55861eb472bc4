//! Tests of the region hash (`region_hash.rs`, shared with the kernel
//! module), instantiated with host parts: entries in plain boxes that count
//! themselves, delayed writes in a vector, buckets in a vector.
//!
//! The module takes its entries from a mempool (with a GFP_NOIO kmalloc
//! fallback) outside the lock and inserts them under it; kmirrord's
//! `update_states` unlinks dropped entries into a free list, freed once the
//! lock is released. The unit tests below check that bookkeeping; the
//! randomized test runs every operation of the hash against a reference
//! model, a plain map from region to state, with few buckets so that chains
//! are long and `update_states` rebuilds them.

use dm_mirror_rs_host::region_hash::{
    bucket_count, DirtyLog, FreeList, HashParts, Region, RegionGeometry, RegionHash, WriteList,
};
use dm_mirror_rs_host::region_state::{Recovery, RegionEntry, RegionState, WriteRoute};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

mod common;
use common::Rng;

// ---------------------------------------------------------------------------
// Host parts
// ---------------------------------------------------------------------------

/// The host instantiation of the hash.
struct Host;

impl HashParts for Host {
    type Entry = HostBox;
    type Writes = Writes;
    type Buckets = Vec<Option<HostBox>>;
}

type Hash = RegionHash<Host>;

/// What entries were allocated and freed (the stand-in for the pool).
#[derive(Default)]
struct Alloc {
    live: Cell<usize>,
    allocated: Cell<usize>,
    /// Keys of the entries freed, in order.
    freed: RefCell<Vec<u32>>,
}

impl Alloc {
    fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// An entry for `key`, as `ensure_region` allocates it.
    fn entry(self: &Rc<Self>, key: u32) -> HostBox {
        self.live.set(self.live.get() + 1);
        self.allocated.set(self.allocated.get() + 1);
        HostBox {
            region: Box::new(Region::new(key)),
            alloc: self.clone(),
        }
    }

    fn live(&self) -> usize {
        self.live.get()
    }

    /// The keys freed since the last call, sorted.
    fn take_freed(&self) -> Vec<u32> {
        let mut v = std::mem::take(&mut *self.freed.borrow_mut());
        v.sort_unstable();
        v
    }
}

/// A boxed entry that reports its freeing.
struct HostBox {
    region: Box<Region<Host>>,
    alloc: Rc<Alloc>,
}

impl Deref for HostBox {
    type Target = Region<Host>;
    fn deref(&self) -> &Region<Host> {
        &self.region
    }
}

impl DerefMut for HostBox {
    fn deref_mut(&mut self) -> &mut Region<Host> {
        &mut self.region
    }
}

impl Drop for HostBox {
    fn drop(&mut self) {
        self.alloc.live.set(self.alloc.live.get() - 1);
        self.alloc.freed.borrow_mut().push(self.region.key());
    }
}

/// A write: its region and a serial number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Write {
    key: u32,
    id: u64,
}

/// A FIFO of writes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Writes(Vec<Write>);

impl WriteList for Writes {
    type Write = Write;

    fn empty() -> Self {
        Writes(Vec::new())
    }

    fn push(&mut self, write: Write) {
        self.0.push(write);
    }

    fn append(&mut self, other: &mut Self) {
        self.0.append(&mut other.0);
    }
}

fn new_hash(buckets: usize) -> Hash {
    RegionHash::new((0..buckets).map(|_| None).collect())
}

/// A dirty log that keeps, per region, the bits the hash sets and a
/// journal of the calls.
#[derive(Debug, Default)]
struct TestLog {
    /// Regions out of sync (all others are in sync).
    nosync: BTreeMap<u32, ()>,
    /// Regions marked (not clean).
    marked: BTreeMap<u32, ()>,
    journal: Vec<Call>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Mark(u32),
    Clear(u32),
    SetSync(u32, bool),
}

impl TestLog {
    fn with_nosync(keys: &[u32]) -> Self {
        let mut log = Self::default();
        for &k in keys {
            log.nosync.insert(k, ());
        }
        log
    }

    fn is_marked(&self, k: u32) -> bool {
        self.marked.contains_key(&k)
    }

    fn take_journal(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.journal)
    }
}

impl DirtyLog for TestLog {
    fn in_sync(&self, region: u32) -> bool {
        !self.nosync.contains_key(&region)
    }

    fn mark_region(&mut self, region: u32) {
        self.marked.insert(region, ());
        self.journal.push(Call::Mark(region));
    }

    fn clear_region(&mut self, region: u32) {
        self.marked.remove(&region);
        self.journal.push(Call::Clear(region));
    }

    fn set_region_sync(&mut self, region: u32, in_sync: bool) {
        if in_sync {
            self.nosync.remove(&region);
        } else {
            self.nosync.insert(region, ());
        }
        self.journal.push(Call::SetSync(region, in_sync));
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `ensure_region` without the lock juggling.
fn ensure(h: &mut Hash, alloc: &Rc<Alloc>, log: &TestLog, key: u32) {
    if !h.contains(key) {
        assert!(h.insert(alloc.entry(key), log).is_none());
    }
}

fn entry(h: &mut Hash, key: u32) -> RegionEntry {
    *h.get_mut(key).expect("no entry").entry()
}

fn state(h: &mut Hash, key: u32) -> RegionState {
    entry(h, key).state
}

fn delayed(h: &mut Hash, key: u32) -> Vec<Write> {
    h.get_mut(key).expect("no entry").delayed().0.clone()
}

/// Runs kmirrord's pass; returns the requeued writes and the freed keys.
fn update(h: &mut Hash, log: &mut TestLog, alloc: &Alloc) -> (Vec<Write>, Vec<u32>) {
    let mut requeue = Writes::empty();
    let mut freed = FreeList::new();
    h.update_states(log, &mut requeue, &mut freed);
    // Nothing is freed under the lock.
    assert!(alloc.take_freed().is_empty());
    drop(freed);
    (requeue.0, alloc.take_freed())
}

/// A region chosen for recovery, its copy running.
fn copying(h: &mut Hash, alloc: &Rc<Alloc>, log: &mut TestLog, key: u32) {
    log.set_region_sync(key, false);
    ensure(h, alloc, log, key);
    assert!(h.begin_recovery(key));
    let mut out = [0u32; 64];
    let n = h.take_quiesced(&mut out);
    assert!(out[..n].contains(&key), "{key} not quiesced");
}

// ---------------------------------------------------------------------------
// Geometry and bucket count
// ---------------------------------------------------------------------------

#[test]
fn bucket_count_is_a_power_of_two_between_64_and_64ki() {
    assert_eq!(bucket_count(0), 64);
    assert_eq!(bucket_count(1), 64);
    assert_eq!(bucket_count(8192), 64);
    assert_eq!(bucket_count(8255), 64);
    assert_eq!(bucket_count(8256), 128);
    assert_eq!(bucket_count(16384), 128);
    assert_eq!(bucket_count(1 << 20), 8192);
    assert_eq!(bucket_count(1 << 23), 65536);
    assert_eq!(bucket_count(u32::MAX), 65536);
    for shift in 0..32 {
        let n = bucket_count(1u32 << shift);
        assert!(n.is_power_of_two() && (64..=65536).contains(&n), "{n}");
    }
}

#[test]
fn geometry_maps_sectors_to_regions() {
    // 1000 sectors at sector 100 of the device, 128-sector regions.
    let g = RegionGeometry::new(100, 1000, 128, 8);
    assert_eq!(g.nr_regions(), 8);
    assert_eq!(g.target_offset(100), 0);
    assert_eq!(g.region_of(100), 0);
    assert_eq!(g.region_of(227), 0);
    assert_eq!(g.region_of(228), 1);
    assert_eq!(g.region_of(1099), 7);
    assert_eq!(g.region_extent(0), (0, 128));
    assert_eq!(g.region_extent(6), (768, 128));
    // The last region is short.
    assert_eq!(g.region_extent(7), (896, 104));
}

// ---------------------------------------------------------------------------
// Insert, get, counts
// ---------------------------------------------------------------------------

#[test]
fn new_hash_is_empty() {
    let mut h = new_hash(64);
    assert_eq!(h.len(), 0);
    assert!(h.is_empty());
    assert_eq!(h.recovering(), 0);
    assert!(!h.contains(0));
    assert!(h.get_mut(12345).is_none());
}

#[test]
fn insert_takes_the_state_from_the_log() {
    let alloc = Alloc::new();
    let log = TestLog::with_nosync(&[7]);
    let mut h = new_hash(64);
    assert!(h.insert(alloc.entry(3), &log).is_none());
    assert!(h.insert(alloc.entry(7), &log).is_none());
    assert_eq!(h.len(), 2);
    assert!(!h.is_empty());
    assert_eq!(entry(&mut h, 3), RegionEntry::new(true));
    assert_eq!(entry(&mut h, 7), RegionEntry::new(false));
    assert_eq!(h.get_mut(3).map(|r| r.key()), Some(3));
    assert_eq!(h.get_mut(7).map(|r| r.key()), Some(7));
    assert!(!h.contains(4));
    assert_eq!(alloc.live(), 2);
}

#[test]
fn insert_of_a_key_already_there_hands_the_entry_back() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    assert!(h.insert(alloc.entry(5), &log).is_none());
    assert_eq!(h.start_write(5, &mut log), Some(WriteRoute::AllLegs));
    // A second allocation for the same key (another caller won the race).
    let back = h.insert(alloc.entry(5), &log).expect("not handed back");
    assert_eq!(back.key(), 5);
    assert_eq!(h.len(), 1);
    // The entry in the hash is untouched.
    assert_eq!(state(&mut h, 5), RegionState::Dirty);
    assert_eq!(entry(&mut h, 5).pending, 1);
    assert_eq!(alloc.live(), 2);
    drop(back);
    assert_eq!(alloc.live(), 1);
    assert_eq!(alloc.take_freed(), [5]);
}

#[test]
fn colliding_keys_share_a_chain() {
    // One bucket: every key in the same chain.
    let alloc = Alloc::new();
    let log = TestLog::with_nosync(&[2, 4]);
    let mut h = new_hash(1);
    for k in 0..50 {
        ensure(&mut h, &alloc, &log, k * 1000);
    }
    assert_eq!(h.len(), 50);
    for k in 0..50 {
        assert_eq!(h.get_mut(k * 1000).map(|r| r.key()), Some(k * 1000));
    }
    assert!(!h.contains(1));
    assert!(!h.contains(49_999));
}

#[test]
fn bucket_counts_other_than_powers_of_two_still_find_every_key() {
    for buckets in [1, 2, 3, 5, 64, 100] {
        let alloc = Alloc::new();
        let log = TestLog::default();
        let mut h = new_hash(buckets);
        for k in 0..300u32 {
            ensure(&mut h, &alloc, &log, k.wrapping_mul(2_654_435_761));
        }
        assert_eq!(h.len(), 300, "{buckets} buckets");
        for k in 0..300u32 {
            assert!(h.contains(k.wrapping_mul(2_654_435_761)), "{buckets}: {k}");
        }
    }
}

#[test]
fn no_buckets_refuses_every_insert() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(0);
    assert!(h.insert(alloc.entry(1), &log).is_some());
    assert_eq!(h.len(), 0);
    assert_eq!(h.start_write(1, &mut log), None);
    assert!(!h.begin_recovery(1));
    assert_eq!(alloc.live(), 0);
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

#[test]
fn start_write_routes_by_state_and_marks_once() {
    let alloc = Alloc::new();
    let mut log = TestLog::with_nosync(&[2]);
    let mut h = new_hash(64);
    ensure(&mut h, &alloc, &log, 1);
    ensure(&mut h, &alloc, &log, 2);
    assert_eq!(h.start_write(1, &mut log), Some(WriteRoute::AllLegs));
    assert_eq!(h.start_write(1, &mut log), Some(WriteRoute::AllLegs));
    assert_eq!(h.start_write(2, &mut log), Some(WriteRoute::DefaultLeg));
    // Only the first write to the clean region is marked.
    assert_eq!(log.take_journal(), [Call::Mark(1)]);
    assert_eq!(state(&mut h, 1), RegionState::Dirty);
    assert_eq!(entry(&mut h, 1).pending, 2);
    assert_eq!(entry(&mut h, 2).pending, 1);
    // No entry: no route, nothing logged.
    assert_eq!(h.start_write(3, &mut log), None);
    assert!(log.take_journal().is_empty());
}

#[test]
fn writes_to_a_recovering_region_are_delayed_in_order() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    copying(&mut h, &alloc, &mut log, 9);
    log.take_journal();
    for id in 0..3 {
        assert_eq!(h.start_write(9, &mut log), Some(WriteRoute::Delayed));
        h.delay(9, Write { key: 9, id });
    }
    assert_eq!(entry(&mut h, 9).pending, 0);
    let ids: Vec<u64> = delayed(&mut h, 9).iter().map(|w| w.id).collect();
    assert_eq!(ids, [0, 1, 2]);
    assert!(log.take_journal().is_empty());
    // Without an entry the write is not kept anywhere.
    h.delay(10, Write { key: 10, id: 3 });
    assert!(!h.contains(10));
}

#[test]
fn end_write_wakes_when_the_region_is_clean_again() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    ensure(&mut h, &alloc, &log, 4);
    h.start_write(4, &mut log);
    h.start_write(4, &mut log);
    assert!(!h.end_write(4));
    assert_eq!(state(&mut h, 4), RegionState::Dirty);
    assert!(h.end_write(4));
    assert_eq!(state(&mut h, 4), RegionState::Clean);
    // Unknown keys do nothing.
    assert!(!h.end_write(5));
}

#[test]
fn end_write_wakes_a_quiescing_region() {
    let alloc = Alloc::new();
    let mut log = TestLog::with_nosync(&[6]);
    let mut h = new_hash(64);
    ensure(&mut h, &alloc, &log, 6);
    assert_eq!(h.start_write(6, &mut log), Some(WriteRoute::DefaultLeg));
    assert!(h.begin_recovery(6));
    let mut out = [0u32; 4];
    assert_eq!(h.take_quiesced(&mut out), 0);
    assert!(h.end_write(6));
    assert_eq!(h.take_quiesced(&mut out), 1);
    assert_eq!(out[0], 6);
}

#[test]
fn mark_nosync_sets_the_log_even_without_an_entry() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    ensure(&mut h, &alloc, &log, 1);
    h.start_write(1, &mut log);
    log.take_journal();
    h.mark_nosync(1, &mut log);
    assert_eq!(state(&mut h, 1), RegionState::NoSync);
    assert_eq!(entry(&mut h, 1).pending, 1);
    h.mark_nosync(2, &mut log);
    assert!(!h.contains(2));
    assert_eq!(
        log.take_journal(),
        [Call::SetSync(1, false), Call::SetSync(2, false)]
    );
    // The write's completion does not make the region clean.
    assert!(!h.end_write(1));
    assert_eq!(state(&mut h, 1), RegionState::NoSync);
}

#[test]
fn mark_nosync_leaves_a_recovering_entry_alone() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    copying(&mut h, &alloc, &mut log, 3);
    let before = entry(&mut h, 3);
    h.mark_nosync(3, &mut log);
    assert_eq!(entry(&mut h, 3), before);
}

// ---------------------------------------------------------------------------
// update_states, the free list, flush failure
// ---------------------------------------------------------------------------

#[test]
fn update_drops_clean_idle_entries_after_the_lock() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(2);
    for k in 0..10 {
        ensure(&mut h, &alloc, &log, k);
    }
    // 0..5 written and completed (clean again), 5..8 still in flight,
    // 8 and 9 never written (clean).
    for k in 0..8 {
        h.start_write(k, &mut log);
    }
    for k in 0..5 {
        assert!(h.end_write(k));
    }
    log.take_journal();

    let mut requeue = Writes::empty();
    let mut freed = FreeList::new();
    assert!(freed.is_empty());
    h.update_states(&mut log, &mut requeue, &mut freed);
    assert!(!freed.is_empty());
    // Unlinked but not freed yet.
    assert_eq!(alloc.live(), 10);
    assert!(alloc.take_freed().is_empty());
    assert_eq!(h.len(), 3);
    drop(freed);
    assert_eq!(alloc.live(), 3);
    assert_eq!(alloc.take_freed(), [0, 1, 2, 3, 4, 8, 9]);
    assert!(requeue.0.is_empty());

    let mut clears: Vec<Call> = log.take_journal();
    clears.sort_by_key(|c| match c {
        Call::Clear(k) => *k,
        _ => u32::MAX,
    });
    let want: Vec<Call> = [0, 1, 2, 3, 4, 8, 9].map(Call::Clear).to_vec();
    assert_eq!(clears, want);
    for k in 5..8 {
        assert_eq!(state(&mut h, k), RegionState::Dirty);
        assert!(log.is_marked(k));
    }
    for k in (0..5).chain(8..10) {
        assert!(!h.contains(k));
    }
    // A second pass has nothing to do.
    assert_eq!(update(&mut h, &mut log, &alloc), (vec![], vec![]));
    assert!(log.take_journal().is_empty());
}

#[test]
fn update_keeps_nosync_and_busy_entries() {
    let alloc = Alloc::new();
    let mut log = TestLog::with_nosync(&[1, 2]);
    let mut h = new_hash(64);
    for k in 1..=3 {
        ensure(&mut h, &alloc, &log, k);
    }
    h.start_write(2, &mut log);
    h.start_write(3, &mut log);
    log.take_journal();
    let (requeue, freed) = update(&mut h, &mut log, &alloc);
    assert!(requeue.is_empty() && freed.is_empty());
    assert!(log.take_journal().is_empty());
    assert_eq!(h.len(), 3);
}

#[test]
fn flush_failure_keeps_idle_regions_out_of_sync() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    ensure(&mut h, &alloc, &log, 1);
    ensure(&mut h, &alloc, &log, 2);
    h.start_write(1, &mut log);
    h.start_write(2, &mut log);
    h.end_write(1);
    log.take_journal();
    h.set_flush_failure();
    let (requeue, freed) = update(&mut h, &mut log, &alloc);
    assert!(requeue.is_empty());
    assert!(freed.is_empty(), "dropped {freed:?}");
    assert_eq!(h.len(), 2);
    // The idle region went out of sync instead of clean; it stays marked.
    assert_eq!(state(&mut h, 1), RegionState::NoSync);
    assert_eq!(log.take_journal(), [Call::SetSync(1, false)]);
    assert!(log.is_marked(1));
    assert!(!log.in_sync(1));
    // The busy one is untouched, and when it ends it goes the same way.
    assert_eq!(state(&mut h, 2), RegionState::Dirty);
    h.end_write(2);
    update(&mut h, &mut log, &alloc);
    assert_eq!(state(&mut h, 2), RegionState::NoSync);
    assert_eq!(log.take_journal(), [Call::SetSync(2, false)]);
    // A later pass has nothing more to do.
    update(&mut h, &mut log, &alloc);
    assert!(log.take_journal().is_empty());
    assert_eq!(h.len(), 2);
}

#[test]
fn flush_failure_lets_a_successful_recovery_end() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    h.set_flush_failure();
    copying(&mut h, &alloc, &mut log, 8);
    h.end_recovery(8, true);
    log.take_journal();
    let (_, freed) = update(&mut h, &mut log, &alloc);
    assert_eq!(freed, [8]);
    assert_eq!(log.take_journal(), [Call::SetSync(8, true), Call::Clear(8)]);
}

#[test]
fn dropping_the_hash_frees_every_entry() {
    let alloc = Alloc::new();
    let log = TestLog::default();
    let mut h = new_hash(4);
    for k in 0..100 {
        ensure(&mut h, &alloc, &log, k);
    }
    assert_eq!(alloc.live(), 100);
    drop(h);
    assert_eq!(alloc.live(), 0);
    assert_eq!(alloc.take_freed(), (0..100).collect::<Vec<_>>());
}

/// One bucket with a chain of `n` entries.
fn one_long_chain(alloc: &Rc<Alloc>, log: &TestLog, n: u32) -> Hash {
    let mut h = new_hash(1);
    for k in 0..n {
        assert!(h.insert(alloc.entry(k), log).is_none());
    }
    h
}

// A chain of 20k entries dropped recursively would overflow the 2 MiB
// stack of a test thread; the hash and the free list unlink iteratively.
const LONG_CHAIN: u32 = 20_000;

#[test]
fn a_long_chain_is_dropped_without_recursion() {
    let alloc = Alloc::new();
    let log = TestLog::default();
    let h = one_long_chain(&alloc, &log, LONG_CHAIN);
    drop(h);
    assert_eq!(alloc.live(), 0);
}

#[test]
fn a_long_free_list_is_dropped_without_recursion() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = one_long_chain(&alloc, &log, LONG_CHAIN);
    let (_, freed) = update(&mut h, &mut log, &alloc);
    assert_eq!(freed.len(), LONG_CHAIN as usize);
    assert_eq!(alloc.live(), 0);
    assert!(h.is_empty());
}

// ---------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------

#[test]
fn begin_recovery_counts_and_needs_an_entry() {
    let alloc = Alloc::new();
    let log = TestLog::with_nosync(&[1, 2]);
    let mut h = new_hash(64);
    assert!(!h.begin_recovery(1));
    assert_eq!(h.recovering(), 0);
    ensure(&mut h, &alloc, &log, 1);
    ensure(&mut h, &alloc, &log, 2);
    assert!(h.begin_recovery(1));
    assert!(h.begin_recovery(2));
    assert_eq!(h.recovering(), 2);
    assert_eq!(entry(&mut h, 1).recovery, Recovery::Quiescing);
    assert_eq!(state(&mut h, 1), RegionState::Recovering);
}

#[test]
fn take_quiesced_takes_only_quiet_chosen_regions_up_to_the_room() {
    let alloc = Alloc::new();
    let mut log = TestLog::with_nosync(&(0..20).collect::<Vec<_>>());
    let mut h = new_hash(4);
    for k in 0..20 {
        ensure(&mut h, &alloc, &log, k);
    }
    // 0..10 chosen, 0..3 of them with a write in flight; 10.. not chosen.
    for k in 0..3 {
        h.start_write(k, &mut log);
    }
    for k in 0..10 {
        assert!(h.begin_recovery(k));
    }
    let mut taken = Vec::new();
    let mut out = [0u32; 3];
    assert_eq!(h.take_quiesced(&mut out[..0]), 0);
    loop {
        let n = h.take_quiesced(&mut out);
        taken.extend_from_slice(&out[..n]);
        if n < out.len() {
            break;
        }
    }
    taken.sort_unstable();
    assert_eq!(taken, (3..10).collect::<Vec<_>>());
    for k in 3..10 {
        assert_eq!(entry(&mut h, k).recovery, Recovery::Copying);
    }
    for k in 0..3 {
        assert_eq!(entry(&mut h, k).recovery, Recovery::Quiescing);
    }
    // Once their writes end, the rest follow.
    for k in 0..3 {
        assert!(h.end_write(k));
    }
    let mut out = [0u32; 16];
    let n = h.take_quiesced(&mut out);
    let mut rest = out[..n].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, [0, 1, 2]);
    assert_eq!(h.take_quiesced(&mut out), 0);
    assert_eq!(h.recovering(), 10);
}

#[test]
fn end_recovery_ok_releases_writes_and_drops_the_entry() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    copying(&mut h, &alloc, &mut log, 5);
    log.mark_region(5);
    for id in 0..2 {
        assert_eq!(h.start_write(5, &mut log), Some(WriteRoute::Delayed));
        h.delay(5, Write { key: 5, id });
    }
    h.end_recovery(5, true);
    assert_eq!(entry(&mut h, 5).recovery, Recovery::Done { ok: true });
    log.take_journal();
    let (requeue, freed) = update(&mut h, &mut log, &alloc);
    assert_eq!(requeue, [Write { key: 5, id: 0 }, Write { key: 5, id: 1 }]);
    assert_eq!(freed, [5]);
    assert_eq!(log.take_journal(), [Call::SetSync(5, true), Call::Clear(5)]);
    assert!(log.in_sync(5) && !log.is_marked(5));
    assert_eq!(h.recovering(), 0);
    assert_eq!(h.len(), 0);
}

#[test]
fn end_recovery_failed_leaves_the_region_out_of_sync() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    copying(&mut h, &alloc, &mut log, 5);
    h.start_write(5, &mut log);
    h.delay(5, Write { key: 5, id: 7 });
    h.end_recovery(5, false);
    log.take_journal();
    let (requeue, freed) = update(&mut h, &mut log, &alloc);
    assert_eq!(requeue, [Write { key: 5, id: 7 }]);
    // Nothing in flight: the entry goes; the log keeps the region out of
    // sync for a later recovery.
    assert_eq!(freed, [5]);
    assert_eq!(log.take_journal(), [Call::SetSync(5, false)]);
    assert!(!log.in_sync(5));
    assert_eq!(h.recovering(), 0);
    // The released write, written again, takes the default leg.
    ensure(&mut h, &alloc, &log, 5);
    assert_eq!(h.start_write(5, &mut log), Some(WriteRoute::DefaultLeg));
}

#[test]
fn end_recovery_of_a_region_not_copying_is_ignored() {
    let alloc = Alloc::new();
    let mut log = TestLog::with_nosync(&[1]);
    let mut h = new_hash(64);
    h.end_recovery(1, true);
    ensure(&mut h, &alloc, &log, 1);
    h.start_write(1, &mut log);
    h.begin_recovery(1);
    h.end_recovery(1, true);
    assert_eq!(entry(&mut h, 1).recovery, Recovery::Quiescing);
    let (_, freed) = update(&mut h, &mut log, &alloc);
    assert!(freed.is_empty());
    assert_eq!(h.recovering(), 1);
}

#[test]
fn abandon_quiescing_gives_up_only_regions_not_copying() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(2);
    copying(&mut h, &alloc, &mut log, 1);
    // 2 and 3 chosen but held by a write each; 3 also holds delayed writes.
    for k in [2, 3] {
        log.set_region_sync(k, false);
        ensure(&mut h, &alloc, &log, k);
        h.start_write(k, &mut log);
        h.begin_recovery(k);
    }
    h.start_write(3, &mut log);
    h.delay(3, Write { key: 3, id: 1 });
    h.start_write(1, &mut log);
    h.delay(1, Write { key: 1, id: 2 });
    assert_eq!(h.recovering(), 3);
    log.take_journal();

    let mut released = Writes::empty();
    assert_eq!(h.abandon_quiescing(&mut log, &mut released), 2);
    assert_eq!(released.0, [Write { key: 3, id: 1 }]);
    assert_eq!(h.recovering(), 1);
    let mut calls = log.take_journal();
    calls.sort_by_key(|c| match c {
        Call::SetSync(k, _) => *k,
        _ => u32::MAX,
    });
    assert_eq!(calls, [Call::SetSync(2, false), Call::SetSync(3, false)]);
    for k in [2, 3] {
        assert_eq!(state(&mut h, k), RegionState::NoSync);
        assert_eq!(entry(&mut h, k).recovery, Recovery::Idle);
        assert!(delayed(&mut h, k).is_empty());
    }
    // The running copy keeps its writes.
    assert_eq!(entry(&mut h, 1).recovery, Recovery::Copying);
    assert_eq!(delayed(&mut h, 1), [Write { key: 1, id: 2 }]);
    // Nothing more to give up.
    assert_eq!(h.abandon_quiescing(&mut log, &mut released), 0);
    // An abandoned region is out of sync: its last write ends without a
    // wake, and it can be chosen again.
    assert!(!h.end_write(2));
    assert!(h.begin_recovery(2));
    assert_eq!(h.recovering(), 2);
}

// ---------------------------------------------------------------------------
// Randomized model test
// ---------------------------------------------------------------------------

/// The reference: a plain map from region to its state and held writes,
/// and the log bits the hash is expected to have set.
#[derive(Default)]
struct Model {
    regions: BTreeMap<u32, (RegionEntry, Vec<Write>)>,
    /// Expected log: regions out of sync, regions marked.
    nosync: BTreeMap<u32, ()>,
    marked: BTreeMap<u32, ()>,
    flush_failure: bool,
}

impl Model {
    fn recovering(&self) -> u32 {
        self.regions
            .values()
            .filter(|(e, _)| e.recovery != Recovery::Idle)
            .count() as u32
    }

    fn set_sync(&mut self, key: u32, in_sync: bool) {
        if in_sync {
            self.nosync.remove(&key);
        } else {
            self.nosync.insert(key, ());
        }
    }

    fn in_sync(&self, key: u32) -> bool {
        !self.nosync.contains_key(&key)
    }

    /// Whether `key` has no entry, or one not being recovered.
    fn not_recovering(&self, key: u32) -> bool {
        match self.regions.get(&key) {
            None => true,
            Some((e, _)) => e.recovery == Recovery::Idle,
        }
    }

    fn insert(&mut self, key: u32) {
        let e = RegionEntry {
            state: if self.in_sync(key) {
                RegionState::Clean
            } else {
                RegionState::NoSync
            },
            pending: 0,
            recovery: Recovery::Idle,
            scrub: false,
        };
        self.regions.insert(key, (e, Vec::new()));
    }

    fn start_write(&mut self, w: Write) -> WriteRoute {
        let marked = &mut self.marked;
        let (e, held) = self.regions.get_mut(&w.key).expect("write without entry");
        match e.state {
            RegionState::Clean => {
                marked.insert(w.key, ());
                e.state = RegionState::Dirty;
                e.pending += 1;
                WriteRoute::AllLegs
            }
            RegionState::Dirty => {
                e.pending += 1;
                WriteRoute::AllLegs
            }
            RegionState::NoSync => {
                e.pending += 1;
                WriteRoute::DefaultLeg
            }
            RegionState::Recovering => {
                held.push(w);
                WriteRoute::Delayed
            }
        }
    }

    fn mark_nosync(&mut self, key: u32) {
        self.set_sync(key, false);
        if let Some((e, _)) = self.regions.get_mut(&key) {
            if e.state != RegionState::Recovering {
                e.state = RegionState::NoSync;
            }
        }
    }

    fn end_write(&mut self, key: u32) -> bool {
        let (e, _) = self.regions.get_mut(&key).expect("write without entry");
        e.pending -= 1;
        if e.pending > 0 {
            return false;
        }
        match e.state {
            RegionState::Dirty => {
                e.state = RegionState::Clean;
                true
            }
            RegionState::Recovering => e.recovery == Recovery::Quiescing,
            _ => false,
        }
    }

    /// Regions whose copy may start (recovery's, not a scrub's).
    fn quiet(&self) -> Vec<u32> {
        self.regions
            .iter()
            .filter(|(_, (e, _))| e.recovery == Recovery::Quiescing && e.pending == 0 && !e.scrub)
            .map(|(k, _)| *k)
            .collect()
    }

    /// `update_states`: returns the writes released (by region, in order)
    /// and the regions dropped.
    fn update(&mut self) -> (BTreeMap<u32, Vec<Write>>, Vec<u32>) {
        let mut released = BTreeMap::new();
        let mut dropped = Vec::new();
        let keys: Vec<u32> = self.regions.keys().copied().collect();
        for key in keys {
            let (e, held) = self.regions.get_mut(&key).expect("key");
            let mut drop_it = false;
            let mut sync = None;
            let mut clear = false;
            if e.state == RegionState::Clean && e.pending == 0 {
                if self.flush_failure {
                    e.state = RegionState::NoSync;
                    sync = Some(false);
                } else {
                    clear = true;
                    drop_it = true;
                }
            } else if let Recovery::Done { ok } = e.recovery {
                e.recovery = Recovery::Idle;
                e.scrub = false;
                e.state = if ok {
                    RegionState::Clean
                } else {
                    RegionState::NoSync
                };
                sync = Some(ok);
                clear = ok;
                if !held.is_empty() {
                    released.insert(key, std::mem::take(held));
                }
                drop_it = e.pending == 0;
            }
            if let Some(s) = sync {
                self.set_sync(key, s);
            }
            if clear {
                self.marked.remove(&key);
            }
            if drop_it {
                self.regions.remove(&key);
                dropped.push(key);
            }
        }
        (released, dropped)
    }
}

#[derive(Default, Debug)]
struct Stats {
    inserts: u64,
    races: u64,
    writes: u64,
    delayed: u64,
    failed: u64,
    chosen: u64,
    copies: u64,
    ended_ok: u64,
    ended_fail: u64,
    dropped: u64,
    requeued: u64,
    abandoned: u64,
    scrubs: u64,
    scrub_compares: u64,
    scrub_ends_nosync: u64,
    max_entries: u32,
}

struct Run {
    rng: Rng,
    alloc: Rc<Alloc>,
    log: TestLog,
    hash: Hash,
    model: Model,
    /// Keys of the counted writes in flight.
    inflight: Vec<u32>,
    /// Released writes to be issued again (kmirrord's write queue).
    queued: Vec<Write>,
    next_id: u64,
    nr_keys: u32,
    stats: Stats,
}

impl Run {
    fn new(seed: u64, buckets: usize, nr_keys: u32) -> Self {
        Self {
            rng: Rng::new(seed),
            alloc: Alloc::new(),
            log: TestLog::default(),
            hash: new_hash(buckets),
            model: Model::default(),
            inflight: Vec::new(),
            queued: Vec::new(),
            next_id: 0,
            nr_keys,
            stats: Stats::default(),
        }
    }

    /// A region; spread out so that neighbours and far keys both occur.
    fn key(&mut self) -> u32 {
        let k = self.rng.below(u64::from(self.nr_keys)) as u32;
        if k % 2 == 0 {
            k
        } else {
            k.wrapping_mul(0x0100_0193)
        }
    }

    /// `ensure_region`, sometimes losing the race to another allocation.
    fn ensure(&mut self, key: u32) {
        if self.hash.contains(key) {
            assert!(self.model.regions.contains_key(&key), "extra entry {key}");
            return;
        }
        assert!(!self.model.regions.contains_key(&key), "lost entry {key}");
        let mine = self.alloc.entry(key);
        if self.rng.chance(20) {
            // Someone else inserted the key between the check and ours.
            assert!(self.hash.insert(self.alloc.entry(key), &self.log).is_none());
            let back = self.hash.insert(mine, &self.log).expect("not handed back");
            assert_eq!(back.key(), key);
            drop(back);
            assert_eq!(self.alloc.take_freed(), [key]);
            self.stats.races += 1;
        } else {
            assert!(self.hash.insert(mine, &self.log).is_none());
        }
        self.model.insert(key);
        self.stats.inserts += 1;
    }

    fn write(&mut self, w: Write) {
        self.ensure(w.key);
        let route = self.hash.start_write(w.key, &mut self.log);
        let want = self.model.start_write(w);
        assert_eq!(route, Some(want), "write {w:?}");
        match want {
            WriteRoute::Delayed => {
                self.hash.delay(w.key, w);
                self.stats.delayed += 1;
            }
            _ => {
                self.inflight.push(w.key);
                self.stats.writes += 1;
            }
        }
    }

    fn step(&mut self, step: u64) {
        match self.rng.below(100) {
            // A new write, or one released from a recovery.
            0..=27 => {
                let w = if !self.queued.is_empty() && self.rng.chance(2) {
                    self.queued.remove(0)
                } else {
                    self.next_id += 1;
                    Write {
                        key: self.key(),
                        id: self.next_id,
                    }
                };
                self.write(w);
            }
            // A write completes, after failing on some leg now and then.
            28..=52 => {
                if self.inflight.is_empty() {
                    return;
                }
                let i = self.rng.below(self.inflight.len() as u64) as usize;
                let key = self.inflight.swap_remove(i);
                if self.rng.chance(15) {
                    self.hash.mark_nosync(key, &mut self.log);
                    self.model.mark_nosync(key);
                    self.stats.failed += 1;
                }
                let wake = self.hash.end_write(key);
                assert_eq!(wake, self.model.end_write(key), "step {step}: end {key}");
            }
            // A check or repair takes an in-sync region, or starts the
            // compare of one whose writes have ended, or ends a compare.
            58..=60 => self.scrub_step(step),
            // The log's resync scan offers an out-of-sync region.
            53..=57 => {
                let candidates: Vec<u32> = self
                    .model
                    .nosync
                    .keys()
                    .copied()
                    .filter(|&k| self.model.not_recovering(k))
                    .collect();
                if candidates.is_empty() {
                    return;
                }
                let key = candidates[self.rng.below(candidates.len() as u64) as usize];
                self.ensure(key);
                assert!(self.hash.begin_recovery(key));
                let (e, _) = self.model.regions.get_mut(&key).expect("key");
                e.state = RegionState::Recovering;
                e.recovery = Recovery::Quiescing;
                self.stats.chosen += 1;
            }
            // Copies of quiet regions start.
            61..=68 => {
                let mut out = [u32::MAX; 4];
                let room = self.rng.below(5) as usize;
                let n = self.hash.take_quiesced(&mut out[..room]);
                let quiet = self.model.quiet();
                assert_eq!(n, room.min(quiet.len()), "step {step}: {quiet:?}");
                let mut taken = out[..n].to_vec();
                taken.sort_unstable();
                taken.dedup();
                assert_eq!(taken.len(), n, "step {step}: twice in {out:?}");
                for k in taken {
                    assert!(quiet.contains(&k), "step {step}: {k} not quiet");
                    let (e, _) = self.model.regions.get_mut(&k).expect("key");
                    e.recovery = Recovery::Copying;
                    self.stats.copies += 1;
                }
            }
            // A copy ends (or a stray end for a region not copying).
            69..=75 => {
                let copying: Vec<u32> = self
                    .model
                    .regions
                    .iter()
                    .filter(|(_, (e, _))| e.recovery == Recovery::Copying)
                    .map(|(k, _)| *k)
                    .collect();
                let ok = !self.rng.chance(4);
                if copying.is_empty() || self.rng.chance(10) {
                    let key = self.key();
                    let copying_key = self
                        .model
                        .regions
                        .get(&key)
                        .is_some_and(|(e, _)| e.recovery == Recovery::Copying);
                    if !copying_key {
                        self.hash.end_recovery(key, ok);
                    }
                    return;
                }
                let key = copying[self.rng.below(copying.len() as u64) as usize];
                self.hash.end_recovery(key, ok);
                let (e, _) = self.model.regions.get_mut(&key).expect("key");
                e.recovery = Recovery::Done { ok };
                if ok {
                    self.stats.ended_ok += 1;
                } else {
                    self.stats.ended_fail += 1;
                }
            }
            // kmirrord's bookkeeping pass.
            76..=95 => self.update(step),
            // Suspend, now and then.
            96 if self.rng.chance(4) => {
                let mut released = Writes::empty();
                let n = self.hash.abandon_quiescing(&mut self.log, &mut released);
                let mut want_n = 0;
                let mut want_released = BTreeMap::new();
                let keys: Vec<u32> = self.model.regions.keys().copied().collect();
                for key in keys {
                    let (e, held) = self.model.regions.get_mut(&key).expect("key");
                    if e.recovery == Recovery::Quiescing {
                        e.recovery = Recovery::Idle;
                        let scrub = std::mem::take(&mut e.scrub);
                        e.state = if !scrub {
                            RegionState::NoSync
                        } else if e.pending != 0 {
                            RegionState::Dirty
                        } else {
                            RegionState::Clean
                        };
                        if !held.is_empty() {
                            want_released.insert(key, std::mem::take(held));
                        }
                        if !scrub {
                            self.model.set_sync(key, false);
                        }
                        want_n += 1;
                    }
                }
                assert_eq!(n, want_n, "step {step}");
                self.stats.abandoned += u64::from(n);
                self.check_released(&released.0, &want_released, step);
                self.queued.extend(released.0);
            }
            // A flush of the legs failed (rarely, and only in some runs).
            97..=99 if self.nr_keys % 3 == 0 && self.rng.chance(50) => {
                self.hash.set_flush_failure();
                self.model.flush_failure = true;
            }
            _ => {}
        }
    }

    fn scrub_step(&mut self, step: u64) {
        match self.rng.below(3) {
            // Take a region: refused unless in sync, clean or dirty, and not
            // being recovered or scrubbed.
            0 => {
                let key = self.key();
                self.ensure(key);
                let (e, _) = self.model.regions.get_mut(&key).expect("key");
                let want = e.recovery == Recovery::Idle
                    && matches!(e.state, RegionState::Clean | RegionState::Dirty);
                assert_eq!(
                    self.hash.begin_scrub(key),
                    want,
                    "step {step}: scrub {key} {e:?}"
                );
                if want {
                    e.state = RegionState::Recovering;
                    e.recovery = Recovery::Quiescing;
                    e.scrub = true;
                    self.stats.scrubs += 1;
                }
            }
            // Start compares: only scrub regions without writes in flight.
            1 => {
                let keys: Vec<u32> = self.model.regions.keys().copied().collect();
                for key in keys {
                    let (e, _) = self.model.regions.get_mut(&key).expect("key");
                    let want = e.scrub && e.recovery == Recovery::Quiescing && e.pending == 0;
                    assert_eq!(
                        self.hash.try_start_scrub(key),
                        want,
                        "step {step}: {key} {e:?}"
                    );
                    if want {
                        e.recovery = Recovery::Copying;
                        self.stats.scrub_compares += 1;
                    }
                }
            }
            // A compare ends; a write that failed before it started keeps
            // the region out of sync.
            _ => {
                let comparing: Vec<u32> = self
                    .model
                    .regions
                    .iter()
                    .filter(|(_, (e, _))| e.scrub && e.recovery == Recovery::Copying)
                    .map(|(k, _)| *k)
                    .collect();
                if comparing.is_empty() {
                    return;
                }
                let key = comparing[self.rng.below(comparing.len() as u64) as usize];
                let ok = !self.rng.chance(8);
                self.hash.end_scrub(key, ok, &self.log);
                let in_sync = self.model.in_sync(key);
                let (e, _) = self.model.regions.get_mut(&key).expect("key");
                e.recovery = Recovery::Done { ok: ok && in_sync };
                if !in_sync {
                    self.stats.scrub_ends_nosync += 1;
                }
            }
        }
    }

    fn update(&mut self, step: u64) {
        let live = self.alloc.live();
        let mut requeue = Writes::empty();
        let mut freed = FreeList::new();
        self.hash
            .update_states(&mut self.log, &mut requeue, &mut freed);
        assert_eq!(self.alloc.live(), live, "step {step}: freed under the lock");
        drop(freed);
        let (want_released, mut want_dropped) = self.model.update();
        want_dropped.sort_unstable();
        assert_eq!(self.alloc.take_freed(), want_dropped, "step {step}");
        self.stats.dropped += want_dropped.len() as u64;
        self.stats.requeued += requeue.0.len() as u64;
        self.check_released(&requeue.0, &want_released, step);
        self.queued.extend(requeue.0);
    }

    /// The writes released are those expected, each region's in order.
    fn check_released(&self, got: &[Write], want: &BTreeMap<u32, Vec<Write>>, step: u64) {
        let mut by_key: BTreeMap<u32, Vec<Write>> = BTreeMap::new();
        for w in got {
            by_key.entry(w.key).or_default().push(*w);
        }
        assert_eq!(&by_key, want, "step {step}: released writes");
    }

    fn check(&mut self, step: u64) {
        let m = &self.model;
        assert_eq!(self.hash.len() as usize, m.regions.len(), "step {step}");
        assert_eq!(self.hash.is_empty(), m.regions.is_empty(), "step {step}");
        assert_eq!(self.hash.recovering(), m.recovering(), "step {step}");
        assert_eq!(self.alloc.live(), m.regions.len(), "step {step}: leak");
        for (&key, (e, held)) in &m.regions {
            let r = self.hash.get_mut(key).expect("entry missing");
            assert_eq!(r.key(), key);
            assert_eq!(r.entry(), e, "step {step}: region {key}");
            assert_eq!(&r.delayed().0, held, "step {step}: held writes of {key}");
        }
        // Keys without an entry have none in the hash either.
        for _ in 0..4 {
            let key = self.key();
            assert_eq!(
                self.hash.contains(key),
                self.model.regions.contains_key(&key),
                "step {step}: {key}"
            );
        }
        assert_eq!(self.log.nosync, self.model.nosync, "step {step}: sync");
        assert_eq!(self.log.marked, self.model.marked, "step {step}: marks");
        self.log.journal.clear();
        self.stats.max_entries = self.stats.max_entries.max(self.hash.len());
    }

    /// Completes every write and copy (successfully) and runs kmirrord's
    /// passes until no entry is left and every region is in sync and clean.
    fn settle(&mut self) {
        for pass in 0..1000 {
            let step = u64::MAX - pass;
            while let Some(key) = self.inflight.pop() {
                let wake = self.hash.end_write(key);
                assert_eq!(wake, self.model.end_write(key));
            }
            let keys: Vec<u32> = self.model.regions.keys().copied().collect();
            for key in keys {
                let (e, _) = self.model.regions.get_mut(&key).expect("key");
                if e.recovery == Recovery::Copying {
                    e.recovery = Recovery::Done { ok: true };
                    self.hash.end_recovery(key, true);
                }
            }
            self.update(step);
            self.check(step);
            for w in std::mem::take(&mut self.queued) {
                self.write(w);
            }
            let nosync: Vec<u32> = self.model.nosync.keys().copied().collect();
            for key in nosync {
                if self.model.not_recovering(key) {
                    self.ensure(key);
                    assert!(self.hash.begin_recovery(key));
                    let (e, _) = self.model.regions.get_mut(&key).expect("key");
                    e.state = RegionState::Recovering;
                    e.recovery = Recovery::Quiescing;
                }
            }
            let keys: Vec<u32> = self.model.regions.keys().copied().collect();
            for key in keys {
                let (e, _) = self.model.regions.get_mut(&key).expect("key");
                if e.scrub && e.recovery == Recovery::Quiescing && e.pending == 0 {
                    assert!(self.hash.try_start_scrub(key));
                    e.recovery = Recovery::Copying;
                }
            }
            let mut out = [0u32; 64];
            loop {
                let n = self.hash.take_quiesced(&mut out);
                for &k in &out[..n] {
                    let (e, _) = self.model.regions.get_mut(&k).expect("key");
                    e.recovery = Recovery::Copying;
                }
                if n < out.len() {
                    break;
                }
            }
            self.check(step);
            // Even after a flush failure, regions out of sync are
            // recovered, and a successful recovery drops the entry.
            if self.inflight.is_empty() && self.queued.is_empty() && self.hash.is_empty() {
                assert!(self.model.nosync.is_empty());
                assert!(self.model.marked.is_empty());
                return;
            }
        }
        panic!(
            "never settled: {} entries, {} queued",
            self.hash.len(),
            self.queued.len()
        );
    }
}

fn run_model(seed: u64, steps: u64, buckets: usize, nr_keys: u32) -> Stats {
    let mut run = Run::new(seed, buckets, nr_keys);
    run.check(0);
    for step in 1..=steps {
        run.step(step);
        run.check(step);
    }
    run.settle();
    drop(run.hash);
    assert_eq!(run.alloc.live(), 0, "entries leaked");
    run.stats
}

#[test]
fn random_model_few_buckets_long_chains() {
    let s = run_model(0x5EED_0001_D00D_F00D, 30_000, 4, 200);
    assert!(s.inserts > 1000, "{s:?}");
    assert!(s.races > 50, "{s:?}");
    assert!(s.writes > 5_000, "{s:?}");
    assert!(s.delayed > 200, "{s:?}");
    assert!(s.failed > 200, "{s:?}");
    assert!(s.chosen > 200, "{s:?}");
    assert!(s.copies > 200, "{s:?}");
    assert!(s.ended_ok > 100, "{s:?}");
    assert!(s.ended_fail > 30, "{s:?}");
    assert!(s.dropped > 1000, "{s:?}");
    assert!(s.requeued > 100, "{s:?}");
    assert!(s.abandoned > 10, "{s:?}");
    assert!(s.scrubs > 100, "{s:?}");
    assert!(s.scrub_compares > 50, "{s:?}");
    assert!(s.scrub_ends_nosync >= 1, "{s:?}");
    assert!(s.max_entries > 20, "{s:?}");
}

#[test]
fn random_model_other_seeds_and_sizes() {
    let shapes: [(usize, u32); 8] = [
        (1, 50),
        (2, 300),
        (3, 99),
        (64, 1000),
        (8, 12),
        (128, 5000),
        (1, 1),
        (16, 240),
    ];
    for (i, &(buckets, nr_keys)) in shapes.iter().enumerate() {
        let seed = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        run_model(seed, 8_000, buckets, nr_keys);
    }
}

#[test]
fn random_model_with_flush_failures() {
    // nr_keys a multiple of 3: the flush failure step is enabled.
    for seed in 1..=4u64 {
        let s = run_model(seed.wrapping_mul(0xD134_2543_DE82_EF95), 8_000, 4, 150);
        assert!(s.dropped > 0, "{s:?}");
    }
}

// ---------------------------------------------------------------------------
// Check and repair: in-sync regions quiesced like recoveries, compared
// instead of copied
// ---------------------------------------------------------------------------

#[test]
fn scrub_quiesces_a_dirty_region_and_recovery_never_takes_it() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    ensure(&mut h, &alloc, &log, 3);
    assert_eq!(h.start_write(3, &mut log), Some(WriteRoute::AllLegs));
    assert!(h.begin_scrub(3));
    assert_eq!(h.recovering(), 1);
    // A second scrub or a recovery of the same region is refused.
    assert!(!h.begin_scrub(3));
    // New writes wait; the one in flight must end first.
    assert_eq!(h.start_write(3, &mut log), Some(WriteRoute::Delayed));
    h.delay(3, Write { key: 3, id: 1 });
    assert!(!h.try_start_scrub(3));
    assert!(h.end_write(3));
    // Recovery's collector leaves a scrub's region alone.
    let mut out = [0u32; 4];
    assert_eq!(h.take_quiesced(&mut out), 0);
    assert!(h.try_start_scrub(3));
    assert!(!h.try_start_scrub(3), "started twice");
    h.end_recovery(3, true);
    log.take_journal();
    let (requeued, freed) = update(&mut h, &mut log, &alloc);
    assert_eq!(requeued.iter().map(|w| w.id).collect::<Vec<_>>(), [1]);
    assert_eq!(freed, [3]);
    assert_eq!(h.recovering(), 0);
    // The region stays in sync and is cleared in the log.
    assert_eq!(log.take_journal(), [Call::SetSync(3, true), Call::Clear(3)]);
    assert!(log.in_sync(3));
}

#[test]
fn scrub_refuses_regions_out_of_sync_or_under_recovery_or_without_entry() {
    let alloc = Alloc::new();
    let mut log = TestLog::with_nosync(&[1]);
    let mut h = new_hash(64);
    assert!(!h.begin_scrub(7), "no entry");
    ensure(&mut h, &alloc, &log, 1);
    assert!(!h.begin_scrub(1), "out of sync: resync owns it");
    copying(&mut h, &alloc, &mut log, 2);
    assert!(!h.begin_scrub(2));
    assert!(!h.try_start_scrub(2), "a recovery is not a scrub");
    assert_eq!(h.recovering(), 1);
}

#[test]
fn a_suspend_gives_a_scrub_region_back_in_sync() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    ensure(&mut h, &alloc, &log, 5);
    ensure(&mut h, &alloc, &log, 6);
    h.start_write(5, &mut log);
    assert!(h.begin_scrub(5));
    assert!(h.begin_scrub(6));
    h.start_write(6, &mut log);
    h.delay(6, Write { key: 6, id: 2 });
    log.take_journal();
    let mut released = Writes::empty();
    assert_eq!(h.abandon_quiescing(&mut log, &mut released), 2);
    assert_eq!(h.recovering(), 0);
    // Nothing went out of sync in the log; the delayed write is released.
    assert!(log.take_journal().is_empty());
    assert_eq!(released.0.iter().map(|w| w.id).collect::<Vec<_>>(), [2]);
    // The region with a write in flight is dirty again, the other clean,
    // and writes go to every leg.
    assert_eq!(state(&mut h, 5), RegionState::Dirty);
    assert_eq!(state(&mut h, 6), RegionState::Clean);
    assert_eq!(h.start_write(6, &mut log), Some(WriteRoute::AllLegs));
    assert!(!entry(&mut h, 5).scrub);
    // A scrub of it may start again after the resume.
    assert!(h.begin_scrub(5));
}

#[test]
fn a_failed_compare_leaves_the_region_out_of_sync() {
    let alloc = Alloc::new();
    let mut log = TestLog::default();
    let mut h = new_hash(64);
    ensure(&mut h, &alloc, &log, 8);
    assert!(h.begin_scrub(8));
    assert!(h.try_start_scrub(8));
    h.end_recovery(8, false);
    log.take_journal();
    let (_, freed) = update(&mut h, &mut log, &alloc);
    assert_eq!(freed, [8]);
    assert_eq!(log.take_journal(), [Call::SetSync(8, false)]);
    assert!(!log.in_sync(8));
}
