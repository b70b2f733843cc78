# Berth — see README.md. Two set-up commands: `make run` and `make test`.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/berth/berth.Version=$(VERSION)
BIN     := bin/berth
export CGO_ENABLED := 0

NPM     ?= npm
HAVE_NPM := $(shell command -v $(NPM) 2>/dev/null)
NPMCI   := $(NPM) ci --no-audit --no-fund --prefer-offline

.PHONY: all build run test test-go test-python test-web test-browser test-engine-restart web vet bench docker backends bench-replicas test-kube k8s-testenv runsc python-image clean help

all: build

help:
	@echo "make run    - make sure Docker runs, build berth, start the control plane on :8000"
	@echo "make test   - the whole suite, against the real Docker Engine and a real kube-apiserver"
	@echo "make test-kube - only the Kubernetes driver and Helm chart tests (builds the test cluster's binaries once, ~15 min cold)"
	@echo "make bench  - benchmarks, each beside its baseline (see docs/BENCHMARKS.md)"
	@echo "make build  - build $(BIN) (static; builds the dashboard first when npm is there)"
	@echo "make web    - build the TypeScript client and the dashboard into internal/web/dist/app"
	@echo "make python-image - the example Python tenant image (examples/python-workflow)"

# Without npm, `build` still works: the binary then serves a page that says
# how to build the dashboard.
build: $(if $(HAVE_NPM),web)
	@echo "==> building $(BIN) ($(VERSION))"
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth

docker:
	@scripts/ensure-docker.sh

# PostgreSQL, Redis and nginx binaries for the scale-out tests, which start
# throwaway servers of their own (docs/SCALING.md).
backends:
	@scripts/ensure-backends.sh

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

web:
	@echo "==> npm ci and build: clients/typescript, web (dashboard -> internal/web/dist/app)"
	@cd clients/typescript && $(NPMCI) >/dev/null && $(NPM) run --silent build
	@cd web && $(NPMCI) >/dev/null && $(NPM) run --silent build

test: docker runsc backends vet test-go test-kube test-python test-web test-browser test-engine-restart

# Vitest: the TypeScript client (mocked fetch/WebSocket) and the dashboard's
# components (jsdom).
test-web: web
	@echo "==> vitest: clients/typescript and web"
	@cd clients/typescript && $(NPM) test --silent
	@cd web && $(NPM) test --silent

# Real headless Chromium (/usr/bin/chromium) against a real `berth serve`
# with real containers; screenshots go to web/artifacts/ (ignored).
test-browser: docker web
	@echo "==> browser tests (chromium + berth serve + Docker)"
	@cd web && BERTH_TEST_DOCKER=1 $(NPM) run --silent test:browser

# BERTH_TEST_DOCKER=1 makes every Docker-backed test fail (never skip) when
# the engine cannot be reached; BERTH_TEST_POSTGRES=1 and BERTH_TEST_REDIS=1
# do the same for the PostgreSQL store and the Redis bus; BERTH_TEST_REPLICAS=1
# turns on the three-replica end-to-end test (PostgreSQL + Redis + nginx).
test-go:
	@echo "==> go test (with the real Docker Engine, PostgreSQL, Redis and nginx)"
	@BERTH_TEST_DOCKER=1 BERTH_TEST_POSTGRES=1 BERTH_TEST_REDIS=1 BERTH_TEST_REPLICAS=1 \
		$(GO) test -count=1 -timeout 20m ./...

# Restarts dockerd for the whole machine, so it runs alone, at the very end.
test-engine-restart:
	@echo "==> fault test: Docker Engine restart (stops dockerd for everyone for a few seconds)"
	@set -o pipefail; BERTH_TEST_DOCKER=1 BERTH_TEST_ENGINE_RESTART=1 $(GO) test -count=1 -timeout 10m -run '^TestFaultEngineRestart$$' -v ./internal/e2e | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|RECOVERY|_test.go'

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

bench: docker backends build
	@$(GO) run ./internal/bench -berth $(BIN)
	@$(GO) run ./internal/bench -berth $(BIN) -replicas

# Only the scale-out figures (about a minute): 1 vs 3 replicas behind nginx.
bench-replicas: docker backends build
	@$(GO) run ./internal/bench -berth $(BIN) -replicas

clean:
	rm -rf bin internal/web/dist/app clients/typescript/dist web/artifacts
