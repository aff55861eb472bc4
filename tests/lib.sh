# Helpers for the test scripts (POSIX sh, busybox ash). A test sources it
# from its own directory:
#   . "$(dirname "$0")/lib.sh"
# Environment (set by the runner, tests/run_kselftest.sh, which /init of
# the QEMU guest calls; defaults for running a script by hand):
#   DMRS_TAP          where KTAP lines go (default stdout; /dev/ttyS1 in the
#                     QEMU guest)
#   DMRS_TAP_COUNT    file with this test's counters ("results pass fail
#                     skip xfail"); a new one prints the KTAP header
#   DMRS_KTAP_INDENT  prefix of every KTAP line ("  " when the runner nests
#                     the test as a subtest; empty when run alone)
#   DMRS_IMPL         rs (our module, default) or c (the C dm-mirror)
#   DMRS_TEST         test name (the script's name without .sh)
#   DMRS_RS_KO        our module (default /modules/dm_mirror_rs.ko)
#   DMRS_GUEST        1 in the project's QEMU guests (scripts/guest-init.sh,
#                     scripts/bench-guest.sh); elsewhere the tests refuse
#                     to run unless DMRS_DISKS names the scratch disks
#                     (tests/lib-disks.sh: they are overwritten)
# A script reports its results with tap_ok/tap_fail/tap_skip/check and ends
# with `tap_end`, which runs the cleanup, prints the totals and exits with
# kselftest's codes: 0 pass, 1 fail (a failed point, no point at all, or a
# declared plan not met), 4 skip (every point skipped). Any other exit, or
# none through tap_end, means the script itself broke; the runner reports
# the test as failed.

# The helpers use expansions of busybox ash and bash (${v//x/y}, ${v:0:n});
# under a shell without them (dash, Debian's sh) the script starts again
# under one that has them.
if ! (eval '_x=ab; [ "${_x//a/c}" = cb ] && [ "${_x:0:1}" = a ]') 2>/dev/null; then
	if command -v bash > /dev/null; then
		exec bash "$0" "$@"
	elif command -v busybox > /dev/null; then
		exec busybox sh "$0" "$@"
	fi
	echo "$0: needs busybox sh or bash" >&2
	exit 1
fi
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1
DMRS_TESTS=$(cd "$(dirname "$0")" && pwd)
# Outside the project's guests the disks a test writes must be named
# (DMRS_DISKS); the test then runs in a mount namespace where /dev/vda,
# /dev/vdb, ... are those disks (tests/lib-disks.sh). Without DMRS_DISKS it
# refuses to run (exit 4, before touching anything).
if [ "${DMRS_GUEST:-0}" != 1 ] && [ "${DMRS_NS:-0}" != 1 ]; then
	. "$DMRS_TESTS/lib-disks.sh"
	dmrs_enter_ns sh "$0" "$@"
	exit $?
fi
: "${DMRS_TAP:=/dev/stdout}"
: "${DMRS_IMPL:=rs}"
: "${DMRS_TEST=$(basename "$0" .sh)}"
: "${DMRS_KTAP_INDENT=}"
if [ -z "${DMRS_TAP_COUNT:-}" ]; then
	DMRS_TAP_COUNT=/tmp/dmrs-ktap.$$
	rm -f "$DMRS_TAP_COUNT" "$DMRS_TAP_COUNT".*
