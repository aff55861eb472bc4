#!/bin/sh
# dmraid on an NVIDIA (nForce) RAID1 set: the SATA disks sda/sdb carry the
# metadata scripts/nvidia-meta.py wrote on the host (run-guest.sh does it).
# The mirror scenarios run with our module and then with the C dm-mirror in
# the same boot (separate TAP points, "rs:" and "c:"), so a failure that
# shows with ours only is ours.
#
# Observed with Debian 12's dmraid 1.0.0.rc16: its nvidia handler reports
# every member "ok" whatever raidJobCode says (the job-code table starts with
# NV_IDLE = 0, which ends its lookup loop at once), so a complete 2-disk set
# always gets a "nosync" mirror. It loads "sync" only for an inconsistent set
# that still has 2 members: the test declares a third volume (totalVolumes 3)
# that is not there, and dmraid resyncs the two it has.
# A set with one member left is mapped "linear" (dmraid: "creating degraded
# mirror mapping"); a member with a bad checksum is ignored like a missing one.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/lib-clients.sh"
need_disks sda sdb

A=/dev/sda
B=/dev/sdb
N=$(dev_sectors $A)
D=$((N - 2))                # data area: every sector but the last two
# dmraid's region size for D sectors: double from 128 sectors while below
# D/1024 (capped at 128 MiB), then take half (64 for the guest's 32 MiB
# members, 128 for 128 MiB)
reg_max=$((D / 1024))
[ $reg_max -le 262144 ] || reg_max=262144
REG=128
while [ $REG -lt $reg_max ]; do REG=$((REG * 2)); done
REG=$((REG / 2))
NREG=$(( (D + REG - 1) / REG ))

# --- the metadata, as the host wrote it -------------------------------------
nv_get $A /tmp/nv-a.orig
nv_get $B /tmp/nv-b.orig
restore_meta() { nv_put /tmp/nv-a.orig $A && nv_put /tmp/nv-b.orig $B; }
at_end "restore_meta"
at_end "dmraid -an"
SET=$(nv_name /tmp/nv-a.orig)
tap_diag "set $SET, $N sectors per disk, $NREG regions of $REG"
meta_ok() {
	for _f in /tmp/nv-a.orig /tmp/nv-b.orig; do
		[ "$(head -c 6 $_f)" = NVIDIA ] || fail "$_f: no NVIDIA vendor string"
		[ "$(nv_sum $_f)" = 0 ] || fail "$_f: words sum to $(nv_sum $_f), not 0"
		[ "$(nv_u32 $_f 76)" = 129 ] || fail "$_f: raidLevel $(nv_u32 $_f 76), want 0x81"
	done
	[ "$(nv_u8 /tmp/nv-a.orig 18)/$(nv_u8 /tmp/nv-b.orig 18)" = 0/1 ] || fail "unit numbers not 0/1"
	[ "$(nv_name /tmp/nv-b.orig)" = "$SET" ] || fail "signatures differ"
}
check "metadata on both disks: NVIDIA, RAID1, checksum sums to 0, units 0/1, one signature" meta_ok

dmraid -r > /tmp/r.out 2>&1
tap_diag "$(cat /tmp/r.out)"
sees_both() {
	grep -q "^$A: nvidia, \"$SET\", mirror, ok, $D sectors, data@ 0" /tmp/r.out || fail "no $A member"
	grep -q "^$B: nvidia, \"$SET\", mirror, ok, $D sectors, data@ 0" /tmp/r.out || fail "no $B member"
}
check "dmraid -r: both disks are members of $SET (nvidia, mirror, ok)" sees_both

# the table dmraid will load
want_nosync="0 $D mirror core 2 $REG nosync 2 $A 0 $B 0 1 handle_errors"
want_sync="0 $D mirror core 2 $REG sync 2 $A 0 $B 0 1 handle_errors"
table_t() { # WANT: dmraid -ay -t prints "SET: WANT"
	_t=$(dmraid -ay -t 2>/dev/null)
	[ "$_t" = "$SET: $1" ] || fail "dmraid -ay -t: '$_t', want '$SET: $1'"
}
check "job code $(nv_u8 /tmp/nv-a.orig $NV_JOB), complete set: dmraid plans a nosync mirror" table_t "$want_nosync"

