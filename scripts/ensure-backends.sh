#!/usr/bin/env bash
# Make sure the binaries of the scale-out tests are installed: PostgreSQL's
# server (initdb, pg_ctl), redis-server and nginx. The tests start their own
# throwaway servers on free loopback ports; nothing here starts a service.
# On Debian/Ubuntu as root it installs what is missing from the
# distribution; elsewhere it says what to install. Exits non-zero when a
# binary is missing afterwards.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }

have_pg() { command -v pg_ctl >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; }
have_redis() { command -v redis-server >/dev/null 2>&1; }
have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }

need=()
have_pg || need+=(postgresql)
have_redis || need+=(redis-server)
have_nginx || need+=(nginx-light)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
    echo "missing for the scale-out tests: ${need[*]} (install them with your package manager)" >&2
    exit 1
  fi
  say "installing ${need[*]} from the distribution"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${need[@]}" >/dev/null
  # The packages start system services; the tests use their own servers.
  for s in redis-server nginx; do
    systemctl disable --now "$s" >/dev/null 2>&1 || service "$s" stop >/dev/null 2>&1 || true
  done
fi

have_pg && have_redis && have_nginx || { echo "scale-out test binaries still missing" >&2; exit 1; }
say "PostgreSQL server, redis-server and nginx are installed (tests start throwaway servers)"
