# Berth — see README.md. Two set-up commands: `make run` and `make test`.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/berth/berth.Version=$(VERSION)
BIN     := bin/berth
export CGO_ENABLED := 0

.PHONY: all build run test test-go test-python test-engine-restart vet bench docker runsc python-image clean help

all: build

help:
	@echo "make run    - make sure Docker runs, build berth, start the control plane on :8000"
	@echo "make test   - the whole suite, against the real Docker Engine"
	@echo "make bench  - benchmarks, each beside its baseline (see docs/BENCHMARKS.md)"
	@echo "make build  - build $(BIN) (static)"
	@echo "make python-image - the example Python tenant image (examples/python-workflow)"

build:
	@echo "==> building $(BIN) ($(VERSION))"
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth

docker:
	@scripts/ensure-docker.sh

# gVisor's runsc for the sandboxed plan tier: built once with the Go
# toolchain (about 5.5 min cold), cached in $${BERTH_CACHE:-~/.cache/berth}/bin,
# registered with dockerd. A no-op when already registered.
runsc: docker
	@scripts/ensure-runsc.sh

# The control plane builds the tenant image (FROM scratch, from its own
# binary) at start when it is missing.
run: docker build
	@echo "==> starting the control plane (Ctrl-C stops it; tenant containers keep running)"
	@./$(BIN) serve

# The example Python tenant image (docs/IMAGES.md); no registry needed.
python-image: docker build
	@scripts/python-image.sh $(BIN) berth-python-example:latest

vet:
	@echo "==> go vet and gofmt"
	@$(GO) vet ./...
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting"; exit 1; }

test: docker runsc vet test-go test-python test-engine-restart

# BERTH_TEST_DOCKER=1 makes every Docker-backed test fail (never skip) when
# the engine cannot be reached.
test-go:
	@echo "==> go test (with the real Docker Engine)"
	@BERTH_TEST_DOCKER=1 $(GO) test -count=1 -timeout 20m ./...

# Restarts dockerd for the whole machine, so it runs alone, at the very end.
test-engine-restart:
	@echo "==> fault test: Docker Engine restart (stops dockerd for everyone for a few seconds)"
	@set -o pipefail; BERTH_TEST_DOCKER=1 BERTH_TEST_ENGINE_RESTART=1 $(GO) test -count=1 -timeout 10m -run '^TestFaultEngineRestart$$' -v ./internal/e2e | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|RECOVERY|_test.go'

test-python:
	@echo "==> python sdk tests"
	@cd sdk/python && python3 -m unittest -q
	@cd examples/python-workflow && PYTHONPATH=../../sdk/python python3 -m unittest -q

bench: docker build
	@$(GO) run ./internal/bench -berth $(BIN)

clean:
	rm -rf bin
