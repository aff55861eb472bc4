// SPDX-License-Identifier: GPL-2.0

// The kernel-independent half of the `disk` dirty log: its on-disk layout and
// the decisions the C dm-log (`drivers/md/dm-log.c`) takes when it resumes and
// flushes a disk log. Only `core` is used, nothing allocates and nothing
// panics, so the same file is built into the kernel module and into the host
// crate, whose tests and fuzz target exercise it.
//
// The log device holds, from byte 0:
//
//   0..4       magic, little-endian u32, 0x4D695272 ("rRiM" on disk)
//   4..8       version, little-endian u32, 2
//   8..16      nr_regions, little-endian u64: the region count last written
//   16..1024   unused; whatever was read is written back unchanged
//   1024..     the clean bitset: region i is bit i % 8 of byte 1024 + i / 8,
//              set when no write to the region may be in flight. It is
//              round_up(nr_regions, 64) / 8 bytes long, i.e. whole 64-bit
//              little-endian words, which is the word order of `RegionBits`.
//
// The C target keeps one buffer of round_up(1024 + bitset, logical block size)
// bytes and always reads or writes all of it at once, starting at sector 0.
// Its in-memory clean bitset *is* the tail of that buffer; here the clean bits
// live in a `RegionBits` and are copied to and from the buffer explicitly
// (`bits_from_disk`, `bits_to_disk`).
//
// Bitsets are assumed to be made of 64-bit longs (BITS_PER_LONG == 64), as on
// every 64-bit kernel. A 32-bit C kernel rounds the bitset to 32 bits instead,
// so its logs differ in the length of the bitset and in the tail it clears.

use crate::log_bits::{RegionBits, WordStore};
use crate::table::SyncMode;

/// The disk log's magic number (`MIRROR_MAGIC`).
pub const LOG_MAGIC: u32 = 0x4D69_5272;

/// The only disk log version this code writes (`MIRROR_DISK_VERSION`).
pub const LOG_VERSION: u32 = 2;

/// Byte offset of the clean bitset on the log device (the C `LOG_OFFSET`
/// is 2 sectors).
pub const LOG_OFFSET: usize = 1024;

/// Size in bytes of the encoded header.
pub const HEADER_LEN: usize = 16;

/// Bytes in a sector, the unit of the log device's I/O.
pub const SECTOR_SIZE: usize = 512;

/// Bits in one word of a bitset.
const WORD_BITS: u32 = 64;

/// Bytes in one word of a bitset.
const WORD_BYTES: usize = 8;

/// The disk log header, in host byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// [`LOG_MAGIC`] in a valid log.
    pub magic: u32,
    /// [`LOG_VERSION`] in a log this code understands.
    pub version: u32,
    /// Number of regions the bitset describes.
    pub nr_regions: u64,
}

impl Header {
    /// A valid header for a log of `nr_regions` regions.
    pub const fn new(nr_regions: u64) -> Self {
        Self {
            magic: LOG_MAGIC,
            version: LOG_VERSION,
            nr_regions,
        }
    }

    /// Decodes the first [`HEADER_LEN`] bytes of `buf`, without checking
    /// anything; `None` if `buf` is shorter.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        Some(Self {
            magic: u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?),
            version: u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?),
            nr_regions: u64::from_le_bytes(buf.get(8..16)?.try_into().ok()?),
        })
    }

    /// Encodes the header into the first [`HEADER_LEN`] bytes of `buf`,
    /// leaving every other byte alone; `None` (and `buf` untouched) if `buf`
    /// is shorter.
    pub fn encode(&self, buf: &mut [u8]) -> Option<()> {
        let out = buf.get_mut(0..HEADER_LEN)?;
        let fields = self
            .magic
            .to_le_bytes()
            .into_iter()
            .chain(self.version.to_le_bytes())
            .chain(self.nr_regions.to_le_bytes());
        for (byte, value) in out.iter_mut().zip(fields) {
            *byte = value;
        }
        Some(())
    }
}

/// Number of 64-bit words in the bitset of `nr_regions` regions.
fn bitset_words(nr_regions: u32) -> usize {
    // At most 2^26, so the conversion only fails on a 16-bit target.
    usize::try_from(nr_regions.div_ceil(WORD_BITS)).unwrap_or(usize::MAX)
}

/// Length in bytes of the bitset of `nr_regions` regions on disk:
/// round_up(nr_regions, 64) / 8.
///
/// The C target cannot have 0 regions (a target is never empty); if it
/// could, its rollover check would turn 0 bytes into 2^61. Here 0 regions
/// simply have an empty bitset.
pub fn bitset_bytes(nr_regions: u32) -> Option<usize> {
    bitset_words(nr_regions).checked_mul(WORD_BYTES)
}

