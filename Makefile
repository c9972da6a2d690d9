# osquery-gateway: `make run` and `make test` are the whole quick start.
SWIFT ?= swift
# System packages the build needs (Debian names). swift-nio-ssl and swift-crypto bundle BoringSSL,
# so no libssl-dev.
DEPS := libzstd-dev libsqlite3-dev zlib1g-dev pkg-config
# What the tests also need: the zstd CLI checks archives, curl talks to ClickHouse, and a real
# ClickHouse is the log store the clickhouse format is tested against.
TEST_DEPS := zstd curl python3 clickhouse-server
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
ARGS ?=

.PHONY: deps test-deps install-missing build release run test bench clean

deps:
	@PACKAGES="$(DEPS)" $(MAKE) --no-print-directory install-missing

test-deps:
	@PACKAGES="$(DEPS) $(TEST_DEPS)" $(MAKE) --no-print-directory install-missing

install-missing:
	@missing=""; for p in $$PACKAGES; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Serve on the embedded defaults (first start writes a development setup into ./data).
run: release
	.build/release/osquery-gateway serve $(ARGS)

## The whole test suite: real TLS servers on 127.0.0.1, real files, real SQLite, the zstd CLI and a
## throwaway ClickHouse (scripts/with-clickhouse.sh starts it and stops it by PID).
test: test-deps
	$(SWIFT) build --build-tests
	scripts/with-clickhouse.sh $(SWIFT) test --skip-build

## Benchmarks against nginx (needs wrk and nginx; see Benchmarks/README.md).
bench: release
	Benchmarks/gateway-bench.sh

clean:
	rm -rf .build data
