// SPDX-License-Identifier: GPL-2.0

// Parsing and formatting of the device-mapper `mirror` target's table.
//
// This module knows nothing about the kernel: it only uses `core`, never
// allocates and never panics, so the very same file is built into the kernel
// module and into a host crate whose tests exercise it.
//
// A mirror table reads
//
//   <log_type> <#log_args> <log_args...> <#mirrors> {<dev> <offset>}...
//   [<#features> <feature>...]
//
// where the log is either `core <region_size> [sync|nosync]` or
// `disk <logdev> <region_size> [sync|nosync]`, and the features are
// `handle_errors` and `keep_log`. The checks follow the C target
// (`dm-raid1.c` and `dm-log.c` v1.14.0), in the same order, except that
// numbers are stricter: only plain unsigned decimal digits are accepted and a
// value that does not fit its destination type is an error instead of a
// silently wrapped number.
//
// The `write_*` functions produce text identical to what the C target emits
// for `dmsetup table` and `dmsetup status`.

use core::ffi::CStr;
use core::fmt::{self, Write};

/// Smallest number of mirror legs a table may name.
pub const MIN_LEGS: usize = 2;

/// Largest number of mirror legs a table may name (the C target's
/// `MAX_NR_MIRRORS`).
pub const MAX_LEGS: usize = 9;

/// Smallest region size, in sectors, that a dirty log accepts.
const MIN_REGION_SIZE: u32 = 2;

/// Where the dirty region log lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// The log is kept in memory only (`core`); it is lost on reload.
    Core,
    /// The log is stored on a separate block device (`disk`).
    Disk,
}

impl LogKind {
    /// The log type's name as written in a table.
    pub fn name(self) -> &'static str {
        match self {
            LogKind::Core => "core",
            LogKind::Disk => "disk",
        }
    }

    /// How many log arguments this log type needs besides the optional
    /// sync word.
    fn base_arg_count(self) -> u32 {
        match self {
            LogKind::Core => 1,
            LogKind::Disk => 2,
        }
    }
}

/// What the table asks about the initial synchronisation state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// No sync word: trust the log (a disk log keeps its state, a core log
    /// starts out of sync).
    Default,
    /// `sync`: force a full resynchronisation of every region.
    Sync,
    /// `nosync`: treat every region as already in sync.
    NoSync,
}

impl SyncMode {
    /// The word written into a table for this mode, if any.
    pub fn word(self) -> Option<&'static str> {
        match self {
            SyncMode::Default => None,
            SyncMode::Sync => Some("sync"),
            SyncMode::NoSync => Some("nosync"),
        }
    }
}

/// The dirty log part of a mirror table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogArgs<'a> {
    /// Which kind of log.
    pub kind: LogKind,
    /// The log device path; `Some` exactly when `kind` is [`LogKind::Disk`].
    pub dev: Option<&'a str>,
    /// Region size in 512-byte sectors: a power of two, at least 2 and at
    /// most the target length.
    pub region_size: u32,
    /// The requested initial synchronisation behaviour.
    pub sync: SyncMode,
}

/// One mirror leg as named in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegArg<'a> {
    /// The device path or `major:minor` string, as given.
    pub path: &'a str,
    /// Start of the mirrored data on that device, in sectors.
    pub offset: u64,
}

/// An unused leg slot.
const EMPTY_LEG: LegArg<'static> = LegArg {
    path: "",
    offset: 0,
};

/// Optional features of the mirror target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `handle_errors`: a failed leg is taken out of service and writes are
    /// held until userspace reconfigures the mirror.
    pub handle_errors: bool,
    /// `keep_log`: keep using the log after a failure (needs
    /// `handle_errors`).
    pub keep_log: bool,
}

impl Features {
    /// How many feature words a table lists for these features.
    pub fn count(&self) -> u32 {
        u32::from(self.handle_errors).saturating_add(u32::from(self.keep_log))
    }
}

/// A parsed mirror table; borrows its strings from the argument vector.
#[derive(Clone, Copy, Debug)]
pub struct MirrorTable<'a> {
    /// The dirty log arguments.
    pub log: LogArgs<'a>,
    /// Leg slots; only the first `nr_legs` are meaningful.
    legs: [LegArg<'a>; MAX_LEGS],
    /// Number of legs in use, at most [`MAX_LEGS`].
    nr_legs: usize,
    /// The requested features.
    pub features: Features,
}

