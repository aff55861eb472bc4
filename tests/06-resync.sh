#!/bin/sh
# Recovery with the core log. A `sync` mirror over legs with different
# contents resyncs region by region: the in-sync count rises to N/N, a table
# event fires when it gets there (dmsetup wait), and the legs end
# byte-identical, holding the default leg's data. A `nosync` mirror starts
# at N/N and copies nothing. The last region is short (target length not a
# multiple of the region size).
. "$(dirname "$0")/lib.sh"

check "load $(impl_name)" load_rs || tap_end
L=100000                  # 48.8 MiB: 98 regions of 1024 sectors, the last short
M=dmrs_resync
randfile /tmp/seed 49
check "leg 0 gets random data" dd if=/tmp/seed of=/dev/vda bs=1M oflag=direct
check "leg 1 gets zeros" dd if=/dev/zero of=/dev/vdb bs=1M count=49 oflag=direct

T="0 $L mirror core 2 1024 sync 2 /dev/vda 0 /dev/vdb 0"
check "create: $T" mkmirror $M "$T" || tap_end
ev0=$(dmsetup info -c --noheadings -o events $M 2>/dev/null | tr -d ' ')
tap_diag "status after create: $(dmsetup status $M)"
check "resync reaches 98/98" wait_sync $M 180
got_event() {
	ev1=$(dmsetup info -c --noheadings -o events $M | tr -d ' ')
	[ -n "$ev0" ] && [ "$ev1" -gt "$ev0" ] || fail "event counter $ev0 -> $ev1"
	# dmsetup wait on the old counter returns at once if an event came.
	timeout 10 dmsetup wait $M "$ev0" > /dev/null || fail "dmsetup wait $M $ev0 did not return"
}
check "a table event fired when in sync" got_event
check "legs identical over the target" legs_identical /dev/vda /dev/vdb $L
check "legs hold the default leg's data" data_at_len /tmp/seed /dev/vdb $L
check "reads through the mirror give the default leg's data" sha_equal $M /dev/vda $L
check "remove" rmdev $M

# nosync: in sync at once, nothing copied
check "leg 1 gets zeros again" dd if=/dev/zero of=/dev/vdb bs=1M count=49 oflag=direct
T="0 $L mirror core 2 1024 nosync 2 /dev/vda 0 /dev/vdb 0"
check "create: $T" mkmirror $M "$T" || tap_end
ratio_is() { [ "$(sync_ratio $M)" = "$1" ] || fail "sync ratio $(sync_ratio $M), want $1"; }
check "nosync starts at 98/98" ratio_is 98/98
sleep 2
still_zero() {
	flushbufs /dev/vdb
	[ "$(sha_of /dev/vdb $L)" = "$(dd if=/dev/zero bs=512 count=$L 2>/dev/null | sha256sum | cut -d' ' -f1)" ] ||
		fail "leg 1 changed: nosync copied data"
}
check "nosync copied nothing" still_zero
check "remove" rmdev $M

# default sync mode (no sync word) behaves like sync for the core log
T="0 $L mirror core 1 1024 2 /dev/vda 0 /dev/vdb 0"
check "create: $T" mkmirror $M "$T" || tap_end
check "default mode resyncs to 98/98" wait_sync $M 180
check "legs identical" legs_identical /dev/vda /dev/vdb $L
check "remove" rmdev $M
rm -f /tmp/seed
check "unload" unload_rs
tap_end
