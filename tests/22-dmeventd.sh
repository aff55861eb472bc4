#!/bin/sh
# LVM's automatic repair of a mirror by dmeventd (issue #16, item 3), for our
# module and then for the C dm-mirror in the same boot (TAP points "rs:" and
# "c:"), with activation/mirror_image_fault_policy "allocate" and then
# "remove"; the outcomes are compared at the end.
#
# What runs: Debian's /sbin/dmeventd with its mirror plugin
# (libdevmapper-event-lvm2mirror.so, which runs liblvm2cmd's
# "lvconvert --repair --use-policies VG/LV" inside dmeventd when the mirror's
# status shows a failed leg). The test starts dmeventd itself, in the
# foreground (-f -l -d), so that its log lands in a file the test reads and
# prints on failure; lvm finds it running and registers the LV with it (the
# guest has no systemd to start it, and lvm would start it as a daemon logging
# to a syslog the guest does not have). lvm reads this test's own lvm.conf
# (LVM_SYSTEM_DIR, below): monitoring on, the fault policy of the run, the
# same no-udev settings as the guest's /etc/lvm/lvm.conf, and a filter that
# sees only the three PV devices of the test. dmeventd inherits the variable.
#
# The disks: each PV is a dm linear device (dmev_pv0 on vda, dmev_pv1 on
# vdb, dmev_pv2 = all of vdc, the spare) so that a disk can die under LVM: a
# PV device's table is switched to "error" (load, suspend, resume) while a
# writer runs, and from then on every read and write to it fails, as on a
# dead disk; lvm then finds no label there (the PV is missing), as after a
# real disk failure. The LV: lvcreate --type mirror -m1 --mirrorlog core
# -L 8M on dmev_pv0 + dmev_pv1, monitored from its activation (monitoring =
# 1); with monitoring on, lvm gives the table "1 handle_errors", so the
# mirror holds the writes that fail until the repair reloads it (with a
# noflush suspend that hands them to the new table).
#
# Per implementation, two phases on the same LV (one VG set-up and teardown
# for both: each lvm command takes ~5 s in the TCG debug guest):
#   allocate: dmev_pv1 (the second leg) dies; dmeventd must give the LV a
#     new image on the spare dmev_pv2 and resync it (its lvconvert polls the
#     copy to the end before it returns);
#   remove: dmeventd is restarted with policy "remove" and the LV registered
#     again with "lvchange --monitor y"; dmev_pv0 (the first, default leg)
#     dies; dmeventd must drop that image: the LV becomes linear on dmev_pv2
#     (the copy the allocate phase made).
# In each phase the first half of an 8 MiB random file has been written, and
# a background writer writes the second half over and over in 256 KiB
# O_DIRECT pieces; after the PV dies the test types no lvm command: it only
# reads dmeventd's log and dm tables until dmeventd says the repair ended
# (at most REPAIR_WAIT s for "remove", ALLOC_WAIT s for "allocate"). Then
# it checks: dmeventd saw the failure and its repair succeeded; the layout
# (lvs and the dm tables); for allocate Cpy%Sync 100 and both images holding
# the data; the writer saw no error and went on after the repair; the LV
# reads back the whole file. These outcome checks are counted per phase; the
# last points say what each implementation got and fail if ours got fewer
# than C's.
#
# Limits: the mirror log is "core" (a disk log would need a fourth PV for
# its replacement); lvm 2.03.16 leaves the missing PV in the VG after the
# repair (its --use-policies clean-up looks for missing PVs that still hold
# extents after the failed image was removed, and finds none), so the test
# does not ask for that; on failure the writer, if still held by the mirror, is
# released with a flush suspend (which fails the held writes). The
# debug kernel's hung-task limit (60 s) also bounds how long a held write may
# wait for dmeventd: a slower repair shows as a hung-task report.
. /tests/lib.sh
. /tests/lib-clients.sh

