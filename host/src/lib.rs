#![no_std]
//! Host build of the kernel-independent parts of dm-mirror-rs.
//!
//! `table.rs` is shared verbatim with the kernel module; this crate exists so
//! that it can be unit tested with `cargo test` on the build machine.

/// Parsing and formatting of the mirror target's table (shared with the
/// kernel module).
#[path = "../../table.rs"]
pub mod table;

/// The status and message text buffer of the device-mapper binding (shared
/// with the kernel module).
#[path = "../../binding/bounded_writer.rs"]
pub mod bounded_writer;

/// The per-region state machine of the region hash (shared with the kernel
/// module).
#[path = "../../region_state.rs"]
pub mod region_state;

/// The region hash, generic over its entry box, delayed-write list and
/// bucket array (shared with the kernel module).
#[path = "../../region_hash.rs"]
pub mod region_hash;

/// Region bitsets and the core dirty log's logic (shared with the kernel
/// module).
#[path = "../../log_bits.rs"]
pub mod log_bits;

/// The disk dirty log's on-disk format and resume/flush rules (shared with
/// the kernel module).
#[path = "../../disk_log_format.rs"]
pub mod disk_log_format;

/// The read policies and the read balancing rule (shared with the kernel
/// module).
#[path = "../../read_policy.rs"]
pub mod read_policy;

/// Check and repair: the messages, the pass over the regions, the vote over
/// the copies, and the pace of background work (shared with the kernel
/// module, whose `mirror/scrub.rs` drives it).
#[path = "../../scrub.rs"]
pub mod scrub;
