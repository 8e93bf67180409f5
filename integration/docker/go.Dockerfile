# A Go toolchain image for machines that reach no container registry: integration/compose.sh
# builds it on a local Debian base instead of pulling golang:1.26-bookworm. The toolchain is
# the module golang.org/toolchain from the Go module proxy, the same zip `go` itself fetches when
# GOTOOLCHAIN asks for another version; it lands in /usr/local/go as in the official image.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG GO_VERSION=1.26.8
ARG GOPROXY=https://proxy.golang.org
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
# Module zips keep no file modes: mark the commands executable as `go` does when it unpacks one.
RUN set -eu; \
    arch=$(dpkg --print-architecture); \
    mod="golang.org/toolchain@v0.0.1-go${GO_VERSION}.linux-${arch}"; \
    curl -fsSL -o /tmp/go.zip "${GOPROXY%%,*}/golang.org/toolchain/@v/v0.0.1-go${GO_VERSION}.linux-${arch}.zip"; \
    unzip -q /tmp/go.zip -d /tmp/go; \
    mv "/tmp/go/$mod" /usr/local/go; \
    rm -rf /tmp/go /tmp/go.zip; \
    chmod 0755 /usr/local/go/bin/* /usr/local/go/pkg/tool/*/*; \
    /usr/local/go/bin/go version
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:$PATH GOTOOLCHAIN=local
