#!/bin/sh
# Read errors. The legs are linear devices over vda/vdb; after data is
# written, leg 0's table is swapped for the "error" target. Reads are routed
# as in C (ours: read_policy default_leg), so they are sent to leg 0 first. Reads through
# the mirror must still return the written data (retried on leg 1), the
# status must show leg 0 as R (read error) and leg 1 as A. With both legs
# failing, reads fail with EIO and nothing hangs; the mirror can be removed.
. "$(dirname "$0")/lib.sh"

check "load $(impl_name)" load_rs || tap_end
L=32768                   # 16 MiB
check "leg l0 (linear over vda)" mkmirror dmrs_l0 "0 $L linear /dev/vda 0"
check "leg l1 (linear over vdb)" mkmirror dmrs_l1 "0 $L linear /dev/vdb 0"
M=dmrs_rerr
T="0 $L mirror core 2 1024 nosync 2 /dev/mapper/dmrs_l0 0 /dev/mapper/dmrs_l1 0"
check "create: $T" mkmirror $M "$T" || tap_end
# remove the mirror before its legs
at_end "rmdev $M"
# The read below must reach leg 0 to see its error: route reads as the C
# target does (ours balances them by default and could serve the read from
# leg 1 alone; 42-reads.sh tests read errors under balancing).
if [ "$DMRS_IMPL" != c ]; then
	check "read_policy default_leg (reads go to leg 0 first)" \
		dmsetup message $M 0 read_policy default_leg
fi
randfile /tmp/rd 8
check "write 8 MiB" dd if=/tmp/rd of=/dev/mapper/$M bs=1M oflag=direct
check "reads back" reads_as /tmp/rd /dev/mapper/$M 0

to_error() { dmsetup load "$1" --table "0 $L error" && dmsetup suspend "$1" && dmsetup resume "$1"; }
check "leg 0 now fails all I/O" to_error dmrs_l0
flushbufs /dev/mapper/$M
check "reads still return the data (from leg 1)" reads_as /tmp/rd /dev/mapper/$M 0
health_is() {
	h=$(mirror_status $M | awk '{ n = $1; print $(n + 4) }')
	[ "$h" = "$1" ] || fail "health $h, want $1 ($(mirror_status $M))"
}
check "status shows leg 0 R, leg 1 A" health_is RA
check "later reads avoid leg 0 and succeed" reads_as /tmp/rd /dev/mapper/$M 0

check "leg 1 fails too" to_error dmrs_l1
flushbufs /dev/mapper/$M
read_fails() {
	if timeout 60 dd if=/dev/mapper/$M of=/dev/null bs=1M count=1 iflag=direct 2>/dev/null; then
		fail "read succeeded with every leg failing"
	fi
	return 0
}
check "with no good leg, reads fail (EIO) and do not hang" read_fails
check "remove the mirror" rmdev $M
check "remove leg l0" rmdev dmrs_l0
check "remove leg l1" rmdev dmrs_l1
rm -f /tmp/rd
check "unload" unload_rs
tap_end