fi
export DMRS_TAP DMRS_TAP_COUNT DMRS_KTAP_INDENT DMRS_IMPL DMRS_TEST
if [ -z "${DMRS_RS_KO:-}" ]; then
	DMRS_RS_KO=/modules/dm_mirror_rs.ko
	if [ ! -e "$DMRS_RS_KO" ]; then
		for _f in /modules/*.ko; do
			[ -e "$_f" ] && { DMRS_RS_KO=$_f; break; }
		done
	fi
fi
# "<modname> <path> <deps>" of every module the guest carries
# (scripts/mkinitramfs.sh); elsewhere there is none and modules come from
# modprobe (the running kernel's) and DMRS_RS_KO
DMRS_MOD_INDEX=/modules/index
# Debian's busybox ash runs its own applets before searching PATH; use the
# GNU tools the initramfs carries (cmp -n/-i, dd *_bytes flags, faster sha).
for _t in cmp dd sha256sum timeout; do
	[ -x /usr/bin/$_t ] && eval "$_t() { /usr/bin/$_t \"\$@\"; }"
done
DMRS_LOG=/tmp/dmrs-$$.log # output of the last command run by check/mkmirror

# --------------------------------------------------------------- KTAP ----
# KTAP version 1 (Documentation/dev-tools/ktap.rst), one test per script:
#   KTAP version 1
#   # Subtest: NAME            (only when nested by the runner)
#   1..N                       (only if the script declares it: tap_plan)
#   ok 1 NAME # [SKIP|XFAIL] [reason]  /  not ok 2 NAME # reason
#   # Totals: pass:P fail:F xfail:X xpass:0 skip:S error:0   (tap_end)
# every line prefixed with DMRS_KTAP_INDENT. Points are numbered per script.
# (no subprocesses here: a fork+exec costs ~10 ms in the TCG debug guest)
_tap_clean() { # one line, no '#' (it starts a KTAP directive)
	local _s="$*"
	_s=${_s//'#'/ }
	_s=${_s//$'\n'/ }
	_s=${_s//$'\t'/ }
	_tc=${_s:0:400}
}
_tap_emit() {
	echo "$DMRS_KTAP_INDENT$*" >> "$DMRS_TAP"
	# also to the console, via the kernel log for a timestamp
	[ "$DMRS_TAP" = /dev/stdout ] || [ "${DMRS_GUEST:-0}" != 1 ] ||
		echo "[tap] $*" > /dev/kmsg 2>/dev/null || echo "[tap] $*"
}
# the counters live in a file, so that points reported from subshells count
_tap_read() {
	_tn=0 _tp=0 _tf=0 _ts=0 _tx=0
	[ -r "$DMRS_TAP_COUNT" ] && read -r _tn _tp _tf _ts _tx < "$DMRS_TAP_COUNT"
	_tn=${_tn:-0} _tp=${_tp:-0} _tf=${_tf:-0} _ts=${_ts:-0} _tx=${_tx:-0}
}
_tap_next() { # pass|fail|skip|xfail
	_tap_read
	_tn=$((_tn + 1))
	case $1 in
	pass) _tp=$((_tp + 1)) ;;
	fail) _tf=$((_tf + 1)) ;;
	skip) _ts=$((_ts + 1)) ;;
	xfail) _tx=$((_tx + 1)) ;;
	esac
	echo "$_tn $_tp $_tf $_ts $_tx" > "$DMRS_TAP_COUNT"
}
_tap_name() { _tap_clean "$1"; _tname=$_tc; }
# The header, once per test: the first source of lib.sh with a counter
# file that does not exist yet (subshells and the runner find it).
if [ ! -e "$DMRS_TAP_COUNT" ]; then
	echo "0 0 0 0 0" > "$DMRS_TAP_COUNT"
	_tap_emit "KTAP version 1"
	[ -z "$DMRS_KTAP_INDENT" ] || _tap_emit "# Subtest: $DMRS_TEST"
fi
# tap_diag MSG...: a diagnostic line ("# MSG") in the KTAP stream
tap_diag() {
	printf '%s\n' "$*" | while IFS= read -r _l; do _tap_emit "# $_l"; done
}
# tap_plan N: the number of points this script will report, declared
# before the first one (a script whose count depends on what it finds does
# not declare one); tap_end fails the test if the count differs
tap_plan() {
	_tap_read
	if [ "$_tn" != 0 ]; then
		tap_fail "plan" "tap_plan $1 after $_tn points"
		return 1
	fi
	_tap_emit "1..$1"
	echo "$1" > "$DMRS_TAP_COUNT.plan"
}
tap_ok() { _tap_next pass; _tap_name "$1"; _tap_emit "ok $_tn $_tname"; }
tap_fail() {
	_tap_next fail; _tap_name "$1"; _tap_clean "${2:-failed}"
	_tap_emit "not ok $_tn $_tname # $_tc"
}
tap_skip() { _tap_next skip; _tap_name "$1"; _tap_clean "${2:-}"; _tap_emit "ok $_tn $_tname # SKIP $_tc"; }
# tap_xfail NAME REASON: a known failure that is expected (kselftest's
# XFAIL: reported ok, counted apart; KTAP does not know TAP's TODO)
tap_xfail() { _tap_next xfail; _tap_name "$1"; _tap_clean "${2:-}"; _tap_emit "ok $_tn $_tname # XFAIL $_tc"; }

# check NAME CMD [ARGS...]: run CMD, ok if it exits 0, else not ok with
# its exit status and the last line of its output (all output in TAP diag)
check() {
	local name=$1 rc
	shift
	"$@" > "$DMRS_LOG" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		tap_ok "$name"
		return 0
	fi
	cat "$DMRS_LOG"
	tap_diag "$(tail -n 20 "$DMRS_LOG")"
	tap_fail "$name" "$* -> exit $rc: $(tail -n 1 "$DMRS_LOG")"
	return 1
}

# fail MSG: print MSG to stderr and return 1 (for use inside check'ed helpers)
fail() { echo "$*" >&2; return 1; }

# ------------------------------------------------------------- cleanup ----
# at_end CMD: run CMD (a string, eval'ed) from tap_end, last registered first
DMRS_AT_END=
at_end() { DMRS_AT_END="$1
$DMRS_AT_END"; }
tap_end() {
	local _plan=
	printf '%s\n' "$DMRS_AT_END" | while IFS= read -r _c; do
		[ -n "$_c" ] && eval "$_c" > /dev/null 2>&1
	done
	DMRS_AT_END=
	rm -f "$DMRS_LOG"
	_tap_read
	_tap_emit "# Totals: pass:$_tp fail:$_tf xfail:$_tx xpass:0 skip:$_ts error:0"
	[ -r "$DMRS_TAP_COUNT.plan" ] && read -r _plan < "$DMRS_TAP_COUNT.plan"
	# the runner checks this mark: the script got here
	echo "$_tn" > "$DMRS_TAP_COUNT.end"
	if [ "$_tf" -gt 0 ]; then
		exit 1
	elif [ -n "$_plan" ] && [ "$_plan" != "$_tn" ]; then
		_tap_emit "# Planned tests != run tests ($_plan != $_tn)"
		exit 1
	elif [ "$_tn" = 0 ]; then
		_tap_emit "# no point reported"
		exit 1
	elif [ $((_tp + _tx)) = 0 ]; then
		exit 4
	fi
	exit 0
}

# ------------------------------------------------------------- modules ----
_modname() { basename "$1" .ko | tr - _; }
mod_loaded() { [ -d "/sys/module/$(echo "$1" | tr - _)/sections" ] || grep -q "^$(echo "$1" | tr - _) " /proc/modules 2>/dev/null; }

# load_ko NAME|PATH [PARAM=VALUE...]: insmod a module from /modules (and
# its dependencies), with the parameters given; without the guest's index:
# modprobe NAME, or PATH's dependencies by modprobe and PATH by insmod
load_ko() {
	local _path _name _deps _d _m=$1
	shift
	if [ ! -r "$DMRS_MOD_INDEX" ]; then
		case "$_m" in
		*/*) _name=$(modinfo -F name "$_m" 2>/dev/null | tr - _)
			mod_loaded "${_name:-$(_modname "$_m")}" && return 0
			for _d in $(modinfo -F depends "$_m" 2>/dev/null | tr ',' ' '); do
				mod_loaded "$_d" || modprobe "$_d" || fail "modprobe $_d failed" || return 1
			done
			insmod "$_m" "$@" || fail "insmod $_m failed" || return 1 ;;
		*) _name=$(echo "$_m" | tr - _)
			mod_loaded "$_name" || [ -d "/sys/module/$_name" ] && return 0
			modprobe "$_name" "$@" || fail "modprobe $_name failed" || return 1 ;;
		esac
		return 0
	fi
	case "$_m" in
	*/*) _path=$_m; _name=$(awk -v p="$_m" '$2 == p {print $1}' "$DMRS_MOD_INDEX")
		[ -n "$_name" ] || _name=$(_modname "$_m") ;;
	*) _name=$(echo "$_m" | tr - _)
		_path=$(awk -v n="$_name" '$1 == n {print $2; exit}' "$DMRS_MOD_INDEX") ;;
	esac
	mod_loaded "$_name" && return 0
	# built into the kernel: /sys/module exists without being in /proc/modules
	[ -z "$_path" ] && [ -d "/sys/module/$_name" ] && return 0
	[ -n "$_path" ] && [ -e "$_path" ] || fail "module $_m not found in $DMRS_MOD_INDEX" || return 1
	_deps=$(awk -v n="$_name" '$1 == n {print $3; exit}' "$DMRS_MOD_INDEX")
	for _d in $(echo "$_deps" | tr ',' ' '); do
		[ "$_d" = - ] && continue
		load_ko "$_d" || return 1
	done
	insmod "$_path" "$@" || fail "insmod $_path $* failed" || return 1
}
# unload_mod NAME...: rmmod each loaded one, in the order given
unload_mod() {
	local _m
	for _m in "$@"; do
		_m=$(echo "$_m" | tr - _)
		mod_loaded "$_m" || continue
		rmmod "$_m" || fail "rmmod $_m failed" || return 1
		! mod_loaded "$_m" || fail "$_m still loaded after rmmod" || return 1
	done
}
# The C dm-mirror; it and ours both register target "mirror" (and dm-log's
# "core"/"disk" logs), so only one of them can be loaded at a time.
# have_c: the C dm-mirror can be loaded (the guest carries the tree's
# modules; elsewhere the running kernel's, found by modinfo)
have_c() {
	if [ -r "$DMRS_MOD_INDEX" ]; then
		[ -e /modules/c/dm-mirror.ko ]
	else
		modinfo dm_mirror > /dev/null 2>&1
	fi
}
# skip_without_c: a test that compares ours with C ends here as skipped
# (exit 4) when the C dm-mirror is missing (outside the QEMU guest)
skip_without_c() {
	[ "$DMRS_IMPL" = c ] || have_c && return 0
	tap_skip "$DMRS_TEST" "no C dm-mirror module to compare with (modinfo dm_mirror)"
	tap_end
}
load_c() {
	have_c || fail "no C dm-mirror module (the guest: /modules/c/dm-mirror.ko; elsewhere: modinfo dm_mirror)" || return 1
	load_ko dm_mirror
}
unload_c() { unload_mod dm_mirror dm_region_hash dm_log; }
# c_version: the version of this kernel's C dm-mirror (loaded, read from
# `dmsetup targets`, unloaded; the "mirror" target must not be registered)
c_version() {
	local _v
	load_c || return 1
	_v=$(target_version mirror)
	unload_c || return 1
	[ -n "$_v" ] || fail "the C dm-mirror registered no mirror target" || return 1
	echo "$_v"
}
# The module under test: ours by default, the C one with dmrs.impl=c.
rs_modname() {
	if [ -r "$DMRS_MOD_INDEX" ]; then
		awk -v p="$DMRS_RS_KO" '$2 == p {print $1}' "$DMRS_MOD_INDEX"
	else
		modinfo -F name "$DMRS_RS_KO" 2>/dev/null | tr - _
	fi
}
load_rs() {
	if [ "$DMRS_IMPL" = c ]; then
		load_c
		return
	fi
	mod_loaded dm_mirror && { fail "the C dm_mirror is loaded"; return 1; }
	[ -e "$DMRS_RS_KO" ] || fail "$DMRS_RS_KO missing (run-guest.sh --module KO; elsewhere DMRS_RS_KO=PATH)" || return 1
	load_ko "$DMRS_RS_KO"
}
unload_rs() {
	if [ "$DMRS_IMPL" = c ]; then
		unload_c
		return
	fi
	[ -e "$DMRS_RS_KO" ] || return 0
	unload_mod "$(rs_modname)"
}
impl_name() { if [ "$DMRS_IMPL" = c ]; then echo "C dm-mirror"; else basename "$DMRS_RS_KO"; fi; }

# target_version TARGET: the version `dmsetup targets` prints (1.14.0)
target_version() {
	dmsetup targets | awk -v t="$1" '$1 == t {sub(/^v/, "", $2); print $2}'
}
# version_ge A B: dotted version A >= B
version_ge() {
	local _a _b _i _x _y
	_a=$1 _b=$2
	for _i in 1 2 3; do
		_x=$(echo "$_a" | cut -d. -f$_i)
		_y=$(echo "$_b" | cut -d. -f$_i)
		_x=${_x:-0} _y=${_y:-0}
		[ "$_x" -gt "$_y" ] && return 0
		[ "$_x" -lt "$_y" ] && return 1
	done
	return 0
}

# ------------------------------------------------------------- devices ----
# need_disks NAME...: /dev/NAME exists for each (the dmraid tests' SATA
# disks sda and sdb: outside the QEMU guest only if DMRS_DISKS names five
# disks); else the test ends as skipped
need_disks() {
	local _d _miss=
	for _d in "$@"; do [ -b "/dev/$_d" ] || _miss="$_miss /dev/$_d"; done
	[ -z "$_miss" ] && return 0
	tap_skip "$DMRS_TEST" "no$_miss (DMRS_DISKS names 3 disks, not 5)"
	tap_end
}
dev_sectors() { blockdev --getsz "$1"; }
# majmin DEV: "major:minor" in decimal, as dm prints devices
majmin() {
	local _t
	_t=$(stat -L -c '%t %T' "$1") || return 1
	set -- $_t
	printf '%d:%d\n' "0x$1" "0x$2"
}
# mkmirror NAME TABLE: dmsetup create and check /dev/mapper/NAME is a
# block device; removed again by tap_end
mkmirror() {
	dmsetup create "$1" --table "$2" || fail "dmsetup create $1 failed: $2" || return 1
	at_end "rmdev $1"
	[ -b "/dev/mapper/$1" ] || fail "/dev/mapper/$1 is not a block device" || return 1
}
# rmdev NAME: remove a dm device (retrying while it is briefly busy)
rmdev() {
	local _i
	dev_exists "$1" || return 0
	for _i in 1 2 3 4 5; do
		dmsetup remove "$1" && break
		sleep 1
	done
	! dev_exists "$1" || fail "dm device $1 still exists" || return 1
	[ ! -e "/dev/mapper/$1" ] || fail "/dev/mapper/$1 left behind" || return 1
}
dev_exists() { dmsetup info "$1" > /dev/null 2>&1; }
# dm_count: number of dm devices
dm_count() { dmsetup ls | awk '$1 != "No" {n++} END {print n + 0}'; }

# drop the page cache of block devices (read legs after dm wrote them)
flushbufs() {
	for _d in "$@"; do blockdev --flushbufs "$_d" 2>/dev/null; done
	echo 3 > /proc/sys/vm/drop_caches
}
# legs_identical DEV0 DEV1 SECTORS [OFF0 [OFF1]]: the SECTORS long ranges
# starting at OFF0/OFF1 (sectors, default 0) are byte-identical
legs_identical() {
	flushbufs "$1" "$2"
	cmp -n $(($3 * 512)) -i $((${4:-0} * 512)):$((${5:-0} * 512)) "$1" "$2"
}
# data_at FILE DEV [OFF]: DEV holds FILE's bytes at sector OFF
data_at() {
	flushbufs "$2"
	cmp -n "$(stat -c %s "$1")" -i 0:$((${3:-0} * 512)) "$1" "$2"
}
# sha_of DEV SECTORS [OFF]: sha256 of a sector range, read with O_DIRECT
sha_of() {
	dd if="$1" bs=1M iflag=direct,skip_bytes,count_bytes \
		skip=$((${3:-0} * 512)) count=$(($2 * 512)) 2>/dev/null | sha256sum | cut -d' ' -f1
}
sha_file() { sha256sum "$1" | cut -d' ' -f1; }
# randfile FILE MIB: MIB MiB from /dev/urandom
randfile() { dd if=/dev/urandom of="$1" bs=1M count="$2" 2>/dev/null; }

# dm_block NAME: the kernel's name of the dm device NAME (dm-N), its
# directory under /sys/block
dm_block() { echo "dm-$(dmsetup info -c --noheadings -o minor "$1" | tr -d ' ')"; }
# mirror_status NAME: the status after "start len mirror"
mirror_status() { dmsetup status "$1" | cut -d' ' -f4-; }
# health NAME: the mirror's health characters (A/D/R/... per leg)
health() { mirror_status "$1" | awk '{ n = $1; print $(n + 4) }'; }
# stats NAME: our "stats" message's line; stat_field NAME KEY: one value
stats() { dmsetup message "$1" 0 stats; }
stat_field() { stats "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# msg_refused NAME WORDS...: the message is refused (fails if accepted)
msg_refused() {
	local n=$1
	shift
	if dmsetup message "$n" 0 "$@" > /dev/null 2>&1; then
		fail "message '$*' accepted"
	fi
	return 0
}
# set_table DEV TABLE: replace the live table of DEV (load, suspend, resume)
set_table() {
	dmsetup load "$1" --table "$2" || fail "load $1: $2" || return 1
	dmsetup suspend "$1" || fail "suspend $1" || return 1
	dmsetup resume "$1" || fail "resume $1" || return 1
}
# sync_ratio NAME: "<in_sync>/<regions>"
sync_ratio() {
	mirror_status "$1" | awk '{ n = $1; print $(n + 2) }'
}
# wait_sync NAME [SECS]: wait until every region is in sync (default 60 s)
wait_sync() {
	local _end _r
	_end=$(( $(date +%s) + ${2:-60} ))
	while :; do
		_r=$(sync_ratio "$1")
		[ -n "$_r" ] && [ "${_r%/*}" = "${_r#*/}" ] && return 0
		[ "$(date +%s)" -ge $_end ] && { fail "$1 not in sync after ${2:-60}s: $_r"; return 1; }
		sleep 0.5
	done
}

