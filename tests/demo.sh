#!/bin/sh
# The demo (make demo): a 2-leg mirror over two virtio disks that start with
# different contents; shows the resync, writes data, shows table and status,
# and checks the legs are identical. Every step is narrated as a TAP comment.
. "$(dirname "$0")/lib.sh"

say_step() { tap_diag "---- $*"; }
L=131072                  # 64 MiB
M=demo
say_step "loading $(impl_name)"
check "load $(impl_name)" load_rs || tap_end
tap_diag "$(dmsetup targets | grep mirror)"

say_step "giving the legs different contents (vda: random, vdb: zeros)"
dd if=/dev/urandom of=/dev/vda bs=1M count=64 2>/dev/null
dd if=/dev/zero of=/dev/vdb bs=1M count=64 2>/dev/null

T="0 $L mirror core 2 1024 sync 2 /dev/vda 0 /dev/vdb 0"
say_step "dmsetup create $M --table \"$T\""
check "create the mirror" mkmirror $M "$T" || tap_end
tap_diag "status right after create: $(dmsetup status $M)"
check "resync reaches 128/128" wait_sync $M 120
tap_diag "status after resync:       $(dmsetup status $M)"
check "legs identical after resync" legs_identical /dev/vda /dev/vdb $L

say_step "writing 32 MiB of random data through /dev/mapper/$M"
randfile /tmp/demo 32
check "write 32 MiB" dd if=/tmp/demo of=/dev/mapper/$M bs=1M oflag=direct
check "read back matches (sha256 $(sha_file /tmp/demo | cut -c1-16)...)" reads_as /tmp/demo /dev/mapper/$M 0
check "leg vda holds the data" data_at /tmp/demo /dev/vda 0
check "leg vdb holds the data" data_at /tmp/demo /dev/vdb 0
check "legs identical over the whole mirror" legs_identical /dev/vda /dev/vdb $L

say_step "what dmsetup shows"
tap_diag "dmsetup table  $M: $(dmsetup table $M)"
tap_diag "dmsetup status $M: $(dmsetup status $M)"
tap_diag "allocation stats: $(dmsetup message $M 0 stats 2>&1)"

check "remove" rmdev $M
check "unload" unload_rs
rm -f /tmp/demo
tap_end
