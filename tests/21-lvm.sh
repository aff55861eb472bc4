#!/bin/sh
# LVM2 mirrors (lvcreate --type mirror) on the virtio disks: core log, disk
# log (on vdc), lvconvert -m1 / -m0, pvmove (a temporary mirror), each with
# a data check, for our module and then for the C dm-mirror in the same boot
# (separate TAP points, "rs:" and "c:"). lvm finds "mirror" registered by the
# module the test loaded (modprobe is disabled in the guest) and never loads
# another one: checked with the module list and the module's refcount.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/lib-clients.sh"

VG=dmrs_vg
PVS="/dev/vda /dev/vdb /dev/vdc"
LV_MIB=16                     # every LV of the test
LV_SECTORS=$((LV_MIB * 2048))
randfile /tmp/lv1 8
randfile /tmp/lv2 8

vg_clean() {
	vgremove -y -f $VG > /dev/null 2>&1
	pvremove -y -ff $PVS > /dev/null 2>&1
}
at_end "vg_clean"
wipe_pvs() {
	for _d in $PVS; do dd if=/dev/zero of=$_d bs=1M count=1 oflag=direct 2>/dev/null || return 1; done
}
# copy_pct LV: lvs' Cpy%Sync of VG/LV
copy_pct() { lvs --noheadings -o copy_percent $VG/"$1" 2>/dev/null | tr -d ' '; }
# wait_copy LV SECS: Cpy%Sync reaches 100.00
wait_copy() {
	local _end _p
	_end=$(( $(date +%s) + $2 ))
	while :; do
		_p=$(copy_pct "$1")
		[ "$_p" = 100.00 ] && return 0
		[ "$(date +%s)" -ge $_end ] && { fail "$1: Cpy%Sync $_p after ${2}s ($(dmsetup status $VG-"$1"))"; return 1; }
		sleep 2
	done
}
# table_is LV REGEX: the dm table of VG/LV matches the (extended) REGEX
table_is() {
	local _t
	_t=$(dmsetup table $VG-"$1") || return 1
	tap_diag "$VG-$1: $_t"
	echo "$_t" | grep -Eq "$2" || fail "$VG-$1: '$_t' does not match '$2'"
}
# mirror_legs_hold LV FILE SECTOR: both mirror images hold FILE at SECTOR
mirror_legs_hold() {
	leg_has "$2" /dev/mapper/$VG-"$1"_mimage_0 "$3" || fail "mimage_0 lacks the data" || return 1
	leg_has "$2" /dev/mapper/$VG-"$1"_mimage_1 "$3" || fail "mimage_1 lacks the data"
}
images_identical() { # LV SECTORS
	legs_identical /dev/mapper/$VG-"$1"_mimage_0 /dev/mapper/$VG-"$1"_mimage_1 "$2"
}
lv_gone() { ! dev_exists $VG-"$1" || fail "$VG-$1 still exists"; }
# pvmove_watched LV FROM TO: pvmove, watching for the temporary mirror
pvmove_watched() {
	local _pid _rc _seen=
	pvmove -i 1 -n $VG/"$1" "$2" "$3" > /tmp/pvmove.out 2>&1 &
	_pid=$!
	while kill -0 $_pid 2>/dev/null; do
		if [ -z "$_seen" ] && dmsetup table $VG-pvmove0 > /tmp/pvmove.table 2>/dev/null &&
			grep -q ' mirror ' /tmp/pvmove.table; then
			_seen=1
			tap_diag "pvmove0: $(cat /tmp/pvmove.table)"
			impl_in_use || _seen=
		fi
		sleep 0.2
	done
	wait $_pid
	_rc=$?
	cat /tmp/pvmove.out
	[ $_rc = 0 ] || fail "pvmove exit $_rc: $(tail -n 1 /tmp/pvmove.out)" || return 1
	[ -n "$_seen" ] || fail "no $VG-pvmove0 mirror table held by $(mirror_module) was seen"
}
on_pv() { # LV PV: every extent of LV is on PV
	_d=$(lvs --noheadings -o devices $VG/"$1" | tr -d ' ')
	echo "$_d" | grep -q "^$2(" || fail "$1 on '$_d', want $2"
	! echo "$_d" | grep -q "," || fail "$1 on '$_d', want $2 only"
}