VG=dmrs_ev
L=lv
LV_MIB=8
PIECES=$((LV_MIB * 4))        # 256 KiB pieces in the LV
PV_SECTORS=$((64 * 2048))     # dmev_pv0 on vda, dmev_pv1 on vdb: 64 MiB each
REPAIR_WAIT=120
ALLOC_WAIT=240
CONF=/run/dmrs-dmeventd
export LVM_SYSTEM_DIR=$CONF
DATA=/tmp/dmev.data
WSTOP=/tmp/dmev.wstop
WCOUNT=/tmp/dmev.wcount
WFAIL=/tmp/dmev.wfail
PLUGIN=/lib/x86_64-linux-gnu/libdevmapper-event-lvm2mirror.so
EV_PID=
W_PID=

pv() { echo /dev/mapper/dmev_pv$1; }
PVS="$(pv 0) $(pv 1) $(pv 2)"
LVDEV=/dev/mapper/$VG-$L

# quiet TEXT: TEXT for a TAP diagnostic; lvm and dmeventd print
# "WARNING: ..." lines, which the console check would take for the kernel's
quiet() { printf '%s\n' "$*" | sed 's/WARNING:/warning:/g'; }

# write_conf POLICY: the test's lvm.conf: the guest's /etc/lvm/lvm.conf
# (scripts/mkinitramfs.sh: no udev, lvmpolld or dbus) with monitoring on,
# POLICY for a failed image, and a filter that sees only the test's PVs
write_conf() {
	mkdir -p $CONF
	awk -v pol="$1" '
	/^[ \t]*global_filter =/ {
		print "\tglobal_filter = [ \"a|^/dev/mapper/dmev_pv[0-9]$|\", \"r|.*|\" ]"; f++; next
	}
	/^[ \t]*monitoring = 0/ {
		print "\tmonitoring = 1"
		print "\tmirror_image_fault_policy = \"" pol "\""
		print "\tmirror_log_fault_policy = \"allocate\""
		print "\tpolling_interval = 1"
		m++; next
	}
	{ print }
	END { exit !(f == 1 && m == 1) }' /etc/lvm/lvm.conf > $CONF/lvm.conf ||
		fail "/etc/lvm/lvm.conf has no single global_filter and 'monitoring = 0' line to replace"
}

# ---- dmeventd ---------------------------------------------------------------
# start_dmeventd LOG: dmeventd in the foreground, logging to LOG; ready
# when it says so (it has made its fifos by then)
start_dmeventd() {
	local _i
	rm -f /run/dmeventd-server /run/dmeventd-client /run/dmeventd.pid
	/sbin/dmeventd -f -l -d > "$1" 2>&1 &
	EV_PID=$!
	_i=0
	while [ $_i -lt 150 ]; do
		grep -q 'ready for processing' "$1" && return 0
		kill -0 $EV_PID 2>/dev/null || { wait $EV_PID; fail "dmeventd exited with $?: $(quiet "$(tail -n 3 "$1")")"; EV_PID=; return 1; }
		sleep 0.2
		_i=$((_i + 1))
	done
	fail "dmeventd not ready after 30 s: $(quiet "$(tail -n 3 "$1")")"
}
# stop_dmeventd: TERM (it exits when no device is registered), KILL after 2 s
stop_dmeventd() {
	local _i
	[ -n "$EV_PID" ] || return 0
	kill -TERM $EV_PID 2>/dev/null
	_i=0
	while kill -0 $EV_PID 2>/dev/null && [ $_i -lt 10 ]; do
		sleep 0.2
		_i=$((_i + 1))
	done
	kill -KILL $EV_PID 2>/dev/null
	wait $EV_PID 2>/dev/null
	EV_PID=
	rm -f /run/dmeventd-server /run/dmeventd-client /run/dmeventd.pid
}
# log_has REGEX: dmeventd's log of this run has a line matching REGEX
log_has() { grep -Eq "$1" "$EVLOG" || fail "dmeventd's log has no '$1'"; }
# wait_log REGEX SECS: until dmeventd's log has such a line
wait_log() {
	local _end
	_end=$(( $(date +%s) + $2 ))
	while ! grep -Eq "$1" "$EVLOG"; do
		[ "$(date +%s)" -ge $_end ] && { fail "dmeventd's log has no '$1' after ${2}s"; return 1; }
		sleep 1
	done
}

