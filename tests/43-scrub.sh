#!/bin/sh
# Check and repair (issue #15). The legs are dm devices (r0 linear over vda,
# r1 over vdb, r2 over vdc, 16 MiB each), so a leg can be damaged behind the
# mirror by writing r0/r1/r2 directly, and compared with cmp afterwards.
# Regions are 512 KiB (1024 sectors); mismatch_cnt counts 512-byte sectors
# in whole 4 KiB compare units, as md does.
#  - check finds the damage of one leg (mismatch_cnt = the damaged units'
#    sectors), writes nothing, and raises a table event when it ends;
#    repair fixes it; a second check finds 0.
#  - 3 legs: repair outvotes a damaged default leg (the two others agree).
#  - writes during a slow check (max_recovery_rate) lose nothing and count
#    no mismatch.
#  - suspend/resume mid-check: the check goes on from where it was.
#  - idle stops a check short, and it stays stopped.
#  - a low max_recovery_rate holds a resync back (its legs' writes delayed by
#    dm-delay, so it cannot end before the rate is set); lifting it lets the
#    resync finish, never going back.
#  - a region one leg cannot read (dm-flakey error_reads): check counts the
#    read error against the leg (R) and no mismatch; repair rewrites the
#    region on that leg from the other.
#  - every malformed message is refused (EINVAL) and changes nothing.
#  - the C dm-mirror refuses check (it has none).
. "$(dirname "$0")/lib.sh"

L=32768 # 16 MiB: the legs, the mirrors

if [ "$DMRS_IMPL" = c ]; then
	tap_skip "check and repair" "ours only (the C target has none; the rs run compares)"
	tap_end
fi

linear_of() {
	case "$1" in
	r0) echo "0 $L linear /dev/vda 0" ;;
	r1) echo "0 $L linear /dev/vdb 0" ;;
	r2) echo "0 $L linear /dev/vdc 0" ;;
	esac
}
# sa NAME: the sync_action line; sa_field NAME N: its Nth word
# (1 action, 2 done/total, 3 mismatch_cnt)
sa() { dmsetup message "$1" 0 sync_action; }
sa_field() { sa "$1" | awk -v n="$2" '{print $n}'; }
sa_done() { sa_field "$1" 2 | cut -d/ -f1; }
# sa_is NAME ACTION DONE/TOTAL MISMATCH (a field "-" is not checked)
sa_is() {
	local got a d m
	got=$(sa "$1") || fail "sync_action of $1 failed" || return 1
	set -- "$1" "$2" "$3" "$4" $got
	a=$5 d=$6 m=$7
	[ "$2" = - ] || [ "$a" = "$2" ] || fail "sync_action '$got': action, want $2" || return 1
	[ "$3" = - ] || [ "$d" = "$3" ] || fail "sync_action '$got': progress, want $3" || return 1
	[ "$4" = - ] || [ "$m" = "$4" ] || fail "sync_action '$got': mismatch_cnt, want $4" || return 1
}
# wait_idle NAME SECS: the running check or repair ends
wait_idle() {
	local _end
	_end=$(( $(date +%s) + $2 ))
	while [ "$(sa_field "$1" 1)" != idle ]; do
		[ "$(date +%s)" -ge $_end ] && { fail "$1 still '$(sa "$1")' after ${2}s"; return 1; }
		sleep 0.5
	done
}
# wait_done_above NAME SECTORS SECS: the running pass got past SECTORS
wait_done_above() {
	local _end
	_end=$(( $(date +%s) + $3 ))
	while [ "$(sa_done "$1")" -le "$2" ]; do
		[ "$(date +%s)" -ge $_end ] && { fail "$1: '$(sa "$1")' after ${3}s"; return 1; }
		sleep 0.3
	done
}
events() { dmsetup info -c --noheadings -o events "$1" | tr -d ' '; }
# damage DEV SECTOR SECTORS: other data over SECTORS sectors of DEV (a leg)
damage() {
	dd if=/dev/urandom of="$1" bs=512 seek="$2" count="$3" oflag=direct conv=notrunc 2> /dev/null ||
		fail "cannot write $1 at $2"
}
differ() { ! legs_identical "$@" > /dev/null 2>&1 || fail "$1 and $2 are identical"; }

check "load $(impl_name)" load_rs || tap_end
for l in r0 r1 r2; do
	check "leg $l: $(linear_of $l)" mkmirror $l "$(linear_of $l)" || tap_end
done
randfile /tmp/s43.d 16