# 3 declared volumes, 2 present: inconsistent -> sync
cp /tmp/nv-a.orig /tmp/nv-a.sync
cp /tmp/nv-b.orig /tmp/nv-b.sync
nv_set_u8 /tmp/nv-a.sync $NV_TOTAL_VOLUMES 3
nv_set_u8 /tmp/nv-b.sync $NV_TOTAL_VOLUMES 3
check "metadata with totalVolumes 3 (checksum fixed)" [ "$(nv_sum /tmp/nv-a.sync)$(nv_sum /tmp/nv-b.sync)" = 00 ]
sync_meta() { nv_put /tmp/nv-a.sync $A && nv_put /tmp/nv-b.sync $B; }
check "write it" sync_meta
check "2 of 3 volumes: dmraid plans a sync mirror" table_t "$want_sync"
check "restore the metadata" restore_meta

# --- the mirror scenarios, per implementation -------------------------------
randfile /tmp/d1 8
randfile /tmp/d2 24
randfile /tmp/f1 16
AM=$(majmin $A)
BM=$(majmin $B)
M=/dev/mapper/$SET

activate() { # WANT-TABLE-WITH-MAJMIN
	dmraid -ay > /tmp/ay.out 2>&1 || { cat /tmp/ay.out; return 1; }
	grep -q "RAID set \"$SET\" was activated" /tmp/ay.out || fail "$(cat /tmp/ay.out)" || return 1
	[ -b "$M" ] || fail "$M is not a block device" || return 1
	_t=$(dmsetup table $SET)
	[ "$_t" = "$1" ] || fail "table '$_t', want '$1'"
}
deactivate() {
	dmraid -an || return 1
	! dev_exists $SET || fail "$SET still exists"
	[ ! -e "$M" ] || fail "$M left behind"
	no_devices
}
ratio_is() { [ "$(sync_ratio $SET)" = "$1" ] || fail "sync ratio $(sync_ratio $SET), want $1"; }
legs_differ() {
	dd if=/tmp/d2 of=$A bs=1M oflag=direct 2>/dev/null &&
		dd if=/dev/zero of=$B bs=1M count=24 oflag=direct 2>/dev/null
}
copy_f1() { cp /tmp/f1 /mnt/nv/f1 && sync; }

scenario() {
	I=$DMRS_IMPL
	check "$I: load $(impl_name)" load_rs || return
	check "$I: $(impl_name) is the only mirror provider" only_impl_loaded
	tmaj_nosync="0 $D mirror core 2 $REG nosync 2 $AM 0 $BM 0 1 handle_errors"
	tmaj_sync="0 $D mirror core 2 $REG sync 2 $AM 0 $BM 0 1 handle_errors"

	# complete set: nosync mirror, in sync at once, writes reach both legs
	check "$I: dmraid -ay activates $SET: $tmaj_nosync" activate "$tmaj_nosync" || return
	check "$I: the mirror holds a reference on $(impl_name)" impl_in_use
	tap_diag "$I: $(dmsetup status $SET)"
	check "$I: nosync set in sync at once ($NREG/$NREG)" ratio_is $NREG/$NREG
	check "$I: write 8 MiB O_DIRECT at 16 MiB" dd if=/tmp/d1 of=$M bs=1M seek=16 oflag=direct
	check "$I: read back through the set" reads_as /tmp/d1 $M 32768
	check "$I: $A holds it" leg_has /tmp/d1 $A 32768
	check "$I: $B holds it" leg_has /tmp/d1 $B 32768
	check "$I: dmraid -an removes the set" deactivate

	# 2 of 3 volumes: sync mirror, resync from sda to sdb
	check "$I: $A gets 24 MiB of new data, $B zeros" legs_differ
	check "$I: metadata: 2 of 3 volumes" sync_meta
	check "$I: dmraid -ay activates $SET: $tmaj_sync" activate "$tmaj_sync" || { restore_meta; return; }
	tap_diag "$I: $(dmsetup status $SET)"
	check "$I: the set resyncs to $NREG/$NREG" wait_sync $SET 900
	tap_diag "$I: $(dmsetup status $SET)"
	check "$I: $B got $A's data" leg_has /tmp/d2 $B 0
	check "$I: mkfs.ext4 on the set" mkfs.ext4 -q -F $M
	mkdir -p /mnt/nv
	check "$I: mount" mount -t ext4 $M /mnt/nv
	check "$I: write a 16 MiB file" copy_f1
	check "$I: umount" umount /mnt/nv
	check "$I: fsck -n clean" e2fsck -f -n $M
	check "$I: mount again" mount -t ext4 -o ro $M /mnt/nv
	same_file() { [ "$(sha_file /mnt/nv/f1)" = "$(sha_file /tmp/f1)" ] || fail "sha256 differs"; }
	check "$I: the file reads back (sha256)" same_file
	umount /mnt/nv
	check "$I: legs identical over the data area (resync and filesystem writes)" legs_identical $A $B $D
	check "$I: dmraid -an removes the set" deactivate
	check "$I: restore the metadata" restore_meta
	check "$I: unload $(impl_name)" unload_rs
}

