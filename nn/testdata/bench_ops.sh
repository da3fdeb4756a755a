#!/bin/sh
# Runs the Go benchmarks of the non-convolution ops and their torch
# equivalents (nn/testdata/bench_ops_torch.py) one after the other and prints
# the minimum milliseconds of each and the ratio Go/torch.
# Usage (from the repository root): sh nn/testdata/bench_ops.sh [COUNT]
set -eu
count=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test ./nn -run '^$' -bench '^Benchmark(Affine|AffineFrozenStep|ReLU|MaxPool2d|GlobalAvgPool|BatchNormTrain)$' \
	-benchtime 10x -count "$count" >"$tmp/go.txt"
/usr/bin/python3 nn/testdata/bench_ops_torch.py $((count * 10)) >"$tmp/torch.txt"
printf "%-58s %10s %10s %7s\n" benchmark "go ms" "torch ms" "go/torch"
awk '
	FNR == NR { if ($1 ~ /^Benchmark/) { n = $1; sub(/-[0-9]+$/, "", n); ms = $3 / 1e6
		if (!(n in g) || ms < g[n]) g[n] = ms }; next }
	{ t[$1] = $2 }
	END {
		for (n in g) {
			if (n in t) printf "%-58s %10.2f %10.2f %7.2f\n", n, g[n], t[n], g[n] / t[n]
			else printf "%-58s %10.2f %10s %7s\n", n, g[n], "-", "-"
		}
	}' "$tmp/go.txt" "$tmp/torch.txt" | sort
