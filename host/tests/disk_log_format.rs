//! Tests of the disk dirty log's on-disk format and resume rules
//! (`disk_log_format.rs`, shared with the kernel module), against the
//! behaviour and byte layout of the C dm-log disk log.

use dm_mirror_rs_host::disk_log_format::{
    bits_from_disk, bits_to_disk, bitset_bytes, buffer_len, buffer_sectors, resume_plan, Header,
    ResumePlan, ResumeSource, Touched, HEADER_LEN, LOG_MAGIC, LOG_OFFSET, LOG_VERSION,
};
use dm_mirror_rs_host::log_bits::RegionBits;
use dm_mirror_rs_host::table::SyncMode;

mod common;
use common::{Rng, Words};

const MODES: [SyncMode; 3] = [SyncMode::Default, SyncMode::Sync, SyncMode::NoSync];

fn bits(nr: u32, value: bool) -> RegionBits<Words> {
    RegionBits::new(Words(vec![0; nr.div_ceil(64) as usize]), nr, value)
}

/// A log buffer of `nr` regions (512-byte blocks) filled with `fill`.
fn buffer(nr: u32, fill: u8) -> Vec<u8> {
    vec![fill; buffer_len(nr, 512).unwrap()]
}

/// A buffer as the C log leaves it: a valid header for `disk_nr` regions and
/// a clean bitset with exactly the regions in `dirty` clear below `disk_nr`.
fn c_buffer(buf_nr: u32, disk_nr: u32, dirty: &[u32]) -> Vec<u8> {
    let mut buf = buffer(buf_nr.max(disk_nr), 0);
    Header::new(u64::from(disk_nr)).encode(&mut buf).unwrap();
    for i in 0..disk_nr {
        if !dirty.contains(&i) {
            buf[LOG_OFFSET + i as usize / 8] |= 1 << (i % 8);
        }
    }
    buf
}

fn disk_bit(buf: &[u8], i: u32) -> bool {
    buf[LOG_OFFSET + i as usize / 8] & (1 << (i % 8)) != 0
}

/// Plans, applies, and returns the plan, the clean bits and the new buffer.
fn resume(
    read_ok: bool,
    buf: &[u8],
    nr: u32,
    sync: SyncMode,
) -> (ResumePlan, RegionBits<Words>, Vec<u8>) {
    let plan = resume_plan(read_ok, buf, nr, sync);
    let mut out = buf.to_vec();
    let mut clean = RegionBits::new(Words(vec![0xDEAD_BEEF; nr.div_ceil(64) as usize]), nr, true);
    plan.apply(&mut out, &mut clean).unwrap();
    assert_eq!(plan.sync_count, clean.count(), "sync_count is the popcount");
    assert_eq!(plan.header, Header::decode(&out).unwrap());
    assert_eq!(plan.header.nr_regions, u64::from(nr));
    assert_tail_clear(&out, nr);
    // The in-sync bits are a copy of the clean bits, read back from the
    // applied buffer.
    let mut in_sync = bits(nr, false);
    bits_from_disk(&out, &mut in_sync).unwrap();
    assert_eq!(in_sync.words(), clean.words());
    (plan, clean, out)
}

