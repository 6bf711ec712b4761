#!/usr/bin/env bash
# A local sluice cluster on 127.0.0.1: etcd (when installed), a driver (optionally a standby)
# and N executors as background processes, with pid files and logs in a work directory.
#
#   deploy/local/cluster.sh start [--executors N] [--standby]
#   deploy/local/cluster.sh status
#   deploy/local/cluster.sh kill-executor N     # SIGKILL executor N
#   deploy/local/cluster.sh add-executor
#   deploy/local/cluster.sh logs [name]         # tail the logs (driver-0, executor-1, etcd, …)
#   deploy/local/cluster.sh stop
#
# Then: sluice submit job.sql --driver http://127.0.0.1:$SLUICE_DRIVER_PORT   (or --etcd …)
#
# Environment: SLUICE_BIN (default: target/release/sluice, else target/debug/sluice),
# SLUICE_WORK (default: .sluice-local), SLUICE_DRIVER_PORT (7077), SLUICE_ETCD_PORT (2379).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${SLUICE_WORK:-$root/.sluice-local}"
driver_port="${SLUICE_DRIVER_PORT:-7077}"
etcd_port="${SLUICE_ETCD_PORT:-2379}"
etcd_peer_port=$((etcd_port + 1))
bin="${SLUICE_BIN:-}"
if [ -z "$bin" ]; then
  if [ -x "$root/target/release/sluice" ]; then bin="$root/target/release/sluice"; else bin="$root/target/debug/sluice"; fi
fi

mkdir -p "$work/pids" "$work/logs"

alive() { [ -f "$work/pids/$1" ] && kill -0 "$(cat "$work/pids/$1")" 2>/dev/null; }

spawn() { # name, command…
  local name="$1"; shift
  if alive "$name"; then echo "$name already running (pid $(cat "$work/pids/$name"))"; return; fi
  nohup "$@" >"$work/logs/$name.log" 2>&1 &
  echo $! >"$work/pids/$name"
  echo "started $name (pid $!)"
}

etcd_url() { echo "http://127.0.0.1:$etcd_port"; }

have_etcd() { command -v etcd >/dev/null 2>&1; }

etcd_args() { if have_etcd; then echo "--etcd $(etcd_url)"; fi; }

start_etcd() {
  have_etcd || { echo "etcd not installed: executors register with the driver directly (no standby failover)"; return; }
  spawn etcd etcd --name sluice-local --data-dir "$work/etcd" \
    --listen-client-urls "$(etcd_url)" --advertise-client-urls "$(etcd_url)" \
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
  spawn "executor-$n" "$bin" executor --id "executor-$n" --driver "http://127.0.0.1:$driver_port" $(etcd_args)
}

cmd="${1:-}"; shift || true
case "$cmd" in
  start)
    executors=3; standby=0
    while [ $# -gt 0 ]; do
      case "$1" in
        --executors) executors="$2"; shift 2 ;;
        --standby) standby=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
      esac
    done
    [ -x "$bin" ] || { echo "no sluice binary at $bin: build it with cargo build --release" >&2; exit 1; }
    start_etcd
    # shellcheck disable=SC2046
    spawn driver-0 "$bin" driver --listen "127.0.0.1:$driver_port" $(etcd_args)
    if [ "$standby" = 1 ]; then
      have_etcd || { echo "--standby needs etcd" >&2; exit 1; }
      # shellcheck disable=SC2046
      spawn driver-1 "$bin" driver --listen "127.0.0.1:$((driver_port + 1))" $(etcd_args)
    fi
    for n in $(seq 1 "$executors"); do start_executor "$n"; done
    echo "driver: http://127.0.0.1:$driver_port   logs: $work/logs"
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
    echo "stopped"
    ;;
  *)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
