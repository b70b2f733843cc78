#!/usr/bin/env bash
# Build the example Python tenant image without any registry.
#
#   scripts/python-image.sh [BERTH_BINARY] [IMAGE_TAG]
#
#   BERTH_BINARY  static berth binary to copy in as the entrypoint
#                 (default: bin/berth, built with `make build` when missing)
#   IMAGE_TAG     tag of the image to build (default: berth-python-example:latest)
#
# Environment:
#   BERTH_CACHE          cache directory (default: $HOME/.cache/berth); the rootfs
#                        tarball is kept in $BERTH_CACHE/rootfs/
#   BERTH_IMAGE_LABELS   extra labels for the built image, space separated k=v
#                        (the e2e test passes its own label so it can clean up)
#   DEBIAN_MIRROR        default http://deb.debian.org/debian
#   BERTH_ROOTFS_REFRESH=1  rebuild the rootfs even if the cache is valid
#
# Two stages:
#  1. base: a minimal Debian bookworm rootfs with Python 3 made by debootstrap
#     (40 s to 1.5 min the first time, depending on the mirror), cached as a tarball keyed by a stamp of
#     the recipe, and `docker import`ed as berth-python-base:<stamp>, labelled
#     berth.cache=python-base. Both are kept between runs; remove them with
#       docker rmi $(docker images -q -f label=berth.cache=python-base)
#       rm -rf "${BERTH_CACHE:-$HOME/.cache/berth}/rootfs"
#  2. the tenant image: `docker build` of examples/python-workflow/Dockerfile
#     FROM that base, with the berth binary, the Python helper, the workflow
#     and its manifest. A few seconds.
#
# Idempotent: a valid cache and an existing base image are reused. Runs as
# root (debootstrap needs it) on Debian/Ubuntu; installs debootstrap with apt
# if it is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$here/bin/berth}
tag=${2:-berth-python-example:latest}
cache=${BERTH_CACHE:-${HOME:-/root}/.cache/berth}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# Python 3 with its standard library (json, urllib, http.client, ...);
# python3-minimal alone lacks most of it.
packages=python3-minimal,libpython3-stdlib,python3
# Bump when the recipe below changes: it invalidates every cached rootfs.
recipe=1

