#!/bin/sh
# Replacing a failed leg (issue #5, scenario 5), C dm-mirror then ours.
#
# A) handle_errors mirror over lf_l0/lf_l1; leg 1 turns into "error"; a
#    writer's first write is held (C). What lvm does with a spare: load the
#    mirror with leg 1 replaced by lf_l2 (linear over vdc, zeros), default
#    sync mode, suspend --noflush, resume. C: the held write is requeued to
#    the new mirror, the writer finishes with exit 0, the new leg resyncs to
#    16/16 with status AA, the legs end identical and hold the writer's data.
# B) The same failure released by a plain (flush) suspend instead. C: the
#    held write fails with EIO (the writer exits non-zero) and nothing else
#    of the writer's data reaches the device; the suspend itself completes.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/legfail.sh"

L=$LF_L
M=lf_repl
check "legs: linear over vda, vdb, vdc" lf_legs lf_l0 lf_l1 lf_l2 || tap_end
randfile /tmp/lf-base 2
randfile /tmp/lf-w 1
T01="0 $L mirror core 2 1024 nosync 2 /dev/mapper/lf_l0 0 /dev/mapper/lf_l1 0 1 handle_errors"
T02="0 $L mirror core 1 1024 2 /dev/mapper/lf_l0 0 /dev/mapper/lf_l2 0 1 handle_errors"

run() {
	local impl=$1 ev0
	lf_begin "$impl"
	check "$LF_I: load" lf_load "$impl" || return

	# --- A: replace the failed leg ------------------------------------------
	check "$LF_I: leg 1 good" lf_good lf_l1 || return
	check "$LF_I: spare leg 2 zeroed" dd if=/dev/zero of=/dev/mapper/lf_l2 bs=1M count=8 oflag=direct
	check "$LF_I: create (handle_errors)" mkmirror $M "$T01" || return
	check "$LF_I: write 2 MiB at 0" dd if=/tmp/lf-base of=/dev/mapper/$M bs=64k oflag=direct conv=notrunc
	sleep 1
	check "$LF_I: leg 1 now fails all I/O" lf_error lf_l1
	ev0=$(lf_events $M)
	lf_writer_start /tmp/lf-w /dev/mapper/$M 4
	lf_obs A.event "$(lf_wait_event $M "$ev0")"
	lf_obs A.writer_after_event "$(lf_writer_held $M)"
	lf_obs A.failed "$(lf_st $M)"
	lf_expect "A: table event on the write error" A.event yes
	lf_expect "A: the failed write is held" A.writer_after_event held
	check "$LF_I: A: load the mirror with leg 1 replaced by lf_l2" dmsetup load $M --table "$T02"
	check "$LF_I: A: suspend --noflush" timeout 60 dmsetup suspend --noflush $M
	check "$LF_I: A: resume" dmsetup resume $M
	lf_obs A.writer_end "$(lf_writer_wait 60)"
	[ "$(lf_get A.writer_end)" = running ] && lf_writer_reap $M
	lf_expect "A: the writer finishes with exit 0 after the reload" A.writer_end 0
	lf_obs A.resync "$(lf_yesno wait_sync $M 180)"
	lf_obs A.synced "$(lf_st $M)"
	lf_expect "A: the new leg resyncs: AA 16/16" A.synced "AA 16/16"
	lf_obs A.legs_identical "$(lf_yesno legs_identical /dev/mapper/lf_l0 /dev/mapper/lf_l2 $L)"
	lf_obs A.new_leg_data "$(lf_yesno data_at /tmp/lf-w /dev/mapper/lf_l2 8192)"
	lf_obs A.new_leg_base "$(lf_yesno data_at /tmp/lf-base /dev/mapper/lf_l2 0)"
	lf_obs A.dev_data "$(lf_yesno reads_as /tmp/lf-w /dev/mapper/$M 8192)"
	lf_expect "A: legs 0 and 2 identical" A.legs_identical ok
	lf_expect "A: the new leg holds the writer's data" A.new_leg_data ok
	lf_expect "A: the new leg holds the older data" A.new_leg_base ok
	lf_expect "A: the device reads back the writer's data" A.dev_data ok
	check "$LF_I: A: remove" rmdev $M

	# --- B: a flush suspend fails the held write ----------------------------
	check "$LF_I: leg 1 good again" lf_good lf_l1 || return
	check "$LF_I: B: leg 0 zeroed at 4 MiB" dd if=/dev/zero of=/dev/mapper/lf_l0 bs=1M seek=4 count=1 oflag=direct
	check "$LF_I: create (handle_errors)" mkmirror $M "$T01" || return
	check "$LF_I: leg 1 now fails all I/O" lf_error lf_l1
	ev0=$(lf_events $M)
	lf_writer_start /tmp/lf-w /dev/mapper/$M 4
	lf_obs B.event "$(lf_wait_event $M "$ev0")"
	lf_obs B.writer_after_event "$(lf_writer_held $M)"
	lf_obs B.failed "$(lf_st $M)"
	lf_expect "B: the failed write is held" B.writer_after_event held
	lf_obs B.suspend "$(lf_yesno timeout 60 dmsetup suspend $M)"
	lf_obs B.writer_end "$(lf_writer_wait 60)"
	lf_expect "B: a flush suspend completes" B.suspend ok
	lf_expect "B: ... and fails the held write: writer exit 1" B.writer_end 1
	check "$LF_I: B: resume" dmsetup resume $M
	[ "$(lf_get B.writer_end)" = running ] && lf_writer_reap $M
	lf_obs B.after_resume "$(lf_st $M)"
	# the held 64 KiB write reached leg 0 (it was submitted to both legs);
	# nothing after it was written
	no_more() {
		flushbufs /dev/mapper/lf_l0
		cmp -n 65536 /tmp/lf-w /dev/mapper/lf_l0 0 $((4 << 20)) || return 1
		[ "$(dd if=/dev/mapper/lf_l0 bs=64k skip=65 count=15 iflag=direct 2>/dev/null | sha256sum)" = \
			"$(dd if=/dev/zero bs=64k count=15 2>/dev/null | sha256sum)" ]
	}
	lf_obs B.leg0_first_write_only "$(lf_yesno no_more)"
	lf_expect "B: leg 0 got the failed write's data, nothing after it" B.leg0_first_write_only ok
	check "$LF_I: B: remove" rmdev $M
	check "$LF_I: unload" lf_unload "$impl"
}

lf_each_impl $M
rm -f /tmp/lf-base /tmp/lf-w /tmp/lf-obs.*
tap_end