# ---- the writer ---------------------------------------------------------------
# writer: the second half of DATA, piece after piece (256 KiB, O_DIRECT),
# pass after pass until WSTOP exists, looked at only between passes (so
# every piece is written at least once); counts pieces in WCOUNT, failures
# in WFAIL
writer() {
	local _n=0 _p
	while [ $((_n % (PIECES / 2))) != 0 ] || [ ! -e $WSTOP ]; do
		_p=$((PIECES / 2 + _n % (PIECES / 2)))
		dd if=$DATA of=$LVDEV bs=256k skip=$_p seek=$_p count=1 oflag=direct conv=notrunc 2>/dev/null ||
			echo "piece $_p (write $_n) failed" >> $WFAIL
		_n=$((_n + 1))
		echo $_n > $WCOUNT.t && mv $WCOUNT.t $WCOUNT
	done
}
wcount() { cat $WCOUNT 2>/dev/null || echo 0; }
start_writer() {
	rm -f $WSTOP $WCOUNT $WCOUNT.t $WFAIL
	writer &
	W_PID=$!
}
# wait_pieces N SECS: the writer has written N pieces (in all)
wait_pieces() {
	local _end
	_end=$(( $(date +%s) + $2 ))
	while [ "$(wcount)" -lt "$1" ]; do
		kill -0 $W_PID 2>/dev/null || return 1
		[ "$(date +%s)" -ge $_end ] && return 1
		sleep 0.2
	done
}
# stop_writer SECS: ask it to stop, wait; if it still runs after SECS, kill
# it and release its held write with a flush suspend of the LV (held writes
# fail), and fail
stop_writer() {
	local _end
	[ -n "$W_PID" ] || return 0
	touch $WSTOP
	_end=$(( $(date +%s) + $1 ))
	while kill -0 $W_PID 2>/dev/null; do
		if [ "$(date +%s)" -ge $_end ]; then
			kill $W_PID 2>/dev/null
			dmsetup suspend $VG-$L 2>/dev/null
			dmsetup resume $VG-$L 2>/dev/null
			wait $W_PID
			W_PID=
			fail "the writer did not end within ${1}s after the stop (released by a flush suspend)"
			return 1
		fi
		sleep 0.2
	done
	wait $W_PID
	W_PID=
}

# ---- devices ---------------------------------------------------------------
# mkpvs: the PV devices (removed by run_clean), their first MiB zeroed (no
# label or metadata of an earlier run)
mkpvs() {
	dmsetup create dmev_pv0 --table "0 $PV_SECTORS linear /dev/vda 0" &&
		dmsetup create dmev_pv1 --table "0 $PV_SECTORS linear /dev/vdb 0" &&
		dmsetup create dmev_pv2 --table "0 $(blockdev --getsz /dev/vdc) linear /dev/vdc 0" || return 1
	for _d in $PVS; do
		[ -b $_d ] || fail "$_d is not a block device" || return 1
		dd if=/dev/zero of=$_d bs=1M count=1 oflag=direct 2>/dev/null || return 1
	done
}
# kill_pv N: dmev_pvN's table becomes "error" (every I/O fails, as on a dead disk)
kill_pv() {
	dmsetup load dmev_pv$1 --table "0 $(blockdev --getsz $(pv $1)) error" &&
		dmsetup suspend dmev_pv$1 && dmsetup resume dmev_pv$1
}
# run_clean: whatever a run left (after a failure), in an order that works
run_clean() {
	stop_writer 20 > /dev/null 2>&1
	stop_dmeventd
	for _i in 1 2; do
		for _d in $(dmsetup ls 2>/dev/null | awk -v p="$VG-" 'index($1, p) == 1 {print $1}'); do
			dmsetup remove "$_d" > /dev/null 2>&1
		done
	done
	for _i in 0 1 2; do rmdev dmev_pv$_i > /dev/null 2>&1; done
}
at_end "run_clean"

