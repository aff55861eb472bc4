// SPDX-License-Identifier: GPL-2.0

//! dm-mirror-rs: the device-mapper "mirror" target (dm-raid1) in Rust.
//!
//! A mirror keeps 2 to 9 legs identical. Reads of in-sync regions are spread
//! over the legs by load and locality (`read_policy.rs`), others go to the
//! default leg; writes, flushes and discards are queued to kmirrord, which
//! sends each one to every leg with a single dm-io request. The table and status lines are those of
//! the C target, so dmsetup, dmraid and LVM drive this module unchanged.
//!
//! This file registers the target. The files, as a reader of the C target
//! meets them:
//! - `mirror/`: dm-raid1.c, one file per section (see `mirror/mod.rs`);
//! - `region_hash.rs` (+ `region_state.rs`): dm-region-hash.c;
//! - `dirty_log.rs` (+ `log_bits.rs`, `disk_log_format.rs`): dm-log.c;
//! - `mempool.rs`: region allocation (GFP_ATOMIC from the pool, else a
//!   blocking GFP_NOIO kmalloc) and its debugfs test knobs;
//! - `table.rs`: table syntax and status text (kernel-free);
//! - `read_policy.rs`: where a read of an in-sync region goes (kernel-free);
//! - `scrub.rs`: check and repair, recovery rates (kernel-free; the kernel
//!   side is `mirror/scrub.rs`);
//! - `binding/`: the device-mapper abstractions, all `unsafe` code.
//!
//! `docs/architecture.md` maps every C function to its Rust counterpart.

// `pin_init!` of `MirrorSet` expands one macro level per field.
#![recursion_limit = "256"]

/// The unsafe binding layer: the API the target is written against.
mod binding;
mod dirty_log;
/// The disk log's on-disk format and resume rules (kernel-free, host-tested
/// and fuzzed).
#[allow(unreachable_pub, dead_code)]
mod disk_log_format;
/// Region bitsets and the core log's logic, shared with the host test crate.
#[allow(unreachable_pub, dead_code)]
mod log_bits;
mod mempool;
mod mirror;
/// The read policies and the balancing rule, shared with the host test
/// crate.
#[allow(unreachable_pub)]
mod read_policy;
/// The region hash, generic over its kernel parts (instantiated in
/// `mirror/mod.rs`), shared with the host test crate.
#[allow(unreachable_pub, dead_code)]
mod region_hash;
/// The per-region state machine, shared with the host test crate.
#[allow(unreachable_pub)]
mod region_state;
/// Check and repair, and the pace of background work: messages, the pass,
/// the vote and the pacer, shared with the host test crate.
#[allow(unreachable_pub, dead_code)]
mod scrub;
/// Table arguments and status text, shared with the host test crate.
#[allow(unreachable_pub, dead_code)]
mod table;

use binding::dm::Registration;
use binding::gaps::debugfs::{DebugDir, DebugFile};
use kernel::c_str;
use kernel::prelude::*;
use mempool::PoolSelftest;

pub(crate) use mirror::{ErrorKind, MirrorSet};
pub(crate) use table::MAX_LEGS;

binding::compat::module_one_author! {
    type: DmMirrorModule,
    name: "dm_mirror_rs",
    author: "dm-mirror-rs developers",
    description: "device-mapper mirror target (dm-raid1) in Rust",
    license: "GPL",
}

/// Version reported to userspace, that of the C target of the same kernel:
/// 1.15.0 where device-mapper sends atomic writes to targets (7.3), which
/// the mirror takes ([`MirrorSet`]'s `ATOMIC_WRITES`), else 1.14.0 (6.12).
/// lvm2 and dmraid want at least 1.14.0.
pub(crate) const VERSION: [u32; 3] = if binding::dm::ATOMIC_WRITES {
    [1, 15, 0]
} else {
    [1, 14, 0]
};

struct DmMirrorModule {
    _reg: Registration<MirrorSet>,
    // Test knobs: dropped after the registration, the file before its
    // directory.
    _pool_selftest: Option<DebugFile<PoolSelftest>>,
    _debug_dir: Option<DebugDir>,
}

impl Drop for DmMirrorModule {
    fn drop(&mut self) {
        // No mirror is left: destroy the kmirrord queues that were dropped
        // inside a work item (e.g. by a deferred remove).
        binding::gaps::wq::reap_deferred();
    }
}

impl kernel::Module for DmMirrorModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // Test knobs under /sys/kernel/debug/dm_mirror_rs (see mempool.rs);
        // the module works without debugfs.
        let debug_dir = DebugDir::new(c_str!("dm_mirror_rs"));
        mempool::FAIL_REGION_ATOMIC.register(c_str!("fail_region_atomic"), debug_dir.as_ref());
        let pool_selftest = match debug_dir.as_ref() {
            Some(dir) => Some(DebugFile::new(
                c_str!("pool_selftest"),
                dir,
                PoolSelftest::new()?,
            )?),
            None => None,
        };
        let reg = Registration::<MirrorSet>::new(c_str!("mirror"), VERSION, module)?;
        pr_info!(
            "dm-mirror-rs {}.{}.{} registered as \"mirror\"\n",
            VERSION[0],
            VERSION[1],
            VERSION[2]
        );
        Ok(Self {
            _reg: reg,
            _pool_selftest: pool_selftest,
            _debug_dir: debug_dir,
        })
    }
}