/// End of the bitset of `nr_regions` regions in the buffer: the least
/// buffer length the bit functions accept.
fn bitset_end(nr_regions: u32) -> Option<usize> {
    LOG_OFFSET.checked_add(bitset_bytes(nr_regions)?)
}

/// Length in bytes of the buffer the log is read and written with: the
/// header area and the bitset, rounded up to the log device's logical block
/// size. `None` if `logical_block_size` is 0 or the length overflows.
pub fn buffer_len(nr_regions: u32, logical_block_size: u32) -> Option<usize> {
    let block = usize::try_from(logical_block_size).ok()?;
    if block == 0 {
        return None;
    }
    let needed = bitset_end(nr_regions)?;
    needed.div_ceil(block).checked_mul(block)
}

/// The number of sectors to read or write for a buffer of `buffer_len`
/// bytes (as in C, any partial sector is dropped; with a logical block of
/// at least 512 bytes there is none).
pub fn buffer_sectors(buffer_len: usize) -> u64 {
    u64::try_from(buffer_len / SECTOR_SIZE).unwrap_or(u64::MAX)
}

/// Bitset word `index` as stored in `buf`, or `None` past the buffer.
fn disk_word(buf: &[u8], index: usize) -> Option<u64> {
    let start = index.checked_mul(WORD_BYTES)?.checked_add(LOG_OFFSET)?;
    let end = start.checked_add(WORD_BYTES)?;
    Some(u64::from_le_bytes(buf.get(start..end)?.try_into().ok()?))
}

/// The bits of word `index` that stand for regions below `limit`.
fn bits_below(limit: u32, index: usize) -> u64 {
    let first = u64::try_from(index)
        .ok()
        .and_then(|i| i.checked_mul(u64::from(WORD_BITS)))
        .unwrap_or(u64::MAX);
    let limit = u64::from(limit);
    if limit <= first {
        0
    } else if limit - first >= u64::from(WORD_BITS) {
        u64::MAX
    } else {
        (1u64 << (limit - first)) - 1
    }
}

/// Makes word `index` of `bits` equal to `word` (bits past the end of
/// `bits` are ignored), touching only the bits that change.
fn store_word<S: WordStore>(bits: &mut RegionBits<S>, index: usize, word: u64) -> Option<()> {
    let old = bits.words().get(index).copied().unwrap_or(0);
    let mut diff = old ^ word;
    let first = u32::try_from(index).ok()?.checked_mul(WORD_BITS)?;
    while diff != 0 {
        let bit = diff.trailing_zeros();
        bits.set(first.checked_add(bit)?, word & (1u64 << bit) != 0);
        diff &= diff - 1;
    }
    Some(())
}

/// Loads the clean bitset from `buf` (read from the log device) into `bits`,
/// for the `bits.len()` regions of `bits`; the bits past that stay clear.
/// `None` (and `bits` unchanged) if `buf` is too short to hold the whole
/// bitset of `bits.len()` regions at [`LOG_OFFSET`].
pub fn bits_from_disk<S: WordStore>(buf: &[u8], bits: &mut RegionBits<S>) -> Option<()> {
    let nr = bits.len();
    if buf.len() < bitset_end(nr)? {
        return None;
    }
    for index in 0..bitset_words(nr) {
        let word = disk_word(buf, index)? & bits_below(nr, index);
        store_word(bits, index, word)?;
    }
    Some(())
}

/// Stores `bits` as the clean bitset in `buf`: all round_up(len, 64) / 8
/// bytes from [`LOG_OFFSET`] on, with the bits past `bits.len()` written as
/// 0. Nothing else in `buf` changes. `None` (and `buf` untouched) if `buf`
/// is too short.
pub fn bits_to_disk<S: WordStore>(bits: &RegionBits<S>, buf: &mut [u8]) -> Option<()> {
    let nr = bits.len();
    let out = buf.get_mut(LOG_OFFSET..bitset_end(nr)?)?;
    for (index, chunk) in out.chunks_exact_mut(WORD_BYTES).enumerate() {
        let word = bits.words().get(index).copied().unwrap_or(0) & bits_below(nr, index);
        for (byte, value) in chunk.iter_mut().zip(word.to_le_bytes()) {
            *byte = value;
        }
    }
    Some(())
}

