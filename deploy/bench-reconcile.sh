#!/usr/bin/env bash
# Reconciliation benchmark on PostgreSQL, in one run:
#   (1) verifying two identical tables of IDENTICAL_ROWS rows (default 10,000,000),
#   (2) locating drift in two DRIFT_ROWS-row tables (default 1,000,000) where one row in
#       DRIFT_EVERY (default 1,000: 0.1%) has a changed total, spread uniformly over the keys,
#       plus a few deleted rows, twice: with the same column types on both sides (PostgreSQL's
#       native row hash) and with one column typed differently (the portable md5 path),
# each by chunked checksums + bisection and by the naive baseline (stream both tables in full, in
# key order, and compare in memory), with the same row comparator. Tables are generated inside
# PostgreSQL (generate_series) in a scratch database that is dropped afterwards.
# Results go to stdout as a markdown table; copy them into docs/BENCHMARKS.md (## Reconciliation).
#
# Usage: deploy/bench-reconcile.sh
#        IDENTICAL_ROWS=1000000 SKIP_NAIVE_IDENTICAL=1 deploy/bench-reconcile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib/services.sh
ensure_postgres

IDENTICAL_ROWS=${IDENTICAL_ROWS:-10000000}
DRIFT_ROWS=${DRIFT_ROWS:-1000000}
DRIFT_EVERY=${DRIFT_EVERY:-1000}
EXTRA=()
[ -n "${SKIP_NAIVE_IDENTICAL:-}" ] && EXTRA+=(--skip-naive-identical)

echo "== machine: $(nproc) cores, PostgreSQL $(psql --version 2>/dev/null | awk '{print $3}' || echo '?')" >&2
cargo bench -q -p strangler-reconcile --bench reconcile -- \
    --pg "${STRANGLER_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}" \
    --identical-rows "$IDENTICAL_ROWS" --drift-rows "$DRIFT_ROWS" --drift-every "$DRIFT_EVERY" \
    "${EXTRA[@]}"
