#!/bin/sh
# Runs the dm-mirror-rs test suite and prints KTAP version 1, in the manner
# of the kernel's tools/testing/selftests/run_kselftest.sh: the plan first,
# then each test script as a nested subtest (its own KTAP lines indented by
# two spaces) closed by one line per script:
#
#   KTAP version 1
#   1..2
#     KTAP version 1
#     # Subtest: 01-module
#     ok 1 load dm_mirror_rs.ko
#     ...
#     # Totals: pass:7 fail:0 xfail:0 xpass:0 skip:0 error:0
#   ok 1 01-module
#   ...
#
#   tests/run_kselftest.sh [--tests LIST] [--timeout SECS] [--impl rs|c]
#                          [--list]
#
#   --tests LIST   comma separated test names or prefixes (03, 03-data,
#                  stress); default: every tests/[0-9]*.sh
#   --timeout SECS per-test limit (default: timeout= in tests/settings)
#   --impl c       test the C dm-mirror instead of ours (DMRS_IMPL)
#   --list         print the tests LIST selects and exit
#
# /init of the QEMU guest (scripts/guest-init.sh) runs it with DMRS_GUEST=1.
# Anywhere else (a test machine or VM, as root) it needs:
#   DMRS_DISKS   the scratch disks, which the tests overwrite: three (vda,
#                vdb of 256 MiB or more, vdc of 16 MiB or more) or five
#                (and sda, sdb of 32 MiB or more, for the dmraid tests);
#                see tests/lib-disks.sh. Without it nothing runs.
#   DMRS_RS_KO   our module (default: dm_mirror_rs.ko in the directory
#                above tests/, where `make` builds it)
#   the C dm-mirror as a module of the running kernel (modinfo dm_mirror),
#   not in use; without it the tests that compare with C fail their C
#   points (see docs/testing.md). Tools: dmsetup, blockdev, cmp, dd,
#   sha256sum, timeout, mkfs.ext4, e2fsck, setsid, unshare, awk; lvm and
#   dmraid for tests 20-21, fio for stress, python3 for the table fuzz's
#   cases (tests/tablefuzz.cases, made by scripts/table-fuzz.py).
# Other environment: DMRS_TAP (where KTAP goes, default stdout),
# DMRS_LOGDIR (each test's own output, default a new /tmp/dmrs-kselftest.*
# directory; in the guest it goes to the console).
#
# Exit status 0 if every test passed or was skipped, 1 otherwise (2: bad
# arguments, or refusing to run).

tests_dir=$(cd "$(dirname "$0")" && pwd)
tests=all
timeout=
list=
while [ $# -gt 0 ]; do
	case "$1" in
	--tests | -t) tests=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--impl) DMRS_IMPL=$2; export DMRS_IMPL; shift 2 ;;
	--list | -l) list=1; shift ;;
	-h | --help) sed -n '2,/^$/{s/^# \{0,1\}//p}' "$0"; exit 0 ;;
	*) echo "run_kselftest: unknown argument $1" >&2; exit 2 ;;
	esac
done
case "${DMRS_IMPL:-rs}" in rs | c) ;; *) echo "run_kselftest: --impl must be rs or c" >&2; exit 2 ;; esac

# kselftest's settings file: "field=value" lines, # comments
if [ -z "$timeout" ] && [ -r "$tests_dir/settings" ]; then
	timeout=$(sed -n 's/^timeout=\([0-9][0-9]*\)$/\1/p' "$tests_dir/settings" | tail -n 1)
fi
timeout=${timeout:-1800}

# Resolve the list (helper libraries are sourced by tests, never run).
list_of=
unknown=
if [ "$tests" = all ]; then
	for f in "$tests_dir"/[0-9]*.sh; do
		[ -e "$f" ] && list_of="$list_of $(basename "$f" .sh)"
	done
else
	for t in $(echo "$tests" | tr ',' ' '); do
		found=
		for f in "$tests_dir/$t.sh" "$tests_dir/$t"-*.sh; do
			[ -e "$f" ] || continue
			case "$f" in
			*/lib.sh | */lib-*.sh | *-lib.sh | */legfail.sh | */run_kselftest.sh) continue ;;
			esac
			found=1
			list_of="$list_of $(basename "$f" .sh)"
		done
		[ -n "$found" ] || unknown="$unknown $t"
	done
fi
if [ -n "$list" ]; then
	for t in $list_of; do echo "$t"; done
	[ -z "$unknown" ] || { echo "run_kselftest: no such test:$unknown" >&2; exit 2; }
	exit 0
fi

