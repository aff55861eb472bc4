#!/usr/bin/env bash
# Runs the tests of dm-mirror-rs, from a fresh Debian 12 machine if need be:
# installs what is missing, builds (or reuses) the test kernels, builds the
# module with clippy, runs the host unit tests and the guest tests under
# QEMU in two lanes at once (see below).
#
#   scripts/check.sh [run-guest.sh options, e.g. --tests 03]
#                    (with options: only the guest suite, no lane 2)
#
# Two sizes (DMRS_CHECK):
#   ci   (make check, what CI runs): lane 1, every numbered test on 6.12
#        but 22, 40 and 41, which lane 2 boots on their own. Lane 2: the
#        short 7.3 suite (01 04 05 06 30 44), the seed reproducer on 7.3,
#        DKMS, 60 fuzzed tables, 60 stalled teardown cycles, 1 minute of
#        stress and dmeventd's repair.
#   full (make check-full): the same lane 1, and in lane 2 everything ci
#        has plus the seed reproducer on the kernel of the run, 3 crash
#        cycles, the dmraid reproducer, 100 tables and 200 teardown cycles.
#
# Kernels (issue #13): KERNEL=6.12 (the default) or 7.3 picks the kernel of
# the run (make check KERNEL=7.3 runs full). With 6.12 the other supported
# kernel, 7.3, gets its toolchain and debug kernel (cached), the module
# built against it with clippy, and the short suite and seed reproducer in
# lane 2. DMRS_OTHER_KERNEL=none leaves that out.
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
notes=
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
		# indented), run-guest.sh's FAIL and splat lines, build errors (not the
		# "error:0" of a KTAP "# Totals:" line)
		[ -n "${3:-}" ] && why+=$(grep -aE '^ *not ok|: FAIL|FAILED|error(\[|:)|panicked|^run-guest: splat' \
			"$logdir/$3.log" | grep -v '# Totals:' | awk '!seen[$0]++' | head -n 25 | sed 's/^/  /')$'\n'
	fi
}
summary() {
	step_end
	echo
	printf 'check: time per step (%ss in all)\n%s' "$SECONDS" "$times"
	[ -n "$notes" ] && printf '%s' "$notes"
	[ -n "$why" ] && printf '%s' "$why"
	echo "check: $passed passed, $failed failed"
}

step "host packages, rust-src, bindgen"
"$here/setup-host.sh" || { echo "check: setup failed"; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"

kver=${KERNEL:-6.12}
size=${DMRS_CHECK:-ci}
case "$kver" in
6.12) other=${DMRS_OTHER_KERNEL:-7.3} ;;
7.3) other=none size=full ;;
*) echo "check: KERNEL=$kver: supported are 6.12 and 7.3"; exit 1 ;;
esac
[ "$other" = 7.3 ] || [ "$other" = none ] || { echo "check: DMRS_OTHER_KERNEL=$other: 7.3 or none"; exit 1; }
case "$size" in ci|full) ;; *) echo "check: DMRS_CHECK=$size: ci or full"; exit 1 ;; esac
# Every guest of both lanes has one vCPU unless it needs two (the stalled
# teardown): measured on the 2-core host, two guests of 2 vCPUs beside each
# other took 398 s and 429 s for tests 04 and 03 (a vCPU spinning on a
# guest lock whose holder's thread waits for a host core), two of 1 vCPU
# 274 s and 293 s, one alone of 2 vCPUs 177 s and 177 s.
export DMRS_SMP=${DMRS_SMP:-1}

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
	klog=$logdir/kernel-$other.log
	okdir=$("$here/build-kernel.sh" debug "$other" 2> >(tee "$klog" >&2))
	rc=$?
	if [ $rc != 0 ]; then
		# Stop 22's CI failed here in 1 s and said no more; this step
		# passed before and after it on the same machine. Once more, with
		# build-kernel.sh traced, and the end of both logs in the summary.
		echo "check: Linux $other kernel step exited $rc; once more, traced ($klog.trace)"
		okdir=$(bash -x "$here/build-kernel.sh" debug "$other" 2> >(tee "$klog.trace" >&2))
		rc2=$?
		note="check: Linux $other kernel step exited $rc, then $rc2 traced; the ends of its logs:"$'\n'
		note+=$(tail -n 8 "$klog" | sed 's/^/  first: /')$'\n'
		note+=$(tail -n 12 "$klog.trace" | sed 's/^/  traced: /')$'\n'
		# a failure that the second try does not repeat is reported, not
		# counted: the step's result is the second try's
		if [ $rc2 = 0 ]; then notes+=$note; else why+=$note; fi
		rc=$rc2
	fi
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

