#!/usr/bin/env bash
# The resdet demo (make demo): generate the synthetic shapes dataset (the
# easy variant: each class has its own band of hues), train a small Faster
# R-CNN (ResNet-18 C4, trainable BN, from scratch) for a few minutes,
# evaluate it on the held-out test split (VOC07 mAP), run detect on held-out
# images, draw the loss and precision-recall curves, and print where
# everything is. Everything goes to $OUT (default demo-out); a second run
# starts over. Knobs (environment): OUT, IMAGES, ITERS, LR, NORM, SEED,
# THREADS, PRECISION (fp32, bf16 or auto), and COLOURS=0 for the hard
# variant (random colours: only the shape tells the class; 500 iterations
# reached a VOC07 mAP of 0.12-0.17).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-demo-out}
IMAGES=${IMAGES:-240}
ITERS=${ITERS:-1200}
SEED=${SEED:-1}
LR=${LR:-0.02}
COLOURS=${COLOURS:-1}
NORM=${NORM:-trainable}
PRECISION=${PRECISION:-fp32}
if [[ -n ${THREADS:-} ]]; then export RESDET_THREADS=$THREADS; fi
start=$(date +%s)
stamp() { echo "[demo $(( $(date +%s) - start ))s] $*"; }

stamp "building train-det and detect"
mkdir -p "$OUT/bin"
go build -o "$OUT/bin/" ./cmd/train-det ./cmd/detect
TD="$OUT/bin/train-det"
DET="$OUT/bin/detect"

stamp "generating $IMAGES synthetic images"
colours=()
if [[ $COLOURS == 1 ]]; then colours=(--class-colours); fi
"$TD" synth --out "$OUT/data" --images "$IMAGES" --size 256x192 --max-objects 3 "${colours[@]}" --seed "$SEED" --overwrite >"$OUT/synth.txt" 2>/dev/null

stamp "training ResNet-18 C4 from scratch for $ITERS iterations (Ctrl-C stops with a checkpoint; rerun with OUT=$OUT ./scripts/demo.sh to start over)"
"$TD" --data "$OUT/data" --arch r18-c4 --norm "$NORM" --precision "$PRECISION" \
	--min-size 192 --max-size 320 --anchor-sizes 24,48,96,192 \
	--rois-per-image 16 --roi-size 4 --test-proposals 100 --pad-multiple 64 \
	--iters "$ITERS" --batch 2 --lr "$LR" --warmup 50 --steps $((ITERS * 8 / 10)) \
	--log-every 25 --checkpoint-every 200 --keep 2 --seed "$SEED" \
	--out "$OUT/run" --force | tee "$OUT/train.txt"

stamp "evaluating on the test split"
"$TD" eval --data "$OUT/data" --split test --weights "$OUT/run" | tee "$OUT/eval.txt"

stamp "detecting objects in held-out test images"
mkdir -p "$OUT/detections"
mapfile -t imgs < <(head -n 8 "$OUT/data/VOC2007/ImageSets/Main/test.txt" | sed "s|^|$OUT/data/VOC2007/JPEGImages/|; s|$|.jpg|")
"$DET" --weights "$OUT/run/model_final.safetensors" --score-thresh 0.3 --out "$OUT/detections" "${imgs[@]}" >"$OUT/detections.txt"

stamp "plotting"
"$TD" plot "$OUT/run"

map=$(awk '/^mAP/ {print $2; exit}' "$OUT/eval.txt")
cat <<MSG

demo finished in $(( $(date +%s) - start ))s
  dataset:          $OUT/data (VOC: $OUT/data/VOC2007, COCO: $OUT/data/annotations)
  run folder:       $OUT/run (metrics.jsonl, checkpoints/, model_final.safetensors)
  test VOC07 mAP:   ${map:-?} (full report: $OUT/eval.txt)
  loss curves:      $OUT/run/loss.png
  PR curves:        $OUT/run/pr.png
  detections:       $OUT/detections/ (annotated held-out images; table in $OUT/detections.txt)
MSG
