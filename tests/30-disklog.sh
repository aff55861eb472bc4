#!/bin/sh
# The disk log: a mirror on vda + vdb with its dirty log on vdc.
# - table and status strings (`3 disk <maj:min> A`);
# - a `sync` table starts from a fresh header with every region dirty
#   (0/N while no copy can finish) and resyncs to N/N;
# - the on-disk header: magic 0x4D695272 LE, version 2, nr_regions u64,
#   bytes 16..1023 kept as they were, the clean bitset at byte 1024 with
#   every in-sync bit set and the bits past nr_regions in the last 64-bit
#   word clear;
# - recreated with the same log and no sync word: N/N at once, nothing
#   copied (a marker on leg 1 survives), the data is there;
# - explicit `sync` recopies everything, `nosync` marks everything in sync
#   whatever the log said;
# - a grown target keeps the old regions in sync and resyncs only the new
#   ones; a shrunk one starts in sync; growing back resyncs the regions
#   that were cut off.
# Leg 1 is a dm linear device over vdb: suspending it holds every recovery
# copy, so the in-sync count right after a create is exact.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/disklog-lib.sh"

check "load $(impl_name)" load_rs || tap_end
RS=256                 # 128 KiB regions
L=20000                # 79 regions, the last one 32 sectors long
N=79
M=dmrs_dlog
check "linear leg l1 over vdb" mklinear dmrs_l1 /dev/vdb || tap_end
LEG0=/dev/vda
LEG1=/dev/mapper/dmrs_l1
VDA=$(majmin /dev/vda)
VL1=$(majmin $LEG1)
VDC=$(majmin /dev/vdc)

randfile /tmp/seed 15
check "leg 0 gets 15 MiB random" dd if=/tmp/seed of=/dev/vda bs=1M oflag=direct
check "leg 1 gets 15 MiB zeros" dd if=/dev/zero of=/dev/vdb bs=1M count=15 oflag=direct
# a pattern the log must keep in bytes 16..1023 (dm-log reads and rewrites
# the whole header block)
dd if=/dev/zero bs=64k count=1 2> /dev/null | tr '\0' '\245' > /tmp/pat
check "log device gets a 0xa5 pattern" dd if=/tmp/pat of=/dev/vdc bs=64k oflag=direct
PAT=$(od -An -v -tx1 -N 1008 /tmp/pat | tr -d ' \n')
pad_kept() {
	local got
	got=$(log_hex /dev/vdc 16 1008)
	[ "$got" = "$PAT" ] || fail "bytes 16..1023 changed: ${got:0:64}..."
}

# --- sync: fresh header, everything dirty, resync ---------------------------
T="0 $L mirror disk 3 /dev/vdc $RS sync 2 $LEG0 0 $LEG1 0"
check "create (leg 1 held): $T" create_held $M "$T" dmrs_l1 || tap_end
check "sync starts at 0/$N" held_ratio_is 0/$N
want="2 $VDA $VL1 0/$N 1 AA 3 disk $VDC A"
check "status: $want" [ "$HELD_STATUS" = "$want" ]
want="0 $L mirror disk 3 $VDC $RS sync 2 $VDA 0 $VL1 0"
check "table: $want" [ "$(dmsetup table $M)" = "$want" ]
check "header written at resume: magic, version 2, nr_regions $N" log_header_ok /dev/vdc $N
check "fresh bitset: all $N regions dirty" log_bitset_is /dev/vdc "$(ones_hex 0 16)"
check "bytes 16..1023 of the log kept" pad_kept
check "resume leg 1" dmsetup resume dmrs_l1
check "resync reaches $N/$N" wait_sync $M 240
want="2 $VDA $VL1 $N/$N 1 AA 3 disk $VDC A"
check "status: $want" [ "$(mirror_status $M)" = "$want" ]
check "legs identical" legs_identical /dev/vda /dev/vdb $L
check "leg 1 holds leg 0's data" data_at_len /tmp/seed /dev/vdb $L
randfile /tmp/data 1
check "write 1 MiB through the mirror at sector 4096" put_at /tmp/data /dev/mapper/$M 4096
check "remove" rmdev $M
check "on disk after remove: header for $N regions, all clean" log_all_clean /dev/vdc $N
check "bytes 16..1023 of the log still kept" pad_kept
tap_diag "log bytes 1024..1063: $(log_hex /dev/vdc 1024 40)"
check "the write is on leg 0" is_at /tmp/data /dev/vda 4096
check "the write is on leg 1" is_at /tmp/data /dev/vdb 4096

# --- the same log, no sync word: in sync at once, nothing copied ------------
dd if=/dev/urandom of=/tmp/mark bs=64k count=1 2> /dev/null
check "marker written to leg 1 (region 5) behind the mirror's back" put_at /tmp/mark /dev/vdb $((5 * RS))
T="0 $L mirror disk 2 /dev/vdc $RS 2 $LEG0 0 $LEG1 0"
check "recreate with the same log (leg 1 held): $T" create_held $M "$T" dmrs_l1 || tap_end
check "starts at $N/$N" held_ratio_is $N/$N
want="0 $L mirror disk 2 $VDC $RS 2 $VDA 0 $VL1 0"
check "table: $want" [ "$(dmsetup table $M)" = "$want" ]
check "resume leg 1" dmsetup resume dmrs_l1
sleep 3
check "still $N/$N" ratio_is $M $N/$N
check "no resync: the marker on leg 1 is still there" is_at /tmp/mark /dev/vdb $((5 * RS))
check "the data written before reads back" is_at /tmp/data /dev/mapper/$M 4096
check "remove" rmdev $M
check "log all clean" log_all_clean /dev/vdc $N