# The guests run in two lanes at the same time, one 1-vCPU guest each on
# the machine's two cores. Lane 1 is the guest suite, shown as it runs;
# lane 2 boots the single-purpose guests one after the other (the short run
# on the second kernel and its seed reproducer, the table fuzz, the
# teardown cycles with vCPU 1 stalled from the host, in full the seed's
# reproducer, the crash cycles and the dmraid reproducer, 1 minute of
# stress, dmeventd's repair), shown when it is done.
lane2_results=$logdir/lane2.results
short=01-module,04-table,05-badtables,06-resync,30-disklog,44-atomic
td_cycles=60 fuzz_count=60
[ "$size" = ci ] || td_cycles=200 fuzz_count=100
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
		# what issue #13 asks of the second kernel (measured on the
		# 2-core host, a 2-vCPU 7.3 guest beside the 6.12 suite: 01 41 s,
		# 04 363 s, 05 210 s, 06 282 s, 30 304 s; 44 439 s in a 1-vCPU guest
		# beside two others, 150 s alone with 2 vCPUs)
		lane2_step guest-$other "Linux $other: short suite" \
			"Linux $other: load/unload, table round trips and bad tables against its C target, resync, the disk log, atomic writes (tests 01 04 05 06 30 44)" \
			"$here/run-guest.sh" --kernel "$okdir" --module "$oko" \
			--tests "$short" --test-timeout 1200 --timeout 2400
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
	# ci: 60 tables, full: 100 (make fuzz COUNT=N for more)
	lane2_step tablefuzz "table fuzz (C and ours, $fuzz_count tables)" \
		"the differential table fuzz: $fuzz_count tables of seed 11, C then ours in one boot (tests/40-tablefuzz.sh)" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" \
		--tests 40-tablefuzz --fuzz-seed 11 --fuzz-count $fuzz_count --test-timeout 1800 --timeout 2100
	# The teardown races of issue #11 open in a window of a few instructions
	# of an I/O completion; a host that stops a vCPU there for milliseconds
	# opens it (scripts/vcpu-stall.py), so this guest has two vCPUs.
	# Without the stalls the old code passed 300 cycles twice; with them it
	# failed in the resync phase, 2 runs of 2 (once scaled down to 72
	# cycles). ci: 60 cycles, full: 200.
	lane2_step teardown "teardown cycles, vCPU 1 stalled" \
		"create/inspect/remove cycles of every kind of table (tests/41-teardown.sh), vCPU 1 stopped ~30 ms of every ~50 ms, $td_cycles cycles" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --smp 2 \
		--tests 41-teardown --stall-vcpu 30:20 --append dmrs.teardown_cycles=$td_cycles \
		--test-timeout 2400 --timeout 2700
	if [ "$size" = full ]; then
		lane2_step seed "seed reproducer (192 MiB guest)" "the seed's reproducer: ext4 fill in a 192 MiB guest under failslab (512 MiB written)" \
			"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --mem 192M \
			--tests seed --test-timeout 1200 --timeout 1500
		# 3 kills, the fewest for which crash-cycle.sh demands that one
		# left dirty regions (make crash runs 20)
		lane2_step crash "crash cycles (disk log)" "disk-log crash consistency: 3 boots killed with SIGKILL mid-write, then a verifying boot" \
			"$here/crash-cycle.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --cycles 3
		lane2_step dmraid-seed "dmraid reproducer (192 MiB guest)" "the seed's reproducer on a dmraid NVIDIA RAID1 set: ext4 fill in a 192 MiB guest (1 GiB written)" \
			"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --mem 192M \
			--sata-size 640M --tests dmraid-seed --test-timeout 1800 --timeout 2100
	fi
	# a short stress run (make stress MINUTES=N for a long one): 1 minute
	# of fio, the rest is the boot, the set-up and the final resync
	lane2_step stress "stress, 1 minute (fio)" "stress: fio with verification, suspend/resume, reloads and log switches under failslab, 1 minute (tests/stress.sh)" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" --fio \
		--tests stress --append dmrs.stress_minutes=1 --test-timeout 960 --timeout 1440
	# LVM's automatic repair (tests/22-dmeventd.sh), in its own boot
	lane2_step dmeventd "dmeventd repairs an LVM mirror (ours, then C)" \
		"dmeventd's lvconvert --repair of an LVM mirror whose leg dies under writes, policies allocate and remove, ours then C (tests/22-dmeventd.sh)" \
		"$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" \
		--tests 22-dmeventd --test-timeout 1500 --timeout 1800
}
lane2_pid=
suite=()
if [ $# = 0 ]; then
	# lane 1: every numbered test but the table fuzz, the teardown cycles
	# and the dmeventd test, which lane 2 boots on their own: with the
	# other kernel's short suite in lane 2 too, the kernel of the run gets
	# the whole suite (issue #13)
	skip='4[01]|22'
	suite=(--tests "$(cd "$top/tests" && ls [0-9]*.sh | sed 's/\.sh$//' | grep -Ev "^($skip)-" | paste -sd, -)")
	: > "$lane2_results"
	lane2 > "$logdir/lane2.log" 2>&1 &
	lane2_pid=$!
	extra=
	[ "$size" = ci ] || extra="seed reproducer, crash cycles, dmraid reproducer, "
	dkms=
	[ "$kver" != 6.12 ] || dkms="DKMS, "
	echo "check: $size; lane 2 (${okdir:+Linux $other short suite and seed reproducer, }${dkms}table fuzz, stalled teardown cycles, ${extra}stress, dmeventd) runs beside the guest suite;"
	echo "check: its output follows the suite's (live in $logdir/lane2.log)"
fi

suite_limit=4900
[ "$size" = ci ] || suite_limit=9000
step "guest tests under QEMU/TCG (debug kernel: KASAN, lockdep, kmemleak)"
# Measured (stop 25, inline KASAN, a clean clone, nothing else running):
# the whole suite in 1565 s, lane 2 in 1427 s; CI runs of similar work
# have differed by up to 1.9 times. DMRS_SUITE_TIMEOUT=SECS overrides the
# suite's limit.
logged guest "$here/run-guest.sh" --kernel "$kdir" --module "$top/dm_mirror_rs.ko" \
	--timeout "${DMRS_SUITE_TIMEOUT:-$suite_limit}" --test-timeout 1800 "${suite[@]}" "$@"
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
	lane2_steps=4
	[ "$size" = ci ] || lane2_steps=$((lane2_steps + 3))
	[ "$kver" != 6.12 ] || lane2_steps=$((lane2_steps + 1))
	[ -z "$okdir" ] || lane2_steps=$((lane2_steps + 2))
	[ "$(wc -l < "$lane2_results")" = "$lane2_steps" ] || result "lane 2 ran all its steps" 1
fi

summary
[ "$failed" = 0 ]
