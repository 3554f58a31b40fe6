#!/usr/bin/env bash
# Builds the image with Debian's podman, buildah and mmdebstrap, and no container registry: the base
# image comes from Debian's archive. tests/system/test_container.py (run by .ci/run) builds it this way.
#
#   deploy/docker/podman-build.sh [IMAGE]        (default localhost/aep-flow-exporter:dev)
#
# - Base: `mmdebstrap --variant=minbase` bookworm with python3, python3-venv, python-is-python3 and
#   ca-certificates, `podman import`ed as $BASE (default localhost/aep-flow-exporter-base:bookworm)
#   and passed to the Dockerfile's BASE argument. Built once: an existing $BASE is reused (delete it
#   with `podman rmi` to refresh it). The Debian mirror is the one apt uses here, or $DEBIAN_MIRROR.
# - Build: chroot isolation (the default runtime fails on hybrid cgroups), --pull=never, Docker
#   image format (HEALTHCHECK is kept), the host's CA bundle mounted read-only for pip.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE=${1:-localhost/aep-flow-exporter:dev}
BASE=${BASE:-localhost/aep-flow-exporter-base:bookworm}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

apt_mirror() {
  # The first non-security Debian archive in apt's sources (deb822 or one-line format).
  local m
  m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

if ! podman image exists "$BASE"; then
  mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "podman-build: making the base image $BASE from $mirror (bookworm, minbase)" >&2
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$tmp/base.tar" "deb $mirror bookworm main" </dev/null
  podman import --quiet "$tmp/base.tar" "$BASE" >/dev/null
fi

ca=()
if [ -r "$CA_BUNDLE" ]; then
  ca=(--volume "$CA_BUNDLE:/etc/ssl/host-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/host-ca.crt)
fi
BUILDAH_ISOLATION=chroot podman build --pull=never --format docker --build-arg "BASE=$BASE" "${ca[@]}" \
  --file deploy/docker/Dockerfile --tag "$IMAGE" .
