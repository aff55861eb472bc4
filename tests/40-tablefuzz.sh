#!/bin/sh
# Differential table fuzz (issue #11): the tables scripts/table-fuzz.py made
# on the host (/tests/tablefuzz.cases, shipped by scripts/mkinitramfs.sh; a
# few hundred with a fixed seed in `make check`, more with `make fuzz
# SEED=n COUNT=m`) are created once with the C dm-mirror and once with ours,
# in one boot: all with C first, the results kept in a file, then all with
# ours (a module swap per case would be far slower under TCG).
#
# Per case: `dmsetup create` accepted or rejected; if accepted, `dmsetup
# table` and `dmsetup status` (the in_sync count of N/M masked: it races with
# the resync), then remove (in batches of 10 devices, see fz_flush); no
# device or /dev/mapper node may be left behind either way.
#   EXPECT same    C and ours agree on all three, or the case fails
#   EXPECT cwrap   C is wrong (the generator's C_WRONG list says why): C must
#                  accept and ours reject
#   EXPECT strict  a number C wraps: ours must reject (C may do either)
# Also C's decision must be the one the generator's model of the C
# constructor predicted (so a fixture that went missing, or a "valid" table
# C rejects, is a failure, not an agreement), and the kernel log of each run
# must be free of splats (the case that caused one is named).
# A mismatch is one TAP failure with both outcomes; the first $FZ_DIAG get
# the table and both kernel messages as diagnostics. One summary TAP point
# per case class. With dmrs.impl=c only the C half runs.
. "$(dirname "$0")/lib.sh"

skip_without_c
CASES=${DMRS_FUZZ_CASES:-$DMRS_TESTS/tablefuzz.cases}
M=dmrsf        # the device each case creates
W=/tmp/tablefuzz
FZ_DIAG=20     # mismatches shown with full diagnostics
TAB=$(printf '\t')
mkdir -p $W
if [ "$DMRS_IMPL" = c ]; then IMPLS=c; else IMPLS="c rs"; fi
fz_name() { if [ "$1" = c ]; then echo C; else echo ours; fi; }

[ -r $CASES ] || { tap_fail "case file" "no $CASES (scripts/mkinitramfs.sh makes it)"; tap_end; }
tap_diag "$(head -n 1 $CASES)"
total=$(grep -vc '^#' $CASES)

# ------------------------------------------------------------ fixtures ----
# small dm devices for "too small" cases and a huge zero device (see
# scripts/table-fuzz.py); they stay through the module swap
fz_fixtures() {
	mkmirror dmrsf_s "0 4096 linear /dev/vdc 8192" &&
		mkmirror dmrsf_2 "0 2 linear /dev/vdc 16384" &&
		mkmirror dmrsf_3 "0 3 linear /dev/vdc 16392" &&
		mkmirror dmrsf_z "0 8589934592 zero"
}
check "fixtures: linear dmrsf_s/_2/_3 on vdc, zero dmrsf_z" fz_fixtures || tap_end

# the sizes the generator assumed (its "# sizes" header) are the real ones
vals=
fz_sizes() {
	local want got d k
	want=$(sed -n 's/^# sizes //p' $CASES)
	for d in LA:/dev/vda LB:/dev/vdb LC:/dev/vdc LS:/dev/mapper/dmrsf_s L2:/dev/mapper/dmrsf_2 \
		L3:/dev/mapper/dmrsf_3 LZ:/dev/mapper/dmrsf_z; do
		k=${d%%:*}
		got=$(dev_sectors "${d#*:}") || return 1
		case " $want " in
		*" $k=$got "*) ;;
		*) fail "${d#*:} has $got sectors, the cases assume: $want"; return 1 ;;
		esac
		vals="$vals $k=$got M${k#L}=$(majmin "${d#*:}")"
	done
}
check "device sizes are the ones the cases assume" fz_sizes || tap_end
tap_diag "placeholders:$vals"

