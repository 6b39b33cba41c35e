#!/usr/bin/env bash
# Runs every fuzz target (each `func FuzzXxx` of the module's tests) for a
# given time, one after the other, and sums up what each ran and found:
#
#   scripts/fuzz.sh 10m               # every target, 10 minutes each
#   scripts/fuzz.sh 30s 'CSV|NDJSON'  # the targets whose name matches
#
# A crasher is written to the target's testdata/fuzz/FuzzXxx/, where plain
# `go test` (and scripts/test.sh) runs it from then on: fix the cause, and
# keep the file as the regression test.
#
# FUZZ_PARALLEL (default 2) is how many workers each target gets;
# FUZZ_MINIMIZE_TIME (default 10s) bounds the minimization of each new
# input (go test's 60s default lets slow targets spend most of their time
# minimizing).
set -uo pipefail
cd "$(dirname "$0")/.."

fuzztime=${1:?usage: scripts/fuzz.sh DURATION [NAME-REGEXP], e.g. scripts/fuzz.sh 10m}
match=${2:-.}
parallel=${FUZZ_PARALLEL:-2}
minimize=${FUZZ_MINIMIZE_TIME:-10s}
logdir=$(mktemp -d "${TMPDIR:-/tmp}/backfill-fuzz.XXXXXX")

# package directory and target name, one pair a line
targets=$(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . |
	grep -v '^./bench/' | sed -E 's|^(.*)/[^/]+_test.go:func (Fuzz.*)$|\1 \2|' | sort -u |
	awk -v m="$match" '$2 ~ m')
if [ -z "$targets" ]; then
	echo "no fuzz target matches $match" >&2
	exit 2
fi

summary=()
failed=0
while read -r dir name; do
	log="$logdir/$name.log"
	echo "== $name ($dir), $fuzztime"
	before=$(ls "$dir/testdata/fuzz/$name" 2>/dev/null | sort)
	# -timeout 0: go test's default 10m would end a 10m run before it is
	# done; -fuzztime bounds it.
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" \
		-parallel "$parallel" -timeout 0 "$dir" >"$log" 2>&1
	rc=$?
	tail -n 3 "$log"
	execs=$(grep -Eo 'execs: [0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
	after=$(ls "$dir/testdata/fuzz/$name" 2>/dev/null | sort)
	new=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^$' | tr '\n' ' ')
	status=ok
	if [ $rc -ne 0 ]; then
		if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
			# golang/go#75804: a duration -fuzztime may end so, with no
			# crasher. The run did its time; rerun with a count
			# (-fuzztime 100000x) to be sure.
			status="ok (ended with 'context deadline exceeded', golang/go#75804)"
		else
			status=FAILED
			failed=1
		fi
	fi
	summary+=("$(printf '%-34s %-12s execs %-10s %s%s' "$name" "$dir" "$execs" "$status" "${new:+  new: $new}")")
done <<<"$targets"

echo
echo "== summary (logs in $logdir)"
printf '%s\n' "${summary[@]}"
exit $failed
