#!/usr/bin/env bash
# Benchmarks next to pgbench, same server, same run (see docs/benchmarks.md):
#   select: single-row SELECTs through TernPostgres next to `pgbench -S -M prepared`;
#   submit: submitting 10,000 job specs the way `tern submit` does, next to pgbench
#           inserting the same rows;
#   seal:   checkpoint sealing throughput (no database) next to openssl speed / openssl dgst /
#           sha256sum over the same page-cached files (6 GiB under /tmp or /dev/shm, scaled down without room).
#   replicate: a 2 GiB checkpoint replicated file→file and file→S3 (moto) next to rclone copy
#           --checksum and aws s3 cp --recursive, and the bytes second replications move.
#   scheduler: 10,000 jobs pending → succeeded through the scheduler (no-op executor, 1 and 3
#           replicas) next to pgbench's claim ceiling, and submit-to-launch latency.
#   failover: kill of an attempt → first training step of the next, with and without
#           pre-replication, for a 1 GiB checkpoint (needs the release `tern` beside TernBench).
# Usage: scripts/bench-postgres.sh                       all six, one after the other (what `make bench` runs)
#        scripts/bench-postgres.sh select|submit|seal|replicate|scheduler|failover [opts]  one of them, e.g. `submit --rounds 5 --json`
#        scripts/bench-postgres.sh [select opts]         the select benchmark (its options, e.g. --duration 10)
# SCRATCH_PATH overrides the build directory (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="${SCRATCH_PATH:-.build}"
swift build -c release --product TernBench --scratch-path "$scratch" >&2
swift build -c release --product tern --scratch-path "$scratch" >&2
bench="$scratch/release/TernBench"
if [ "$#" -gt 0 ]; then
  exec "$bench" "$@"
fi
echo "== TernBench select: single-row SELECT round trips next to pgbench -S =="
"$bench" select
echo
echo "== TernBench submit: job submission next to pgbench inserting the same rows =="
"$bench" submit
echo
echo "== TernBench seal: checkpoint sealing next to openssl and sha256sum on the same files =="
"$bench" seal
echo
echo "== TernBench replicate: checkpoint replication next to rclone and aws s3 cp on the same data =="
"$bench" replicate
echo
echo "== TernBench scheduler: jobs through the lifecycle next to pgbench's claim ceiling =="
"$bench" scheduler
echo
echo "== TernBench failover: kill of an attempt to the next one's first step, with and without pre-replication =="
"$bench" failover
