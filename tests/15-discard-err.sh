#!/bin/sh
# A discard error is not a leg failure (issue #5, scenario 6), C dm-mirror
# then ours. handle_errors mirror over lf_l0/lf_l1 (linear over virtio
# disks, which accept discards). A discard works while both legs are good.
# Then leg 1 turns into "error" (the error target accepts discards and fails
# them). C ends the failed discard with EOPNOTSUPP, which the BLKDISCARD
# ioctl turns into success (blkdiscard exit 0), and the leg is not failed:
# status stays "AA 16/16", no table event; with leg 1 good again, writes complete at once (not held)
# and reach both legs.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/legfail.sh"

L=$LF_L
M=lf_dfail
check "legs: linear over vda, vdb" lf_legs lf_l0 lf_l1 || tap_end
randfile /tmp/lf-w 1
T="0 $L mirror core 2 1024 nosync 2 /dev/mapper/lf_l0 0 /dev/mapper/lf_l1 0 1 handle_errors"
mdisc() { cat "/sys/block/$(dm_block "$1")/queue/discard_max_bytes"; }

run() {
	local impl=$1 ev0
	lf_begin "$impl"
	check "$LF_I: load" lf_load "$impl" || return
	check "$LF_I: leg 1 good" lf_good lf_l1 || return
	check "$LF_I: create (handle_errors)" mkmirror $M "$T" || return
	if [ "$(mdisc $M)" = 0 ]; then
		tap_skip "$LF_I: discard error" "the mirror does not support discards (vda: $(cat /sys/block/vda/queue/discard_max_bytes))"
		rmdev $M
		lf_unload "$impl"
		return
	fi
	lf_obs discard_good "$(blkdiscard -o 0 -l 1048576 /dev/mapper/$M > /dev/null 2>&1; echo $?)"
	lf_expect "a discard works with both legs good" discard_good 0
	sleep 1
	check "$LF_I: leg 1 now fails all I/O" lf_error lf_l1
	ev0=$(lf_events $M)
	lf_obs discard_err "$(timeout 60 blkdiscard -o 1048576 -l 1048576 /dev/mapper/$M > /dev/null 2>&1; echo $?)"
	lf_obs event "$(lf_wait_event $M "$ev0")"
	lf_obs status "$(lf_st $M)"
	lf_expect "blkdiscard exits 0 (the ioctl drops EOPNOTSUPP)" discard_err 0
	lf_expect "no table event" event no
	lf_expect "status stays AA 16/16" status "AA 16/16"
	check "$LF_I: leg 1 good again" lf_good lf_l1
	lf_writer_start /tmp/lf-w /dev/mapper/$M 4
	lf_obs writer "$(lf_writer_wait 30)"
	[ "$(lf_get writer)" = running ] && lf_writer_reap $M
	lf_obs after_write "$(lf_st $M)"
	lf_obs legs "$(lf_yesno data_at /tmp/lf-w /dev/mapper/lf_l0 8192)/$(lf_yesno data_at /tmp/lf-w /dev/mapper/lf_l1 8192)"
	lf_expect "a write completes at once (exit 0, not held)" writer 0
	lf_expect "... on both legs" legs ok/ok
	lf_expect "status AA 16/16 after the write" after_write "AA 16/16"
	check "$LF_I: remove" rmdev $M
	check "$LF_I: unload" lf_unload "$impl"
}

lf_each_impl $M
rm -f /tmp/lf-w /tmp/lf-obs.*
tap_end
