#!/bin/sh
# `dmsetup table` prints exactly what the C target prints, and the printed
# table loads back (reload of the live device, and create of a second
# device) to the identical table. `dmsetup status` has the C format
# "<#legs> <maj:min>... <in_sync>/<regions> 1 <A per leg> 1 core".
. "$(dirname "$0")/lib.sh"

check "load $(impl_name)" load_rs || tap_end
A=$(majmin /dev/vda)
B=$(majmin /dev/vdb)
C=$(majmin /dev/vdc)
tap_diag "vda=$A vdb=$B vdc=$C"

table_is() { # NAME WANT
	got=$(dmsetup table "$1")
	[ "$got" = "$2" ] || fail "table of $1: '$got', want '$2'"
}
status_is() { # NAME ERE
	got=$(dmsetup status "$1")
	echo "$got" | grep -Eq "^$2\$" || fail "status of $1: '$got', want /$2/"
}
reload_same() { # NAME
	t=$(dmsetup table "$1") || return 1
	dmsetup load "$1" --table "$t" || return 1
	dmsetup resume "$1" || return 1
	table_is "$1" "$t"
}
create_same() { # NAME NEWNAME
	t=$(dmsetup table "$1") || return 1
	mkmirror "$2" "$t" || return 1
	table_is "$2" "$t" || return 1
	rmdev "$2"
}

n=0
# one_case IN WANT STATUS_ERE (IN/WANT without "start len mirror")
one_case() {
	n=$((n + 1))
	len=$1 in=$2 want=$3 st=$4
	if ! check "create: $in" mkmirror dmrs_tab "0 $len mirror $in"; then
		rmdev dmrs_tab
		return
	fi
	check "table: $in => $want" table_is dmrs_tab "0 $len mirror $want"
	check "status: $in" status_is dmrs_tab "0 $len mirror $st"
	check "reload printed table: $in" reload_same dmrs_tab
	check "create from printed table: $in" create_same dmrs_tab dmrs_tab2
	check "remove: $in" rmdev dmrs_tab
}

V="2 /dev/vda 0 /dev/vdb 0"
W="2 $A 0 $B 0"
P="$A $B"
# default sync (no sync word printed)
one_case 65536 "core 1 1024 $V" "core 1 1024 $W" "2 $P [0-9]+/64 1 AA 1 core"
# explicit sync
one_case 65536 "core 2 2048 sync $V" "core 2 2048 sync $W" "2 $P [0-9]+/32 1 AA 1 core"
# nosync: in sync at once
one_case 65536 "core 2 1024 nosync $V" "core 2 1024 nosync $W" "2 $P 64/64 1 AA 1 core"
# handle_errors
one_case 65536 "core 2 1024 nosync $V 1 handle_errors" "core 2 1024 nosync $W 1 handle_errors" \
	"2 $P 64/64 1 AA 1 core"
# handle_errors keep_log, default sync
one_case 65536 "core 1 512 $V 2 handle_errors keep_log" "core 1 512 $W 2 handle_errors keep_log" \
	"2 $P [0-9]+/128 1 AA 1 core"
# features in the other order are printed in the canonical order
one_case 65536 "core 2 1024 nosync $V 2 keep_log handle_errors" \
	"core 2 1024 nosync $W 2 handle_errors keep_log" "2 $P 64/64 1 AA 1 core"
# 3 legs with non-zero offsets
one_case 16384 "core 2 1024 nosync 3 /dev/vda 2048 /dev/vdb 4096 /dev/vdc 8192" \
	"core 2 1024 nosync 3 $A 2048 $B 4096 $C 8192" "3 $A $B $C 16/16 1 AAA 1 core"
# length not a multiple of the region size, default leg vdb, odd offsets
one_case 65000 "core 2 4096 nosync 2 /dev/vdb 100 /dev/vda 7" \
	"core 2 4096 nosync 2 $B 100 $A 7" "2 $B $A 16/16 1 AA 1 core"

check "no dm devices left" no_devices
check "unload" unload_rs
tap_end
