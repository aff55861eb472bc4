#!/bin/sh
# Stress (issue #16): fio with verification on a 2-leg mirror (vda + vdb,
# 64 MiB, 512 KiB regions) for DMRS_STRESS_MINUTES minutes (kernel cmdline
# dmrs.stress_minutes; default 2), five jobs at once on their own 16 MiB
# areas, all O_DIRECT but one:
#   seqw   sequential 128 KiB writes, verified (crc32c, verify_backlog)
#          (each verified job reads back after 1 MiB, randw after 128 KiB:
#          a job of a 1-minute run in the 1-vCPU debug guest writes 1-15
#          MiB, and fio verifies nothing of a time-based job but its
#          backlog; backlogs of up to 8 MiB once left seqw at 52 of the 64
#          writes it needed)
#   randw  random 4 KiB writes at queue depth 16, verified
#   mixed  random 16 KiB reads and writes, 70/30 (not verified: load)
#   bufw   buffered sequential 64 KiB writes with fsync, verified (page
#          cache and writeback through the mirror)
#   seqr   sequential 1 MiB reads over the whole mirror (load)
# The mirror starts with a resync (`sync`). While fio runs, one after the
# other with a second between them, in turn: suspend + resume; a reload of the same table (dmsetup reload +
# resume); a switch of the log, core <-> disk (on vdc, wiped before each
# switch to it; each new log starts with a full resync from the default
# leg); status, stats and a page-cache drop. All of it under the seed's
# memory pressure (tests/seed.sh): failslab fails 25% of all non-sleeping
# slab allocations, and our region pool's fault point every 3rd atomic
# attempt (the GFP_NOIO fallback must carry kmirrord). At the end: fio
# exited 0 with every job free of errors and the verified jobs verified
# data, every operation succeeded, the fallback ran, the resync completes,
# the legs are identical and no leg has an error. The console check of
# scripts/run-guest.sh fails the run on any kernel splat.
# Not in "all" (make stress, and a 2-minute run in make check's lane 2):
#   scripts/run-guest.sh --fio --module dm_mirror_rs.ko --tests stress \
#       --append dmrs.stress_minutes=N --test-timeout $((N * 60 + 900))
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/lib-seed.sh"

min=${DMRS_STRESS_MINUTES:-}
if [ -z "$min" ]; then
	for w in $(cat /proc/cmdline); do
		case "$w" in dmrs.stress_minutes=*) min=${w#dmrs.stress_minutes=} ;; esac
	done
fi
min=${min:-2}
case "$min" in '' | *[!0-9]*) tap_fail "duration" "DMRS_STRESS_MINUTES '$min' is not a number of minutes"; tap_end ;; esac
[ "$min" -ge 1 ] || { tap_fail "duration" "at least 1 minute"; tap_end; }
if ! command -v fio > /dev/null; then
	tap_skip "stress" "no fio (scripts/run-guest.sh --fio puts it into the guest)"
	tap_end
fi
secs=$((min * 60))
# the points below, in order (our module adds the fault point's three)
if [ "$DMRS_IMPL" = c ]; then tap_plan 14; else tap_plan 17; fi

L=131072                  # 64 MiB
M=dmrs_stress
TCORE="0 $L mirror core 1 1024 2 /dev/vda 0 /dev/vdb 0"
TDISK="0 $L mirror disk 2 /dev/vdc 1024 2 /dev/vda 0 /dev/vdb 0"
FS=/sys/kernel/debug/failslab
check "load $(impl_name)" load_rs || tap_end
# the legs differ at the start (the first resync copies every region; 8
# MiB of random data: filling all 64 took 43 s in the TCG debug guest)
init_legs() {
	dd if=/dev/urandom of=/dev/vda bs=1M count=8 oflag=direct 2> /dev/null &&
		dd if=/dev/zero of=/dev/vdb bs=1M count=8 oflag=direct 2> /dev/null
}
check "legs differ: 8 MiB random on leg 0, zeros on leg 1" init_legs
check "create: $TCORE" mkmirror $M "$TCORE" || tap_end

cat > /tmp/stress.fio <<EOF
[global]
filename=/dev/mapper/$M
ioengine=libaio
direct=1
time_based
runtime=$secs
verify=crc32c
verify_fatal=1
[seqw]
rw=write
bs=128k
iodepth=4
offset=0
size=16m
verify_backlog=8
[randw]
rw=randwrite
bs=4k
iodepth=16
offset=16m
size=16m
verify_backlog=32
[mixed]
rw=randrw
rwmixread=70
bs=16k
iodepth=8
offset=32m
size=16m
verify=0
[bufw]
rw=write
direct=0
bs=64k
offset=48m
size=16m
fsync=64
verify_backlog=16
[seqr]
rw=read
bs=1m
iodepth=2
offset=0
size=64m
verify=0
EOF

failslab_on() {
	[ -d $FS ] || fail "no $FS (CONFIG_FAILSLAB, debugfs)" || return 1
	echo Y > $FS/ignore-gfp-wait && echo 0 > $FS/verbose && echo 25 > $FS/probability &&
		echo 0 > $FS/interval && echo -1 > $FS/times
}
failslab_off() { echo 0 > $FS/probability; }
at_end "failslab_off"
check "failslab: 25% of non-sleeping slab allocations fail" failslab_on
if [ "$DMRS_IMPL" != c ]; then
	check "region pool: every 3rd atomic attempt fails (fault point)" fail_atomic_every 3
	at_end "fail_atomic_every 0"
fi

