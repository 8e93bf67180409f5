#!/usr/bin/env bash
# Starts, on free loopback ports and with all state in a fresh directory:
#   - a single-node Apache Kafka broker (KRaft, broker and controller in one process) with tiered
#     storage on: Kafka's own TopicBasedRemoteLogMetadataManager writing __remote_log_metadata,
#     and LocalTieredStorage as the remote storage manager;
#   - versitygw, an S3 server with its posix backend, fresh credentials and one bucket, over
#     HTTPS with a certificate made for the run (AWS_CA_BUNDLE names it, which the AWS SDKs
#     read): S3 is spoken over TLS in production, and over TLS the SDK streams an upload with
#     a trailing checksum instead of hashing every byte with SHA-256 twice to sign it.
# Waits until both answer, then prints the state directory on stdout. Its file `env` exports
# what the tests read (STRATA_*, AWS_*); `stop.sh DIR` stops both servers.
# Expects install.sh to have run. On any failure it stops what it started and prints the logs.
#
# Tunables: STRATA_IT_START_TIMEOUT (seconds to wait for each server, default 120),
#           STRATA_KAFKA_HEAP (default 512m), TMPDIR (where the state directory goes).
set -euo pipefail
scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$scripts/common.sh"

strata_need java python3 curl openssl
[ -f "$STRATA_KAFKA_LIBS/.complete" ] || strata_die "Kafka is not installed: run $scripts/install.sh"
[ -x "$STRATA_VERSITYGW" ] || strata_die "versitygw is not installed: run $scripts/install.sh"

timeout_s=${STRATA_IT_START_TIMEOUT:-120}
state=$(mktemp -d "${TMPDIR:-/tmp}/strata-it.XXXXXX")
mkdir -p "$state/logs" "$state/kafka/data" "$state/tiered" "$state/s3" "$state/tls"

