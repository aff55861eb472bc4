#!/usr/bin/env bash
# Boots the debug test kernel in QEMU (TCG) and runs the guest tests.
#
#   scripts/run-guest.sh [--kernel TREE] [--module KO] [--impl rs|c]
#                        [--mem 512M] [--tests LIST] [--timeout SECS]
#                        [--test-timeout SECS] [--keep DIR] [--fio]
#                        [--append ARGS] [--disk-dir DIR]
#                        [--kill-on PATTERN [--kill-after SECS]]
#                        [--nvidia sync|nosync|none] [--sata-size SIZE]
#                        [--fuzz-seed N] [--fuzz-count N]
#                        [--stall-vcpu STALL_MS:RUN_MS] [--live] [--smp N]
#
#   --kernel TREE   kernel build tree (default ~/.cache/dm-mirror-rs/linux-debug)
#   --module KO     our module, copied to /modules/ (default: none)
#   --impl c        test the C dm-mirror instead (kernel cmdline dmrs.impl=c)
#   --tests LIST    comma separated test names or prefixes (default all)
#   --timeout SECS  host-side limit for the whole run (default 900)
#   --test-timeout  per-test limit inside the guest (default 240)
#   --keep DIR      keep console.log, tap.log, initramfs and disks in DIR
#   --fio           put fio into the initramfs (large)
#   --disk-dir DIR  keep the disk images in DIR across runs: an image that
#                   exists there is used as it is (any size), a missing one
#                   is created empty with the default size
#   --kill-on PAT   crash test: when the console log shows a line matching
#                   the grep -E pattern PAT, wait --kill-after SECS (default
#                   3) and kill QEMU with SIGKILL (no clean shutdown). The
#                   run then passes if the kill happened, every KTAP point
#                   before it is ok and the console has no kernel splats;
#                   fewer results than the plan and no "all done" are
#                   expected.
#   --nvidia JOB    NVIDIA RAID1 metadata (scripts/nvidia-meta.py) stamped on
#                   freshly created sata0/sata1 images, raidJobCode sync (3,
#                   default) or nosync (0); none: blank images. (Debian 12's
#                   dmraid ignores the job code: a complete set gets a nosync
#                   mirror either way, see tests/20-dmraid.sh)
#   --sata-size SZ  size of freshly created sata images (default 32M)
#   --fuzz-seed N, --fuzz-count N  the cases of the table fuzz (tests/40-tablefuzz.sh,
#                   made by scripts/table-fuzz.py; default seed 11, 300 cases)
#   --stall-vcpu S:R  stop the guest's vCPU 1 from the host for about S ms,
#                   let it run about R ms, and again, for the whole run
#                   (scripts/vcpu-stall.py): what a loaded host does to a
#                   guest now and then, so that races whose window is a
#                   few instructions of non-preemptible kernel code open
#                   often (tests/41-teardown.sh's stalled run)
#   --smp N         the guest's vCPUs (default 2, or $DMRS_SMP). Under TCG a
#                   guest of 2 vCPUs keeps ~1.3 host cores busy; two such
#                   guests on a 2-core host wait for each other's vCPU
#                   threads (a guest spinlock's holder descheduled), so
#                   make check's lanes run 1-vCPU guests where a test does
#                   not need two (scripts/check.sh)
#   --live          while QEMU runs, print each KTAP line to stdout as the
#                   guest writes it (not all of them at the end), and the
#                   console's "dmrs-init:" lines (boot done, each test's
#                   start and end, with the guest's clock) to stderr
#
# Guest disks (fresh sparse files each run unless --disk-dir): vda.img,
# vdb.img 256 MiB virtio-blk, vdc.img 16 MiB virtio-blk, sata0.img/sata1.img
# 32 MiB AHCI SATA with serials DMRS0000/1, carrying an NVIDIA RAID1 set
# (dmraid: nvidia_jecifcdi) unless --nvidia none.
# KTAP (docs/testing.md) goes to stdout. Exit 0 only if every KTAP point is
# ok (or SKIP/XFAIL), the plan is complete at every level
# (scripts/ktap-check.awk) and the console log is free of kernel splats.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${DMRS_CACHE:-$HOME/.cache/dm-mirror-rs}
kernel=$cache/linux-debug
module=
impl=rs
mem=512M
tests=all
timeout=900
test_timeout=240
keep=
fio=
append=
disk_dir=
kill_on=
kill_after=3
nvidia=sync
sata_size=32M
fuzz=()
stall=
live=
smp=${DMRS_SMP:-2}