fio --output=/tmp/stress.out /tmp/stress.fio > /tmp/stress.err 2>&1 &
fpid=$!
tap_diag "fio: 5 jobs for ${min} min (${secs}s) on /dev/mapper/$M"

# the operations while fio runs; each counted, failures kept
n_susp=0 n_reload=0 n_switch=0 n_look=0
bad_susp='' bad_reload='' bad_switch=''
log=core
op_log() { echo "$*" >> /tmp/stress.ops; }
: > /tmp/stress.ops
i=0
t0=$(date +%s)
while kill -0 $fpid 2> /dev/null; do
	sleep 1
	kill -0 $fpid 2> /dev/null || break
	case $((i % 4)) in
	0)
		if timeout 120 dmsetup suspend $M > "$DMRS_LOG" 2>&1 && dmsetup resume $M >> "$DMRS_LOG" 2>&1; then
			n_susp=$((n_susp + 1))
		else
			bad_susp="$bad_susp; $(tail -n 1 "$DMRS_LOG")"
			dmsetup resume $M > /dev/null 2>&1
		fi
		;;
	1)
		t=$(dmsetup table $M)
		if dmsetup reload $M --table "$t" > "$DMRS_LOG" 2>&1 &&
			timeout 120 dmsetup resume $M >> "$DMRS_LOG" 2>&1; then
			n_reload=$((n_reload + 1))
		else
			bad_reload="$bad_reload; $(tail -n 1 "$DMRS_LOG")"
			dmsetup clear $M > /dev/null 2>&1
			dmsetup resume $M > /dev/null 2>&1
		fi
		;;
	2)
		# core -> disk: a wiped log (bad magic) starts with every region
		# out of sync, as a new core log does; never `nosync` here, the
		# legs differ wherever writes went to the default leg only
		if [ $log = core ]; then
			new=$TDISK
			dd if=/dev/zero of=/dev/vdc bs=64k count=16 oflag=direct 2> /dev/null
		else
			new=$TCORE
		fi
		if dmsetup reload $M --table "$new" > "$DMRS_LOG" 2>&1 &&
			timeout 120 dmsetup resume $M >> "$DMRS_LOG" 2>&1; then
			n_switch=$((n_switch + 1))
			if [ $log = core ]; then log=disk; else log=core; fi
		else
			bad_switch="$bad_switch; to $new: $(tail -n 1 "$DMRS_LOG")"
			dmsetup clear $M > /dev/null 2>&1
			dmsetup resume $M > /dev/null 2>&1
		fi
		;;
	3)
		op_log "$(( $(date +%s) - t0 ))s $log: $(dmsetup status $M)"
		[ "$DMRS_IMPL" = c ] || op_log "  $(dmsetup message $M 0 stats 2>&1)"
		echo 3 > /proc/sys/vm/drop_caches
		n_look=$((n_look + 1))
		;;
	esac
	i=$((i + 1))
done
wait $fpid
frc=$?
tap_diag "$(cat /tmp/stress.ops)"
tap_diag "after $(( $(date +%s) - t0 ))s: $n_susp suspend/resume, $n_reload reloads, $n_switch log switches, $n_look looks; log now $log"

fio_ok() {
	local j r
	cat /tmp/stress.err
	[ $frc = 0 ] || fail "fio exited with $frc: $(grep -iE 'verify|error|err=' /tmp/stress.out /tmp/stress.err | head -n 5)" || return 1
	[ "$(grep -c 'err= 0' /tmp/stress.out)" = 5 ] || fail "not every job ended with err= 0: $(grep 'err=' /tmp/stress.out)" || return 1
	# "issued rwts: total=R,W,...": a verifying write job reads back what
	# it wrote (verify_backlog), so R > 0
	for j in seqw randw bufw; do
		r=$(awk -v j="$j: (groupid" 'index($0, j) == 1 {f = 1} f && /issued rwts/ {sub(/.*total=/, ""); split($0, a, ","); print a[1]; exit}' /tmp/stress.out)
		[ "${r:-0}" -gt 0 ] || fail "job $j verified nothing (reads issued: ${r:-none})" || return 1
	done
}
ops_ok() { # COUNT FAILURES
	[ -z "$2" ] || fail "failed:${2#;}" || return 1
	[ "$1" -ge 1 ] || fail "none done in ${min} min"
}
check "fio: 5 jobs for ${min} min, exit 0, no job error, the verifying jobs verified" fio_ok
tap_diag "$(grep -E '^[a-z]+: \(groupid|issued rwts|^ +(read|write):' /tmp/stress.out)"
check "suspend/resume while fio ran ($n_susp)" ops_ok "$n_susp" "$bad_susp"
check "reload of the same table while fio ran ($n_reload)" ops_ok "$n_reload" "$bad_reload"
check "log switch core <-> disk while fio ran ($n_switch)" ops_ok "$n_switch" "$bad_switch"
check "failslab off" failslab_off
if [ "$DMRS_IMPL" != c ]; then
	check "the GFP_NOIO fallback was used" seed_fallbacks_used $M
	check "fault point off" fail_atomic_every 0
fi
check "resync completes" wait_sync $M 900
healthy() {
	local h
	h=$(mirror_status $M | awk '{ n = $1; print $(n + 4) }')
	[ "$h" = AA ] || fail "leg health $h, want AA ($(mirror_status $M))"
}
check "no leg error (health AA)" healthy
check "legs identical" legs_identical /dev/vda /dev/vdb $L
check "remove" rmdev $M
check "unload" unload_rs
rm -f /tmp/stress.fio /tmp/stress.out /tmp/stress.err /tmp/stress.ops
tap_end
