//! Tests of the mirror table parser and formatter shared with the kernel.

use core::fmt::Write;
use dm_mirror_rs_host::bounded_writer::BoundedWriter;
use dm_mirror_rs_host::table::{
    health_char, parse, write_status, write_table, write_table_log, LegArg, LegErrors, LogArgs,
    LogKind, LogStatus, MirrorTable, SyncMode, TableError, MAX_LEGS, MIN_LEGS,
};

/// A target length used by most tests: 1 GiB in sectors.
const LEN: u64 = 2 * 1024 * 1024;

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn parse_line(line: &str, len: u64) -> Result<MirrorTable<'_>, TableError> {
    parse(&words(line), len)
}

fn ok(line: &str) -> MirrorTable<'_> {
    match parse_line(line, LEN) {
        Ok(t) => t,
        Err(e) => panic!("{line:?} rejected: {e:?} ({e})"),
    }
}

fn err_len(line: &str, len: u64) -> TableError {
    match parse_line(line, len) {
        Ok(t) => panic!("{line:?} accepted: {t:?}"),
        Err(e) => e,
    }
}

fn err(line: &str) -> TableError {
    err_len(line, LEN)
}

fn table_string(t: &MirrorTable<'_>, leg_names: &[&str], logdev: Option<&str>) -> String {
    let mut s = String::new();
    write_table(&mut s, t, leg_names, logdev).expect("write_table");
    s
}

/// Parses `line`, prints it back with the paths as names, parses the output
/// again and checks that nothing changed. Returns the printed line.
fn round_trip(line: &str, len: u64) -> String {
    let t = parse_line(line, len).expect("first parse");
    let names: Vec<&str> = t.legs().iter().map(|l| l.path).collect();
    let out = table_string(&t, &names, None);
    let again = parse_line(&out, len).expect("second parse");
    assert_eq!(t, again, "round trip of {line:?} via {out:?}");
    let out2 = table_string(&again, &names, None);
    assert_eq!(out, out2);
    out
}

fn status_string(
    leg_names: &[&str],
    health: &[u8],
    in_sync: u64,
    nr_regions: u64,
    log: LogStatus<'_>,
) -> String {
    let mut s = String::new();
    write_status(&mut s, leg_names, health, in_sync, nr_regions, log).expect("write_status");
    s
}

// ---------------------------------------------------------------------------
// Happy paths
// ---------------------------------------------------------------------------

#[test]
fn core_default_two_legs() {
    let t = ok("core 1 1024 2 /dev/sda 0 /dev/sdb 0");
    assert_eq!(
        t.log,
        LogArgs {
            kind: LogKind::Core,
            dev: None,
            region_size: 1024,
            sync: SyncMode::Default,
        }
    );
    assert_eq!(
        t.legs(),
        &[
            LegArg {
                path: "/dev/sda",
                offset: 0
            },
            LegArg {
                path: "/dev/sdb",
                offset: 0
            }
        ]
    );
    assert!(!t.features.handle_errors);
    assert!(!t.features.keep_log);
    assert_eq!(t.nr_regions(LEN), 2048);
}

#[test]
fn core_sync_and_nosync() {
    assert_eq!(ok("core 2 1024 sync 2 a 0 b 0").log.sync, SyncMode::Sync);
    assert_eq!(
        ok("core 2 1024 nosync 2 a 0 b 0").log.sync,
        SyncMode::NoSync
    );
}

#[test]
fn disk_log_all_sync_modes() {
    let t = ok("disk 2 253:2 1024 2 253:0 0 253:1 0");
    assert_eq!(t.log.kind, LogKind::Disk);
    assert_eq!(t.log.dev, Some("253:2"));
    assert_eq!(t.log.region_size, 1024);
    assert_eq!(t.log.sync, SyncMode::Default);
    let t = ok("disk 3 /dev/log 512 sync 2 a 0 b 0");
    assert_eq!(t.log.dev, Some("/dev/log"));
    assert_eq!(t.log.sync, SyncMode::Sync);
    let t = ok("disk 3 /dev/log 512 nosync 2 a 0 b 0");
    assert_eq!(t.log.sync, SyncMode::NoSync);
}