die() { echo "run-guest: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=$2; shift 2 ;;
	--module) module=$2; shift 2 ;;
	--impl) impl=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--tests) tests=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--test-timeout) test_timeout=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--fio) fio=--fio; shift ;;
	--append) append=$2; shift 2 ;;
	--disk-dir) disk_dir=$2; shift 2 ;;
	--kill-on) kill_on=$2; shift 2 ;;
	--kill-after) kill_after=$2; shift 2 ;;
	--nvidia) nvidia=$2; shift 2 ;;
	--sata-size) sata_size=$2; shift 2 ;;
	--fuzz-seed|--fuzz-count) fuzz+=("$1" "$2"); shift 2 ;;
	--stall-vcpu) stall=$2; shift 2 ;;
	--live) live=1; shift ;;
	--smp) smp=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
done
case "$impl" in rs|c) ;; *) die "--impl must be rs or c" ;; esac
case "$nvidia" in sync|nosync|none) ;; *) die "--nvidia must be sync, nosync or none" ;; esac
case "$stall" in '' | [0-9]*:[0-9]*) ;; *) die "--stall-vcpu wants STALL_MS:RUN_MS" ;; esac
case "$smp" in [1-4]) ;; *) die "--smp wants 1 to 4" ;; esac
[ -z "$stall" ] || [ "$smp" -ge 2 ] || die "--stall-vcpu stalls vCPU 1: it needs --smp 2 or more"
bzimage=$kernel/arch/x86/boot/bzImage
[ -f "$bzimage" ] || die "no $bzimage (scripts/build-kernel.sh debug)"
[ -f "$kernel/.dmrs-stamp" ] || echo "run-guest: warning: $kernel has no .dmrs-stamp (build unfinished?)" >&2
if [ -n "$module" ]; then
	[ -f "$module" ] || die "no module $module"
	module=$(realpath "$module")
fi

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	work=$(realpath "$keep")
	rm -f "$work"/{console.log,tap.log,initramfs.cpio.gz,*.img}
else
	work=$(mktemp -d /tmp/dmrs-run.XXXXXX)
fi
console=$work/console.log
taplog=$work/tap.log

echo "run-guest: work dir $work" >&2
"$here/mkinitramfs.sh" $fio "${fuzz[@]}" "$work/initramfs.cpio.gz" "$kernel" ${module:+"$module"} ||
	die "mkinitramfs failed"

disks=$work
if [ -n "$disk_dir" ]; then
	mkdir -p "$disk_dir"
	disks=$(realpath "$disk_dir")
fi
fresh_sata=0
for d in vda:256M vdb:256M vdc:16M sata0:$sata_size sata1:$sata_size; do
	img=$disks/${d%%:*}.img
	if [ -n "$disk_dir" ] && [ -f "$img" ]; then
		continue
	fi
	rm -f "$img"
	truncate -s "${d#*:}" "$img"
	case "$d" in sata*) fresh_sata=$((fresh_sata + 1)) ;; esac
done
# dmraid's NVIDIA RAID1 set on the SATA disks (only on new images: kept
# images keep what the last boot left on them)
if [ "$nvidia" != none ] && [ "$fresh_sata" = 2 ]; then
	python3 "$here/nvidia-meta.py" write --job "$nvidia" "$disks/sata0.img" "$disks/sata1.img" >&2 ||
		die "nvidia-meta.py failed"
fi
: > "$console"
: > "$taplog"

