#!/usr/bin/env bash
# A local sluice cluster on 127.0.0.1: etcd (when installed), a driver (optionally a standby)
# and N executors as background processes, with pid files and logs in a work directory.
# Secure by default, as a real cluster: the first start makes a development CA with
# `sluice certs` (<work>/tls), and etcd, drivers and executors speak TLS with its member
# certificate (etcd and members require one from their peers); users need the CA and the token.
#
#   deploy/local/cluster.sh start [--executors N] [--standby] [--no-tls]
#   deploy/local/cluster.sh env                 # the CLI's settings: eval "$(deploy/local/cluster.sh env)"
#   deploy/local/cluster.sh status
#   deploy/local/cluster.sh kill-executor N     # SIGKILL executor N
#   deploy/local/cluster.sh add-executor
#   deploy/local/cluster.sh logs [name]         # tail the logs (driver-0, executor-1, etcd, …)
#   deploy/local/cluster.sh stop
#
# Then: eval "$(deploy/local/cluster.sh env)"; sluice submit job.sql; sluice queries
# (--no-tls: plain text, on 127.0.0.1 only — e.g. to measure what TLS costs; the choice holds
# until stop.)
#
# Environment: SLUICE_BIN (default: target/release/sluice, else target/debug/sluice),
# SLUICE_WORK (default: .sluice-local), SLUICE_DRIVER_PORT (7077), SLUICE_ETCD_PORT (2379),
# SLUICE_HTTP_PORT (4040: driver-0's web UI, REST API and /metrics; driver-1 the next port;
# executor N's /metrics at SLUICE_HTTP_PORT + 10 + N),
# SLUICE_ALLOW_LOCATIONS (where jobs may read and write; default: the repository's examples/).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${SLUICE_WORK:-$root/.sluice-local}"
driver_port="${SLUICE_DRIVER_PORT:-7077}"
etcd_port="${SLUICE_ETCD_PORT:-2379}"
etcd_peer_port=$((etcd_port + 1))
http_port="${SLUICE_HTTP_PORT:-4040}"
bin="${SLUICE_BIN:-}"
if [ -z "$bin" ]; then
  if [ -x "$root/target/release/sluice" ]; then bin="$root/target/release/sluice"; else bin="$root/target/debug/sluice"; fi
fi

mkdir -p "$work/pids" "$work/logs"
tls="$work/tls"

# Every setting is passed as a flag below; none may leak in from the caller's environment (say,
# from an earlier `eval "$(cluster.sh env)"`) and change what a process does.
unset SLUICE_TLS_CA SLUICE_TLS_CERT SLUICE_TLS_KEY SLUICE_CLIENT_CA SLUICE_AUTH_TOKEN_FILE SLUICE_INSECURE \
  SLUICE_ETCD SLUICE_ETCD_CA SLUICE_ETCD_CERT SLUICE_ETCD_KEY SLUICE_ETCD_USER SLUICE_ETCD_PASSWORD_FILE \
  SLUICE_DRIVER SLUICE_DRIVER_ADVERTISE SLUICE_EXECUTOR_ADVERTISE SLUICE_CONFIG

# Drivers refuse jobs every location their policy does not allow (README.md, "What a job may
# touch"). The examples read and write under examples/; not the whole repository, nor the work
# directory, which holds the cluster's TLS keys.
export SLUICE_ALLOW_LOCATIONS="${SLUICE_ALLOW_LOCATIONS:-$root/examples}"

alive() { [ -f "$work/pids/$1" ] && kill -0 "$(cat "$work/pids/$1")" 2>/dev/null; }

spawn() { # name, command…
  local name="$1"; shift
  if alive "$name"; then echo "$name already running (pid $(cat "$work/pids/$name"))"; return; fi
  nohup "$@" >"$work/logs/$name.log" 2>&1 &
  echo $! >"$work/pids/$name"
  echo "started $name (pid $!)"
}

# TLS unless this cluster was started with --no-tls (remembered in <work>/mode until stop).
tls_on() { [ "$(cat "$work/mode" 2>/dev/null || echo tls)" = tls ]; }
scheme() { if tls_on; then echo https; else echo http; fi; }

# The development CA and certificates, made once; `sluice certs` never overwrites them.
make_certs() {
  [ -f "$tls/ca.pem" ] && return
  "$bin" certs --out "$tls" --host 127.0.0.1,localhost >/dev/null
  echo "made a development CA and certificates in $tls (sluice certs)"
}

# Flags: a member's TLS identity; the driver's user authentication.
member_tls() { if tls_on; then echo "--tls-ca $tls/ca.pem --tls-cert $tls/member.pem --tls-key $tls/member-key.pem"; fi; }
driver_auth() { if tls_on; then echo "--client-ca $tls/client-ca.pem --auth-token-file $tls/token"; fi; }

etcd_url() { echo "$(scheme)://127.0.0.1:$etcd_port"; }

have_etcd() { command -v etcd >/dev/null 2>&1; }

etcd_args() {
  have_etcd || return 0
  echo "--etcd $(etcd_url)"
  if tls_on; then echo "--etcd-ca $tls/ca.pem --etcd-cert $tls/member.pem --etcd-key $tls/member-key.pem"; fi
}

