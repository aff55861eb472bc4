#!/usr/bin/env bash
# The dm-mirror-rs benchmark (issue #7): our mirror target against the C
# dm-mirror, md raid1 and the raw legs, in one QEMU/TCG guest on a non-debug
# kernel, plus a small-memory guest for the sequential-write variant.
#
#   scripts/bench.sh [--quick] [--mode disk|cpu|both] [--out DIR] [--keep DIR]
#                    [--reps N] [--runtime SECS] [--no-smallmem]
#                    [--region SECTORS] [--parts io,resync,mem]
#                    [--kernel 6.12|7.3]
#
#   --quick        1 repetition, 3 s runs, memory on the 512 MiB legs only (~5-8 min)
#   --mode disk    legs throttled by QEMU to 100 MiB/s and 2000 IOPS each (default)
#   --mode cpu     legs unthrottled: the guest CPU (TCG) is the limit
#   --mode both    both, one after the other
#   --out DIR      results: DIR/latest.{json,md,png} (default bench/results)
#   --keep DIR     work directory (guest logs, raw results; default build/bench-run)
#   --reps N       repetitions (default 3; the median is reported)
#   --runtime S    fio run time per measurement (default 6 s, plus 1 s ramp)
#   --no-smallmem  skip the small-memory guest
#   --region S     dm region size = md bitmap chunk, in sectors (default 1024)
#   --parts LIST   what the main guest measures (default io,resync,mem)
#   --kernel V     the guest kernel: 6.12 (default, or $KERNEL) or 7.3; 7.3's
#                  results go to bench/results/linux-7.3/ and its work
#                  directory is build/bench-run-7.3 unless --out/--keep say
#                  otherwise (make bench KERNEL=7.3)
#
# Steps: builds the bench kernel (scripts/build-kernel.sh bench V, cached),
# builds dm_mirror_rs.ko against it in build/bench-module/, packs an
# initramfs (scripts/mkinitramfs.sh --fio --init scripts/bench-guest.sh
# --bin mdadm), boots the guest(s), and runs scripts/bench-report.py on the
# raw results (matplotlib for the chart comes from PyPI into a venv under
# ~/.cache/dm-mirror-rs/bench-venv).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${DMRS_CACHE:-$HOME/.cache/dm-mirror-rs}
export PATH="$HOME/.cargo/bin:$PATH"

quick=0
modes=disk
out=
work=
kver=${KERNEL:-6.12}
reps=
runtime=
smallmem=1
region=1024       # sectors (512 KiB): dm region size = md bitmap chunk
parts=io,resync,mem
die() { echo "bench: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1; shift ;;
	--mode) modes=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--keep) work=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--runtime) runtime=$2; shift 2 ;;
	--no-smallmem) smallmem=0; shift ;;
	--region) region=$2; shift 2 ;;
	--parts) parts=$2; shift 2 ;;
	--kernel) kver=$2; shift 2 ;;
	-h|--help) sed -n '2,32p' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
done
case "$modes" in disk|cpu) ;; both) modes="disk cpu" ;; *) die "--mode disk|cpu|both" ;; esac
case "$kver" in
6.12) : "${out:=$repo/bench/results}" "${work:=$repo/build/bench-run}" ;;
7.3) : "${out:=$repo/bench/results/linux-7.3}" "${work:=$repo/build/bench-run-7.3}" ;;
*) die "--kernel $kver: 6.12 or 7.3" ;;
esac
if [ $quick = 1 ]; then
	: "${reps:=1}" "${runtime:=3}"
	memsizes=leg
	dd_mib=256
else
	: "${reps:=3}" "${runtime:=6}"
	memsizes=leg,big,many
	dd_mib=384
fi
ramp=1
fio_mib=448       # fio working set on each device
leg_mib=512       # leg size; the resync copies all of it
big_gib=16        # legs for the memory measurement (sparse, unthrottled)
small_mem=128M    # RAM of the small-memory guest
main_mem=1024M    # fio and its ~80 MB of libraries live in the initramfs
throttle=throttling.bps-total=104857600,throttling.iops-total=2000

