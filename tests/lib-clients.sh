# Helpers for the tests of the target's real clients, dmraid and LVM2
# (tests/20-dmraid.sh, 21-lvm.sh, dmraid-seed.sh). Source after lib.sh.

export LVM_SUPPRESS_FD_WARNINGS=1

# impls: the implementations a client test runs its scenario with, in this
# order and in one boot: ours, then the C dm-mirror (only C with dmrs.impl=c)
impls() {
	if [ "$DMRS_IMPL" = c ]; then echo c; elif have_c; then echo rs c; else echo rs; fi
}
# mirror_module: the module that provides "mirror" for $DMRS_IMPL
mirror_module() { if [ "$DMRS_IMPL" = c ]; then echo dm_mirror; else rs_modname; fi; }
# only_impl_loaded: the module under test is loaded, the other one is not
only_impl_loaded() {
	if [ "$DMRS_IMPL" = c ]; then
		mod_loaded dm_mirror || fail "dm_mirror not loaded"
		! mod_loaded "$(rs_modname)" || fail "$(rs_modname) is loaded"
	else
		mod_loaded "$(rs_modname)" || fail "$(rs_modname) not loaded"
		! mod_loaded dm_mirror || fail "the C dm_mirror is loaded"
	fi
}
# impl_in_use [MIN]: the mirror module holds at least MIN (1) references,
# one per live "mirror" table
impl_in_use() {
	local _m _r
	_m=$(mirror_module)
	_r=$(cat /sys/module/$_m/refcnt)
	[ "$_r" -ge "${1:-1}" ] || fail "$_m refcnt $_r, want >= ${1:-1}"
}
# leg_has FILE DEV SECTOR: DEV holds FILE's bytes at SECTOR
leg_has() {
	flushbufs "$2"
	cmp -n "$(stat -c %s "$1")" -i 0:$(($3 * 512)) "$1" "$2"
}

# ---- NVIDIA (nForce) RAID metadata as dmraid reads it ---------------------
# (scripts/nvidia-meta.py writes it on the host)
# The 120-byte block (30 LE u32 words summing to 0 mod 2^32) sits in the
# second-to-last 512-byte sector of each member disk.

# nv_sector DEV: the metadata sector
nv_sector() { echo $(( $(blockdev --getsz "$1") - 2 )); }
# nv_get DEV FILE: copy DEV's metadata sector to FILE
nv_get() {
	dd if="$1" of="$2" bs=512 skip="$(nv_sector "$1")" count=1 iflag=direct 2>/dev/null
}
# nv_put FILE DEV: write FILE as DEV's metadata sector
nv_put() {
	dd if="$1" of="$2" bs=512 seek="$(nv_sector "$2")" count=1 oflag=direct conv=notrunc 2>/dev/null
}
# nv_u8 FILE OFF / nv_u32 FILE OFF: a field of a saved metadata sector
nv_u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
nv_u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
# nv_sum FILE: the sum of the 30 words mod 2^32 (0 when the checksum is right)
nv_sum() {
	local _s=0 _w
	for _w in $(od -An -tu4 -N120 "$1"); do _s=$((_s + _w)); done
	echo $((_s & 0xffffffff))
}
# nv_name FILE: the set name dmraid derives from the signature: "nvidia_" and
# the 8 hex digits of the sum of the 4 signature words, 0-9 shown as a-j
nv_name() {
	local _s=0 _o
	for _o in 56 60 64 68; do _s=$((_s + $(nv_u32 "$1" $_o))); done
	echo "nvidia_$(printf '%08x' $((_s & 0xffffffff)) | tr 0-9 a-j)"
}
_nv_poke() { # FILE OFF BYTE
	if [ "$3" = 0 ]; then
		dd if=/dev/zero of="$1" bs=1 count=1 seek="$2" conv=notrunc 2>/dev/null
	else
		printf '%b' "\\0$(printf %03o "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
	fi
}
# nv_set_u8 FILE OFF VALUE: change one byte field and fix the checksum
nv_set_u8() {
	local _old _chk _i
	_old=$(nv_u8 "$1" "$2")
	# the byte is bits 8*(OFF%4).. of its word
	_chk=$(( ($(nv_u32 "$1" 12) + ((_old - $3) << (8 * ($2 % 4)))) & 0xffffffff ))
	_nv_poke "$1" "$2" "$3"
	for _i in 0 1 2 3; do
		_nv_poke "$1" $((12 + _i)) $(( (_chk >> (8 * _i)) & 255 ))
	done
	[ "$(nv_sum "$1")" = 0 ] || fail "nv_set_u8: checksum still wrong"
}
# nv_break FILE: make the checksum wrong (dmraid then ignores the disk)
nv_break() { _nv_poke "$1" 12 $(( ($(nv_u8 "$1" 12) + 1) & 255 )); }
NV_JOB=72          # raidJobCode (u8 at 0x48)
NV_TOTAL_VOLUMES=74 # totalVolumes (u8 at 0x4A)
