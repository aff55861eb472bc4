#!/bin/sh
# Teardown (issue #11): mirrors created, inspected and removed in quick
# succession, every kind of table (core and disk logs; default, sync and
# nosync; 2 and 3 legs; no features, handle_errors, handle_errors
# keep_log: 36 kinds), in six phases:
#   kinds    create, table, status, `message stats`, remove, one at a time
#   batch    16 mirrors made by one `dmsetup create --concise` and
#            removed by one `dmsetup remove` (most of them mid-resync):
#            at once, after all tables and statuses were read and checked,
#            with a `dmsetup suspend` of all of them, or a `dmsetup
#            status`, racing the removes
#   resync   sync tables with 4..32 KiB regions removed mid-resync: at
#            once, after a while, suspended first, or replaced by a reload
#            (the old table's destructor runs mid-resync); every 12th one
#            resyncs to the end and the legs are compared
#   io       256 KiB written with O_DIRECT while the table is swapped by a
#            reload, the device suspended and resumed, or removed with
#            --deferred; or removed right after the writes completed;
#            the data must read back and be on the default leg
#   suspend  a `dmsetup suspend` (flushing or --noflush), or a `message`,
#            racing the remove
#   reject   multi-target tables that device-mapper rejects after the
#            mirror's constructor succeeded (a bad second mirror, a gap,
#            an unknown target type, a missing device, a third target
#            with bad arguments after two mirrors), and inactive tables
#            that are never resumed (load, load again, clear, remove)
# Each cycle checks that create/remove did what they should (tables,
# statuses, data); each phase ends with: no test device left, no
# kmirrord/kcopyd workqueue left, the module unreferenced, and no
# device-mapper complaint that a destructor returned with its legs still
# held ("dm_put_device call missing"), which is what a mirror freed after
# its destructor shows. Kernel splats (lockdep, KASAN, kmemleak, hung
# tasks) fail the run in run-guest.sh.
#
# make check runs this test in its own boot with vCPU 1 stopped from the
# host ~30 ms of every ~50 ms (run-guest.sh --stall-vcpu 30:20): the races
# of issue #11 sit in a few instructions of an I/O completion (between
# waking a waiter and dropping a reference), which a guest on an idle host
# almost never leaves half done. The code before the fix passed 300
# unstalled cycles twice; stalled, it hit a use after free in the resync
# phase (kmirrord dropping the last reference after the destructor had
# returned: "dm_put_device call missing", then KASAN in dm_put_device).
#
# Kernel cmdline: dmrs.teardown_cycles=N (default 300, fewer on a slow
# guest, see TD_REF_MS; in rounds of at most 300, each round running every
# phase, the module reloaded between rounds), dmrs.teardown_seed=S (the
# workload's random seed; printed).
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/lib-teardown.sh"

