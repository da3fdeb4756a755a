# resdet: the two entry points are `make demo` and `make test` (see README.md).
# Both install the Debian packages they need first (as root; skipped when the
# packages are already there).

APT_PACKAGES := pkg-config libopencv-dev libdnnl-dev libopenblas-dev python3-torch python3-torchvision
GO ?= go
DEMO_DIR ?= demo-out
FUZZTIME ?= 10s

export GOFLAGS := -mod=mod

.PHONY: deps demo test vet unit fuzz bench-data bench-eval

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	$(GO) mod download

demo: deps
	$(GO) run ./cmd/train-det synth --out $(DEMO_DIR)/data --images 200 --seed 1 --overwrite --preview 8

vet: deps
	$(GO) vet ./...

unit: deps
	RESDET_REQUIRE_TORCH=1 $(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -tags matprofile -run MatProfile ./datasets/imageio

fuzz: deps
	scripts/fuzz.sh $(FUZZTIME)

test: vet unit fuzz

# Benchmarks (not part of `make test`): each prints its own figures.
bench-data: deps
	$(GO) test -run '^$$' -bench 'ReadCOCOTrain2017Size|ReadVOC2007' -benchtime 1x ./datasets

bench-eval: deps
	scripts/bench-eval.sh