#[test]
fn every_leg_count_from_two_to_nine() {
    for n in MIN_LEGS..=MAX_LEGS {
        let mut line = format!("core 1 64 {n}");
        for i in 0..n {
            line.push_str(&format!(" /dev/leg{i} {}", i * 8));
        }
        let t = parse_line(&line, LEN).expect("valid leg count");
        assert_eq!(t.legs().len(), n);
        for (i, leg) in t.legs().iter().enumerate() {
            assert_eq!(leg.path, format!("/dev/leg{i}"));
            assert_eq!(leg.offset, (i * 8) as u64);
        }
        round_trip(&line, LEN);
    }
}

#[test]
fn features_handle_errors() {
    let t = ok("core 1 1024 2 a 0 b 0 1 handle_errors");
    assert!(t.features.handle_errors);
    assert!(!t.features.keep_log);
}

#[test]
fn features_in_both_orders() {
    let a = ok("core 1 1024 2 a 0 b 0 2 handle_errors keep_log");
    let b = ok("core 1 1024 2 a 0 b 0 2 keep_log handle_errors");
    assert!(a.features.handle_errors && a.features.keep_log);
    assert_eq!(a, b);
}

#[test]
fn zero_features_is_accepted() {
    let t = ok("core 1 1024 2 a 0 b 0 0");
    assert_eq!(t.features.count(), 0);
    assert_eq!(t, ok("core 1 1024 2 a 0 b 0"));
}

#[test]
fn duplicate_features_are_flags() {
    let t = ok("core 1 1024 2 a 0 b 0 2 handle_errors handle_errors");
    assert!(t.features.handle_errors);
    assert_eq!(t.features.count(), 1);
    let t = ok("core 1 1024 2 a 0 b 0 3 keep_log handle_errors keep_log");
    assert!(t.features.handle_errors && t.features.keep_log);
}

#[test]
fn dmraid_style_table() {
    let t = ok("core 2 1024 nosync 2 /dev/sda 0 /dev/sdb 0 1 handle_errors");
    assert_eq!(t.log.sync, SyncMode::NoSync);
    assert!(t.features.handle_errors);
}

#[test]
fn offsets_and_large_values() {
    let line = format!("core 1 1024 2 a 0 b {}", u64::MAX - LEN);
    let t = parse_line(&line, LEN).expect("largest offset");
    assert_eq!(t.legs().get(1).map(|l| l.offset), Some(u64::MAX - LEN));
    let t = parse_line("core 1 2147483648 2 a 0 b 0", 1 << 32).expect("largest region");
    assert_eq!(t.log.region_size, 1 << 31);
    assert_eq!(t.nr_regions(1 << 32), 2);
}

#[test]
fn leading_zeros_are_plain_decimal() {
    let t = ok("core 01 0008 02 a 007 b 0");
    assert_eq!(t.log.region_size, 8);
    assert_eq!(t.legs().len(), 2);
    assert_eq!(t.legs().first().map(|l| l.offset), Some(7));
}

#[test]
fn region_size_equal_to_length() {
    let t = parse_line("core 1 1024 2 a 0 b 0", 1024).expect("rs == len");
    assert_eq!(t.nr_regions(1024), 1);
    let t = parse_line("core 1 2 2 a 0 b 0", 2).expect("smallest");
    assert_eq!(t.nr_regions(2), 1);
}

#[test]
fn nr_regions_rounds_up() {
    let t = parse_line("core 1 8 2 a 0 b 0", 17).expect("parse");
    assert_eq!(t.nr_regions(17), 3);
    assert_eq!(t.nr_regions(16), 2);
    assert_eq!(t.nr_regions(1), 1);
    assert_eq!(t.nr_regions(0), 0);
    // Out of range for a length parse never saw: saturates.
    assert_eq!(t.nr_regions(u64::MAX), u32::MAX);
}

#[test]
fn region_count_at_the_u32_limit() {
    // Exactly u32::MAX regions of 2 sectors is allowed, one more is not.
    let len = 2 * u64::from(u32::MAX);
    let t = parse_line("core 1 2 2 a 0 b 0", len).expect("u32::MAX regions");
    assert_eq!(t.nr_regions(len), u32::MAX);
    assert_eq!(
        err_len("core 1 2 2 a 0 b 0", len + 1),
        TableError::TooManyRegions
    );
}

