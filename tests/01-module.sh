#!/bin/sh
# Module life cycle: load, target "mirror" registered with version >= 1.14.0,
# unload (the target disappears), load again, unload.
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

tap_diag "module under test: $(impl_name)"
check "load $(impl_name)" load_rs
check "dmsetup targets lists mirror >= v1.14.0" mirror_listed
check "unload (rmmod)" unload_rs
check "mirror target gone after unload" mirror_gone
check "load again" load_rs
check "mirror listed after reload" mirror_listed
check "unload again" unload_rs
tap_end