# fill in @{LA}, @{LA-8}, @{MA}...: the case lines without comments
fz_resolve() {
	awk -v vals="$vals" '
	BEGIN {
		FS = OFS = "\t"
		n = split(vals, kv, " ")
		for (i = 1; i <= n; i++) { split(kv[i], p, "="); V[p[1]] = p[2] }
	}
	/^#/ { next }
	{
		s = $6; out = ""
		while (match(s, /@[{][A-Z0-9]+([+-][0-9]+)?[}]/)) {
			st = RSTART; ln = RLENGTH
			ph = substr(s, st + 2, ln - 3); name = ph; d = 0
			if (match(ph, /[+-]/)) { name = substr(ph, 1, RSTART - 1); d = substr(ph, RSTART) + 0 }
			if (!(name in V)) { print "unknown placeholder " ph > "/dev/stderr"; exit 1 }
			v = V[name]
			if (name ~ /^L/) v = sprintf("%.0f", v + d)
			out = out substr(s, 1, st - 1) v
			s = substr(s, st + ln)
		}
		$6 = out s
		print
	}' $CASES > $W/cases || return 1
	[ "$(wc -l < $W/cases)" -eq "$total" ] || fail "resolved $(wc -l < $W/cases) of $total cases"
}
check "$total cases, placeholders filled in" fz_resolve || tap_end

# ----------------------------------------------------------------- run ----
# Case ID creates device dmrsfID. Accepted ones stay until $FZ_BATCH are
# up; then one `dmsetup table` and one `dmsetup status` read them all and
# one `dmsetup remove` removes them (a dmsetup run costs more than the
# kernel's work here).
FZ_BATCH=10
# fz_names: _names = " NAME ... " of every dm device (from sysfs, no fork)
fz_names() {
	local f n
	_names=" "
	for f in /sys/block/dm-*/dm/name; do
		[ -r "$f" ] || continue
		read -r n < "$f"
		_names="$_names$n "
	done
}
# fz_left IMPL NAME...: record in $W/left.IMPL what each NAME left behind
# (a device, a /dev/mapper node), and remove it
fz_left() {
	local impl=$1 n l
	shift
	fz_names
	for n in "$@"; do
		l=
		case "$_names" in *" $n "*) l=device ;; esac
		[ -e /dev/mapper/$n ] && l="$l node"
		[ -n "$l" ] || continue
		printf '%s\t%s\n' "${n#dmrsf}" "$l" >> $W/left.$impl
		dmsetup remove --force $n > /dev/null 2>&1 < /dev/null
		rm -f /dev/mapper/$n
	done
}
# fz_flush IMPL: table and status of the batch, then remove it
fz_flush() {
	[ -n "$_batch" ] || return 0
	dmsetup table < /dev/null >> $W/tab.$1 2>&1
	dmsetup status < /dev/null >> $W/st.$1 2>&1
	dmsetup remove $_batch > /dev/null 2>&1 < /dev/null ||
		{ sleep 1; dmsetup remove $_batch > /dev/null 2>&1 < /dev/null; }
	fz_left $1 $_batch
	_batch= _nb=0
}
# fz_run IMPL: every case. $W/res.IMPL: "ID A|R" per case; $W/tab.IMPL and
# $W/st.IMPL: "NAME: TABLE" / "NAME: STATUS" of the accepted ones;
# $W/left.IMPL: "ID WHAT" for what a case left behind; $W/kmsg.IMPL: the
# kernel log, with a "dmrs-fuzz IMPL ID" line before each case
fz_run() {
	local i=0
	: > $W/res.$1
	: > $W/tab.$1
	: > $W/st.$1
	: > $W/left.$1
	: > $W/kmsg.$1
	_batch= _nb=0
	dmesg -c > /dev/null
	while IFS=$TAB read -r id cls exp model note table; do
		echo "dmrs-fuzz $1 $id" > /dev/kmsg
		if dmsetup create dmrsf$id --table "$table" > /dev/null 2>&1 < /dev/null; then
			echo "$id${TAB}A" >> $W/res.$1
			_batch="$_batch dmrsf$id"
			_nb=$((_nb + 1))
			[ $_nb -ge $FZ_BATCH ] && fz_flush $1
		else
			echo "$id${TAB}R" >> $W/res.$1
			fz_left $1 dmrsf$id
		fi
		i=$((i + 1))
		[ $((i % 20)) -eq 0 ] && dmesg -c >> $W/kmsg.$1
	done < $W/cases
	fz_flush $1
	dmesg -c >> $W/kmsg.$1
	[ "$(wc -l < $W/res.$1)" -eq "$total" ] || fail "$(wc -l < $W/res.$1) results for $total cases"
}