# state: what lvm, dm and dmeventd show (for diagnostics)
state() {
	tap_diag "$(quiet "$(lvs -a --noheadings -o lv_name,segtype,devices,copy_percent,seg_monitor $VG 2>&1)")"
	tap_diag "$(dmsetup table 2>&1 | grep -E "^($VG-|dmev_)")"
	tap_diag "$(dmsetup status 2>&1 | grep -E "^($VG-|dmev_)")"
	[ -n "${EVLOG:-}" ] && tap_diag "dmeventd: $(quiet "$(grep -Ev '^ *$' "$EVLOG" | tail -n 25)")"
}

# ---- outcome checks ---------------------------------------------------------
# ocheck KEY NAME CMD...: a check whose result counts in the run's outcome
# (KEY names it in the outcome line)
ocheck() {
	local _k=$1 _n=$2
	shift 2
	if check "$I: $P: $_n" "$@"; then
		SCORE=$((SCORE + 1))
		OUT="$OUT $_k"
	else
		OUT="$OUT !$_k"
	fi
}
LVS=/tmp/dmev.lvs
# snap_lvs: what lvs says of the VG now (one lvs call; the checks below read it)
snap_lvs() {
	lvs -a --noheadings -o lv_name,segtype,devices,copy_percent $VG > $LVS 2> $LVS.err
}
lv_col() { awk -v c="$1" '$1 == "lv" {print $c}' $LVS; } # COL of the LV's line
# image_pvs: "<pv>,<pv>" the LV's mirror images are on, sorted
image_pvs() {
	awk '$1 ~ /_mimage_/ {print $3}' $LVS | sed 's|.*/||; s|(.*||' | sort | paste -sd, -
}
# linear_on N: the LV is linear on dmev_pvN, its dm table too, no image left
linear_on() {
	local _s _d
	_s=$(lv_col 2)
	_d=$(lv_col 3)
	[ "$_s" = linear ] && [ "$_d" = "$(pv $1)(0)" ] || fail "segtype '$_s' on '$_d', want linear on $(pv $1)(0)" || return 1
	dmsetup table $VG-$L | grep -q ' linear ' || fail "dm table: $(dmsetup table $VG-$L)" || return 1
	! dmsetup ls | grep -q "^$VG-${L}_mimage" || fail "image devices left: $(dmsetup ls | grep "^$VG-${L}_mimage" | tr '\n' ' ')"
}
# mirror_on PVS: the LV is a mirror with images on PVS ("dmev_pv0,dmev_pv2"),
# its dm table a 2-leg core-log mirror with handle_errors
mirror_on() {
	local _s _i
	_s=$(lv_col 2)
	_i=$(image_pvs)
	[ "$_s" = mirror ] && [ "$_i" = "$1" ] || fail "segtype '$_s', images on '$_i', want mirror on $1" || return 1
	dmsetup table $VG-$L | grep -Eq ' mirror core [0-9]+ [0-9]+( nosync)? 2 .* 1 handle_errors$' ||
		fail "dm table: $(dmsetup table $VG-$L)"
}
copy_is_100() { _p=$(lv_col 4); [ "$_p" = 100.00 ] || fail "Cpy%Sync '$_p'"; }
writer_ok() {
	[ ! -s $WFAIL ] || fail "writes failed: $(head -n 3 $WFAIL | tr '\n' ' ')"
	[ "$(wcount)" -gt "$AT_KILL" ] || fail "no write after the failure ($(wcount) pieces, $AT_KILL at the failure)"
}
# data_intact DEV: DEV reads back the whole DATA (which must exist: reads_as
# of a missing file compares nothing)
data_intact() {
	[ "$(stat -c %s $DATA 2>/dev/null)" = $((LV_MIB * 1048576)) ] || fail "$DATA is not $LV_MIB MiB" || return 1
	reads_as $DATA "$1" 0
}
images_hold_data() {
	[ -s $DATA ] || fail "no $DATA" || return 1
	leg_has $DATA /dev/mapper/$VG-${L}_mimage_0 0 || fail "mimage_0 lacks the data" || return 1
	leg_has $DATA /dev/mapper/$VG-${L}_mimage_1 0 || fail "mimage_1 lacks the data"
}

