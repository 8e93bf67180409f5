#!/usr/bin/env bash
# Usage: stop-cluster.sh [--keep-logs] STATE_DIR
# Stops every server start-cluster.sh (or broker.sh) started in STATE_DIR, by the pids they
# recorded (STATE_DIR/*.pid), then removes STATE_DIR; with --keep-logs it keeps STATE_DIR/logs.
# STRATA_IT_KEEP=1 keeps everything. A stopped (SIGSTOP) server is continued first, so that it
# can take its SIGTERM. Safe to run twice.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

keep_logs=0
if [ "${1:-}" = --keep-logs ]; then
  keep_logs=1
  shift
fi
state=${1:?usage: stop-cluster.sh [--keep-logs] STATE_DIR}
[ -d "$state" ] || exit 0

# A pid is signalled only while its command line still names this state directory, so a
# recycled pid is left alone.
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -F -- "$state" >/dev/null; }

pids=()
for pidfile in "$state"/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && ours "$pid"; then
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  fi
  rm -f "$pidfile"
done
# Up to 30 s for clean exits, all at once, then SIGKILL for the rest.
for ((i = 0; i < 150; i++)); do
  left=()
  for pid in "${pids[@]}"; do
    ours "$pid" && left+=("$pid")
  done
  pids=("${left[@]}")
  [ ${#pids[@]} -gt 0 ] || break
  sleep 0.2
done
for pid in "${pids[@]}"; do
  strata_log "pid $pid did not stop within 30s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
done

if [ "${STRATA_IT_KEEP:-0}" = 1 ]; then
  strata_log "kept $state"
elif [ "$keep_logs" = 1 ]; then
  find "$state" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
  strata_log "server logs kept in $state/logs"
else
  rm -rf "$state"
fi
