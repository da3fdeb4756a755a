#!/usr/bin/env bash
# Trains the demo recipe (scripts/demo.sh) with resdet and with torchvision
# (scripts/train_demo_torchvision.py) on the same synthetic data for several
# seeds, the two sides one after the other (never at the same time: torch's
# OpenMP threads slow down badly under contention), and prints each seed's
# test VOC07 mAP, both means and sample standard deviations, and whether the
# difference of the means is within two standard errors
# (sqrt(s1^2/n + s2^2/n)). Issue 13's fidelity check.
#
#   scripts/demo_seeds.sh [SEEDS...]          (default: 1 2 3 4 5 6)
#
# Knobs (environment): OUT (default seeds-out), THREADS (default 2; both
# sides), ITERS (default the demo's), CPUS (a taskset CPU list to pin both
# sides to, e.g. 1). Each seed's folders stay in $OUT/seed-N; a seed whose
# results exist is not rerun (delete its folder to rerun it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-seeds-out}
THREADS=${THREADS:-2}
seeds=("$@")
if [[ ${#seeds[@]} == 0 ]]; then seeds=(1 2 3 4 5 6); fi
pin=()
if [[ -n ${CPUS:-} ]]; then pin=(taskset -c "$CPUS"); fi
iters=()
if [[ -n ${ITERS:-} ]]; then iters=(--iters "$ITERS"); fi
CLASSES=circle,square,triangle,ellipse,star,cross
mkdir -p "$OUT/bin"
go build -o "$OUT/bin/" ./cmd/eval-det

for s in "${seeds[@]}"; do
	d="$OUT/seed-$s"
	if [[ ! -s $d/resdet.map ]]; then
		echo "seed $s: resdet (scripts/demo.sh, $THREADS threads)"
		OUT="$d/resdet" SEED=$s THREADS=$THREADS "${pin[@]}" ./scripts/demo.sh >"$d.resdet.log" 2>&1 ||
			{ echo "seed $s: demo.sh failed, see $d.resdet.log" >&2; exit 1; }
		mkdir -p "$d"
		awk '/^mAP/ {print $2; exit}' "$d/resdet/eval.txt" >"$d/resdet.map"
	fi
	if [[ ! -s $d/torchvision.map ]]; then
		echo "seed $s: torchvision (scripts/train_demo_torchvision.py, $THREADS threads)"
		OMP_NUM_THREADS=$THREADS "${pin[@]}" /usr/bin/python3 scripts/train_demo_torchvision.py "$d/resdet/data" "$d/tv" \
			--seed "$s" --threads "$THREADS" "${iters[@]}" >"$d.tv.log" 2>&1 ||
			{ echo "seed $s: torchvision failed, see $d.tv.log" >&2; exit 1; }
		"$OUT/bin/eval-det" --gt "$d/resdet/data/VOC2007" --dets "$d/tv" --split test --classes "$CLASSES" >"$d/tv-eval.txt" 2>&1
		awk '/^mAP/ {print $2; exit}' "$d/tv-eval.txt" >"$d/torchvision.map"
	fi
	echo "seed $s: resdet $(cat "$d/resdet.map")  torchvision $(cat "$d/torchvision.map")"
done

for s in "${seeds[@]}"; do echo "$s $(cat "$OUT/seed-$s/resdet.map") $(cat "$OUT/seed-$s/torchvision.map")"; done | awk '
{ n++; a[n] = $2; b[n] = $3; sa += $2; sb += $3 }
END {
	ma = sa / n; mb = sb / n
	for (i = 1; i <= n; i++) { va += (a[i] - ma)^2; vb += (b[i] - mb)^2 }
	sda = sqrt(va / (n - 1)); sdb = sqrt(vb / (n - 1)); se = sqrt((va + vb) / (n - 1) / n)
	printf "%d seeds: resdet mean %.4f sd %.4f; torchvision mean %.4f sd %.4f\n", n, ma, sda, mb, sdb
	d = ma - mb; if (d < 0) d = -d
	printf "difference of means %.4f, standard error %.4f: %s two standard errors\n", d, se, (d < 2 * se ? "within" : "NOT within")
}'
