#!/bin/sh
# One boot of the crash-consistency harness (scripts/crash-cycle.sh drives
# it; not part of "all": run with --tests crash-cycle and the same
# --disk-dir every boot). The mode comes from the kernel command line,
# dmrs.crash=setup|cycle|verify:
#   setup   fresh disks: a 64 MiB mirror (128 regions of 512 KiB) with a
#           disk log on vdc, ext4 on its first 48 MiB, a raw area after;
#           clean remove.
#   cycle   load the mirror with the same disk log and no sync word: it
#           must start with fewer than all regions out of sync (exactly the
#           dirty bits on disk); wait for N/N; legs byte-identical; mount
#           (journal replay), every write the manifests record as done is
#           intact, umount, fsck -n clean, legs identical; then heavy writes
#           with leg 1 behind dm-delay (writes 50 ms late), so the legs
#           differ wherever writes are in flight at the kill (fsync'ed
#           files, O_DIRECT writes to the raw area, buffered rewrites of a
#           big file, O_DIRECT writers keeping several regions busy) and
#           the console marker
#           "dmrs-crash: writing": the host kills QEMU a few seconds later.
#   verify  the checks of a cycle, then a clean remove: the log is all
#           clean.
# Lines "crash-stats: ..." in the TAP diagnostics carry the numbers.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/disklog-lib.sh"

