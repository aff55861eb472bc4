#!/bin/sh
# Read errors on the default leg with handle_errors (issue #5, scenario 2),
# C dm-mirror then ours.
#
# 4 MiB written through a nosync handle_errors mirror, then leg 0 (the
# default leg) turns into "error". C: the read is retried on leg 1 and
# returns the data, a table event fires, the status is "RA 16/16", and
# leg 1 becomes the default leg: later reads go to leg 1 only (leg 0's
# read counter in /sys/block/dm-N/stat does not move), also after leg 0
# works again (a failed leg stays failed until a table reload). Writes are
# not held by a read error (a write then completes at once on both legs).
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/legfail.sh"

L=$LF_L
M=lf_rfail
check "legs: linear over vda, vdb" lf_legs lf_l0 lf_l1 || tap_end
randfile /tmp/lf-d 4
randfile /tmp/lf-w 1
T="0 $L mirror core 2 1024 nosync 2 /dev/mapper/lf_l0 0 /dev/mapper/lf_l1 0 1 handle_errors"

# reads LEG: read I/Os completed by the leg's dm device
reads() { awk '{print $1}' "/sys/block/$(dm_block "$1")/stat"; }

run() {
	local impl=$1 ev0 r0 r1
	lf_begin "$impl"
	check "$LF_I: load" lf_load "$impl" || return
	check "$LF_I: legs good" lf_good lf_l0 || return
	check "$LF_I: create (handle_errors)" mkmirror $M "$T" || return
	check "$LF_I: write 4 MiB" dd if=/tmp/lf-d of=/dev/mapper/$M bs=64k oflag=direct conv=notrunc
	sleep 1
	lf_obs start "$(lf_st $M)"
	check "$LF_I: leg 0 (default) now fails all I/O" lf_error lf_l0
	ev0=$(lf_events $M)
	flushbufs /dev/mapper/$M
	lf_obs read1 "$(lf_yesno reads_as /tmp/lf-d /dev/mapper/$M 0)"
	lf_obs event "$(lf_wait_event $M "$ev0")"
	lf_obs failed "$(lf_st $M)"
	lf_expect "reads return the data (served by leg 1)" read1 ok
	lf_expect "table event on the read error" event yes
	lf_expect "status RA 16/16" failed "RA 16/16"

	r0=$(reads lf_l0) r1=$(reads lf_l1)
	lf_obs read2 "$(lf_yesno reads_as /tmp/lf-d /dev/mapper/$M 0)"
	lf_obs read2_leg0 "$([ "$(reads lf_l0)" = "$r0" ] && echo none || echo some)"
	lf_obs read2_leg1 "$([ "$(reads lf_l1)" -gt "$r1" ] && echo some || echo none)"
	lf_obs after_read2 "$(lf_st $M)"
	lf_expect "later reads succeed" read2 ok
	lf_expect "later reads do not go to leg 0" read2_leg0 none
	lf_expect "later reads go to leg 1" read2_leg1 some
	lf_expect "status still RA 16/16" after_read2 "RA 16/16"

	check "$LF_I: leg 0 works again (same data)" lf_good lf_l0
	r0=$(reads lf_l0) r1=$(reads lf_l1)
	flushbufs /dev/mapper/$M
	lf_obs read3 "$(lf_yesno reads_as /tmp/lf-d /dev/mapper/$M 0)"
	lf_obs read3_leg0 "$([ "$(reads lf_l0)" = "$r0" ] && echo none || echo some)"
	lf_expect "with leg 0 back, reads still go to leg 1 only" read3_leg0 none

	# a read error does not hold writes
	lf_writer_start /tmp/lf-w /dev/mapper/$M 6
	lf_obs writer "$(lf_writer_wait 60)"
	[ "$(lf_get writer)" = running ] && lf_writer_reap $M
	lf_obs after_write "$(lf_st $M)"
	lf_obs legs_written "$(lf_yesno data_at /tmp/lf-w /dev/mapper/lf_l0 12288)/$(lf_yesno data_at /tmp/lf-w /dev/mapper/lf_l1 12288)"
	lf_expect "a write completes (exit 0)" writer 0
	lf_expect "... on both legs" legs_written ok/ok
	lf_expect "status after the write: RA 16/16" after_write "RA 16/16"
	check "$LF_I: remove" rmdev $M
	check "$LF_I: unload" lf_unload "$impl"
}

lf_each_impl $M
rm -f /tmp/lf-d /tmp/lf-w /tmp/lf-obs.*
tap_end
