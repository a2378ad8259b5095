#!/usr/bin/env bash
# Usage: scripts/fuzz.sh FUZZTIME pkg:FuzzTarget...
# Runs each Go fuzz target for FUZZTIME and fails on the first that finds a
# failing input.
#
# Go 1.26's fuzz coordinator can end a clean run with "context deadline
# exceeded" at the -fuzztime boundary (golang/go#75804, fixed in Go 1.27): a
# run that fails that way and wrote no failing input under
# testdata/fuzz/<target>/ is counted as passed, and says so.
set -uo pipefail
go=${GO:-go}
fuzztime=$1
shift
for t in "$@"; do
	pkg=${t%%:*} fn=${t##*:}
	echo "== $fn ($pkg, $fuzztime)"
	corpus=$pkg/testdata/fuzz/$fn
	before=$(ls "$corpus" 2>/dev/null)
	out=$(mktemp)
	# -fuzzminimizetime bounds the minimization of a new input: on ELF files
	# (tens of KB) the default minute would eat the whole budget.
	"$go" test -run '^$' -fuzz "^$fn\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "$pkg" 2>&1 | tee "$out"
	rc=$?
	if [ $rc -ne 0 ]; then
		after=$(ls "$corpus" 2>/dev/null)
		if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out"; then
			echo "== $fn: ended by Go's fuzztime deadline race (golang/go#75804), no failing input written: passed"
		else
			rm -f "$out"
			echo "== $fn: failed, see above (a failing input is written under $corpus)"
			exit 1
		fi
	fi
	rm -f "$out"
done
