#!/usr/bin/env bash
# Crash-consistency harness for the disk log: boots the guest again and
# again on the same disk images and kills QEMU with SIGKILL while the mirror
# is busy writing (no clean shutdown, no log flush).
#
#   scripts/crash-cycle.sh [--cycles N] [--long] [--impl rs|c] [--module KO]
#                          [--kernel TREE] [--dir DIR] [--keep-going]
#
#   --cycles N   crash cycles (default 5; --long: 20)
#   --impl c     run it against the C dm-mirror + dm-log
#   --module KO  our module (default ./dm_mirror_rs.ko; needed for rs)
#   --dir DIR    work dir: disks/ (the images) and one log dir per boot
#                (default: a fresh mktemp dir, removed on success)
#   --keep-going do not stop at the first failed boot
#
# Boot 0: tests/crash-cycle.sh in setup mode (mirror with a disk log on
# vdc, ext4). Boots 1..N: cycle mode: load the mirror with the same log and
# no sync word, check fewer than all regions are out of sync at load, wait
# for N/N, legs identical, journal replay, fsync'ed data intact, fsck -n,
# then heavy writes; the console marker "dmrs-crash: writing" makes
# run-guest.sh SIGKILL QEMU 1..6 s later (varied per cycle). Last boot:
# verify mode (the same checks, then a clean remove). Prints a line per
# boot with the numbers and exits 0 only if every boot passed and (with 3
# or more cycles) at least one kill left regions dirty on disk, so that a
# partial resync was really tested.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cycles=5
impl=rs
module=$top/dm_mirror_rs.ko
kernel=
dir=
keep_going=
die() { echo "crash-cycle: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--cycles) cycles=$2; shift 2 ;;
	--long) cycles=20; shift ;;
	--impl) impl=$2; shift 2 ;;
	--module) module=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--keep-going) keep_going=1; shift ;;
	-h|--help) sed -n '2,26p' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
done
[ -f "$module" ] || die "no module $module (make)"
tmpdir=
if [ -z "$dir" ]; then
	dir=$(mktemp -d /tmp/dmrs-crash.XXXXXX)
	tmpdir=$dir
fi
mkdir -p "$dir"
dir=$(realpath "$dir")
rm -rf "$dir/disks"
mkdir -p "$dir/disks"

run() { # NAME MODE [run-guest options]
	local name=$1 mode=$2
	shift 2
	"$here/run-guest.sh" ${kernel:+--kernel "$kernel"} --module "$module" --impl "$impl" \
		--tests crash-cycle --append "dmrs.crash=$mode" --disk-dir "$dir/disks" \
		--keep "$dir/$name" --test-timeout 1500 --timeout 1800 "$@" > "$dir/$name.tap" 2> "$dir/$name.err"
}
stat_of() { # NAME KEY: the value of crash-stats KEY= in a boot's KTAP
	sed -n "s/.*crash-stats: .*\\b$2=\\([0-9/]*\\).*/\\1/p" "$dir/$1.tap" | head -n 1
}
report() { # NAME RC SECS
	local v=PASS
	[ "$2" = 0 ] || v=FAIL
	printf 'crash-cycle: %-8s %s %4ss  dirty on disk %s, out of sync at load %s, resync %ss, files %s, raw chunks %s\n' \
		"$1" "$v" "$3" "$(stat_of "$1" dirty_on_disk)" "$(stat_of "$1" out_of_sync_at_load)" \
		"$(stat_of "$1" resync_seconds)" "$(stat_of "$1" files_checked)" "$(stat_of "$1" raw_chunks_checked)"
	if [ "$2" != 0 ]; then
		grep -E '^ *not ok|FAIL' "$dir/$1.tap" "$dir/$1.err" | head -n 20 >&2
		echo "crash-cycle: logs in $dir/$1" >&2
	fi
}

failed=0
kills=0
total_start=$(date +%s)
echo "crash-cycle: impl=$impl, $cycles cycles, work dir $dir"
s=$(date +%s)
run boot0 setup
rc=$?
report boot0 $rc $(($(date +%s) - s))
[ $rc = 0 ] || { echo "crash-cycle: setup failed"; exit 1; }
for i in $(seq 1 "$cycles"); do
	after=$((1 + (i * 3) % 6))     # 1..6 s after the marker
	s=$(date +%s)
	run "cycle$i" cycle --kill-on 'dmrs-crash: writing' --kill-after "$after"
	rc=$?
	report "cycle$i" $rc $(($(date +%s) - s))
	echo "crash-cycle: cycle$i killed ${after}s after the marker"
	# the boot after this kill reads what the kill left on disk
	kills=$((kills + 1))
	if [ $rc != 0 ]; then
		failed=$((failed + 1))
		[ -n "$keep_going" ] || break
	fi
done
if [ $failed = 0 ] || [ -n "$keep_going" ]; then
	s=$(date +%s)
	run verify verify
	rc=$?
	report verify $rc $(($(date +%s) - s))
	[ $rc = 0 ] || failed=$((failed + 1))
fi
# boot K+1 reports what kill K left: count the kills that left dirty regions
partial=0
for b in $(seq 2 "$cycles") verify; do
	[ $b = verify ] || b=cycle$b
	[ -f "$dir/$b.tap" ] || continue
	d=$(stat_of "$b" dirty_on_disk)
	[ -n "$d" ] && [ "$d" -gt 0 ] && partial=$((partial + 1))
done
echo "crash-cycle: $partial of $kills kills left regions dirty on disk (resynced on the next boot)"
# the O_DIRECT writers keep regions busy all the time: a run of 3 or more
# kills where none left a dirty region did not test a partial resync
if [ $failed = 0 ] && [ $kills -ge 3 ] && [ $partial = 0 ]; then
	echo "crash-cycle: FAIL: no kill left a dirty region: the partial resync was never exercised" >&2
	failed=$((failed + 1))
fi
echo "crash-cycle: $failed failed boots, $(($(date +%s) - total_start))s in all"
if [ $failed = 0 ]; then
	[ -n "$tmpdir" ] && rm -rf "$tmpdir"
	echo "crash-cycle: RESULT: PASS"
	exit 0
fi
echo "crash-cycle: RESULT: FAIL (logs in $dir)"
exit 1
