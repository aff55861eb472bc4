//! Fuzzes the disk log's format code (`disk_log_format.rs`) with arbitrary
//! log buffers: nothing may panic, and a resume must leave a consistent log.
//!
//! Input layout: 4 bytes region count (little-endian, reduced to at most
//! 2048, or 2^17 with a flag), 1 byte logical block size choice, 1 byte of
//! flags (sync mode, read failure, short buffer, large log), then the buffer
//! contents. The buffer is the rest
//! of the input repeated (or zeros) up to the log's buffer length, so that
//! small inputs still reach the bitset at byte 1024; with the short-buffer
//! flag the rest of the input is used as is, whatever its length.

#![no_main]

use dm_mirror_rs_host::disk_log_format::{
    bits_from_disk, bits_to_disk, bitset_bytes, buffer_len, resume_plan, Header, ResumeSource,
    HEADER_LEN, LOG_MAGIC, LOG_OFFSET,
};
use dm_mirror_rs_host::log_bits::{RegionBits, WordStore};
use dm_mirror_rs_host::table::SyncMode;
use libfuzzer_sys::fuzz_target;

struct Words(Vec<u64>);

impl WordStore for Words {
    fn words(&self) -> &[u64] {
        &self.0
    }

    fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

const BLOCK_SIZES: [u32; 8] = [512, 1024, 4096, 65536, 1, 0, 3000, u32::MAX];

/// A bitset of `nr` regions, all `value`, over storage that held garbage.
fn bits(nr: u32, value: bool) -> RegionBits<Words> {
    RegionBits::new(
        Words(vec![0xA5A5_5A5A_0F0F_F0F0; nr.div_ceil(64) as usize]),
        nr,
        value,
    )
}

fn disk_bit(buf: &[u8], i: u32) -> bool {
    buf[LOG_OFFSET + i as usize / 8] & (1 << (i % 8)) != 0
}

fn check_buffer_len(nr: u32, block: u32) {
    let len = buffer_len(nr, block);
    if block == 0 {
        assert_eq!(len, None);
        return;
    }
    let needed = LOG_OFFSET + bitset_bytes(nr).unwrap();
    let len = len.unwrap();
    let block = block as usize;
    assert_eq!(len % block, 0);
    assert!(len >= needed && len - needed < block);
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<6>() else {
        return;
    };
    let raw_nr = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let block = BLOCK_SIZES[usize::from(head[4]) % BLOCK_SIZES.len()];
    let flags = head[5];
    // Mostly small logs (fast runs), sometimes up to 2^17 regions.
    let nr = raw_nr
        % if flags & 0x10 != 0 {
            (1 << 17) + 1
        } else {
            2049
        };
    let sync = [SyncMode::Default, SyncMode::Sync, SyncMode::NoSync][usize::from(flags % 3)];
    let read_ok = flags & 0x04 == 0;
    let short = flags & 0x08 != 0;

    check_buffer_len(nr, block);
    check_buffer_len(raw_nr, block);

    let full = buffer_len(nr, 512).unwrap();
    let buf: Vec<u8> = if short {
        rest.to_vec()
    } else if rest.is_empty() {
        vec![0; full]
    } else {
        rest.iter().copied().cycle().take(full).collect()
    };
    let long_enough = buf.len() >= LOG_OFFSET + bitset_bytes(nr).unwrap();

    // Header decode/encode.
    let header = Header::decode(&buf);
    assert_eq!(header.is_some(), buf.len() >= HEADER_LEN);
    if let Some(h) = header {
        let mut copy = buf.clone();
        h.encode(&mut copy).unwrap();
        assert_eq!(copy, buf);
    }

    // Loading the bitset as is.
    let mut loaded = bits(nr, true);
    match bits_from_disk(&buf, &mut loaded) {
        Some(()) => {
            assert!(long_enough);
            assert!(loaded.count() <= u64::from(nr));
            for i in 0..nr {
                assert_eq!(loaded.get(i), disk_bit(&buf, i));
            }
            let mut out = buf.clone();
            bits_to_disk(&loaded, &mut out).unwrap();
            assert_eq!(out[..LOG_OFFSET], buf[..LOG_OFFSET]);
            for i in nr..nr.div_ceil(64) * 64 {
                assert!(!disk_bit(&out, i));
            }
        }
        None => assert!(!long_enough),
    }

    // Resume.
    let plan = resume_plan(read_ok, &buf, nr, sync);
    assert!(plan.sync_count <= u64::from(nr));
    assert_eq!(plan.nr_regions, nr);
    assert_eq!(plan.header.nr_regions, u64::from(nr));
    assert_eq!(plan.header.magic, LOG_MAGIC);
    assert_eq!(plan.new_bits, sync == SyncMode::NoSync);
    assert_eq!(
        plan.log_failed,
        matches!(
            plan.source,
            ResumeSource::ReadFailed | ResumeSource::BadVersion { .. }
        )
    );
    if !read_ok || !long_enough {
        assert_eq!(plan.source, ResumeSource::ReadFailed);
    }
    if sync != SyncMode::Default {
        assert!(plan.is_fresh());
    }
    if plan.is_fresh() {
        let all = if plan.new_bits { u64::from(nr) } else { 0 };
        assert_eq!(plan.sync_count, all);
    }

    let mut out = buf.clone();
    let mut clean = bits(nr, true);
    match plan.apply(&mut out, &mut clean) {
        None => assert!(!long_enough),
        Some(()) => {
            assert!(long_enough);
            assert_eq!(clean.count(), plan.sync_count);
            assert_eq!(Header::decode(&out), Some(plan.header));
            let end = LOG_OFFSET + bitset_bytes(nr).unwrap();
            assert_eq!(out[HEADER_LEN..LOG_OFFSET], buf[HEADER_LEN..LOG_OFFSET]);
            assert_eq!(out[end..], buf[end..]);
            let kept = plan.keep_below.min(nr);
            for i in 0..nr {
                let expect = if i < kept {
                    disk_bit(&buf, i)
                } else {
                    plan.new_bits
                };
                assert_eq!(clean.get(i), expect);
                assert_eq!(disk_bit(&out, i), expect);
            }
            for i in nr..nr.div_ceil(64) * 64 {
                assert!(!disk_bit(&out, i), "bit {i} past {nr}");
            }
            // The in-sync bits, copied from the applied buffer.
            let mut in_sync = bits(nr, false);
            bits_from_disk(&out, &mut in_sync).unwrap();
            assert_eq!(in_sync.words(), clean.words());
            // Resuming again with the current size changes nothing.
            if sync == SyncMode::Default && !plan.log_failed {
                let again = resume_plan(true, &out, nr, sync);
                assert_eq!(again.sync_count, plan.sync_count);
                let mut out2 = out.clone();
                again.apply(&mut out2, &mut bits(nr, false)).unwrap();
                assert_eq!(out2, out);
            }
        }
    }
});
