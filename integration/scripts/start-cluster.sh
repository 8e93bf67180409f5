#!/usr/bin/env bash
# Starts, on free loopback ports and with all state in a fresh directory:
#   - a 3-node Apache Kafka cluster (KRaft; each node a broker and one of three controller
#     voters), for the fault suite (integration/faults): tiered storage is left off in Kafka,
#     since Strata's own manager creates and uses __remote_log_metadata there (RF 3, min ISR 2);
#   - versitygw, an S3 server, over HTTPS with a certificate made for the run, as start.sh does.
# Waits until all answer, then prints the state directory on stdout. Its file `env` exports what
# the suite reads (STRATA_*, AWS_*); broker.sh STATE N restarts node N; stop-cluster.sh STATE
# stops everything. Expects install.sh to have run. On any failure it stops what it started.
#
# Timings chosen so that a fault plays out in seconds rather than minutes, each stated in
# server.properties below: a follower that stops fetching leaves the ISR after 10 s
# (replica.lag.time.max.ms), a broker that stops heartbeating is fenced after 9 s (Kafka's
# default broker.session.timeout.ms).
#
# Tunables: STRATA_IT_START_TIMEOUT (seconds to wait for each server, default 120),
#           STRATA_KAFKA_HEAP (per node, default 384m), TMPDIR (where the state directory goes).
set -euo pipefail
scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$scripts/common.sh"

strata_need java python3 curl openssl
[ -f "$STRATA_KAFKA_LIBS/.complete" ] || strata_die "Kafka is not installed: run $scripts/install.sh"
[ -x "$STRATA_VERSITYGW" ] || strata_die "versitygw is not installed: run $scripts/install.sh"

nodes=3
timeout_s=${STRATA_IT_START_TIMEOUT:-120}
state=$(mktemp -d "${TMPDIR:-/tmp}/strata-faults.XXXXXX")
mkdir -p "$state/logs" "$state/s3" "$state/tls"

