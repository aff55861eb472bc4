#!/bin/sh
# Data integrity through a 2-leg mirror (core log, nosync: no resync).
# Target = 80 MiB over /dev/vda and /dev/vdb. 64 MiB of random data is
# written with O_DIRECT at 0, 16 MiB of other data buffered (+ sync) at
# 64 MiB; both read back through the mirror and found on each leg, and the
# legs are byte-identical over the whole target. (The buffered pass is only
# 16 MiB: page-cache writeback through the C mirror runs at ~1.3 MB/s in the
# TCG debug guest, 64 MiB would take ~50 s.)
. "$(dirname "$0")/lib.sh"

check "load $(impl_name)" load_rs || tap_end
L=163840                  # 80 MiB
H=131072                  # 64 MiB
M=dmrs_data
check "64 MiB random data" randfile /tmp/data 64
check "16 MiB of other data" dd if=/tmp/data of=/tmp/data2 bs=1M skip=24 count=16
tap_diag "data sha256 $(sha_file /tmp/data)"

T="0 $L mirror core 2 1024 nosync 2 /dev/vda 0 /dev/vdb 0"
check "create: $T" mkmirror $M "$T" || tap_end
in_sync() { [ "$(sync_ratio $M)" = "160/160" ] || fail "sync ratio $(sync_ratio $M), want 160/160"; }
check "nosync mirror is in sync at once" in_sync

check "write 64 MiB O_DIRECT at 0" dd if=/tmp/data of=/dev/mapper/$M bs=1M oflag=direct
check "read back through the mirror (O_DIRECT)" reads_as /tmp/data /dev/mapper/$M 0
check "leg vda holds the data" data_at /tmp/data /dev/vda 0
check "leg vdb holds the data" data_at /tmp/data /dev/vdb 0

check "write 16 MiB buffered at 64 MiB" dd if=/tmp/data2 of=/dev/mapper/$M bs=1M seek=64
check "sync" sync
flushbufs /dev/mapper/$M
check "read back buffered data through the mirror" reads_as /tmp/data2 /dev/mapper/$M $H
check "leg vda holds the buffered data" data_at /tmp/data2 /dev/vda $H
check "leg vdb holds the buffered data" data_at /tmp/data2 /dev/vdb $H
check "legs identical over the target length" legs_identical /dev/vda /dev/vdb $L
check "status still in sync" in_sync

rm -f /tmp/data /tmp/data2
check "remove" rmdev $M
check "unload" unload_rs
tap_end