# phase POLICY DEAD: dmeventd (started for POLICY) watches the LV; a
# writer runs; dmev_pvDEAD dies under it; hands off until dmeventd's repair
# ends; then the outcome checks of POLICY. Records the outcome as
# OUT_<impl>_<policy> and SCORE_<impl>_<policy>.
phase() {
	P=$1
	SCORE=0
	OUT=
	DT=
	if [ $P = allocate ]; then _w=$ALLOC_WAIT; else _w=$REPAIR_WAIT; fi
	start_writer
	if ! check "$I: $P: the writer writes" wait_pieces 4 60; then
		stop_writer 20
		state
		return 1
	fi
	check "$I: $P: dmev_pv$2 switched to error under the writer" kill_pv $2
	T0=$(date +%s)
	AT_KILL=$(wcount)
	# hands off: only dmeventd acts now
	if wait_log "Repair of mirrored device $VG-$L (finished|failed)" $_w 2>/dev/null; then
		DT="repair ended after $(( $(date +%s) - T0 ))s"
		tap_diag "$I: $P: dmeventd's $DT"
	else
		DT="no repair end within ${_w}s"
		tap_diag "$I: $P: no end of a repair in dmeventd's log after ${_w}s"
	fi
	ocheck seen "dmeventd saw the leg fail" log_has "Device failure in $VG-$L"
	ocheck repaired "dmeventd's lvconvert --repair succeeded" log_has "Repair of mirrored device $VG-$L finished successfully"
	# a few writes after the repair, then stop the writer
	wait_pieces $(( $(wcount) + 2 )) 30
	# the writer ends its pass first: up to 16 pieces, seconds each in a
	# starved guest
	check "$I: $P: the writer ends" stop_writer 240
	snap_lvs
	tap_diag "$I: $P: lvs: $(quiet "$(tr -s ' ' < $LVS)")"
	if [ $P = allocate ]; then
		ocheck mirror-pv0-pv2 "the LV is a mirror again, images on dmev_pv0 and the spare dmev_pv2" mirror_on dmev_pv0,dmev_pv2
		ocheck synced "Cpy%Sync 100" copy_is_100
		ocheck images-hold-data "both images hold the data" images_hold_data
	else
		ocheck linear-pv2 "the LV is linear on dmev_pv2, no image left" linear_on 2
	fi
	ocheck writes-ok "no write failed, writes went on after the failure" writer_ok
	ocheck data-intact "the LV reads back the whole file" data_intact $LVDEV
	[ "${DMRS_FAILS:-0}" = "$FAILS0" ] || state
	eval "OUT_${I}_$P=\"\$OUT (\$DT)\"; SCORE_${I}_$P=\$SCORE"
}

