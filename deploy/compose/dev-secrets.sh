#!/usr/bin/env bash
# Development stand-ins for the Secrets the generated compose project mounts, made with
# `sluice certs` (a throw-away CA; production takes its certificates from cert-manager or your
# own PKI, see deploy/k8s/README.md):
#
#   <secrets>/dev-ca/           what `sluice certs` wrote: the CA and its key, the member
#                               certificate, the client CA, a user certificate, a token. Never
#                               mounted into a container; the host's CLI uses it.
#   <secrets>/sluice-tls/       ca.crt, tls.crt, tls.key   (cert-manager's Certificate layout)
#   <secrets>/sluice-tokens/    tokens                     (the token users present)
#
# The member certificate names every host of <compose>/cert-hosts.txt (written by generate.py:
# the Service aliases, a wildcard per headless Service, the services' addresses, loopback).
# An existing dev-ca/ is kept (sluice certs never overwrites); the stand-ins are refreshed from it.
#
#   deploy/compose/dev-secrets.sh [--compose DIR] [--secrets DIR]
#       --compose   the generated project (default: deploy/compose)
#       --secrets   default: <compose>/secrets (generate.py's --secrets-dir)
#
# Runs `sluice certs` with $SLUICE_BIN, else `sluice` on the PATH, else target/{release,debug}/sluice,
# else the image ${SLUICE_IMAGE:-sluice:0.1.0}. The containers run as uid/gid 65532: as root the
# stand-ins are given to 65532 and readable by it only; otherwise they are made readable by
# everyone on this host (a development CA; say so if that matters, and run it with sudo).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fail() { echo "dev-secrets.sh: $*" >&2; exit 1; }

compose="$here" secrets=""
while [ $# -gt 0 ]; do
  case "$1" in
    --compose) compose="${2:?--compose needs a directory}"; shift 2 ;;
    --secrets) secrets="${2:?--secrets needs a directory}"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done
secrets="${secrets:-$compose/secrets}"
[ -f "$compose/cert-hosts.txt" ] || fail "no $compose/cert-hosts.txt: run generate.py first (deploy/compose/README.md)"
hosts="$(grep -v '^#' "$compose/cert-hosts.txt" | grep . | paste -sd, -)"
mkdir -p "$secrets"
secrets="$(cd "$secrets" && pwd)"
ca="$secrets/dev-ca"

if [ ! -f "$ca/ca.pem" ]; then
  bin="${SLUICE_BIN:-}"
  if [ -z "$bin" ]; then
    if command -v sluice >/dev/null 2>&1; then bin="$(command -v sluice)"
    elif [ -x "$root/target/release/sluice" ]; then bin="$root/target/release/sluice"
    elif [ -x "$root/target/debug/sluice" ]; then bin="$root/target/debug/sluice"
    fi
  fi
  if [ -n "$bin" ]; then
    "$bin" certs --out "$ca" --host "$hosts" >/dev/null
  else
    image="${SLUICE_IMAGE:-sluice:0.1.0}"
    command -v docker >/dev/null 2>&1 || fail "no sluice binary (SLUICE_BIN) and no docker to run $image"
    docker run --rm --network none --user "$(id -u):$(id -g)" -v "$secrets:/secrets" "$image" \
      certs --out /secrets/dev-ca --host "$hosts" >/dev/null
  fi
  echo "dev-secrets.sh: made a development CA in $ca for: ${hosts//,/ }"
fi

# The stand-ins: the keys the pods read, nothing else (no CA key).
install -d "$secrets/sluice-tls" "$secrets/sluice-tokens"
install -m 0400 "$ca/ca.pem" "$secrets/sluice-tls/ca.crt"
install -m 0400 "$ca/member.pem" "$secrets/sluice-tls/tls.crt"
install -m 0400 "$ca/member-key.pem" "$secrets/sluice-tls/tls.key"
install -m 0400 "$ca/token" "$secrets/sluice-tokens/tokens"
if [ "$(id -u)" = 0 ]; then
  # As a Secret volume with fsGroup 65532 and defaultMode 0440 shows them to the pods.
  chown -R 65532:65532 "$secrets/sluice-tls" "$secrets/sluice-tokens"
  chmod 0550 "$secrets/sluice-tls" "$secrets/sluice-tokens"
  chmod 0440 "$secrets"/sluice-tls/* "$secrets"/sluice-tokens/*
else
  chmod 0755 "$secrets/sluice-tls" "$secrets/sluice-tokens"
  chmod 0444 "$secrets"/sluice-tls/* "$secrets"/sluice-tokens/*
  echo "dev-secrets.sh: warning: not root, so the containers' user (65532) reads the stand-ins because everyone on this host can; run with sudo to restrict them to 65532" >&2
fi

cat <<EOF
dev-secrets.sh: $secrets/sluice-tls and sluice-tokens are ready for docker-compose up. From this host:
  export SLUICE_TLS_CA=$ca/ca.pem SLUICE_TOKEN_FILE=$ca/token
  sluice queries --driver https://<a driver's address in cert-hosts.txt>:7077
EOF
