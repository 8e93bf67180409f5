#!/usr/bin/env bash
# Usage: stop.sh [--keep-logs] STATE_DIR
# Stops the servers start.sh started in STATE_DIR (by the pids it recorded), then removes
# STATE_DIR; with --keep-logs it removes only the data and keeps STATE_DIR/logs.
# STRATA_IT_KEEP=1 keeps everything. Safe to run twice.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

keep_logs=0
if [ "${1:-}" = --keep-logs ]; then
  keep_logs=1
  shift
fi
state=${1:?usage: stop.sh [--keep-logs] STATE_DIR}
[ -d "$state" ] || exit 0

# stop_server NAME: SIGTERM, up to 30 s for a clean exit, then SIGKILL. A pid is signalled only
# while its command line still names this state directory, so a recycled pid is left alone.
stop_server() {
  local pidfile=$state/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  ours() { tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F -- "$state" >/dev/null; }
  if ours; then
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 150; i++)); do
      ours || break
      sleep 0.2
    done
    if ours; then
      strata_log "$1 (pid $pid) did not stop within 30s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

stop_server kafka
stop_server versitygw

if [ "${STRATA_IT_KEEP:-0}" = 1 ]; then
  strata_log "kept $state"
elif [ "$keep_logs" = 1 ]; then
  find "$state" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
  strata_log "server logs kept in $state/logs"
else
  rm -rf "$state"
fi
