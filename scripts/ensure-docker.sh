#!/usr/bin/env bash
# Make sure a Docker Engine answers. On Debian/Ubuntu as root, install
# docker.io from the distribution and start dockerd when none runs;
# elsewhere say exactly what to do. Exits non-zero when no engine can be had.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }

if docker info >/dev/null 2>&1; then
  say "Docker Engine answers ($(docker version --format '{{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null))"
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  cat >&2 <<'MSG'
No Docker Engine answers, and this script installs one only on Debian or Ubuntu as root.
Install and start Docker yourself, then run this again:
  - Debian/Ubuntu:  sudo apt-get install -y docker.io && sudo systemctl start docker
  - other Linux:    install your distribution's docker package and start the service
  - macOS/Windows:  start Docker Desktop
If the engine runs but not for you, add yourself to the "docker" group or set DOCKER_HOST.
MSG
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  say "installing docker.io from the distribution (about 30 s)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=900 install -y -q docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  say "starting dockerd (log: /var/log/dockerd.log)"
  (setsid dockerd >>/var/log/dockerd.log 2>&1 &)
fi

for i in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    say "Docker Engine answers ($(docker version --format '{{.Server.Version}}, API {{.Server.APIVersion}}'))"
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1
