#!/usr/bin/env bash
# Mismatch store: cost of recording a mismatching comparison (redaction + exemplar) against the
# comparison itself, and the rate of a flush to SQLite. Results go in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p strangler-admin --bench record
