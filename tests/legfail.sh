# Helpers for the leg-failure tests 10-19 (issue #5). Source after lib.sh:
#   . /tests/lib.sh
#   . /tests/legfail.sh
# (Not a test itself: /init runs only tests/[0-9]*.sh.)
#
# Each leg is a dm device (lf_l0 = linear over vda, lf_l1 = linear over vdb,
# lf_l2 = linear over vdc, 8 MiB each) so a table reload can turn it into
# "error", "delay" or back into linear while the mirror sits on top.
#
# Every scenario runs once per implementation in the same boot: the C
# dm-mirror first, then ours (only C with DMRS_IMPL=c). A run records what it
# observed ("key=value" lines, lf_obs) in /tmp/lf-obs.<impl>; lf_compare then
# adds one TAP point saying whether ours observed exactly what C observed.

LF_L=16384                    # sectors per leg and mirror (8 MiB)
LF_EVENT_WAIT=20              # seconds to wait for a table event
if [ "$DMRS_IMPL" = c ]; then LF_IMPLS=c; else LF_IMPLS="c rs"; fi
# no C module (outside the QEMU guest): ours alone, the comparison skipped
[ "$DMRS_IMPL" = c ] || have_c || LF_IMPLS=rs
# run-guest.sh --append dmrs.lf_impls=rs: only our half (no comparison);
# for a quick look at ours while it is being written
case " $(cat /proc/cmdline 2>/dev/null) " in
*" dmrs.lf_impls=rs "*) [ "$DMRS_IMPL" = c ] || LF_IMPLS=rs ;;
esac

lf_name() { if [ "$1" = c ]; then echo C; else echo ours; fi; }
lf_load() {
	if [ "$1" = c ]; then load_c; else load_rs; fi
}
lf_unload() {
	if [ "$1" = c ]; then unload_c; else unload_rs; fi
}

# lf_set DEV TABLE: replace the live table of DEV (load, suspend, resume)
lf_set() {
	dmsetup load "$1" --table "$2" || fail "load $1: $2" || return 1
	dmsetup suspend "$1" || fail "suspend $1" || return 1
	dmsetup resume "$1" || fail "resume $1" || return 1
}
lf_linear() { # LEG -> its linear table
	case "$1" in
	lf_l0) echo "0 $LF_L linear /dev/vda 0" ;;
	lf_l1) echo "0 $LF_L linear /dev/vdb 0" ;;
	lf_l2) echo "0 $LF_L linear /dev/vdc 0" ;;
	esac
}
lf_good() { lf_set "$1" "$(lf_linear "$1")"; }
lf_error() { lf_set "$1" "0 $LF_L error"; }
# lf_legs LEG...: create the legs as linear devices (removed by tap_end,
# after whatever was created later)
lf_legs() {
	local l
	for l in "$@"; do
		mkmirror "$l" "$(lf_linear "$l")" || return 1
	done
}

# lf_ratio NAME: in_sync/regions (health NAME, of lib.sh: the health
# characters); lf_st NAME: "<health> <ratio>" (what the tests compare)
lf_ratio() { sync_ratio "$1"; }
lf_st() { mirror_status "$1" | awk '{ n = $1; print $(n + 4) " " $(n + 2) }'; }
lf_events() { dmsetup info -c --noheadings -o events "$1" | tr -d ' '; }

# lf_wait_event NAME EV [SECS]: `dmsetup wait NAME EV` returns (an event
# after EV) within SECS; prints yes or no. (Not less than 20 s: under a
# loaded TCG host starting dmsetup alone can take seconds.)
lf_wait_event() {
	local rc
	timeout "${3:-$LF_EVENT_WAIT}" dmsetup wait "$1" "$2" > /dev/null 2>&1
	rc=$?
	if [ $rc = 0 ] && [ "$(lf_events "$1")" -gt "$2" ]; then
		echo yes
	else
		[ "$(lf_events "$1")" -gt "$2" ] &&
			tap_diag "$1: event counter moved past $2 but dmsetup wait exited with $rc"
		echo no
	fi
}
# lf_event_since NAME EV: an event came after EV (no waiting); yes or no
lf_event_since() {
	if [ "$(lf_events "$1")" -gt "$2" ]; then echo yes; else echo no; fi
}

