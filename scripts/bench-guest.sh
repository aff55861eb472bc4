#!/bin/sh
# PID 1 of the benchmark guest (packed as /init by scripts/bench.sh through
# `mkinitramfs.sh --init`). Runs the measurements the kernel command line
# asks for and leaves the raw results (fio JSON, timings, /proc snapshots)
# as a tar archive on the virtio disk with serial "results"; the host
# (scripts/bench-report.py) turns them into numbers. Progress lines go to
# /dev/ttyS1.
#
# Command line switches:
#   bench.parts=io,resync,mem,dd   what to run (dd: the small-memory variant)
#   bench.impls=raw,c,rs,md        implementations, in this order per repetition
#   bench.jobs=seqwrite,...        fio jobs (seqwrite randwrite seqread randread mixed)
#   bench.reps=N                   repetitions of every measurement
#   bench.runtime=S bench.ramp=S   fio time-based run time and ramp, seconds
#   bench.size=MIB                 fio working-set size (and dd size), MiB
#   bench.region=SECTORS           dm region size = md bitmap chunk
#   bench.memsizes=leg,big,many    device sizes for the memory measurement
#                                  (many: the big legs in 8 KiB regions)
#
# Disks are found by virtio serial: leg0, leg1 (the mirror legs), big0,
# big1 (large sparse legs for the memory measurement), results.

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/shm /run/mdadm /var/lock
mount -t tmpfs tmpfs /dev/shm 2>/dev/null
echo > /proc/sys/kernel/modprobe 2>/dev/null
hostname dmrs-bench

export DM_DISABLE_UDEV=1
export DMRS_GUEST=1 DMRS_TAP=/dev/null DMRS_TAP_COUNT=/tmp/tap.count DMRS_IMPL=rs DMRS_TEST=bench
. /tests/lib.sh

parts=io,resync,mem
impls=raw,c,rs,md
jobs=seqwrite,randwrite,seqread,randread,mixed
reps=3
runtime=6
ramp=1
size=448
region=1024
memsizes=leg,big,many
for w in $(cat /proc/cmdline); do
	case "$w" in
	bench.parts=*) parts=${w#*=} ;;
	bench.impls=*) impls=${w#*=} ;;
	bench.jobs=*) jobs=${w#*=} ;;
	bench.reps=*) reps=${w#*=} ;;
	bench.runtime=*) runtime=${w#*=} ;;
	bench.ramp=*) ramp=${w#*=} ;;
	bench.size=*) size=${w#*=} ;;
	bench.region=*) region=${w#*=} ;;
	bench.memsizes=*) memsizes=${w#*=} ;;
	esac
done
parts=$(echo "$parts" | tr , ' ')
impls=$(echo "$impls" | tr , ' ')
jobs=$(echo "$jobs" | tr , ' ')
memsizes=$(echo "$memsizes" | tr , ' ')

prog=/dev/ttyS1
stty -F $prog raw -echo 2>/dev/null
R=/tmp/res
mkdir -p $R/io $R/mem $R/dd
T0=$(cut -d' ' -f1 /proc/uptime)
p() { echo "[guest $(cut -d' ' -f1 /proc/uptime)s] $*" > $prog; }
err() { p "ERROR: $*"; echo "$*" >> $R/errors.txt; }
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }

bydisk() { # SERIAL: /dev/vdX whose virtio serial is SERIAL
	local s
	for s in /sys/block/vd*/serial; do
		[ -r "$s" ] || continue
		[ "$(cat "$s")" = "$1" ] && { echo "/dev/$(basename "$(dirname "$s")")"; return 0; }
	done
	return 1
}
LEG0=$(bydisk leg0)
LEG1=$(bydisk leg1)
BIG0=$(bydisk big0)
BIG1=$(bydisk big1)
RES=$(bydisk results)

