#!/usr/bin/env bash
# Usage: integration/run.sh COMMAND [ARG...]
#
# Installs (once, cached) and starts a real Apache Kafka broker with tiered storage and a real S3
# server, runs COMMAND with the environment the integration tests read, and stops both servers
# when COMMAND ends, fails or is interrupted. When COMMAND fails, the servers' logs are kept and
# their last lines printed. Example:
#
#   integration/run.sh go test -race -tags integration -count=1 ./integration/...
#
# Environment: STRATA_CACHE (download cache, default ~/.cache/strata), STRATA_IT_KEEP=1 (keep the
# state directory), and the tunables of scripts/start.sh.
set -euo pipefail
scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")/scripts" && pwd)
source "$scripts/common.sh"

[ $# -gt 0 ] || strata_die "usage: $0 COMMAND [ARG...]"

"$scripts/install.sh"

# A closed stderr (the reader of a pipe gone) must not kill this script before its cleanup:
# with SIGPIPE ignored a write there fails instead, strata_log ignores that, and cleanup runs
# every step whatever fails. Commands started from here inherit the ignored SIGPIPE.
trap '' PIPE

state=
status=1
cleanup() {
  set +e
  [ -n "$state" ] || return 0
  if [ "$status" -ne 0 ]; then
    strata_tail_logs "$state"/logs/*.log
    "$scripts/stop.sh" --keep-logs "$state"
  else
    "$scripts/stop.sh" "$state"
  fi
}
trap cleanup EXIT
# Exiting from these traps runs cleanup through the EXIT trap.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# start.sh stops whatever it started if it fails or is interrupted, so only its success hands
# the servers over to this script.
state=$("$scripts/start.sh")
source "$state/env"

# COMMAND runs in the foreground, so that Ctrl-C (SIGINT to the whole process group) reaches it
# and it stops; the EXIT trap then stops the servers. A signal sent to this script alone takes
# effect once COMMAND has ended.
t0=$EPOCHREALTIME
set +e
"$@"
status=$?
set -e
strata_log "$* exited with status $status after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }')"
exit "$status"
