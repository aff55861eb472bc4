#!/bin/sh
# The seed's reproducer on a dmraid set: `cat /dev/zero > file` on ext4 on
# the NVIDIA RAID1 set that dmraid activates over the SATA disks, in a small
# guest (run with --mem 192M; the SATA images bigger than the guest's RAM,
# e.g. --sata-size 640M), filled and emptied until DMRS_SEED_MIB (kernel
# cmdline dmrs.seed_mib, default 1024) MiB went through the filesystem. With
# our module, every 3rd atomic region-pool attempt fails after the first
# round (the GFP_NOIO fallback must carry kmirrord). No hang, no splat, fsck
# clean, legs identical. Not in "all": scripts/check.sh runs it in its own
# 192 MiB guest:
#   scripts/run-guest.sh --module dm_mirror_rs.ko --mem 192M --sata-size 640M \
#       --tests dmraid-seed --test-timeout 1500 --timeout 1800
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/lib-clients.sh"
. "$DMRS_TESTS/lib-seed.sh"
need_disks sda sdb

total=${DMRS_SEED_MIB:-1024}
A=/dev/sda
B=/dev/sdb
D=$(( $(dev_sectors $A) - 2 ))
tap_diag "$(free -m | head -n 2)"
check "load $(impl_name)" load_rs || tap_end
check "$(impl_name) is the only mirror provider" only_impl_loaded
nv_get $A /tmp/nv-a
SET=$(nv_name /tmp/nv-a)
M=/dev/mapper/$SET
at_end "dmraid -an"
ay() {
	dmraid -ay > /tmp/ay.out 2>&1 || fail "$(cat /tmp/ay.out)" || return 1
	[ -b $M ] || fail "$M is not a block device" || return 1
	_t=$(dmsetup table $SET)
	tap_diag "$SET: $_t"
	echo "$_t" | grep -q "^0 $D mirror core 2 [0-9]* nosync 2 $(majmin $A) 0 $(majmin $B) 0 1 handle_errors$" ||
		fail "table '$_t'"
}
check "dmraid -ay: $SET is a mirror over $A and $B" ay || tap_end
check "the set holds a reference on $(impl_name)" impl_in_use
check "mkfs.ext4" mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 $M
mkdir -p /mnt/seed
check "mount" mount -t ext4 $M /mnt/seed
at_end "umount /mnt/seed 2>/dev/null"

check "fill the filesystem" seed_fill /mnt/seed $SET "no faults"
if [ "$DMRS_IMPL" != c ]; then
	check "region pool: every 3rd atomic attempt fails (fault point)" fail_atomic_every 3
fi
while [ "$written" -lt "$total" ]; do
	seed_fill /mnt/seed $SET more || break
done
check "wrote at least $total MiB through ext4 ($written MiB in $round rounds)" [ "$written" -ge "$total" ]
if [ "$DMRS_IMPL" != c ]; then
	check "the GFP_NOIO fallback was used" seed_fallbacks_used $SET
	check "fault point off" fail_atomic_every 0
fi
check "umount" umount /mnt/seed
check "fsck -n clean" e2fsck -f -n $M
in_sync() { _r=$(sync_ratio $SET); [ "${_r%/*}" = "${_r#*/}" ] || fail "sync ratio $_r"; }
check "the set is in sync" in_sync
check "dmraid -an" dmraid -an
check "no dm devices left" no_devices
check "legs identical over the data area" legs_identical $A $B $D
check "unload" unload_rs
tap_end