CYCLES=
SEED=
for w in $(cat /proc/cmdline); do
	case "$w" in
	dmrs.teardown_cycles=*) CYCLES=${w#dmrs.teardown_cycles=} ;;
	dmrs.teardown_seed=*) SEED=${w#dmrs.teardown_seed=} ;;
	esac
done
[ -n "$SEED" ] || SEED=$(($(date +%s) % 100000))
TD_RNG=$SEED

check "load $(impl_name)" load_rs || tap_end
# What a dmsetup call costs here: the cycles are made of them. Without
# dmrs.teardown_cycles, 300 cycles when a call takes up to TD_REF_MS (the
# guest on an idle host), proportionally fewer (at least 72) on a slower
# guest, so that make check's share stays within a few minutes.
TD_REF_MS=250
uptime_cs() { read -r _u _ < /proc/uptime; _u=${_u%.*}${_u#*.}; echo "${_u#0}"; }
t0=$(uptime_cs)
for _i in 1 2 3 4 5; do dmsetup version > /dev/null; done
CALL_MS=$((($(uptime_cs) - t0) * 2))
tap_diag "a dmsetup call takes $CALL_MS ms here"
if [ -z "$CYCLES" ]; then
	CYCLES=300
	if [ $CALL_MS -gt $TD_REF_MS ]; then
		CYCLES=$((300 * TD_REF_MS / CALL_MS))
		[ $CYCLES -ge 72 ] || CYCLES=72
		tap_diag "a slow guest: $CYCLES cycles instead of 300 (dmrs.teardown_cycles=N sets them)"
	fi
fi
ROUNDS=$(((CYCLES + 299) / 300))
PER=$((CYCLES / ROUNDS))
tap_diag "$CYCLES cycles in $ROUNDS rounds of $PER, seed $SEED (dmrs.teardown_seed=$SEED replays the workload)"
VDA_SZ=$(dev_sectors /dev/vda)
rm -f /tmp/td-failures

# ------------------------------------------------------------ set-up ----
mklogs() {
	local s=0 spec=
	while [ $s -lt $TD_SLOTS ]; do
		spec="$spec;td_log$s,,,rw,0 $TD_LOGSL linear /dev/vdc $((s * TD_LOGSL))"
		at_end "rmdev td_log$s"
		s=$((s + 1))
	done
	dmsetup create --concise "${spec#;}"
}
check "16 log devices: 1 MiB linear slices of vdc" mklogs || tap_end
check "device numbers" td_setup_ids || tap_end
check "leg 0 of the slots: 32 MiB random on vda" \
	dd if=/dev/urandom of=/dev/vda bs=1M count=$((TD_SLOTS * TD_SL / 2048)) oflag=direct
check "a 1 MiB random pattern for the writes" randfile /tmp/td-pat 1
at_end "rm -f /tmp/td-pat /tmp/td-want /tmp/td-tab /tmp/td-failures"

# A counter per phase, across rounds, picks the kind and the variant:
# every phase walks through all 36 kinds in turn, each kind meeting every
# variant (td_var); the counters start at a random point.
rnd 1000; KI=$R
rnd 1000; KB=$R
rnd 1000; KR=$R
rnd 1000; KO=$R
rnd 1000; KS=$R
rnd 1000; KJ=$R
# td_var C N: V = the variant (0..N-1) of cycle counter C: it moves on by
# one for each cycle and by one more for each lap of the 36 kinds
td_var() { V=$((($1 / TD_NKINDS + $1) % $2)); }

# one_create NAME: dmsetup create NAME --table "$TD_T"; a failure is bad
one_create() {
	if dmsetup create "$1" --table "$TD_T" > "$DMRS_LOG" 2>&1; then
		return 0
	fi
	bad "create $1 ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
	rmdev "$1" > /dev/null 2>&1
	return 1
}
# stats_ok NAME: `message stats` answers with the region count (ours only)
stats_ok() {
	[ "$DMRS_IMPL" = c ] && return 0
	TD_OUT=$(dmsetup message "$1" 0 stats 2>&1)
	case "$TD_OUT" in
	*" in_sync="*"/$TD_N" | *" in_sync="*"/$TD_N "*) return 0 ;;
	esac
	TD_WHY="message $1 0 stats: '$TD_OUT', want '... in_sync=<n>/$TD_N ...'"
	return 1
}

# ---------------------------------------------------------- phases ----
phase_kinds() { # CYCLES
	local i=0 k rs len s M=td_k
	ph_begin kinds
	while [ $i -lt "$1" ]; do
		PH_N=$((PH_N + 1))
		k=$((KI % TD_NKINDS))
		td_var $KI 4
		KI=$((KI + 1))
		pick 8 16 32 64 128 1024
		rs=$R
		rnd 3
		len=$((TD_SL - R * 5))
		rnd $TD_SLOTS
		s=$R
		td_kind $k $s $len $rs
		i=$((i + 1))
		one_create $M || continue
		case $V in
		0) td_check_dev $M $len || bad "$TD_WHY ($TD_KD)" ;;
		1) ;; # removed at once
		2) { td_check_dev $M $len && stats_ok $M; } || bad "$TD_WHY ($TD_KD)" ;;
		3) td_status_ok "$(dmsetup status $M 2>&1)" $len || bad "$TD_WHY ($TD_KD)" ;;
		esac
		td_remove $M || bad "$TD_WHY ($TD_KD)"
	done
	ph_end
}