# Outside the QEMU guest: the named scratch disks, in a private mount
# namespace (tests/lib-disks.sh); refuse without them.
if [ "${DMRS_GUEST:-0}" != 1 ] && [ "${DMRS_NS:-0}" != 1 ]; then
	. "$tests_dir/lib-disks.sh"
	if [ -z "${DMRS_DISKS:-}" ]; then
		echo "run_kselftest: refusing to run: the tests overwrite their disks; name them in DMRS_DISKS" >&2
		echo "run_kselftest: e.g. DMRS_DISKS=\"/dev/sdx /dev/sdy /dev/sdz\" (vda vdb vdc; see tests/lib-disks.sh)" >&2
		exit 2
	fi
	if [ -z "${DMRS_RS_KO:-}" ] && [ -e "$tests_dir/../dm_mirror_rs.ko" ]; then
		DMRS_RS_KO=$(cd "$tests_dir/.." && pwd)/dm_mirror_rs.ko
		export DMRS_RS_KO
	fi
	# rc 4 (no DMRS_DISKS) was handled above
	dmrs_enter_ns sh "$0" --tests "$tests" --timeout "$timeout"
	exit $?
fi

# KTAP to DMRS_TAP, by default this runner's stdout, which the tests reach
# as fd 3 (their own stdout goes to their log)
if [ -z "${DMRS_TAP:-}" ] || [ "$DMRS_TAP" = /dev/stdout ]; then
	exec 3>&1
	DMRS_TAP=/dev/fd/3
fi
export DMRS_TAP
export DMRS_IMPL=${DMRS_IMPL:-rs}
export DM_DISABLE_UDEV=1
guest=${DMRS_GUEST:-0}
work=$(mktemp -d /tmp/dmrs-kselftest.XXXXXX) || exit 1
if [ "$guest" = 1 ]; then
	logdir=
else
	logdir=${DMRS_LOGDIR:-$work/logs}
	mkdir -p "$logdir"
fi
# the runner's own KTAP points: top level, no indent, its own counters
DMRS_TAP_COUNT=$work/top.count
echo "0 0 0 0 0" > "$DMRS_TAP_COUNT"
DMRS_KTAP_INDENT=
DMRS_TEST=
. "$tests_dir/lib.sh"

# progress: in the guest to the kernel log (the console shows it with a
# timestamp, run-guest.sh --live prints it), elsewhere to stderr
say() {
	if [ "$guest" = 1 ]; then
		echo "dmrs-init: $*" > /dev/kmsg 2>/dev/null || echo "dmrs-init: $*"
	else
		echo "run_kselftest: $*" >&2
	fi
}

kml=/sys/kernel/debug/kmemleak
with_kmemleak=
[ "$guest" = 1 ] && [ "${DMRS_KMEMLEAK:-0}" = 1 ] && with_kmemleak=1
n=0
for t in $list_of $unknown; do n=$((n + 1)); done
[ -n "$with_kmemleak" ] && n=$((n + 1))

# The dm devices there were before (a machine's own); only new ones are the
# tests' to report and remove. In the guest there are none.
dm_names() { dmsetup ls 2>/dev/null | awk '$1 != "No" {print $1}'; }
dm_names > "$work/dm.before"
# dm_new: the dm devices now that were not there before
dm_new() {
	dm_names | awk -v f="$work/dm.before" 'BEGIN {while ((getline l < f) > 0) old[l] = 1} !($0 in old)'
}
if [ "$guest" != 1 ] && mod_loaded dm_mirror &&
	[ "$(awk '$1 == "dm_mirror" {print $3}' /proc/modules)" != 0 ]; then
	echo "run_kselftest: refusing to run: the C dm_mirror is in use (mirrors of this machine); the tests load and unload it" >&2
	exit 2
fi

_tap_emit "KTAP version 1"
_tap_emit "1..$n"
tap_diag "dm-mirror-rs tests, impl=$DMRS_IMPL, kernel $(uname -r), ${timeout}s per test${logdir:+, output of each test in $logdir}"
say "impl=$DMRS_IMPL tests=$tests timeout=${timeout}s kernel $(uname -r)"

# Forget what kmemleak suspects from boot; only leaks from the tests count.
if [ -n "$with_kmemleak" ] && [ -w $kml ]; then
	echo scan > $kml 2>/dev/null
	echo clear > $kml 2>/dev/null
fi

for t in $unknown; do
	tap_fail "$t" "no such test"
done

# The table fuzz's cases: the guest's initramfs has them; elsewhere they
# are made here when the sources' scripts/table-fuzz.py is at hand.
if [ ! -r "$tests_dir/tablefuzz.cases" ] && [ -z "${DMRS_FUZZ_CASES:-}" ] &&
	[ -r "$tests_dir/../scripts/table-fuzz.py" ] && command -v python3 > /dev/null; then
	python3 "$tests_dir/../scripts/table-fuzz.py" --seed 11 --count 300 -o "$work/tablefuzz.cases" &&
		DMRS_FUZZ_CASES=$work/tablefuzz.cases && export DMRS_FUZZ_CASES
fi

# After a test: no dm devices or mirror modules of the tests left.
scrub() {
	for d in $(dm_new); do
		dmsetup remove --force "$d" >/dev/null 2>&1
	done
	unload_rs >/dev/null 2>&1
	unload_c >/dev/null 2>&1
}