impl<'a> MirrorTable<'a> {
    /// The legs in table order; between [`MIN_LEGS`] and [`MAX_LEGS`] of
    /// them for a table returned by [`parse`].
    pub fn legs(&self) -> &[LegArg<'a>] {
        self.legs.get(..self.nr_legs).unwrap_or(&[])
    }

    /// Number of regions a target of `target_len` sectors is split into,
    /// i.e. `target_len / region_size` rounded up.
    ///
    /// [`parse`] guarantees the result fits for the length it was given;
    /// for other lengths the count saturates at `u32::MAX`.
    pub fn nr_regions(&self, target_len: u64) -> u32 {
        region_count(target_len, self.log.region_size)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(u32::MAX)
    }
}

impl PartialEq for MirrorTable<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.log == other.log && self.legs() == other.legs() && self.features == other.features
    }
}

impl Eq for MirrorTable<'_> {}

/// Why a table was rejected. Each variant is one distinct failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The target has zero length.
    ZeroTargetLength,
    /// Fewer arguments than the log type and count, or than the count
    /// announces.
    InsufficientLogArgs,
    /// `<#log_args>` is not a decimal number that fits in 32 bits.
    InvalidLogArgCount,
    /// The log type is neither `core` nor `disk`.
    UnknownLogType,
    /// `<#log_args>` is wrong for the log type (core: 1 or 2, disk: 2 or 3).
    WrongLogArgCount,
    /// The optional log argument is neither `sync` nor `nosync`.
    InvalidSyncArg,
    /// The region size is not a decimal number that fits in 32 bits.
    InvalidRegionSize,
    /// The region size is 0 or 1.
    RegionSizeTooSmall,
    /// The region size is not a power of two.
    RegionSizeNotPowerOfTwo,
    /// The region size is larger than the target.
    RegionSizeTooLarge,
    /// The target has more regions than fit in 32 bits.
    TooManyRegions,
    /// `<#mirrors>` is missing, not a number, or not in 2..=9.
    InvalidMirrorCount,
    /// Fewer than two arguments per announced mirror.
    TooFewMirrorArgs,
    /// A leg offset is not a number, or offset plus target length overflows.
    InvalidOffset,
    /// `<#features>` is not a decimal number that fits in 32 bits.
    InvalidFeatureCount,
    /// `<#features>` announces more features than there are arguments.
    NotEnoughFeatureArgs,
    /// A feature word is neither `handle_errors` nor `keep_log`.
    UnrecognisedFeature,
    /// `keep_log` was requested without `handle_errors`.
    KeepLogWithoutHandleErrors,
    /// Arguments are left over after the features.
    TooManyMirrorArgs,
}

impl TableError {
    /// The error text for `ti->error`, NUL-terminated and static.
    pub fn message(&self) -> &'static CStr {
        match self {
            TableError::ZeroTargetLength => c"Mirror target length must not be zero",
            TableError::InsufficientLogArgs => c"Insufficient mirror log arguments",
            TableError::InvalidLogArgCount => c"Invalid mirror log argument count",
            TableError::UnknownLogType => c"Unknown mirror log type (expected core or disk)",
            TableError::WrongLogArgCount => c"Wrong number of arguments for the mirror log type",
            TableError::InvalidSyncArg => c"Unrecognised mirror log sync argument",
            TableError::InvalidRegionSize => c"Invalid region size",
            TableError::RegionSizeTooSmall => c"Region size must be at least 2 sectors",
            TableError::RegionSizeNotPowerOfTwo => c"Region size must be a power of two",
            TableError::RegionSizeTooLarge => c"Region size exceeds the target length",
            TableError::TooManyRegions => c"Region count exceeds limit of 4294967295",
            TableError::InvalidMirrorCount => c"Invalid number of mirrors",
            TableError::TooFewMirrorArgs => c"Too few mirror arguments",
            TableError::InvalidOffset => c"Invalid offset",
            TableError::InvalidFeatureCount => c"Invalid number of features",
            TableError::NotEnoughFeatureArgs => c"Not enough arguments to support feature count",
            TableError::UnrecognisedFeature => c"Unrecognised feature requested",
            TableError::KeepLogWithoutHandleErrors => {
                c"keep_log feature requires the handle_errors feature"
            }
            TableError::TooManyMirrorArgs => c"Too many mirror arguments",
        }
    }
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every message is an ASCII literal, so the conversion cannot fail.
        f.write_str(self.message().to_str().unwrap_or("invalid mirror table"))
    }
}

