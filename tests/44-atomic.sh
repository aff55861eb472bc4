#!/bin/sh
# Atomic writes through the mirror: Linux 7.3's device-mapper sends them to
# targets that take them, and C dm-mirror 1.15.0 does, as ours does there.
# The legs at_l0/at_l1 are linear devices over two scsi_debug disks that
# offer atomic writes (atomic_wr=1, a store of their own each). C, then
# ours, in the same boot, the outcomes compared:
#  - the mirror offers atomic writes (its queue's atomic write unit);
#  - an atomic write of 16 KiB completes and is on both legs;
#  - one of twice the mirror's unit is refused (EINVAL) and writes nothing;
#  - leg 1 moved by a table reload onto vdc, a virtio disk without atomic
#    writes: the mirror keeps the limits it was built with, so an atomic
#    write reaches it, and leg 1's queue refuses its copy as invalid. The
#    write fails with EINVAL and no leg fails: status stays "AA", no table
#    event (1.14.0 counted that as a write error and failed leg 1);
#  - a plain write then reaches both legs.
# Skipped where C is older than 1.15.0 (6.12's device-mapper sends no atomic
# writes to targets), without scsi_debug, or without the helper
# atomic-write (tests/atomic-write.c).
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/legfail.sh"

L=8192                    # sectors per leg and mirror (4 MiB), 8 regions
M=at_mirror
AW=$DMRS_TESTS/atomic-write
[ -x "$AW" ] || AW=$(command -v atomic-write) || {
	tap_skip "$DMRS_TEST" "no atomic-write helper (make -C tests builds it from atomic-write.c)"
	tap_end
}
skip_without_c
# C's version says whether device-mapper sends atomic writes to targets
# (no point of its own: on 6.12 the whole test is a skip)
CV=$(c_version) || {
	tap_fail "C dm-mirror's version" "load, read the version, unload: failed"
	tap_end
}
if ! version_ge "$CV" 1.15.0; then
	tap_skip "$DMRS_TEST" "C dm-mirror is $CV: this kernel's device-mapper sends no atomic writes to targets"
	tap_end
fi

# two scsi_debug disks, 8 MiB each, atomic writes of up to 64 KiB (the
# module's default of 128 blocks of 512 bytes)
sd_disks() {
	ls -d /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*/block/* 2>/dev/null |
		sed 's|.*/||' | sort
}
sd_up() {
	load_ko scsi_debug add_host=2 per_host_store=1 dev_size_mb=8 atomic_wr=1 || return 1
	local i=0
	while [ "$(sd_disks | wc -l)" -lt 2 ] && [ $i -lt 40 ]; do
		sleep 0.5
		i=$((i + 1))
	done
	[ "$(sd_disks | wc -l)" = 2 ] || fail "scsi_debug disks: $(sd_disks | tr '\n' ' ')"
}
if ! mod_loaded scsi_debug && [ -r "$DMRS_MOD_INDEX" ] && ! grep -q '^scsi_debug ' "$DMRS_MOD_INDEX"; then
	tap_skip "$DMRS_TEST" "the kernel has no scsi_debug module"
	tap_end
fi
check "scsi_debug: two disks with atomic writes" sd_up || tap_end
at_end "unload_mod scsi_debug"
set -- $(sd_disks)
D0=$1 D1=$2
# qattr DEV ATTR: ATTR of DEV's queue (DEV: a disk, or a dm device's name)
qattr() {
	local b=$1
	[ -e "/sys/block/$b" ] || b=$(dm_block "$1")
	cat "/sys/block/$b/queue/$2"
}
tap_diag "disks $D0 $D1: atomic write unit max $(qattr "$D0" atomic_write_unit_max_bytes), $(qattr "$D1" atomic_write_unit_max_bytes)"
at_linear() { # LEG -> its table over its scsi_debug disk
	case "$1" in
	at_l0) echo "0 $L linear /dev/$D0 0" ;;
	at_l1) echo "0 $L linear /dev/$D1 0" ;;
	esac
}
at_legs() {
	mkmirror at_l0 "$(at_linear at_l0)" && mkmirror at_l1 "$(at_linear at_l1)"
}
# filled DEV OFF LEN BYTE: LEN bytes of DEV from OFF (bytes) are all BYTE
# (two hex digits), read with O_DIRECT
filled() {
	local want got
	want=$(dd if=/dev/zero bs="$3" count=1 2>/dev/null | tr '\000' "\\$(printf '%03o' "0x$4")" | sha256sum | cut -d' ' -f1)
	got=$(dd if="$1" bs="$3" count=1 iflag=direct,skip_bytes skip="$2" 2>/dev/null | sha256sum | cut -d' ' -f1)
	[ "$want" = "$got" ]
}
both() { # OFF LEN BYTE: "ok/ok" if both legs hold it
	echo "$(lf_yesno filled /dev/mapper/at_l0 "$@")/$(lf_yesno filled /dev/mapper/at_l1 "$@")"
}
T="0 $L mirror core 2 1024 nosync 2 /dev/mapper/at_l0 0 /dev/mapper/at_l1 0 1 handle_errors"