# ------------------------------------------------------- observations ----
# lf_begin IMPL: start a run's record; lf_obs KEY VALUE: record and diag
lf_begin() {
	LF_IMPL=$1
	LF_I=$(lf_name "$1")
	LF_OBS=/tmp/lf-obs.$1
	: > "$LF_OBS"
}
lf_obs() {
	echo "$1=$2" >> "$LF_OBS"
	tap_diag "$LF_I: $1=$2"
}
# lf_is NAME KEY WANT SOURCE: TAP point, ok if the recorded KEY is WANT
# (SOURCE names where WANT comes from, for the failure message)
lf_get() { sed -n "s/^$1=//p" "$LF_OBS" | tail -n 1; }
lf_is() {
	local got
	got=$(lf_get "$2")
	if [ "$got" = "$3" ]; then
		tap_ok "$LF_I: $1"
	else
		tap_fail "$LF_I: $1" "$2 is '$got', $4 is '$3'"
	fi
}
# lf_expect NAME KEY WANT: the outcome C has (and ours must have)
lf_expect() { lf_is "$1" "$2" "$3" "C behaviour"; }
# lf_want NAME KEY WANT: an outcome of ours that differs from C's on purpose
lf_want() { lf_is "$1" "$2" "$3" "the wanted outcome"; }
# lf_strip FILE: the observations, without the keys in $LF_DIVERGE
lf_strip() {
	awk -v skip=" ${LF_DIVERGE:-} " '{ k = substr($0, 1, index($0, "=") - 1); if (index(skip, " " k " ") == 0) print }' "$1"
}
# lf_diff C RS: one line per key whose value differs (or is missing)
lf_diff() {
	awk 'NR == FNR { k = substr($0, 1, index($0, "=") - 1); c[k] = substr($0, index($0, "=") + 1); o[++n] = k; next }
		{ k = substr($0, 1, index($0, "=") - 1); r[k] = substr($0, index($0, "=") + 1); if (!(k in c)) o[++n] = k }
		END { for (i = 1; i <= n; i++) { k = o[i]
			if (!(k in c) || !(k in r) || c[k] != r[k])
				printf "%s: C \"%s\", ours \"%s\"\n", k, (k in c) ? c[k] : "-", (k in r) ? r[k] : "-" } }' "$1" "$2"
}
# lf_compare: ours recorded the same observations as C
lf_compare() {
	[ "$DMRS_IMPL" = c ] && return 0
	if ! have_c; then
		tap_skip "ours vs C: same status strings and writer outcome" "no C dm-mirror module"
		return 0
	fi
	[ "$LF_IMPLS" = rs ] && return 0
	if [ ! -s /tmp/lf-obs.c ] || [ ! -s /tmp/lf-obs.rs ]; then
		tap_fail "ours vs C: same status strings and writer outcome" "a run recorded nothing"
		return 0
	fi
	local d
	lf_strip /tmp/lf-obs.c > /tmp/lf-obs.c.cmp
	lf_strip /tmp/lf-obs.rs > /tmp/lf-obs.rs.cmp
	[ -n "${LF_DIVERGE:-}" ] && tap_diag "ours vs C: not compared (ours differs on purpose): $LF_DIVERGE"
	d=$(lf_diff /tmp/lf-obs.c.cmp /tmp/lf-obs.rs.cmp)
	if [ -z "$d" ] && cmp -s /tmp/lf-obs.c.cmp /tmp/lf-obs.rs.cmp; then
		tap_ok "ours vs C: same status strings and writer outcome"
	else
		tap_diag "$d"
		tap_fail "ours vs C: same status strings and writer outcome" \
			"$(echo "$d" | grep -c .) of $(grep -c . /tmp/lf-obs.c) observations differ"
	fi
}

# lf_each_impl NAME: call the test's run() once per implementation in
# LF_IMPLS (C first), clearing up after each whatever a failed run left
# behind (a held writer, the mirror NAME, the module), then compare ours
# with C
lf_each_impl() {
	local impl
	for impl in $LF_IMPLS; do
		run "$impl"
		lf_writer_reap "$1"
		rmdev "$1" > /dev/null 2>&1
		lf_unload "$impl" > /dev/null 2>&1
	done
	lf_compare
}

# ------------------------------------------------------------ writers ----
# lf_writer_start FILE DEV SEEK_MIB: dd FILE to DEV at SEEK_MIB in 64 KiB
# O_DIRECT writes, in the background; exit status -> /tmp/lf-writer.rc
lf_writer_start() {
	rm -f /tmp/lf-writer.rc
	(
		dd if="$1" of="$2" bs=64k seek=$(($3 * 16)) oflag=direct conv=notrunc 2> /tmp/lf-writer.err
		echo $? > /tmp/lf-writer.rc
	) &
	LF_WPID=$!
}
# lf_writer_wait SECS: wait for the writer; prints its exit status, or
# "running" if it has not finished after SECS
lf_writer_wait() {
	local i=0
	while [ ! -s /tmp/lf-writer.rc ] && [ $i -lt $(($1 * 5)) ]; do
		sleep 0.2
		i=$((i + 1))
	done
	if [ -s /tmp/lf-writer.rc ]; then
		wait "$LF_WPID" 2> /dev/null
		cat /tmp/lf-writer.rc
	else
		echo running
	fi
}
# lf_writer_reap NAME: unblock a writer still held in NAME (a flush
# suspend fails held writes) and collect it
lf_writer_reap() {
	if [ -n "${LF_WPID:-}" ] && [ ! -s /tmp/lf-writer.rc ]; then
		dmsetup suspend "$1" 2> /dev/null
		dmsetup resume "$1" 2> /dev/null
		lf_writer_wait 30 > /dev/null
	fi
	LF_WPID=
}

# lf_verdict OK|FAIL: "ok" or "bad" for the record
lf_yesno() { if "$@" > /dev/null 2>&1; then echo ok; else echo bad; fi; }

# lf_writer_held NAME: "held" if the writer has not exited and NAME
# completed no write in 5 s (a slow but unheld writer makes progress),
# "progressing" if it has not exited but writes complete, "exit <rc>" if
# it has finished
lf_wcount() { awk '{print $5}' "/sys/block/$(dm_block "$1")/stat"; }
lf_writer_held() {
	local a b
	a=$(lf_wcount "$1")
	sleep 5
	b=$(lf_wcount "$1")
	if [ -s /tmp/lf-writer.rc ]; then
		echo "exit $(cat /tmp/lf-writer.rc)"
	elif [ "$a" = "$b" ]; then
		echo held
	else
		echo progressing
	fi
}
