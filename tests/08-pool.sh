#!/bin/sh
# Why the fallback exists. With failslab failing every non-sleeping slab
# allocation of this task, mempool_alloc(GFP_ATOMIC) first hands out the
# pool's reserve and then returns NULL: that is where the old C code slept
# in mempool_alloc waiting for an element only kmirrord could free. Our
# allocation path must still complete, through kmalloc(GFP_NOIO|__GFP_NOFAIL)
# (which failslab leaves alone because it may sleep). Uses our module's
# debugfs file `pool_selftest`: writing N allocates N region entries the way
# kmirrord does and holds them all; reading it shows how each was obtained.
# Test knobs are not messages: `dmsetup message ... pool_selftest` and
# `fail_atomic` are refused.
. "$(dirname "$0")/lib.sh"

if [ "$DMRS_IMPL" = c ]; then
	tap_skip "pool self-test" "our module's debugfs file only"
	tap_end
fi
check "load $(impl_name)" load_rs || tap_end
M=dmrs_pool
check "create" mkmirror $M "0 65536 mirror core 2 1024 nosync 2 /dev/vda 0 /dev/vdb 0" || tap_end
FS=/sys/kernel/debug/failslab
ST=/sys/kernel/debug/dm_mirror_rs/pool_selftest
check "debugfs file $ST" [ -f $ST ]
refused() { ! dmsetup message $M 0 "$@" > /dev/null 2>&1 || fail "message $* accepted"; }
check "message pool_selftest is refused" refused pool_selftest 10
check "message fail_atomic is refused" refused fail_atomic 3
selftest() { # N
	# a subshell marked make-it-fail: only its allocations are failed
	timeout 60 sh -c "echo 1 > /proc/self/make-it-fail; echo $1 > $ST" &&
		cat $ST > /tmp/st 2>&1
}
setup_fs() {
	echo Y > $FS/task-filter && echo Y > $FS/ignore-gfp-wait && echo 0 > $FS/verbose &&
		echo 100 > $FS/probability && echo 0 > $FS/interval && echo -1 > $FS/times
}
check "failslab: all atomic slab allocations of the test task fail" setup_fs
at_end "echo 0 > $FS/probability; echo N > $FS/task-filter"
check "pool_selftest 200 completes" selftest 200
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
	echo 50 > $ST && cat $ST > /tmp/st 2>&1 || return 1
	[ "$(parse allocated)" = 50 ] || fail "allocated: $(cat /tmp/st)" || return 1
	[ "$(parse fallback)" = 0 ] || fail "fallback without pressure: $(cat /tmp/st)"
}
check "without pressure every entry comes from the pool" no_fail
check "a bad count is refused" sh -c "! echo x > $ST 2>/dev/null && ! echo 0 > $ST 2>/dev/null"
check "remove" rmdev $M
check "unload" unload_rs
tap_end
