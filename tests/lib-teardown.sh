# Helpers for the teardown test (41-teardown.sh, issue #11). Source after
# lib.sh:
#   . /tests/lib.sh
#   . /tests/lib-teardown.sh
# (Not a test: guest-init.sh runs only /tests/[0-9]*.sh and never lib-*.sh.)
#
# Geometry: up to TD_SLOTS mirrors exist at once, each in its own slot s of
# TD_SL sectors: leg 0 = vda @ s*TD_SL, leg 1 = vdb @ s*TD_SL, leg 2 (3-leg
# tables) = vda @ TD_L2 + s*TD_SL; a disk log lives on td_log<s>, a linear
# slice of vdc. Leg 0 starts with random data, legs 1 and 2 with zeros, so
# a resync really copies.
#
# No subprocess in the hot paths where a builtin does (a fork+exec costs
# ~10 ms in the TCG debug guest): results come back in variables (TD_*),
# failure reasons in TD_WHY.

TD_SL=4096                 # sectors per slot (2 MiB)
TD_SLOTS=16
TD_L2=131072               # leg 2 of slot 0: vda @ 64 MiB
TD_LOGSL=2048              # sectors per log slice of vdc (16 x 1 MiB)
TD_NKINDS=36               # 3 sync modes x 2 logs x 2 leg counts x 3 feature sets

# ------------------------------------------------------------ random ----
# rnd N: R = a pseudo-random number in [0, N) (an LCG: the run is
# replayable from its seed, dmrs.teardown_seed=S)
rnd() {
	TD_RNG=$(((TD_RNG * 1103515245 + 12345) % 2147483648))
	R=$(((TD_RNG / 65536) % $1))
}
# pick WORD...: R = one of the words
pick() {
	rnd $#
	shift $R
	R=$1
}

# ------------------------------------------------------------- tables ----
# td_setup_ids: the maj:min strings tables print (after the log slices exist)
td_setup_ids() {
	local name ma mi s=0
	TD_A=$(majmin /dev/vda) || return 1
	TD_B=$(majmin /dev/vdb) || return 1
	dmsetup info -c --noheadings -o name,major,minor --separator ' ' > /tmp/td-ids || return 1
	while read -r name ma mi; do
		case "$name" in
		td_log[0-9]*) eval "TD_LOGMM_${name#td_log}=$ma:$mi" ;;
		esac
	done < /tmp/td-ids
	rm -f /tmp/td-ids
	while [ $s -lt $TD_SLOTS ]; do
		eval "[ -n \"\${TD_LOGMM_$s:-}\" ]" || fail "no maj:min for td_log$s" || return 1
		s=$((s + 1))
	done
}

