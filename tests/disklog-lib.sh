# Helpers for the disk-log tests (30-3x, crash-cycle). Source after lib.sh:
#   . /tests/lib.sh
#   . /tests/disklog-lib.sh
# (Not a test: guest-init.sh runs only /tests/[0-9]*.sh for "all".)
#
# The C dm-log disk format (drivers/md/dm-log.c): at byte 0 a little-endian
# u32 magic 0x4D695272, u32 version 2, u64 nr_regions; at byte 1024 the clean
# bitset, bit i in byte i/8, bit i%8, 1 = in sync, round_up(regions, 64)/8
# bytes long.

DLOG_MAGIC=4d695272

# log_hex DEV OFF LEN: LEN bytes at byte OFF of DEV, read with O_DIRECT, as
# lowercase hex without spaces
log_hex() {
	local _sec=$((($2 + $3 + 511) / 512))
	dd if="$1" bs=512 count=$_sec iflag=direct 2> /dev/null |
		od -An -v -tx1 -j "$2" -N "$3" | tr -d ' \n'
}
# le_dec HEX: the little-endian number HEX (bytes in disk order) in decimal
le_dec() {
	local _h=$1 _r=
	while [ -n "$_h" ]; do
		_r=${_h:0:2}$_r
		_h=${_h:2}
	done
	echo $((0x${_r:-0}))
}
# ones_hex N BYTES: BYTES bytes of a bitset whose first N bits are 1, as hex
ones_hex() {
	local _n=$1 _i=0 _o=
	while [ $_i -lt "$2" ]; do
		if [ "$_n" -ge 8 ]; then
			_o=${_o}ff
			_n=$((_n - 8))
		elif [ "$_n" -gt 0 ]; then
			_o=$_o$(printf %02x $(((1 << _n) - 1)))
			_n=0
		else
			_o=${_o}00
		fi
		_i=$((_i + 1))
	done
	echo "$_o"
}
# bitset_bytes N: the length of the on-disk bitset for N regions
bitset_bytes() { echo $((($1 + 63) / 64 * 8)); }

