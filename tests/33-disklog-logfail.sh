#!/bin/sh
# A failing log device. The log is a dm linear device over vdc, switched to
# the `error` target while a writer runs (each write goes to a new region,
# so every one needs a log update). Without handle_errors:
# - the log health character becomes D (log write failed) or F (log flush
#   failed), and a table event fires; the legs stay A;
# - every acknowledged write, before and after the switch, is on both legs
#   and reads back through the mirror;
# - `dmsetup suspend` completes, resume and remove work.
# Then a mirror created over a log device that fails from the start: the
# create works, the status shows the failed log, it resyncs to N/N.
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/disklog-lib.sh"

check "load $(impl_name)" load_rs || tap_end
RS=256
L=20000                # 79 regions
N=79
M=dmrs_logfail
LS=$(dev_sectors /dev/vdc)
check "leg 0 zeroed" dd if=/dev/zero of=/dev/vda bs=1M count=10 oflag=direct
check "leg 1 zeroed" dd if=/dev/zero of=/dev/vdb bs=1M count=10 oflag=direct
check "log wiped" wipe_log /dev/vdc
check "log device: linear over vdc" mklinear dmrs_log /dev/vdc || tap_end
LOGDEV=/dev/mapper/dmrs_log
T="0 $L mirror disk 3 $LOGDEV $RS nosync 2 /dev/vda 0 /dev/vdb 0"
check "create: $T" mkmirror $M "$T" || tap_end
check "log health A" [ "$(log_char $M)" = A ]
ev0=$(events $M)

# writer: 64 KiB chunk i of /tmp/data to region i (at offset (i % 2) * 64 KiB
# inside it); the chunk index goes to /tmp/acked once dd returned success
randfile /tmp/data 2
: > /tmp/acked
writer() {
	local i=0
	while [ $i -lt 32 ]; do
		dd if=/tmp/data of=/dev/mapper/$M bs=64k skip=$i count=1 \
			seek=$((i * RS * 512 + (i % 2) * 65536)) oflag=direct,seek_bytes conv=notrunc 2> /dev/null &&
			echo $i >> /tmp/acked
		i=$((i + 1))
	done
}
writer &
wp=$!
acked_ge() {
	local i=0
	while [ $i -lt 600 ]; do
		[ "$(wc -l < /tmp/acked)" -ge "$1" ] && return 0
		kill -0 $wp 2> /dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	fail "only $(wc -l < /tmp/acked) writes acknowledged"
}
check "8 writes acknowledged before the switch" acked_ge 8
switch_to_error() {
	dmsetup load dmrs_log --table "0 $LS error" &&
		timeout 60 dmsetup suspend dmrs_log &&
		dmsetup resume dmrs_log
}
check "log device switched to error while writes run" switch_to_error
at_switch=$(wc -l < /tmp/acked)
tap_diag "writes acknowledged at the switch: $at_switch"
check "the writer finished" wait $wp
tap_diag "writes acknowledged: $(wc -l < /tmp/acked) of 32; status: $(dmsetup status $M)"
check "writes after the switch were acknowledged ($(wc -l < /tmp/acked) > $at_switch)" [ "$(wc -l < /tmp/acked)" -gt "$at_switch" ]
tap_diag "log health character with a failed log device: $(log_char $M)"
check "log health D or F" sh -c "case '$(log_char $M)' in D|F) exit 0 ;; *) exit 1 ;; esac"
check "legs still AA" [ "$(health $M)" = AA ]
check "a table event fired" [ "$(events $M)" -gt "$ev0" ]
acked_on_leg0() {
	local i bad=
	flushbufs /dev/vda
	for i in $(cat /tmp/acked); do
		cmp -s -n 65536 -i $((i * 65536)):$((i * RS * 512 + (i % 2) * 65536)) /tmp/data /dev/vda || bad="$bad $i"
	done
	[ -z "$bad" ] || fail "acknowledged writes missing on leg 0:$bad"
}
check "every acknowledged write is on leg 0" acked_on_leg0
check "leg 1 is identical to leg 0" legs_identical /dev/vda /dev/vdb $L
check "the mirror reads what leg 0 holds" sha_equal $M /dev/vda $L
check "dmsetup suspend completes" timeout 120 dmsetup suspend $M
check "resume" dmsetup resume $M
check "a write after the resume works" dd if=/tmp/data of=/dev/mapper/$M bs=64k count=1 seek=$((70 * RS * 512)) oflag=direct,seek_bytes
check "remove" rmdev $M

# a log device that fails from the start
T="0 $L mirror disk 2 $LOGDEV $RS 2 /dev/vda 0 /dev/vdb 0"
check "create over a failed log device: $T" mkmirror $M "$T" && {
	tap_diag "status with a log that fails from the start: $(dmsetup status $M)"
	check "log health D or F" sh -c "case '$(log_char $M)' in D|F) exit 0 ;; *) exit 1 ;; esac"
	check "resyncs to $N/$N" wait_sync $M 240
	check "legs identical" legs_identical /dev/vda /dev/vdb $L
	check "remove" rmdev $M
}
check "remove the log device" rmdev dmrs_log
rm -f /tmp/data /tmp/acked /tmp/want /tmp/got
check "unload" unload_rs
tap_end