mode=cycle
for w in $(cat /proc/cmdline); do
	case "$w" in dmrs.crash=*) mode=${w#dmrs.crash=} ;; esac
done
RS=1024
L=131072               # 64 MiB
N=128
FSB=12288              # ext4: 48 MiB in 4 KiB blocks
RAW=98304              # raw area: sectors [98304, 131072)
M=dmrs_crash
MNT=/mnt/crash
mkdir -p $MNT

check "load $(impl_name) ($mode)" load_rs || tap_end
check "linear leg l1 over vdb" mklinear dmrs_l1 /dev/vdb || tap_end
TDEF="0 $L mirror disk 2 /dev/vdc $RS 2 /dev/vda 0 /dev/mapper/dmrs_l1 0"

if [ "$mode" = setup ]; then
	check "log wiped" wipe_log /dev/vdc
	check "legs identical to start with (fresh images)" legs_identical /dev/vda /dev/vdb $L
	T="0 $L mirror disk 3 /dev/vdc $RS nosync 2 /dev/vda 0 /dev/mapper/dmrs_l1 0"
	check "create: $T" mkmirror $M "$T" || tap_end
	check "mkfs.ext4 (48 MiB)" mkfs.ext4 -q -F -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/$M $FSB
	check "mount" mount -t ext4 /dev/mapper/$M $MNT || tap_end
	at_end "umount $MNT"
	mkdir -p $MNT/files
	: > $MNT/files.man
	: > $MNT/raw.man
	check "umount" umount $MNT
	check "remove" rmdev $M
	check "log all clean for $N regions" log_all_clean /dev/vdc $N
	check "remove l1" rmdev dmrs_l1
	check "unload" unload_rs
	tap_end
fi

# ---------------------------------------------------------------- load ----
check "on-disk log header for $N regions" log_header_ok /dev/vdc $N || tap_end
BITS=$(log_bits /dev/vdc $N)
CLEAN=$(ones_in "$BITS")
tap_diag "crash-stats: dirty_on_disk=$((N - CLEAN)) of $N regions: $(zeros_at "$BITS")"
check "load the same log (leg 1 held): $TDEF" create_held $M "$TDEF" dmrs_l1 || tap_end
tap_diag "crash-stats: in_sync_at_load=$HELD_RATIO out_of_sync_at_load=$((N - ${HELD_RATIO%/*}))"
check "starts at the on-disk clean count $CLEAN/$N" held_ratio_is $CLEAN/$N
check "not a full resync: fewer than $N regions out of sync" [ "${HELD_RATIO%/*}" -gt 0 ]
check "resume leg 1" dmsetup resume dmrs_l1
t0=$(date +%s)
check "resync reaches $N/$N" wait_sync $M 600 || tap_end
tap_diag "crash-stats: resync_seconds=$(($(date +%s) - t0))"
check "legs byte-identical" legs_identical /dev/vda /dev/vdb $L

# ------------------------------------------------------------- verify ----
check "mount (journal replay)" mount -t ext4 /dev/mapper/$M $MNT || tap_end
at_end "umount $MNT"
# a manifest holds "p KEY" (write started) and "d KEY SHA" (done) lines;
# a key whose last line is "d" must hold SHA
final_state() {
	awk 'NF == 2 && $1 == "p" {s[$2] = "?"} NF == 3 && $1 == "d" && length($3) == 64 {s[$2] = $3}
		END {for (k in s) if (s[k] != "?") print k, s[k]}' "$1"
}
files_ok() {
	local n=0 bad= k sha
	final_state $MNT/files.man > /tmp/fstate
	while read -r k sha; do
		n=$((n + 1))
		[ "$(sha_file $MNT/files/$k 2> /dev/null)" = "$sha" ] || bad="$bad $k"
	done < /tmp/fstate
	echo "$n files checked"
	tap_diag "crash-stats: files_checked=$n"
	[ -z "$bad" ] || fail "files that were fsync'ed but differ:$bad"
}
raw_ok() {
	local n=0 bad= k sha
	final_state $MNT/raw.man > /tmp/rstate
	while read -r k sha; do
		n=$((n + 1))
		[ "$(sha_of /dev/mapper/$M 512 $((RAW + k * 512)))" = "$sha" ] || bad="$bad $k"
	done < /tmp/rstate
	tap_diag "crash-stats: raw_chunks_checked=$n"
	[ -z "$bad" ] || fail "acknowledged O_DIRECT chunks that differ:$bad"
}
check "every fsync'ed file is intact" files_ok
check "every acknowledged O_DIRECT write is intact" raw_ok
check "umount" umount $MNT
check "fsck -n clean" e2fsck -f -n /dev/mapper/$M
check "legs byte-identical after the journal replay" legs_identical /dev/vda /dev/vdb $L

if [ "$mode" = verify ]; then
	check "remove" rmdev $M
	check "log all clean after a clean remove" log_all_clean /dev/vdc $N
	check "remove l1" rmdev dmrs_l1
	check "unload" unload_rs
	tap_end
fi

# -------------------------------------------------------------- writes ----
# Leg 1 gets dm-delay under it: every write reaches it 50 ms after leg 0, so
# at the kill the legs really differ in the regions with writes in flight,
# and only the disk log knows which ones to resync. (Reloading the table of
# the leg device is invisible to the mirror above it.)
delay_leg1() {
	dmsetup load dmrs_l1 --table "0 $(dev_sectors /dev/vdb) delay /dev/vdb 0 0 /dev/vdb 0 50" &&
		dmsetup suspend dmrs_l1 && dmsetup resume dmrs_l1
}
check "load dm-delay" load_ko dm-delay
check "leg 1 delays writes by 50 ms" delay_leg1
check "mount for the writes" mount -t ext4 /dev/mapper/$M $MNT || tap_end
rm -rf $MNT/files $MNT/big $MNT/bulk
mkdir -p $MNT/files
: > $MNT/files.man
: > $MNT/raw.man
sync
man_add() { echo "$2" | dd of="$1" oflag=append conv=notrunc,fsync 2> /dev/null; }
END=$(($(date +%s) + 600))
file_writer() {
	local i=0 k sha
	while [ "$(date +%s)" -lt $END ]; do
		k=f$((i % 40))
		dd if=/dev/urandom of=/tmp/fsrc bs=64k count=4 2> /dev/null
		sha=$(sha_file /tmp/fsrc)
		man_add $MNT/files.man "p $k"
		dd if=/tmp/fsrc of=$MNT/files/$k bs=64k conv=fsync 2> /dev/null &&
			man_add $MNT/files.man "d $k $sha"
		i=$((i + 1))
	done
}
raw_writer() { # BASE: chunks BASE..BASE+31
	# each writer has its own source file: with a shared one, another
	# writer could replace the data between the sha and the write
	local i=0 k sha src=/tmp/rsrc.$1
	while [ "$(date +%s)" -lt $END ]; do
		k=$(($1 + (i * 7) % 32))
		dd if=/dev/urandom of=$src bs=64k count=4 2> /dev/null
		sha=$(sha_file $src)
		man_add $MNT/raw.man "p $k"
		dd if=$src of=/dev/mapper/$M bs=64k seek=$(((RAW + k * 512) * 512)) \
			oflag=direct,seek_bytes conv=notrunc 2> /dev/null &&
			man_add $MNT/raw.man "d $k $sha"
		i=$((i + 1))
	done
}
big_writer() { # buffered rewrites in place: writeback runs all the time
	while [ "$(date +%s)" -lt $END ]; do
		dd if=/dev/urandom of=$MNT/big bs=1M count=12 conv=notrunc 2> /dev/null
	done
}
# O_DIRECT writers that keep I/O in flight on several regions at every
# moment, so a kill finds regions dirty on disk: each rewrites its own 2 MiB
# (4 regions) of an 8 MiB file in 64 KiB writes, with one dd per 2 MiB pass
# (no CPU-heavy work between writes, unlike the verified writers above).
dd if=/dev/zero of=$MNT/bulk bs=1M count=8 conv=fsync 2> /dev/null
bulk_writer() { # SLICE (0..3)
	while [ "$(date +%s)" -lt $END ]; do
		dd if=/dev/zero of=$MNT/bulk bs=64k count=32 seek=$(($1 * 32)) \
			oflag=direct conv=notrunc 2> /dev/null
	done
}
# write back dirty pages after 1 s, not 30 s: the kill hits writeback
echo 100 > /proc/sys/vm/dirty_expire_centisecs
echo 50 > /proc/sys/vm/dirty_writeback_centisecs
file_writer &
raw_writer 0 &
raw_writer 32 &
big_writer &
for s in 0 1 2 3; do bulk_writer $s & done
writers_running() { # each writer has completed a write
	local i=0
	while [ $i -lt 120 ]; do
		grep -q '^d ' $MNT/files.man && grep -q '^d ' $MNT/raw.man && [ -s $MNT/big ] && return 0
		sleep 0.5
		i=$((i + 1))
	done
	fail "writers did not get going: $(wc -l < $MNT/files.man) file and $(wc -l < $MNT/raw.man) raw manifest lines"
}
check "writers running" writers_running
echo "dmrs-crash: writing" > /dev/kmsg
# the host kills the guest now; reaching the end means it did not
wait
tap_fail "killed by the host" "still running after 600 s of writes"
tap_end
