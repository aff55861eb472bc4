#!/bin/sh
# PID 1 of the dm-mirror-rs test guest (installed as /init by
# scripts/mkinitramfs.sh). Runs the test scripts in /tests and writes TAP
# (kselftest style) to /dev/ttyS1; the kernel console is on ttyS0.
#
# Kernel command line switches (read from /proc/cmdline):
#   dmrs.tests=all | NAME[,NAME...]   NAME is a script name without .sh
#                                     (01-module) or a prefix of one (01)
#   dmrs.impl=rs | c                  module under test: ours or the C one
#   dmrs.timeout=SECS                 per-test timeout (default 240)
#   dmrs.tap=DEV                      TAP output (default /dev/ttyS1)
#   dmrs.shell=1                      drop to a shell on the console at the end

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /var/lock/dmraid /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /dev/shm 2>/dev/null
# no module auto-loading: dm must never pull in a module behind the test's back
echo > /proc/sys/kernel/modprobe 2>/dev/null
hostname dmrs-guest

tests=all
impl=rs
per_test=240
tap=/dev/ttyS1
shell=0
for w in $(cat /proc/cmdline); do
	case "$w" in
	dmrs.tests=*) tests=${w#dmrs.tests=} ;;
	dmrs.impl=*) impl=${w#dmrs.impl=} ;;
	dmrs.timeout=*) per_test=${w#dmrs.timeout=} ;;
	dmrs.tap=*) tap=${w#dmrs.tap=} ;;
	dmrs.shell=*) shell=${w#dmrs.shell=} ;;
	dmrs.seed_mib=*) export DMRS_SEED_MIB=${w#dmrs.seed_mib=} ;;
	esac
done
stty -F "$tap" raw -echo 2>/dev/null

export DMRS_TAP=$tap
export DMRS_TAP_COUNT=/run/dmrs-tap.count
export DMRS_IMPL=$impl
export DM_DISABLE_UDEV=1
DMRS_TEST=
echo 0 > "$DMRS_TAP_COUNT"
. /tests/lib.sh

# to the kernel log (and so to the console, with a timestamp)
say() { echo "dmrs-init: $*" > /dev/kmsg 2>/dev/null || echo "dmrs-init: $*"; }

say "impl=$impl tests=$tests timeout=${per_test}s kernel $(uname -r)"
echo "TAP version 13" >> "$DMRS_TAP"
tap_diag "dm-mirror-rs guest tests, impl=$impl, kernel $(uname -r)"

# Forget what kmemleak suspects from boot; only leaks from the tests count.
kml=/sys/kernel/debug/kmemleak
if [ -w $kml ]; then
	echo scan > $kml 2>/dev/null
	echo clear > $kml 2>/dev/null
fi

# Resolve the test list.
list=
if [ "$tests" = all ]; then
	for f in /tests/[0-9]*.sh; do
		[ -e "$f" ] && list="$list $(basename "$f" .sh)"
	done
else
	for t in $(echo "$tests" | tr ',' ' '); do
		found=
		for f in /tests/"$t".sh /tests/"$t"-*.sh; do
			[ -e "$f" ] || continue
			# helper libraries are sourced by tests, never run
			case "$f" in */lib.sh | */lib-*.sh | *-lib.sh | */legfail.sh) continue ;; esac
			found=1
			list="$list $(basename "$f" .sh)"
		done
		[ -n "$found" ] || tap_fail "$t" "no such test"
	done
fi

# Leave the guest without dm devices or mirror modules after a test.
scrub() {
	for d in $(dmsetup ls 2>/dev/null | awk '$1 != "No" {print $1}'); do
		dmsetup remove --force "$d" >/dev/null 2>&1
	done
	unload_rs >/dev/null 2>&1
	unload_c >/dev/null 2>&1
}

hung=
for t in $list; do
	if [ -n "$hung" ]; then
		tap_fail "$t" "not run: an earlier test hung"
		continue
	fi
	say "=== test $t"
	before=$(cat "$DMRS_TAP_COUNT")
	start=$(date +%s)
	# own process group, so a timeout kills the test and all its children
	DMRS_TEST=$t setsid sh /tests/"$t".sh < /dev/null &
	pid=$!
	ticks=0
	limit=$((per_test * 5))
	state=running
	while kill -0 $pid 2>/dev/null; do
		sleep 0.2
		ticks=$((ticks + 1))
		if [ $ticks -eq $limit ]; then
			say "$t: timeout after ${per_test}s, sending TERM"
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
		echo w > /proc/sysrq-trigger 2>/dev/null
		tap_fail "$t" "timeout after ${per_test}s, process unkillable"
		continue
	fi
	wait $pid
	rc=$?
	after=$(cat "$DMRS_TAP_COUNT")
	say "=== test $t done: rc=$rc, $((after - before)) results, $(( $(date +%s) - start ))s"
	if [ $state = timeout ]; then
		tap_fail "$t" "timeout after ${per_test}s"
	elif [ $rc -ne 0 ]; then
		tap_fail "$t" "script exited with status $rc"
	elif [ "$after" -eq "$before" ]; then
		tap_fail "$t" "script reported no results"
	fi
	left=$(dmsetup ls 2>/dev/null | awk '$1 != "No" {print $1}' | tr '\n' ' ')
	if [ -n "$left" ]; then
		tap_fail "$t: cleanup" "left dm devices behind: $left"
	fi
	scrub
done

# kmemleak: objects must be older than 5 s before kmemleak reports them
if [ -z "$hung" ] && [ -w $kml ]; then
	sleep 6
	echo scan > $kml
	echo scan > $kml
	leaks=$(cat $kml)
	if [ -n "$leaks" ]; then
		echo "$leaks"
		tap_fail "kmemleak" "$(echo "$leaks" | grep -c 'unreferenced object') unreferenced objects"
	else
		tap_ok "kmemleak"
	fi
elif [ -n "$hung" ]; then
	tap_skip "kmemleak" "a test hung"
else
	tap_skip "kmemleak" "no $kml"
fi

n=$(cat "$DMRS_TAP_COUNT")
echo "1..$n" >> "$DMRS_TAP"
say "all done: $n results"

if [ "$shell" = 1 ]; then
	setsid cttyhack sh
fi
sync
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
reboot -f
