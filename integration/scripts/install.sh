#!/usr/bin/env bash
# Installs what the integration tests run against, into $STRATA_CACHE (default ~/.cache/strata):
#   - Apache Kafka's jars from Maven Central (integration/kafka/pom.xml), broker, tools, the
#     LocalTieredStorage test jar and log4j2;
#   - versitygw, an S3 server, built with `go install`;
#   - curl, openssl and python3 from Debian's packages, when missing and this runs as root.
# Idempotent: each part is skipped when its cached copy is complete.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install_kafka() {
  install_kafka_version "$STRATA_KAFKA_VERSION" "$STRATA_KAFKA_STORAGE_TEST_CLASSIFIER" "$STRATA_KAFKA_LIBS"
  local v
  for v in $STRATA_KAFKA_EXTRA_VERSIONS; do
    install_kafka_version "$v" "$(strata_kafka_classifier "$v")" "$(strata_kafka_libs "$v")"
  done
}

# install_kafka_version VERSION CLASSIFIER LIBS: Kafka VERSION's jars into LIBS.
install_kafka_version() {
  local version=$1 classifier=$2 libs=$3
  local pom=$STRATA_INTEGRATION_DIR/kafka/pom.xml
  # The marker holds a hash of the pom and the pins, so changing either reinstalls.
  local want
  want=$({ cat "$pom"; echo "$version $classifier"; } | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$libs/.complete" 2>/dev/null)" = "$want" ]; then
    return
  fi
  strata_need mvn java
  strata_log "installing Apache Kafka $version jars into $libs"
  local t0=$SECONDS
  # Copy into a fresh folder, then swap it in: an interrupted copy never looks complete.
  local tmp=$libs.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # stdout goes to stderr: callers may capture this script's stdout (none is printed).
  mvn -B -q -Dstyle.color=never -f "$pom" \
    -Dkafka.version="$version" \
    -Dkafka.storage.test.classifier="$classifier" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2
  # The broker loads LocalTieredStorage from this jar; fail here rather than at broker start.
  local jar=$tmp/kafka-storage-$version-$classifier.jar
  list_jar "$jar" | grep 'org/apache/kafka/server/log/remote/storage/LocalTieredStorage.class' >/dev/null ||
    strata_die "$jar does not hold LocalTieredStorage"
  rm -rf "$libs"
  mv "$tmp" "$libs"
  echo "$want" >"$libs/.complete"
  strata_log "installed Apache Kafka $version in $((SECONDS - t0))s"
}

# The command-line tools start.sh uses that a minimal Debian may lack, from Debian's packages
# when this runs as root on such a system; anywhere else start.sh names what is missing.
install_tools() {
  local missing=() tool
  for tool in curl openssl python3; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    strata_log "installing ${missing[*]} from Debian's packages"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}

list_jar() {
  if command -v unzip >/dev/null 2>&1; then unzip -Z1 "$1"; else jar tf "$1"; fi
}

install_versitygw() {
  if [ -x "$STRATA_VERSITYGW" ]; then
    return
  fi
  strata_need go
  strata_log "installing versitygw $STRATA_VERSITYGW_VERSION into $(dirname "$STRATA_VERSITYGW")"
  local t0=$SECONDS
  local tmp=$STRATA_CACHE/versitygw-$STRATA_VERSITYGW_VERSION/bin.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$tmp"
  GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$STRATA_VERSITYGW_VERSION" >&2
  mkdir -p "$(dirname "$STRATA_VERSITYGW")"
  mv "$tmp/versitygw" "$STRATA_VERSITYGW"
  rm -rf "$tmp"
  strata_log "installed versitygw $STRATA_VERSITYGW_VERSION in $((SECONDS - t0))s"
}

# Runs started together on one machine install one at a time; the later ones find the cache done.
mkdir -p "$STRATA_CACHE"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$STRATA_CACHE/.install.lock"
  flock 9
fi
install_tools
install_kafka
install_versitygw
