#!/usr/bin/env bash
# Makes sure a JDK (17 or later) and Maven are on PATH, for the Kafka plugin and Kafka's test
# suite: from Debian's packages when they are missing and this runs as root on Debian; anywhere
# else it names what is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

missing=()
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
[ ${#missing[@]} -gt 0 ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  strata_log "installing ${missing[*]} from Debian's packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
else
  strata_die "a JDK 17+ (javac) and Maven (mvn) are required: install ${missing[*]}"
fi
