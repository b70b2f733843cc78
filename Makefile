# Berth — see README.md. Two set-up commands: `make run` and `make test`.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/berth/berth.Version=$(VERSION)
BIN     := bin/berth
export CGO_ENABLED := 0

.PHONY: all build run test test-go test-kube k8s-testenv test-python vet bench docker python-image clean help

all: build

help:
	@echo "make run    - make sure Docker runs, build berth, start the control plane on :8000"
	@echo "make test   - the whole suite, against the real Docker Engine and a real kube-apiserver"
	@echo "make test-kube - only the Kubernetes driver and Helm chart tests (builds the test cluster's binaries once, ~15 min cold)"
	@echo "make bench  - benchmarks, each beside its baseline (see docs/BENCHMARKS.md)"
	@echo "make build  - build $(BIN) (static)"
	@echo "make python-image - the example Python tenant image (examples/python-workflow)"

build:
	@echo "==> building $(BIN) ($(VERSION))"
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth

docker:
	@scripts/ensure-docker.sh

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

test: docker vet test-go test-kube test-python

# BERTH_TEST_DOCKER=1 makes every Docker-backed test fail (never skip) when
# the engine cannot be reached.
test-go:
	@echo "==> go test (with the real Docker Engine)"
	@BERTH_TEST_DOCKER=1 $(GO) test -count=1 -timeout 20m ./...

# The Kubernetes driver and the Helm chart against a real kube-apiserver with
# etcd, kube-scheduler, kube-controller-manager and kwok's fake nodes on
# loopback (scripts/k8s-testenv.sh). The binaries are built once from the Go
# module proxy and cached in $${BERTH_CACHE:-$$HOME/.cache/berth}/k8s: about
# 15 minutes cold, seconds after. BERTH_TEST_KUBE=1 makes a missing cluster a
# failure; the tests only ever use BERTH_TEST_KUBECONFIG, never KUBECONFIG.
k8s-testenv:
	@scripts/k8s-testenv.sh build

test-kube: k8s-testenv
	@echo "==> go test: kubernetes driver and helm chart (real kube-apiserver + kwok)"
	@set -e; out=$$(scripts/k8s-testenv.sh up) || { scripts/k8s-testenv.sh down; exit 1; }; eval "$$out"; \
	  trap 'scripts/k8s-testenv.sh down' EXIT; \
	  BERTH_TEST_KUBE=1 BERTH_TEST_KUBECONFIG=$$KUBECONFIG BERTH_HELM=$$BERTH_HELM \
	    $(GO) test -count=1 -timeout 15m ./internal/driver/kube/

test-python:
	@echo "==> python sdk tests"
	@cd sdk/python && python3 -m unittest -q
	@cd examples/python-workflow && PYTHONPATH=../../sdk/python python3 -m unittest -q

bench: docker build
	@$(GO) run ./internal/bench -berth $(BIN)

clean:
	rm -rf bin
