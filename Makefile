# Strata's build. `make test` is the one command that runs everything: unit tests with -race
# and the integration suite against a real Kafka broker and S3 server that it installs and
# starts itself.

GO            ?= go
BIN           := bin
TOOLS         := $(CURDIR)/.tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK   := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
GO_PACKAGES   := ./...

.PHONY: all build demo test unit integration bench lint fmt vet staticcheck fuzz clean

all: lint test build

build:
	$(GO) build -o $(BIN)/strata ./cmd/strata

# The embedded demo: an in-process Kafka, local remote storage, a broker that tiers, crashes and
# deletes, then the CLI's view of it. Needs nothing installed; leaves nothing behind.
demo: build
	$(BIN)/strata demo

test: unit integration

unit:
	$(GO) test -race -count=1 $(GO_PACKAGES)

integration:
	@if [ -x integration/run.sh ]; then \
		integration/run.sh $(GO) test -race -count=1 -tags integration ./integration/...; \
	else \
		echo "integration: no harness in this tree"; \
	fi

# Strata against Apache Kafka's own metadata manager on a real broker: prints the table and
# writes docs/BENCHMARKS.md. STRATA_BENCH_EVENTS=100000 STRATA_BENCH_ROUNDS=1 for a quick run.
bench:
	bench/run.sh

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi

# -tags integration vets the integration suite together with everything else.
vet:
	$(GO) vet -tags integration $(GO_PACKAGES)

$(STATICCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $@

staticcheck: $(STATICCHECK)
	$(STATICCHECK) -tags integration $(GO_PACKAGES)

# Fuzz the record decoder; FUZZTIME=10m for a longer run. New interesting inputs stay in the
# Go build cache; copy them into proto/testdata/fuzz/FuzzDecode to keep them.
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./proto

clean:
	rm -rf $(BIN)
