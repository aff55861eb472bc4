#!/bin/sh
# Write errors on leg 1 (issue #5, scenario 1), run with the C dm-mirror and
# then with ours; C's behaviour is the specification.
#
# A) handle_errors: leg 1 turns into "error", then a writer writes 1 MiB in
#    64 KiB O_DIRECT writes. C: the first write fails on leg 1, a table event
#    fires (dmsetup wait returns), the status becomes "AD 15/16" and the
#    write is held (the writer blocks). What dmeventd/lvm does next: load a
#    linear table over leg 0, suspend --noflush, resume: the held write is
#    requeued to the new table and the writer finishes with exit 0; every
#    byte it wrote is on leg 0 and reads back through the device.
# B) no handle_errors: the writes complete (exit 0) at once, the status
#    becomes "AD 14/16" (both 512 KiB regions written marked out of sync), no
#    event; leg 0 and the mirror hold the data.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/legfail.sh"

L=$LF_L
M=lf_wfail
check "legs: linear over vda, vdb" lf_legs lf_l0 lf_l1 || tap_end
randfile /tmp/lf-base 2
randfile /tmp/lf-w 1
TBASE="0 $L mirror core 2 1024 nosync 2 /dev/mapper/lf_l0 0 /dev/mapper/lf_l1 0"

run() {
	local impl=$1 ev0 rc st ok
	lf_begin "$impl"
	check "$LF_I: load" lf_load "$impl" || return

	# --- A: handle_errors -----------------------------------------------
	check "$LF_I: legs good" lf_good lf_l1 || return
	check "$LF_I: create (handle_errors)" mkmirror $M "$TBASE 1 handle_errors" || return
	check "$LF_I: write 2 MiB at 0" dd if=/tmp/lf-base of=/dev/mapper/$M bs=64k oflag=direct conv=notrunc
	sleep 1
	lf_obs A.start "$(lf_st $M)"
	check "$LF_I: leg 1 now fails all I/O" lf_error lf_l1
	ev0=$(lf_events $M)
	lf_writer_start /tmp/lf-w /dev/mapper/$M 4
	lf_obs A.event "$(lf_wait_event $M "$ev0")"
	lf_obs A.writer_after_event "$(lf_writer_held $M)"
	lf_obs A.failed "$(lf_st $M)"
	lf_expect "A: table event on the write error (dmsetup wait returns)" A.event yes
	lf_expect "A: status AD 15/16 after the failure" A.failed "AD 15/16"
	lf_expect "A: the failed write is held (writer blocked)" A.writer_after_event held
	# dmeventd/lvm: drop the failed leg, keep leg 0 as a linear device
	check "$LF_I: A: load linear over leg 0" dmsetup load $M --table "0 $L linear /dev/mapper/lf_l0 0"
	check "$LF_I: A: suspend --noflush" timeout 60 dmsetup suspend --noflush $M
	check "$LF_I: A: resume" dmsetup resume $M
	lf_obs A.writer_end "$(lf_writer_wait 60)"
	lf_expect "A: the writer finishes with exit 0 after the reload" A.writer_end 0
	[ "$(lf_get A.writer_end)" = running ] && lf_writer_reap $M
	lf_obs A.table "$(dmsetup table $M | cut -d' ' -f3)"
	lf_obs A.leg0_data "$(lf_yesno data_at /tmp/lf-w /dev/mapper/lf_l0 8192)"
	lf_obs A.leg0_base "$(lf_yesno data_at /tmp/lf-base /dev/mapper/lf_l0 0)"
	lf_obs A.dev_data "$(lf_yesno reads_as /tmp/lf-w /dev/mapper/$M 8192)"
	lf_expect "A: leg 0 holds every byte written" A.leg0_data ok
	lf_expect "A: leg 0 kept the data written before" A.leg0_base ok
	lf_expect "A: the device reads back the data" A.dev_data ok
	check "$LF_I: A: remove" rmdev $M

	# --- B: no handle_errors ------------------------------------------------
	check "$LF_I: leg 1 good again" lf_good lf_l1 || return
	check "$LF_I: create (no features)" mkmirror $M "$TBASE" || return
	check "$LF_I: write 2 MiB at 0" dd if=/tmp/lf-base of=/dev/mapper/$M bs=64k oflag=direct conv=notrunc
	sleep 1
	lf_obs B.start "$(lf_st $M)"
	check "$LF_I: leg 1 now fails all I/O" lf_error lf_l1
	ev0=$(lf_events $M)
	lf_writer_start /tmp/lf-w /dev/mapper/$M 4
	lf_obs B.writer "$(lf_writer_wait 60)"
	[ "$(lf_get B.writer)" = running ] && lf_writer_reap $M
	sleep 2
	lf_obs B.failed "$(lf_st $M)"
	lf_obs B.event "$(lf_event_since $M "$ev0")"
	lf_expect "B: writes complete (exit 0)" B.writer 0
	lf_expect "B: status AD 14/16" B.failed "AD 14/16"
	lf_expect "B: no table event" B.event no
	lf_obs B.leg0_data "$(lf_yesno data_at /tmp/lf-w /dev/mapper/lf_l0 8192)"
	lf_obs B.dev_data "$(lf_yesno reads_as /tmp/lf-w /dev/mapper/$M 8192)"
	lf_expect "B: leg 0 holds the data" B.leg0_data ok
	lf_expect "B: the mirror reads back the data" B.dev_data ok
	check "$LF_I: B: remove" rmdev $M
	check "$LF_I: unload" lf_unload "$impl"
}

lf_each_impl $M
rm -f /tmp/lf-base /tmp/lf-w /tmp/lf-obs.*
tap_end
