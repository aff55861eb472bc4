#!/bin/sh
# Disk-log compatibility between the C dm-mirror and the module under test,
# both ways, in one boot (with dmrs.impl=c the "other" module is C too):
# 1. C writes a log (sync table, resync, writes, clean remove); the other
#    module loads the same log with no sync word: N/N at once, nothing is
#    copied (a marker on leg 1 survives), the data reads back.
# 2. The same the other way round.
# 3. A log with dirty regions written by C is resynced by the other module:
#    while a write is in flight (leg 1 held suspended) C's on-disk log shows
#    exactly that region dirty; that snapshot, with three more regions
#    cleared by hand, is put back after a clean remove, leg 1 is scribbled
#    over in those regions (the write that never reached it): the other
#    module starts at N-4 (or fewer, if the write's own regions were not
#    yet cleaned in the snapshot), copies only those regions (a marker in a clean
#    region survives) and ends N/N with the legs identical.
# 4. The same the other way round.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/disklog-lib.sh"

RS=128                 # 64 KiB regions
L=8000                 # 63 regions, the last one 64 sectors
N=63
M=dmrs_compat
skip_without_c
OTHER=$DMRS_IMPL       # rs, or c with dmrs.impl=c
load_impl() { if [ "$1" = c ]; then load_c; else load_ko "$DMRS_RS_KO"; fi; }
unload_impl() { if [ "$1" = c ]; then unload_c; else unload_mod "$(rs_modname)"; fi; }
name_of() { if [ "$1" = c ]; then echo C; else echo "$(basename "$DMRS_RS_KO" .ko)"; fi; }

check "linear leg l1 over vdb" mklinear dmrs_l1 /dev/vdb || tap_end
LEG1=/dev/mapper/dmrs_l1
randfile /tmp/seed 4
check "leg 0 gets 4 MiB random" dd if=/tmp/seed of=/dev/vda bs=1M oflag=direct
dd if=/dev/urandom of=/tmp/mark bs=64k count=1 2> /dev/null
TSYNC="0 $L mirror disk 3 /dev/vdc $RS sync 2 /dev/vda 0 $LEG1 0"
TDEF="0 $L mirror disk 2 /dev/vdc $RS 2 /dev/vda 0 $LEG1 0"

# write_log A TAG: with A, a fresh log, a full resync and 256 KiB written at
# sector 1024 (/tmp/data.TAG); leaves A loaded and the mirror up
write_log() {
	local a=$1 tag=$2
	check "$tag: leg 1 zeroed" dd if=/dev/zero of=/dev/vdb bs=1M count=4 oflag=direct || return 1
	check "$tag: log wiped" wipe_log /dev/vdc || return 1
	check "$tag: load $(name_of $a)" load_impl $a || return 1
	check "$tag: $(name_of $a) creates: $TSYNC" mkmirror $M "$TSYNC" || return 1
	check "$tag: $(name_of $a) resyncs to $N/$N" wait_sync $M 240 || return 1
	dd if=/dev/urandom of=/tmp/data.$tag bs=64k count=4 2> /dev/null
	check "$tag: $(name_of $a) writes 256 KiB at sector 1024" put_at /tmp/data.$tag /dev/mapper/$M 1024
}

# clean_handoff A B TAG
clean_handoff() {
	local a=$1 b=$2 tag=$3
	write_log $a $tag || return 1
	check "$tag: remove" rmdev $M
	check "$tag: unload $(name_of $a)" unload_impl $a
	check "$tag: $(name_of $a) left a clean log for $N regions" log_all_clean /dev/vdc $N
	check "$tag: legs identical" legs_identical /dev/vda /dev/vdb $L
	check "$tag: marker on leg 1, region 5" put_at /tmp/mark /dev/vdb $((5 * RS))
	check "$tag: load $(name_of $b)" load_impl $b || return 1
	check "$tag: $(name_of $b) loads the log (leg 1 held): $TDEF" create_held $M "$TDEF" dmrs_l1 || return 1
	check "$tag: $(name_of $b) starts at $N/$N" held_ratio_is $N/$N
	check "$tag: resume leg 1" dmsetup resume dmrs_l1
	sleep 2
	check "$tag: still $N/$N" ratio_is $M $N/$N
	check "$tag: nothing copied: the marker is still on leg 1" is_at /tmp/mark /dev/vdb $((5 * RS))
	check "$tag: $(name_of $b) reads the data $(name_of $a) wrote" is_at /tmp/data.$tag /dev/mapper/$M 1024
	check "$tag: remove" rmdev $M
	check "$tag: unload $(name_of $b)" unload_impl $b
	check "$tag: log still clean" log_all_clean /dev/vdc $N
	check "$tag: restore leg 1's region 5" copy_region /dev/vda /dev/vdb $((5 * RS)) $RS
}