# log_header_ok DEV NREG: magic, version 2 and nr_regions NREG at byte 0
log_header_ok() {
	local _h
	_h=$(log_hex "$1" 0 16)
	[ "${_h:0:8}" = 7252694d ] || fail "magic bytes ${_h:0:8}, want 7252694d (0x$DLOG_MAGIC LE)" || return 1
	[ "$(le_dec "${_h:8:8}")" = 2 ] || fail "version bytes ${_h:8:8}, want 2" || return 1
	[ "$(le_dec "${_h:16:16}")" = "$2" ] || fail "nr_regions bytes ${_h:16:16} = $(le_dec "${_h:16:16}"), want $2" || return 1
}
# log_bitset_is DEV HEX: the bitset at byte 1024 starts with HEX
log_bitset_is() {
	local _got
	_got=$(log_hex "$1" 1024 $((${#2} / 2)))
	[ "$_got" = "$2" ] || fail "bitset at byte 1024: $_got, want $2"
}
# log_all_clean DEV NREG: header for NREG regions, bits 0..NREG-1 set and
# the rest of the last 64-bit word clear
log_all_clean() {
	log_header_ok "$1" "$2" || return 1
	log_bitset_is "$1" "$(ones_hex "$2" "$(bitset_bytes "$2")")"
}
# log_bits DEV NREG: the clean bits of regions 0..NREG-1 as a 0/1 string
log_bits() {
	local _nb=$((($2 + 7) / 8)) _hex _i=0 _j _b _o=
	_hex=$(log_hex "$1" 1024 $_nb)
	while [ $_i -lt $_nb ]; do
		_b=$((0x${_hex:$((_i * 2)):2}))
		_j=0
		while [ $_j -lt 8 ] && [ $((_i * 8 + _j)) -lt "$2" ]; do
			_o=$_o$(((_b >> _j) & 1))
			_j=$((_j + 1))
		done
		_i=$((_i + 1))
	done
	echo "$_o"
}
# ones_str N: N ones ("111...")
ones_str() {
	local _s= _i=0
	while [ $_i -lt "$1" ]; do
		_s=${_s}1
		_i=$((_i + 1))
	done
	echo "$_s"
}
# legs_differ DEV0 DEV1 SECTORS: the ranges are not identical
legs_differ() { ! legs_identical "$@" > /dev/null 2>&1 || fail "$1 and $2 are identical"; }
# ones_in BITS: number of 1s in a 0/1 string
ones_in() { local _s=${1//0/}; echo ${#_s}; }
# zeros_at BITS: the positions of the 0s, space separated
zeros_at() {
	local _i=0 _o=
	while [ $_i -lt ${#1} ]; do
		[ "${1:$_i:1}" = 0 ] && _o="$_o $_i"
		_i=$((_i + 1))
	done
	echo $_o
}
# set_bits BITS POS...: BITS with the given positions set to 1
set_bits() {
	local _s=$1 _p
	shift
	for _p in "$@"; do
		_s=${_s:0:$_p}1${_s:$((_p + 1))}
	done
	echo "$_s"
}
# log_write_bits DEV BITS: write the 0/1 string BITS as the clean bits of
# regions 0.. (the unused high bits of the last byte written 0); the rest of
# the log is kept
log_write_bits() {
	local _i=0 _j _b _hex= _n=${#2}
	while [ $_i -lt "$_n" ]; do
		_b=0
		_j=0
		while [ $_j -lt 8 ] && [ $((_i + _j)) -lt "$_n" ]; do
			[ "${2:$((_i + _j)):1}" = 1 ] && _b=$((_b | (1 << _j)))
			_j=$((_j + 1))
		done
		_hex=$_hex$(printf %02x $_b)
		_i=$((_i + 8))
	done
	dd if="$1" of=/tmp/dlog-patch bs=4096 count=1 iflag=direct 2> /dev/null || return 1
	echo "$_hex" | xxd -r -p | dd of=/tmp/dlog-patch bs=1 seek=1024 conv=notrunc 2> /dev/null || return 1
	dd if=/tmp/dlog-patch of="$1" bs=4096 count=1 oflag=direct 2> /dev/null || return 1
	rm -f /tmp/dlog-patch
}
# clear_bits BITS POS...: BITS with the given positions set to 0
clear_bits() {
	local _s=$1 _p
	shift
	for _p in "$@"; do
		_s=${_s:0:$_p}0${_s:$((_p + 1))}
	done
	echo "$_s"
}
# wipe_log DEV: zero the first MiB of a log device (no valid header)
wipe_log() { dd if=/dev/zero of="$1" bs=1M count=1 oflag=direct 2> /dev/null; }

# region_same DEV0 DEV1 REGION RSIZE [LIMIT]: region REGION (RSIZE sectors,
# cut at sector LIMIT) is byte-identical on both devices
region_same() {
	local _s=$(($3 * $4)) _n=$4
	[ -n "${5:-}" ] && [ $((_s + _n)) -gt "$5" ] && _n=$(($5 - _s))
	cmp -n $((_n * 512)) -i $((_s * 512)):$((_s * 512)) "$1" "$2" > /dev/null 2>&1
}
# put_at FILE DEV SECTOR: write FILE to DEV at SECTOR (O_DIRECT)
put_at() { dd if="$1" of="$2" bs=64k seek=$(($3 * 512)) oflag=direct,seek_bytes conv=notrunc 2> /dev/null; }
# get_at DEV SECTOR BYTES FILE: read BYTES at SECTOR of DEV (O_DIRECT) into FILE
get_at() { dd if="$1" of="$4" bs=64k skip=$(($2 * 512)) count="$3" iflag=direct,skip_bytes,count_bytes 2> /dev/null; }
# is_at FILE DEV SECTOR: DEV holds FILE at SECTOR (read with O_DIRECT)
is_at() {
	get_at "$2" "$3" "$(stat -c %s "$1")" /tmp/dlog-isat || return 1
	cmp "$1" /tmp/dlog-isat > /dev/null || { rm -f /tmp/dlog-isat; fail "$2 @ sector $3 does not hold $1"; return 1; }
	rm -f /tmp/dlog-isat
}
# copy_region SRC DST SECTOR SECTORS: copy a range from SRC to DST (O_DIRECT)
copy_region() {
	dd if="$1" of="$2" bs=64k skip=$(($3 * 512)) seek=$(($3 * 512)) count=$(($4 * 512)) \
		iflag=direct,skip_bytes,count_bytes oflag=direct,seek_bytes conv=notrunc 2> /dev/null
}

# log_char NAME: the log health character, last word of the status
log_char() { dmsetup status "$1" | awk '{print $NF}'; }
# ratio_is NAME WANT: the sync ratio of NAME is WANT now
ratio_is() {
	local _r
	_r=$(sync_ratio "$1")
	[ "$_r" = "$2" ] || fail "$1: sync ratio $_r, want $2"
}
# events NAME: the table event counter of NAME
events() { dmsetup info -c --noheadings -o events "$1" | tr -d ' '; }

# create_held NAME TABLE HOLD: create mirror NAME while the dm device HOLD
# (one of its legs) is suspended, so that no recovery copy can complete:
# sets HELD_RATIO and HELD_STATUS to what `dmsetup status` shows right after
# the create, then leaves HOLD suspended (resume it with `dmsetup resume`;
# tap_end resumes it before removing NAME).
HELD_RATIO=
HELD_STATUS=
create_held() {
	local _p _i=0
	HELD_RATIO=
	HELD_STATUS=
	dmsetup suspend "$3" || fail "suspend $3 failed" || return 1
	dmsetup create "$1" --table "$2" > /tmp/dlog-create.out 2>&1 &
	_p=$!
	while kill -0 $_p 2> /dev/null && [ $_i -lt 300 ]; do
		sleep 0.2
		_i=$((_i + 1))
	done
	if kill -0 $_p 2> /dev/null; then
		dmsetup resume "$3"
		wait $_p
		at_end "rmdev $1"
		fail "dmsetup create $1 blocked for 60 s while its leg $3 was suspended"
		return 1
	fi
	if ! wait $_p; then
		cat /tmp/dlog-create.out
		dmsetup resume "$3"
		fail "dmsetup create $1 failed: $2"
		return 1
	fi
	at_end "rmdev $1"
	at_end "dmsetup resume $3"
	HELD_STATUS=$(mirror_status "$1")
	HELD_RATIO=$(sync_ratio "$1")
	echo "status right after create: $HELD_STATUS"
	[ -b "/dev/mapper/$1" ] || fail "/dev/mapper/$1 is not a block device"
}
# held_ratio_is WANT: HELD_RATIO is WANT
held_ratio_is() { [ "$HELD_RATIO" = "$1" ] || fail "sync ratio right after create: $HELD_RATIO, want $1 (status $HELD_STATUS)"; }
# mklinear NAME DEV: a dm linear device over all of DEV, removed by tap_end
mklinear() {
	dmsetup create "$1" --table "0 $(dev_sectors "$2") linear $2 0" || fail "create linear $1" || return 1
	at_end "rmdev $1"
}