# td_kind KIND SLOT LEN RS [SYNCWORD]: a mirror table of kind KIND
# (0..35: sync mode = KIND % 3 (default, sync, nosync), log = KIND / 3 % 2
# (core, disk), legs = 2 + KIND / 6 % 2, features = KIND / 12 % 3 (none,
# handle_errors, handle_errors keep_log)) in slot SLOT, LEN sectors long,
# RS-sector regions; SYNCWORD (-, sync or nosync) overrides the sync mode.
# Sets
#   TD_T   the table line ("0 LEN mirror ...", with device paths)
#   TD_P   the table without "0 LEN mirror " (to put at another start)
#   TD_W   what `dmsetup table` must print for it
#   TD_N   the number of regions
#   TD_NOSYNC 1 for a nosync table (in sync from the start)
#   TD_SP  the status up to the in-sync ratio ("2 254:0 254:16")
#   TD_SS  the status after the ratio ("1 AA 1 core")
#   TD_KD  a short description of the kind
td_kind() {
	local k=$1 s=$2 len=$3 rs=$4 sync= n=1 o o2 log logw legs legsw feat health
	case $((k % 3)) in
	1) sync=sync ;;
	2) sync=nosync ;;
	esac
	case "${5:-}" in
	-) sync= ;;
	sync | nosync) sync=$5 ;;
	esac
	[ -n "$sync" ] && n=2
	o=$((s * TD_SL))
	o2=$((TD_L2 + o))
	if [ $((k / 3 % 2)) = 0 ]; then
		log="core $n $rs${sync:+ $sync}"
		logw=$log
		TD_SS_LOG="1 core"
	else
		eval "TD_LM=\$TD_LOGMM_$s"
		log="disk $((n + 1)) /dev/mapper/td_log$s $rs${sync:+ $sync}"
		logw="disk $((n + 1)) $TD_LM $rs${sync:+ $sync}"
		TD_SS_LOG="3 disk $TD_LM A"
	fi
	if [ $((k / 6 % 2)) = 0 ]; then
		legs="2 /dev/vda $o /dev/vdb $o"
		legsw="2 $TD_A $o $TD_B $o"
		TD_SP="2 $TD_A $TD_B"
		health=AA
	else
		legs="3 /dev/vda $o /dev/vdb $o /dev/vda $o2"
		legsw="3 $TD_A $o $TD_B $o $TD_A $o2"
		TD_SP="3 $TD_A $TD_B $TD_A"
		health=AAA
	fi
	case $((k / 12 % 3)) in
	0) feat= ;;
	1) feat=" 1 handle_errors" ;;
	2) feat=" 2 handle_errors keep_log" ;;
	esac
	TD_P="$log $legs$feat"
	TD_T="0 $len mirror $TD_P"
	TD_W="0 $len mirror $logw $legsw$feat"
	TD_N=$(((len + rs - 1) / rs))
	TD_NOSYNC=0
	[ "$sync" = nosync ] && TD_NOSYNC=1
	TD_SS="1 $health $TD_SS_LOG"
	TD_KD="kind $k: $log $legs$feat, $len sectors"
}

# td_save J / td_load J: keep the TD_* of one table under index J (for a
# batch of devices made at once)
td_save() {
	eval "TDW_$1=\$TD_W TDN_$1=\$TD_N TDNS_$1=\$TD_NOSYNC TDSP_$1=\$TD_SP TDSS_$1=\$TD_SS TDKD_$1=\$TD_KD TDLEN_$1=\$2"
}
td_load() {
	eval "TD_W=\$TDW_$1 TD_N=\$TDN_$1 TD_NOSYNC=\$TDNS_$1 TD_SP=\$TDSP_$1 TD_SS=\$TDSS_$1 TD_KD=\$TDKD_$1 TD_LEN=\$TDLEN_$1"
}

# td_status_ok LINE LEN: LINE (the status without the device name) is the
# status of the table described by TD_*: legs and log as expected, every
# leg healthy, TD_N regions, a sane in-sync count (TD_N of them for nosync)
td_status_ok() {
	local rest r x n
	rest=${1#"0 $2 mirror $TD_SP "}
	if [ "$rest" = "$1" ]; then
		TD_WHY="status '$1', want '0 $2 mirror $TD_SP <in_sync>/$TD_N $TD_SS'"
		return 1
	fi
	r=${rest%% *}
	if [ "${rest#* }" != "$TD_SS" ]; then
		TD_WHY="status '$1', want '... $r $TD_SS'"
		return 1
	fi
	x=${r%/*} n=${r#*/}
	case "$x$n" in
	'' | *[!0-9]*)
		TD_WHY="status '$1': bad in-sync ratio '$r'"
		return 1
		;;
	esac
	if [ "$n" != "$TD_N" ] || [ "$x" -gt "$n" ]; then
		TD_WHY="status '$1': ratio $r, want at most $TD_N/$TD_N"
		return 1
	fi
	if [ "$TD_NOSYNC" = 1 ] && [ "$x" != "$n" ]; then
		TD_WHY="status '$1': a nosync table at $r, not $TD_N/$TD_N"
		return 1
	fi
}

# td_check_dev NAME LEN: table and status of NAME are those of TD_*
td_check_dev() {
	local got
	if [ ! -b "/dev/mapper/$1" ]; then
		TD_WHY="/dev/mapper/$1 is not a block device"
		return 1
	fi
	got=$(dmsetup table "$1" 2>&1)
	if [ "$got" != "$TD_W" ]; then
		TD_WHY="table of $1: '$got', want '$TD_W'"
		return 1
	fi
	got=$(dmsetup status "$1" 2>&1)
	td_status_ok "$got" "$2"
}

