# osquery-gateway: `make run` and `make test` are the whole quick start.
SWIFT ?= swift
SHELL := /bin/bash
# System packages the build needs (Debian names). swift-nio-ssl and swift-crypto bundle BoringSSL,
# so no libssl-dev.
DEPS := libzstd-dev libsqlite3-dev zlib1g-dev pkg-config
# What the tests also need: the zstd CLI checks archives, curl talks to ClickHouse and NATS
# monitoring, a real ClickHouse is the log store the clickhouse format is tested against, NATS with
# JetStream and rsyslog are the nats and syslog sinks' servers, openssl is the TLS syslog receiver,
# PostgreSQL the shared node store, and HAProxy the TCP balancer in front of two gateways (the
# scale-out tests write its configuration and start it themselves, so it has no with-*.sh).
TEST_DEPS := zstd curl python3 clickhouse-server nats-server rsyslog openssl postgresql haproxy
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
ARGS ?=

# Tests at once (more than the 16 parameterized tests, whose cases need slots of their own): every
# test of a 2-core machine in parallel starves the TLS handshakes and timers
# the tests assert on.
TEST_PARALLELISM ?= --experimental-maximum-parallelization-width 32

.PHONY: deps test-deps install-missing build release run test bench bench-stores bench-sinks fuzz clean

deps:
	@PACKAGES="$(DEPS)" $(MAKE) --no-print-directory install-missing

# moto's server stands in for S3, Kinesis and Firehose; it is on PyPI only.
test-deps:
	@PACKAGES="$(DEPS) $(TEST_DEPS)" $(MAKE) --no-print-directory install-missing
	@command -v moto_server >/dev/null 2>&1 || python3 -m pip install --quiet 'moto[server]' \
		|| python3 -m pip install --quiet --break-system-packages 'moto[server]'

install-missing:
	@missing=""; for p in $$PACKAGES; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

## The server and the fleet simulator, optimized. (Only products: the fuzz target imports the
## gateway @testable, which a release build refuses.)
release: deps
	$(SWIFT) build -c release --product osquery-gateway
	$(SWIFT) build -c release --product fleet-sim

## Serve on the embedded defaults (first start writes a development setup into ./data).
run: release
	.build/release/osquery-gateway serve $(ARGS)

## The whole test suite: real TLS servers on 127.0.0.1, real files, real SQLite, the zstd CLI and
## throwaway ClickHouse, PostgreSQL, moto (S3, Kinesis, Firehose), NATS and rsyslog servers (scripts/with-*.sh
## start them and stop them by PID).
test: test-deps
	$(SWIFT) build --build-tests
	scripts/with-clickhouse.sh scripts/with-postgres.sh scripts/with-moto.sh scripts/with-nats.sh scripts/with-rsyslog.sh $(SWIFT) test --skip-build $(TEST_PARALLELISM)

## Benchmarks against nginx (needs wrk and nginx), then every sink against its real server (see
## Benchmarks/README.md).
bench: release
	Benchmarks/gateway-bench.sh
	@$(MAKE) --no-print-directory bench-stores
	@$(MAKE) --no-print-directory bench-sinks

## SQLite against PostgreSQL: enrollments, empty polls with and without 10 active campaigns, and
## database round trips per 1,000 empty polls, on the throwaway PostgreSQL of scripts/with-postgres.sh.
bench-stores: release test-deps
	scripts/with-postgres.sh Benchmarks/store-bench.sh

## The sink rows alone: the file and zstd sinks against dd and the zstd CLI, and each network sink
## against the server `make test` uses, started by the same scripts/with-*.sh, all of them (and the
## nginx receiver of the http rows) on core 0, the sinks on core 1.
bench-sinks: test-deps
	$(SWIFT) build -c release --product sink-bench
	taskset -c 0 scripts/with-postgres.sh scripts/with-moto.sh scripts/with-nats.sh scripts/with-rsyslog.sh Benchmarks/sink-bench.sh

## libFuzzer over every request decoder and the spool frame decoder, FUZZ_SECONDS each (default 60),
## growing Fuzz/Corpus; crashes land in Fuzz/Crashes. An instrumented build of its own (.build-fuzz).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := logger distributed_write enroll node_key gzip json spool_frame
FUZZ_RUNTIME = $(firstword $(wildcard $(dir $(realpath $(shell which $(SWIFT))))../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a))
fuzz: deps
	@test -n "$(FUZZ_RUNTIME)" || { echo "libclang_rt.fuzzer_no_main not found in the Swift toolchain"; exit 1; }
	GATEWAY_FUZZ_RUNTIME=$(FUZZ_RUNTIME) $(SWIFT) build --scratch-path .build-fuzz --product gateway-fuzz
	@mkdir -p Fuzz/Crashes
	@for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZ_SECONDS) s)"; \
		FUZZ_TARGET=$$t .build-fuzz/debug/gateway-fuzz Fuzz/Corpus/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			-artifact_prefix=Fuzz/Crashes/$$t- -print_final_stats=1 > .build-fuzz/$$t.log 2>&1; status=$$?; \
		grep -E "^(Done [0-9]+ runs|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)" .build-fuzz/$$t.log; \
		test $$status -eq 0 || { tail -40 .build-fuzz/$$t.log; exit 1; }; \
	done

clean:
	rm -rf .build .build-fuzz data