/// Which bitsets were changed since the log was last written, as the C
/// `touched_cleaned` / `touched_dirtied` flags, and what a flush of the disk
/// log must therefore do.
///
/// The C `disk_flush`, mirrored step by step:
///
/// 1. Nothing touched: nothing is written ([`Touched::needs_write`]).
/// 2. Bits were set (regions became clean): every leg is flushed first, so
///    that the data the clean bits vouch for is stable before the log says
///    so ([`Touched::flush_legs_first`]). If that flush fails, the C log
///    marks every region dirty, sets `flush_failed` (after which it never
///    marks a region clean again) and so also touches the dirtied flag
///    ([`Touched::mark_all_dirty`]).
/// 3. The whole buffer is written. On failure the log device is failed and
///    both flags stay as they are.
/// 4. After a good write, `touched_cleaned` is reset ([`Touched::written`]);
///    if bits were cleared (regions became dirty) a PREFLUSH follows
///    ([`Touched::preflush_after_write`]), so that the dirty marks are on
///    stable media before the writes they cover are issued. Only a good
///    PREFLUSH resets `touched_dirtied` ([`Touched::preflushed`]); a failed
///    one fails the log device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Some clean bit was set since the last write (`touched_cleaned`).
    pub cleaned: bool,
    /// Some clean bit was cleared since the last good PREFLUSH
    /// (`touched_dirtied`).
    pub dirtied: bool,
}

impl Touched {
    /// Whether a flush has anything to write.
    pub fn needs_write(self) -> bool {
        self.cleaned || self.dirtied
    }

    /// Whether the legs must be flushed before the log is written.
    pub fn flush_legs_first(self) -> bool {
        self.cleaned
    }

    /// Records that every one of `nr_regions` clean bits was cleared (after a
    /// failed leg flush). As in C, the flag is only touched if a bit was.
    pub fn mark_all_dirty(&mut self, nr_regions: u32) {
        if nr_regions > 0 {
            self.dirtied = true;
        }
    }

    /// Whether a good write of the buffer must be followed by a PREFLUSH.
    pub fn preflush_after_write(self) -> bool {
        self.dirtied
    }

    /// Records a good write of the buffer.
    pub fn written(&mut self) {
        self.cleaned = false;
    }

    /// Records a good PREFLUSH after the write.
    pub fn preflushed(&mut self) {
        self.dirtied = false;
    }
}

/// Where a resumed disk log's state came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeSource {
    /// The buffer could not be read (or is shorter than the log needs). The
    /// log device is failed and no bit of the buffer is trusted.
    ReadFailed,
    /// A valid magic with a version this code does not know. The C log
    /// treats this exactly like a read failure, except that the header it
    /// writes back keeps this version (so the next resume fails again).
    BadVersion {
        /// The version found on disk.
        version: u32,
    },
    /// The table says `sync` or `nosync`: the log is started afresh.
    TableSyncMode,
    /// No valid magic on disk: the log is new.
    BadMagic,
    /// A valid header: the bits below its region count are kept.
    Disk {
        /// The region count in the header, as read.
        nr_regions: u64,
    },
}

/// What resuming a disk log does, as worked out by [`resume_plan`] from the
/// buffer just read. Apply it with [`ResumePlan::apply`], then make the
/// in-sync bits a copy of the clean bits (e.g. [`bits_from_disk`] on the
/// applied buffer), set the sync count to [`ResumePlan::sync_count`], restart
/// the resync scan at region 0, fail the log device if
/// [`ResumePlan::log_failed`], OR [`ResumePlan::touched`] into the log's
/// flags, then write the whole buffer and PREFLUSH the log device.
///
/// Quirks of the C `disk_resume` kept here:
///
/// - A read failure, or an unknown version, does not fail the resume: it
///   fails the log device (the status shows `D` and a table event is raised)
///   and the log goes on as if it were new. The resume's result is that of
///   the header write and PREFLUSH that follow.
/// - With `nosync`, even a failed read leaves every region in sync, although
///   the C comment says an unreadable log must make them all out of sync:
///   the new-region loop sets the bits of a `nosync` log whatever the reason
///   for starting from region 0.
/// - The header's 64-bit region count is truncated to 32 bits before it is
///   used as the first "new" region, so a count of 2^32 + 5 keeps only
///   regions 0..5.
/// - A shrunk device keeps the bits of the regions that remain; a grown one
///   keeps the old bits and gets new ones. The bits from the region count up
///   to the end of its 64-bit word are cleared.
/// - Version 1 is read as version 2 on little-endian machines (the two only
///   differ in byte order); on big-endian ones it is an unknown version.
/// - The header written back is the one read with the current region count,
///   or a fresh one; for an unknown version it keeps that version. After a
///   read failure the C code writes whatever header it held before (stale,
///   or uninitialised on the first resume); here a fresh one is written.
/// - The bits set and cleared by resume set `touched_cleaned` and
///   `touched_dirtied`, and resume does not reset them: the next flush writes
///   the log again (flushing the legs first if bits were set).
/// - The in-sync bits become an exact copy of the clean bits, so a region
///   that was dirty on disk is resynchronised; the recovering bits are left
///   as they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumePlan {
    /// Where the state came from.
    pub source: ResumeSource,
    /// The current region count.
    pub nr_regions: u32,
    /// The header to write back (its region count is the current one).
    pub header: Header,
    /// Whether to fail the log device (read failure or unknown version).
    pub log_failed: bool,
    /// The clean bits of regions below `min(keep_below, nr_regions)` are
    /// taken from the buffer; this is C's truncated header region count, 0
    /// when the log starts afresh.
    pub keep_below: u32,
    /// The value of the clean bits of the other regions: set (in sync) for
    /// `nosync`, clear otherwise.
    pub new_bits: bool,
    /// Number of regions in sync (and clean) after the resume.
    pub sync_count: u64,
    /// How resume touched the clean bits.
    pub touched: Touched,
}