# td_gone NAME: the node of NAME is gone (dmsetup removes it once the
# device is; ph_end checks with `dmsetup ls` that no device is left)
td_gone() {
	if [ -e "/dev/mapper/$1" ]; then
		TD_WHY="/dev/mapper/$1 left behind by its remove"
		return 1
	fi
}

# td_remove NAME...: dmsetup remove (all at once); must succeed at the
# first attempt (nothing holds a test device open), and each must be gone.
# On failure the devices are removed anyway (rmdev retries).
td_remove() {
	local d
	if ! dmsetup remove "$@" > "$DMRS_LOG" 2>&1; then
		TD_WHY="dmsetup remove $*: $(tail -n 1 "$DMRS_LOG")"
		for d in "$@"; do rmdev "$d" > /dev/null 2>&1; done
		return 1
	fi
	for d in "$@"; do
		td_gone "$d" || return 1
	done
}

# ------------------------------------------------------------- phases ----
# A phase is a run of cycles of one kind. `bad MSG` counts a failure of
# the current cycle (the first few reasons are kept, every one goes to the
# console); ph_end makes the phase's TAP point, after the checks that hold
# whatever the cycles did: no test device left, no mirror workqueue or
# kcopyd client left, the module unreferenced, and no device-mapper warning
# about a device a destructor did not put.
ph_begin() { # NAME
	PH=$1
	PH_N=0
	PH_BAD=0
	PH_MSG=
	PH_T0=$(date +%s)
	td_mark
	PH_MARK=$TD_MARK
	echo "dmrs-td: phase $PH" > /dev/kmsg
}
# td_mark: a new mark "dmrs-mark td-<TD_MARK>" in the kernel log (every
# mark is unique, so td_dmesg_since finds the right one)
td_mark() {
	TD_MARK=$((${TD_MARK:-0} + 1))
	kmsg_mark "td-$TD_MARK"
}
bad() {
	PH_BAD=$((PH_BAD + 1))
	[ $PH_BAD -le 4 ] && PH_MSG="$PH_MSG cycle $PH_N: $*;"
	echo "dmrs-td: FAILED $PH cycle $PH_N: $*" > /dev/kmsg
	echo "$PH cycle $PH_N: $*" >> /tmp/td-failures
}