#[test]
fn table_borrows_from_args() {
    let owned = String::from("disk 2 /dev/mapper/log 64 2 /dev/x 0 /dev/y 16");
    let args = words(&owned);
    let t = parse(&args, LEN).expect("parse");
    assert!(core::ptr::eq(
        t.log.dev.map_or(core::ptr::null(), |d| d.as_ptr()),
        args.get(2).map_or(core::ptr::null(), |d| d.as_ptr())
    ));
}

// ---------------------------------------------------------------------------
// Malformed tables: every error variant
// ---------------------------------------------------------------------------

#[test]
fn zero_target_length() {
    assert_eq!(
        err_len("core 1 1024 2 a 0 b 0", 0),
        TableError::ZeroTargetLength
    );
}

#[test]
fn insufficient_log_args() {
    assert_eq!(err(""), TableError::InsufficientLogArgs);
    assert_eq!(err("core"), TableError::InsufficientLogArgs);
    assert_eq!(err("core 1"), TableError::InsufficientLogArgs);
    assert_eq!(err("disk 3 /dev/log 1024"), TableError::InsufficientLogArgs);
    // Counts that would wrap if the parser added 2 to them in 32 bits.
    assert_eq!(
        err("core 4294967295 1024 2 a 0 b 0"),
        TableError::InsufficientLogArgs
    );
    assert_eq!(
        err("core 4294967294 1024 2 a 0 b 0"),
        TableError::InsufficientLogArgs
    );
}

#[test]
fn invalid_log_arg_count() {
    assert_eq!(err("core x 1024 2 a 0 b 0"), TableError::InvalidLogArgCount);
    assert_eq!(
        err("core -1 1024 2 a 0 b 0"),
        TableError::InvalidLogArgCount
    );
    assert_eq!(
        err("core 4294967296 1024 2 a 0 b 0"),
        TableError::InvalidLogArgCount
    );
    assert_eq!(
        err("core 0x1 1024 2 a 0 b 0"),
        TableError::InvalidLogArgCount
    );
    assert_eq!(
        parse(&["core", "", "1024"], LEN).unwrap_err(),
        TableError::InvalidLogArgCount
    );
    assert_eq!(
        parse(&["core", " 1", "1024"], LEN).unwrap_err(),
        TableError::InvalidLogArgCount
    );
}

#[test]
fn unknown_log_type() {
    assert_eq!(
        err("clustered-core 1 1024 2 a 0 b 0"),
        TableError::UnknownLogType
    );
    assert_eq!(err("CORE 1 1024 2 a 0 b 0"), TableError::UnknownLogType);
    assert_eq!(
        err("userspace 1 1024 2 a 0 b 0"),
        TableError::UnknownLogType
    );
}

#[test]
fn wrong_log_arg_count() {
    assert_eq!(err("core 0 2 a 0 b 0"), TableError::WrongLogArgCount);
    assert_eq!(
        err("core 3 1024 sync x 2 a 0 b 0"),
        TableError::WrongLogArgCount
    );
    assert_eq!(err("disk 1 1024 2 a 0 b 0"), TableError::WrongLogArgCount);
    assert_eq!(
        err("disk 4 /dev/log 1024 sync x 2 a 0 b 0"),
        TableError::WrongLogArgCount
    );
}

#[test]
fn invalid_sync_argument() {
    assert_eq!(
        err("core 2 1024 async 2 a 0 b 0"),
        TableError::InvalidSyncArg
    );
    assert_eq!(
        err("core 2 1024 SYNC 2 a 0 b 0"),
        TableError::InvalidSyncArg
    );
    assert_eq!(
        err("disk 3 /dev/log 1024 handle_errors 2 a 0 b 0"),
        TableError::InvalidSyncArg
    );
    // A core log that got a device path first: "1024" is not a sync word.
    assert_eq!(
        err("core 2 /dev/log 1024 2 a 0 b 0"),
        TableError::InvalidSyncArg
    );
}