# The legs are virtio-blk over host files, which the guest sees as
# rotational (queue/rotational=1). They have no heads to move, and the read
# policy keeps a sequential stream on one rotational leg, so every leg is
# marked non-rotational here, before any target (raw, C, ours or md) is
# created: all implementations see the same legs.
nonrot() {
	local d
	for d in "$@"; do
		[ -n "$d" ] && [ -w /sys/block/${d#/dev/}/queue/rotational ] || continue
		echo 0 > /sys/block/${d#/dev/}/queue/rotational
	done
}
nonrot $LEG0 $LEG1 $BIG0 $BIG1
rotflags() { # the rotational flag of every leg, as read back
	local d
	for d in "$@"; do
		[ -n "$d" ] && printf '%s=%s ' "${d#/dev/}" "$(cat /sys/block/${d#/dev/}/queue/rotational)"
	done
}

{
	echo "kernel $(uname -r)"
	echo "cpus $(grep -c ^processor /proc/cpuinfo)"
	echo "cmdline $(cat /proc/cmdline)"
	grep -E '^(MemTotal|MemFree):' /proc/meminfo
	echo "legs $LEG0 $LEG1 $(blockdev --getsz "$LEG0") sectors"
	echo "legs_rotational $(rotflags $LEG0 $LEG1 $BIG0 $BIG1)"
	[ -n "$BIG0" ] && echo "big $BIG0 $BIG1 $(blockdev --getsz "$BIG0") sectors"
	echo "fio $(fio --version 2>/dev/null)"
	echo "mdadm $(mdadm --version 2>&1)"
} > $R/info.txt
p "start: parts=[$parts] impls=[$impls] reps=$reps runtime=${runtime}s size=${size}MiB region=$region legs $LEG0 $LEG1 rotational: $(rotflags $LEG0 $LEG1 $BIG0 $BIG1)"

# ------------------------------------------------------------ devices ----
# setup IMPL [sync|nosync|resync] [LEG0 LEG1]: make the device, set DEV
# (the raw legs: DEV empty). nosync/--assume-clean unless "sync".
mdopts() { echo "--run --level=1 --raid-devices=2 --metadata=1.2 --bitmap=internal --bitmap-chunk=$((region / 2))K"; }
setup() {
	local impl=$1 how=${2:-nosync} a=${3:-$LEG0} b=${4:-$LEG1} sz
	sz=$(blockdev --getsz "$a")
	DEV=
	case $impl in
	raw) return 0 ;;
	c)
		unload_rs >/dev/null 2>&1
		load_c || return 1
		dmsetup create bench --table "0 $sz mirror core 2 $region $how 2 $a 0 $b 0" || return 1
		DEV=/dev/mapper/bench ;;
	rs)
		unload_c >/dev/null 2>&1
		load_rs || return 1
		dmsetup create bench --table "0 $sz mirror core 2 $region $how 2 $a 0 $b 0" || return 1
		DEV=/dev/mapper/bench ;;
	md)
		load_ko raid1 || return 1
		echo 4000000 > /proc/sys/dev/raid/speed_limit_max
		mdadm --zero-superblock "$a" "$b" >/dev/null 2>&1
		if [ "$how" = sync ]; then
			mdadm --create /dev/md0 $(mdopts) "$a" "$b" < /dev/null > /tmp/mdadm.log 2>&1 || { cat /tmp/mdadm.log > $prog; return 1; }
		else
			mdadm --create /dev/md0 $(mdopts) --assume-clean "$a" "$b" < /dev/null > /tmp/mdadm.log 2>&1 || { cat /tmp/mdadm.log > $prog; return 1; }
		fi
		DEV=/dev/md0 ;;
	esac
	[ -b "$DEV" ] || { err "$impl: $DEV is not a block device"; return 1; }
}
teardown() {
	case $1 in
	c|rs) rmdev bench || err "cannot remove dm device" ;;
	md)
		mdadm --stop /dev/md0 >/dev/null 2>&1 || err "mdadm --stop failed"
		mdadm --zero-superblock ${2:-$LEG0} ${3:-$LEG1} >/dev/null 2>&1 ;;
	esac
	return 0
}
unload_all() {
	unload_rs >/dev/null 2>&1
	unload_c >/dev/null 2>&1
	unload_mod raid1 md_mod >/dev/null 2>&1
	return 0
}