# td_read_all N: `dmsetup table` and `dmsetup status` of every device at
# once list the N batch devices (td_b<j>), each with its table and a sane
# status
td_read_all() {
	local what seen name rest j
	for what in table status; do
		dmsetup $what > /tmp/td-tab 2>&1
		seen=0
		while read -r name rest; do
			case "$name" in td_b[0-9]:|td_b[0-9][0-9]:) ;; *) continue ;; esac
			j=${name#td_b}
			td_load ${j%:}
			seen=$((seen + 1))
			if [ $what = table ]; then
				[ "$rest" = "$TD_W" ] || bad "table of ${name%:}: '$rest', want '$TD_W'"
			else
				td_status_ok "$rest" $TD_LEN || bad "${name%:}: $TD_WHY ($TD_KD)"
			fi
		done < /tmp/td-tab
		[ $seen = "$1" ] || bad "dmsetup $what listed $seen of the $1 mirrors"
	done
}

phase_batch() { # DEVICES (made TD_SLOTS at a time)
	local b=0 j k rs len spec names name bp rc op nb=$((($1 + TD_SLOTS - 1) / TD_SLOTS))
	ph_begin batch
	while [ $b -lt $nb ]; do
		spec= names=
		j=0
		while [ $j -lt $TD_SLOTS ]; do
			k=$((KB % TD_NKINDS))
			KB=$((KB + 1))
			pick 8 16 64 256 1024
			rs=$R
			rnd 3
			len=$((TD_SL - R * 3))
			td_kind $k $j $len $rs
			td_save $j $len
			spec="$spec;td_b$j,,,rw,$TD_T"
			names="$names td_b$j"
			j=$((j + 1))
		done
		PH_N=$((PH_N + TD_SLOTS))
		td_var $((KB / TD_SLOTS)) 4
		op=$V
		b=$((b + 1))
		if ! dmsetup create --concise "${spec#;}" > "$DMRS_LOG" 2>&1; then
			bad "create --concise of $TD_SLOTS: $(tail -n 1 "$DMRS_LOG")"
			for name in $names; do rmdev $name > /dev/null 2>&1; done
			continue
		fi
		bp=
		case $op in
		0) ;; # removed at once
		1) td_read_all $TD_SLOTS ;;
		# shellcheck disable=SC2086
		2) dmsetup suspend $names > /dev/null 2>&1 & bp=$! ;;
		3) dmsetup status > /dev/null 2>&1 & bp=$! ;;
		esac
		# shellcheck disable=SC2086
		td_remove $names
		rc=$?
		[ -n "$bp" ] && wait $bp
		[ $rc = 0 ] || bad "$TD_WHY (op $op)"
	done
	ph_end
}

