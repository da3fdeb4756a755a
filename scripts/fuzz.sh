#!/usr/bin/env bash
# Runs every Fuzz target of the module for a bounded number of executions
# each, about 10 s per target on a 2-core machine. The budget is a count,
# not a duration: with -fuzztime as a duration, Go 1.26's fuzz coordinator
# can report a spurious "context deadline exceeded" failure when the time
# runs out while a worker is busy (go.dev/issue/75804, fixed in Go 1.27).
# Usage: scripts/fuzz.sh [SCALE]   (multiplies every budget; default 1)
set -euo pipefail
scale=${1:-1}
# Executions per target; the slow targets get fewer.
budget() {
	case $1 in
	FuzzRoIAlign) echo 20000 ;;
	FuzzAssignTargets) echo 40000 ;;
	*) echo 200000 ;;
	esac
}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		n=$(($(budget "$f") * scale))
		echo "fuzz $pkg $f (${n} executions)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "${n}x" "$pkg"
	done
done
