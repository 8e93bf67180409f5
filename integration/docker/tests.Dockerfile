# The image docker-compose.yml runs the integration tests in: Go, to build and run them, and
# Java with Kafka's jars, for the tests that run Kafka's own console consumer and metadata
# formatter (java -cp "$STRATA_KAFKA_LIBS/*" ...). Built with integration/ as the context.
ARG BASE_IMAGE=debian:bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS go

# The jre and jars stages are kafka.Dockerfile's, word for word: the build of one serves both.
FROM ${BASE_IMAGE} AS jre
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && rm -rf /var/lib/apt/lists/*

FROM jre AS jars
RUN apt-get update \
 && apt-get install -y --no-install-recommends maven \
 && rm -rf /var/lib/apt/lists/*
COPY kafka/pom.xml /pom/pom.xml
RUN mvn -B -q -Dstyle.color=never -f /pom/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory=/opt/kafka/libs \
 && rm -rf /root/.m2 \
 && test -f /opt/kafka/libs/kafka-storage-4.3.1-test.jar

FROM jre
# git for modules fetched direct, a C compiler for cgo and -race, python3 for the harness's
# identity script (scripts/identity.py), which a test draws from.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git gcc libc6-dev python3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=go /usr/local/go /usr/local/go
COPY --from=jars /opt/kafka/libs /opt/kafka/libs
# The checkout is mounted at /src and its .git may point outside the container (a worktree):
# no VCS stamping.
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:$PATH GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
    STRATA_KAFKA_LIBS=/opt/kafka/libs
WORKDIR /src
