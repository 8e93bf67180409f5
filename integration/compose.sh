#!/usr/bin/env bash
# Usage: integration/compose.sh [COMMAND [ARG...]]
#
# Runs Strata's integration suite in containers (docker-compose.yml), end to end: builds the
# images from integration/docker/, starts Kafka and the S3 server, runs the tests' container
# (by default `go test -race -tags integration -count=1 ./integration/...`, or COMMAND), then removes
# the containers, volumes and images of the run. `make test-compose` runs it.
#
# It uses the Docker engine that answers `docker info`. Where none runs and this runs as root,
# it installs Debian's docker.io, docker-compose and debootstrap when missing, starts a dockerd
# of its own (data in $STRATA_DOCKER_HOME, default ~/.cache/strata-docker; its own socket and
# pidfile; no bridge network and no iptables rules: every container uses the host's network and
# listens on 127.0.0.1), and stops it at the end. Such an engine reaches no registry, so the
# base images are made here: Debian bookworm with debootstrap from the machine's Debian mirror,
# `docker import`ed, and a Go image on it (integration/docker/go.Dockerfile). Those two, and the
# build stages of the run's images (Kafka's jars, versitygw's build), stay in the engine's data
# folder as the next run's cache; the containers, volumes and images of the run are removed.
#
# Environment: STRATA_DOCKER_HOME (above); STRATA_COMPOSE_LOCAL_BASE=1 makes the local base
# images on an engine that was already running too (default: the official ones, from its
# registry); STRATA_COMPOSE_KEEP_IMAGES=1 keeps the run's images; STRATA_COMPOSE_HOST_GO_CACHES=0
# gives the tests' container fresh Go caches instead of the host's own (go env GOMODCACHE GOCACHE).
set -euo pipefail
integration=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$integration")
source "$integration/scripts/common.sh"

compose_log() { printf '[strata-compose] %s\n' "$*" >&2; }
compose_die() { compose_log "error: $*"; exit 1; }

# Pins: the servers' versions are common.sh's; the Dockerfiles name the same ones.
go_version=1.26.8
debian_suite=bookworm
base_image=strata-it/debian:$debian_suite
go_image=strata-it/golang:$go_version
kafka_image=strata-it/kafka:$STRATA_KAFKA_VERSION
s3_image=strata-it/versitygw:$STRATA_VERSITYGW_VERSION
tests_image=strata-it/tests
grep -q "kafka-storage-$STRATA_KAFKA_VERSION-$STRATA_KAFKA_STORAGE_TEST_CLASSIFIER.jar" \
  "$integration/docker/kafka.Dockerfile" ||
  compose_die "integration/docker/kafka.Dockerfile does not name Kafka $STRATA_KAFKA_VERSION's test jar"
grep -q "VERSITYGW_VERSION=$STRATA_VERSITYGW_VERSION\$" "$integration/docker/versitygw.Dockerfile" ||
  compose_die "integration/docker/versitygw.Dockerfile does not build versitygw $STRATA_VERSITYGW_VERSION"

# Kafka's settings here and in the native harness: the same properties, and the same values but
# for paths and ports.
kafka_settings() {
  sed -n '/server.properties" <<PROPS$/,/^PROPS$/p' "$1" | grep -E '^[a-z][a-z0-9._-]*=' | sed -E 's/=.*[$].*/=/' | sort
}
settings_diff=$(diff <(kafka_settings "$integration/scripts/start.sh") \
  <(kafka_settings "$integration/docker/kafka-start.sh")) ||
  compose_die "Kafka's settings differ between scripts/start.sh (<) and docker/kafka-start.sh (>):"$'\n'"$settings_diff"

docker_home=${STRATA_DOCKER_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-docker}
own_engine=0
dockerd_pid=
s3_build=
project=strata-it-$$
compose=()
ran_compose=0
status=1
t_start=$EPOCHREALTIME

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0fs", b - a }'; }