# td_rescuers: the number of live workqueues named kmirrord or kcopyd (the
# mirror's kmirrord queue and its kcopyd client's queue): WQ_MEM_RECLAIM
# queues each have a rescuer thread "kworker/R-<name>" (comm cut to 15)
td_rescuers() {
	TD_NQ=0
	for _c in /proc/[0-9]*/comm; do
		{ read -r _n < "$_c"; } 2> /dev/null || continue
		case "$_n" in
		kworker/R-kmirr* | kworker/R-kcopy*) TD_NQ=$((TD_NQ + 1)) ;;
		esac
	done
}
# td_no_queues: no such queue is left (polled for up to 10 s: a rescuer
# thread is reaped just after its queue is destroyed). Our module hands a
# kmirrord queue dropped inside a work item (a deferred remove runs the
# destructor in one) to the next queue creation or drop in process context:
# if queues are left, one mirror is created and removed before looking
# again.
td_no_queues() {
	local i=0 drained=
	while :; do
		td_rescuers
		[ $TD_NQ = 0 ] && return 0
		if [ $i -ge 50 ] && [ -z "$drained" ] && [ "$DMRS_IMPL" != c ]; then
			drained=$TD_NQ
			dmsetup create td_drain --table "0 8 mirror core 2 8 nosync 2 /dev/vda 0 /dev/vdb 0" &&
				dmsetup remove td_drain
			i=0
		fi
		[ $i -ge 50 ] && break
		sleep 0.2
		i=$((i + 1))
	done
	TD_WHY="$TD_NQ kmirrord/kcopyd workqueues still exist with no mirror left${drained:+ ($drained before a mirror was created and removed)}"
	return 1
}
# td_dm_left: test devices left (anything but the log slices)
td_dm_left() {
	dmsetup ls 2> /dev/null | awk '$1 != "No" && $1 !~ /^td_log[0-9]+$/ {printf "%s ", $1}'
}
# td_dmesg_since ID: kernel log after "dmrs-mark ID", or "NOMARK" if the
# mark fell out of the ring buffer
td_dmesg_since() {
	dmesg | awk -v m="dmrs-mark $1" 'f {print} !f && index($0, m) && substr($0, length($0) - length(m) + 1) == m {f = 1} END {if (!f) print "NOMARK"}'
}
# The device-mapper core's complaints when a target destructor returned
# with devices still held, or a device went away still referenced
TD_DMWARN='dm_put_device call missing|still exists with [0-9]+ references|Forcibly removing mapped_device'
td_module_refs() { # the module under test is not referenced by any table
	local m r
	if [ "$DMRS_IMPL" = c ]; then m=dm_mirror; else m=$(rs_modname); fi
	read -r r < "/sys/module/$m/refcnt" 2> /dev/null || { TD_WHY="no /sys/module/$m/refcnt"; return 1; }
	[ "$r" = 0 ] || { TD_WHY="module $m refcnt $r with no mirror left"; return 1; }
}
ph_end() {
	local left log secs why=
	left=$(td_dm_left)
	[ -z "$left" ] || why="$why devices left: $left;"
	for d in $left; do rmdev "$d" > /dev/null 2>&1; done
	td_no_queues || why="$why $TD_WHY;"
	td_module_refs || why="$why $TD_WHY;"
	log=$(td_dmesg_since "td-$PH_MARK")
	if [ "$log" = NOMARK ]; then
		why="$why the phase's mark left the kernel log ring: cannot check it;"
	elif echo "$log" | grep -Eq "$TD_DMWARN"; then
		why="$why device-mapper: $(echo "$log" | grep -E "$TD_DMWARN" | head -n 2 | tr '\n' ' ');"
	fi
	secs=$(($(date +%s) - PH_T0))
	TD_SECS="$TD_SECS $PH=${secs}s"
	if [ $PH_BAD = 0 ] && [ -z "$why" ]; then
		tap_ok "$PH: $PH_N cycles (${secs}s)"
	else
		[ -s /tmp/td-failures ] && tap_diag "$(head -n 20 /tmp/td-failures)"
		tap_fail "$PH: $PH_N cycles (${secs}s)" "$PH_BAD cycles failed:$PH_MSG$why"
	fi
	rm -f /tmp/td-failures
}

# td_data_at FILE DEV SECTOR: DEV holds FILE's bytes at SECTOR (O_DIRECT)
td_data_at() {
	local sz
	sz=$(stat -c %s "$1")
	dd if="$2" bs=16k skip=$(($3 * 512)) count="$sz" iflag=direct,skip_bytes,count_bytes 2> /dev/null |
		cmp -s - "$1" || { TD_WHY="$2 @ sector $3 does not hold the data written"; return 1; }
}
# td_wait_gone NAME SECS: wait for NAME to go away (a deferred remove: the
# kernel removes the device at its last close; `dmsetup mknodes` then
# drops the node, as udev would)
td_wait_gone() {
	local i=0
	while dev_exists "$1"; do
		[ $i -ge $(($2 * 5)) ] && { TD_WHY="$1 still exists ${2}s after its deferred remove"; return 1; }
		sleep 0.2
		i=$((i + 1))
	done
	dmsetup mknodes > /dev/null 2>&1
	td_gone "$1"
}
# td_legs_equal SLOT LEN NLEGS: leg 1 (and leg 2) of SLOT equal leg 0
td_legs_equal() {
	local o=$(($1 * TD_SL))
	flushbufs /dev/vda /dev/vdb
	cmp -s -n $(($2 * 512)) -i $((o * 512)):$((o * 512)) /dev/vda /dev/vdb ||
		{ TD_WHY="slot $1: leg 1 differs from leg 0 after the resync"; return 1; }
	[ "$3" = 2 ] && return 0
	cmp -s -n $(($2 * 512)) -i $((o * 512)):$(((TD_L2 + o) * 512)) /dev/vda /dev/vda ||
		{ TD_WHY="slot $1: leg 2 differs from leg 0 after the resync"; return 1; }
}