started=0
on_exit() {
  if [ "$started" != 1 ]; then
    strata_tail_logs "$state"/logs/*.log
    "$scripts/stop-cluster.sh" --keep-logs "$state" || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Seven free ports from the kernel, bound at once so that they differ.
read -r -a ports < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
kafka_ports=("${ports[@]:0:3}")
controller_ports=("${ports[@]:3:3}")
s3_port=${ports[6]}
# A fresh identity each run: Kafka's cluster id and S3 credentials that only this run knows.
read -r cluster_id access_key secret_key < <(python3 "$scripts/identity.py")
region=us-east-1
bucket=strata-faults

voters=
bootstrap=
for i in 1 2 3; do
  voters+="${voters:+,}$i@127.0.0.1:${controller_ports[i - 1]}"
  bootstrap+="${bootstrap:+,}127.0.0.1:${kafka_ports[i - 1]}"
done

for i in 1 2 3; do
  mkdir -p "$state/kafka-$i/data"
  cat >"$state/kafka-$i/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${kafka_ports[i - 1]},CONTROLLER://127.0.0.1:${controller_ports[i - 1]}
advertised.listeners=PLAINTEXT://127.0.0.1:${kafka_ports[i - 1]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$state/kafka-$i/data
num.partitions=1
default.replication.factor=3
auto.create.topics.enable=false
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
# A follower that stops fetching leaves the ISR after 10 s instead of 30 s.
replica.lag.time.max.ms=10000
# Kafka's defaults, stated because the suite's timings rest on them: a broker that stops
# heartbeating is fenced after 9 s.
broker.session.timeout.ms=9000
broker.heartbeat.interval.ms=2000
# Leadership goes back to the preferred replica soon after a node returns.
leader.imbalance.check.interval.seconds=5
PROPS
done

cat >"$state/log4j2.properties" <<'PROPS'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRefs = out
rootLogger.appenderRef.out.ref = STDOUT
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = WARN
PROPS

t0=$EPOCHREALTIME
elapsed() { awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }
strata_log "state in $state; Kafka on $bootstrap (controllers ${controller_ports[*]}), S3 on 127.0.0.1:$s3_port"

(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -subj "/CN=strata-faults S3" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$state/tls/s3.key" -out "$state/tls/s3.crt" >"$state/logs/openssl.log" 2>&1) ||
  strata_die "making the S3 server's certificate failed (see $state/logs/openssl.log)"
s3_url=https://127.0.0.1:$s3_port

"$STRATA_VERSITYGW" --access "$access_key" --secret "$secret_key" --region "$region" \
  --port "127.0.0.1:$s3_port" --cert "$state/tls/s3.crt" --key "$state/tls/s3.key" \
  --health /health posix --data-integrity-etag "$state/s3" \
  >"$state/logs/versitygw.log" 2>&1 &
echo $! >"$state/versitygw.pid"

# The nodes run from a snapshot of Kafka's jars, hard links where the file system allows: an
# install.sh elsewhere that replaces the shared copy must not break a node the suite restarts.
cp -al "$STRATA_KAFKA_LIBS" "$state/libs" 2>/dev/null || cp -a "$STRATA_KAFKA_LIBS" "$state/libs"

# The three formatters run at once: each is a short JVM on its own node's directory.
format_pids=()
for i in 1 2 3; do
  java -XX:TieredStopAtLevel=1 -Djava.awt.headless=true "-Dlog4j2.configurationFile=$state/log4j2.properties" \
    -cp "$state/libs/*" kafka.tools.StorageTool format \
    --cluster-id "$cluster_id" --config "$state/kafka-$i/server.properties" \
    >"$state/logs/kafka-format-$i.log" 2>&1 &
  format_pids+=($!)
done
for i in 1 2 3; do
  wait "${format_pids[i - 1]}" || strata_die "formatting node $i failed (see $state/logs/kafka-format-$i.log)"
done
for i in 1 2 3; do
  "$scripts/broker.sh" "$state" "$i"
done

alive() { kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  local name=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout_s))
  until "$@"; do
    alive "$name" || strata_die "$name exited before $what (see $state/logs/$name.log)"
    [ "$SECONDS" -lt "$deadline" ] || strata_die "$name: no $what after ${timeout_s}s (see $state/logs/$name.log)"
    sleep 0.2
  done
}
s3_request() {
  curl -sS --cacert "$state/tls/s3.crt" -o "$state/logs/s3-response.xml" -w '%{http_code}' \
    -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
    --aws-sigv4 "aws:amz:$region:s3" --user "$access_key:$secret_key" "$@"
}
s3_healthy() { [ "$(curl -s --cacert "$state/tls/s3.crt" -o /dev/null -w '%{http_code}' "$s3_url/health")" = 200 ]; }

wait_for versitygw "answer on its health endpoint" s3_healthy
code=$(s3_request -X PUT "$s3_url/$bucket") || true
[ "$code" = 200 ] || strata_die "creating bucket $bucket answered HTTP $code: $(cat "$state/logs/s3-response.xml")"
strata_log "versitygw ready after $(elapsed)"

# A node is ready once its broker has started (registered with the quorum and caught up).
node_ready() { grep -q 'Kafka Server started' "$state/logs/kafka-$1.log" && port_open "${kafka_ports[$1 - 1]}"; }
for i in 1 2 3; do
  wait_for "kafka-$i" "start" node_ready "$i"
done
strata_log "Kafka cluster of $nodes nodes ready after $(elapsed)"

env_line() { printf 'export %s=%q\n' "$1" "$2"; }
{
  env_line STRATA_IT_STATE "$state"
  env_line STRATA_KAFKA_BROKERS "$bootstrap"
  env_line STRATA_KAFKA_NODES "$nodes"
  env_line STRATA_KAFKA_LIBS "$state/libs"
  env_line STRATA_IT_SCRIPTS "$scripts"
  env_line STRATA_S3_ENDPOINT "$s3_url"
  env_line STRATA_S3_CERT "$state/tls/s3.crt"
  env_line STRATA_S3_KEY "$state/tls/s3.key"
  env_line AWS_CA_BUNDLE "$state/tls/s3.crt"
  env_line STRATA_S3_BUCKET "$bucket"
  env_line STRATA_S3_REGION "$region"
  env_line AWS_ACCESS_KEY_ID "$access_key"
  env_line AWS_SECRET_ACCESS_KEY "$secret_key"
} >"$state/env"

started=1
echo "$state"