# ---- cleanup --------------------------------------------------------------------------------------
cleanup() {
  local t0=$EPOCHREALTIME
  set +e
  # A build still running in the background (another one failed): its docker client, then it.
  if [ -n "$s3_build" ] && kill -0 "$s3_build" 2>/dev/null; then
    pkill -TERM -P "$s3_build"
    kill -TERM "$s3_build" 2>/dev/null
    wait "$s3_build" 2>/dev/null
  fi
  if [ "$ran_compose" = 1 ]; then
    if [ "$status" -ne 0 ]; then
      compose_log "last lines of the servers' logs:"
      "${compose[@]}" logs --no-color --tail=60 kafka s3 s3-bucket >&2
    fi
    "${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1 ||
      compose_log "warning: docker compose down failed"
  fi
  if [ "${STRATA_COMPOSE_KEEP_IMAGES:-0}" != 1 ]; then
    docker image rm "$kafka_image" "$s3_image" "$tests_image" >/dev/null 2>&1
  fi
  # On an engine of our own, the build stages the images came from (Kafka's jars, versitygw's
  # build) stay as the next run's build cache, as the native harness keeps its downloads; a
  # week after they were made they go.
  if [ "$own_engine" = 1 ]; then
    docker image prune --force --filter until=168h >/dev/null 2>&1
  fi
  if [ -n "$dockerd_pid" ]; then
    stop_dockerd
  fi
  compose_log "cleaned up in $(since "$t0"); the run took $(since "$t_start") in all"
}
trap 'cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---- the engine -----------------------------------------------------------------------------------
install_debian() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 ||
    compose_die "$* missing, and only root on Debian installs them here"
  compose_log "installing $* from Debian's packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# dockerd_ours: the pid in our pidfile is a live dockerd that serves our socket.
dockerd_ours() {
  [ -n "$dockerd_pid" ] && { tr '\0' ' ' <"/proc/$dockerd_pid/cmdline"; } 2>/dev/null |
    grep -F -- "$docker_home/docker.sock" >/dev/null
}

stop_dockerd() {
  local i
  if dockerd_ours; then
    kill -TERM "$dockerd_pid" 2>/dev/null
    for ((i = 0; i < 300; i++)); do
      dockerd_ours || break
      sleep 0.2
    done
    if dockerd_ours; then
      compose_log "dockerd (pid $dockerd_pid) did not stop within 60s: killing it"
      kill -KILL "$dockerd_pid" 2>/dev/null
    fi
  fi
  dockerd_pid=
  # dockerd leaves its network namespace mounted under its exec root.
  local m
  awk -v dir="$docker_home/run/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  rm -rf "$docker_home/run"
  compose_log "stopped dockerd"
}

start_dockerd() {
  local t0=$EPOCHREALTIME missing=() i
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] || install_debian "${missing[@]}"
  mkdir -p "$docker_home/data" "$docker_home/run"
  # One engine per data folder: a second run on this machine waits for the first.
  exec 8>"$docker_home/lock"
  flock 8
  own_engine=1
  export DOCKER_HOST=unix://$docker_home/docker.sock
  rm -f "$docker_home/docker.sock"
  # No bridge, no NAT and no firewall rules: containers get the host's network or none.
  dockerd --data-root "$docker_home/data" --exec-root "$docker_home/run" \
    --pidfile "$docker_home/run/dockerd.pid" --host "$DOCKER_HOST" \
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    >"$docker_home/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for ((i = 0; i < 300; i++)); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || {
      tail -n 20 "$docker_home/dockerd.log" >&2
      dockerd_pid=
      compose_die "dockerd exited at start (see $docker_home/dockerd.log)"
    }
    sleep 0.2
  done
  docker info >/dev/null 2>&1 || compose_die "dockerd did not answer within 60s (see $docker_home/dockerd.log)"
  compose_log "started dockerd (pid $dockerd_pid, data in $docker_home/data) in $(since "$t0")"
}

command -v python3 >/dev/null 2>&1 || install_debian python3

if docker info >/dev/null 2>&1; then
  compose_log "using the running Docker engine"
else
  [ "$(id -u)" = 0 ] || compose_die "no Docker engine answers, and only root starts one here"
  start_dockerd
fi

# The legacy builder where BuildKit's client (buildx) is missing, as with Debian's docker.io.
if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  command -v docker-compose >/dev/null 2>&1 || install_debian docker-compose
  compose=(docker-compose)
fi
compose+=(--project-name "$project" --project-directory "$root" --file "$root/docker-compose.yml")

# ---- base images ----------------------------------------------------------------------------------
# The machine's Debian mirror (the first one its apt sources name), for debootstrap.
debian_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -E '^[[:space:]]*(deb|URIs:)[[:space:]]' | grep -oE 'https?://[^[:space:]]+/debian/?([[:space:]]|$)' |
    head -n 1 | tr -d '[:space:]') || true
  echo "${m:-http://deb.debian.org/debian}"
}