#[test]
fn invalid_region_size_not_a_number() {
    assert_eq!(err("core 1 abc 2 a 0 b 0"), TableError::InvalidRegionSize);
    assert_eq!(err("core 1 -8 2 a 0 b 0"), TableError::InvalidRegionSize);
    assert_eq!(err("core 1 +8 2 a 0 b 0"), TableError::InvalidRegionSize);
    assert_eq!(err("core 1 0x400 2 a 0 b 0"), TableError::InvalidRegionSize);
    assert_eq!(err("core 1 1024k 2 a 0 b 0"), TableError::InvalidRegionSize);
    assert_eq!(
        err("core 1 4294967296 2 a 0 b 0"),
        TableError::InvalidRegionSize
    );
    assert_eq!(
        err("core 1 99999999999999999999 2 a 0 b 0"),
        TableError::InvalidRegionSize
    );
    assert_eq!(
        parse(&["core", "1", "", "2", "a", "0", "b", "0"], LEN).unwrap_err(),
        TableError::InvalidRegionSize
    );
    // A disk log whose device is missing: the device takes the region
    // size's place.
    assert_eq!(
        err("disk 2 1024 nosync 2 a 0 b 0"),
        TableError::InvalidRegionSize
    );
}

#[test]
fn region_size_too_small() {
    assert_eq!(err("core 1 0 2 a 0 b 0"), TableError::RegionSizeTooSmall);
    assert_eq!(err("core 1 1 2 a 0 b 0"), TableError::RegionSizeTooSmall);
    assert_eq!(
        err("disk 2 /dev/log 1 2 a 0 b 0"),
        TableError::RegionSizeTooSmall
    );
}

#[test]
fn region_size_not_power_of_two() {
    assert_eq!(
        err("core 1 1000 2 a 0 b 0"),
        TableError::RegionSizeNotPowerOfTwo
    );
    assert_eq!(
        err("core 1 3 2 a 0 b 0"),
        TableError::RegionSizeNotPowerOfTwo
    );
    assert_eq!(
        err("core 1 4294967295 2 a 0 b 0"),
        TableError::RegionSizeNotPowerOfTwo
    );
}

#[test]
fn region_size_larger_than_target() {
    assert_eq!(
        err_len("core 1 2048 2 a 0 b 0", 1024),
        TableError::RegionSizeTooLarge
    );
    assert_eq!(
        err_len("core 1 2147483648 2 a 0 b 0", 1 << 20),
        TableError::RegionSizeTooLarge
    );
    assert_eq!(
        err_len("core 1 2 2 a 0 b 0", 1),
        TableError::RegionSizeTooLarge
    );
}

#[test]
fn region_count_overflows_u32() {
    assert_eq!(
        err_len("core 1 2 2 a 0 b 0", 1 << 40),
        TableError::TooManyRegions
    );
    assert_eq!(
        err_len("core 1 8 2 a 0 b 0", u64::MAX),
        TableError::TooManyRegions
    );
}

#[test]
fn invalid_mirror_count() {
    // Missing.
    assert_eq!(err("core 1 1024"), TableError::InvalidMirrorCount);
    // One leg, ten legs, zero legs.
    assert_eq!(err("core 1 1024 1 a 0"), TableError::InvalidMirrorCount);
    assert_eq!(err("core 1 1024 0"), TableError::InvalidMirrorCount);
    let mut ten = String::from("core 1 1024 10");
    for i in 0..10 {
        ten.push_str(&format!(" /dev/leg{i} 0"));
    }
    assert_eq!(err(&ten), TableError::InvalidMirrorCount);
    // Not a number, negative, huge.
    assert_eq!(
        err("core 1 1024 two a 0 b 0"),
        TableError::InvalidMirrorCount
    );
    assert_eq!(
        err("core 1 1024 -2 a 0 b 0"),
        TableError::InvalidMirrorCount
    );
    assert_eq!(
        err("core 1 1024 4294967298 a 0 b 0"),
        TableError::InvalidMirrorCount
    );
    assert_eq!(
        err("core 1 1024 2147483650 a 0 b 0"),
        TableError::InvalidMirrorCount
    );
    // The log argument count was one too small, so the sync word lands here.
    assert_eq!(
        err("core 1 1024 sync 2 a 0 b 0"),
        TableError::InvalidMirrorCount
    );
}

