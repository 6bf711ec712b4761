#!/usr/bin/env bash
# Builds sluice's container image from a binary built on this machine, for hosts where no base
# image can be pulled (Docker Engine runs, but there is no registry). The image has the layout of
# the one deploy/image/Dockerfile builds: FROM scratch, the binary at /usr/local/bin/sluice, the
# shared libraries ldd lists (and the dynamic loader) at their paths, CA certificates, a nonroot
# user (65532), an empty /tmp (1777), no shell. See deploy/image/rootfs.sh.
#
#   deploy/image/build.sh [--binary PATH] [--tag TAG] [--strip-debug]
#       --binary       default: target/release/sluice, else target/debug/sluice
#       --tag          default: sluice:<workspace version>, i.e. sluice:0.1.0
#       --strip-debug  drop the binary's debug info in the image (a debug build shrinks about 4×;
#                      backtraces keep function names but lose file:line)
#
#   deploy/image/build.sh --etcd [--tag TAG]
#       A stand-in for the official etcd image the dev overlay names (quay.io/coreos/etcd:v3.4.23),
#       made from Debian's etcd-server package (/usr/bin/etcd, 3.4.23; installed with apt-get when
#       missing) at /usr/local/bin/etcd, as the official image has it, with CMD etcd. With a
#       registry, pull the real image instead: docker pull quay.io/coreos/etcd:v3.4.23
#
# Prints the image's size at the end. Needs docker; uses the classic builder when buildx is absent.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
etcd_image="quay.io/coreos/etcd:v3.4.23"   # = overlays/dev/etcd.yaml

fail() { echo "build.sh: $*" >&2; exit 1; }

mode=sluice binary="" tag="" strip=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
    --etcd) mode=etcd; shift ;;
    --strip-debug) strip=1; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done

command -v docker >/dev/null 2>&1 || fail "docker not found"
docker info >/dev/null 2>&1 || fail "cannot reach the Docker Engine (is dockerd running?)"
# Docker's client defaults to BuildKit, which needs the buildx plugin; the classic builder does
# everything this image needs.
if ! docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=0; fi

workspace_version() {
  sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1
}

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
start=$(date +%s)

if [ "$mode" = sluice ]; then
  if [ -z "$binary" ]; then
    if [ -x "$root/target/release/sluice" ]; then binary="$root/target/release/sluice"; else binary="$root/target/debug/sluice"; fi
  fi
  [ -x "$binary" ] || fail "no sluice binary at $binary: cargo build --release --bin sluice, or pass --binary"
  version="$(workspace_version)"
  tag="${tag:-sluice:${version:-0.1.0}}"
  if [ "$strip" = 1 ]; then
    command -v strip >/dev/null 2>&1 || fail "--strip-debug needs strip (Debian: binutils)"
    strip --strip-debug -o "$ctx/sluice" "$binary"
    binary="$ctx/sluice"
  fi
  "$here/rootfs.sh" "$binary" "$ctx/rootfs" sluice
  rm -f "$ctx/sluice"
  # Keep in step with the runtime stage of deploy/image/Dockerfile.
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 rootfs/home/nonroot/ /home/nonroot/
ENV PATH=/usr/local/bin:/usr/bin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.title="sluice" org.opencontainers.image.version="${version}" \
      org.opencontainers.image.description="sluice: a distributed stream processor with Spark Structured Streaming semantics"
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 7077 7078 8080
ENTRYPOINT ["/usr/local/bin/sluice"]
DOCKERFILE
else
  tag="${tag:-$etcd_image}"
  if [ ! -x /usr/bin/etcd ]; then
    echo "build.sh: installing Debian's etcd-server (for /usr/bin/etcd)" >&2
    sudo_if_needed=""
    if [ "$(id -u)" != 0 ]; then sudo_if_needed="sudo"; fi
    $sudo_if_needed apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -q etcd-server
  fi
  have="$(/usr/bin/etcd --version | sed -n 's/^etcd Version: //p')"
  if [ "v$have" != "${tag##*:}" ]; then
    echo "build.sh: warning: Debian's etcd is $have, the image is tagged $tag" >&2
  fi
  "$here/rootfs.sh" /usr/bin/etcd "$ctx/rootfs" etcd
  # etcdctl too when Debian's etcd-client is installed (the official image has both).
  if [ -x /usr/bin/etcdctl ]; then "$here/rootfs.sh" /usr/bin/etcdctl "$ctx/rootfs" etcdctl; fi
  mkdir -p "$ctx/rootfs/var/lib/etcd"
  # Like the official image: etcd as CMD, no ENTRYPOINT, data under /var/lib/etcd. The manifests
  # run it as 65532 (securityContext), so the stand-in leaves the user as the official one does.
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
LABEL org.opencontainers.image.title="etcd" org.opencontainers.image.version="${have}" \
      org.opencontainers.image.description="stand-in for ${etcd_image}, from Debian's etcd-server ${have}"
WORKDIR /var/lib/etcd
EXPOSE 2379 2380
CMD ["/usr/local/bin/etcd"]
DOCKERFILE
fi

docker build --quiet -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.err" || { cat "$ctx/build.err" >&2; fail "docker build of $tag failed"; }
bytes="$(docker image inspect -f '{{.Size}}' "$tag")"
echo "build.sh: built $tag in $(( $(date +%s) - start )) s, size $(( bytes / 1024 / 1024 )) MiB ($bytes bytes)"
