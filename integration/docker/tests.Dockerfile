# The image docker-compose.yml runs the integration tests in: Go, plus a Java runtime for the
# tests that run Kafka's own console consumer (java -cp "$STRATA_KAFKA_LIBS/*" ...).
FROM golang:1.26
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && rm -rf /var/lib/apt/lists/*