make_base_image() {
  if docker image inspect "$base_image" >/dev/null 2>&1; then
    compose_log "reusing $base_image"
    return
  fi
  command -v debootstrap >/dev/null 2>&1 || install_debian debootstrap
  local t0=$EPOCHREALTIME mirror rootfs
  mirror=$(debian_mirror)
  rootfs=$docker_home/rootfs.$$
  compose_log "making $base_image with debootstrap from $mirror"
  rm -rf "$rootfs"
  debootstrap --variant=minbase "$debian_suite" "$rootfs" "$mirror" >"$docker_home/debootstrap.log" 2>&1 || {
    tail -n 20 "$docker_home/debootstrap.log" >&2
    rm -rf "$rootfs"
    compose_die "debootstrap failed (see $docker_home/debootstrap.log)"
  }
  # The official image's sources: the release and its updates, and security's mirror beside it.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $debian_suite $debian_suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian*}/debian-security
Suites: $debian_suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  # The certificate authorities this machine adds to Debian's (a proxy's, say), so that the
  # images reach the registries as the machine does; ca-certificates takes them in when the
  # images install it.
  local ca
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  for ca in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$ca" ] && cp "$ca" "$rootfs/usr/local/share/ca-certificates/"
  done
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
  tar -C "$rootfs" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$base_image" >/dev/null
  rm -rf "$rootfs"
  compose_log "made $base_image in $(since "$t0")"
}

# build IMAGE DOCKERFILE [BUILD-ARG...]: with integration/ as the context and the host's network
# (an engine of our own has no other).
build() {
  local image=$1 file=$2 t0=$EPOCHREALTIME
  shift 2
  local args=() a
  for a in "$@"; do args+=(--build-arg "$a"); done
  compose_log "building $image"
  docker build --quiet --network host --file "$integration/docker/$file" "${args[@]}" \
    --tag "$image" "$integration" >/dev/null
  compose_log "built $image in $(since "$t0")"
}

base_args=()
if [ "$own_engine" = 1 ] || [ "${STRATA_COMPOSE_LOCAL_BASE:-0}" = 1 ]; then
  make_base_image
  if docker image inspect "$go_image" >/dev/null 2>&1; then
    compose_log "reusing $go_image"
  else
    build "$go_image" go.Dockerfile "BASE_IMAGE=$base_image" "GO_VERSION=$go_version"
  fi
  base_args=("BASE_IMAGE=$base_image" "GO_IMAGE=$go_image")
  export STRATA_BASE_IMAGE=$base_image STRATA_GO_IMAGE=$go_image
fi

# ---- the run's images -----------------------------------------------------------------------------
# versitygw's build is mostly compiling, Kafka's and the tests' mostly downloading: side by side.
# The tests' image reuses the stages of Kafka's, so it comes after it.
build "$s3_image" versitygw.Dockerfile "${base_args[@]}" &
s3_build=$!
build "$kafka_image" kafka.Dockerfile "${base_args[@]}"
build "$tests_image" tests.Dockerfile "${base_args[@]}"
s3_status=0
wait "$s3_build" || s3_status=$?
s3_build=
[ "$s3_status" = 0 ] || compose_die "building $s3_image failed"

# ---- the suite ------------------------------------------------------------------------------------
# Free loopback ports and fresh credentials, as start.sh makes them.
read -r STRATA_COMPOSE_KAFKA_PORT STRATA_COMPOSE_CONTROLLER_PORT STRATA_COMPOSE_S3_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
read -r STRATA_COMPOSE_ACCESS_KEY STRATA_COMPOSE_SECRET_KEY < <(python3 -c '
import secrets, string
alnum = string.ascii_uppercase + string.digits
print("STRATA" + "".join(secrets.choice(alnum) for _ in range(14)), secrets.token_urlsafe(30))
')
export STRATA_COMPOSE_KAFKA_PORT STRATA_COMPOSE_CONTROLLER_PORT STRATA_COMPOSE_S3_PORT \
  STRATA_COMPOSE_ACCESS_KEY STRATA_COMPOSE_SECRET_KEY

# The checkout and the host's Go caches at their own paths: with the same toolchain, the test
# binary and the strata command hit what make test compiled (the paths are part of Go's keys).
export STRATA_COMPOSE_SRC=$root
if [ "${STRATA_COMPOSE_HOST_GO_CACHES:-1}" = 1 ] && command -v go >/dev/null 2>&1; then
  STRATA_COMPOSE_GOMODCACHE=$(go env GOMODCACHE)
  STRATA_COMPOSE_GOCACHE=$(go env GOCACHE)
  mkdir -p "$STRATA_COMPOSE_GOMODCACHE" "$STRATA_COMPOSE_GOCACHE"
  export STRATA_COMPOSE_GOMODCACHE STRATA_COMPOSE_GOCACHE
fi

compose_log "Kafka on 127.0.0.1:$STRATA_COMPOSE_KAFKA_PORT, S3 on 127.0.0.1:$STRATA_COMPOSE_S3_PORT; running the tests' container"
t0=$EPOCHREALTIME
ran_compose=1
set +e
"${compose[@]}" run --rm tests "$@"
status=$?
set -e
compose_log "the tests' container exited with status $status after $(since "$t0") (servers' start included)"
exit "$status"