# watchdog_thresh=60 (soft lockup after 120 s, default 20 s): under TCG the
# debug kernel is ~50x slower, and C kmirrord needs >20 s for one batch of
# 64 MiB buffered writeback when the host is shared.
cmdline="console=ttyS0 panic=-1 printk.devkmsg=on watchdog_thresh=60 dmrs.tests=$tests dmrs.impl=$impl dmrs.timeout=$test_timeout $append"
# q35, not the default i440fx: the i440fx _PRT AML is a 128-step loop that a
# KASAN+kmemleak+lockdep kernel under TCG cannot finish within ACPI's 30 s
# loop limit (soft lockups, then "can't derive routing for PCI INT A").
# debug-threads=on names QEMU's threads ("CPU 1/TCG"), for --stall-vcpu.
qemu=(qemu-system-x86_64 -name dmrs,debug-threads=on -machine q35 -accel tcg -smp "$smp" -m "$mem"
	-nodefaults -nographic -monitor none -no-reboot
	-kernel "$bzimage" -initrd "$work/initramfs.cpio.gz" -append "$cmdline"
	-serial "file:$console" -serial "file:$taplog"
	-drive "file=$disks/vda.img,if=none,id=vda,format=raw,cache=unsafe" -device virtio-blk-pci,drive=vda
	-drive "file=$disks/vdb.img,if=none,id=vdb,format=raw,cache=unsafe" -device virtio-blk-pci,drive=vdb
	-drive "file=$disks/vdc.img,if=none,id=vdc,format=raw,cache=unsafe" -device virtio-blk-pci,drive=vdc
	-device ahci,id=ahci
	-drive "file=$disks/sata0.img,if=none,id=sata0,format=raw,cache=unsafe" -device ide-hd,drive=sata0,bus=ahci.0,serial=DMRS0000
	-drive "file=$disks/sata1.img,if=none,id=sata1,format=raw,cache=unsafe" -device ide-hd,drive=sata1,bus=ahci.1,serial=DMRS0001)

echo "run-guest: booting ($impl, tests=$tests, mem=$mem, timeout ${timeout}s${stall:+, vCPU 1 stalled $stall ms})" >&2
# --live: two followers, tail -F --pid on a sentinel, so that after QEMU
# ends they read what is left and exit on their own; the sentinel ends when
# we kill it, or when this script ends however it ends
live_start() {
	[ -n "$live" ] || return 0
	tail -f --pid=$$ /dev/null &
	live_sentinel=$!
	( tail -n +1 -F --pid=$live_sentinel "$taplog" 2> /dev/null | sed -u 's/\r$//' ) &
	live_tap=$!
	( tail -n +1 -F --pid=$live_sentinel "$console" 2> /dev/null |
		sed -un 's/\r//g; /dmrs-init: /s/^/run-guest: guest: /p' >&2 ) &
	live_con=$!
}
live_stop() {
	[ -n "$live" ] || return 0
	kill $live_sentinel 2> /dev/null
	wait $live_sentinel $live_tap $live_con 2> /dev/null
}
live_start
start=$(date +%s)
killed=
stall_failed=
if [ -z "$kill_on" ] && [ -z "$stall" ]; then
	timeout --foreground -k 10 "$timeout" "${qemu[@]}" < /dev/null > "$work/qemu.out" 2>&1
	qrc=$?
else
	# QEMU in the background, writing its pid, with a companion or two:
	# crash mode's watcher, --stall-vcpu's stopper
	rm -f "$work/qemu.pid" "$work/killed"
	timeout --foreground -k 10 "$timeout" "${qemu[@]}" -pidfile "$work/qemu.pid" \
		< /dev/null > "$work/qemu.out" 2>&1 &
	tpid=$!
	wpid=
	spid=
	if [ -n "$kill_on" ]; then
		# crash mode: kill QEMU (by the pid it wrote) with SIGKILL SECS
		# after PAT shows up on the console
		(
			while kill -0 $tpid 2> /dev/null; do
				if tr -d '\r' < "$console" | grep -Eq -- "$kill_on"; then
					echo "run-guest: console shows '$kill_on' after $(( $(date +%s) - start ))s, SIGKILL in ${kill_after}s" >&2
					sleep "$kill_after"
					qpid=$(cat "$work/qemu.pid" 2> /dev/null)
					if [ -n "$qpid" ] && kill -0 "$qpid" 2> /dev/null; then
						date +%s > "$work/killed"
						kill -KILL "$qpid"
					fi
					exit 0
				fi
				sleep 0.2
			done
		) &
		wpid=$!
	fi
	if [ -n "$stall" ]; then
		n=0
		while [ ! -s "$work/qemu.pid" ] && [ $n -lt 100 ] && kill -0 $tpid 2> /dev/null; do
			sleep 0.1
			n=$((n + 1))
		done
		python3 "$here/vcpu-stall.py" "$(cat "$work/qemu.pid" 2> /dev/null || echo 0)" --cpu 1 \
			--stall "${stall%%:*}" --run "${stall#*:}" > "$work/stall.out" 2>&1 &
		spid=$!
	fi
	wait $tpid
	qrc=$?
	if [ -n "$wpid" ]; then
		kill $wpid 2> /dev/null
		wait $wpid 2> /dev/null
	fi
	[ -f "$work/killed" ] && killed=1
	if [ -n "$spid" ]; then
		wait $spid
		src=$?
		cat "$work/stall.out" >&2
		[ $src -eq 0 ] || stall_failed="vcpu-stall.py exited with $src"
		grep -Eq '^vcpu-stall: [1-9][0-9]* stalls' "$work/stall.out" ||
			stall_failed="${stall_failed:-vcpu-stall.py made no stall}"
	fi
