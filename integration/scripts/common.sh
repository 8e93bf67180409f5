# shellcheck shell=bash disable=SC2034  # variables used by the scripts that source this file
# Shared settings of Strata's integration harness, sourced by the other scripts.
# The versions here are the pins; integration/docker/ and docker-compose.yml repeat them and
# must be changed in the same commit (integration/compose.sh refuses images of other versions).

STRATA_KAFKA_VERSION=4.3.1
# kafka-storage's classifier for its test jar (LocalTieredStorage): `test` up to 4.3,
# `test-fixtures` from 4.4 on.
STRATA_KAFKA_STORAGE_TEST_CLASSIFIER="test"
STRATA_VERSITYGW_VERSION=v1.8.0
# Further Apache Kafka versions installed beside the pinned one (space-separated): the Kafka
# plugin's smoke test runs a broker of each. start.sh exports where each one's jars are as
# STRATA_KAFKA_LIBS_<version with underscores>, e.g. STRATA_KAFKA_LIBS_4_4_0.
STRATA_KAFKA_EXTRA_VERSIONS=${STRATA_KAFKA_EXTRA_VERSIONS-4.4.0}

STRATA_INTEGRATION_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Downloads and builds live outside the checkout so that every clone and every run shares them.
STRATA_CACHE=${STRATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}
STRATA_KAFKA_HOME=$STRATA_CACHE/kafka-$STRATA_KAFKA_VERSION
STRATA_KAFKA_LIBS=$STRATA_KAFKA_HOME/libs
STRATA_KAFKA_STORAGE_TEST_JAR=$STRATA_KAFKA_LIBS/kafka-storage-$STRATA_KAFKA_VERSION-$STRATA_KAFKA_STORAGE_TEST_CLASSIFIER.jar
STRATA_VERSITYGW=$STRATA_CACHE/versitygw-$STRATA_VERSITYGW_VERSION/bin/versitygw

# strata_kafka_classifier VERSION: kafka-storage's classifier for LocalTieredStorage's jar.
strata_kafka_classifier() {
  case $1 in
    [0-3].* | 4.[0-3].*) echo test ;;
    *) echo test-fixtures ;;
  esac
}
# strata_kafka_libs VERSION: where install.sh puts that version's jars.
strata_kafka_libs() { echo "$STRATA_CACHE/kafka-$1/libs"; }

# A log line that cannot be written (stderr a closed pipe) is lost, never a reason to stop.
strata_log() { printf '[strata-it] %s\n' "$*" >&2 || true; }
strata_die() { strata_log "error: $*"; exit 1; }

strata_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || strata_die "$tool is required and not on PATH"
  done
}

# Prints, for a failure report, the last warnings and errors of each Kafka-style log file given
# and the last lines of every one.
strata_tail_logs() {
  local f problems
  for f in "$@"; do
    [ -s "$f" ] || continue
    problems=$(grep -E '^\[[^]]*\] (WARN|ERROR|FATAL) ' "$f" | tail -n 20 || true)
    if [ -n "$problems" ]; then
      printf '\n===== last warnings and errors in %s =====\n%s\n' "$f" "$problems" >&2
    fi
    printf '\n===== last 40 lines of %s =====\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}
