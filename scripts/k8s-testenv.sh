#!/usr/bin/env bash
# k8s-testenv.sh build|up|down -- a real kube-apiserver (+etcd, scheduler,
# controller-manager, kwok) on loopback for the Kubernetes driver's tests.
# Adapted from the checked recipe in ../shared/recipes (see docs/KUBERNETES.md).
# Builds the binaries from the Go module proxy once and caches them OUTSIDE the
# clone in ${BERTH_CACHE:-$HOME/.cache/berth}/k8s (cold ~15 min, 3.2 GB peak on
# 2 cores; with the binaries cached, `up` takes a few seconds). Also builds helm.
# Usage: eval "$(scripts/k8s-testenv.sh up)"   ->  exports KUBECONFIG, KUBEBUILDER_ASSETS, BERTH_HELM
#        scripts/k8s-testenv.sh down
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-1.37.2}          # k8s.io/kubernetes v1.X.Y  <-> staging modules v0.X.Y
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
COMPONENTS=${COMPONENTS:-"kube-apiserver kube-scheduler kube-controller-manager"}   # kube-apiserver alone is enough for envtest
CACHE=${K8S_CACHE:-${BERTH_CACHE:-$HOME/.cache/berth}/k8s}
HELM_VERSION=${HELM_VERSION:-3.21.4}   # v3.22.0 is served but not an approved release here
HELM_BIN=$CACHE/helm-v$HELM_VERSION-$(go env GOVERSION)
K8S_BIN=$CACHE/bin-k8s$K8S_VERSION-etcd$ETCD_VERSION-kwok$KWOK_VERSION-$(go env GOVERSION)
RUN=${K8S_RUN:-/tmp/berth-k8s-testenv}; API_PORT=${API_PORT:-16443}; ETCD_PORT=${ETCD_PORT:-23890}
log() { echo "k8s-testenv: $*" >&2; }

# Progress for long cold builds: which step, and a heartbeat every 30 s.
T0=$SECONDS; TICKER=""
step() { log "building $1 (${2:-}elapsed $((SECONDS-T0))s; cold builds take ~15 min in all, cached runs seconds)"; }
ticker_start() { ( while sleep 30; do log "  ... still building, $((SECONDS-T0))s elapsed"; done ) & TICKER=$!; }
ticker_stop() { [ -z "$TICKER" ] || kill "$TICKER" 2>/dev/null || true; TICKER=""; }