/// Bits from `nr` to the end of the on-disk bitset are clear.
fn assert_tail_clear(buf: &[u8], nr: u32) {
    let end = nr.div_ceil(64) * 64;
    for i in nr..end {
        assert!(!disk_bit(buf, i), "bit {i} past {nr} is set");
    }
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

#[test]
fn constants_match_dm_log() {
    assert_eq!(LOG_MAGIC, 0x4D69_5272);
    assert_eq!(LOG_VERSION, 2);
    assert_eq!(LOG_OFFSET, 2 * 512);
    assert_eq!(HEADER_LEN, 16);
}

#[test]
fn header_exact_bytes() {
    let mut buf = [0u8; 16];
    Header::new(0x0102_0304_0506_0708).encode(&mut buf).unwrap();
    assert_eq!(
        buf,
        [0x72, 0x52, 0x69, 0x4d, 2, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
    );
    assert_eq!(&buf[0..4], b"rRiM");
}

#[test]
fn header_round_trip() {
    for h in [
        Header::new(0),
        Header::new(1),
        Header::new(u64::MAX),
        Header {
            magic: 0xFFFF_FFFF,
            version: 7,
            nr_regions: 1 << 40,
        },
        Header {
            magic: 0,
            version: 0,
            nr_regions: 100,
        },
    ] {
        let mut buf = vec![0x55; 2048];
        h.encode(&mut buf).unwrap();
        assert_eq!(Header::decode(&buf), Some(h));
        assert_eq!(Header::decode(&buf[..16]), Some(h));
    }
}

#[test]
fn header_short_buffers() {
    let buf = [0x72, 0x52, 0x69, 0x4d, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    assert_eq!(Header::decode(&buf), None);
    assert_eq!(Header::decode(&[]), None);
    let mut short = [0xAAu8; 15];
    assert_eq!(Header::new(5).encode(&mut short), None);
    assert_eq!(short, [0xAA; 15], "a failed encode writes nothing");
}

#[test]
fn header_encode_preserves_the_rest_of_the_buffer() {
    let mut buf: Vec<u8> = (0..1536u32).map(|i| (i * 7 + 3) as u8).collect();
    let before = buf.clone();
    Header::new(12345).encode(&mut buf).unwrap();
    assert_eq!(buf[16..], before[16..], "bytes 16.. untouched");
}

// ---------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------

#[test]
fn bitset_bytes_are_whole_words() {
    assert_eq!(bitset_bytes(0), Some(0));
    assert_eq!(bitset_bytes(1), Some(8));
    assert_eq!(bitset_bytes(64), Some(8));
    assert_eq!(bitset_bytes(65), Some(16));
    assert_eq!(bitset_bytes(100), Some(16));
    assert_eq!(bitset_bytes(8192), Some(1024));
    assert_eq!(bitset_bytes(4_000_000), Some(500_000));
    assert_eq!(bitset_bytes(u32::MAX), Some(1 << 29));
}

#[test]
fn buffer_len_512_byte_blocks() {
    for (nr, len) in [
        (1, 1536),
        (64, 1536),
        (65, 1536),
        (4096, 1536),
        (4097, 2048),
        (8192, 2048),
        (4_000_000, 501_248),
    ] {
        assert_eq!(buffer_len(nr, 512), Some(len), "nr {nr}");
    }
}

#[test]
fn buffer_len_4096_byte_blocks() {
    for (nr, len) in [
        (1, 4096),
        (64, 4096),
        (65, 4096),
        (8192, 4096),
        (24_576, 4096),
        (24_577, 8192),
        (4_000_000, 503_808),
    ] {
        assert_eq!(buffer_len(nr, 4096), Some(len), "nr {nr}");
    }
}

#[test]
fn buffer_len_edges() {
    assert_eq!(buffer_len(10, 0), None);
    assert_eq!(buffer_len(0, 512), Some(1024));
    assert_eq!(buffer_len(u32::MAX, 512), Some(1024 + (1 << 29)));
    assert_eq!(buffer_len(u32::MAX, 4096), Some(4096 + (1 << 29)));
    // dm_round_up works for any multiple, not only powers of two.
    assert_eq!(buffer_len(1, 1000), Some(2000));
    assert_eq!(buffer_len(1, 1), Some(1032));
    assert_eq!(buffer_sectors(1536), 3);
    assert_eq!(buffer_sectors(4096), 8);
    assert_eq!(buffer_sectors(buffer_len(4_000_000, 512).unwrap()), 979);
}

// ---------------------------------------------------------------------------
// Bitset
// ---------------------------------------------------------------------------

#[test]
fn bit_order_on_disk() {
    let mut b = bits(100, false);
    b.set(0, true);
    b.set(9, true);
    b.set(99, true);
    let mut buf = buffer(100, 0);
    bits_to_disk(&b, &mut buf).unwrap();
    assert_eq!(buf[1024], 0b0000_0001, "region 0 = byte 1024 bit 0");
    assert_eq!(buf[1025], 0b0000_0010, "region 9 = byte 1025 bit 1");
    assert_eq!(buf[1024 + 12], 0b0000_1000, "region 99 = byte 1036 bit 3");
    let set: usize = buf.iter().map(|b| b.count_ones() as usize).sum();
    assert_eq!(set, 3);
}

#[test]
fn bits_from_disk_reads_le_bits_and_ignores_the_tail() {
    let mut buf = buffer(70, 0);
    buf[1024] = 0b0000_0001; // region 0
    buf[1025] = 0b0000_0010; // region 9
    buf[1024 + 8] = 0b1111_1100; // regions 66..69, and 70, 71 past the end
    buf[1024 + 15] = 0xFF; // past the end
    let mut b = bits(70, true);
    bits_from_disk(&buf, &mut b).unwrap();
    let set: Vec<u32> = (0..70).filter(|&i| b.get(i)).collect();
    assert_eq!(set, [0, 9, 66, 67, 68, 69]);
    assert_eq!(b.count(), 6, "no bit past 70 is loaded");
    assert_eq!(b.words(), [0x201, 0b11_1100]);
}

#[test]
fn bits_short_buffers() {
    // 65 regions need 16 bytes of bitset.
    let buf = vec![0xFF; 1024 + 8];
    let mut b = bits(65, false);
    assert_eq!(bits_from_disk(&buf, &mut b), None);
    let mut out = vec![0x11; 1024 + 15];
    assert_eq!(bits_to_disk(&bits(65, true), &mut out), None);
    assert!(
        out.iter().all(|&x| x == 0x11),
        "a failed store writes nothing"
    );
    // 64 regions fit exactly.
    let mut out = vec![0x11; 1024 + 8];
    bits_to_disk(&bits(64, true), &mut out).unwrap();
    assert!(out[1024..].iter().all(|&x| x == 0xFF));
}

#[test]
fn bits_to_disk_touches_only_the_bitset() {
    let nr = 100;
    let mut buf: Vec<u8> = (0..buffer_len(nr, 4096).unwrap())
        .map(|i| (i * 13 + 1) as u8)
        .collect();
    let before = buf.clone();
    bits_to_disk(&bits(nr, true), &mut buf).unwrap();
    assert_eq!(buf[..1024], before[..1024]);
    assert_eq!(buf[1040..], before[1040..], "padding past the bitset kept");
    assert!(buf[1024..1036].iter().all(|&x| x == 0xFF));
    assert_eq!(buf[1036], 0x0F);
    assert!(buf[1037..1040].iter().all(|&x| x == 0));
}

#[test]
fn bits_round_trip() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for nr in [1, 7, 63, 64, 65, 127, 128, 129, 1000, 8192] {
        let mut b = bits(nr, false);
        for i in 0..nr {
            b.set(i, rng.below(3) == 0);
        }
        let mut buf = buffer(nr, 0xFF);
        bits_to_disk(&b, &mut buf).unwrap();
        for i in 0..nr {
            assert_eq!(disk_bit(&buf, i), b.get(i), "nr {nr} bit {i}");
        }
        assert_tail_clear(&buf, nr);
        let mut back = bits(nr, true);
        bits_from_disk(&buf, &mut back).unwrap();
        assert_eq!(back.words(), b.words(), "nr {nr}");
    }
}

// ---------------------------------------------------------------------------
// Golden vector: 100 regions, regions 3 and 70 dirty
// ---------------------------------------------------------------------------

/// The buffer the C dm-log writes for 100 regions with every region clean
/// but 3 and 70, on a device with 512-byte logical blocks.
fn golden() -> Vec<u8> {
    let mut buf = vec![0u8; 1536];
    buf[..16].copy_from_slice(&[
        0x72, 0x52, 0x69, 0x4d, // magic
        0x02, 0x00, 0x00, 0x00, // version
        0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 100 regions
    ]);
    buf[1024..1040].copy_from_slice(&[
        0xF7, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // 0..63, 3 dirty
        0xBF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00, 0x00, 0x00, // 64..127, 70 dirty
    ]);
    buf
}

#[test]
fn golden_vector_decodes() {
    let buf = golden();
    assert_eq!(buf.len(), buffer_len(100, 512).unwrap());
    assert_eq!(Header::decode(&buf), Some(Header::new(100)));
    let mut b = bits(100, false);
    bits_from_disk(&buf, &mut b).unwrap();
    assert_eq!(b.count(), 98);
    assert!(!b.get(3) && !b.get(70));
    assert!((0..100).filter(|&i| i != 3 && i != 70).all(|i| b.get(i)));
    assert_eq!(c_buffer(100, 100, &[3, 70]), golden());
}

#[test]
fn golden_vector_encodes_and_resumes_unchanged() {
    let mut b = bits(100, true);
    b.set(3, false);
    b.set(70, false);
    let mut buf = vec![0u8; 1536];
    Header::new(100).encode(&mut buf).unwrap();
    bits_to_disk(&b, &mut buf).unwrap();
    assert_eq!(buf, golden());

    let (plan, clean, out) = resume(true, &golden(), 100, SyncMode::Default);
    assert_eq!(plan.source, ResumeSource::Disk { nr_regions: 100 });
    assert!(!plan.log_failed && !plan.is_fresh());
    assert_eq!(plan.sync_count, 98);
    assert_eq!(clean.words(), b.words());
    assert_eq!(out, golden(), "resuming rewrites the same bytes");
    // 100 is not a multiple of 64: the tail clear touches `dirtied`.
    assert_eq!(
        plan.touched,
        Touched {
            cleaned: false,
            dirtied: true
        }
    );
}

// ---------------------------------------------------------------------------
// Resume
// ---------------------------------------------------------------------------

#[test]
fn resume_bad_magic_starts_afresh() {
    for sync in MODES {
        let mut buf = c_buffer(200, 200, &[5]);
        buf[0] ^= 1;
        let (plan, clean, out) = resume(true, &buf, 200, sync);
        let nosync = sync == SyncMode::NoSync;
        let source = if sync == SyncMode::Default {
            ResumeSource::BadMagic
        } else {
            ResumeSource::TableSyncMode
        };
        assert_eq!(plan.source, source);
        assert!(plan.is_fresh() && !plan.log_failed);
        assert_eq!(plan.header, Header::new(200));
        assert_eq!(clean.count(), if nosync { 200 } else { 0 });
        assert_eq!(out[..16], golden_header(200));
    }
}

fn golden_header(nr: u64) -> [u8; 16] {
    let mut h = [0x72, 0x52, 0x69, 0x4d, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    h[8..].copy_from_slice(&nr.to_le_bytes());
    h
}

#[test]
fn resume_read_failure_default_is_all_out_of_sync() {
    let buf = c_buffer(100, 100, &[]);
    for sync in [SyncMode::Default, SyncMode::Sync] {
        let (plan, clean, out) = resume(false, &buf, 100, sync);
        assert_eq!(plan.source, ResumeSource::ReadFailed);
        assert!(plan.log_failed && plan.is_fresh());
        assert_eq!(plan.sync_count, 0);
        assert_eq!(clean.count(), 0);
        assert_eq!(Header::decode(&out), Some(Header::new(100)));
        assert!(plan.touched.dirtied && !plan.touched.cleaned);
    }
}

#[test]
fn resume_read_failure_nosync_is_all_in_sync() {
    // The C quirk: the nosync loop sets every bit even on a failed read.
    let buf = buffer(100, 0);
    let (plan, clean, _) = resume(false, &buf, 100, SyncMode::NoSync);
    assert!(plan.log_failed);
    assert_eq!(plan.sync_count, 100);
    assert_eq!(clean.count(), 100);
    assert!(plan.touched.cleaned && plan.touched.dirtied);
}

#[test]
fn resume_explicit_sync_ignores_a_valid_log() {
    let buf = c_buffer(300, 300, &[]);
    let (plan, clean, out) = resume(true, &buf, 300, SyncMode::Sync);
    assert_eq!(plan.source, ResumeSource::TableSyncMode);
    assert!(plan.is_fresh() && !plan.log_failed);
    assert_eq!((plan.sync_count, clean.count()), (0, 0));
    assert!(out[1024..1024 + 40].iter().all(|&x| x == 0));
    assert_eq!(
        plan.touched,
        Touched {
            cleaned: false,
            dirtied: true
        }
    );
}

#[test]
fn resume_explicit_nosync_ignores_a_valid_log() {
    let buf = c_buffer(300, 300, &[0, 1, 2, 299]);
    let (plan, clean, out) = resume(true, &buf, 300, SyncMode::NoSync);
    assert_eq!(plan.source, ResumeSource::TableSyncMode);
    assert!(plan.is_fresh() && !plan.log_failed);
    assert_eq!((plan.sync_count, clean.count()), (300, 300));
    assert!((0..300).all(|i| disk_bit(&out, i)));
    assert_eq!(
        plan.touched,
        Touched {
            cleaned: true,
            dirtied: true
        }
    );
}

#[test]
fn resume_default_keeps_a_valid_log() {
    let dirty = [0, 63, 64, 127];
    let buf = c_buffer(128, 128, &dirty);
    let (plan, clean, out) = resume(true, &buf, 128, SyncMode::Default);
    assert_eq!(plan.source, ResumeSource::Disk { nr_regions: 128 });
    assert_eq!((plan.keep_below, plan.new_bits), (128, false));
    assert_eq!(plan.sync_count, 124);
    assert!(dirty.iter().all(|&i| !clean.get(i)));
    assert_eq!(out, buf);
    // A multiple of 64 regions and no new ones: nothing touched.
    assert_eq!(plan.touched, Touched::default());
}

#[test]
fn resume_grown_device_clears_new_regions() {
    let buf = c_buffer(200, 100, &[3]);
    let (plan, clean, out) = resume(true, &buf, 200, SyncMode::Default);
    assert_eq!(plan.source, ResumeSource::Disk { nr_regions: 100 });
    assert_eq!(plan.keep_below, 100);
    assert_eq!(plan.sync_count, 99);
    assert!((0..100).all(|i| clean.get(i) == (i != 3)));
    assert!((100..200).all(|i| !clean.get(i)));
    assert_eq!(Header::decode(&out), Some(Header::new(200)));
    assert_eq!(
        plan.touched,
        Touched {
            cleaned: false,
            dirtied: true
        }
    );
}

#[test]
fn resume_grown_device_nosync() {
    // nosync always starts afresh, so the new regions (and the old ones)
    // are all in sync.
    let buf = c_buffer(200, 100, &[3]);
    let (plan, clean, _) = resume(true, &buf, 200, SyncMode::NoSync);
    assert!(plan.is_fresh());
    assert_eq!(plan.sync_count, 200);
    assert_eq!(clean.count(), 200);
    assert!(plan.touched.cleaned);
}

#[test]
fn resume_shrunk_device_keeps_remaining_bits_and_clears_the_tail() {
    let buf = c_buffer(200, 200, &[3, 90]);
    let (plan, clean, out) = resume(true, &buf, 100, SyncMode::Default);
    assert_eq!(plan.source, ResumeSource::Disk { nr_regions: 200 });
    assert_eq!(plan.sync_count, 98);
    assert!((0..100).all(|i| clean.get(i) == (i != 3 && i != 90)));
    // Bits 100..127 (the rest of the last word) cleared on disk; the old
    // bits 128..199 now lie past the bitset and are left as they were.
    assert!((100..128).all(|i| !disk_bit(&out, i)));
    assert!((128..200).all(|i| disk_bit(&out, i)));
    assert_eq!(Header::decode(&out), Some(Header::new(100)));
    assert_eq!(
        plan.touched,
        Touched {
            cleaned: false,
            dirtied: true
        }
    );
}

#[test]
fn resume_clears_stray_bits_past_the_region_count() {
    let mut buf = c_buffer(70, 70, &[]);
    buf[1024 + 8] = 0xFF; // regions 64..69 and stray 70, 71
    buf[1024 + 15] = 0x80; // stray 127
    let (plan, clean, out) = resume(true, &buf, 70, SyncMode::Default);
    assert_eq!(plan.sync_count, 70);
    assert_eq!(clean.count(), 70);
    assert_eq!(out[1024 + 8], 0x3F);
    assert_eq!(out[1024 + 15], 0);
}

#[test]
fn resume_unknown_version_fails_the_log_and_keeps_the_version() {
    let mut buf = c_buffer(100, 100, &[]);
    buf[4] = 3;
    let (plan, clean, out) = resume(true, &buf, 100, SyncMode::Default);
    assert_eq!(plan.source, ResumeSource::BadVersion { version: 3 });
    assert!(plan.log_failed && plan.is_fresh());
    assert_eq!(clean.count(), 0);
    assert_eq!(
        Header::decode(&out),
        Some(Header {
            magic: LOG_MAGIC,
            version: 3,
            nr_regions: 100
        })
    );
    // With an explicit sync mode the header is fresh, so version 3 is fine.
    let (plan, _, out) = resume(true, &buf, 100, SyncMode::NoSync);
    assert!(!plan.log_failed);
    assert_eq!(Header::decode(&out), Some(Header::new(100)));
}

#[test]
fn resume_version_1_is_read_as_version_2() {
    let mut buf = c_buffer(100, 100, &[7]);
    buf[4] = 1;
    let (plan, clean, out) = resume(true, &buf, 100, SyncMode::Default);
    assert_eq!(plan.source, ResumeSource::Disk { nr_regions: 100 });
    assert!(!plan.log_failed);
    assert_eq!(plan.sync_count, 99);
    assert!(!clean.get(7));
    assert_eq!(out[4], 2, "rewritten as version 2");
}

#[test]
fn resume_truncates_the_header_region_count_to_32_bits() {
    let mut buf = c_buffer(100, 100, &[]);
    Header::new((1 << 32) + 5).encode(&mut buf).unwrap();
    let (plan, clean, _) = resume(true, &buf, 100, SyncMode::Default);
    assert_eq!(
        plan.source,
        ResumeSource::Disk {
            nr_regions: (1 << 32) + 5
        }
    );
    assert_eq!(plan.keep_below, 5);
    assert_eq!(clean.count(), 5);
    assert!((0..5).all(|i| clean.get(i)));
}

#[test]
fn resume_short_buffer_is_a_read_failure() {
    let buf = c_buffer(100, 100, &[]);
    let plan = resume_plan(true, &buf[..1030], 100, SyncMode::Default);
    assert_eq!(plan.source, ResumeSource::ReadFailed);
    assert!(plan.log_failed);
    assert_eq!(plan.sync_count, 0);
    let mut short = buf[..1030].to_vec();
    let mut clean = bits(100, true);
    assert_eq!(plan.apply(&mut short, &mut clean), None);
    assert_eq!(clean.count(), 100, "a failed apply changes nothing");
    assert_eq!(short, buf[..1030]);
}

#[test]
fn resume_apply_rejects_a_bitset_of_the_wrong_size() {
    let buf = c_buffer(100, 100, &[]);
    let plan = resume_plan(true, &buf, 100, SyncMode::Default);
    let mut out = buf.clone();
    assert_eq!(plan.apply(&mut out, &mut bits(99, false)), None);
    assert_eq!(plan.apply(&mut out, &mut bits(101, false)), None);
    assert_eq!(out, buf);
}

#[test]
fn resume_preserves_bytes_16_to_1023_and_the_padding() {
    let nr = 100;
    let mut buf: Vec<u8> = (0..buffer_len(nr, 4096).unwrap())
        .map(|i| (i * 31 + 7) as u8)
        .collect();
    Header::new(u64::from(nr)).encode(&mut buf).unwrap();
    for sync in MODES {
        for read_ok in [true, false] {
            let (_, _, out) = resume(read_ok, &buf, nr, sync);
            assert_eq!(out[16..1024], buf[16..1024]);
            assert_eq!(out[1040..], buf[1040..]);
        }
    }
}

#[test]
fn resume_large_log() {
    let nr = 4_000_000;
    let dirty = [0, 1_234_567, 3_999_999];
    let mut buf = vec![0xFF; buffer_len(nr, 4096).unwrap()];
    Header::new(u64::from(nr)).encode(&mut buf).unwrap();
    for i in dirty {
        buf[LOG_OFFSET + i as usize / 8] &= !(1 << (i % 8));
    }
    let (plan, clean, out) = resume(true, &buf, nr, SyncMode::Default);
    assert_eq!(plan.sync_count, u64::from(nr) - 3);
    assert!(dirty.iter().all(|&i| !clean.get(i)));
    assert_eq!(out[LOG_OFFSET + 500_000..], buf[LOG_OFFSET + 500_000..]);
}

/// The C `disk_resume`, transcribed bit by bit on the byte buffer. Returns
/// the sync count, whether the log device failed and the touched flags.
fn c_disk_resume(read_ok: bool, buf: &mut [u8], rc: u32, sync: SyncMode) -> (u64, bool, Touched) {
    let mut failed = false;
    let mut header = Header::new(0);
    if !read_ok {
        failed = true;
    } else {
        header = Header::decode(buf).unwrap();
        if sync != SyncMode::Default || header.magic != LOG_MAGIC {
            header = Header::new(0);
        }
        if header.version == 1 {
            header.version = 2;
        }
        if header.version != LOG_VERSION {
            failed = true;
        }
    }
    if failed {
        header.nr_regions = 0;
    }
    let mut touched = Touched::default();
    let put = |buf: &mut [u8], i: u32, v: bool, t: &mut Touched| {
        let byte = &mut buf[LOG_OFFSET + i as usize / 8];
        if v {
            *byte |= 1 << (i % 8);
            t.cleaned = true;
        } else {
            *byte &= !(1 << (i % 8));
            t.dirtied = true;
        }
    };
    for i in (header.nr_regions as u32)..rc {
        put(buf, i, sync == SyncMode::NoSync, &mut touched);
    }
    let mut i = rc;
    while i % 64 != 0 {
        put(buf, i, false, &mut touched);
        i += 1;
    }
    let end = LOG_OFFSET + bitset_bytes(rc).unwrap();
    let count = buf[LOG_OFFSET..end]
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    header.nr_regions = u64::from(rc);
    header.encode(buf).unwrap();
    (count, failed, touched)
}

#[test]
fn resume_matches_a_transcription_of_the_c_code() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..2000 {
        let rc = 1 + rng.below(300) as u32;
        let disk_nr = match rng.below(4) {
            0 => u64::from(rc),
            1 => rng.below(400),
            2 => (1 << 32) + rng.below(400),
            _ => rng.next(),
        };
        let sync = MODES[rng.below(3) as usize];
        let read_ok = rng.below(8) != 0;
        let mut buf = buffer(rc, 0);
        for b in buf.iter_mut() {
            *b = rng.next() as u8;
        }
        let header = Header {
            magic: if rng.below(6) == 0 {
                rng.next() as u32
            } else {
                LOG_MAGIC
            },
            version: [1, 2, 2, 2, 3, 0][rng.below(6) as usize],
            nr_regions: disk_nr,
        };
        header.encode(&mut buf).unwrap();

        let mut expect = buf.clone();
        let (count, failed, touched) = c_disk_resume(read_ok, &mut expect, rc, sync);
        let (plan, _, out) = resume(read_ok, &buf, rc, sync);
        assert_eq!(plan.sync_count, count, "round {round}");
        assert_eq!(plan.log_failed, failed, "round {round}");
        assert_eq!(plan.touched, touched, "round {round}");
        if read_ok {
            // Including an unknown version, which both keep.
            assert_eq!(out, expect, "round {round}");
        } else {
            // After a failed read C writes a stale header; we write a fresh
            // one. The bitset and every other byte agree.
            assert_eq!(out[16..], expect[16..], "round {round}");
            assert_eq!(Header::decode(&out), Some(Header::new(u64::from(rc))));
        }
    }
}

// ---------------------------------------------------------------------------
// Flush ordering
// ---------------------------------------------------------------------------

#[test]
fn flush_nothing_touched_writes_nothing() {
    let t = Touched::default();
    assert!(!t.needs_write());
    assert!(!t.flush_legs_first());
    assert!(!t.preflush_after_write());
}

#[test]
fn flush_cleaned_only_flushes_legs_then_writes_without_preflush() {
    let mut t = Touched {
        cleaned: true,
        dirtied: false,
    };
    assert!(t.needs_write() && t.flush_legs_first());
    assert!(!t.preflush_after_write());
    t.written();
    assert_eq!(t, Touched::default());
}

#[test]
fn flush_dirtied_writes_then_preflushes() {
    let mut t = Touched {
        cleaned: false,
        dirtied: true,
    };
    assert!(t.needs_write() && !t.flush_legs_first());
    t.written();
    assert!(t.preflush_after_write());
    // A failed PREFLUSH keeps the flag, so the next flush retries it.
    assert!(t.dirtied);
    t.preflushed();
    assert_eq!(t, Touched::default());
}

#[test]
fn flush_failed_leg_flush_marks_everything_dirty() {
    let mut t = Touched {
        cleaned: true,
        dirtied: false,
    };
    t.mark_all_dirty(0);
    assert!(!t.dirtied, "no bit to clear, no flag");
    t.mark_all_dirty(10);
    assert!(t.dirtied);
    // Write failed: both flags stay.
    assert_eq!(
        t,
        Touched {
            cleaned: true,
            dirtied: true
        }
    );
    t.written();
    assert!(!t.cleaned && t.preflush_after_write());
}