#[test]
fn too_few_mirror_args() {
    assert_eq!(err("core 1 1024 2"), TableError::TooFewMirrorArgs);
    assert_eq!(err("core 1 1024 2 a 0 b"), TableError::TooFewMirrorArgs);
    assert_eq!(err("core 1 1024 3 a 0 b 0"), TableError::TooFewMirrorArgs);
    assert_eq!(
        err("core 1 1024 9 a 0 b 0 c 0 d 0 e 0 f 0 g 0 h 0 i"),
        TableError::TooFewMirrorArgs
    );
}

#[test]
fn invalid_offset() {
    assert_eq!(err("core 1 1024 2 a x b 0"), TableError::InvalidOffset);
    assert_eq!(err("core 1 1024 2 a 0 b -1"), TableError::InvalidOffset);
    assert_eq!(err("core 1 1024 2 a 0 b 0x10"), TableError::InvalidOffset);
    assert_eq!(err("core 1 1024 2 a 0 b 10s"), TableError::InvalidOffset);
    assert_eq!(
        err("core 1 1024 2 a 0 b 99999999999999999999"),
        TableError::InvalidOffset
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 18446744073709551616"),
        TableError::InvalidOffset
    );
    // Fits u64, but offset + length does not.
    let line = format!("core 1 1024 2 a 0 b {}", u64::MAX - LEN + 1);
    assert_eq!(err(&line), TableError::InvalidOffset);
    assert_eq!(
        parse(&["core", "1", "1024", "2", "a", "", "b", "0"], LEN).unwrap_err(),
        TableError::InvalidOffset
    );
}

#[test]
fn invalid_feature_count() {
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 handle_errors"),
        TableError::InvalidFeatureCount
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 -1 handle_errors"),
        TableError::InvalidFeatureCount
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 4294967296 handle_errors"),
        TableError::InvalidFeatureCount
    );
}

#[test]
fn not_enough_feature_args() {
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 1"),
        TableError::NotEnoughFeatureArgs
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 2 handle_errors"),
        TableError::NotEnoughFeatureArgs
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 4294967295 handle_errors"),
        TableError::NotEnoughFeatureArgs
    );
}

#[test]
fn unrecognised_feature() {
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 1 block_on_error"),
        TableError::UnrecognisedFeature
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 2 handle_errors Keep_log"),
        TableError::UnrecognisedFeature
    );
}

#[test]
fn keep_log_without_handle_errors() {
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 1 keep_log"),
        TableError::KeepLogWithoutHandleErrors
    );
    assert_eq!(
        err("disk 2 /dev/log 1024 2 a 0 b 0 2 keep_log keep_log"),
        TableError::KeepLogWithoutHandleErrors
    );
}

#[test]
fn too_many_mirror_args() {
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 1 handle_errors keep_log"),
        TableError::TooManyMirrorArgs
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 0 handle_errors"),
        TableError::TooManyMirrorArgs
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 c 0"),
        TableError::InvalidFeatureCount
    );
    assert_eq!(
        err("core 1 1024 2 a 0 b 0 1 handle_errors extra"),
        TableError::TooManyMirrorArgs
    );
}

#[test]
fn check_order_follows_c() {
    // The sync word is checked before the region size, as in dm-log.
    assert_eq!(err("core 2 3 bogus 2 a 0 b 0"), TableError::InvalidSyncArg);
    // The log is checked before the mirrors, the mirrors before features.
    assert_eq!(err("core 1 3 1 a 0"), TableError::RegionSizeNotPowerOfTwo);
    assert_eq!(err("core 1 8 2 a x b 0 1 bogus"), TableError::InvalidOffset);
    // The announced log argument count is checked before the type name.
    assert_eq!(err("bogus 5 1"), TableError::InsufficientLogArgs);
}

