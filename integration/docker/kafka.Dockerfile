# Apache Kafka 4.3.1 as integration/run.sh runs it: the jars of integration/kafka/pom.xml from
# Maven Central (Kafka's own image ships no test jars, and LocalTieredStorage lives in
# kafka-storage's test jar) on Debian's Java 17, started by kafka-start.sh with the settings of
# integration/scripts/start.sh. Built with integration/ as the context.
#
# BASE_IMAGE is Debian bookworm; integration/compose.sh passes a local one on machines that
# reach no registry. The jre and jars stages are repeated word for word in tests.Dockerfile,
# so that one build serves both images.
ARG BASE_IMAGE=debian:bookworm-slim

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
COPY --from=jars /opt/kafka/libs /opt/kafka/libs
COPY docker/kafka-start.sh docker/kafka-ready.sh /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/kafka-start.sh"]
