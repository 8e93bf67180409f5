# versitygw v1.8.0, the S3 server of the integration tests, built with `go install` as
# integration/scripts/install.sh builds it, and served over HTTPS by s3.sh as start.sh serves it.
# Built with integration/ as the context; integration/compose.sh passes local base images on
# machines that reach no registry.
ARG BASE_IMAGE=debian:bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
ARG VERSITYGW_VERSION=v1.8.0
RUN GOBIN=/out go install "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"

FROM ${BASE_IMAGE}
# curl for the health check and the bucket, openssl for the certificate.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl openssl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/versitygw /usr/local/bin/versitygw
COPY docker/s3.sh /usr/local/bin/s3.sh
ENTRYPOINT ["/usr/local/bin/s3.sh"]
CMD ["serve"]
