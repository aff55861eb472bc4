#!/bin/sh
# The seed's reproducer, shared by seed.sh (plain mirror under failslab) and
# dmraid-seed.sh (the dmraid NVIDIA set). Source after lib.sh.

written=0 # MiB written through the filesystem so far
round=0

# seed_fill MNT DMNAME LABEL: one round of the seed's workload: `cat
# /dev/zero` into a file on MNT until the filesystem is full, dd with
# fdatasync for the last bit, sync, then delete and sync again. Adds to
# $written and $round; fails if the round wrote 100 MiB or less.
seed_fill() {
	local mib
	cat /dev/zero > $1/fill 2> /dev/null
	dd if=/dev/zero of=$1/tail bs=64k conv=fdatasync 2> /dev/null
	sync
	round=$((round + 1))
	mib=$((($(stat -c %s $1/fill) + $(stat -c %s $1/tail)) / 1048576))
	written=$((written + mib))
	tap_diag "round $round ($3): $mib MiB (total $written MiB) $(mirror_status $2)" \
		"$([ "$DMRS_IMPL" = c ] || dmsetup message $2 0 stats 2> /dev/null)"
	rm -f $1/fill $1/tail
	sync
	[ "$mib" -gt 100 ] || fail "round $round wrote only $mib MiB"
}

# seed_fallbacks_used DMNAME: our region pool's GFP_NOIO fallback ran at
# least once (dmsetup message DMNAME 0 stats).
seed_fallbacks_used() {
	local s f
	s=$(dmsetup message $1 0 stats)
	tap_diag "$s"
	f=$(echo "$s" | tr ' ' '\n' | sed -n 's/^region_alloc_fallback=//p')
	[ "${f:-0}" -gt 0 ] || fail "no GFP_NOIO fallback happened: $s"
}

# Our region pool's test fault point (a fault_attr of the kernel's
# fault-injection framework, under debugfs): fail_atomic_every N fails
# every N-th atomic region allocation; N = 0 turns it off.
DMRS_FAULT=/sys/kernel/debug/dm_mirror_rs/fail_region_atomic
fail_atomic_every() {
	[ -d $DMRS_FAULT ] || fail "no $DMRS_FAULT" || return 1
	if [ "$1" = 0 ]; then
		echo 0 > $DMRS_FAULT/probability
		return
	fi
	echo 0 > $DMRS_FAULT/verbose && echo "$1" > $DMRS_FAULT/interval &&
		echo -1 > $DMRS_FAULT/times && echo 100 > $DMRS_FAULT/probability
}