# run: one implementation ($I): the VG and LV, phase allocate (the second
# leg dies), then phase remove (the first leg dies), teardown
run() {
	FAILS0=${DMRS_FAILS:-0}
	P=setup
	check "$I: lvm.conf of the test (the guest's, monitoring on, policy allocate)" write_conf allocate || { state; return; }
	EVLOG=/tmp/dmeventd-$I-allocate.log
	check "$I: PV devices (dmev_pv0 on vda, dmev_pv1 on vdb, dmev_pv2 = vdc)" mkpvs || { state; return; }
	check "$I: dmeventd -f started (policy allocate)" start_dmeventd $EVLOG || { state; return; }
	check "$I: vgcreate $VG (3 new PVs)" vgcreate -y $VG $PVS || { state; return; }
	check "$I: lvcreate --type mirror -m1 --mirrorlog core -L ${LV_MIB}M on dmev_pv0 + dmev_pv1" \
		lvcreate -y --type mirror -m1 --mirrorlog core -L ${LV_MIB}M -n $L $VG $(pv 0) $(pv 1) || { state; return; }
	check "$I: dmeventd watches $VG-$L" wait_log "Monitoring mirror device $VG-$L for events" 10
	check "$I: the table has handle_errors" eval "dmsetup table $VG-$L | grep -q ' 1 handle_errors\$'"
	check "$I: the mirror holds a reference on $(impl_name)" impl_in_use
	check "$I: in sync" wait_sync $VG-$L 120
	check "$I: first half of the data written" \
		dd if=$DATA of=$LVDEV bs=256k count=$((PIECES / 2)) oflag=direct conv=notrunc
	phase allocate 1
	# the second phase needs the first one's mirror on dmev_pv0 + dmev_pv2
	if mirror_on dmev_pv0,dmev_pv2 > /dev/null 2>&1; then
		FAILS0=${DMRS_FAILS:-0}
		stop_dmeventd
		check "$I: lvm.conf with policy remove" write_conf remove
		EVLOG=/tmp/dmeventd-$I-remove.log
		check "$I: dmeventd -f restarted (policy remove)" start_dmeventd $EVLOG
		check "$I: lvchange --monitor y" lvchange --monitor y $VG/$L
		check "$I: the new dmeventd watches $VG-$L" wait_log "Monitoring mirror device $VG-$L for events" 10
		phase remove 0
	else
		tap_diag "$I: phase remove not run: the allocate phase left no mirror on dmev_pv0 + dmev_pv2"
	fi
	check "$I: vgremove -f" vgremove -y -f $VG
	stop_dmeventd
	run_clean
	check "$I: no dm devices left" no_devices
}

check "dmeventd and its mirror plugin are in the guest" \
	eval "[ -x /sbin/dmeventd ] && [ -e $PLUGIN ]" || tap_end
check "$LV_MIB MiB of random data" randfile $DATA $LV_MIB || tap_end
impls=$(impls)
for I in rs c; do
	for P in remove allocate; do
		eval "OUT_${I}_$P=\" not run\"; SCORE_${I}_$P=0"
	done
done
for I in $impls; do
	DMRS_IMPL=$I
	check "$I: load $(impl_name)" load_rs || continue
	check "$I: $(impl_name) is the only mirror provider" only_impl_loaded
	run
	run_clean
	check "$I: unload $(impl_name)" unload_rs
done
DMRS_IMPL=${impls%% *}

for P in allocate remove; do
	eval "_c=\$OUT_c_$P; _sc=\$SCORE_c_$P"
	if [ "$impls" = c ]; then
		tap_diag "policy $P: C:$_c ($_sc outcome checks passed)"
		continue
	fi
	eval "_r=\$OUT_rs_$P; _sr=\$SCORE_rs_$P"
	tap_diag "policy $P: ours:$_r ($_sr passed); C:$_c ($_sc passed)"
	no_worse() { [ "$_sr" -ge "$_sc" ] || fail "ours passed $_sr outcome checks, C $_sc"; }
	check "policy $P: ours repairs no worse than C" no_worse
done
rm -f $DATA $WSTOP $WCOUNT $WCOUNT.t $WFAIL $LVS $LVS.err /tmp/dmeventd-*.log
tap_end