t_start=$(date +%s)
say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------ host setup ----
need=()
command -v fio >/dev/null || need+=(fio)
command -v mdadm >/dev/null || need+=(mdadm)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu)
[ -f /usr/src/linux-source-6.12.tar.xz ] || need+=(linux-source)
if [ ${#need[@]} -gt 0 ]; then
	say "missing: ${need[*]}: running scripts/setup-host.sh"
	"$here/setup-host.sh" >&2
fi

venv=$cache/bench-venv
py=python3
if "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
	py=$venv/bin/python
else
	say "installing matplotlib from PyPI into $venv"
	if python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q matplotlib >&2; then
		py=$venv/bin/python
	else
		say "warning: no matplotlib (the report will have no chart)"
	fi
fi

# --------------------------------------------------------- kernel, module ----
say "Linux $kver bench kernel (scripts/build-kernel.sh bench $kver; cached after the first build)"
kdir=$("$here/build-kernel.sh" bench "$kver" | tail -n 1)
[ -f "$kdir/arch/x86/boot/bzImage" ] || die "no bench kernel at $kdir"
[ -f "$kdir/drivers/md/dm-mirror.ko" ] || die "$kdir has no dm-mirror.ko"

modsrc=$repo/build/bench-module
[ "$kver" = 6.12 ] || modsrc=$modsrc-$kver
say "building dm_mirror_rs.ko against the bench kernel in $modsrc"
ko=$(KERNEL=$kver "$here/build-module-copy.sh" "$kdir" "$modsrc" "$work.module-build.log") ||
	die "module build failed"
git_rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo dirty || echo clean)

# -------------------------------------------------------------- initramfs ----
rm -rf "$work"
mkdir -p "$work"
mv "$work.module-build.log" "$work/module-build.log"
say "packing initramfs (main guest: with fio and mdadm; small guest: no fio)"
"$here/mkinitramfs.sh" --fio --init "$here/bench-guest.sh" --bin "$(command -v mdadm)" \
	"$work/initramfs-main.cpio.gz" "$kdir" "$ko" 2> "$work/initramfs-main.log" ||
	{ cat "$work/initramfs-main.log" >&2; die "mkinitramfs failed"; }
if [ $smallmem = 1 ]; then
	"$here/mkinitramfs.sh" --init "$here/bench-guest.sh" --bin "$(command -v mdadm)" \
		"$work/initramfs-small.cpio.gz" "$kdir" "$ko" 2> "$work/initramfs-small.log" ||
		{ cat "$work/initramfs-small.log" >&2; die "mkinitramfs failed"; }
fi

# host load average, sampled every 5 s while the guests run
loadlog=$work/loadavg.txt
( while :; do echo "$(date +%s) $(cat /proc/loadavg)"; sleep 5; done ) > "$loadlog" &
sampler=$!
tailer=
cleanup() {
	kill "$sampler" 2>/dev/null || true
	[ -n "$tailer" ] && kill "$tailer" 2>/dev/null || true
}
trap cleanup EXIT

# boot NAME MEM INITRD THROTTLE(0|1) TIMEOUT APPEND DISK...  (DISK = serial:size)
boot() {
	local name=$1 mem=$2 initrd=$3 thr=$4 tmo=$5 append=$6 d serial size img opts start rc
	shift 6
	local dir=$work/$name
	mkdir -p "$dir"
	local qemu=(qemu-system-x86_64 -machine q35 -accel tcg -smp 2 -m "$mem" -nodefaults -nographic
		-monitor none -no-reboot -kernel "$kdir/arch/x86/boot/bzImage" -initrd "$initrd"
		-append "console=ttyS0 loglevel=4 panic=-1 slab_nomerge $append"
		-serial "file:$dir/console.log" -serial "file:$dir/progress.log")
	for d in "$@"; do
		serial=${d%%:*}
		size=${d#*:}
		img=$dir/$serial.img
		rm -f "$img"
		truncate -s "$size" "$img"
		opts=
		case "$serial" in leg*) [ "$thr" = 1 ] && opts=",$throttle" ;; esac
		qemu+=(-drive "file=$img,if=none,id=$serial,format=raw,cache=unsafe$opts"
			-device "virtio-blk-pci,drive=$serial,serial=$serial")
	done
	: > "$dir/progress.log"
	say "booting guest '$name' (TCG, -smp 2, $mem; timeout ${tmo}s): $append"
	tail -n +1 -F "$dir/progress.log" > >(sed -u "s/^/[bench $name] /" >&2) 2>/dev/null &
	tailer=$!
	start=$(date +%s)
	rc=0
	timeout --foreground -k 10 "$tmo" "${qemu[@]}" < /dev/null > "$dir/qemu.out" 2>&1 || rc=$?
	sleep 1
	kill "$tailer" 2>/dev/null || true
	tailer=
	say "guest '$name' ended after $(( $(date +%s) - start ))s (qemu status $rc)"
	echo "$(( $(date +%s) - start ))" > "$dir/wall_seconds"
	mkdir -p "$dir/results"
	if ! tar -xf "$dir/results.img" -C "$dir/results" 2>/dev/null || [ ! -f "$dir/results/info.txt" ]; then
		say "error: guest '$name' left no results (see $dir/console.log)"
		tail -n 30 "$dir/console.log" >&2
		rm -f "$dir"/*.img
		return 1
	fi
	rm -f "$dir"/*.img
	grep -q . "$dir/results/errors.txt" 2>/dev/null && { say "guest '$name' reported errors:"; cat "$dir/results/errors.txt" >&2; }
	return 0
}

common="bench.reps=$reps bench.runtime=$runtime bench.ramp=$ramp bench.region=$region"
failed=0
runs=()
for mode in $modes; do
	thr=0
	[ "$mode" = disk ] && thr=1
	boot "main-$mode" "$main_mem" "$work/initramfs-main.cpio.gz" $thr 3600 \
		"$common bench.size=$fio_mib bench.parts=$parts bench.memsizes=$memsizes" \
		leg0:${leg_mib}M leg1:${leg_mib}M big0:${big_gib}G big1:${big_gib}G results:64M || failed=1
	runs+=("main-$mode")
	if [ $smallmem = 1 ]; then
		boot "small-$mode" "$small_mem" "$work/initramfs-small.cpio.gz" $thr 1200 \
			"$common bench.size=$dd_mib bench.parts=dd" \
			leg0:${leg_mib}M leg1:${leg_mib}M results:16M || failed=1
		runs+=("small-$mode")
	fi
done
cleanup
trap - EXIT

# ----------------------------------------------------------------- report ----
cat > "$work/meta.txt" <<EOF
kernel $kver
quick $quick
modes $modes
reps $reps
runtime $runtime
ramp $ramp
fio_mib $fio_mib
leg_mib $leg_mib
big_gib $big_gib
region_sectors $region
small_mem $small_mem
main_mem $main_mem
throttle $throttle
git $git_rev $git_dirty
host_cpus $(nproc)
host_os $(. /etc/os-release && echo "$PRETTY_NAME")
host_kernel $(uname -r)
qemu $(qemu-system-x86_64 --version | head -n 1)
started $t_start
ended $(date +%s)
EOF
mkdir -p "$out"
say "report (scripts/bench-report.py)"
"$py" "$here/bench-report.py" "$work" "$out" "${runs[@]}" >&2 || die "report failed"
say "done in $(( $(date +%s) - t_start ))s: $out/latest.md, $out/latest.json, $out/latest.png"
cat "$out/latest.md"
[ $failed = 0 ] || die "a guest failed (see $work)"