# ---------------------------------------------- check, repair, check ----
M=s43_two
T="0 $L mirror core 2 1024 nosync 2 /dev/mapper/r0 0 /dev/mapper/r1 0"
check "create: $T" mkmirror $M "$T" || tap_end
at_end "rmdev $M"
check "write 16 MiB" dd if=/tmp/s43.d of=/dev/mapper/$M bs=1M oflag=direct
check "the legs are identical" legs_identical /dev/mapper/r0 /dev/mapper/r1 $L
check "sync_action before any check: idle 0/$L 0" sa_is $M idle 0/$L 0
TABLE0=$(dmsetup table $M)
STATUS0=$(dmsetup status $M)
# 1 unit in region 2, 2 units in region 9, 1 sector (a whole unit counts) in
# region 19: 8 + 16 + 8 sectors
check "damage leg r1 behind the mirror (4 units, 3 regions)" eval \
	'damage /dev/mapper/r1 2048 8 && damage /dev/mapper/r1 9216 16 && damage /dev/mapper/r1 19459 1'
cp_r1() { dd if=/dev/mapper/r1 of=/tmp/s43.r1 bs=1M iflag=direct 2> /dev/null; }
check "copy of the damaged leg" cp_r1
ev0=$(events $M)
check "message check" dmsetup message $M 0 check
same_status() { [ "$(dmsetup status "$1")" = "$2" ] || fail "status now '$(dmsetup status "$1")', was '$2'"; }
check "the status line is the same during a check" same_status $M "$STATUS0"
check "the check ends" wait_idle $M 300
check "check: idle $L/$L 32" sa_is $M idle $L/$L 32
tap_diag "sync_action after check: $(sa $M)"
check "check wrote nothing: leg r1 as before" data_at /tmp/s43.r1 /dev/mapper/r1
check "check wrote nothing: the legs still differ" differ /dev/mapper/r0 /dev/mapper/r1 $L
ev_more() { [ "$(events "$1")" -gt "$2" ] || fail "event number $(events "$1"), was $2"; }
check "the end of the check raised a table event" ev_more $M "$ev0"
check "the mirror still reads the data" sha_equal $M /dev/mapper/r0 $L
check "message repair" dmsetup message $M 0 repair
check "the repair ends" wait_idle $M 300
check "repair: idle $L/$L 32" sa_is $M idle $L/$L 32
check "repair made the legs identical" legs_identical /dev/mapper/r0 /dev/mapper/r1 $L
check "... with the data written" data_at /tmp/s43.d /dev/mapper/r1
check "message check again" dmsetup message $M 0 check
check "the second check ends" wait_idle $M 300
check "second check: idle $L/$L 0" sa_is $M idle $L/$L 0

# --------------------------------------------------- bad messages ----
kmsg_mark s43-bad
for words in "check now" "repair 1" "idle 0" "sync_action x" "max_recovery_rate" \
	"max_recovery_rate -1" "max_recovery_rate abc" "max_recovery_rate 1 2" \
	"min_recovery_rate 1.5" "min_recovery_rate" "max_recovery_rate 4294967296" \
	"max_recovery_rate +5" "scrub" "Check"; do
	check "message '$words' is refused" msg_refused $M $words
done
check "message max_recovery_rate 100" dmsetup message $M 0 max_recovery_rate 100
check "message 'min_recovery_rate 500' (above max) is refused" msg_refused $M min_recovery_rate 500
check "message min_recovery_rate 50" dmsetup message $M 0 min_recovery_rate 50
check "message 'max_recovery_rate 20' (below min) is refused" msg_refused $M max_recovery_rate 20
rates_are() {
	[ "$(stat_field "$1" max_recovery_rate)" = "$2" ] && [ "$(stat_field "$1" min_recovery_rate)" = "$3" ] ||
		fail "stats: $(dmsetup message "$1" 0 stats), want max $2 min $3"
}
check "stats show the rates, unchanged by the refused ones" rates_are $M 100 50
dmesg_has() { dmesg_since s43-bad | grep -q "$1" || fail "no '$1' in dmesg"; }
check "... a refusal says why in dmesg" dmesg_has "max_recovery_rate: the rate must be a whole number"
check "rates back to no limit" eval "dmsetup message $M 0 min_recovery_rate 0 && dmsetup message $M 0 max_recovery_rate 0"
same_table() { [ "$(dmsetup table "$1")" = "$2" ] || fail "table now '$(dmsetup table "$1")', was '$2'"; }
check "the table line is unchanged by the messages" same_table $M "$TABLE0"

