#!/bin/sh
# Every leg fails (issue #5, scenario 4), C dm-mirror then ours, with and
# without handle_errors. Both legs turn into "error". C: a write fails with
# EIO (not held: no leg is left), reads fail with EIO, nothing hangs, the
# status shows "DD" and the written region out of sync; with handle_errors
# a table event fires; `dmsetup remove` works.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/legfail.sh"

L=$LF_L
M=lf_afail
check "legs: linear over vda, vdb" lf_legs lf_l0 lf_l1 || tap_end
randfile /tmp/lf-d 1
TB="0 $L mirror core 2 1024 nosync 2 /dev/mapper/lf_l0 0 /dev/mapper/lf_l1 0"

# io_rc CMD...: exit status of a 64 KiB O_DIRECT dd, 124 if it took > 60 s
wr_rc() { timeout 60 dd if=/tmp/lf-d of=/dev/mapper/$M bs=64k count=1 seek=$1 oflag=direct conv=notrunc 2>/dev/null; echo $?; }
rd_rc() { timeout 60 dd if=/dev/mapper/$M of=/dev/null bs=64k count=1 skip=$1 iflag=direct 2>/dev/null; echo $?; }

both() { "$1" lf_l0 && "$1" lf_l1; }

one() { # PART FEATURES
	local p=$1 ev0
	check "$LF_I: $p: legs good" both lf_good || return 1
	check "$LF_I: $p: create" mkmirror $M "$TB$2" || return 1
	check "$LF_I: $p: write 1 MiB" dd if=/tmp/lf-d of=/dev/mapper/$M bs=64k oflag=direct conv=notrunc
	sleep 1
	check "$LF_I: $p: both legs fail all I/O" both lf_error
	ev0=$(lf_events $M)
	lf_obs $p.write "$(wr_rc 32)"          # region 4
	lf_obs $p.read_written "$(rd_rc 32)"   # the region the write marked out of sync
	lf_obs $p.read_other "$(rd_rc 0)"      # a region still in sync
	lf_obs $p.event "$(lf_wait_event $M "$ev0")"
	lf_obs $p.status "$(lf_st $M)"
	lf_expect "$p: the write fails (dd exit 1, no hang)" $p.write 1
	lf_expect "$p: a read of the written region fails" $p.read_written 1
	lf_expect "$p: a read of another region fails" $p.read_other 1
	lf_expect "$p: status DD 15/16" $p.status "DD 15/16"
	lf_obs $p.remove "$(lf_yesno timeout 60 dmsetup remove $M)"
	lf_expect "$p: dmsetup remove works" $p.remove ok
}

run() {
	local impl=$1
	lf_begin "$impl"
	check "$LF_I: load" lf_load "$impl" || return
	one A " 1 handle_errors" || return
	lf_expect "A: table event" A.event yes
	one B "" || return
	lf_expect "B: no table event" B.event no
	check "$LF_I: unload" lf_unload "$impl"
}

lf_each_impl $M
rm -f /tmp/lf-d /tmp/lf-obs.*
tap_end
