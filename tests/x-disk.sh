#!/bin/sh
# scratch: disk log smoke test
. /tests/lib.sh
check "load $(impl_name)" load_rs || tap_end
L=100000
M=dmx
randfile /tmp/seed 49
dd if=/tmp/seed of=/dev/vda bs=1M oflag=direct 2>/dev/null
dd if=/dev/zero of=/dev/vdc bs=1M count=16 oflag=direct 2>/dev/null
T="0 $L mirror disk 2 /dev/vdc 1024 2 /dev/vda 0 /dev/vdb 0"
check "create: $T" mkmirror $M "$T" || tap_end
tap_diag "status: $(dmsetup status $M)"
tap_diag "table: $(dmsetup table $M)"
check "resync" wait_sync $M 180
tap_diag "status: $(dmsetup status $M)"
tap_diag "header: $(dd if=/dev/vdc bs=16 count=1 2>/dev/null | od -A d -t x1 | head -2)"
tap_diag "bits: $(dd if=/dev/vdc bs=1024 skip=1 count=1 2>/dev/null | od -A d -t x1 | head -3)"
check "legs identical" legs_identical /dev/vda /dev/vdb $L
dd if=/dev/urandom of=/dev/mapper/$M bs=1M count=4 seek=8 oflag=direct 2>/dev/null
tap_diag "bits after write: $(dd if=/dev/vdc bs=1024 skip=1 count=1 2>/dev/null | od -A d -t x1 | head -3)"
check "remove" rmdev $M
tap_diag "bits after remove: $(dd if=/dev/vdc bs=1024 skip=1 count=1 2>/dev/null | od -A d -t x1 | head -3)"
check "recreate" mkmirror $M "$T"
tap_diag "status at once: $(dmsetup status $M)"
check "remove" rmdev $M
unload_rs
check "load C" load_c
check "C create" mkmirror $M "$T"
tap_diag "C status at once: $(dmsetup status $M)"
tap_diag "C table: $(dmsetup table $M)"
check "remove" rmdev $M
tap_diag "bits after C remove: $(dd if=/dev/vdc bs=1024 skip=1 count=1 2>/dev/null | od -A d -t x1 | head -3)"
tap_end
