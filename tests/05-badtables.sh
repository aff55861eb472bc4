#!/bin/sh
# Malformed mirror tables: each must fail `dmsetup create`, leave no device
# (nor /dev/mapper node) behind and log a "device-mapper: table:" error.
# One TAP point per table. Afterwards a good mirror still works.
# The C target accepts one of them (offset 2^64, sscanf wraps it to 0): with
# dmrs.impl=c that point is reported as XFAIL (an expected failure), for
# ours it must fail.
. "$(dirname "$0")/lib.sh"

check "load $(impl_name)" load_rs || tap_end
L=$(dev_sectors /dev/vda)
V="/dev/vda 0 /dev/vdb 0"
M=dmrs_bad

n=0
bad() { # DESCRIPTION TABLE [C_QUIRK]: C_QUIRK = why the C target accepts it
	n=$((n + 1))
	kmsg_mark "bad-$n"
	if dmsetup create $M --table "$2" > "$DMRS_LOG" 2>&1; then
		if [ -n "${3:-}" ] && [ "$DMRS_IMPL" = c ]; then
			tap_xfail "rejects $1: $2" "known C quirk, accepted: $3"
			tap_diag "table: $(dmsetup table $M)"
			rmdev $M > /dev/null 2>&1
			return
		fi
		tap_fail "rejects $1: $2" "dmsetup create succeeded"
		rmdev $M > /dev/null 2>&1
	elif dev_exists $M; then
		tap_fail "rejects $1: $2" "device left behind after failed create"
		dmsetup remove --force $M > /dev/null 2>&1
	elif [ -e /dev/mapper/$M ]; then
		tap_fail "rejects $1: $2" "/dev/mapper/$M left behind"
		rm -f /dev/mapper/$M
	elif ! dmesg_since "bad-$n" | grep -q 'device-mapper: table:'; then
		tap_fail "rejects $1: $2" "no 'device-mapper: table:' line in dmesg"
	else
		tap_ok "rejects $1: $2"
		return
	fi
	tap_diag "$(cat "$DMRS_LOG")"
	tap_diag "$(dmesg_since "bad-$n")"
}

bad "no arguments"                 "0 $L mirror"
bad "missing log arg count"        "0 $L mirror core"
bad "garbage log arg count"        "0 $L mirror core x 1024 2 $V"
bad "unknown log type"             "0 $L mirror nosuchlog 1 1024 2 $V"
bad "log arg count beyond args"    "0 $L mirror core 99 1024 2 $V"
bad "core with 0 log args"         "0 $L mirror core 0 2 $V"
bad "core with 3 log args"         "0 $L mirror core 3 1024 nosync 1024 2 $V"
bad "region size 0"                "0 $L mirror core 1 0 2 $V"
bad "region size 1"                "0 $L mirror core 1 1 2 $V"
bad "region size 3"                "0 $L mirror core 1 3 2 $V"
bad "region size 1023"             "0 $L mirror core 1 1023 2 $V"
bad "huge region size"             "0 $L mirror core 1 99999999999999999999 2 $V"
bad "region size above target len" "0 2048 mirror core 1 4096 2 $V"
bad "negative region size"         "0 $L mirror core 1 -1024 2 $V"
bad "hex region size"              "0 $L mirror core 1 0x400 2 $V"
bad "bad sync word"                "0 $L mirror core 2 1024 fastsync 2 $V"
bad "disk log, 1 arg"              "0 $L mirror disk 1 1024 2 $V"
bad "disk log, missing log device" "0 $L mirror disk 2 /dev/nonexistent 1024 2 $V"
bad "1 mirror"                     "0 $L mirror core 1 1024 1 /dev/vda 0"
bad "10 mirrors" "0 $L mirror core 1 1024 10 $V $V $V $V $V"
bad "0 mirrors"                    "0 $L mirror core 1 1024 0 $V"
bad "garbage mirror count"         "0 $L mirror core 1 1024 two $V"
bad "mirror count with suffix"     "0 $L mirror core 1 1024 2x $V"
bad "too few leg args"             "0 $L mirror core 1 1024 2 /dev/vda 0 /dev/vdb"
bad "missing device"               "0 $L mirror core 1 1024 2 /dev/vda 0 /dev/nonexistent 0"
bad "garbage offset"               "0 $L mirror core 1 1024 2 /dev/vda 0 /dev/vdb abc"
bad "negative offset"              "0 $L mirror core 1 1024 2 /dev/vda 0 /dev/vdb -8"
bad "hex offset"                   "0 $L mirror core 1 1024 2 /dev/vda 0 /dev/vdb 0x10"
bad "offset overflow"              "0 $L mirror core 1 1024 2 /dev/vda 0 /dev/vdb 18446744073709551616" \
	"the kernel's sscanf %llu wraps 2^64 to offset 0"
bad "offset past device end"       "0 2048 mirror core 1 1024 2 /dev/vda 0 /dev/vdb $((L - 1024))"
bad "unknown feature"              "0 $L mirror core 1 1024 2 $V 1 frobnicate"
bad "block_on_error feature"       "0 $L mirror core 1 1024 2 $V 1 block_on_error"
bad "feature count beyond args"    "0 $L mirror core 1 1024 2 $V 2 handle_errors"
bad "garbage feature count"        "0 $L mirror core 1 1024 2 $V x handle_errors"
bad "feature count 0 with feature" "0 $L mirror core 1 1024 2 $V 0 handle_errors"
bad "keep_log without handle_errors" "0 $L mirror core 1 1024 2 $V 1 keep_log"
bad "extra trailing args"          "0 $L mirror core 1 1024 2 $V 1 handle_errors extra"
bad "extra args without features"  "0 $L mirror core 1 1024 2 $V handle_errors"
bad "4294967295 log args"          "0 $L mirror core 4294967295 1024 2 $V"
bad "4294967296 mirrors"           "0 $L mirror core 1 1024 4294967296 $V"
tap_diag "$n bad tables"

# the guest and the target are still healthy
check "no dm devices left" no_devices
healthy() {
	mkmirror dmrs_ok "0 8192 mirror core 2 1024 nosync 2 $V" || return 1
	randfile /tmp/ok 4 || return 1
	dd if=/tmp/ok of=/dev/mapper/dmrs_ok bs=1M oflag=direct 2>/dev/null || return 1
	reads_as /tmp/ok /dev/mapper/dmrs_ok || return 1
	legs_identical /dev/vda /dev/vdb 8192 || return 1
	rm -f /tmp/ok
	rmdev dmrs_ok
}
check "a good mirror still works" healthy
check "unload" unload_rs
tap_end