run() {
	local impl=$1 ev0 unit
	lf_begin "$impl"
	check "$LF_I: load" lf_load "$impl" || return
	check "$LF_I: legs over $D0 and $D1" at_legs || return
	check "$LF_I: create (handle_errors)" mkmirror $M "$T" || return
	lf_obs version "$(target_version mirror)"
	unit=$(qattr $M atomic_write_unit_max_bytes)
	lf_obs unit_max "$unit"
	lf_obs unit_min "$(qattr $M atomic_write_unit_min_bytes)"
	lf_obs max_bytes "$(qattr $M atomic_write_max_bytes)"
	lf_obs offers "$([ "${unit:-0}" -ge 16384 ] && echo yes || echo "no ($unit)")"
	lf_expect "the mirror offers atomic writes of 16 KiB or more" offers yes
	lf_obs write "$("$AW" /dev/mapper/$M 65536 16384 0xa5)"
	lf_expect "an atomic write of 16 KiB completes" write ok
	lf_obs write_legs "$(both 65536 16384 a5)"
	lf_expect "... and is on both legs" write_legs ok/ok
	lf_obs too_big "$("$AW" /dev/mapper/$M 1048576 $((unit * 2)) 0x11)"
	lf_expect "an atomic write twice the unit fails with EINVAL" too_big "error EINVAL"
	lf_obs too_big_legs "$(both 1048576 $((unit * 2)) 00)"
	lf_expect "... and writes nothing" too_big_legs ok/ok
	check "$LF_I: leg 1 moved onto vdc (no atomic writes)" lf_set at_l1 "0 $L linear /dev/vdc 0"
	lf_obs leg1_unit "$(qattr at_l1 atomic_write_unit_max_bytes)"
	lf_expect "leg 1 takes no atomic write now" leg1_unit 0
	ev0=$(lf_events $M)
	lf_obs refused "$("$AW" /dev/mapper/$M 131072 16384 0x5a)"
	lf_obs event "$(lf_wait_event $M "$ev0")"
	lf_obs status "$(lf_st $M)"
	lf_expect "an atomic write leg 1 refuses fails with EINVAL" refused "error EINVAL"
	lf_expect "no table event" event no
	lf_expect "no leg failed: status AA 8/8" status "AA 8/8"
	lf_obs plain "$(dd if=/dev/zero bs=64k count=1 2>/dev/null | tr '\000' '\303' |
		dd of=/dev/mapper/$M bs=64k seek=4 oflag=direct conv=notrunc 2>/dev/null; echo $?)"
	lf_obs plain_legs "$(both 262144 65536 c3)"
	lf_expect "a plain write then completes" plain 0
	lf_expect "... on both legs" plain_legs ok/ok
	lf_obs status_after "$(lf_st $M)"
	lf_expect "status AA 8/8 after it" status_after "AA 8/8"
	check "$LF_I: remove" rmdev $M
	check "$LF_I: remove the legs" rmdev at_l0 && rmdev at_l1
	check "$LF_I: unload" lf_unload "$impl"
}

# Each run leaves the scsi_debug disks as it found them: zeros where the
# next run looks
at_zero() {
	dd if=/dev/zero of="/dev/$D0" bs=1M count=4 oflag=direct 2>/dev/null &&
		dd if=/dev/zero of="/dev/$D1" bs=1M count=4 oflag=direct 2>/dev/null
}
for impl in $LF_IMPLS; do
	check "zero the scsi_debug disks" at_zero
	run "$impl"
	rmdev $M > /dev/null 2>&1
	rmdev at_l0 > /dev/null 2>&1
	rmdev at_l1 > /dev/null 2>&1
	lf_unload "$impl" > /dev/null 2>&1
done
# every observation the same, the version (1.15.0) among them
lf_compare
tap_end
