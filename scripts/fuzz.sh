#!/usr/bin/env bash
# Runs every Fuzz target of the module for a short, bounded time each.
# Usage: scripts/fuzz.sh [DURATION]   (default 10s per target)
set -euo pipefail
dur=${1:-10s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz $pkg $f ($dur)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$dur" "$pkg"
	done
done