# ---------------------------------------------------------------- dmesg ---
# kmsg_mark ID: put "dmrs-mark ID" into the kernel log
kmsg_mark() { echo "dmrs-mark $1" > /dev/kmsg; }
# dmesg_since ID: kernel log lines after the mark
dmesg_since() {
	dmesg | awk -v m="dmrs-mark $1" 'f {print} !f && index($0, m) && substr($0, length($0) - length(m) + 1) == m {f = 1}'
}
# reads_as FILE DEV [OFF]: reading DEV at sector OFF (O_DIRECT) gives FILE
reads_as() {
	local want got
	want=$(sha_file "$1")
	got=$(sha_of "$2" $(( $(stat -c %s "$1") / 512 )) "${3:-0}")
	[ "$want" = "$got" ] || fail "sha256 of $2 @ ${3:-0}: $got, want $want"
}
# no_devices: no dm device exists
no_devices() {
	[ "$(dm_count)" = 0 ] || fail "dm devices left: $(dmsetup ls | tr '\n' ' ')"
}
# data_at_len FILE DEV SECTORS: the first SECTORS of DEV equal FILE's
data_at_len() {
	flushbufs "$2"
	cmp -n $(($3 * 512)) "$1" "$2"
}
# sha_equal NAME DEV SECTORS: reading /dev/mapper/NAME gives DEV's first SECTORS
sha_equal() {
	local a b
	a=$(sha_of /dev/mapper/"$1" "$3")
	b=$(sha_of "$2" "$3")
	[ "$a" = "$b" ] || fail "/dev/mapper/$1 and $2 differ: $a $b"
}
