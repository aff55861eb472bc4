#!/bin/sh
# Create and remove mirrors.
#  - 2 legs over the whole of /dev/vda and /dev/vdb (default sync, so
#    recovery runs); removed while it is still resyncing.
#  - 2 legs, 16 MiB at offset 0, default sync: random data seeded on the
#    default leg (vda) is copied to vdb; waits for sync, compares the legs.
#  - 3 legs, 16 MiB each, by offsets on two disks (no extra devices):
#    leg0 = vda @ 128 MiB, leg1 = vdb @ 128 MiB, leg2 = vda @ 192 MiB;
#    seeded on leg0, waits for sync, compares all three legs.
. "$(dirname "$0")/lib.sh"

check "load $(impl_name)" load_rs || tap_end
L=$(dev_sectors /dev/vda)
A=$(majmin /dev/vda)
B=$(majmin /dev/vdb)
S=32768                   # 16 MiB
O1=262144 O2=393216       # 128 MiB, 192 MiB
tap_diag "vda=$A vdb=$B, $L sectors"

status_is() { # NAME ERE
	st=$(mirror_status "$1")
	echo "$st" | grep -Eq "^$2\$" || fail "status of $1 is '$st', want /$2/"
}
gone() {
	! dev_exists "$1" || fail "$1 still exists"
	[ ! -e "/dev/mapper/$1" ] || fail "/dev/mapper/$1 still exists"
}
seed() { # DEV OFFSET_SECTORS
	dd if=/tmp/seed of="$1" bs=1M oflag=direct,seek_bytes seek=$(($2 * 512)) 2>&1 && sync
}

# --- 2 legs, whole disks, removed while resyncing
T="0 $L mirror core 1 1024 2 /dev/vda 0 /dev/vdb 0"
if check "create 2 legs: $T" mkmirror dmrs_c2 "$T"; then
	check "2-leg status" status_is dmrs_c2 "2 $A $B [0-9]+/$((L / 1024)) 1 AA 1 core"
	check "2-leg table" sh -c "dmsetup table dmrs_c2 | grep -q ' mirror '"
	check "remove 2 legs while resyncing" rmdev dmrs_c2
	check "2-leg device gone" gone dmrs_c2
fi

# --- 2 legs, 16 MiB, resync from the default leg
check "seed 16 MiB of random data on vda" randfile /tmp/seed 16
check "write seed to vda" seed /dev/vda 0
T="0 $S mirror core 1 1024 2 /dev/vda 0 /dev/vdb 0"
if check "create 2 legs: $T" mkmirror dmrs_s2 "$T"; then
	check "2 legs in sync" wait_sync dmrs_s2 120
	check "2-leg status in sync" status_is dmrs_s2 "2 $A $B 32/32 1 AA 1 core"
	check "2 legs identical after resync" legs_identical /dev/vda /dev/vdb $S
	check "resynced legs hold the seed" data_at /tmp/seed /dev/vdb 0
	check "read through 2-leg mirror" reads_as /tmp/seed /dev/mapper/dmrs_s2
	check "remove 2 legs" rmdev dmrs_s2
fi

# --- 3 legs by offsets
check "write seed to vda @ $O1" seed /dev/vda $O1
T="0 $S mirror core 1 1024 3 /dev/vda $O1 /dev/vdb $O1 /dev/vda $O2"
if check "create 3 legs: $T" mkmirror dmrs_c3 "$T"; then
	check "3 legs in sync" wait_sync dmrs_c3 120
	check "3-leg status" status_is dmrs_c3 "3 $A $B $A 32/32 1 AAA 1 core"
	check "3-leg table" sh -c "dmsetup table dmrs_c3 | grep -qx '0 $S mirror core 1 1024 3 $A $O1 $B $O1 $A $O2'"
	check "legs 0 and 1 identical" legs_identical /dev/vda /dev/vdb $S $O1 $O1
	check "legs 0 and 2 identical" legs_identical /dev/vda /dev/vda $S $O1 $O2
	check "leg 2 holds the seed" data_at /tmp/seed /dev/vda $O2
	check "remove 3 legs" rmdev dmrs_c3
	check "3-leg device gone" gone dmrs_c3
fi

rm -f /tmp/seed
check "no dm devices left" no_devices
check "unload" unload_rs
tap_end