phase_resync() { # CYCLES
	local i=0 k k2 rs len s nl word M=td_r o
	ph_begin resync
	while [ $i -lt "$1" ]; do
		PH_N=$((PH_N + 1))
		k=$((KR % TD_NKINDS))
		td_var $KR 12
		KR=$((KR + 1))
		# a resync must run: explicit sync, except a core log's default
		word=sync
		[ $((k % 6)) = 0 ] && word=-
		rnd $TD_SLOTS
		s=$R
		i=$((i + 1))
		if [ $V = 11 ]; then
			# resync to the end over zeroed legs 1 (and 2)
			pick 32 64
			rs=$R
			len=$TD_SL
			td_kind $k $s $len $rs $word
			nl=${TD_SP%% *}
			o=$((s * TD_SL))
			dd if=/dev/zero of=/dev/vdb bs=64k seek=$((o * 512)) count=$((len * 512)) \
				iflag=count_bytes oflag=direct,seek_bytes 2> "$DMRS_LOG" ||
				bad "zero leg 1 of slot $s: $(tail -n 1 "$DMRS_LOG")"
			if [ "$nl" = 3 ]; then
				dd if=/dev/zero of=/dev/vda bs=64k seek=$(((TD_L2 + o) * 512)) count=$((len * 512)) \
					iflag=count_bytes oflag=direct,seek_bytes 2> "$DMRS_LOG" ||
					bad "zero leg 2 of slot $s: $(tail -n 1 "$DMRS_LOG")"
			fi
			one_create $M || continue
			wait_sync $M 600 > "$DMRS_LOG" 2>&1 || bad "$(tail -n 1 "$DMRS_LOG") ($TD_KD)"
			td_check_dev $M $len || bad "$TD_WHY ($TD_KD)"
			td_remove $M || bad "$TD_WHY ($TD_KD)"
			td_legs_equal $s $len $nl || bad "$TD_WHY ($TD_KD)"
			continue
		fi
		pick 8 16 32 64
		rs=$R
		rnd 4
		len=$((TD_SL - R * 7))
		td_kind $k $s $len $rs $word
		one_create $M || continue
		case $((V % 8)) in
		0 | 1 | 5) ;; # removed at once
		2)
			rnd 5
			sleep 0.$R
			td_status_ok "$(dmsetup status $M 2>&1)" $len || bad "$TD_WHY ($TD_KD)"
			;;
		3) dmsetup suspend $M || bad "suspend mid-resync ($TD_KD)" ;;
		4 | 6)
			# the old table is destroyed mid-resync
			k2=$(((k + 7) % TD_NKINDS))
			td_kind $k2 $s $len $rs sync
			if dmsetup load $M --table "$TD_T" > "$DMRS_LOG" 2>&1 &&
				dmsetup resume $M >> "$DMRS_LOG" 2>&1; then
				td_check_dev $M $len || bad "after the reload: $TD_WHY ($TD_KD)"
			else
				bad "reload mid-resync ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
			fi
			;;
		7) stats_ok $M || bad "$TD_WHY ($TD_KD)" ;;
		esac
		td_remove $M || bad "$TD_WHY ($TD_KD)"
	done
	ph_end
}

phase_io() { # CYCLES
	local i=0 k k2 rs len s M=td_o o so wp rc n op
	ph_begin io
	while [ $i -lt "$1" ]; do
		PH_N=$((PH_N + 1))
		k=$((KO % TD_NKINDS))
		td_var $KO 4
		op=$V
		KO=$((KO + 1))
		pick 8 16 64 1024
		rs=$R
		len=$TD_SL
		rnd $TD_SLOTS
		s=$R
		so=$((s * TD_SL))
		td_kind $k $s $len $rs
		i=$((i + 1))
		one_create $M || continue
		rnd 13
		dd if=/tmp/td-pat of=/tmp/td-want bs=64k skip=$R count=4 2> /dev/null
		rnd $(((len - 512) / 8))
		o=$((R * 8))
		dd if=/tmp/td-want of=/dev/mapper/$M bs=16k seek=$((o * 512)) oflag=direct,seek_bytes \
			conv=notrunc 2> /dev/null &
		wp=$!
		case $op in
		0) ;; # removed right after the writes complete
		1)
			# reload while the writes run: the old table goes mid-write
			k2=$(((k + 5) % TD_NKINDS))
			td_kind $k2 $s $len $rs
			{ dmsetup load $M --table "$TD_T" > "$DMRS_LOG" 2>&1 &&
				dmsetup resume $M >> "$DMRS_LOG" 2>&1; } ||
				bad "reload during writes ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
			;;
		2)
			{ dmsetup suspend $M > "$DMRS_LOG" 2>&1 && dmsetup resume $M >> "$DMRS_LOG" 2>&1; } ||
				bad "suspend/resume during writes ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
			;;
		3)
			# deferred remove once the writer has the device open (if
			# it is still running)
			n=0
			while kill -0 $wp 2> /dev/null && [ $n -lt 50 ]; do
				[ "$(dmsetup info -c --noheadings -o open $M 2> /dev/null | tr -d ' ')" = 0 ] || break
				sleep 0.1
				n=$((n + 1))
			done
			dmsetup remove --deferred $M > "$DMRS_LOG" 2>&1 ||
				bad "remove --deferred during writes ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
			;;
		esac
		wait $wp
		rc=$?
		[ $rc = 0 ] || bad "O_DIRECT writer exited with $rc ($TD_KD, op $op)"
		if [ $op = 3 ]; then
			td_wait_gone $M 30 || bad "$TD_WHY ($TD_KD)"
		else
			if [ $op != 0 ]; then
				td_data_at /tmp/td-want /dev/mapper/$M $o ||
					bad "read back through the mirror: $TD_WHY ($TD_KD, op $op)"
			fi
			td_remove $M || bad "$TD_WHY ($TD_KD)"
		fi
		td_data_at /tmp/td-want /dev/vda $((so + o)) || bad "default leg: $TD_WHY ($TD_KD, op $op)"
		if [ $op = 0 ] && [ "$TD_NOSYNC" = 1 ]; then
			# nosync: in sync, so written to every leg
			td_data_at /tmp/td-want /dev/vdb $((so + o)) || bad "leg 1: $TD_WHY ($TD_KD)"
			case "$TD_SP" in
			3\ *) td_data_at /tmp/td-want /dev/vda $((TD_L2 + so + o)) || bad "leg 2: $TD_WHY ($TD_KD)" ;;
			esac
		fi
	done
	ph_end
}

