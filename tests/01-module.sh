#!/bin/sh
# Module life cycle: load, target "mirror" registered with version >= 1.14.0,
# the version of the C dm-mirror of the same kernel (1.14.0 on 6.12, 1.15.0
# on 7.3, which takes atomic writes), unload (the target disappears), load
# again, unload.
. "$(dirname "$0")/lib.sh"

mirror_listed() {
	v=$(target_version mirror)
	[ -n "$v" ] || fail "dmsetup targets does not list mirror: $(dmsetup targets | tr '\n' ' ')" || return 1
	version_ge "$v" 1.14.0 || fail "mirror version $v < 1.14.0"
}
mirror_gone() {
	v=$(target_version mirror)
	[ -z "$v" ] || fail "mirror v$v still registered"
}

# same_as_c: ours (loaded) reports the version C reports on this kernel
same_as_c() {
	local ours c
	ours=$(target_version mirror)
	unload_rs || return 1
	c=$(c_version) || return 1
	load_rs || return 1
	tap_diag "versions: ours $ours, C $c"
	[ "$ours" = "$c" ] || fail "ours reports $ours, the C dm-mirror of this kernel $c"
}

tap_diag "module under test: $(impl_name)"
check "load $(impl_name)" load_rs
check "dmsetup targets lists mirror >= v1.14.0" mirror_listed
if [ "$DMRS_IMPL" = c ]; then
	tap_skip "the version of this kernel's C dm-mirror" "the module under test is C's"
elif have_c; then
	check "the version of this kernel's C dm-mirror" same_as_c
else
	tap_skip "the version of this kernel's C dm-mirror" "no C dm-mirror module"
fi
check "unload (rmmod)" unload_rs
check "mirror target gone after unload" mirror_gone
check "load again" load_rs
check "mirror listed after reload" mirror_listed
check "unload again" unload_rs
tap_end