/// Parses a plain unsigned decimal number: one or more ASCII digits and
/// nothing else. Returns `None` on any other character or on overflow.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(b.wrapping_sub(b'0')))?;
    }
    Some(value)
}

/// [`parse_decimal`] restricted to values that fit in a `u32`.
fn parse_u32(s: &str) -> Option<u32> {
    parse_decimal(s).and_then(|v| u32::try_from(v).ok())
}

/// `target_len / region_size` rounded up; `None` for a zero region size.
fn region_count(target_len: u64, region_size: u32) -> Option<u64> {
    let rs = u64::from(region_size);
    let whole = target_len.checked_div(rs)?;
    let partial = target_len.checked_rem(rs)?;
    whole.checked_add(u64::from(partial != 0))
}

/// Parses the log arguments (after the type and count) for a log of `kind`.
fn parse_log<'a>(
    kind: LogKind,
    log_args: &[&'a str],
    target_len: u64,
) -> Result<LogArgs<'a>, TableError> {
    // Disk logs name their device first; the rest is shared with core logs.
    let (dev, rest) = match kind {
        LogKind::Core => (None, log_args),
        LogKind::Disk => match log_args.split_first() {
            Some((dev, rest)) => (Some(*dev), rest),
            None => return Err(TableError::WrongLogArgCount),
        },
    };
    let (size_arg, sync_arg) = match rest {
        [size] => (*size, None),
        [size, sync] => (*size, Some(*sync)),
        _ => return Err(TableError::WrongLogArgCount),
    };

    // As in dm-log, the sync word is checked before the region size.
    let sync = match sync_arg {
        None => SyncMode::Default,
        Some("sync") => SyncMode::Sync,
        Some("nosync") => SyncMode::NoSync,
        Some(_) => return Err(TableError::InvalidSyncArg),
    };

    let region_size = parse_u32(size_arg).ok_or(TableError::InvalidRegionSize)?;
    if region_size < MIN_REGION_SIZE {
        return Err(TableError::RegionSizeTooSmall);
    }
    if !region_size.is_power_of_two() {
        return Err(TableError::RegionSizeNotPowerOfTwo);
    }
    if u64::from(region_size) > target_len {
        return Err(TableError::RegionSizeTooLarge);
    }
    let regions = region_count(target_len, region_size).ok_or(TableError::InvalidRegionSize)?;
    if regions > u64::from(u32::MAX) {
        return Err(TableError::TooManyRegions);
    }

    Ok(LogArgs {
        kind,
        dev,
        region_size,
        sync,
    })
}

/// Parses the optional feature list; returns the features and how many
/// arguments they used.
fn parse_features(args: &[&str]) -> Result<(Features, usize), TableError> {
    let mut features = Features::default();
    let Some((count_arg, rest)) = args.split_first() else {
        return Ok((features, 0));
    };
    let count = parse_u32(count_arg).ok_or(TableError::InvalidFeatureCount)?;
    let words = usize::try_from(count)
        .ok()
        .and_then(|n| rest.get(..n))
        .ok_or(TableError::NotEnoughFeatureArgs)?;
    for word in words {
        // Repeating a feature only sets its flag again, as in C.
        match *word {
            "handle_errors" => features.handle_errors = true,
            "keep_log" => features.keep_log = true,
            _ => return Err(TableError::UnrecognisedFeature),
        }
    }
    if features.keep_log && !features.handle_errors {
        return Err(TableError::KeepLogWithoutHandleErrors);
    }
    Ok((features, words.len().saturating_add(1)))
}