phase_suspend() { # CYCLES
	local i=0 k rs len s M=td_s bp rp rc word op
	ph_begin suspend
	while [ $i -lt "$1" ]; do
		PH_N=$((PH_N + 1))
		k=$((KS % TD_NKINDS))
		td_var $KS 24
		KS=$((KS + 1))
		pick 8 16 32 64
		rs=$R
		len=$TD_SL
		rnd $TD_SLOTS
		s=$R
		# half of them mid-resync
		word=
		[ $((V % 2)) = 0 ] && word=sync
		td_kind $k $s $len $rs $word
		i=$((i + 1))
		one_create $M || continue
		op=$(((V / 2) % 4))
		bp=
		case $op in
		0) dmsetup suspend $M > /dev/null 2>&1 & bp=$! ;;
		1) dmsetup suspend --noflush $M > /dev/null 2>&1 & bp=$! ;;
		2) dmsetup message $M 0 stats > /dev/null 2>&1 & bp=$! ;;
		3) dmsetup status $M > /dev/null 2>&1 & bp=$! ;;
		esac
		if [ $((V / 8)) = 0 ]; then
			# the remove in the background, the other one here
			dmsetup remove $M > "$DMRS_LOG" 2>&1 &
			rp=$!
			wait $bp
			dmsetup suspend $M > /dev/null 2>&1
			wait $rp
			rc=$?
		else
			dmsetup remove $M > "$DMRS_LOG" 2>&1
			rc=$?
			wait $bp
		fi
		if [ $rc != 0 ]; then
			bad "remove racing op $op ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
			rmdev $M > /dev/null 2>&1
		fi
		td_gone $M || bad "$TD_WHY ($TD_KD)"
	done
	ph_end
}

# reject_one WANT_ERE TABLE MAXREFUSED: dmsetup create with TABLE fails,
# no device is left, the kernel log names the failure WANT_ERE, and at most
# MAXREFUSED mirror lines were refused (the failing line itself, if it is
# a mirror): the ones before it were constructed, then destroyed)
reject_one() {
	local log nm
	if dmsetup create td_j --table "$2" > "$DMRS_LOG" 2>&1; then
		bad "create succeeded with a bad table ($TD_KD): $2"
		rmdev td_j > /dev/null 2>&1
		return
	fi
	[ ! -e /dev/mapper/td_j ] || { bad "td_j exists after its create failed"; rmdev td_j > /dev/null 2>&1; }
	log=$(td_dmesg_since "td-$TD_MARK")
	echo "$log" | grep -Eq "$1" || bad "the kernel log does not say '$1' ($TD_KD): $(echo "$log" | tail -n 3 | tr '\n' ' ')"
	nm=$(echo "$log" | grep -Ec ': mirror: ')
	[ "$nm" -le "$3" ] || bad "a mirror line was refused ($TD_KD): $(echo "$log" | grep ': mirror: ' | head -n 2 | tr '\n' ' ')"
}