impls=$(impls)
for DMRS_IMPL in $impls; do
	scenario
	dmraid -an > /dev/null 2>&1
	restore_meta
	unload_rs > /dev/null 2>&1
done
DMRS_IMPL=${impls%% *}

# --- degraded: one member's metadata missing or broken ----------------------
# (dmraid maps the one member left "linear": no mirror target involved, so
# this runs once)
degraded() { # WHAT
	dmraid -r > /tmp/r.out 2>&1
	tap_diag "$(cat /tmp/r.out)"
	grep -q "^$A: nvidia, \"$SET\"" /tmp/r.out || fail "$A not listed" || return 1
	! grep -q "^$B:" /tmp/r.out || fail "$B still listed" || return 1
	dmraid -ay > /tmp/ay.out 2>&1
	_rc=$?
	tap_diag "$(cat /tmp/ay.out)"
	[ $_rc = 0 ] || fail "dmraid -ay exit $_rc" || return 1
	grep -q "creating degraded mirror mapping for \"$SET\"" /tmp/ay.out || fail "no degraded message" || return 1
	_t=$(dmsetup table $SET)
	[ "$_t" = "0 $D linear $AM 0" ] || fail "table '$_t', want linear over $A"
}
zero_b() { dd if=/dev/zero of=$B bs=512 count=1 seek=$(nv_sector $B) oflag=direct conv=notrunc 2>/dev/null; }
check "degraded: zero $B's metadata sector" zero_b
check "degraded ($B has no metadata): dmraid -ay maps $A alone, linear" degraded
check "degraded: the filesystem on the one member is clean" e2fsck -f -n $M
check "degraded: dmraid -an" deactivate
bad_b() { cp /tmp/nv-b.orig /tmp/nv-b.bad && nv_break /tmp/nv-b.bad && nv_put /tmp/nv-b.bad $B; }
check "broken: $B's checksum made wrong" bad_b
bad_sum() { dmraid -r 2>&1 | grep -q "nvidia: bad checksum on $B" || fail "no bad checksum message"; }
check "broken: dmraid -r reports the bad checksum on $B" bad_sum
check "broken ($B's checksum wrong): dmraid -ay maps $A alone, linear" degraded
check "broken: dmraid -an" deactivate
check "restore the metadata" restore_meta
both_again() { [ "$(dmraid -r 2>&1 | grep -c "\"$SET\", mirror, ok")" = 2 ] || fail "$(dmraid -r 2>&1)"; }
check "dmraid -r sees both members again" both_again
rm -f /tmp/d1 /tmp/d2 /tmp/f1 /tmp/nv-*
tap_end
