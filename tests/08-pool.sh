#!/bin/sh
# Why the fallback exists. With failslab failing every non-sleeping slab
# allocation of this task, mempool_alloc(GFP_ATOMIC) first hands out the
# pool's reserve and then returns NULL: that is where the old C code slept
# in mempool_alloc waiting for an element only kmirrord could free. Our
# allocation path must still complete, through kmalloc(GFP_NOIO|__GFP_NOFAIL)
# (which failslab leaves alone because it may sleep). Uses the target's
# `pool_selftest N` message, which allocates N region entries the way
# kmirrord does and holds them all.
. /tests/lib.sh

if [ "$DMRS_IMPL" = c ]; then
	tap_skip "pool self-test" "our module's message only"
	tap_end
fi
check "load $(impl_name)" load_rs || tap_end
M=dmrs_pool
check "create" mkmirror $M "0 65536 mirror core 2 1024 nosync 2 /dev/vda 0 /dev/vdb 0" || tap_end
FS=/sys/kernel/debug/failslab
selftest() {
	# a subshell marked make-it-fail: only its allocations are failed
	timeout 60 sh -c "echo 1 > /proc/self/make-it-fail; exec dmsetup message $M 0 pool_selftest 200" > /tmp/st 2>&1
}
setup_fs() {
	echo Y > $FS/task-filter && echo Y > $FS/ignore-gfp-wait && echo 0 > $FS/verbose &&
		echo 100 > $FS/probability && echo 0 > $FS/interval && echo -1 > $FS/times
}
check "failslab: all atomic slab allocations of the test task fail" setup_fs
at_end "echo 0 > $FS/probability; echo N > $FS/task-filter"
check "pool_selftest 200 completes" selftest
tap_diag "$(cat /tmp/st)"
parse() { tr ' ' '\n' < /tmp/st | sed -n "s/^$1=//p"; }
reserve_then_fallback() {
	[ "$(parse allocated)" = 200 ] || fail "allocated: $(cat /tmp/st)" || return 1
	# the reserve (64) is used up, then the atomic path returns NULL
	[ "$(parse from_pool)" -ge 1 ] || fail "nothing from the pool: $(cat /tmp/st)" || return 1
	[ "$(parse fallback)" -ge 100 ] || fail "too few fallbacks: $(cat /tmp/st)" || return 1
	[ "$(parse atomic_failed)" = "$(parse fallback)" ] || fail "$(cat /tmp/st)"
}
check "pool reserve drained, the rest came from the GFP_NOIO fallback" reserve_then_fallback
check "failslab off" sh -c "echo 0 > $FS/probability"
no_fail() {
	dmsetup message $M 0 pool_selftest 50 > /tmp/st 2>&1 || return 1
	[ "$(parse fallback)" = 0 ] || fail "fallback without pressure: $(cat /tmp/st)"
}
check "without pressure every entry comes from the pool" no_fail
check "remove" rmdev $M
check "unload" unload_rs
tap_end
