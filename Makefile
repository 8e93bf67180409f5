# Strata's build. `make test` is the one command that runs everything: unit tests with -race
# and the integration suite against a real Kafka broker and S3 server that it installs and
# starts itself.

GO            ?= go
BIN           := bin
TOOLS         := $(CURDIR)/.tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK   := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
GO_PACKAGES   := ./...

.PHONY: all build demo test unit integration test-compose faults kafka-plugin kafka-suite kafka-suite-ci bench lint fmt tidy vet staticcheck fuzz clean proto proto-check

all: lint test build

build:
	$(GO) build -o $(BIN)/strata ./cmd/strata

# The embedded demo: an in-process Kafka, local remote storage, a broker that tiers, crashes and
# deletes, then the CLI's view of it. Needs nothing installed; leaves nothing behind.
demo: build
	$(BIN)/strata demo

test: unit integration kafka-suite-ci

# Strata's RemoteLogMetadataManager for Apache Kafka (kafka-plugin/, Maven, Java 17), with its
# unit tests: bin/strata-kafka.jar. Maven and a JDK come from Debian's packages when missing.
KAFKA_PLUGIN_JAR := $(BIN)/strata-kafka.jar
kafka-plugin:
	@integration/scripts/need-java.sh
	mvn -B -q -Dstyle.color=never -f kafka-plugin/pom.xml package
	@mkdir -p $(BIN)
	cp kafka-plugin/target/strata-kafka.jar $(KAFKA_PLUGIN_JAR)

# Apache Kafka's own tiered-storage integration tests (kafka-storage 4.3.1's test jar), all 17
# classes twice: as Kafka ships them, then with Strata's plugin as the metadata manager. Prints
# each class's result for both, with the remote fetches that expired in it; takes about 30
# minutes on a quiet 2-core machine (TransactionsWithTieredStoreTest alone: 8 min with Kafka's
# manager, 7.5 with Strata's). SUITE=strata (or kafka) runs one side;
# SUITE_TESTS='StrataDeleteTopicTest' narrows it (Surefire's -Dtest).
SUITE ?= kafka strata
kafka-suite: build kafka-plugin
	integration/scripts/kafka-suite.sh $(SUITE)

# The part of kafka-suite `make test` runs (see KAFKA_SUITE_CI_TESTS in integration/scripts/kafka-suite.sh).
kafka-suite-ci: build kafka-plugin
	integration/scripts/kafka-suite.sh --ci strata

# rlmm's suite runs a second time with every test manager loading in bulk from its first
# record (cache.Loader), the path a manager takes on an empty store behind a long history;
# about a minute.
unit:
	$(GO) test -race -count=1 $(GO_PACKAGES)
	$(GO) test -race -count=1 ./rlmm -rlmm.load.min.records=1

# The Kafka plugin's tests start brokers that load bin/strata-kafka.jar: it is built first.
integration: kafka-plugin
	@if [ -x integration/run.sh ]; then \
		STRATA_KAFKA_PLUGIN_JAR=$(CURDIR)/$(KAFKA_PLUGIN_JAR) \
		integration/run.sh $(GO) test -race -count=1 -tags integration ./integration/...; \
	else \
		echo "integration: no harness in this tree"; \
	fi

# The fault suite (integration/faults): a 3-node Kafka cluster and an S3 server started for it,
# brokers killed, stopped and rolled, Strata SIGKILLed mid-copy and mid-remove, S3 errors and
# stalls injected; it prints a table of scenarios. About 5 minutes, the cluster's start included.
faults:
	integration/faults.sh

# The integration suite again, in containers built from integration/docker/ (docker-compose.yml).
# Uses the running Docker engine; where none runs and this runs as root, installs Debian's
# docker.io and starts and stops an engine of its own (integration/compose.sh).
test-compose:
	integration/compose.sh

# Strata against Apache Kafka's own metadata manager on a real broker: prints the table and
# writes docs/BENCHMARKS.md. STRATA_BENCH_EVENTS=100000 STRATA_BENCH_ROUNDS=1 for a quick run.
bench:
	bench/run.sh

lint: fmt tidy vet staticcheck proto-check

# go.mod and go.sum say exactly what the code imports: a direct dependency marked indirect, or
# one no longer used, fails the lint.
tidy:
	@out=$$($(GO) mod tidy -diff 2>&1) || { echo "go.mod/go.sum are not tidy (run go mod tidy):"; echo "$$out"; exit 1; }

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi

# The tags vet the integration and fault suites together with everything else.
vet:
	$(GO) vet -tags integration,faults $(GO_PACKAGES)

$(STATICCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $@

staticcheck: $(STATICCHECK)
	$(STATICCHECK) -tags integration,faults $(GO_PACKAGES)

# The gRPC service of `strata serve` (api/rlmm/v1). The generated Go code is committed; `make proto`
# regenerates it with pinned tools and `make proto-check` fails when the committed code is not what
# they generate. protoc comes from Maven Central (com.google.protobuf:protoc, linux-x86_64), checked
# against its pinned SHA-256; the Go plugins are installed at pinned versions into .tools/.
PROTOC_VERSION         := 4.36.2
PROTOC_SHA256          := f6ee22d65361338459208da8bff801c9ca689741cba9187b34990dd45198f864
PROTOC_GEN_GO_VERSION  := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.1
PROTOC                 := $(TOOLS)/protoc-$(PROTOC_VERSION)
PROTOC_GEN_GO          := $(TOOLS)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PROTOC_GEN_GRPC        := $(TOOLS)/protoc-gen-go-grpc-$(PROTOC_GEN_GRPC_VERSION)
PROTO_FILES            := api/rlmm/v1/rlmm.proto

$(PROTOC):
	@mkdir -p $(TOOLS)
	curl -sSfL -o $@.tmp https://repo1.maven.org/maven2/com/google/protobuf/protoc/$(PROTOC_VERSION)/protoc-$(PROTOC_VERSION)-linux-x86_64.exe
	echo "$(PROTOC_SHA256)  $@.tmp" | sha256sum -c --quiet -
	chmod +x $@.tmp && mv $@.tmp $@

$(PROTOC_GEN_GO):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	mv $(TOOLS)/protoc-gen-go $@

$(PROTOC_GEN_GRPC):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
	mv $(TOOLS)/protoc-gen-go-grpc $@

# protoc-gen OUT_DIR: generate the Go code of PROTO_FILES under OUT_DIR.
define protoc-gen
	$(PROTOC) --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GRPC) \
		--go_out=$(1) --go_opt=paths=source_relative \
		--go-grpc_out=$(1) --go-grpc_opt=paths=source_relative \
		$(PROTO_FILES)
endef

proto: $(PROTOC) $(PROTOC_GEN_GO) $(PROTOC_GEN_GRPC)
	$(call protoc-gen,.)

proto-check: $(PROTOC) $(PROTOC_GEN_GO) $(PROTOC_GEN_GRPC)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(call protoc-gen,$$tmp) && \
	for f in $$(cd $$tmp && find . -name '*.go'); do \
		if ! cmp -s $$tmp/$$f $$f; then echo "proto-check: $$f is stale: run make proto"; exit 1; fi; \
	done

# Fuzz the record decoder; FUZZTIME=10m for a longer run. New interesting inputs stay in the
# Go build cache; copy them into proto/testdata/fuzz/FuzzDecode to keep them.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./proto

clean:
	rm -rf $(BIN)
