# osquery-gateway: `make run` and `make test` are the whole quick start.
SWIFT ?= swift
# System packages the build and tests need (Debian names). swift-nio-ssl and swift-crypto bundle
# BoringSSL, so no libssl-dev. zstd is the CLI the tests check archives with.
DEPS := libzstd-dev libsqlite3-dev zlib1g-dev pkg-config zstd
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
ARGS ?=

.PHONY: deps build release run test bench clean

deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Serve on the embedded defaults (first start writes a development setup into ./data).
run: release
	.build/release/osquery-gateway serve $(ARGS)

## The whole test suite: real TLS servers on 127.0.0.1, real files, real SQLite.
test: deps
	$(SWIFT) test

## Benchmarks against nginx (needs wrk and nginx; see Benchmarks/README.md).
bench: release
	Benchmarks/gateway-bench.sh

clean:
	rm -rf .build data
