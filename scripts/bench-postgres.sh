#!/usr/bin/env bash
# PostgreSQL round-trip benchmark: single-row SELECTs through TernPostgres next to
# `pgbench -S -M prepared`, same server, same run (see docs/benchmarks.md).
# Usage: scripts/bench-postgres.sh [TernBench options...]   e.g. --duration 10 --json
# SCRATCH_PATH overrides the build directory (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="${SCRATCH_PATH:-.build}"
swift build -c release --product TernBench --scratch-path "$scratch" >&2
exec "$scratch/release/TernBench" "$@"