# ---------------------------------------------------------------- fio ----
# jobfile JOB FILE...: a fio job file running JOB on every FILE at once,
# each FILE its own reporting group
jobfile() {
	local job=$1 f first=1
	shift
	printf '[global]\nioengine=libaio\ndirect=1\ntime_based=1\nruntime=%s\nramp_time=%s\nsize=%sm\n' \
		"$runtime" "$ramp" "$size"
	printf 'randrepeat=0\nnorandommap=1\ngroup_reporting=1\n'
	case $job in
	seqwrite) printf 'rw=write\nbs=1M\niodepth=8\nnumjobs=1\n' ;;
	randwrite) printf 'rw=randwrite\nbs=4k\niodepth=16\nnumjobs=1\n' ;;
	seqread) printf 'rw=read\nbs=1M\niodepth=8\nnumjobs=1\n' ;;
	randread) printf 'rw=randread\nbs=4k\niodepth=4\nnumjobs=4\n' ;;
	mixed) printf 'rw=randrw\nrwmixread=70\nbs=4k\niodepth=4\nnumjobs=4\n' ;;
	*) return 1 ;;
	esac
	for f in "$@"; do
		printf '[%s]\nfilename=%s\n' "$(basename "$f")" "$f"
		[ $first = 1 ] || printf 'new_group=1\n'
		first=0
	done
}
# legstat: "leg0 <fields of /sys/block/<leg0>/stat>" and the same for leg1
# (field 1 read I/Os, 3 read sectors, 5 write I/Os, 7 write sectors); the
# host takes the deltas around each job for the per-leg read split
legstat() {
	echo "leg0 $(cat /sys/block/${LEG0#/dev/}/stat)"
	echo "leg1 $(cat /sys/block/${LEG1#/dev/}/stat)"
}
runfio() { # IMPL JOB REP FILE...
	local impl=$1 job=$2 rep=$3 out
	shift 3
	out=$R/io/$impl-$job-r$rep
	jobfile "$job" "$@" > $out.fio
	head -n 1 /proc/stat > $out.stat0
	legstat > $out.legstat0
	fio --output-format=json --output=$out.json $out.fio > $out.err 2>&1 || err "fio $impl $job rep $rep failed: $(tail -n 2 $out.err)"
	legstat > $out.legstat1
	head -n 1 /proc/stat > $out.stat1
	p "  $impl $job rep $rep: $(grep -o '"iops" : [0-9.]*' $out.json | awk '{s += $3} END {printf "%.0f", s}') IOPS (sum of groups, r+w)"
}

part_io() {
	local rep impl job
	p "io: prefilling both legs ($size MiB each, at once)"
	dd if=/dev/zero of=$LEG0 bs=1M count=$size oflag=direct 2>/dev/null &
	dd if=/dev/zero of=$LEG1 bs=1M count=$size oflag=direct 2>/dev/null
	wait
	rep=1
	while [ $rep -le $reps ]; do
		for impl in $impls; do
			p "io rep $rep/$reps: $impl"
			if ! setup $impl nosync; then
				err "setup $impl failed"
				teardown $impl
				continue
			fi
			for job in $jobs; do
				if [ $impl = raw ]; then
					runfio raw $job $rep $LEG0 $LEG1
				else
					runfio $impl $job $rep $DEV
				fi
			done
			teardown $impl
		done
		rep=$((rep + 1))
	done
	unload_all
}

# ------------------------------------------------------------- resync ----
# timestamps are /proc/uptime strings (10 ms resolution); the host subtracts
part_resync() {
	local rep impl t0 t1 r n bytes seen
	rep=1
	while [ $rep -le $reps ]; do
		for impl in $impls; do
			[ $impl = raw ] && continue
			p "resync rep $rep/$reps: $impl"
			t0=$(cut -d' ' -f1 /proc/uptime)
			if ! setup $impl sync; then
				err "resync setup $impl failed"
				teardown $impl
				continue
			fi
			n=0
			if [ $impl = md ]; then
				bytes=$(( $(cat /sys/block/md0/size) * 512 ))
				seen=
				while :; do
					r=$(cat /sys/block/md0/md/sync_action)
					[ "$r" != idle ] && seen=1
					[ "$r" = idle ] && { [ -n "$seen" ] || [ $n -ge 50 ]; } && break
					n=$((n + 1))
					[ $n -ge 6000 ] && { err "md resync did not finish"; break; }
					sleep 0.1
				done
				t1=$(cut -d' ' -f1 /proc/uptime)
				r="$(cat /sys/block/md0/md/sync_completed) $(grep -A2 '^md0' /proc/mdstat | tr '\n' ' ')"
			else
				bytes=$(( $(blockdev --getsz $DEV) * 512 ))
				while :; do
					r=$(sync_ratio bench)
					[ -n "$r" ] && [ "${r%/*}" = "${r#*/}" ] && break
					n=$((n + 1))
					[ $n -ge 6000 ] && { err "$impl resync did not finish: $r"; break; }
					sleep 0.1
				done
				t1=$(cut -d' ' -f1 /proc/uptime)
			fi
			echo "$impl $rep $t0 $t1 $bytes $r" >> $R/resync.txt
			p "  $impl: $bytes bytes in sync, $t0 -> $t1 ($r)"
			teardown $impl
		done
		rep=$((rep + 1))
	done
	unload_all
}

