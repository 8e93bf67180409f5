#!/usr/bin/env bash
# The Kafka image's entry point: a single KRaft node (broker and controller in one JVM) with
# tiered storage, configured as integration/scripts/start.sh configures the native harness's
# broker; keep the two in lockstep. Listens on 127.0.0.1 (the compose suite runs on the host's
# network). Environment: KAFKA_PORT (default 9092), KAFKA_CONTROLLER_PORT (9093),
# STRATA_KAFKA_TIERED_DIR (LocalTieredStorage's folder, default /var/lib/strata/tiered),
# KAFKA_HEAP (512m). Logs go to stdout and to /var/lib/kafka/kafka.log, which kafka-ready.sh reads.
set -euo pipefail

port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
tiered=${STRATA_KAFKA_TIERED_DIR:-/var/lib/strata/tiered}
heap=${KAFKA_HEAP:-512m}
libs=/opt/kafka/libs
home=/var/lib/kafka
mkdir -p "$home/data" "$tiered"

# The settings of docs/KAFKA_SEMANTICS.md section 9, as in integration/scripts/start.sh.
cat >"$home/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$home/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.initial.task.delay.ms=100
log.segment.delete.delay.ms=1000
log.retention.check.interval.ms=1000

remote.log.storage.system.enable=true
remote.log.storage.manager.class.name=org.apache.kafka.server.log.remote.storage.LocalTieredStorage
remote.log.storage.manager.class.path=$libs/kafka-storage-4.3.1-test.jar
rsm.config.dir=$tiered
remote.log.metadata.manager.listener.name=PLAINTEXT
rlmm.config.remote.log.metadata.topic.replication.factor=1
rlmm.config.remote.log.metadata.topic.min.isr=1
remote.log.manager.task.interval.ms=1000
PROPS

cat >"$home/log4j2.properties" <<PROPS
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $home/kafka.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRefs = out, file
rootLogger.appenderRef.out.ref = STDOUT
rootLogger.appenderRef.file.ref = FILE
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = WARN
PROPS

java_common=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$home/log4j2.properties" -cp "$libs/*")

# Formatted once per container: a restarted container keeps its log and cluster id.
if [ ! -f "$home/data/meta.properties" ]; then
  # 16 random bytes as Kafka prints a Uuid.
  cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  java -XX:TieredStopAtLevel=1 "${java_common[@]}" kafka.tools.StorageTool format \
    --cluster-id "$cluster_id" --config "$home/server.properties" --standalone
fi

exec java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC "${java_common[@]}" kafka.Kafka "$home/server.properties"