for impl in $IMPLS; do
	if [ $impl = c ]; then
		check "load the C dm-mirror" load_c || tap_end
	else
		check "load $(impl_name)" load_rs || tap_end
	fi
	t0=$(date +%s)
	check "$(fz_name $impl): all $total cases run" fz_run $impl
	tap_diag "$(fz_name $impl): $(( $(date +%s) - t0 )) s for $total cases," \
		"$(grep -c "${TAB}A$" $W/res.$impl) accepted"
	if [ $impl = c ]; then check "unload the C dm-mirror" unload_c || tap_end
	else check "unload $(impl_name)" unload_rs || tap_end
	fi
done

# ------------------------------------------------------------- compare ----
# awk prints what to report: "F<tab>NAME<tab>MESSAGE" (a failure),
# "O<tab>NAME" (a passing point), "D<tab>LINE" (a diagnostic)
fz_compare() {
	local f
	for f in res tab st left kmsg; do [ -e $W/$f.rs ] || : > $W/$f.rs; done
	awk -v impls="$IMPLS" -v ndiag=$FZ_DIAG -v CF=$W/cases -v RC=$W/res.c -v RR=$W/res.rs \
		-v TC=$W/tab.c -v TR=$W/tab.rs -v SC=$W/st.c -v SR=$W/st.rs -v LC=$W/left.c \
		-v LR=$W/left.rs -v KC=$W/kmsg.c -v KR=$W/kmsg.rs '
	function mask(s,   f, n, k, i, o) { # the in_sync count of a status line
		n = split(s, f, " ")
		k = f[4] + 5
		if (f[3] == "mirror" && n >= k && f[k] ~ /^[0-9]+\/[0-9]+$/) sub(/^[0-9]+/, "N", f[k])
		o = f[1]
		for (i = 2; i <= n; i++) o = o " " f[i]
		return o
	}
	function outcome(who, id) {
		if (!((who, id) in res)) return "no result"
		if (res[who, id] == "R") return "rejects"
		return "accepts: table \x27" tab[who, id] "\x27 status \x27" mask(st[who, id]) "\x27"
	}
	function failed(id, what,   c) {
		c = cls[id]
		nfail[c]++
		print "F\tcase " id " (" c "): " what "\t" note[id]
		if (++shown <= ndiag) {
			print "D\tcase " id " " cls[id] " " xp[id] ": " table[id]
			print "D\t  C:    " outcome("c", id)
			print "D\t  C kernel log:    " kmsg["c", id]
			if (rs) {
				print "D\t  ours: " outcome("rs", id)
				print "D\t  ours kernel log: " kmsg["rs", id]
			}
		}
	}
	BEGIN {
		FS = "\t"
		rs = impls ~ /rs/
		splat = "WARNING:|BUG:|Oops|Call Trace:|general protection|KASAN|UBSAN|kernel BUG|" \
			"lockdep|locking dependency|possible recursive locking|inconsistent lock state|" \
			"refcount_t:|list_add corruption|list_del corruption|unreferenced object|" \
			"Unable to handle|stack-protector|Kernel panic|soft lockup|blocked for more than"
	}
	FILENAME == CF { n++; order[n] = $1; cls[$1] = $2; xp[$1] = $3; model[$1] = $4
		note[$1] = $5; table[$1] = $6; if (!($2 in ncls)) corder[++nc] = $2; ncls[$2]++; next }
	FILENAME == RC || FILENAME == RR {
		w = FILENAME == RC ? "c" : "rs"
		res[w, $1] = $2; next }
	FILENAME == LC || FILENAME == LR {
		w = FILENAME == LC ? "c" : "rs"
		left[w, $1] = left[w, $1] $2 " "; next }
	FILENAME == TC || FILENAME == TR || FILENAME == SC || FILENAME == SR {
		w = (FILENAME == TC || FILENAME == SC) ? "c" : "rs"
		if ($0 !~ /^dmrsf[0-9]+: /) next
		id = substr($0, 6, index($0, ":") - 6); l = substr($0, index($0, ":") + 2)
		if (FILENAME == TC || FILENAME == TR) tab[w, id] = tab[w, id] l
		else st[w, id] = st[w, id] l
		next }
	FILENAME == KC || FILENAME == KR {
		w = FILENAME == KC ? "c" : "rs"
		l = $0
		sub(/^\[[ 0-9.]*\] */, "", l)
		if (l ~ /^dmrs-fuzz (c|rs) [0-9]+$/) { split(l, p, " "); cur[w] = p[3]; next }
		if (l ~ splat && !((w, "splat") in kmsg)) kmsg[w, "splat"] = "case " cur[w] ": " l
		if (cur[w] != "" && length(kmsg[w, cur[w]]) < 600)
			kmsg[w, cur[w]] = kmsg[w, cur[w]] (kmsg[w, cur[w]] == "" ? "" : " | ") l
		next }
	END {
		for (i = 1; i <= n; i++) {
			id = order[i]; c = cls[id]; e = xp[id]
			if (!(("c", id) in res)) { failed(id, "no result from C"); continue }
			if (rs && !(("rs", id) in res)) { failed(id, "no result from ours"); continue }
			if (left["c", id] != "") failed(id, "C left a " left["c", id] " behind")
			if (rs && left["rs", id] != "") failed(id, "ours left a " left["rs", id] " behind")
			for (k = 0; k < 2; k++) {
				w = k ? "rs" : "c"
				if (w == "rs" && !rs) continue
				if (res[w, id] == "A" && (!((w, id) in tab) || !((w, id) in st)))
					failed(id, (k ? "ours" : "C") " accepted, but dmsetup table/status did not show it")
			}
			cr = res["c", id]
			if (cr == "A") cacc[c]++
			if (cr != model[id])
				failed(id, "the model of C predicts " (model[id] == "A" ? "accept" : "reject") \
					", C " outcome("c", id) " [" kmsg["c", id] "]")
			if (e == "cwrap" && cr != "A")
				failed(id, "C-is-wrong case: C must accept (it wraps the number), C " outcome("c", id))
			if (e == "strict" && cr == "A") cquirk++
			if (e == "cwrap" && cr == "A") cquirk++
			if (!rs) continue
			rr = res["rs", id]
			if (rr == "A") racc[c]++
			if (e == "cwrap" || e == "strict") {
				if (rr != "R") failed(id, "C-is-wrong case (" e "): ours must reject, ours " \
					outcome("rs", id) "; C " outcome("c", id))
				continue
			}
			if (cr != rr)
				failed(id, "C " outcome("c", id) "; ours " outcome("rs", id) " [" kmsg["rs", id] "]")
			else if (cr == "A" && tab["c", id] != tab["rs", id])
				failed(id, "table: C \x27" tab["c", id] "\x27 ours \x27" tab["rs", id] "\x27")
			else if (cr == "A" && mask(st["c", id]) != mask(st["rs", id]))
				failed(id, "status: C \x27" mask(st["c", id]) "\x27 ours \x27" mask(st["rs", id]) "\x27")
		}
		if (shown > ndiag) print "D\t(" shown - ndiag " more failures without diagnostics)"
		for (j = 1; j <= nc; j++) {
			c = corder[j]
			name = "class " c ": " ncls[c] " cases, C accepted " cacc[c] + 0 \
				(rs ? ", ours " racc[c] + 0 : "")
			if (nfail[c]) print "F\t" name "\t" nfail[c] " failing cases (each reported above)"
			else print "O\t" name (rs ? ", all agree" : ", as the model predicts")
		}
		print "D\tC-is-wrong cases where C accepted what ours rejects: " cquirk + 0
		w = "c"
		if ((w, "splat") in kmsg) print "F\tno kernel splat in the C run\t" kmsg[w, "splat"]
		else print "O\tno kernel splat in the C run"
		w = "rs"
		if (rs && (w, "splat") in kmsg) print "F\tno kernel splat in the run of ours\t" kmsg[w, "splat"]
		else if (rs) print "O\tno kernel splat in the run of ours"
	}' $W/cases $W/res.c $W/res.rs $W/left.c $W/left.rs $W/tab.c $W/tab.rs $W/st.c $W/st.rs \
		$W/kmsg.c $W/kmsg.rs > $W/report || return 1
	while IFS=$TAB read -r kind name msg; do
		case "$kind" in
		F) tap_fail "$name" "$msg" ;;
		O) tap_ok "$name" ;;
		D) tap_diag "$name" ;;
		esac
	done < $W/report
}
fz_compare || tap_fail "compare" "the comparison script failed"

fz_only_fixtures() {
	[ "$(dm_count)" = 4 ] || fail "dm devices: $(dmsetup ls | tr '\n' ' ')"
}
check "no dm devices left but the 4 fixtures" fz_only_fixtures
tap_end