started=0
on_exit() {
  if [ "$started" != 1 ]; then
    strata_tail_logs "$state"/logs/*.log
    "$scripts/stop.sh" --keep-logs "$state" || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Free ports from the kernel: bind port 0 three times at once (so the three differ), then close.
# Another process could take one before our servers bind it; the wait below then fails clearly.
read -r kafka_port controller_port s3_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
# A fresh identity each run: Kafka's cluster id and S3 credentials that only this run knows.
read -r cluster_id access_key secret_key < <(python3 "$scripts/identity.py")
region=us-east-1
bucket=strata-it

# ---- Kafka's configuration ---------------------------------------------------------------------
# The settings of docs/KAFKA_SEMANTICS.md section 9; integration/docker/kafka-start.sh repeats them.
cat >"$state/kafka/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$state/kafka/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Start the log manager's periodic tasks (retention included) at once instead of after 30 s,
# and remove deleted local segment files after 1 s instead of 60 s.
log.initial.task.delay.ms=100
log.segment.delete.delay.ms=1000
log.retention.check.interval.ms=1000

# Tiered storage: Kafka's own metadata manager, and its reference remote storage manager.
remote.log.storage.system.enable=true
remote.log.storage.manager.class.name=org.apache.kafka.server.log.remote.storage.LocalTieredStorage
remote.log.storage.manager.class.path=$STRATA_KAFKA_STORAGE_TEST_JAR
rsm.config.dir=$state/tiered
remote.log.metadata.manager.listener.name=PLAINTEXT
rlmm.config.remote.log.metadata.topic.replication.factor=1
rlmm.config.remote.log.metadata.topic.min.isr=1
remote.log.manager.task.interval.ms=1000
PROPS

cat >"$state/kafka/log4j2.properties" <<'PROPS'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRefs = out
rootLogger.appenderRef.out.ref = STDOUT
# The metadata manager's own clients print their whole configuration at every start.
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = WARN
PROPS

java_common=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$state/kafka/log4j2.properties"
  -cp "$STRATA_KAFKA_LIBS/*")
t0=$EPOCHREALTIME
elapsed() { awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }
strata_log "state in $state; Kafka on 127.0.0.1:$kafka_port (controller $controller_port), S3 on 127.0.0.1:$s3_port"

# ---- S3's certificate ---------------------------------------------------------------------------
# Self-signed for 127.0.0.1 and valid for a week; the key never leaves the state directory.
(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -subj "/CN=strata-it S3" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$state/tls/s3.key" -out "$state/tls/s3.crt" >"$state/logs/openssl.log" 2>&1) ||
  strata_die "making the S3 server's certificate failed (see $state/logs/openssl.log)"
s3_url=https://127.0.0.1:$s3_port

# ---- start both ---------------------------------------------------------------------------------
# Servers run in the background of this script; their pids are recorded for stop.sh.
# versitygw starts first, so that it comes up while Kafka's storage is being formatted. Its ETags
# come from the data-integrity checksum instead of MD5: nothing in Strata reads an ETag, and MD5
# over every byte on one core would make the gateway, not the client, the limit of every upload
# (about 250 MB/s for one stream on a 2-core machine, against about 650 MB/s without).
"$STRATA_VERSITYGW" --access "$access_key" --secret "$secret_key" --region "$region" \
  --port "127.0.0.1:$s3_port" --cert "$state/tls/s3.crt" --key "$state/tls/s3.key" \
  --health /health posix --data-integrity-etag "$state/s3" \
  >"$state/logs/versitygw.log" 2>&1 &
echo $! >"$state/versitygw.pid"

# The formatter is a short-lived JVM: skip the optimizing compiler for a faster start.
java -XX:TieredStopAtLevel=1 "${java_common[@]}" kafka.tools.StorageTool format \
  --cluster-id "$cluster_id" --config "$state/kafka/server.properties" --standalone \
  >"$state/logs/kafka-format.log" 2>&1 ||
  strata_die "formatting Kafka's storage failed (see $state/logs/kafka-format.log)"

java -Xms"${STRATA_KAFKA_HEAP:-512m}" -Xmx"${STRATA_KAFKA_HEAP:-512m}" -XX:+UseG1GC \
  "${java_common[@]}" kafka.Kafka "$state/kafka/server.properties" \
  >"$state/logs/kafka.log" 2>&1 &
echo $! >"$state/kafka.pid"

# ---- wait until both answer -------------------------------------------------------------------
alive() { kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for NAME WHAT CHECK...: polls CHECK until it succeeds, the server dies or time runs out.
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

# An S3 request signed with SigV4 by curl. versitygw requires x-amz-content-sha256, which curl
# signs when given; every request here has an empty body.
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

# Kafka is ready for tiered storage once its metadata manager has created __remote_log_metadata
# and started its consumer, which happens after the broker itself has started. Waiting for it
# also keeps a short run from stopping the broker mid-initialization, where Kafka's shutdown
# blocks until the initialization gives up (remote.log.metadata.initialization.retry.max.timeout.ms).
kafka_ready() {
  grep -q 'Initialized topic-based RLMM resources successfully' "$state/logs/kafka.log" &&
    port_open "$kafka_port"
}
wait_for kafka "tiered storage initialization" kafka_ready
strata_log "Kafka ready after $(elapsed)"

env_line() { printf 'export %s=%q\n' "$1" "$2"; }
{
  env_line STRATA_IT_STATE "$state"
  env_line STRATA_KAFKA_BROKERS "127.0.0.1:$kafka_port"
  env_line STRATA_KAFKA_LIBS "$STRATA_KAFKA_LIBS"
  env_line STRATA_KAFKA_TIERED_DIR "$state/tiered"
  env_line STRATA_KAFKA_VERSION "$STRATA_KAFKA_VERSION"
  for v in $STRATA_KAFKA_EXTRA_VERSIONS; do
    if [ -f "$(strata_kafka_libs "$v")/.complete" ]; then
      env_line "STRATA_KAFKA_LIBS_${v//./_}" "$(strata_kafka_libs "$v")"
    fi
  done
  env_line STRATA_S3_ENDPOINT "$s3_url"
  env_line AWS_CA_BUNDLE "$state/tls/s3.crt"
  env_line STRATA_S3_BUCKET "$bucket"
  env_line STRATA_S3_REGION "$region"
  env_line AWS_ACCESS_KEY_ID "$access_key"
  env_line AWS_SECRET_ACCESS_KEY "$secret_key"
} >"$state/env"

started=1
echo "$state"
