#!/usr/bin/env bash
# Benchmarks the strangler-diff comparison engine in release mode (see docs/BENCHMARKS.md).
#   BENCH_MS=5000 deploy/bench-diff.sh    # time budget per measurement (default 2000 ms)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo bench -p strangler-diff --bench compare
