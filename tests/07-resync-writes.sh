#!/bin/sh
# Writes during a resync: four writers (two on the same regions, two on
# different ones) write known data while a `sync` mirror recovers. After
# the resync every leg is identical and the mirror reads back exactly what
# was written. Then the same with suspend/resume and a table reload in the
# middle of the resync.
. "$(dirname "$0")/lib.sh"

check "load $(impl_name)" load_rs || tap_end
L=131072                  # 64 MiB, 128 regions of 512 KiB
M=dmrs_rw
check "leg 0 random" dd if=/dev/urandom of=/dev/vda bs=1M count=64 oflag=direct
check "leg 1 zeros" dd if=/dev/zero of=/dev/vdb bs=1M count=64 oflag=direct
randfile /tmp/w 16

T="0 $L mirror core 2 1024 sync 2 /dev/vda 0 /dev/vdb 0"
check "create: $T" mkmirror $M "$T" || tap_end
# writer 1 and 2: the same 4 MiB at 8 MiB (last one wins, both write the
# same bytes); writers 3 and 4: 4 MiB each at 24 and 40 MiB
w() { dd if=/tmp/w of=/dev/mapper/$M bs=64k skip=$1 seek=$2 count=64 oflag=direct 2>/dev/null; }
w 0 128 & p1=$!
w 0 128 & p2=$!
w 64 384 & p3=$!
w 128 640 & p4=$!
writers_ok() { wait $p1 && wait $p2 && wait $p3 && wait $p4; }
check "4 writers finished" writers_ok
check "resync completes" wait_sync $M 240
check "legs identical" legs_identical /dev/vda /dev/vdb $L
chunk_ok() { # FILE_SKIP_64K DEV_SEEK_64K
	dd if=/tmp/w bs=64k skip=$1 count=64 2>/dev/null > /tmp/want
	dd if=/dev/mapper/$M bs=64k skip=$2 count=64 iflag=direct 2>/dev/null > /tmp/got
	cmp /tmp/want /tmp/got
}
check "same-region writers: data reads back" chunk_ok 0 128
check "writer 3 data reads back" chunk_ok 64 384
check "writer 4 data reads back" chunk_ok 128 640
check "remove" rmdev $M

# suspend/resume and reload in the middle of a resync
check "leg 1 zeros again" dd if=/dev/zero of=/dev/vdb bs=1M count=64 oflag=direct
check "create again" mkmirror $M "$T" || tap_end
dd if=/tmp/w of=/dev/mapper/$M bs=1M seek=2 count=4 oflag=direct 2>/dev/null &
pw=$!
check "suspend mid-resync" timeout 60 dmsetup suspend $M
tap_diag "suspended at $(sync_ratio $M)"
check "resume" dmsetup resume $M
check "reload the same table" sh -c "dmsetup load $M --table '$T' && timeout 60 dmsetup suspend $M && dmsetup resume $M"
check "writer during suspend/reload finished" wait $pw
check "resync completes after reload" wait_sync $M 240
check "legs identical after reload" legs_identical /dev/vda /dev/vdb $L
w2_ok() {
	dd if=/tmp/w bs=1M count=4 2>/dev/null > /tmp/want
	dd if=/dev/mapper/$M bs=1M skip=2 count=4 iflag=direct 2>/dev/null > /tmp/got
	cmp /tmp/want /tmp/got
}
check "data written across the reload reads back" w2_ok
check "remove" rmdev $M
rm -f /tmp/w /tmp/want /tmp/got
check "unload" unload_rs
tap_end
