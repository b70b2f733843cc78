#!/usr/bin/env bash
# Make sure gVisor's runsc is built and registered with dockerd as the
# "runsc" runtime (systrap platform). Idempotent: a no-op when the binary is
# cached and the engine already lists the runtime.
#   binary cache: ${BERTH_CACHE:-$HOME/.cache/berth}/bin/runsc (outside the repo)
#   cold build:   go install gvisor.dev/gvisor/runsc@latest (about 5.5 min)
# Registering writes /etc/docker/daemon.json "runtimes" and restarts dockerd
# the way scripts/ensure-docker.sh starts it (containers with a restart
# policy come back; others stay stopped), so run it once, early.
set -euo pipefail
say() { printf '==> %s\n' "$*"; }

cache="${BERTH_CACHE:-$HOME/.cache/berth}"
bin="$cache/bin/runsc"
mkdir -p "$cache/bin"

if [ ! -x "$bin" ]; then
  say "building gVisor runsc with the Go toolchain (about 5.5 min, cached at $bin)"
  GOBIN="$cache/bin" CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@latest
fi

if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
  say "runsc is registered with the engine ($bin)"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "runsc is built at $bin but registering it with dockerd needs root" >&2
  exit 1
fi

say "registering runsc in /etc/docker/daemon.json and restarting dockerd"
mkdir -p /etc/docker
python3 - "$bin" <<'PY'
import json, os, sys
p = "/etc/docker/daemon.json"
cfg = {}
if os.path.exists(p) and os.path.getsize(p) > 0:
    with open(p) as f:
        cfg = json.load(f)
cfg.setdefault("runtimes", {})["runsc"] = {"path": sys.argv[1], "runtimeArgs": ["--platform=systrap"]}
tmp = p + ".tmp"
with open(tmp, "w") as f:
    json.dump(cfg, f, indent=2)
os.replace(tmp, p)
PY

if pid=$(pgrep -x dockerd); then
  # SIGHUP reloads runtimes without a restart.
  kill -HUP $pid
  for i in $(seq 1 20); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && break
    sleep 0.5
  done
fi
if ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
  if pid=$(pgrep -x dockerd); then
    kill $pid
    for i in $(seq 1 60); do pgrep -x dockerd >/dev/null || break; sleep 0.5; done
  fi
  (setsid dockerd >>/var/log/dockerd.log 2>&1 &)
  for i in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' || { echo "dockerd does not list runsc; see /var/log/dockerd.log" >&2; exit 1; }
say "runsc registered ($bin, --platform=systrap)"