/// Parses the arguments of a mirror table line (everything after the target
/// type `mirror`) for a target of `target_len` sectors.
///
/// The returned table borrows its device paths from `args`.
pub fn parse<'a>(args: &[&'a str], target_len: u64) -> Result<MirrorTable<'a>, TableError> {
    if target_len == 0 {
        return Err(TableError::ZeroTargetLength);
    }

    // <log_type> <#log_args> <log_args...>
    let (type_arg, count_arg, after_count) = match args {
        [type_arg, count_arg, rest @ ..] => (*type_arg, *count_arg, rest),
        _ => return Err(TableError::InsufficientLogArgs),
    };
    let log_count = parse_u32(count_arg).ok_or(TableError::InvalidLogArgCount)?;
    let log_count_usize =
        usize::try_from(log_count).map_err(|_| TableError::InsufficientLogArgs)?;
    let log_args = after_count
        .get(..log_count_usize)
        .ok_or(TableError::InsufficientLogArgs)?;
    let rest = after_count.get(log_count_usize..).unwrap_or(&[]);

    let kind = match type_arg {
        "core" => LogKind::Core,
        "disk" => LogKind::Disk,
        _ => return Err(TableError::UnknownLogType),
    };
    let base = kind.base_arg_count();
    if log_count < base || log_count > base.saturating_add(1) {
        return Err(TableError::WrongLogArgCount);
    }
    let log = parse_log(kind, log_args, target_len)?;

    // <#mirrors> {<dev> <offset>}...
    let (mirrors_arg, rest) = rest.split_first().ok_or(TableError::InvalidMirrorCount)?;
    let nr_legs = parse_u32(mirrors_arg)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (MIN_LEGS..=MAX_LEGS).contains(n))
        .ok_or(TableError::InvalidMirrorCount)?;
    // nr_legs <= MAX_LEGS, so doubling it cannot saturate.
    let nr_words = nr_legs.saturating_mul(2);
    let leg_words = rest.get(..nr_words).ok_or(TableError::TooFewMirrorArgs)?;
    let rest = rest.get(nr_words..).unwrap_or(&[]);

    let mut legs = [EMPTY_LEG; MAX_LEGS];
    // Walk the words two at a time without `chunks_exact`, whose panic path
    // for a zero chunk size the kernel's objtool does not understand.
    let mut words = leg_words;
    for slot in legs.iter_mut().take(nr_legs) {
        let (path, offset_arg) = match words {
            [path, offset_arg, tail @ ..] => {
                words = tail;
                (*path, *offset_arg)
            }
            _ => return Err(TableError::TooFewMirrorArgs),
        };
        let offset = parse_decimal(offset_arg)
            .filter(|off| off.checked_add(target_len).is_some())
            .ok_or(TableError::InvalidOffset)?;
        *slot = LegArg { path, offset };
    }

    // [<#features> <feature>...]
    let (features, used) = parse_features(rest)?;
    if rest.len() > used {
        return Err(TableError::TooManyMirrorArgs);
    }

    Ok(MirrorTable {
        log,
        legs,
        nr_legs,
        features,
    })
}

/// Writes the log part of a `dmsetup table` line exactly as dm-log does,
/// including its trailing space: `core 1 1024 `, `core 2 1024 nosync `,
/// `disk 2 253:2 1024 `, `disk 3 253:2 1024 sync `.
///
/// `logdev_name` is the log device's name to print (normally its
/// `major:minor`); when `None` the path from the table is used. A disk log
/// with neither is a formatting error.
pub fn write_table_log<W: Write + ?Sized>(
    w: &mut W,
    log: &LogArgs<'_>,
    logdev_name: Option<&str>,
) -> fmt::Result {
    let count = log
        .kind
        .base_arg_count()
        .saturating_add(u32::from(log.sync.word().is_some()));
    write!(w, "{} {} ", log.kind.name(), count)?;
    if log.kind == LogKind::Disk {
        let dev = logdev_name.or(log.dev).ok_or(fmt::Error)?;
        write!(w, "{} ", dev)?;
    }
    write!(w, "{} ", log.region_size)?;
    if let Some(word) = log.sync.word() {
        write!(w, "{} ", word)?;
    }
    Ok(())
}