start_etcd() {
  have_etcd || { echo "etcd not installed: executors register with the driver directly (no standby failover)"; return; }
  local security=()
  # The member certificate serves etcd's clients and, as every sluice process presents it
  # (clientAuth), is what etcd asks of them. The single member's peer URL stays on loopback.
  if tls_on; then
    security=(--cert-file "$tls/member.pem" --key-file "$tls/member-key.pem" --client-cert-auth --trusted-ca-file "$tls/ca.pem")
  fi
  spawn etcd etcd --name sluice-local --data-dir "$work/etcd" \
    --listen-client-urls "$(etcd_url)" --advertise-client-urls "$(etcd_url)" "${security[@]}" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "sluice-local=http://127.0.0.1:$etcd_peer_port"
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$etcd_port") 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "etcd did not start; see $work/logs/etcd.log" >&2; exit 1
}

next_executor() {
  local n=1
  while [ -f "$work/pids/executor-$n" ]; do n=$((n + 1)); done
  echo "$n"
}

start_executor() { # number
  local n="$1"
  # shellcheck disable=SC2046
  spawn "executor-$n" "$bin" executor --id "executor-$n" --driver "$(scheme)://127.0.0.1:$driver_port" \
    --http-listen "127.0.0.1:$((http_port + 10 + n))" $(member_tls) $(etcd_args)
}

# What the CLI needs, as shell exports.
client_env() {
  # Nothing left over from an earlier cluster's settings.
  echo "unset SLUICE_TLS_CA SLUICE_TLS_CERT SLUICE_TLS_KEY SLUICE_TOKEN_FILE SLUICE_ETCD SLUICE_ETCD_CA SLUICE_ETCD_CERT SLUICE_ETCD_KEY"
  echo "export SLUICE_DRIVER=$(scheme)://127.0.0.1:$driver_port"
  if tls_on; then echo "export SLUICE_TLS_CA=$tls/ca.pem SLUICE_TOKEN_FILE=$tls/token"; fi
  if have_etcd; then
    echo "export SLUICE_ETCD=$(etcd_url)"
    # etcd asks for a client certificate: the member one (a local dev cluster only).
    if tls_on; then echo "export SLUICE_ETCD_CA=$tls/ca.pem SLUICE_ETCD_CERT=$tls/member.pem SLUICE_ETCD_KEY=$tls/member-key.pem"; fi
  fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  start)
    executors=3; standby=0; mode=tls
    while [ $# -gt 0 ]; do
      case "$1" in
        --executors) executors="$2"; shift 2 ;;
        --standby) standby=1; shift ;;
        --no-tls) mode=plain; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
      esac
    done
    [ -x "$bin" ] || { echo "no sluice binary at $bin: build it with cargo build --release" >&2; exit 1; }
    if [ -f "$work/mode" ] && [ "$(cat "$work/mode")" != "$mode" ] && ls "$work"/pids/* >/dev/null 2>&1; then
      echo "this cluster already runs $(if tls_on; then echo with TLS; else echo with --no-tls; fi): stop it first to change that" >&2; exit 1
    fi
    echo "$mode" >"$work/mode"
    if tls_on; then make_certs; fi
    start_etcd
    # shellcheck disable=SC2046
    spawn driver-0 "$bin" driver --listen "127.0.0.1:$driver_port" --http-listen "127.0.0.1:$http_port" \
      $(member_tls) $(driver_auth) $(etcd_args)
    if [ "$standby" = 1 ]; then
      have_etcd || { echo "--standby needs etcd" >&2; exit 1; }
      # shellcheck disable=SC2046
      spawn driver-1 "$bin" driver --listen "127.0.0.1:$((driver_port + 1))" --http-listen "127.0.0.1:$((http_port + 1))" \
        $(member_tls) $(driver_auth) $(etcd_args)
    fi
    for n in $(seq 1 "$executors"); do start_executor "$n"; done
    client_env >"$work/env"
    if tls_on; then
      echo "driver: https://127.0.0.1:$driver_port (TLS; users need the CA and a token)   logs: $work/logs"
      echo "web UI: https://127.0.0.1:$http_port/ui/ (trust $tls/ca.pem; the page asks for the token in $tls/token)"
    else
      echo "driver: http://127.0.0.1:$driver_port (plain text, --no-tls)   logs: $work/logs"
      echo "web UI: http://127.0.0.1:$http_port/ui/"
    fi
    echo "the CLI's settings (eval \"\$($0 env)\" sets them):"
    sed 's/^/  /' "$work/env"
    ;;
  env)
    client_env
    ;;
  add-executor)
    start_executor "$(next_executor)"
    ;;
  kill-executor)
    n="${1:?usage: kill-executor N}"
    if alive "executor-$n"; then kill -9 "$(cat "$work/pids/executor-$n")"; echo "killed executor-$n"; else echo "executor-$n is not running"; fi
    rm -f "$work/pids/executor-$n"
    ;;
  status)
    for f in "$work"/pids/*; do
      [ -e "$f" ] || { echo "nothing running"; break; }
      name="$(basename "$f")"
      if alive "$name"; then echo "$name running (pid $(cat "$f"))"; else echo "$name dead"; fi
    done
    ;;
  logs)
    if [ -n "${1:-}" ]; then tail -n 50 -f "$work/logs/$1.log"; else tail -n 20 "$work"/logs/*.log; fi
    ;;
  stop)
    for f in "$work"/pids/*; do
      [ -e "$f" ] || continue
      name="$(basename "$f")"
      if alive "$name"; then kill "$(cat "$f")" 2>/dev/null || true; fi
    done
    sleep 1
    for f in "$work"/pids/*; do
      [ -e "$f" ] || continue
      if alive "$(basename "$f")"; then kill -9 "$(cat "$f")" 2>/dev/null || true; fi
      rm -f "$f"
    done
    rm -f "$work/mode" "$work/env"
    echo "stopped"
    ;;
  *)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
