#!/usr/bin/env bash
# Runs every test of dm-mirror-rs, from a fresh Debian 12 machine if need be:
# installs what is missing, builds (or reuses) the test kernel, builds the
# module with clippy, runs the host unit tests and the guest tests under QEMU:
# the guest suite in one lane, and beside it, in a second lane, the table
# fuzz, the teardown cycles under vCPU stalls, the seed's reproducer, the
# crash cycles, the dmraid reproducer, a short stress run, dmeventd's repair
# of an LVM mirror and the DKMS test (see below).
#
#   scripts/check.sh [run-guest.sh options, e.g. --tests 03]
#                    (with options: only the guest suite, no lane 2)
#
# Kernels (issue #13): KERNEL=6.12 (the default, what CI runs) or 7.3 picks
# the kernel of the full run (make check KERNEL=7.3). With 6.12 the other
# supported kernel, 7.3, gets a short run in lane 2: its toolchain and debug
# kernel (cached), the module built against it with clippy, and a guest with
# load/unload, table round trips against 7.3's C target, bad tables, resync,
# the disk log (tests 01 04 05 06 30) and the seed's reproducer.
# DMRS_OTHER_KERNEL=none leaves that out.
#
# Prints KTAP from the guest (docs/testing.md) and ends with "check: N
# passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cd "$top"
# Each step says how long it took (step_end), and the summary lists them:
# CI has 90 minutes for all of it, and these lines show where they go.
times=
cur=
cur_t0=
step_end() {
	[ -n "$cur" ] || return 0
	times+=$(printf '  %5ss  %s' $((SECONDS - cur_t0)) "$cur")$'\n'
	cur=
}
step() { step_end; cur=$*; cur_t0=$SECONDS; printf '\n=== %s\n' "$*"; }
passed=0
failed=0
# Each step's output is also kept in build/check-logs/<step>.log; what made
# a step fail is repeated at the very end, so the last lines of a CI log
# say which test failed and why.
logdir=$top/build/check-logs
rm -rf "$logdir"
mkdir -p "$logdir"
why=
logged() { # LOG CMD...: run CMD, its output also going to $logdir/LOG.log
	local log=$logdir/$1.log
	shift
	"$@" 2>&1 | tee "$log"
	return "${PIPESTATUS[0]}"
}
result() { # name status [log]
	if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "check: ok - $1"
	else
		failed=$((failed + 1)); echo "check: FAILED - $1"
		why+="check: FAILED - $1"$'\n'
		# failed KTAP points at any level (a test's own points are
		# indented), run-guest.sh's FAIL lines, build errors (not the
		# "error:0" of a KTAP "# Totals:" line)
		[ -n "${3:-}" ] && why+=$(grep -aE '^ *not ok|: FAIL|FAILED|error(\[|:)|panicked' \
			"$logdir/$3.log" | grep -v '# Totals:' | awk '!seen[$0]++' | head -n 15 | sed 's/^/  /')$'\n'
	fi
}
summary() {
	step_end
	echo
	printf 'check: time per step (%ss in all)\n%s' "$SECONDS" "$times"
	[ -n "$why" ] && printf '%s' "$why"
	echo "check: $passed passed, $failed failed"
}

step "host packages, rust-src, bindgen"
"$here/setup-host.sh" || { echo "check: setup failed"; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"

kver=${KERNEL:-6.12}
case "$kver" in
6.12) other=${DMRS_OTHER_KERNEL:-7.3} ;;
7.3) other=none ;;
*) echo "check: KERNEL=$kver: supported are 6.12 and 7.3"; exit 1 ;;
esac
[ "$other" = 7.3 ] || [ "$other" = none ] || { echo "check: DMRS_OTHER_KERNEL=$other: 7.3 or none"; exit 1; }

step "test kernel $kver (cached after the first build)"
kdir=$("$here/build-kernel.sh" debug "$kver") || { echo "check: kernel build failed"; exit 1; }

step "host unit tests (cargo test)"
logged cargo-test bash -c 'cd host && cargo test'
result "host cargo test" $? cargo-test

step "nvidia-meta.py self-test (NVIDIA RAID metadata writer for the dmraid tests)"
python3 "$here/nvidia-meta.py" --self-test
result "nvidia-meta.py self-test" $?

step "rustfmt"
rustfmt --check --edition 2021 --config-path "$kdir/.rustfmt.toml" dm_mirror_rs.rs
result "rustfmt" $?

step "module build with clippy (make CLIPPY=1, warnings fail)"
make -s clean KERNEL="$kver" KDIR="$kdir" >/dev/null 2>&1
out=$(make KERNEL="$kver" KDIR="$kdir" CLIPPY=1 2>&1)
rc=$?
echo "$out" | grep -v '^make\[' | tail -40
if [ $rc = 0 ] && ! echo "$out" | grep -q 'warning:\|error:' && [ -f dm_mirror_rs.ko ]; then
	result "module build, clippy clean" 0
