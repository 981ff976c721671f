# Tern: the two set-up commands (make demo, make test) work on a fresh Debian 12 machine.
# Every target installs what it needs first, idempotently.

SWIFT        ?= swift
APT_PACKAGES := libpq-dev libssl-dev pkg-config postgresql postgresql-contrib
# The tests also run a real single-host Slurm (slurmctld, slurmd, munged, started by the harness).
TEST_APT_PACKAGES := slurm-wlm munge
TERN         := .build/debug/tern

.PHONY: demo test test-tools bench build deps test-deps apt-install clean help

help:
	@echo "make demo   install what is missing, build, start the embedded PostgreSQL, run the demo"
	@echo "make test   install what is missing, build, run the whole test suite"
	@echo "make bench  benchmarks: SELECT round trips and job submission next to pgbench, checkpoint sealing next to openssl,"
	@echo "            replication next to rclone and the aws CLI, the scheduler next to pgbench's claim ceiling, failover time (results: docs/benchmarks.md)"

# System packages: only installed when a piece is missing, so reruns cost nothing.
deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

test-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES) $(TEST_APT_PACKAGES)"

apt-install:
	@missing=""; \
	for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build --product tern

demo: build
	$(TERN) demo

# Python tools the tests run as real peers (fake-gcs-server; moto when the machine lacks it), in
# .venv-tools, put first on PATH for the tests. Idempotent: a stamp file makes reruns free.
test-tools:
	scripts/install-test-tools.sh
	@command -v moto_server >/dev/null 2>&1 || [ -x .venv-tools/bin/moto_server ] || \
	  { echo "installing moto[server] into .venv-tools"; .venv-tools/bin/pip install --quiet 'moto[server]'; }

# `swift build` first: the CLI tests run the built tern binary.
test: test-deps test-tools
	$(SWIFT) build
	PATH="$(CURDIR)/.venv-tools/bin:$$PATH" $(SWIFT) test

# All benchmarks, release build: `TernBench select`, `submit`, `seal`, `replicate` (which needs
# rclone and the aws CLI as references), `scheduler` and `failover`.
bench: deps test-tools
	@dpkg -s rclone >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq rclone; }
	@command -v aws >/dev/null 2>&1 || .venv-tools/bin/pip install --quiet awscli
	PATH="$(CURDIR)/.venv-tools/bin:$$PATH" scripts/bench-postgres.sh

clean:
	rm -rf .build .build-*
