#!/usr/bin/env bash
# Usage: integration/faults.sh [COMMAND [ARG...]]
#
# Installs (once, cached) and starts a 3-node Apache Kafka cluster and an S3 server
# (scripts/start-cluster.sh), runs COMMAND with the environment the fault suite reads, and stops
# every server when COMMAND ends, fails or is interrupted; the suite restarts nodes it kills
# through scripts/broker.sh, whose pids the same cleanup stops. Without COMMAND it runs the
# fault suite (integration/faults, build tag `faults`), which prints its table of scenarios.
# When COMMAND fails, the servers' logs are kept and their last lines printed.
#
# Environment: STRATA_CACHE (download cache), STRATA_IT_KEEP=1 (keep the state directory), and
# the tunables of scripts/start-cluster.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scripts=$here/scripts
source "$scripts/common.sh"

if [ $# -eq 0 ]; then
  set -- go test -tags faults -count=1 -timeout 15m -v "$here/faults/"
fi

"$scripts/install.sh"

state=
status=1
cleanup() {
  [ -n "$state" ] || return 0
  if [ "$status" -ne 0 ]; then
    strata_tail_logs "$state"/logs/*.log 2>/dev/null || true
    "$scripts/stop-cluster.sh" --keep-logs "$state"
  else
    "$scripts/stop-cluster.sh" "$state"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
# A closed stderr must not end this script before its cleanup.
trap '' PIPE

state=$("$scripts/start-cluster.sh")
source "$state/env"

t0=$EPOCHREALTIME
set +e
"$@"
status=$?
set -e
strata_log "$* exited with status $status after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')"
exit "$status"
