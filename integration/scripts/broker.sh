#!/usr/bin/env bash
# Usage: broker.sh STATE_DIR N
# Starts node N of the cluster start-cluster.sh laid out in STATE_DIR (Kafka's jars from its
# STATE_DIR/libs), in the background, with
# its output appended to STATE_DIR/logs/kafka-N.log, and records its pid in STATE_DIR/kafka-N.pid
# for stop-cluster.sh. Returns at once; the fault suite calls it to restart a node it killed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

state=${1:?usage: broker.sh STATE_DIR N}
n=${2:?usage: broker.sh STATE_DIR N}
dir=$state/kafka-$n
[ -f "$dir/server.properties" ] || strata_die "$dir/server.properties: no such node"

# The state directory is on the command line (in the config path), so stop-cluster.sh can tell
# this process from another that reuses its pid.
# Only the client compiler: the suite restarts nodes often and loads them lightly, and on a
# small machine the optimizing compiler's work at start-up delays the node's return.
java -Xms"${STRATA_KAFKA_HEAP:-384m}" -Xmx"${STRATA_KAFKA_HEAP:-384m}" -XX:+UseG1GC -XX:TieredStopAtLevel=1 \
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=$state/log4j2.properties" \
  -cp "$state/libs/*" kafka.Kafka "$dir/server.properties" \
  >>"$state/logs/kafka-$n.log" 2>&1 </dev/null &
echo $! >"$state/kafka-$n.pid"