#[test]
fn messages() {
    let all = [
        (
            TableError::ZeroTargetLength,
            "Mirror target length must not be zero",
        ),
        (
            TableError::InsufficientLogArgs,
            "Insufficient mirror log arguments",
        ),
        (
            TableError::InvalidLogArgCount,
            "Invalid mirror log argument count",
        ),
        (
            TableError::UnknownLogType,
            "Unknown mirror log type (expected core or disk)",
        ),
        (
            TableError::WrongLogArgCount,
            "Wrong number of arguments for the mirror log type",
        ),
        (
            TableError::InvalidSyncArg,
            "Unrecognised mirror log sync argument",
        ),
        (TableError::InvalidRegionSize, "Invalid region size"),
        (
            TableError::RegionSizeTooSmall,
            "Region size must be at least 2 sectors",
        ),
        (
            TableError::RegionSizeNotPowerOfTwo,
            "Region size must be a power of two",
        ),
        (
            TableError::RegionSizeTooLarge,
            "Region size exceeds the target length",
        ),
        (
            TableError::TooManyRegions,
            "Region count exceeds limit of 4294967295",
        ),
        (TableError::InvalidMirrorCount, "Invalid number of mirrors"),
        (TableError::TooFewMirrorArgs, "Too few mirror arguments"),
        (TableError::InvalidOffset, "Invalid offset"),
        (
            TableError::InvalidFeatureCount,
            "Invalid number of features",
        ),
        (
            TableError::NotEnoughFeatureArgs,
            "Not enough arguments to support feature count",
        ),
        (
            TableError::UnrecognisedFeature,
            "Unrecognised feature requested",
        ),
        (
            TableError::KeepLogWithoutHandleErrors,
            "keep_log feature requires the handle_errors feature",
        ),
        (TableError::TooManyMirrorArgs, "Too many mirror arguments"),
    ];
    for (i, (e, text)) in all.iter().enumerate() {
        assert_eq!(e.message().to_str(), Ok(*text));
        assert_eq!(e.message().to_bytes_with_nul().last(), Some(&0));
        assert_eq!(e.to_string(), *text);
        // Distinct variants have distinct messages.
        for (other, _) in all.iter().skip(i + 1) {
            assert_ne!(e, other);
            assert_ne!(e.message(), other.message());
        }
    }
}

// ---------------------------------------------------------------------------
// Formatting (byte-identical to the C target)
// ---------------------------------------------------------------------------

#[test]
fn table_log_part() {
    let mut s = String::new();
    write_table_log(&mut s, &ok("core 1 1024 2 a 0 b 0").log, None).unwrap();
    assert_eq!(s, "core 1 1024 ");
    s.clear();
    write_table_log(&mut s, &ok("core 2 1024 sync 2 a 0 b 0").log, None).unwrap();
    assert_eq!(s, "core 2 1024 sync ");
    s.clear();
    write_table_log(&mut s, &ok("core 2 1024 nosync 2 a 0 b 0").log, None).unwrap();
    assert_eq!(s, "core 2 1024 nosync ");
    s.clear();
    let t = ok("disk 2 /dev/log 1024 2 a 0 b 0");
    write_table_log(&mut s, &t.log, Some("253:2")).unwrap();
    assert_eq!(s, "disk 2 253:2 1024 ");
    s.clear();
    let t = ok("disk 3 /dev/log 1024 nosync 2 a 0 b 0");
    write_table_log(&mut s, &t.log, Some("253:2")).unwrap();
    assert_eq!(s, "disk 3 253:2 1024 nosync ");
    s.clear();
    // Without a resolved name, the path from the table is printed.
    write_table_log(&mut s, &t.log, None).unwrap();
    assert_eq!(s, "disk 3 /dev/log 1024 nosync ");
    // A disk log with no device at all cannot be printed.
    let bad = LogArgs { dev: None, ..t.log };
    assert!(write_table_log(&mut String::new(), &bad, None).is_err());
}

#[test]
fn full_table_lines() {
    let t = ok("core 1 1024 2 /dev/a 0 /dev/b 0 1 handle_errors");
    assert_eq!(
        table_string(&t, &["253:0", "253:1"], None),
        "core 1 1024 2 253:0 0 253:1 0 1 handle_errors"
    );
    let t = ok("core 2 1024 nosync 2 /dev/a 0 /dev/b 0");
    assert_eq!(
        table_string(&t, &["8:0", "8:16"], None),
        "core 2 1024 nosync 2 8:0 0 8:16 0"
    );
    let t = ok("disk 3 /dev/l 64 sync 3 /dev/a 8 /dev/b 16 /dev/c 24 2 keep_log handle_errors");
    assert_eq!(
        table_string(&t, &["253:0", "253:1", "253:3"], Some("253:2")),
        "disk 3 253:2 64 sync 3 253:0 8 253:1 16 253:3 24 2 handle_errors keep_log"
    );
    // Duplicated features print once, with the count of distinct ones.
    let t = ok("core 1 1024 2 a 0 b 0 3 handle_errors handle_errors handle_errors");
    assert_eq!(
        table_string(&t, &["a", "b"], None),
        "core 1 1024 2 a 0 b 0 1 handle_errors"
    );
    // Missing leg names fall back to the paths.
    let t = ok("core 1 1024 2 /dev/a 0 /dev/b 5");
    assert_eq!(
        table_string(&t, &["253:0"], None),
        "core 1 1024 2 253:0 0 /dev/b 5"
    );
}

