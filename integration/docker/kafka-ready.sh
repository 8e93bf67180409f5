#!/usr/bin/env bash
# The Kafka image's health check, the one integration/scripts/start.sh waits for: ready for
# tiered storage once Kafka's metadata manager has created __remote_log_metadata and started its
# consumer, and the broker's port answers.
grep -qs 'Initialized topic-based RLMM resources successfully' /var/lib/kafka/kafka.log &&
  (exec 3<>"/dev/tcp/127.0.0.1/${KAFKA_PORT:-9092}") 2>/dev/null