# ---------------------------------------- writes during a slow check ----
randfile /tmp/s43.w 4
check "max_recovery_rate 1024 (16 MiB: ~16 s)" dmsetup message $M 0 max_recovery_rate 1024
check "message check (slow)" dmsetup message $M 0 check
check "a second check while one runs is refused" msg_refused $M check
writer() { # 4 MiB at 4 places (the whole mirror), 1 MiB blocks, while the check runs
	local o
	for o in 0 4 8 12; do
		dd if=/tmp/s43.w of=/dev/mapper/$M bs=1M seek=$o oflag=direct conv=notrunc 2> /dev/null || return 1
	done
}
check "writes during the check" writer
check "the check was still running after them" sa_is $M check - -
check "the check ends" wait_idle $M 300
check "writes during the check: no mismatch counted" sa_is $M idle $L/$L 0
# expected content: s43.d with s43.w at 0, 4, 8, 12 MiB
cp /tmp/s43.d /tmp/s43.e
for o in 0 4 8 12; do dd if=/tmp/s43.w of=/tmp/s43.e bs=1M seek=$o conv=notrunc 2> /dev/null; done
check "every write is on both legs" eval 'data_at /tmp/s43.e /dev/mapper/r0 && data_at /tmp/s43.e /dev/mapper/r1'

# ----------------------------------------- suspend/resume mid-check ----
check "max_recovery_rate 512 (16 MiB: ~32 s)" dmsetup message $M 0 max_recovery_rate 512
check "message check (slow)" dmsetup message $M 0 check
check "the check gets past 2 MiB" wait_done_above $M 4096 120
check "suspend mid-check" dmsetup suspend $M
d1=$(sa_done $M)
sleep 2
check "suspended: the check stands still" sa_is $M check $d1/$L -
check "resume" dmsetup resume $M
d2=$(sa_done $M)
tap_diag "done at the suspend: $d1, after the resume: $d2 (sectors)"
not_restarted() { [ "$d2" -ge "$d1" ] || fail "progress went back from $d1 to $d2"; }
check "after the resume the check goes on from where it was" not_restarted
check "rate lifted: max_recovery_rate 0" dmsetup message $M 0 max_recovery_rate 0
check "the check ends" wait_idle $M 300
check "the resumed check: idle $L/$L 0" sa_is $M idle $L/$L 0

# ------------------------------------------------- idle stops short ----
check "max_recovery_rate 256 (16 MiB: ~64 s)" dmsetup message $M 0 max_recovery_rate 256
check "message check (slow)" dmsetup message $M 0 check
check "the check gets past 0" wait_done_above $M 0 120
check "message idle" dmsetup message $M 0 idle
check "idle: the action is idle" wait_idle $M 30
d1=$(sa_done $M)
short() { [ "$d1" -lt $L ] || fail "done $d1 of $L: not stopped short"; }
check "... the check stopped short ($d1 of $L sectors)" short
sleep 3
check "... and stays stopped" sa_is $M idle $d1/$L 0
check "rate lifted" dmsetup message $M 0 max_recovery_rate 0
check "remove the 2-leg mirror" rmdev $M

# -------------------------------------- 3 legs: the majority wins ----
M=s43_three
T="0 $L mirror core 2 1024 nosync 3 /dev/mapper/r0 0 /dev/mapper/r1 0 /dev/mapper/r2 0"
check "create: $T" mkmirror $M "$T" || tap_end
at_end "rmdev $M"
check "write 16 MiB" dd if=/tmp/s43.d of=/dev/mapper/$M bs=1M oflag=direct
check "damage the default leg r0 (2 units in region 5)" damage /dev/mapper/r0 5128 16
check "message repair" dmsetup message $M 0 repair
check "the repair ends" wait_idle $M 300
check "repair: idle $L/$L 16" sa_is $M idle $L/$L 16
check "the default leg was outvoted: r0 holds the data again" data_at /tmp/s43.d /dev/mapper/r0
check "... and r1, r2 still do" eval 'data_at /tmp/s43.d /dev/mapper/r1 && data_at /tmp/s43.d /dev/mapper/r2'
check "remove the 3-leg mirror" rmdev $M

