#!/bin/sh
# PID 1 of the dm-mirror-rs test guest (installed as /init by
# scripts/mkinitramfs.sh). Runs the test scripts in /tests with
# /tests/run_kselftest.sh, which writes KTAP to /dev/ttyS1; the kernel
# console is on ttyS0.
#
# Kernel command line switches (read from /proc/cmdline):
#   dmrs.tests=all | NAME[,NAME...]   NAME is a script name without .sh
#                                     (01-module) or a prefix of one (01)
#   dmrs.impl=rs | c                  module under test: ours or the C one
#   dmrs.timeout=SECS                 per-test timeout (default 240)
#   dmrs.tap=DEV                      TAP output (default /dev/ttyS1)
#   dmrs.shell=1                      drop to a shell on the console at the end
#   dmrs.seed_mib=MIB                 tests/seed.sh, dmraid-seed.sh: MiB written
#   dmrs.stress_minutes=N             tests/stress.sh: minutes of stress

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
	dmrs.stress_minutes=*) export DMRS_STRESS_MINUTES=${w#dmrs.stress_minutes=} ;;
	esac
done
stty -F "$tap" raw -echo 2>/dev/null

# The suite's runner (tests/run_kselftest.sh, the one a test machine uses
# too) prints KTAP to the TAP port: the plan first, each test a nested
# subtest, one result line per test, then kmemleak's.
export DMRS_GUEST=1
export DMRS_TAP=$tap
export DMRS_KMEMLEAK=1
export DM_DISABLE_UDEV=1
echo "dmrs-init: booted, kernel $(uname -r)" > /dev/kmsg 2>/dev/null
sh /tests/run_kselftest.sh --impl "$impl" --tests "$tests" --timeout "$per_test"

if [ "$shell" = 1 ]; then
	setsid cttyhack sh
fi
sync
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
reboot -f