# ------------------------------------------------------------- memory ----
snap() { # DIR NAME
	sync
	echo 3 > /proc/sys/vm/drop_caches
	sleep 1
	cat /proc/meminfo > $1/$2.meminfo
	cat /proc/slabinfo > $1/$2.slabinfo
	cat /proc/modules > $1/$2.modules
}
part_mem() {
	local impl sz a b d region=$region io_region=$region
	# warm-up: a device of each kind once, with writes, before measuring,
	# so that shared caches (biovecs, kcopyd jobs, dm-io) have grown before
	# the first measured device and are not charged to it
	for impl in $impls; do
		[ $impl = raw ] && continue
		setup $impl nosync $LEG0 $LEG1 || { err "memory warm-up $impl failed"; teardown $impl $LEG0 $LEG1; continue; }
		fio --name=warm --filename=$DEV --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
			--iodepth=16 --time_based --runtime=2 --output=/dev/null > /dev/null 2>&1
		teardown $impl $LEG0 $LEG1
		unload_all
	done
	for sz in $memsizes; do
		region=$io_region
		case $sz in
		leg) a=$LEG0 b=$LEG1 ;;
		big) a=$BIG0 b=$BIG1 ;;
		# the big legs cut into 8 KiB regions: 2 Mi regions, so the
		# per-region structures (bitsets, hash buckets) dominate
		many) a=$BIG0 b=$BIG1 region=16 ;;
		esac
		[ -n "$a" ] && [ -b "$a" ] || { err "no disks for memory size $sz"; continue; }
		for impl in $impls; do
			[ $impl = raw ] && continue
			# mdadm picks its own bitmap chunk for that many chunks
			[ $sz = many ] && [ $impl = md ] && continue
			d=$R/mem/$impl-$sz
			mkdir -p $d
			echo "$(blockdev --getsz $a)" > $d/sectors
			echo $region > $d/region
			p "memory: $impl on $sz legs ($(( $(blockdev --getsz $a) / 2048 )) MiB)"
			unload_all
			snap $d 0-base
			case $impl in
			c) load_c ;;
			rs) load_rs ;;
			md) load_ko raid1 ;;
			esac
			snap $d 1-loaded
			if ! setup $impl nosync $a $b; then
				err "memory setup $impl $sz failed"
				teardown $impl $a $b
				continue
			fi
			sleep 1
			snap $d 2-created
			# 4 KiB random writes spread over the whole device: touches
			# many regions (region hash entries, bitmap pages)
			fio --name=touch --filename=$DEV --ioengine=libaio --direct=1 --rw=randwrite \
				--bs=4k --iodepth=16 --time_based --runtime=5 --norandommap --randrepeat=0 \
				--output-format=json --output=$d/touch.json > /dev/null 2>&1 || err "memory fio $impl $sz failed"
			snap $d 3-written
			[ $impl = rs ] && dmsetup message bench 0 stats > $d/rs-stats.txt 2>&1
			sleep 3
			snap $d 4-settled
			teardown $impl $a $b
			snap $d 5-removed
			unload_all
			snap $d 6-unloaded
		done
	done
}

# ---------------------------------------- small-memory sequential write ----
# GNU dd, 1 MiB blocks: O_DIRECT (QD1) and buffered + fdatasync (page cache
# writeback in a small guest). Raw: both legs written at once.
part_dd() {
	local rep impl kind flags
	rep=1
	while [ $rep -le $reps ]; do
		for impl in $impls; do
			p "dd rep $rep/$reps: $impl"
			if ! setup $impl nosync; then
				err "dd setup $impl failed"
				teardown $impl
				continue
			fi
			for kind in direct buffered; do
				case $kind in
				direct) flags=oflag=direct ;;
				buffered) flags=conv=fdatasync ;;
				esac
				if [ $impl = raw ]; then
					/usr/bin/dd if=/dev/zero of=$LEG0 bs=1M count=$size $flags 2> $R/dd/$impl-$kind-r$rep-leg0.txt &
					/usr/bin/dd if=/dev/zero of=$LEG1 bs=1M count=$size $flags 2> $R/dd/$impl-$kind-r$rep-leg1.txt
					wait
				else
					/usr/bin/dd if=/dev/zero of=$DEV bs=1M count=$size $flags 2> $R/dd/$impl-$kind-r$rep.txt ||
						err "dd $impl $kind failed"
				fi
				echo 3 > /proc/sys/vm/drop_caches
				p "  $impl $kind: $(tail -n 1 $R/dd/$impl-$kind-r$rep*.txt | grep copied | sed 's/.*copied, //' | tr '\n' ' ')"
			done
			teardown $impl
		done
		rep=$((rep + 1))
	done
	grep -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo > $R/dd/meminfo-end.txt
	unload_all
}

for part in $parts; do
	p "=== part $part"
	part_$part
done

T1=$(cut -d' ' -f1 /proc/uptime)
echo "guest_seconds $T0 $T1" >> $R/info.txt
dmesg > $R/dmesg.txt
p "writing results to $RES"
tar -cf "$RES" -C $R . && sync
p "bench done"
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
reboot -f
