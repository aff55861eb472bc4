#!/bin/sh
# Read balancing (issue #14). The legs are dm devices (r0 linear over vda,
# r1 over vdb, r2 over vdc, 16 MiB each): their read counters
# (/sys/block/dm-N/stat, sectors read) show which leg served the reads,
# their queue's rotational flag can be set through sysfs, and a table
# reload turns one into "error" or "delay".
#
# A "pass" reads the whole 16 MiB mirror with O_DIRECT in 4 MiB blocks
# (each block is 8 region-sized pieces, all in flight at once) and compares
# its sha256 with the data written.
#  - 2 and 3 non-rotational legs: ours spreads a pass over every leg (each
#    leg at least 20% / 12% of the sectors); C reads all from the default leg.
#  - rotational legs: a pass (one sequential stream) is read from one leg.
#  - ours: `message read_policy default_leg` sends everything to the default
#    leg, `balance` spreads again, bad names are refused (EINVAL) and leave
#    the policy as it was; `stats` shows the policy, reads per leg and no
#    read left counted in flight.
#  - a `sync` table over legs 1 and 2 holding other data (their writes
#    delayed 100 ms by dm-delay, so the resync takes seconds): every pass
#    during the resync returns leg 0's data; afterwards the legs are
#    identical and (ours) passes are spread again.
#  - the default leg fails (reloaded as "error") while two readers loop:
#    every pass returns the data, the status shows R on it, and later
#    passes send nothing to it.
. "$(dirname "$0")/lib.sh"

L=32768 # 16 MiB: the legs, the mirrors
if [ "$DMRS_IMPL" = c ]; then OURS=; else OURS=1; fi

sysblk() { echo "/sys/block/$(dm_block "$1")"; }
rsect() { awk '{print $3}' "$(sysblk "$1")/stat"; }

# set_rot 0|1 LEG...: the legs' queues say rotational=0|1
set_rot() {
	local v=$1 l f
	shift
	for l in "$@"; do
		f=$(sysblk "$l")/queue/rotational
		echo "$v" > "$f" || fail "cannot write $v to $f" || return 1
		[ "$(cat "$f")" = "$v" ] || fail "$f reads $(cat "$f"), want $v" || return 1
	done
}
linear_of() {
	case "$1" in
	r0) echo "0 $L linear /dev/vda 0" ;;
	r1) echo "0 $L linear /dev/vdb 0" ;;
	r2) echo "0 $L linear /dev/vdc 0" ;;
	esac
}
delayed_of() { # writes 100 ms late, reads at once
	case "$1" in
	r1) echo "0 $L delay /dev/vdb 0 0 /dev/vdb 0 100" ;;
	r2) echo "0 $L delay /dev/vdc 0 0 /dev/vdc 0 100" ;;
	esac
}

# pass NAME SHA: one O_DIRECT read of the whole mirror gives SHA
pass() {
	local got
	got=$(dd if=/dev/mapper/$1 bs=4M iflag=direct 2> /dev/null | sha256sum | cut -d' ' -f1)
	[ "$got" = "$2" ] || fail "sha256 of /dev/mapper/$1: $got, want $2"
}
# passes N NAME SHA
passes() {
	local i=0
	while [ $i -lt "$1" ]; do
		pass "$2" "$3" || return 1
		i=$((i + 1))
	done
}