#[test]
fn round_trips() {
    let lines = [
        "core 1 1024 2 /dev/sda 0 /dev/sdb 0",
        "core 2 1024 sync 2 /dev/sda 0 /dev/sdb 0",
        "core 2 1024 nosync 2 /dev/sda 0 /dev/sdb 0 1 handle_errors",
        "disk 2 /dev/log 8 3 a 1 b 2 c 3 2 handle_errors keep_log",
        "disk 3 /dev/log 8 nosync 4 a 1 b 2 c 3 d 4 2 keep_log handle_errors",
        "disk 3 253:9 2 sync 2 253:0 0 253:1 0 0",
        "core 01 0064 2 a 000 b 10 2 handle_errors handle_errors",
    ];
    for line in lines {
        round_trip(line, LEN);
    }
    let out = round_trip(
        "core 01 0064 2 a 000 b 10 2 handle_errors handle_errors",
        LEN,
    );
    assert_eq!(out, "core 1 64 2 a 0 b 10 1 handle_errors");
    let out = round_trip(
        "disk 3 /dev/log 8 nosync 4 a 1 b 2 c 3 d 4 2 keep_log handle_errors",
        LEN,
    );
    assert_eq!(
        out,
        "disk 3 /dev/log 8 nosync 4 a 1 b 2 c 3 d 4 2 handle_errors keep_log"
    );
    let big = format!("core 1 1048576 2 a {} b 0", u64::MAX - LEN);
    round_trip(&big, LEN);
}

#[test]
fn status_core() {
    assert_eq!(
        status_string(&["253:0", "253:16"], b"AA", 2048, 2048, LogStatus::Core),
        "2 253:0 253:16 2048/2048 1 AA 1 core"
    );
    assert_eq!(
        status_string(&["8:0", "8:16", "8:32"], b"ADS", 17, 4096, LogStatus::Core),
        "3 8:0 8:16 8:32 17/4096 1 ADS 1 core"
    );
}

#[test]
fn status_disk() {
    assert_eq!(
        status_string(
            &["253:0", "253:16"],
            b"AA",
            2048,
            2048,
            LogStatus::Disk {
                dev: "253:2",
                health: b'A'
            }
        ),
        "2 253:0 253:16 2048/2048 1 AA 3 disk 253:2 A"
    );
    assert_eq!(
        status_string(
            &["253:0", "253:16"],
            b"FR",
            0,
            u64::from(u32::MAX),
            LogStatus::Disk {
                dev: "253:2",
                health: b'D'
            }
        ),
        "2 253:0 253:16 0/4294967295 1 FR 3 disk 253:2 D"
    );
}

#[test]
fn status_length_mismatch_is_an_error() {
    let mut s = String::new();
    assert!(write_status(&mut s, &["a", "b"], b"A", 0, 1, LogStatus::Core).is_err());
    assert!(s.is_empty());
}

#[test]
fn health_chars_by_precedence() {
    let none = LegErrors::default();
    assert_eq!(health_char(none), b'A');
    let unknown = LegErrors {
        unknown: true,
        ..none
    };
    assert_eq!(health_char(unknown), b'U');
    let read = LegErrors {
        read: true,
        ..unknown
    };
    assert_eq!(health_char(read), b'R');
    let sync = LegErrors { sync: true, ..read };
    assert_eq!(health_char(sync), b'S');
    let write = LegErrors {
        write: true,
        ..sync
    };
    assert_eq!(health_char(write), b'D');
    let flush = LegErrors {
        flush: true,
        ..write
    };
    assert_eq!(health_char(flush), b'F');
    // Each flag alone.
    assert_eq!(health_char(LegErrors { read: true, ..none }), b'R');
    assert_eq!(health_char(LegErrors { sync: true, ..none }), b'S');
    assert_eq!(
        health_char(LegErrors {
            write: true,
            ..none
        }),
        b'D'
    );
    assert_eq!(
        health_char(LegErrors {
            flush: true,
            ..none
        }),
        b'F'
    );
    assert_eq!(
        health_char(LegErrors {
            flush: true,
            read: true,
            ..none
        }),
        b'F'
    );
}