build() {
  ticker_start; trap ticker_stop EXIT
  mkdir -p "$K8S_BIN" "$CACHE/mod"; local m=$CACHE/mod minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  export GOFLAGS=-buildvcs=false
  cd "$m"
  if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes v$K8S_VERSION" go.mod; then
    rm -f go.mod go.sum; printf 'module local/k8stools\n\ngo 1.26.0\n' > go.mod
    go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null
    local kmod; kmod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod
    { printf 'require k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S_VERSION"
      grep -E '=> ./staging' "$kmod" | awk -v v="0.${K8S_VERSION#*.}" '{print "\t"$1" => "$1" v"v}'; echo ')'; } >> go.mod
    printf '//go:build tools\n\npackage tools\n\nimport (\n' > tools.go
    for c in kube-apiserver kube-scheduler kube-controller-manager kubectl; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' $c >> tools.go; done
    printf ')\n' >> tools.go; go mod tidy >&2
  fi
  # etcd in its own module: mixing it into the k8s module lets MVS move etcd client/api to k8s's versions
  mkdir -p "$CACHE/mod-etcd"
  if ! grep -qs "go.etcd.io/etcd/server/v3 v$ETCD_VERSION" "$CACHE/mod-etcd/go.mod"; then
    rm -f "$CACHE/mod-etcd/go.mod" "$CACHE/mod-etcd/go.sum"; printf 'module local/etcdtools\n\ngo 1.26.0\n' > "$CACHE/mod-etcd/go.mod"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$CACHE/mod-etcd/tools.go"
    (cd "$CACHE/mod-etcd" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2 && go mod tidy >&2)
  fi
  local ldf="" p c
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"; done
  # One binary at a time: progress is visible and the peak memory stays ~3 GB.
  for c in $COMPONENTS; do
    [ -x "$K8S_BIN/$c" ] || { step "$c"; go build -ldflags "$ldf" -o "$K8S_BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2 && mv "$K8S_BIN/$c.tmp" "$K8S_BIN/$c"; }
  done
  [ -x "$K8S_BIN/etcd" ] || { step etcd; (cd "$CACHE/mod-etcd" && go build -o "$K8S_BIN/etcd.tmp" go.etcd.io/etcd/server/v3) >&2 && mv "$K8S_BIN/etcd.tmp" "$K8S_BIN/etcd"; }
  [ -x "$K8S_BIN/kwok" ] || { step kwok; GOBIN="$K8S_BIN" GOFLAGS= go install "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" >&2; }
  [ -x "$HELM_BIN/helm" ] || { step "helm v$HELM_VERSION"; mkdir -p "$HELM_BIN"; GOBIN="$HELM_BIN" GOFLAGS= go install "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" >&2; }
  local st; st=$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage
  [ -f "$K8S_BIN/kwok-stages.yaml" ] || for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do cat "$st/$f"; echo '---'; done > "$K8S_BIN/kwok-stages.yaml"
  ticker_stop; log "binaries ready in $K8S_BIN and $HELM_BIN ($((SECONDS-T0))s)"
}

bg() { local name=$1; shift; "$@" > "$RUN/$name.log" 2>&1 & echo $! > "$RUN/$name.pid"; }
wait_for() { local what=$1 i; shift; for i in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; log "$what not ready"; tail -20 "$RUN/$what.log" >&2; return 1; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() {
  ( build ); down; local p
  for p in "$API_PORT" $((API_PORT+1)) $((API_PORT+2)) "$ETCD_PORT" $((ETCD_PORT+10)) $((ETCD_PORT+20)); do
    if port_busy "$p"; then log "port $p on 127.0.0.1 is in use (set API_PORT / ETCD_PORT)"; return 1; fi; done
  rm -rf "$RUN"; mkdir -p "$RUN/certs"
  openssl genrsa -out "$RUN/sa.key" 2048 2>/dev/null; openssl rsa -in "$RUN/sa.key" -pubout -out "$RUN/sa.pub" 2>/dev/null
  echo "ci-token,ci-admin,ci-admin,system:masters" > "$RUN/tokens.csv"
  printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {server: "https://127.0.0.1:%s", insecure-skip-tls-verify: true}\nusers:\n- name: a\n  user: {token: ci-token}\ncontexts:\n- name: t\n  context: {cluster: t, user: a}\ncurrent-context: t\n' "$API_PORT" > "$RUN/kubeconfig"
  bg etcd "$K8S_BIN/etcd" --name t --data-dir "$RUN/etcd-data" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
     --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls http://127.0.0.1:$((ETCD_PORT+10)) \
     --initial-advertise-peer-urls http://127.0.0.1:$((ETCD_PORT+10)) --initial-cluster t=http://127.0.0.1:$((ETCD_PORT+10)) \
     --listen-metrics-urls http://127.0.0.1:$((ETCD_PORT+20))
  wait_for etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"
  bg apiserver "$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" --bind-address=127.0.0.1 \
     --advertise-address=127.0.0.1 --endpoint-reconciler-type=none --secure-port="$API_PORT" --cert-dir="$RUN/certs" \
     --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-account-key-file="$RUN/sa.pub" \
     --service-account-signing-key-file="$RUN/sa.key" --token-auth-file="$RUN/tokens.csv" --authorization-mode=RBAC \
     --service-cluster-ip-range=10.96.0.0/16
  wait_for apiserver curl -sfk -H "Authorization: Bearer ci-token" "https://127.0.0.1:$API_PORT/readyz"
  local kc="$RUN/kubeconfig" auth="--kubeconfig=$RUN/kubeconfig --authentication-kubeconfig=$RUN/kubeconfig --authorization-kubeconfig=$RUN/kubeconfig"
  if [[ " $COMPONENTS " == *" kube-scheduler "* ]]; then
    bg scheduler "$K8S_BIN/kube-scheduler" $auth --leader-elect=false --bind-address=127.0.0.1 --secure-port=$((API_PORT+1))
    wait_for scheduler curl -sfk "https://127.0.0.1:$((API_PORT+1))/healthz"; fi
  if [[ " $COMPONENTS " == *" kube-controller-manager "* ]]; then
    bg kcm "$K8S_BIN/kube-controller-manager" $auth --leader-elect=false --bind-address=127.0.0.1 --secure-port=$((API_PORT+2)) \
       --service-account-private-key-file="$RUN/sa.key" --root-ca-file="$RUN/certs/apiserver.crt" --use-service-account-credentials=false
    wait_for kcm curl -sfk "https://127.0.0.1:$((API_PORT+2))/healthz"; fi
  bg kwok "$K8S_BIN/kwok" --kubeconfig="$kc" -c "$K8S_BIN/kwok-stages.yaml" --manage-all-nodes=false \
     --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
  # one fake node managed by kwok (tests may add more)
  curl -sfk -o /dev/null -H "Authorization: Bearer ci-token" -H 'Content-Type: application/json' -X POST \
    "https://127.0.0.1:$API_PORT/api/v1/nodes" -d '{"apiVersion":"v1","kind":"Node","metadata":{"name":"kwok-node-0",
    "annotations":{"kwok.x-k8s.io/node":"fake"},"labels":{"type":"kwok","kubernetes.io/hostname":"kwok-node-0"}},
    "status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"110"},"capacity":{"cpu":"32","memory":"256Gi","pods":"110"}}}'
  mkdir -p "$RUN/assets"; ln -sf "$K8S_BIN/kube-apiserver" "$K8S_BIN/etcd" "$RUN/assets/"
  echo "export KUBECONFIG=$kc KUBEBUILDER_ASSETS=$RUN/assets BERTH_HELM=$HELM_BIN/helm"
}

# Stops only the processes `up` started (their pids are in $RUN), and waits
# for each to exit (SIGKILL after 15 s) so that the ports are free again.
down() { local n p i; for n in kwok kcm scheduler apiserver etcd; do
  [ -f "$RUN/$n.pid" ] || continue; p=$(cat "$RUN/$n.pid"); rm -f "$RUN/$n.pid"
  kill "$p" 2>/dev/null || continue
  for i in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && { log "$n ($p) did not stop: killing"; kill -9 "$p" 2>/dev/null || true; }
  done; return 0; }

case "${1:-}" in up) up ;; down) down ;; build) build ;; *) echo "usage: $0 up|down|build" >&2; exit 2 ;; esac
