# resdet: the two entry points are `make demo` and `make test` (see README.md).
# Both install the Debian packages they need first (as root; skipped when the
# packages are already there).

APT_PACKAGES := pkg-config libopencv-dev libdnnl-dev libopenblas-dev python3-torch python3-torchvision libopenmpi-dev openmpi-bin
GO ?= go
DEMO_DIR ?= demo-out
FUZZSCALE ?= 1

export GOFLAGS := -mod=mod

.PHONY: deps demo test vet unit fuzz bench-data bench-eval bench-ops bench-engine bench-backbone bench-roi bench-detect bench-train bench-bf16

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	$(GO) mod download

demo: deps
	OUT=$(DEMO_DIR) ./scripts/demo.sh

# The mpi build tag adds the Open MPI binding (internal/mpi) and its tests;
# without it everything builds without Open MPI.
vet: deps
	$(GO) vet ./...
	$(GO) vet -tags mpi ./...

unit: deps
	RESDET_REQUIRE_TORCH=1 RESDET_REQUIRE_MPI=1 RESDET_REQUIRE_SHARED=$(if $(CI),1,) $(GO) test -tags mpi -count=1 -timeout 30m ./...
	$(GO) test -count=1 -tags matprofile -run MatProfile ./datasets/imageio

fuzz: deps
	scripts/fuzz.sh $(FUZZSCALE)

test: vet unit fuzz

# Benchmarks (not part of `make test`): each prints its own figures.
bench-data: deps
	$(GO) test -run '^$$' -bench 'ReadCOCOTrain2017Size|ReadVOC2007' -benchtime 1x ./datasets

bench-eval: deps
	scripts/bench-eval.sh

bench-ops: deps
	sh nn/testdata/bench_ops.sh

bench-engine: deps
	/usr/bin/python3 scripts/bench_engine_layers.py
	/usr/bin/python3 scripts/bench_engine_layers.py --resnet --variant blocked_const
	/usr/bin/python3 scripts/bench_engine_layers.py --resnet --train --variant blocked_exec

bench-backbone: deps
	/usr/bin/python3 scripts/bench_backbone.py --runs 5

bench-roi: deps
	$(GO) test -run '^$$' -bench 'RoI|NMS|FilterProposals|Postprocess' ./ops ./detection ./box
	/usr/bin/python3 ops/testdata/gen_fixtures.py bench $$(mktemp -d)

bench-detect: deps
	d=$$(mktemp -d) && \
	/usr/bin/python3 detection/testdata/gen_fasterrcnn.py $$d --depth 101 --classes 20 --image 500x375 --min-size 600 --max-size 1000 --seed 2 && \
	RESDET_FRCNN_DIR=$$d $(GO) test ./cmd/detect -run '^$$' -bench Detect -benchtime 3x && \
	/usr/bin/python3 cmd/detect/testdata/bench_torchvision.py $$d --iters 3
	/usr/bin/python3 scripts/bench_detect.py --iters 3

# Training steps beside torchvision's (R101-C4 600x800, R50-FPN 800x1333):
# time, CPU time and peak memory with their ratios; then the demo's R18-C4 step.
bench-train: deps
	/usr/bin/python3 scripts/bench_train.py --iters 3
	$(GO) test ./detection -run '^$$' -bench 'TrainStepDemo' -benchtime 3x

# Issue 14's measurements (run them on an AMX machine): which oneDNN kernels
# our bf16 detection, torch's bf16 detection and our bf16 training step use
# (AMX or not), then the bf16 detection and training benchmarks beside
# torch's fp32 (and bf16) runs, 2 threads each, torch with --torch-malloc keep.
bench-bf16: deps
	@echo "bf16 flags in /proc/cpuinfo (per CPU; AMX needs amx_bf16 and amx_tile):"; grep -o 'amx_bf16\|amx_tile\|avx512_bf16' /proc/cpuinfo | sort | uniq -c; true
	RESDET_THREADS=2 /usr/bin/python3 scripts/onednn_kernels.py --label "resdet bf16 detection, Detectron2 R101-C4 1333x800" -- \
		$(GO) test ./detection -run '^$$' -bench '^BenchmarkDetectD2C4BF16$$' -benchtime 1x
	/usr/bin/python3 scripts/onednn_kernels.py --label "torch bf16 detection (autocast, channels_last)" -- \
		/usr/bin/python3 detection/testdata/bench_d2_c4.py --bf16 --channels-last --threads 2
	RESDET_THREADS=2 /usr/bin/python3 scripts/onednn_kernels.py --label "resdet bf16 training step, R101-C4 600x800" -- \
		$(GO) test ./detection -run '^$$' -bench '^BenchmarkTrainStepR101BF16$$' -benchtime 1x
	/usr/bin/python3 scripts/bench_detect.py --torch-malloc keep --case r101_c4_800x1333 r101_c4_800x1333_bf16 \
		d2_r101_c4_800x1333 d2_r101_c4_800x1333_bf16 d2_r101_c4_800x1333_bf16_vs_bf16
	/usr/bin/python3 scripts/bench_train.py --torch-malloc keep --case r101_c4_600x1000 r101_c4_600x1000_bf16