/// Writes a whole `dmsetup table` parameter line as the C target does, e.g.
/// `core 1 1024 2 253:0 0 253:1 0 1 handle_errors`.
///
/// `leg_names[i]` is printed for leg `i` (normally its `major:minor`); a
/// leg without a name falls back to its path from the table. `logdev_name`
/// is as for [`write_table_log`].
pub fn write_table<W: Write + ?Sized>(
    w: &mut W,
    table: &MirrorTable<'_>,
    leg_names: &[&str],
    logdev_name: Option<&str>,
) -> fmt::Result {
    write_table_log(w, &table.log, logdev_name)?;
    let legs = table.legs().iter().enumerate().map(|(i, leg)| {
        let name = leg_names.get(i).copied().unwrap_or(leg.path);
        (name, leg.offset)
    });
    write_table_legs(w, legs, &table.features)
}

/// Writes the part of a table line after the log arguments: the leg count,
/// each leg's name and offset, and the features, e.g.
/// `2 253:0 0 253:1 0 1 handle_errors`.
pub fn write_table_legs<'n, W, I>(w: &mut W, legs: I, features: &Features) -> fmt::Result
where
    W: Write + ?Sized,
    I: ExactSizeIterator<Item = (&'n str, u64)>,
{
    write!(w, "{}", legs.len())?;
    for (name, offset) in legs {
        write!(w, " {} {}", name, offset)?;
    }
    let count = features.count();
    if count != 0 {
        write!(w, " {}", count)?;
        if features.handle_errors {
            w.write_str(" handle_errors")?;
        }
        if features.keep_log {
            w.write_str(" keep_log")?;
        }
    }
    Ok(())
}

/// The log's part of a `dmsetup status` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStatus<'a> {
    /// A core log: prints `1 core`.
    Core,
    /// A disk log: prints `3 disk <dev> <health>`.
    Disk {
        /// The log device's name, normally its `major:minor`.
        dev: &'a str,
        /// `b'A'` (alive), `b'D'` (I/O failed) or `b'F'` (flush failed).
        health: u8,
    },
}

/// Writes a `dmsetup status` parameter line as the C target does, e.g.
/// `2 253:0 253:16 2048/2048 1 AA 1 core` or
/// `2 253:0 253:16 0/2048 1 AD 3 disk 253:2 A`.
///
/// `health` holds one status character per leg (see [`health_char`]); it
/// must be exactly as long as `leg_names`, otherwise this is a formatting
/// error.
pub fn write_status<W: Write + ?Sized>(
    w: &mut W,
    leg_names: &[&str],
    health: &[u8],
    in_sync: u64,
    nr_regions: u64,
    log: LogStatus<'_>,
) -> fmt::Result {
    if health.len() != leg_names.len() {
        return Err(fmt::Error);
    }
    write!(w, "{} ", leg_names.len())?;
    for name in leg_names {
        write!(w, "{} ", name)?;
    }
    write!(w, "{}/{} 1 ", in_sync, nr_regions)?;
    for &c in health {
        w.write_char(char::from(c))?;
    }
    match log {
        LogStatus::Core => w.write_str(" 1 core"),
        LogStatus::Disk { dev, health } => write!(w, " 3 disk {} {}", dev, char::from(health)),
    }
}

/// The kinds of error seen on one leg since it was last (re)loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegErrors {
    /// A flush failed on the leg.
    pub flush: bool,
    /// A write failed on the leg.
    pub write: bool,
    /// Resynchronising a region onto the leg failed.
    pub sync: bool,
    /// A read failed on the leg.
    pub read: bool,
    /// An error was counted without a known kind.
    pub unknown: bool,
}

/// The status character of a leg: `A` when it has seen no error, otherwise
/// the most severe kind seen: `F` (flush) over `D` (write) over `S` (sync)
/// over `R` (read) over `U` (unknown).
pub fn health_char(flags: LegErrors) -> u8 {
    if flags.flush {
        b'F'
    } else if flags.write {
        b'D'
    } else if flags.sync {
        b'S'
    } else if flags.read {
        b'R'
    } else if flags.unknown {
        b'U'
    } else {
        b'A'
    }
}