# --- explicit sync: everything recopied --------------------------------------
T="0 $L mirror disk 3 /dev/vdc $RS sync 2 $LEG0 0 $LEG1 0"
check "create with sync (leg 1 held)" create_held $M "$T" dmrs_l1 || tap_end
check "explicit sync starts at 0/$N over a clean log" held_ratio_is 0/$N
check "resume leg 1" dmsetup resume dmrs_l1
check "resync reaches $N/$N" wait_sync $M 240
check "the marker was overwritten: legs identical" legs_identical /dev/vda /dev/vdb $L
check "remove" rmdev $M
check "log all clean" log_all_clean /dev/vdc $N

# --- nosync: all in sync whatever the log says ------------------------------
check "log: regions 10 and 11 marked dirty by hand" log_write_bits /dev/vdc "$(clear_bits "$(log_bits /dev/vdc $N)" 10 11)"
check "the log now has 2 dirty regions" [ "$(ones_in "$(log_bits /dev/vdc $N)")" = $((N - 2)) ]
check "marker written to leg 1 (region 5)" put_at /tmp/mark /dev/vdb $((5 * RS))
T="0 $L mirror disk 3 /dev/vdc $RS nosync 2 $LEG0 0 $LEG1 0"
check "create with nosync (leg 1 held)" create_held $M "$T" dmrs_l1 || tap_end
check "nosync starts at $N/$N" held_ratio_is $N/$N
want="0 $L mirror disk 3 $VDC $RS nosync 2 $VDA 0 $VL1 0"
check "table: $want" [ "$(dmsetup table $M)" = "$want" ]
check "log all clean on disk at once" log_all_clean /dev/vdc $N
check "resume leg 1" dmsetup resume dmrs_l1
sleep 2
check "nosync copied nothing: the marker is still there" is_at /tmp/mark /dev/vdb $((5 * RS))
check "remove" rmdev $M
check "log all clean" log_all_clean /dev/vdc $N

# --- grown: old regions stay in sync, only new ones are copied --------------
# leg 0 is random and leg 1 zero from region 79 on; the marker stays in
# region 5 (in sync per the log, so it must not be copied). Region 78 was
# short (32 sectors) and is in sync per the log, so the grown part of it is
# not copied (C keeps its bit): make it equal on both legs first.
L2=30000
N2=118
check "region 78's grown part made equal on both legs" copy_region /dev/vda /dev/vdb $L $((N * RS - L))
T="0 $L2 mirror disk 2 /dev/vdc $RS 2 $LEG0 0 $LEG1 0"
check "grow to $L2 sectors (leg 1 held): $T" create_held $M "$T" dmrs_l1 || tap_end
check "grown starts at $N/$N2: the old regions are in sync, the new ones not" held_ratio_is $N/$N2
check "header rewritten for $N2 regions" log_header_ok /dev/vdc $N2
check "bitset: $N ones, then zeros" log_bitset_is /dev/vdc "$(ones_hex $N 16)"
check "resume leg 1" dmsetup resume dmrs_l1
check "resync reaches $N2/$N2" wait_sync $M 240
check "the new regions were copied" legs_identical /dev/vda /dev/vdb $((L2 - N * RS)) $((N * RS)) $((N * RS))
check "the old regions were not copied: the marker is still there" is_at /tmp/mark /dev/vdb $((5 * RS))
check "remove" rmdev $M
check "log all clean for $N2 regions" log_all_clean /dev/vdc $N2
check "restore leg 1's region 5" copy_region /dev/vda /dev/vdb $((5 * RS)) $RS
check "legs identical over $L2 sectors" legs_identical /dev/vda /dev/vdb $L2

# --- shrunk ------------------------------------------------------------------
L3=15000
N3=59
T="0 $L3 mirror disk 2 /dev/vdc $RS 2 $LEG0 0 $LEG1 0"
check "shrink to $L3 sectors (leg 1 held)" create_held $M "$T" dmrs_l1 || tap_end
check "shrunk starts at $N3/$N3" held_ratio_is $N3/$N3
check "header rewritten for $N3 regions" log_header_ok /dev/vdc $N3
check "bitset word: $N3 ones, the bits past $N3 clear" log_bitset_is /dev/vdc "$(ones_hex $N3 8)"
tap_diag "log bytes 1024..1047 after the shrink: $(log_hex /dev/vdc 1024 24)"
check "resume leg 1" dmsetup resume dmrs_l1
check "remove" rmdev $M
check "log all clean for $N3 regions" log_all_clean /dev/vdc $N3
# growing back: regions 59..78 are new again and get copied (region 58,
# short while shrunk, keeps its clean bit)
check "leg 1 zeroed from region $N3 on" dd if=/dev/zero of=/dev/vdb bs=512 seek=$((N3 * RS)) count=$((L - N3 * RS)) oflag=direct
T="0 $L mirror disk 2 /dev/vdc $RS 2 $LEG0 0 $LEG1 0"
check "grow back to $L sectors (leg 1 held)" create_held $M "$T" dmrs_l1 || tap_end
check "starts at $N3/$N" held_ratio_is $N3/$N
check "resume leg 1" dmsetup resume dmrs_l1
check "resync reaches $N/$N" wait_sync $M 240
check "legs identical" legs_identical /dev/vda /dev/vdb $L
check "remove" rmdev $M
check "log all clean for $N regions" log_all_clean /dev/vdc $N

check "remove l1" rmdev dmrs_l1
rm -f /tmp/seed /tmp/data /tmp/mark /tmp/pat
check "unload" unload_rs
tap_end
