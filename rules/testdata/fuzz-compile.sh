#!/usr/bin/env bash
# Runs a fuzz target — FuzzCompile in rules/lang unless ${2} and ${3} name another and its
# package — for ${1:-20000x} (go's -fuzztime: a count of executions, or a duration) with one
# worker and fails when it fails, or when it stalls. make test gives counts: with a duration,
# Go 1.26's coordinator can fail the run as it ends, with "context deadline exceeded" and no
# failing input (golang/go#75804, fixed in Go 1.27). The stall:
# go's fuzzer prints its progress every 3 s, and reports at 0 execs/s for 9 s and more after
# the last report that executed anything fail the step, which `go test` itself reports as
# PASS. (The summary at the end is one more report, less than 3 s after the one before it; it
# had counted as a third zero after 8 s without executions.)
#
# The stall of the security review (0 execs/s from about 20 s on, PASS at the end) is the
# fuzzer minimising a newly interesting input: it does that for up to -fuzzminimizetime
# (default 60 s) without counting an exec. The input caught in one such stall was a `when` of
# "0" and 3,636 control characters (kind 100: a hotline tumbling-window rule): 0.12 ms per
# exec, but minimising a 3.6 KB string byte by byte takes tens of thousands of execs. Under
# the old sandbox budgets inputs of 20-40 ms (a map over 100,000 elements, nested loops of
# 100,000 steps) made it far worse. Minimisation is capped at 5 s here, so a stall that
# remains is a real one; FuzzCompile's own watchdog fails any single input over 2 s with the
# input quoted. A report at 0 execs/s whose "new interesting" count rose counts as progress:
# several new inputs minimised one after another, each within its 5 s, had made 9 s of zero
# reports and failed make test on a fresh clone (FuzzMarshalMatchesEncodingJSON, 2026-12-04:
# 483 execs from 3 s to 12 s while the interesting inputs went from 3 to 4, then on to 2,030).
# A hung input raises nothing, so it still fails the step.
set -o pipefail
cd "$(dirname "$0")/../.." || exit 1
target=${2:-FuzzCompile}
"${GO:-go}" test -run '^$' -fuzz "^${target}\$" -fuzztime "${1:-20000x}" -fuzzminimizetime 5s -parallel 1 "${3:-./rules/lang/}" 2>&1 |
	awk 'function secs(t,   n, m) { n = 0; if (match(t, /[0-9]+h/)) n += 3600 * substr(t, RSTART, RLENGTH - 1)
	                                  if (match(t, /[0-9]+m/)) n += 60 * substr(t, RSTART, RLENGTH - 1)
	                                  if (match(t, /[0-9]+s/)) n += substr(t, RSTART, RLENGTH - 1); return n }
	     { print }
	     /^fuzz: elapsed: .*execs: / { at = secs($3); found = -1
	                                   if (match($0, /new interesting: [0-9]+/)) found = substr($0, RSTART + 17, RLENGTH - 17) + 0
	                                   if ($0 !~ /\(0\/sec\)/ || found > seen) last = at
	                                   else if (at - last >= 9) stalled = 1
	                                   if (found > seen) seen = found }
	     END { if (stalled) { print "'"$target"' stalled: 0 execs/s for 9 s or more (see rules/testdata/fuzz-compile.sh)"; exit 1 } }'
