#!/bin/sh
# bench-eval.sh: time eval-det on a COCO-val2017-sized case (5000 images,
# 80 categories, ~36k GT, 500k detections) generated on the fly. Prints the
# wall time and peak resident memory (VmHWM) of each of RUNS runs of the real
# binary, then the go test benchmark. Target: < 2.5 s wall, < 1.5 GB.
set -eu
RUNS=${RUNS:-3}
GO=${GO:-go}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
$GO build -o "$dir/eval-det" ./cmd/eval-det
$GO run ./eval/evaltest/gencoco -out "$dir"
ls -l "$dir"/gt.json "$dir"/dets.json | awk '{printf "%s: %.1f MB\n", $NF, $5/1e6}'
i=1
while [ "$i" -le "$RUNS" ]; do
	/usr/bin/time -f "run $i: %e s wall, %U s user, %S s sys, peak RSS %M KB" \
		"$dir/eval-det" --gt "$dir/gt.json" --dets "$dir/dets.json" >"$dir/out.txt"
	i=$((i + 1))
done
head -1 "$dir/out.txt"
$GO test -run '^$' -bench BenchmarkEvalDetCOCOVal2017 -benchtime 3x -benchmem ./cmd/eval-det