// ---------------------------------------------------------------------------
// BoundedWriter
// ---------------------------------------------------------------------------

#[test]
fn bounded_writer_fits() {
    let mut buf = [0xffu8; 64];
    let mut w = BoundedWriter::new(&mut buf);
    assert!(w.is_empty());
    write_status(
        &mut w,
        &["253:0", "253:16"],
        b"AA",
        2048,
        2048,
        LogStatus::Core,
    )
    .unwrap();
    assert!(!w.is_truncated());
    assert_eq!(w.as_bytes(), b"2 253:0 253:16 2048/2048 1 AA 1 core");
    let n = w.len();
    w.finish_nul();
    assert_eq!(buf.get(n), Some(&0));
    assert_eq!(buf.get(n + 1), Some(&0xff));
}

#[test]
fn bounded_writer_exact_fit_keeps_room_for_nul() {
    let mut buf = [0xffu8; 6];
    let mut w = BoundedWriter::new(&mut buf);
    assert!(w.write_str("hello").is_ok());
    assert!(!w.is_truncated());
    assert_eq!(w.as_bytes(), b"hello");
    w.finish_nul();
    assert_eq!(&buf, b"hello\0");
}

#[test]
fn bounded_writer_truncates() {
    let mut buf = [0xffu8; 8];
    let mut w = BoundedWriter::new(&mut buf);
    let r = write_status(
        &mut w,
        &["253:0", "253:16"],
        b"AA",
        2048,
        2048,
        LogStatus::Core,
    );
    assert!(r.is_err());
    assert!(w.is_truncated());
    assert_eq!(w.len(), 7);
    assert_eq!(w.as_bytes(), b"2 253:0");
    // Later writes are dropped even if they would fit.
    assert!(w.write_str("").is_err());
    assert_eq!(w.len(), 7);
    w.finish_nul();
    assert_eq!(&buf, b"2 253:0\0");
}

#[test]
fn bounded_writer_tiny_buffers() {
    let mut empty: [u8; 0] = [];
    let mut w = BoundedWriter::new(&mut empty);
    assert!(write!(w, "x").is_err());
    assert!(w.is_truncated());
    assert_eq!(w.len(), 0);
    w.finish_nul();

    let mut one = [0xffu8; 1];
    let mut w = BoundedWriter::new(&mut one);
    assert!(w.write_str("").is_ok());
    assert!(w.write_str("x").is_err());
    assert!(w.as_bytes().is_empty());
    w.finish_nul();
    assert_eq!(one, [0]);
}

#[test]
fn bounded_writer_cuts_at_char_boundary() {
    let mut buf = [0xffu8; 4];
    let mut w = BoundedWriter::new(&mut buf);
    assert!(w.write_str("ab\u{e9}").is_err());
    assert_eq!(w.as_bytes(), b"ab");
    assert!(w.is_truncated());
}

#[test]
fn bounded_writer_table_line() {
    let t = ok("core 1 1024 2 /dev/a 0 /dev/b 0 1 handle_errors");
    let expected = "core 1 1024 2 253:0 0 253:1 0 1 handle_errors";
    for size in 0..=expected.len() + 2 {
        let mut buf = vec![0xffu8; size];
        let mut w = BoundedWriter::new(&mut buf);
        let r = write_table(&mut w, &t, &["253:0", "253:1"], None);
        let keep = size.saturating_sub(1).min(expected.len());
        assert_eq!(w.as_bytes(), &expected.as_bytes()[..keep], "size {size}");
        assert_eq!(r.is_err(), size <= expected.len());
        assert_eq!(w.is_truncated(), size <= expected.len());
        w.finish_nul();
        if size > 0 {
            assert_eq!(buf.get(keep), Some(&0));
        }
    }
}