t0=$(date +%s)
say() { printf '[python-image %3ss] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- checks
command -v docker >/dev/null || die "docker CLI not found (scripts/ensure-docker.sh installs the engine)"
docker info >/dev/null 2>&1 || die "the Docker Engine does not answer (run scripts/ensure-docker.sh)"
if [[ ! -e $bin && $# -eq 0 ]]; then
	say "building $bin"
	make -C "$here" build >&2
fi
[[ -f $bin && -x $bin ]] || die "berth binary $bin not found or not executable"
if command -v ldd >/dev/null && ldd "$bin" >/dev/null 2>&1; then
	die "$bin is dynamically linked; build it with CGO_ENABLED=0 (make build)"
fi

arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
stamp=$(printf 'recipe=%s suite=%s variant=minbase arch=%s packages=%s\n' "$recipe" "$suite" "$arch" "$packages" | sha256sum | cut -c1-12)
base=berth-python-base:$suite-$stamp
rootfs_dir=$cache/rootfs
tarball=$rootfs_dir/python3-$suite.tar
stampfile=$tarball.stamp # "<stamp> <sha256 of the tarball>"
mkdir -p "$rootfs_dir"

# One build of the cache at a time (parallel test runs share it).
exec 9>"$rootfs_dir/.lock"
flock 9

cache_valid() {
	[[ -f $tarball && -f $stampfile ]] || return 1
	local want_stamp want_sum
	read -r want_stamp want_sum <"$stampfile" || return 1
	[[ $want_stamp == "$stamp" ]] || return 1
	say "checking cached rootfs $tarball"
	[[ $(sha256sum "$tarball" | cut -d' ' -f1) == "$want_sum" ]]
}

build_rootfs() {
	if ! command -v debootstrap >/dev/null; then
		say "installing debootstrap (apt)"
		[[ $(id -u) -eq 0 ]] || die "debootstrap is missing and we are not root to install it"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2 ||
			{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; } ||
			die "could not install debootstrap"
	fi
	[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
	local work
	work=$(mktemp -d "$rootfs_dir/build.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" EXIT
	say "debootstrap $suite ($packages) from $mirror — about a minute the first time"
	local log=$work/debootstrap.log
	# debootstrap is quiet for long stretches: show its phases as they come.
	if ! debootstrap --variant=minbase --include="$packages" --arch="$arch" "$suite" "$work/root" "$mirror" \
		> >(tee "$log" | grep --line-buffered -E '^I: (Retrieving Release|Resolving dependencies|Checking component|Installing core|Unpacking the base|Configuring the base|Base system installed)|^[EW]:' | sed -u 's/^/    /' >&2) 2>&1; then
		tail -n 30 "$log" >&2 || true
		die "debootstrap failed (log above)"
	fi
	say "trimming the rootfs"
	local r=$work/root
	"$r/usr/bin/python3" --version >/dev/null 2>&1 || chroot "$r" /usr/bin/python3 --version >/dev/null ||
		die "python3 missing from the rootfs"
	rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/var/log/* \
		"$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
		"$r"/dev/* "$r"/proc/* "$r"/sys/* "$r"/run/* "$r"/tmp/* "$r"/var/tmp/*
	say "writing $tarball"
	tar --numeric-owner --xattrs -C "$r" -cf "$tarball.tmp" .
	sync -f "$tarball.tmp" 2>/dev/null || sync
	mv -f "$tarball.tmp" "$tarball"
	printf '%s %s\n' "$stamp" "$(sha256sum "$tarball" | cut -d' ' -f1)" >"$stampfile.tmp"
	mv -f "$stampfile.tmp" "$stampfile"
	rm -rf "$work"
	trap - EXIT
	say "rootfs cached ($(du -h "$tarball" | cut -f1))"
}

# ---------------------------------------------------------------- stage 1: base
if [[ ${BERTH_ROOTFS_REFRESH:-} == 1 ]]; then
	docker rmi "$base" >/dev/null 2>&1 || true
	rm -f "$stampfile"
fi
if docker image inspect "$base" >/dev/null 2>&1; then
	say "base image $base present"
else
	if cache_valid; then
		say "using cached rootfs $tarball"
	else
		build_rootfs
	fi
	say "importing $tarball as $base"
	docker import \
		--change 'LABEL berth.cache=python-base' \
		--change "LABEL berth.rootfs.stamp=$stamp" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["/usr/bin/python3"]' \
		--message "berth: Debian $suite minbase + python3 (scripts/python-image.sh, recipe $recipe)" \
		"$tarball" "$base" >/dev/null
fi
flock -u 9

# ---------------------------------------------------------------- stage 2: tenant image
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
ex=$here/examples/python-workflow
cp "$ex/Dockerfile" "$ex/summarise_feed.py" "$ex/feed.json" "$ex/workflows.yaml" "$ctx/"
cp "$here/sdk/python/berth_workload.py" "$ctx/"
install -m 0755 "$bin" "$ctx/berth"
labels=(--label "berth.example=python-workflow")
for kv in ${BERTH_IMAGE_LABELS:-}; do
	labels+=(--label "$kv")
done
say "building $tag FROM $base"
# The classic builder: no BuildKit needed on the engine.
if ! DOCKER_BUILDKIT=0 docker build --force-rm --build-arg "BASE=$base" "${labels[@]}" -t "$tag" "$ctx" >"$ctx/build.log" 2>&1; then
	cat "$ctx/build.log" >&2
	die "docker build failed (log above)"
fi
say "done: $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$tag"