phase_reject() { # CYCLES
	local i=0 k rs len s M=td_j t1 w1 p2 w3 op got
	ph_begin reject
	while [ $i -lt "$1" ]; do
		PH_N=$((PH_N + 1))
		k=$((KJ % TD_NKINDS))
		td_var $KJ 6
		op=$V
		KJ=$((KJ + 1))
		pick 8 32 64 1024
		rs=$R
		len=$((TD_SL / 2))
		rnd $((TD_SLOTS - 1))
		s=$R
		td_kind $((k + 1)) $((s + 1)) $len $rs
		p2=$TD_P
		td_kind $k $s $len $rs
		t1=$TD_T w1=$TD_W
		i=$((i + 1))
		td_mark
		case $op in
		0) reject_one "Mirror leg lies beyond the end of its device|too small for target" \
			"$t1
$len $len mirror core 1 $rs 2 /dev/vda $((VDA_SZ - 8)) /dev/vdb 0" 1 ;;
		1) reject_one "zero: Gap in table" "$t1
$((len + 8)) 8 zero" 0 ;;
		2) reject_one "td_nosuch: unknown target type" "$t1
$len 8 td_nosuch" 0 ;;
		3) reject_one "linear: Device lookup failed" "$t1
$len 8 linear /dev/td_missing 0" 0 ;;
		4) reject_one "zero: No arguments required" "$t1
$len $len mirror $p2
$((2 * len)) 8 zero 1" 0 ;;
		5)
			# inactive tables that are never resumed
			one_create $M || continue
			td_kind $((k + 2)) $s $len $rs
			dmsetup load $M --table "$TD_T" > "$DMRS_LOG" 2>&1 || bad "load 1 ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
			td_kind $((k + 3)) $s $len $rs
			w3=$TD_W
			dmsetup load $M --table "$TD_T" > "$DMRS_LOG" 2>&1 || bad "load 2 ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
			got=$(dmsetup table --inactive $M 2>&1)
			[ "$got" = "$w3" ] || bad "inactive table '$got', want '$w3'"
			got=$(dmsetup table $M 2>&1)
			[ "$got" = "$w1" ] || bad "live table '$got', want '$w1'"
			dmsetup clear $M > "$DMRS_LOG" 2>&1 || bad "clear: $(tail -n 1 "$DMRS_LOG")"
			got=$(dmsetup table --inactive $M 2>&1)
			[ -z "$got" ] || bad "inactive table after clear: '$got'"
			td_kind $((k + 4)) $s $len $rs
			dmsetup load $M --table "$TD_T" > "$DMRS_LOG" 2>&1 || bad "load 3 ($TD_KD): $(tail -n 1 "$DMRS_LOG")"
			td_remove $M || bad "remove with an inactive table: $TD_WHY"
			;;
		esac
	done
	ph_end
}

# ------------------------------------------------------------ rounds ----
reload_mod() { unload_rs && load_rs; }
round=1
TD_SECS=
while [ $round -le $ROUNDS ]; do
	[ $ROUNDS = 1 ] || tap_diag "round $round of $ROUNDS"
	# 300 cycles: 36 + 192 + 24 + 24 + 12 + 12
	phase_kinds $((PER * 12 / 100))
	phase_batch $((PER * 64 / 100))
	phase_resync $((PER * 8 / 100))
	phase_io $((PER * 8 / 100))
	phase_suspend $((PER * 4 / 100))
	phase_reject $((PER * 4 / 100))
	tap_diag "round $round:$TD_SECS"
	TD_SECS=
	if [ $round -lt $ROUNDS ]; then
		check "round $round: the module unloads and loads again" reload_mod
	fi
	round=$((round + 1))
done

check "no test devices left" [ -z "$(td_dm_left)" ]
rmlogs() {
	local s=0 names=
	while [ $s -lt $TD_SLOTS ]; do
		names="$names td_log$s"
		s=$((s + 1))
	done
	# shellcheck disable=SC2086
	dmsetup remove $names
}
check "remove the log devices" rmlogs
check "no dm devices left" no_devices
check "no kmirrord or kcopyd workqueue left" td_no_queues
check "unload" unload_rs
tap_end
