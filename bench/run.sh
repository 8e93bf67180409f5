#!/usr/bin/env bash
# Usage: bench/run.sh   (what `make bench` runs)
#
# Measures Strata's metadata manager (rlmm) against Apache Kafka's own
# TopicBasedRemoteLogMetadataManager on the same real broker, and, as a third side, Strata through
# its Kafka plugin (bin/strata-kafka.jar and its strata serve child, driven by Kafka's side's Java
# program as a broker drives a manager), prints the tables and writes docs/BENCHMARKS.md. It builds Kafka's side (bench/kafka-rlmm, with Maven, into
# $STRATA_CACHE/bench) and Strata's (bin/strata-bench), then runs `strata-bench run` under
# integration/run.sh, which installs, starts and stops a fresh Kafka broker with tiered storage.
# About 15 minutes at the full size on 2 cores, most of it Kafka's publish workload.
#
# Environment (unset means the default):
#   STRATA_BENCH_EVENTS            events in __remote_log_metadata (1000000; a multiple of 2000)
#   STRATA_BENCH_ROUNDS            rounds of each side, medians reported (3)
#   STRATA_BENCH_PUBLISH_SEGMENTS  segments added then finished in the publish workload (2000)
#   STRATA_BENCH_LOOKUPS           measured segment-for-offset lookups (100000)
#   STRATA_BENCH_KAFKA_JVM_OPTS    JVM options of Kafka's side (-Xmx1g: the heap Kafka's own
#                                  kafka-server-start.sh gives a broker)
#   STRATA_BENCH_OUT               the page to write (docs/BENCHMARKS.md)
#   STRATA_BENCH_SCALE             instead of the page above, the scale series: the load workload at
#                                  each of these sizes (comma-separated event counts, e.g.
#                                  1000000,4000000,10000000), each on a fresh broker, written to
#                                  docs/BENCHMARKS-scale.md and its picture docs/BENCHMARKS-scale.svg
#   STRATA_BENCH_KAFKA_BIG_HEAP    the scale series' third side: Kafka's manager with this heap
#                                  (-Xmx of it, e.g. 8g); unset, no third side
#   STRATA_BENCH_READY_TIMEOUT     how long Kafka's side may take to be ready (15m; Go duration)
# A quick run: STRATA_BENCH_EVENTS=100000 STRATA_BENCH_ROUNDS=1 STRATA_BENCH_PUBLISH_SEGMENTS=200 bench/run.sh
# Also those of integration/run.sh (STRATA_CACHE, STRATA_KAFKA_HEAP, TMPDIR, ...).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# The integration harness's pins (Kafka's version) and cache folder.
source integration/scripts/common.sh

strata_need go java mvn
t0=$SECONDS

# Reproducing a run means the same settings: the page shows the command with those that were set.
command="make bench"
vars=(STRATA_BENCH_EVENTS STRATA_BENCH_ROUNDS STRATA_BENCH_PUBLISH_SEGMENTS STRATA_BENCH_LOOKUPS
  STRATA_BENCH_KAFKA_JVM_OPTS STRATA_BENCH_OUT STRATA_BENCH_SCALE STRATA_BENCH_KAFKA_BIG_HEAP
  STRATA_BENCH_READY_TIMEOUT)
for ((i = ${#vars[@]} - 1; i >= 0; i--)); do
  v=${vars[i]}
  if [ -n "${!v:-}" ]; then
    command="$v=$(printf '%q' "${!v}") $command"
  fi
done

# The commit measured. Builds here may not stamp it into binaries (GOFLAGS=-buildvcs=false).
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The page this run rewrites does not count as a change to what is measured.
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain -- . ':!docs/BENCHMARKS.md' 2>/dev/null)" ]; then
  commit="$commit (with uncommitted changes)"
fi

integration/scripts/install.sh

# Kafka's side: compiled classes and the jars they need, outside the checkout.
build=$STRATA_CACHE/bench/kafka-rlmm
strata_log "building Kafka's side (bench/kafka-rlmm) into $build"
rm -rf "$build/libs"
mvn -B -q -Dstyle.color=never -f bench/kafka-rlmm/pom.xml \
  -Dkafka.version="$STRATA_KAFKA_VERSION" -Dbench.build.dir="$build" \
  compile dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$build/libs" >&2

strata_log "building Strata's side (bin/strata-bench) and the plugin's (bin/strata, bin/strata-kafka.jar)"
go build -o bin/strata-bench ./bench/cmd/strata-bench
make -s build kafka-plugin >&2

if [ -n "${STRATA_BENCH_SCALE:-}" ]; then
  results=$(mktemp -d)
  trap 'rm -rf "$results"' EXIT
  big=()
  if [ -n "${STRATA_BENCH_KAFKA_BIG_HEAP:-}" ]; then
    big=(-kafka-big-heap-opts "-Xmx$STRATA_BENCH_KAFKA_BIG_HEAP")
  fi
  jvm=${STRATA_BENCH_KAFKA_JVM_OPTS:--Xmx1g}
  IFS=, read -r -a sizes <<<"$STRATA_BENCH_SCALE"
  for events in "${sizes[@]}"; do
    strata_log "scale series: $events events"
    # Each size on a fresh broker: the run needs an empty topic.
    integration/run.sh bin/strata-bench run \
      -events "$events" \
      -rounds "${STRATA_BENCH_ROUNDS:-1}" \
      -lookups "${STRATA_BENCH_LOOKUPS:-100000}" \
      -jvm-opts "$jvm" "${big[@]}" \
      -ready-timeout "${STRATA_BENCH_READY_TIMEOUT:-15m}" \
      -kafka-classpath "$build/classes:$build/libs/*" \
      -kafka-version "$STRATA_KAFKA_VERSION" \
      -strata-commit "$commit" \
      -skip-publish -results "$results/scale-$events.json" \
      -command "$command"
  done
  bin/strata-bench scale -out docs/BENCHMARKS-scale.md -svg docs/BENCHMARKS-scale.svg \
    -strata-commit "$commit" -command "$command" "$results"/scale-*.json
  strata_log "scale series done in $((SECONDS - t0))s"
  exit 0
fi

integration/run.sh bin/strata-bench run \
  -events "${STRATA_BENCH_EVENTS:-1000000}" \
  -rounds "${STRATA_BENCH_ROUNDS:-3}" \
  -publish-segments "${STRATA_BENCH_PUBLISH_SEGMENTS:-2000}" \
  -lookups "${STRATA_BENCH_LOOKUPS:-100000}" \
  -jvm-opts "${STRATA_BENCH_KAFKA_JVM_OPTS:--Xmx1g}" \
  -kafka-classpath "$build/classes:$build/libs/*" \
  -plugin-jar bin/strata-kafka.jar \
  -strata-binary bin/strata \
  -kafka-version "$STRATA_KAFKA_VERSION" \
  -strata-commit "$commit" \
  -out "${STRATA_BENCH_OUT:-docs/BENCHMARKS.md}" \
  -command "$command"
strata_log "benchmark done in $((SECONDS - t0))s"