# dirty_handoff A B TAG
W=30                   # the region written while leg 1 is held
EXTRA="40 41 62"       # cleared by hand as well
KEEP=20                # a clean region with a marker on leg 1
dirty_handoff() {
	local a=$1 b=$2 tag=$3 p i bits want r
	write_log $a $tag || return 1
	dd if=/dev/urandom of=/tmp/w.$tag bs=64k count=1 2> /dev/null
	check "$tag: suspend leg 1" dmsetup suspend dmrs_l1 || return 1
	put_at /tmp/w.$tag /dev/mapper/$M $((W * RS)) &
	p=$!
	i=0
	bits=
	while [ $i -lt 150 ]; do
		bits=$(log_bits /dev/vdc $N)
		[ "${bits:$W:1}" = 0 ] && break
		sleep 0.2
		i=$((i + 1))
	done
	dd if=/dev/vdc of=/tmp/snap.$tag bs=4096 count=1 iflag=direct 2> /dev/null
	tap_diag "$tag: log bits while a write to region $W is in flight: $bits"
	check "$tag: $(name_of $a) marked region $W dirty on disk before writing it" [ "${bits:$W:1}" = 0 ]
	# besides W only the regions of the 256 KiB write (8..11) may still be
	# dirty (not yet cleaned)
	check "$tag: no other region dirty" [ "$(zeros_at "$(set_bits "$bits" 8 9 10 11)")" = $W ]
	check "$tag: resume leg 1" dmsetup resume dmrs_l1
	check "$tag: the write completed" wait $p
	check "$tag: remove" rmdev $M
	check "$tag: unload $(name_of $a)" unload_impl $a
	check "$tag: the log is clean after the remove" log_all_clean /dev/vdc $N
	check "$tag: legs identical" legs_identical /dev/vda /dev/vdb $L
	# the crash: the log as it was mid-write, and leg 1 never got the write
	check "$tag: put the mid-write log snapshot back" dd if=/tmp/snap.$tag of=/dev/vdc bs=4096 oflag=direct
	check "$tag: clear regions $EXTRA in the log as well" log_write_bits /dev/vdc "$(clear_bits "$(log_bits /dev/vdc $N)" $EXTRA)"
	CLEAN=$(ones_in "$(log_bits /dev/vdc $N)")
	tap_diag "$tag: crafted log: $(zeros_at "$(log_bits /dev/vdc $N)") dirty"
	check "$tag: the log has at least 4 dirty regions ($((N - CLEAN)))" [ "$CLEAN" -le $((N - 4)) ]
	for r in $W $EXTRA; do
		dd if=/dev/urandom of=/dev/vdb bs=512 seek=$((r * RS)) count=32 oflag=direct 2> /dev/null
	done
	check "$tag: leg 1 differs in the dirty regions" legs_differ /dev/vda /dev/vdb $L
	check "$tag: marker on leg 1, region $KEEP" put_at /tmp/mark /dev/vdb $((KEEP * RS))
	check "$tag: load $(name_of $b)" load_impl $b || return 1
	check "$tag: $(name_of $b) loads the dirty log (leg 1 held)" create_held $M "$TDEF" dmrs_l1 || return 1
	check "$tag: $(name_of $b) starts at $CLEAN/$N" held_ratio_is $CLEAN/$N
	check "$tag: resume leg 1" dmsetup resume dmrs_l1
	check "$tag: resync reaches $N/$N" wait_sync $M 240
	check "$tag: dirty regions copied: legs identical before region $KEEP" legs_identical /dev/vda /dev/vdb $((KEEP * RS))
	check "$tag: and after it" legs_identical /dev/vda /dev/vdb $((L - (KEEP + 1) * RS)) $(((KEEP + 1) * RS)) $(((KEEP + 1) * RS))
	check "$tag: only dirty regions copied: the marker in region $KEEP survives" is_at /tmp/mark /dev/vdb $((KEEP * RS))
	check "$tag: the in-flight write reads back" is_at /tmp/w.$tag /dev/mapper/$M $((W * RS))
	check "$tag: the 256 KiB write reads back" is_at /tmp/data.$tag /dev/mapper/$M 1024
	check "$tag: remove" rmdev $M
	check "$tag: unload $(name_of $b)" unload_impl $b
	check "$tag: log clean" log_all_clean /dev/vdc $N
	check "$tag: restore leg 1's region $KEEP" copy_region /dev/vda /dev/vdb $((KEEP * RS)) $RS
}

# after a part fails half way: nothing left behind for the next part
reset_part() {
	dmsetup resume dmrs_l1 > /dev/null 2>&1
	rmdev $M > /dev/null 2>&1
	unload_c > /dev/null 2>&1
	unload_mod "$(rs_modname)" > /dev/null 2>&1
}
part() { # TAG FUNC A B
	tap_diag "part $1: $(name_of $3) -> $(name_of $4)"
	$2 $3 $4 $1 || tap_fail "$1: the rest of this part" "not run: a step above failed"
	reset_part
}
part 1-clean-c-to-$OTHER clean_handoff c $OTHER
part 2-clean-$OTHER-to-c clean_handoff $OTHER c
part 3-dirty-c-to-$OTHER dirty_handoff c $OTHER
part 4-dirty-$OTHER-to-c dirty_handoff $OTHER c

check "remove l1" rmdev dmrs_l1
rm -f /tmp/seed /tmp/mark /tmp/data.* /tmp/w.* /tmp/snap.*
tap_end
