#!/usr/bin/env bash
# Contract check cost per event beside parsing the payload (the baseline every consumer pays):
# the demo's OrderPlaced against the repository registry, current-version payloads and v1 payloads
# that are upcast. Copy the figures into docs/BENCHMARKS.md (## Event contracts).
#
# Usage: deploy/bench-contracts.sh [EVENTS]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p strangler-contracts --example bench_check -- "${1:-200000}"