hung=
failed=0
for t in $list_of; do
	if [ -n "$hung" ]; then
		tap_fail "$t" "not run: an earlier test hung"
		failed=$((failed + 1))
		continue
	fi
	say "=== test $t"
	start=$(date +%s)
	sub=$work/$t.count
	rm -f "$sub" "$sub".*
	# own process group, so a timeout kills the test and all its children;
	# its KTAP goes to DMRS_TAP, indented, its other output to the log (in
	# the guest: to the console, as the runner's)
	if [ -n "$logdir" ]; then
		out=$logdir/$t.log
		DMRS_TAP_COUNT=$sub DMRS_KTAP_INDENT="  " DMRS_TEST=$t \
			setsid sh "$tests_dir/$t.sh" < /dev/null > "$out" 2>&1 &
	else
		DMRS_TAP_COUNT=$sub DMRS_KTAP_INDENT="  " DMRS_TEST=$t \
			setsid sh "$tests_dir/$t.sh" < /dev/null &
	fi
	pid=$!
	ticks=0
	limit=$((timeout * 5))
	state=running
	while kill -0 $pid 2>/dev/null; do
		sleep 0.2
		ticks=$((ticks + 1))
		if [ $ticks -eq $limit ]; then
			say "$t: timeout after ${timeout}s, sending TERM"
			state=timeout
			kill -TERM -$pid 2>/dev/null || kill -TERM $pid 2>/dev/null
		elif [ $ticks -eq $((limit + 50)) ]; then
			say "$t: still alive, sending KILL"
			kill -KILL -$pid 2>/dev/null || kill -KILL $pid 2>/dev/null
		elif [ $ticks -ge $((limit + 150)) ]; then
			say "$t: cannot be killed (stuck in the kernel?)"
			state=hung
			break
		fi
	done
	if [ $state = hung ]; then
		hung=1
		[ "$guest" = 1 ] && echo w > /proc/sysrq-trigger 2>/dev/null
		tap_fail "$t" "TIMEOUT ${timeout} seconds, the test cannot be killed"
		failed=$((failed + 1))
		continue
	fi
	wait $pid
	rc=$?
	DMRS_TAP_COUNT=$sub
	_tap_read
	DMRS_TAP_COUNT=$work/top.count
	secs=$(( $(date +%s) - start ))
	say "=== test $t done: rc=$rc, $_tn points ($_tp pass, $_tf fail, $_ts skip, $_tx xfail), ${secs}s"
	tap_diag "$t: exit status $rc, $_tn points ($_tp pass, $_tf fail, $_ts skip, $_tx xfail), ${secs}s"
	# the verdict on the script: kselftest's exit codes, and that it got
	# to tap_end (which wrote the .end mark and the totals) with points
	why=
	if [ $state = timeout ]; then
		why="TIMEOUT ${timeout} seconds"
	elif [ ! -e "$sub.end" ]; then
		why="exit=$rc: the script ended without tap_end (died or exited early after $_tn points)"
	elif [ $rc != 0 ] && [ $rc != 4 ]; then
		why="exit=$rc"
	elif [ "$_tf" != 0 ]; then
		why="$_tf failed points but exit status $rc"
	elif [ "$_tn" = 0 ]; then
		why="no points"
	fi
	left=$(dm_new | tr '\n' ' ')
	if [ -n "$left" ]; then
		tap_diag "$t: left dm devices behind: $left"
		why="${why:+$why; }left dm devices behind: $left"
	fi
	if [ -n "$why" ]; then
		if [ -n "$logdir" ]; then
			tap_diag "$t: the last lines of $out:"
			tap_diag "$(tail -n 20 "$out")"
		fi
		tap_fail "$t" "$why"
		failed=$((failed + 1))
	elif [ $rc = 4 ]; then
		tap_skip "$t" "every point skipped"
	else
		tap_ok "$t"
	fi
	scrub
done

# kmemleak: objects must be older than 5 s before kmemleak reports them
if [ -n "$with_kmemleak" ]; then
	if [ -n "$hung" ]; then
		tap_skip "kmemleak" "a test hung"
	elif [ -w $kml ]; then
		sleep 6
		echo scan > $kml
		echo scan > $kml
		leaks=$(cat $kml)
		if [ -n "$leaks" ]; then
			echo "$leaks"
			tap_fail "kmemleak" "$(echo "$leaks" | grep -c 'unreferenced object') unreferenced objects"
			failed=$((failed + 1))
		else
			tap_ok "kmemleak"
		fi
	else
		tap_skip "kmemleak" "no $kml"
	fi
fi
_tap_read
say "all done: $_tn results, $failed failed"
if [ -z "$logdir" ]; then
	rm -rf "$work"
else
	rm -f "$work"/*.count* "$work"/dm.* "$work/tablefuzz.cases"
fi
[ "$failed" = 0 ] && [ -z "$unknown" ]
