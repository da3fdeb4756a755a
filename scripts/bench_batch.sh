#!/bin/sh
# bench_batch.sh: images/s of `detect batch` with 1 and 2 workers, beside
# `detect`, on one machine (issue 15's scaling figure). Run it on a quiet
# machine from the repository root:
#
#   scripts/bench_batch.sh            # 8 images, R50-C4, 600x894
#   IMAGES=16 scripts/bench_batch.sh
#
# It builds detect and train-det, writes IMAGES synthetic JPEGs
# (`train-det synth`, SIZE px, no size jitter) and a random-weight
# torchvision Faster R-CNN C4 .pth (detection/testdata/gen_fasterrcnn.py,
# ResNet-DEPTH, 20 classes; needs /usr/bin/python3 with torch and
# torchvision; images resized to MIN_SIZE on the shorter side, MAX_SIZE at
# most: 310x208 -> 894x600), then runs, one after the other:
#
#   detect --json --threads 2                                    (1 process, 2 threads)
#   detect batch --runner prism --models-per-worker 1 --threads 2  (1 worker x 2 threads)
#   detect batch --runner prism --models-per-worker 2 --threads 1  (2 workers x 1 thread)
#
# and prints for each the wall time, the images per second (images / wall
# time of the whole command: process start, model loads and, for the
# pipelines, Beam's start-up included), the CPU time (user + system) and
# the models the pipeline loaded (from the summary on stderr, which takes it
# from Beam's metrics: best effort on prism, it may show fewer). It checks
# that every run wrote the same JSON lines (detect --json's, sorted) and
# stops if not.
#
# Environment: IMAGES (8), SIZE (310x208), DEPTH (50), MIN_SIZE (600),
# MAX_SIZE (1000), SCORE (0.5: --score-thresh), KEEP=1 keeps the work folder.
set -eu
IMAGES=${IMAGES:-8}
SIZE=${SIZE:-310x208}
DEPTH=${DEPTH:-50}
MIN_SIZE=${MIN_SIZE:-600}
MAX_SIZE=${MAX_SIZE:-1000}
SCORE=${SCORE:-0.5}
GO=${GO:-go}
PY=/usr/bin/python3

dir=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then
	echo "work folder: $dir"
else
	trap 'rm -rf "$dir"' EXIT
fi
# Beam's LOOPBACK worker leaves a folder in the temporary directory.
mkdir "$dir/tmp"
export TMPDIR="$dir/tmp"

$GO build -o "$dir/detect" ./cmd/detect
$GO build -o "$dir/train-det" ./cmd/train-det
"$dir/train-det" synth --out "$dir/synth" --images "$IMAGES" --seed 1 --size "$SIZE" --size-jitter 0 \
	>"$dir/synth.log" 2>&1 || { cat "$dir/synth.log" >&2; exit 1; }
imgs="$dir/synth/VOC2007/JPEGImages"
$PY detection/testdata/gen_fasterrcnn.py "$dir/model" --depth "$DEPTH" --classes 20 \
	--image "$SIZE" --min-size "$MIN_SIZE" --max-size "$MAX_SIZE" --seed 0 >"$dir/model.log" 2>&1 || {
	cat "$dir/model.log" >&2
	exit 1
}
model="--weights $dir/model/model.pth --arch r$DEPTH-c4 --min-size $MIN_SIZE --max-size $MAX_SIZE --score-thresh $SCORE"
n=$(ls "$imgs"/*.jpg | wc -l)
echo "$n images of $SIZE px, random-weight R$DEPTH-C4 .pth (20 classes), resized to $MIN_SIZE px (at most $MAX_SIZE); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# run ID LABEL COMMAND...: times COMMAND (stdout to $dir/ID.out, stderr to
# $dir/ID.err) and prints one line of figures.
run() {
	id=$1 label=$2
	shift 2
	/usr/bin/time -f "%e %U %S" -o "$dir/$id.time" "$@" >"$dir/$id.out" 2>"$dir/$id.err" || {
		echo "$label failed:" >&2
		cat "$dir/$id.err" >&2
		exit 1
	}
	models=$(sed -n 's/.*(\([0-9]*\) models loaded).*/\1/p' "$dir/$id.err")
	awk -v label="$label" -v n="$n" -v models="${models:--}" '{
		printf "%-46s wall %7.1f s  %6.3f images/s  CPU %7.1f s  models loaded %s\n", label, $1, n / $1, $2 + $3, models
	}' "$dir/$id.time"
}

# shellcheck disable=SC2086 # $model is several flags
run detect "detect --json --threads 2" "$dir/detect" $model --json --threads 2 "$imgs"
sort "$dir/detect.out" >"$dir/want.jsonl"
for w in 1 2; do
	t=$((3 - w)) # 2 threads for 1 worker, 1 thread each for 2
	# shellcheck disable=SC2086
	run "batch$w" "detect batch: $w worker(s) x $t thread(s)" "$dir/detect" batch --runner prism \
		--input "$imgs/*.jpg" --output "$dir/out$w/run" $model --models-per-worker "$w" --threads "$t"
	cat "$dir/out$w"/run-detections-*.jsonl | sort >"$dir/got$w.jsonl"
	if ! cmp -s "$dir/want.jsonl" "$dir/got$w.jsonl"; then
		echo "detect batch, $w worker(s): JSON lines differ from detect --json's ($dir/want.jsonl, $dir/got$w.jsonl)" >&2
		exit 1
	fi
done
echo "every run: the same $(wc -l <"$dir/want.jsonl") JSON lines, $(grep -o '"score"' "$dir/want.jsonl" | wc -l) detections"
