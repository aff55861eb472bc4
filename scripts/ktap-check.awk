# Checks the KTAP version 1 output of the test suite (tests/run_kselftest.sh)
# and what it says. POSIX awk (mawk, gawk, busybox):
#
#   awk -f scripts/ktap-check.awk [-v killed=1] tap.log
#
# Checks: a "KTAP version 1" line first, the top-level plan right after it
# and as many top-level results as it announces; at every level results
# numbered 1, 2, ... in order; each subtest (indented two spaces per level,
# opened by its own version line) closed by a result line of its parent,
# with as many points as its plan if it has one; a subtest whose parent
# says "ok" must have ended with its "# Totals:" line (the script got to
# tap_end), have points, and none of them failed. Any "not ok" fails the
# run (SKIP and XFAIL are "ok" lines). With killed=1 (run-guest.sh
# --kill-on: the guest was killed on purpose) the run must not have
# finished (fewer top-level results than planned), an unfinished subtest
# is expected, and at least one point must exist.
#
# Prints "ktap: FAIL: ..." per problem, the failed points with the name of
# their test, and a summary line "ktap: T of P top-level results, N points
# in subtests, F failed"; exits 1 if there was a problem.

function problem(msg) {
	print "ktap: FAIL: " msg
	bad = 1
}
function label(l) {
	return (name[l] != "" ? name[l] : "subtest at line " start[l])
}
# close_level L OK: the parent's result line ends the subtest at level L
function close_level(l, parent_ok) {
	if (plan[l] >= 0 && n[l] != plan[l])
		problem(label(l) ": plan 1.." plan[l] " but " n[l] " results")
	if (parent_ok) {
		if (!totals[l])
			problem(label(l) ": reported ok, but its output has no \"# Totals:\" line (the script did not reach tap_end)")
		else if (n[l] == 0)
			problem(label(l) ": reported ok with no points")
		if (nfail[l] > 0)
			problem(label(l) ": reported ok, but " nfail[l] " of its points failed")
	}
	open[l] = 0
}

BEGIN {
	bad = 0
	maxl = 0
	top_seen = 0
	points = 0
	failed = 0
}

{
	sub(/\r$/, "")
	line = $0
	match(line, /^ */)
	ind = RLENGTH
	body = substr(line, ind + 1)
	if (ind % 2 != 0)
		next # not ours: an unknown line (allowed, ignored)
	l = ind / 2

	if (body ~ /^K?TAP version [0-9]+$/) {
		if (l == 0) {
			if (top_seen)
				problem("line " NR ": a second top-level version line")
			if (NR != first_line && first_line != "")
				problem("line " NR ": the top-level version line is not the first line")
			top_seen = 1
		} else if (!open[l - 1]) {
			problem("line " NR ": subtest at level " l " outside a test")
		}
		if (l > 0 && open[l])
			close_level(l, 0)
		open[l] = 1
		n[l] = 0
		plan[l] = -1
		totals[l] = 0
		nfail[l] = 0
		name[l] = ""
		start[l] = NR
		if (l > maxl)
			maxl = l
		next
	}
	if (first_line == "" && body != "")
		first_line = NR
	if (body ~ /^1\.\.[0-9]+/) {
		if (!open[l]) {
			problem("line " NR ": a plan outside a test")
		} else if (n[l] > 0 || plan[l] >= 0) {
			problem("line " NR ": a plan after results (or a second one) in " (l ? label(l) : "the top level"))
		} else {
			p = body
			sub(/^1\.\./, "", p)
			sub(/[^0-9].*$/, "", p)
			plan[l] = p + 0
		}
		next
	}
	if (body ~ /^# Subtest: /) {
		name[l] = substr(body, 12)
		next
	}
	if (body ~ /^# Totals: /) {
		totals[l] = 1
		next
	}
	if (body ~ /^(not )?ok [0-9]+/) {
		if (!open[l]) {
			problem("line " NR ": a result outside a test at level " l ": " body)
			next
		}
		num = body
		sub(/^(not )?ok /, "", num)
		sub(/[^0-9].*$/, "", num)
		if (num + 0 != n[l] + 1)
			problem("line " NR ": result " num " after result " n[l] " in " (l ? label(l) : "the top level"))
		n[l]++
		is_ok = (body ~ /^ok /)
		if (!is_ok) {
			nfail[l]++
			failed++
			fail_lines = fail_lines "  " (l ? label(l) ": " : "") body "\n"
		}
		if (l > 0)
			points++
		# this result closes the subtests below it
		for (k = maxl; k > l; k--)
			if (open[k])
				close_level(k, is_ok && k == l + 1)
		next
	}
	# anything else: a diagnostic or unknown line
}

END {
	if (!top_seen)
		problem("no \"KTAP version 1\" line")
	for (k = maxl; k > 0; k--)
		if (open[k] && !killed)
			problem(label(k) ": no result line closes it (" n[k] " points so far): the guest died or hung inside it")
	if (top_seen) {
		if (plan[0] < 0)
			problem("no top-level plan after the version line")
		else if (killed && n[0] >= plan[0])
			problem("all " plan[0] " top-level results are there: the guest finished before the kill")
		else if (!killed && n[0] != plan[0])
			problem("top-level plan 1.." plan[0] " but " n[0] " results")
	}
	if (killed && n[0] + points == 0)
		problem("no results before the kill")
	if (failed > 0) {
		problem(failed " failed points:")
		printf "%s", fail_lines
	}
	printf "ktap: %d of %d top-level results, %d points in subtests, %d failed\n", n[0], (plan[0] < 0 ? 0 : plan[0]), points, failed
	exit bad
}