/// Works out how to resume a disk log of `nr_regions` regions from `buf`,
/// the log buffer as just read (`buf_read_ok` false if the read failed), for
/// a table with sync mode `sync`. See [`ResumePlan`].
pub fn resume_plan(buf_read_ok: bool, buf: &[u8], nr_regions: u32, sync: SyncMode) -> ResumePlan {
    let readable = buf_read_ok && bitset_end(nr_regions).is_some_and(|end| buf.len() >= end);
    let disk = if readable { Header::decode(buf) } else { None };

    let (source, mut header) = match disk {
        None => (ResumeSource::ReadFailed, Header::new(0)),
        Some(_) if sync != SyncMode::Default => (ResumeSource::TableSyncMode, Header::new(0)),
        Some(h) if h.magic != LOG_MAGIC => (ResumeSource::BadMagic, Header::new(0)),
        Some(h) if h.version == 1 && cfg!(target_endian = "little") => (
            ResumeSource::Disk {
                nr_regions: h.nr_regions,
            },
            Header::new(h.nr_regions),
        ),
        Some(h) if h.version != LOG_VERSION => (
            ResumeSource::BadVersion { version: h.version },
            Header { nr_regions: 0, ..h },
        ),
        Some(h) => (
            ResumeSource::Disk {
                nr_regions: h.nr_regions,
            },
            h,
        ),
    };
    let log_failed = matches!(
        source,
        ResumeSource::ReadFailed | ResumeSource::BadVersion { .. }
    );
    // C: `for (i = lc->header.nr_regions; ...)` with an `unsigned int i`.
    let keep_below = if log_failed {
        0
    } else {
        header.nr_regions as u32
    };
    header.nr_regions = u64::from(nr_regions);

    let new_bits = sync == SyncMode::NoSync;
    let grown = keep_below < nr_regions;
    let touched = Touched {
        cleaned: new_bits && grown,
        dirtied: (!new_bits && grown) || nr_regions % WORD_BITS != 0,
    };
    let mut plan = ResumePlan {
        source,
        nr_regions,
        header,
        log_failed,
        keep_below,
        new_bits,
        sync_count: 0,
        touched,
    };
    plan.sync_count = (0..bitset_words(nr_regions))
        .map(|index| u64::from(plan.final_word(buf, index).count_ones()))
        .sum();
    plan
}

impl ResumePlan {
    /// Whether the log starts afresh, ignoring the bits in the buffer.
    pub fn is_fresh(&self) -> bool {
        self.keep_below == 0
    }

    /// Word `index` of the clean bitset after the resume. Bits that should
    /// come from a buffer too short to hold them read as clear (only a
    /// buffer other than the one planned with can be that short).
    fn final_word(&self, buf: &[u8], index: usize) -> u64 {
        let kept = bits_below(self.keep_below, index);
        let old = if kept == 0 {
            0
        } else {
            disk_word(buf, index).unwrap_or(0) & kept
        };
        let new = if self.new_bits { !kept } else { 0 };
        (old | new) & bits_below(self.nr_regions, index)
    }

    /// Applies the plan: fills `clean` (which must have `nr_regions`
    /// regions) with the clean bits after the resume, and writes them and
    /// the header into `buf`, which must be the buffer the plan was made
    /// from. Bytes 16..1024 and those past the bitset are left as read.
    /// `None`, with neither `clean` nor `buf` changed, if `clean` has
    /// another size or `buf` is too short.
    pub fn apply<S: WordStore>(&self, buf: &mut [u8], clean: &mut RegionBits<S>) -> Option<()> {
        if clean.len() != self.nr_regions || buf.len() < bitset_end(self.nr_regions)? {
            return None;
        }
        for index in 0..bitset_words(self.nr_regions) {
            store_word(clean, index, self.final_word(buf, index))?;
        }
        bits_to_disk(clean, buf)?;
        self.header.encode(buf)
    }
}