# measure CMD...: run CMD (with $LEGS the legs); SPLIT is then the sectors
# each leg read meanwhile, TOTAL their sum
measure() {
	local l d before=
	for l in $LEGS; do before="$before $(rsect $l)"; done
	"$@" || return 1
	SPLIT= TOTAL=0
	set -- $before
	for l in $LEGS; do
		d=$(($(rsect $l) - $1))
		shift
		SPLIT="$SPLIT $d"
		TOTAL=$((TOTAL + d))
	done
	SPLIT=${SPLIT# }
}
split_diag() { tap_diag "$1: sectors read per leg ($LEGS): $SPLIT (total $TOTAL)"; }
# spread PCT: every leg read at least PCT % of the sectors
spread() {
	local d
	[ "$TOTAL" -gt 0 ] || fail "no leg read anything ($SPLIT)" || return 1
	for d in $SPLIT; do
		[ $((d * 100)) -ge $((TOTAL * $1)) ] ||
			fail "split $SPLIT: a leg read less than $1% of $TOTAL" || return 1
	done
}
# only_leg K: leg K (0-based, in $LEGS) read everything
only_leg() {
	local d i=0
	[ "$TOTAL" -gt 0 ] || fail "no leg read anything ($SPLIT)" || return 1
	for d in $SPLIT; do
		if [ $i = "$1" ]; then
			[ "$d" = "$TOTAL" ] || fail "split $SPLIT: leg $1 read $d of $TOTAL" || return 1
		else
			[ "$d" = 0 ] || fail "split $SPLIT: leg $i read $d, want 0" || return 1
		fi
		i=$((i + 1))
	done
}
# one_leg: a single leg read everything
one_leg() {
	local d n=0
	[ "$TOTAL" -gt 0 ] || fail "no leg read anything ($SPLIT)" || return 1
	for d in $SPLIT; do [ "$d" = 0 ] || n=$((n + 1)); done
	[ $n = 1 ] || fail "split $SPLIT: $n legs read, want 1" || return 1
}
# leg_idle K: leg K read nothing
leg_idle() {
	local d i=0
	for d in $SPLIT; do
		[ $i != "$1" ] || [ "$d" = 0 ] || fail "split $SPLIT: leg $1 read $d, want 0" || return 1
		i=$((i + 1))
	done
}

# stats NAME: ours' `message stats` line; stat_field NAME FIELD: one value
policy_is() {
	local p
	p=$(stat_field "$1" read_policy)
	[ "$p" = "$2" ] || fail "read_policy=$p, want $2 ($(stats "$1"))"
}
# none_pending NAME N: stats shows no read in flight on any of N legs
none_pending() {
	local p want=0 i=1
	while [ $i -lt "$2" ]; do want="$want,0"; i=$((i + 1)); done
	p=$(stat_field "$1" leg_pending)
	[ "$p" = "$want" ] || fail "leg_pending=$p, want $want ($(stats "$1"))"
}

# reader_loop NAME SHA TAG: passes until /tmp/r42.stop exists, one line
# each in /tmp/r42.TAG: "ok|bad <health> <in_sync/regions>" as seen
# before the pass
reader_loop() {
	local r h
	while [ ! -e /tmp/r42.stop ]; do
		r=$(sync_ratio "$1")
		h=$(health "$1")
		if pass "$1" "$2" 2> /dev/null; then echo "ok $h $r"; else echo "bad $h $r"; fi
	done > /tmp/r42."$3"
}
READERS=
readers_start() { # NAME SHA TAG...
	local n=$1 s=$2 t
	shift 2
	rm -f /tmp/r42.stop
	READERS=
	for t in "$@"; do
		reader_loop "$n" "$s" "$t" &
		READERS="$READERS $!"
	done
}
readers_stop() {
	local p
	touch /tmp/r42.stop
	for p in $READERS; do wait "$p"; done
	READERS=
}
at_end "touch /tmp/r42.stop"

check "load $(impl_name)" load_rs || tap_end
check "load dm-delay" load_ko dm-delay || tap_end
for l in r0 r1 r2; do
	check "leg $l: $(linear_of $l)" mkmirror $l "$(linear_of $l)" || tap_end
done
tap_diag "queue/rotational of vda, vdb, vdc: $(cat /sys/block/vda/queue/rotational)" \
	"$(cat /sys/block/vdb/queue/rotational) $(cat /sys/block/vdc/queue/rotational);" \
	"of r0 (linear over vda): $(cat "$(sysblk r0)"/queue/rotational)"
check "legs can be made non-rotational (sysfs)" set_rot 0 r0 r1 r2 || tap_end
randfile /tmp/r42.d 16
SHA=$(sha_file /tmp/r42.d)

# ------------------------------------------------------------- 2 legs ----
M=r42_two
T="0 $L mirror core 2 1024 nosync 2 /dev/mapper/r0 0 /dev/mapper/r1 0"
check "create: $T" mkmirror $M "$T" || tap_end
at_end "rmdev $M"
check "write 16 MiB" dd if=/tmp/r42.d of=/dev/mapper/$M bs=1M oflag=direct
LEGS="r0 r1"
if [ -n "$OURS" ]; then
	check "the read policy is balance by default" policy_is $M balance
fi
check "2 non-rotational legs: 2 passes read the data" measure passes 2 $M "$SHA"
split_diag "2 legs, default policy"
if [ -n "$OURS" ]; then
	check "2 non-rotational legs: each leg read >= 20%" spread 20
	tap_diag "stats: $(stats $M)"
else
	check "2 legs: C reads everything from the default leg" only_leg 0
fi

check "legs made rotational" set_rot 1 r0 r1
check "2 rotational legs: a pass reads the data" measure pass $M "$SHA"
split_diag "2 rotational legs, one stream"
check "2 rotational legs: the stream is read from one leg" one_leg
check "2 rotational legs: again" measure pass $M "$SHA"
split_diag "2 rotational legs, one stream again"
check "2 rotational legs: again from one leg" one_leg
check "legs made non-rotational again" set_rot 0 r0 r1

if [ -n "$OURS" ]; then
	check "message read_policy default_leg" dmsetup message $M 0 read_policy default_leg
	check "... stats say default_leg" policy_is $M default_leg
	check "default_leg: 2 passes read the data" measure passes 2 $M "$SHA"
	split_diag "2 legs, default_leg"
	check "default_leg: everything from the default leg" only_leg 0
	kmsg_mark r42-bad
	for words in "read_policy fastest" "read_policy Balance" "read_policy" \
		"read_policy balance extra" "read_policy round_robin" "read_policy default-leg"; do
		check "message '$words' is refused" msg_refused $M $words
	done
	dmesg_has() { dmesg_since r42-bad | grep -q "$1" || fail "no '$1' in dmesg"; }
	check "... with a message in dmesg" dmesg_has 'unknown policy "fastest"'
	check "... and the policy is still default_leg" policy_is $M default_leg
	check "message read_policy balance" dmsetup message $M 0 read_policy balance
	check "... stats say balance" policy_is $M balance
	check "balance again: 2 passes read the data" measure passes 2 $M "$SHA"
	split_diag "2 legs, balance again"
	check "balance again: each leg read >= 20%" spread 20
	check "no read left counted in flight" none_pending $M 2
	tap_diag "stats: $(stats $M)"
fi
check "remove the 2-leg mirror" rmdev $M

# ------------------------------------------------------------- 3 legs ----
M=r42_three
T="0 $L mirror core 2 1024 nosync 3 /dev/mapper/r0 0 /dev/mapper/r1 0 /dev/mapper/r2 0"
check "create: $T" mkmirror $M "$T" || tap_end
at_end "rmdev $M"
check "write 16 MiB" dd if=/tmp/r42.d of=/dev/mapper/$M bs=1M oflag=direct
LEGS="r0 r1 r2"
check "3 non-rotational legs: 3 passes read the data" measure passes 3 $M "$SHA"
split_diag "3 legs, default policy"
if [ -n "$OURS" ]; then
	check "3 non-rotational legs: each leg read >= 12%" spread 12
	check "no read left counted in flight" none_pending $M 3
	tap_diag "stats: $(stats $M)"
else
	check "3 legs: C reads everything from the default leg" only_leg 0
fi
check "remove the 3-leg mirror" rmdev $M

# ------------------------------------------------ reads during a resync ----
# leg 0 holds the data, legs 1 and 2 other data
randfile /tmp/r42.o 16
check "leg r0 holds the data" dd if=/tmp/r42.d of=/dev/mapper/r0 bs=1M oflag=direct
check "leg r1 holds other data" dd if=/tmp/r42.o of=/dev/mapper/r1 bs=1M oflag=direct
check "leg r2 holds other data" dd if=/dev/urandom of=/dev/mapper/r2 bs=1M count=16 oflag=direct
check "legs r1, r2 delay writes by 100 ms" eval 'set_table r1 "$(delayed_of r1)" && set_table r2 "$(delayed_of r2)"'
check "legs non-rotational" set_rot 0 r0 r1 r2
M=r42_sync
T="0 $L mirror core 2 128 sync 3 /dev/mapper/r0 0 /dev/mapper/r1 0 /dev/mapper/r2 0"
check "create: $T" mkmirror $M "$T" || tap_end
at_end "rmdev $M"
readers_start $M "$SHA" s1 s2
check "resync completes" wait_sync $M 300
readers_stop
during() { # passes that began before the set was in sync
	cat /tmp/r42.s1 /tmp/r42.s2 | awk '{ split($3, r, "/"); if (r[1] != r[2]) n++ } END { print n + 0 }'
}
tap_diag "passes during the resync: $(during) of $(cat /tmp/r42.s1 /tmp/r42.s2 | wc -l)"
all_ok() { # FILE...: every pass recorded ok, and at least one
	local bad n
	n=$(cat "$@" | wc -l)
	bad=$(cat "$@" | grep -c '^bad')
	[ "$n" -gt 0 ] || fail "no pass recorded"
	[ "$bad" = 0 ] || fail "$bad of $n passes read wrong data: $(grep '^bad' "$@" | head -n 3 | tr '\n' ' ')"
}
some_during() { [ "$(during)" -gt 0 ] || fail "no pass began during the resync"; }
check "passes ran during the resync" some_during
check "every pass during and after the resync read leg 0's data" all_ok /tmp/r42.s1 /tmp/r42.s2
check "legs r0 and r1 identical" legs_identical /dev/mapper/r0 /dev/mapper/r1 $L
check "legs r0 and r2 identical" legs_identical /dev/mapper/r0 /dev/mapper/r2 $L
LEGS="r0 r1 r2"
check "in sync: 3 passes read the data" measure passes 3 $M "$SHA"
split_diag "3 legs after the resync"
if [ -n "$OURS" ]; then
	check "in sync: each leg read >= 12%" spread 12
	check "no read left counted in flight" none_pending $M 3
else
	check "in sync: C reads everything from the default leg" only_leg 0
fi
check "remove the resynced mirror" rmdev $M
check "legs r1, r2 linear again" eval 'set_table r1 "$(linear_of r1)" && set_table r2 "$(linear_of r2)"'

# --------------------------------------------- a leg failing mid-run ----
M=r42_fail
T="0 $L mirror core 2 1024 nosync 2 /dev/mapper/r0 0 /dev/mapper/r1 0"
check "legs non-rotational" set_rot 0 r0 r1
check "create: $T" mkmirror $M "$T" || tap_end
at_end "rmdev $M"
check "write 16 MiB" dd if=/tmp/r42.d of=/dev/mapper/$M bs=1M oflag=direct
readers_start $M "$SHA" f1 f2
sleep 2
check "leg r0 (the default leg) fails all I/O" set_table r0 "0 $L error"
r0_failed() {
	local i=0
	while [ $i -lt 60 ]; do
		[ "$(health $M)" = RA ] && return 0
		sleep 0.5
		i=$((i + 1))
	done
	fail "health $(health $M), want RA"
}
check "status shows RA" r0_failed
after() { cat /tmp/r42.f1 /tmp/r42.f2 2> /dev/null | grep -c '^ok RA'; }
some_after() {
	local i=0
	while [ $i -lt 120 ]; do
		[ "$(after)" -ge 2 ] && return 0
		sleep 0.5
		i=$((i + 1))
	done
	fail "fewer than 2 passes after the failure"
}
check "passes go on after the failure" some_after
readers_stop
tap_diag "passes: $(cat /tmp/r42.f1 /tmp/r42.f2 | awk '{print $1, $2}' | sort | uniq -c | tr '\n' ';')"
check "every pass before, during and after the failure read the data" all_ok /tmp/r42.f1 /tmp/r42.f2
LEGS="r0 r1"
check "after the failure: 2 passes read the data" measure passes 2 $M "$SHA"
split_diag "after leg r0 failed"
check "the failed leg serves no reads" leg_idle 0
if [ -n "$OURS" ]; then
	check "no read left counted in flight" none_pending $M 2
	tap_diag "stats: $(stats $M)"
fi
check "remove the mirror" rmdev $M
for l in r0 r1 r2; do check "remove leg $l" rmdev $l; done
rm -f /tmp/r42.*
check "unload" unload_rs
tap_end
