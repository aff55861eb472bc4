#!/bin/sh
# Interrupted initial sync with a disk log (regression: C once marked
# regions that were never copied clean). A `sync` mirror resyncs onto a
# slow leg 1 (dm-delay, writes delayed); a write lands in a region far
# ahead of the copy (out of sync: it goes to the default leg only). The
# mirror is removed part way. Then:
# - the on-disk log has fewer than N clean regions, at least as many as the
#   status showed, and every clean region is byte-identical on both legs;
#   the region written ahead of the copy is dirty;
# - reloaded with the same log and no sync word, the mirror starts at the
#   on-disk clean count (not N, not 0), resyncs to N/N, the legs end
#   identical and the write ahead of the copy reads back.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/disklog-lib.sh"

check "load $(impl_name)" load_rs || tap_end
check "load dm-delay" load_ko dm_delay || tap_end
RS=256
L=20000                # 79 regions
N=79
AHEAD=70               # region written during the copy, ahead of it
M=dmrs_intr
SZ=$(dev_sectors /dev/vdb)
randfile /tmp/seed 10
check "leg 0 gets 10 MiB random" dd if=/tmp/seed of=/dev/vda bs=1M oflag=direct
check "leg 1 zeroed" dd if=/dev/zero of=/dev/vdb bs=1M count=10 oflag=direct
check "log wiped" wipe_log /dev/vdc
check "leg 1: dm-delay over vdb, writes delayed 300 ms" \
	dmsetup create dmrs_slow --table "0 $SZ delay /dev/vdb 0 0 /dev/vdb 0 300" || tap_end
at_end "rmdev dmrs_slow"
LEG1=/dev/mapper/dmrs_slow

T="0 $L mirror disk 3 /dev/vdc $RS sync 2 /dev/vda 0 $LEG1 0"
check "create: $T" mkmirror $M "$T" || tap_end
dd if=/dev/urandom of=/tmp/ahead bs=64k count=1 2> /dev/null
check "write 64 KiB to region $AHEAD during the copy" put_at /tmp/ahead /dev/mapper/$M $((AHEAD * RS))
part_way() {
	local i=0 r
	while [ $i -lt 600 ]; do
		r=$(sync_ratio $M)
		[ "${r%/*}" -ge 12 ] && { SEEN=${r%/*}; return 0; }
		sleep 0.1
		i=$((i + 1))
	done
	fail "no progress: $r"
}
SEEN=
check "resync under way (>= 12 regions)" part_way || tap_end
check "remove part way (at $SEEN/$N)" rmdev $M || tap_end

BITS=$(log_bits /dev/vdc $N)
CLEAN=$(ones_in "$BITS")
tap_diag "on-disk clean bits after the remove ($CLEAN): $BITS"
check "header: $N regions" log_header_ok /dev/vdc $N
check "the copy was cut short: $CLEAN clean regions on disk, < $N" [ "$CLEAN" -lt $N ]
check "the log holds at least what the status showed ($CLEAN >= $SEEN)" [ "$CLEAN" -ge "$SEEN" ]
check "region $AHEAD (written ahead of the copy) is dirty on disk" [ "${BITS:$AHEAD:1}" = 0 ]
clean_regions_same() {
	local i=0 bad=
	flushbufs /dev/vda /dev/vdb
	while [ $i -lt $N ]; do
		if [ "${BITS:$i:1}" = 1 ] && ! region_same /dev/vda /dev/vdb $i $RS $L; then
			bad="$bad $i"
		fi
		i=$((i + 1))
	done
	[ -z "$bad" ] || fail "regions marked clean but different on the legs:$bad"
}
check "every region clean on disk is identical on both legs" clean_regions_same

# reload with the same log; hold leg 1 so that the first status is exact,
# then swap the delay for a plain linear mapping to finish fast
check "reload with the same log (leg 1 held)" create_held $M "0 $L mirror disk 2 /dev/vdc $RS 2 /dev/vda 0 $LEG1 0" dmrs_slow || tap_end
check "starts where it stopped: $CLEAN/$N" held_ratio_is $CLEAN/$N
check "leg 1 without the delay" dmsetup load dmrs_slow --table "0 $SZ linear /dev/vdb 0"
check "resume leg 1" dmsetup resume dmrs_slow
check "resync reaches $N/$N" wait_sync $M 240
check "legs identical" legs_identical /dev/vda /dev/vdb $L
check "leg 1 holds leg 0's data before region $AHEAD" data_at_len /tmp/seed /dev/vdb $((AHEAD * RS))
check "the write ahead of the copy reads back" is_at /tmp/ahead /dev/mapper/$M $((AHEAD * RS))
check "and is on leg 1" is_at /tmp/ahead /dev/vdb $((AHEAD * RS))
check "remove" rmdev $M
check "log all clean" log_all_clean /dev/vdc $N
check "remove leg 1" rmdev dmrs_slow
rm -f /tmp/seed /tmp/ahead
check "unload" unload_rs
tap_end