# ------------------------------ a leg that cannot read one region ----
# r1's region 6 (sectors 6144-7167) sits behind dm-flakey with error_reads
# (always down: every read there fails, writes pass); the rest is linear.
flaky_r1="0 6144 linear /dev/vdb 0
6144 1024 flakey /dev/vdb 6144 0 3600 1 error_reads
7168 $((L - 7168)) linear /dev/vdb 7168"
health_is() { [ "$(health "$1")" = "$2" ] || fail "health $(health "$1"), want $2 ($(mirror_status "$1"))"; }
check "load dm-flakey" load_ko dm-flakey
check "leg r1: region 6 unreadable (dm-flakey error_reads)" set_table r1 "$flaky_r1"
M=s43_rerr
T="0 $L mirror core 2 1024 nosync 2 /dev/mapper/r0 0 /dev/mapper/r1 0"
check "create: $T" mkmirror $M "$T" || tap_end
check "write 16 MiB" dd if=/tmp/s43.d of=/dev/mapper/$M bs=1M oflag=direct
check "check" dmsetup message $M 0 check
check "the check ends" wait_idle $M 300
tap_diag "after the check: $(sa $M); status: $(mirror_status $M)"
check "the read error counts against r1 (R), none against r0" health_is $M AR
check "check counted no mismatch for the unreadable region" sa_is $M idle $L/$L 0
check "remove it" rmdev $M
# other data in region 6 of r1, behind the mirror (on vdb: reads through
# r1 fail there)
check "r1's region 6 holds other data (written on vdb)" dd if=/dev/urandom of=/dev/vdb bs=512 seek=6144 count=1024 oflag=direct conv=notrunc
check "create it again" mkmirror $M "$T" || tap_end
at_end "rmdev $M"
check "repair" dmsetup message $M 0 repair
check "the repair ends" wait_idle $M 300
tap_diag "after the repair: $(sa $M); status: $(mirror_status $M)"
check "the read error counts against r1 (R)" health_is $M AR
r1_region6() { # vdb's region 6 holds the data's region 6
	dd if=/tmp/s43.d of=/tmp/s43.r6 bs=512 skip=6144 count=1024 2> /dev/null &&
		data_at /tmp/s43.r6 /dev/vdb 6144
}
check "repair rewrote the region r1 could not read, from r0" r1_region6
check "remove it" rmdev $M
check "leg r1 linear again" set_table r1 "$(linear_of r1)"

# ------------------------------ a low max_recovery_rate holds resync ----
check "leg r1 holds other data" dd if=/dev/urandom of=/dev/mapper/r1 bs=1M count=16 oflag=direct
# Writes to r1 500 ms late: unpaced, the 32 regions (4 copies at a time)
# take ~4 s to resync, so the rate message lands while most are still out
# of sync.
check "load dm-delay" load_ko dm-delay
check "leg r1 delays writes by 500 ms" set_table r1 "0 $L delay /dev/vdb 0 0 /dev/vdb 0 500"
M=s43_sync
T="0 $L mirror core 2 1024 sync 2 /dev/mapper/r0 0 /dev/mapper/r1 0"
check "create: $T" mkmirror $M "$T" || tap_end
check "max_recovery_rate 128 right away" dmsetup message $M 0 max_recovery_rate 128
at_end "rmdev $M"
in_sync() { sync_ratio "$1" | cut -d/ -f1; }
r1=$(in_sync $M)
sleep 6
r2=$(in_sync $M)
tap_diag "resync at 128 kB/s per leg: $r1 then, 6 s later, $r2 of 32 regions in sync"
held() { [ "$r2" -lt 32 ] && [ "$r2" -ge "$r1" ] || fail "in sync: $r1, then $r2 of 32"; }
check "the resync is held back (not done after 6 s at 128 kB/s)" held
check "sync_action says resync" sa_is $M resync - 0
check "rate lifted: max_recovery_rate 0" dmsetup message $M 0 max_recovery_rate 0
r3=$(in_sync $M)
no_restart() { [ "$r3" -ge "$r2" ] || fail "in sync went back from $r2 to $r3"; }
check "lifting the rate restarts nothing" no_restart
check "the resync completes" wait_sync $M 300
check "the legs are identical" legs_identical /dev/mapper/r0 /dev/mapper/r1 $L
check "remove the resynced mirror" rmdev $M
check "leg r1 linear again" set_table r1 "$(linear_of r1)"
for l in r2 r1 r0; do check "remove leg $l" rmdev $l; done

# ------------------------------------------------ the C dm-mirror ----
check "unload $(impl_name)" unload_rs
if check "load the C dm-mirror" load_c; then
	at_end "unload_c"
	check "C: create a mirror" mkmirror s43_c "0 $L mirror core 2 1024 nosync 2 /dev/vda 0 /dev/vdb 0"
	check "C: message check is refused (it has no check)" msg_refused s43_c check
	check "C: remove" rmdev s43_c
	check "unload the C dm-mirror" unload_c
fi
tap_end
