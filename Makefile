# Tern: the two set-up commands (make demo, make test) work on a fresh Debian 12 machine.
# Every target installs what it needs first, idempotently.

SWIFT        ?= swift
APT_PACKAGES := libpq-dev libssl-dev pkg-config postgresql postgresql-contrib
TERN         := .build/debug/tern

.PHONY: demo test bench build deps clean help

help:
	@echo "make demo   install what is missing, build, start the embedded PostgreSQL, run the demo"
	@echo "make test   install what is missing, build, run the whole test suite"
	@echo "make bench  benchmarks: SELECT round trips and job submission next to pgbench, checkpoint sealing next to openssl (results: docs/benchmarks.md)"

# System packages: only installed when a piece is missing, so reruns cost nothing.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build --product tern

demo: build
	$(TERN) demo

# `swift build` first: the CLI tests run the built tern binary.
test: deps
	$(SWIFT) build
	$(SWIFT) test

# All benchmarks, release build: `TernBench select`, `TernBench submit`, then `TernBench seal`.
bench: deps
	scripts/bench-postgres.sh

clean:
	rm -rf .build .build-*