fi
elapsed=$(( $(date +%s) - start ))
live_stop
echo "run-guest: qemu exited with $qrc after ${elapsed}s" >&2

fail=0
problem() { echo "run-guest: FAIL: $*" >&2; fail=1; }
[ -z "${stall_failed:-}" ] || problem "--stall-vcpu: $stall_failed"

if [ -n "$kill_on" ]; then
	if [ -n "$killed" ]; then
		echo "run-guest: QEMU killed with SIGKILL ($(( $(cat "$work/killed") - start ))s after the start)" >&2
		[ $qrc -eq 137 ] || problem "QEMU killed but the exit status was $qrc, not 137"
	else
		problem "the console never showed '$kill_on': QEMU was not killed (exit status $qrc)"
	fi
else
	[ $qrc -eq 124 ] || [ $qrc -eq 137 ] && problem "timeout: the guest did not finish within ${timeout}s"
	[ $qrc -ne 0 ] && [ $qrc -ne 124 ] && [ $qrc -ne 137 ] && { cat "$work/qemu.out" >&2; problem "qemu exit status $qrc"; }
fi

# --- KTAP --------------------------------------------------------------------
# tests/run_kselftest.sh in the guest writes KTAP version 1: the plan first,
# each test a nested subtest closed by its own result line
# (scripts/ktap-check.awk checks the structure, the counts at every level
# and that nothing failed; docs/testing.md)
tr -d '\r' < "$taplog" > "$taplog.clean" && mv "$taplog.clean" "$taplog"
[ -n "$live" ] || cat "$taplog"
ktap=$(awk ${kill_on:+-v killed=1} -f "$here/ktap-check.awk" "$taplog")
krc=$?
echo "$ktap" | grep -v '^ktap: [0-9]' | sed 's/^ktap: FAIL: /run-guest: FAIL: /' >&2
[ $krc -eq 0 ] || fail=1
summary=$(echo "$ktap" | sed -n 's/^ktap: \([0-9].*\)/\1/p')
echo "run-guest: KTAP: $summary" >&2

# --- console -----------------------------------------------------------------
splats='WARNING:|BUG:|Oops|Call Trace:|general protection fault|Kernel panic|kernel BUG at'
splats+='|possible recursive locking|possible circular locking|circular locking dependency'
splats+='|inconsistent lock state|possible irq lock inversion|suspicious RCU usage'
splats+='|DEBUG_LOCKS_WARN_ON|turning off the locking correctness validator|lockdep: |INFO: lockdep'
splats+='|INFO: task .* blocked for more than|rcu_sched detected stalls|rcu_preempt detected stalls'
splats+='|rcu: INFO:|detected stall|soft lockup|hard LOCKUP|watchdog: BUG'
splats+='|KASAN|kasan: bad access|UBSAN|unreferenced object 0x|new suspected memory leaks'
splats+='|list_add corruption|list_del corruption|refcount_t: |Unable to handle kernel'
splats+='|invoked oom-killer|Out of memory|segfault at|double free|stack-protector|stack guard page'
splats+='|trap invalid opcode|invalid opcode:|Bad page state|BUG kmalloc|Object already free|Redzone|Poison overwritten'
tr -d '\r' < "$console" > "$console.clean" && mv "$console.clean" "$console"
if bad=$(grep -En "$splats" "$console"); then
	problem "kernel splats in the console log:"
	echo "$bad" | head -n 60 | sed 's/^/run-guest: splat: /' >&2
fi
[ -n "$kill_on" ] || grep -q 'dmrs-init: all done' "$console" || problem "the guest init did not finish"

[ -n "$keep" ] || rm -f "$work"/*.img "$work/initramfs.cpio.gz"
echo "run-guest: console log: $console (${elapsed}s; $summary)" >&2
if [ $fail -ne 0 ]; then
	echo "run-guest: RESULT: FAIL" >&2
	exit 1
fi
echo "run-guest: RESULT: PASS" >&2
exit 0