else
	result "module build, clippy clean" 1
	summary
	exit 1
fi

# The other kernel: its toolchain and kernel (cached after the first build),
# then the module built against it with clippy in a copy of the sources
# (build/module-<version>/), so the two builds' objects never mix.
okdir=
if [ "$other" != none ] && [ $# = 0 ]; then
	step "Linux $other: toolchain and debug kernel (cached after the first build)"
	okdir=$("$here/build-kernel.sh" debug "$other")
	rc=$?
	[ $rc = 0 ] || okdir=
	result "Linux $other debug kernel" $rc
fi
if [ -n "$okdir" ]; then
	step "module build against $other with clippy (warnings fail)"
	oko=$(KERNEL=$other CLIPPY=1 logged module-$other "$here/build-module-copy.sh" "$okdir" \
		"$top/build/module-$other" "$logdir/module-$other.make.log")
	rc=$?
	grep -q 'warning:\|error:' "$logdir/module-$other.make.log" && rc=1
	[ $rc = 0 ] && [ -f "$oko" ] || okdir=
	result "module build against $other, clippy clean" "$rc" module-$other
fi

# The guests run in two lanes at the same time: a TCG guest keeps about one
# host core busy (measured: ~0.75 of a core on average), and the machine
# has two. Lane 1 is the guest suite, shown as it runs; lane 2 boots the
# long single-purpose guests one after the other (the table fuzz, the
# teardown cycles with vCPU 1 stalled from the host, the seed's reproducer,
# the crash cycles, the dmraid reproducer, 1 minute of stress, dmeventd's
# repair; before them the short run on the second kernel), shown when it
# is done. Run one
# after the other, the two took longer than CI's 90 minutes.
lane2_results=$logdir/lane2.results
lane2_step() { # LOG NAME TITLE CMD...: one step of lane 2
	local log=$1 name=$2 t0=$SECONDS rc
	printf '\n=== %s\n' "$3"
	shift 3
	"$@" > "$logdir/$log.log" 2>&1
	rc=$?
	cat "$logdir/$log.log"
	printf '%s\t%s\t%s\t%s\n' "$rc" "$((SECONDS - t0))" "$log" "$name" >> "$lane2_results"
}
lane2() {
	if [ -n "$okdir" ]; then
		# what issue #13 asks of the second kernel, no more: CI's 90
		# minutes hold the full suite on 6.12 and this (measured on the
		# 2-core host, 7.3 guest beside the 6.12 suite: 01 41 s, 04 363 s,
		# 05 210 s, 06 282 s, 30 304 s; 02 165 s and 31 ~300 s more are
		# in make check KERNEL=7.3)
		lane2_step guest-$other "Linux $other: short suite" \
			"Linux $other: load/unload, table round trips and bad tables against its C target, resync, the disk log (tests 01 04 05 06 30)" \
			"$here/run-guest.sh" --kernel "$okdir" --module "$oko" \
			--tests 01-module,04-table,05-badtables,06-resync,30-disklog \
			--test-timeout 1200 --timeout 2400
		# 256 MiB: a round fills the 225 MiB filesystem, and only the
		# rounds after the first run under failslab (128 would stop after
		# the first; measured on 7.3: 2 rounds, 1147 s of guest time)
		lane2_step seed-$other "Linux $other: seed reproducer (192 MiB guest)" \
			"Linux $other: the seed's reproducer, ext4 fill in a 192 MiB guest under failslab (256 MiB: one round without, one with faults)" \
			"$here/run-guest.sh" --kernel "$okdir" --module "$oko" --mem 192M \
			--tests seed --append dmrs.seed_mib=256 --test-timeout 1500 --timeout 1800
	fi
	# dkms.conf as a user runs it (host side, private DKMS trees; against
	# the 6.12 tree only)
	[ "$kver" != 6.12 ] || lane2_step dkms "DKMS add, build, install, remove" \
		"DKMS: dkms add/build/install/remove of dkms.conf against the 6.12 debug tree (scripts/dkms-test.sh)" \
		"$here/dkms-test.sh"
	# 100 tables (make fuzz COUNT=N for more): the room the short run on
	# the second kernel needed came from here
	lane2_step tablefuzz "table fuzz (C and ours, 100 tables)" \
		"the differential table fuzz: 100 tables of seed 11, C then ours in one boot (tests/40-tablefuzz.sh)" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" \
		--tests 40-tablefuzz --fuzz-seed 11 --fuzz-count 100 --test-timeout 1800 --timeout 2100
	# The teardown races of issue #11 open in a window of a few instructions
	# of an I/O completion; a host that stops a vCPU there for milliseconds
	# opens it (scripts/vcpu-stall.py). Without the stalls the old code
	# passed 300 cycles twice; with them it failed in the resync phase, 2
	# runs of 2. 200 cycles: 130 took 896 s here with the host at load 8.
	lane2_step teardown "teardown cycles, vCPU 1 stalled" \
		"create/inspect/remove cycles of every kind of table (tests/41-teardown.sh), vCPU 1 stopped ~30 ms of every ~50 ms" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" \
		--tests 41-teardown --stall-vcpu 30:20 --append dmrs.teardown_cycles=200 \
		--test-timeout 2400 --timeout 2700
	lane2_step seed "seed reproducer (192 MiB guest)" "the seed's reproducer: ext4 fill in a 192 MiB guest under failslab (512 MiB written)" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --mem 192M \
		--tests seed --test-timeout 1200 --timeout 1500
	# 3 kills, the fewest for which crash-cycle.sh demands that one left
	# dirty regions (make crash runs 20)
	lane2_step crash "crash cycles (disk log)" "disk-log crash consistency: 3 boots killed with SIGKILL mid-write, then a verifying boot" \
		"$here/crash-cycle.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --cycles 3
	lane2_step dmraid-seed "dmraid reproducer (192 MiB guest)" "the seed's reproducer on a dmraid NVIDIA RAID1 set: ext4 fill in a 192 MiB guest (1 GiB written)" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --mem 192M \
		--sata-size 640M --tests dmraid-seed --test-timeout 1800 --timeout 2100
	# a short stress run (make stress MINUTES=N for a long one): 1 minute
	# of fio, the rest is the boot, the set-up and the final resync
	lane2_step stress "stress, 1 minute (fio)" "stress: fio with verification, suspend/resume, reloads and log switches under failslab, 1 minute (tests/stress.sh)" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --fio \
		--tests stress --append dmrs.stress_minutes=1 --test-timeout 960 --timeout 1440
	# LVM's automatic repair (tests/22-dmeventd.sh): a guest of its own in
	# this lane, which has the room (lane 1 is the longer one)
	lane2_step dmeventd "dmeventd repairs an LVM mirror (ours, then C)" \
		"dmeventd's lvconvert --repair of an LVM mirror whose leg dies under writes, policies allocate and remove, ours then C (tests/22-dmeventd.sh)" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" \
		--tests 22-dmeventd --test-timeout 1500 --timeout 1800
}
lane2_pid=
suite=()
if [ $# = 0 ]; then
	# lane 1: every numbered test but the table fuzz, the teardown cycles
	# and the dmeventd test, which lane 2 runs
	suite=(--tests "$(cd "$top/tests" && ls [0-9]*.sh | sed 's/\.sh$//' | grep -Ev '^(4[01]|22)-' | paste -sd, -)")
	: > "$lane2_results"
	lane2 > "$logdir/lane2.log" 2>&1 &
	lane2_pid=$!
	echo "check: lane 2 (${okdir:+Linux $other short suite and seed reproducer, }DKMS, table fuzz, stalled teardown cycles, seed reproducer, crash cycles, dmraid reproducer, stress, dmeventd) runs beside the guest suite;"
	echo "check: its output follows the suite's (live in $logdir/lane2.log)"
fi

step "guest tests under QEMU/TCG (debug kernel: KASAN, lockdep, kmemleak)"
# Measured: CI ran the suite (the same tests) and lane 2 in 4009 s in all
# (stop 19); on this stop's 2-core host, beside lane 2, tests 01-14 alone
# took ~4400 s of guest time (the suite would take ~95 min there). The limit leaves room for a slower machine, and a hang still ends
# the run (the steps before the lanes take ~4 min) inside CI's 90 minutes.
# DMRS_SUITE_TIMEOUT=SECS overrides the whole suite's limit.
logged guest "$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" \
	--timeout "${DMRS_SUITE_TIMEOUT:-4900}" --test-timeout 1800 "${suite[@]}" "$@"
result "guest tests" $? guest

if [ -n "$lane2_pid" ]; then
	step "lane 2: waiting for it, then its output"
	wait "$lane2_pid"
	cat "$logdir/lane2.log"
	step_end
	while IFS=$'\t' read -r rc secs log name; do
		times+=$(printf '  %5ss  %s (lane 2)' "$secs" "$name")$'\n'
		result "$name" "$rc" "$log"
	done < "$lane2_results"
	lane2_steps=7
	[ "$kver" != 6.12 ] || lane2_steps=$((lane2_steps + 1))
	[ -z "$okdir" ] || lane2_steps=$((lane2_steps + 2))
	[ "$(wc -l < "$lane2_results")" = "$lane2_steps" ] || result "lane 2 ran all its steps" 1
fi

summary
[ "$failed" = 0 ]