scenario() {
	I=$DMRS_IMPL
	check "$I: load $(impl_name)" load_rs || return
	check "$I: $(impl_name) is the only mirror provider" only_impl_loaded
	check "$I: wipe the PV labels" wipe_pvs
	check "$I: pvcreate $PVS" pvcreate -y $PVS || return
	check "$I: vgcreate $VG" vgcreate $VG $PVS || return

	# core log
	L=core
	check "$I: lvcreate --type mirror -m1 --mirrorlog core -L ${LV_MIB}M" \
		lvcreate -y --type mirror -m1 --mirrorlog core -L ${LV_MIB}M -n $L $VG /dev/vda /dev/vdb
	if dev_exists $VG-$L; then
		check "$I: $L: the table is a core-log mirror of 2 legs" table_is $L '^0 '$LV_SECTORS' mirror core 1 [0-9]+ 2 [0-9]+:[0-9]+ 0 [0-9]+:[0-9]+ 0( 1 handle_errors)?$'
		check "$I: $L: the mirror holds a reference on $(impl_name)" impl_in_use
		check "$I: $L: lvs Cpy%Sync reaches 100" wait_copy $L 600
		check "$I: $L: write 8 MiB O_DIRECT at 4 MiB" dd if=/tmp/lv1 of=/dev/mapper/$VG-$L bs=1M seek=4 oflag=direct
		check "$I: $L: read back" reads_as /tmp/lv1 /dev/mapper/$VG-$L 8192
		check "$I: $L: both images hold the data" mirror_legs_hold $L /tmp/lv1 8192
		check "$I: $L: images identical" images_identical $L $LV_SECTORS
		check "$I: $L: lvremove" lvremove -y $VG/$L
		check "$I: $L: gone" lv_gone $L
	fi

	# disk log on vdc
	L=disk
	check "$I: lvcreate --type mirror -m1 --mirrorlog disk -L ${LV_MIB}M (log on vdc)" \
		lvcreate -y --type mirror -m1 --mirrorlog disk -L ${LV_MIB}M -n $L $VG /dev/vda /dev/vdb /dev/vdc
	if dev_exists $VG-$L; then
		check "$I: $L: the table is a disk-log mirror of 2 legs" table_is $L '^0 '$LV_SECTORS' mirror disk 2 [0-9]+:[0-9]+ [0-9]+ 2 [0-9]+:[0-9]+ 0 [0-9]+:[0-9]+ 0( 1 handle_errors)?$'
		check "$I: $L: the mirror holds a reference on $(impl_name)" impl_in_use
		check "$I: $L: lvs Cpy%Sync reaches 100" wait_copy $L 600
		check "$I: $L: write 8 MiB O_DIRECT at 2 MiB" dd if=/tmp/lv2 of=/dev/mapper/$VG-$L bs=1M seek=2 oflag=direct
		check "$I: $L: both images hold the data" mirror_legs_hold $L /tmp/lv2 4096
		check "$I: $L: lvchange -an" lvchange -an $VG/$L
		check "$I: $L: lvchange -ay" lvchange -ay $VG/$L
		now_in_sync() { _p=$(copy_pct $L); [ "$_p" = 100.00 ] || fail "Cpy%Sync $_p right after activation"; }
		check "$I: $L: in sync at once after reactivation (the disk log kept the state)" now_in_sync
		check "$I: $L: read back after reactivation" reads_as /tmp/lv2 /dev/mapper/$VG-$L 4096
		check "$I: $L: images identical" images_identical $L $LV_SECTORS
		check "$I: $L: lvremove" lvremove -y $VG/$L
		check "$I: $L: gone" lv_gone $L
	fi

	# lvconvert: linear -> mirror -> linear
	L=conv
	check "$I: lvcreate -L ${LV_MIB}M linear on vda" lvcreate -y -L ${LV_MIB}M -n $L $VG /dev/vda
	check "$I: $L: 8 MiB of data" dd if=/tmp/lv1 of=/dev/mapper/$VG-$L bs=1M oflag=direct
	check "$I: $L: lvconvert --type mirror -m1 --mirrorlog core (waits for the copy)" \
		lvconvert -y -i 1 --type mirror -m1 --mirrorlog core $VG/$L /dev/vdb
	if dev_exists $VG-${L}_mimage_1; then
		check "$I: $L: the table is a core-log mirror" table_is $L '^0 '$LV_SECTORS' mirror core 1 [0-9]+ 2 '
		check "$I: $L: Cpy%Sync 100" wait_copy $L 600
		check "$I: $L: both images hold the data" mirror_legs_hold $L /tmp/lv1 0
		check "$I: $L: images identical" images_identical $L $LV_SECTORS
		check "$I: $L: lvconvert -m0" lvconvert -y -m0 $VG/$L
		check "$I: $L: linear again" table_is $L '^0 '$LV_SECTORS' linear '
		check "$I: $L: data intact" reads_as /tmp/lv1 /dev/mapper/$VG-$L 0
	fi
	check "$I: $L: lvremove" lvremove -y $VG/$L

	# pvmove: vda -> vdb through a temporary mirror
	L=mv
	check "$I: lvcreate -L ${LV_MIB}M linear on vda" lvcreate -y -L ${LV_MIB}M -n $L $VG /dev/vda
	check "$I: $L: 8 MiB of data" dd if=/tmp/lv2 of=/dev/mapper/$VG-$L bs=1M oflag=direct
	check "$I: $L: pvmove vda -> vdb (through a mirror)" pvmove_watched $L /dev/vda /dev/vdb
	check "$I: $L: the LV is on vdb" on_pv $L /dev/vdb
	check "$I: $L: no pvmove0 left" lv_gone pvmove0
	check "$I: $L: data intact" reads_as /tmp/lv2 /dev/mapper/$VG-$L 0
	check "$I: $L: lvremove" lvremove -y $VG/$L

	check "$I: vgremove" vgremove -y $VG
	check "$I: pvremove" pvremove -y $PVS
	check "$I: no dm devices left" no_devices
	check "$I: unload $(impl_name)" unload_rs
}

impls=$(impls)
for DMRS_IMPL in $impls; do
	scenario
	vg_clean
	unload_rs > /dev/null 2>&1
done
DMRS_IMPL=${impls%% *}
rm -f /tmp/lv1 /tmp/lv2 /tmp/pvmove.*
tap_end
