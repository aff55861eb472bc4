#!/bin/sh
# The seed's reproducer: heavy writes through ext4 on a mirror in a small
# guest (run with --mem 192M), while failslab fails a quarter of all
# non-sleeping slab allocations and the region pool's atomic path is also
# forced to fail every 3rd time. kmirrord must never wait on its own pool:
# no hung task, no lockdep report, no allocation oops; the stats must show
# that the GFP_NOIO fallback really ran; fsck is clean and the legs are
# identical. DMRS_SEED_MIB (kernel cmdline dmrs.seed_mib) sets the total
# volume written (default 512).
. "$(dirname "$0")/lib.sh"
. "$DMRS_TESTS/lib-seed.sh"

total=${DMRS_SEED_MIB:-512}
check "load $(impl_name)" load_rs || tap_end
L=$(dev_sectors /dev/vda)
M=dmrs_seed
T="0 $L mirror core 2 1024 nosync 2 /dev/vda 0 /dev/vdb 0"
check "create: $T" mkmirror $M "$T" || tap_end
check "mkfs.ext4" mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/$M
mkdir -p /mnt/seed
check "mount" mount -t ext4 /dev/mapper/$M /mnt/seed
at_end "umount /mnt/seed 2>/dev/null"

FS=/sys/kernel/debug/failslab
failslab_on() {
	echo Y > $FS/ignore-gfp-wait || return 1
	echo 0 > $FS/verbose
	echo 25 > $FS/probability
	echo 0 > $FS/interval
	echo -1 > $FS/times
}
failslab_off() { echo 0 > $FS/probability; }
at_end "failslab_off"

# One round with no forced failure first, then the rest under pressure.
check "fill the filesystem without forced failures" seed_fill /mnt/seed $M "no faults"
check "failslab: 25% of atomic slab allocations fail" failslab_on
if [ "$DMRS_IMPL" != c ]; then
	check "region pool: every 3rd atomic attempt fails (fault point)" fail_atomic_every 3
fi
while [ "$written" -lt "$total" ]; do
	seed_fill /mnt/seed $M faults || break
done
check "wrote at least $total MiB through ext4 ($written MiB in $round rounds)" [ "$written" -ge "$total" ]
check "failslab off" failslab_off
if [ "$DMRS_IMPL" != c ]; then
	check "the GFP_NOIO fallback was used" seed_fallbacks_used $M
	check "fault point off" fail_atomic_every 0
fi
check "umount" umount /mnt/seed
check "fsck -n clean" e2fsck -f -n /dev/mapper/$M
check "legs identical" legs_identical /dev/vda /dev/vdb $L
check "remove" rmdev $M
check "unload" unload_rs
tap_end
