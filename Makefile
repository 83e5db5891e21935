# hookfleet developer tasks. `make` alone lists them.
# Targets that talk to PostgreSQL/RabbitMQ depend on `services`, which starts
# them if needed and is quiet when they already run.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help services build test run bench migrate fmt lint clean

# CI=true (set by .ci/run's environment) selects nextest's `ci` profile.
NEXTEST_PROFILE := $(if $(filter true 1,$(CI)),ci,default)

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

services: ## make sure PostgreSQL and RabbitMQ run on localhost (starts or installs them)
	@scripts/services.sh

build: ## build the release binary (target/release/hookfleet)
	cargo build --release -p hookfleet

# The broker_restart tests restart the RabbitMQ app, which would break every test
# running beside it, so it runs alone after the rest. Both runs always happen;
# the target fails if either failed.
test: services ## run all tests against the local PostgreSQL and RabbitMQ
	@set -u; rc=0; \
	if cargo nextest --version >/dev/null 2>&1; then \
	  cargo nextest run --profile $(NEXTEST_PROFILE) --workspace --no-fail-fast -E 'not test(/broker_restart/)' || rc=1; \
	  cargo nextest run --profile $(NEXTEST_PROFILE) --workspace --no-tests=warn --test-threads 1 -E 'test(/broker_restart/)' || rc=1; \
	else \
	  echo "cargo-nextest not found; using cargo test (cargo install cargo-nextest --locked for the nicer runner)"; \
	  cargo test --workspace --no-fail-fast -- --skip broker_restart || rc=1; \
	  cargo test --workspace --no-fail-fast -- --test-threads 1 broker_restart || rc=1; \
	fi; \
	exit $$rc

run: services ## run the local demo (scripts/demo.sh)
	bash scripts/demo.sh

bench: services ## run the end-to-end benchmark (bench-results/latest.json), then the Python SDK's (python-emit.json)
	@mkdir -p bench-results
	cargo build --release -p hookfleet -p hookfleet-bench
	target/release/hookfleet-bench --out bench-results/latest.json $(BENCH_ARGS)
	python3 sdks/python/bench/bench_emit.py --out bench-results/python-emit.json

migrate: services ## apply database migrations
	cargo run --release -p hookfleet -- migrate

fmt: ## format all crates
	cargo fmt --all

lint: ## clippy on everything, warnings are errors
	cargo clippy --workspace --all-targets -- -D warnings

clean: ## remove build output (target/)
	cargo clean

# The chaos suite (scripts/chaos.py, docs/CHAOS.md) runs its own PostgreSQL (5440)
# and RabbitMQ nodes (5701-5703) under target/chaos/, so it needs no `services`
# and leaves the local ones alone. It runs as root (PostgreSQL runs as the
# postgres user). CHAOS_BIN=path uses that hookfleet binary instead of building
# one; CHAOS_ARGS passes options (--rate, --faults, --keep, ...).
.PHONY: chaos chaos-short
CHAOS_BIN ?=
CHAOS_ARGS ?=

chaos: ## fault suite under load, single node then a 3-node cluster (~10 min)
	@set -u; bin="$(CHAOS_BIN)"; \
	if [ -z "$$bin" ]; then cargo build --release -p hookfleet || exit 1; bin=target/release/hookfleet; fi; \
	rc=0; \
	python3 scripts/chaos.py --bin "$$bin" $(CHAOS_ARGS) || rc=1; \
	python3 scripts/chaos.py --bin "$$bin" --cluster $(CHAOS_ARGS) || rc=1; \
	exit $$rc

chaos-short: ## the CI form of `make chaos`: 5 faults on one node (~3 min)
	@set -u; bin="$(CHAOS_BIN)"; \
	if [ -z "$$bin" ]; then cargo build -p hookfleet || exit 1; bin=target/debug/hookfleet; fi; \
	python3 scripts/chaos.py --short --bin "$$bin" $(CHAOS_ARGS)

.PHONY: fuzz
fuzz: services ## fuzz the REST API's input: the kept corpus and 2,000 random bodies per route (CI runs 64)
	HOOKFLEET_FUZZ_CASES=2000 cargo nextest run --workspace -E 'test(/fuzz::/) | test(/properties/)'

# schemathesis over the running API (tests/e2e/schemathesis.rs): `make test` runs
# 20 examples per operation with a fixed seed; this runs more, with a new seed.
.PHONY: fuzz-schema
SCHEMA_EXAMPLES ?= 200
fuzz-schema: services ## schemathesis against the running API: every phase, 200 examples per operation (SCHEMA_EXAMPLES=N), a new seed
	HOOKFLEET_SCHEMATHESIS_EXAMPLES=$(SCHEMA_EXAMPLES) HOOKFLEET_SCHEMATHESIS_SEED=random \
	  cargo test -p hookfleet-tests --test e2e -- --nocapture schemathesis::
