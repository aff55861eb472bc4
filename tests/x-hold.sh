#!/bin/sh
# scratch: handle_errors hold + noflush reload, both impls
. /tests/lib.sh
L=20480
scenario() { # impl
	impl=$1
	if [ $impl = c ]; then check "load C" load_c; else check "load rs" load_rs; fi
	dmsetup create l0 --table "0 $L linear /dev/vda 0"
	dmsetup create l1 --table "0 $L linear /dev/vdb 0"
	check "$impl create" mkmirror m "0 $L mirror core 2 1024 nosync 2 /dev/mapper/l0 0 /dev/mapper/l1 0 1 handle_errors"
	tap_diag "$impl status: $(dmsetup status m)"
	ev0=$(dmsetup info -c --noheadings -o events m | tr -d ' ')
	dmsetup suspend l1; dmsetup load l1 --table "0 $L error"; dmsetup resume l1
	randfile /tmp/d 1
	( dd if=/tmp/d of=/dev/mapper/m bs=1M count=1 oflag=direct 2>/tmp/dd.err; echo $? > /tmp/dd.rc ) &
	sleep 5
	tap_diag "$impl status after error: $(dmsetup status m)"
	tap_diag "$impl dd rc so far: $(cat /tmp/dd.rc 2>/dev/null)"
	ev1=$(dmsetup info -c --noheadings -o events m | tr -d ' ')
	tap_diag "$impl events $ev0 -> $ev1"
	dmsetup suspend --noflush m
	dmsetup load m --table "0 $L linear /dev/mapper/l0 0"
	dmsetup resume m
	wait
	tap_diag "$impl dd rc: $(cat /tmp/dd.rc) $(cat /tmp/dd.err | tr '\n' ' ')"
	check "$impl data on leg 0" data_at_len /tmp/d /dev/mapper/l0 2048
	rm -f /tmp/dd.rc
	dmsetup remove m; dmsetup remove l0; dmsetup remove l1
	if [ $impl = c ]; then unload_c; else unload_rs; fi
}
scenario c
scenario rs
tap_end
