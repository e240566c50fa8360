#!/usr/bin/env bash
# Projector benchmark: EVENTS order events in the built-in log on PostgreSQL, applied to a
# PostgreSQL read store by a batched projection (a rebuild: every event in transactions of BATCH
# events, with checkpoints and dedup keys in the same transactions), beside loading the same rows
# with COPY in the same run (the ceiling). Prints a markdown row:
#   | events | batch | ids | synchronous_commit | projector s | projector events/s | COPY s | COPY rows/s | ratio |
#     projector CPU µs/event: bench / postgres | COPY CPU µs/row: bench / postgres |
# (CPU from /proc: this process, and every PostgreSQL process, exited backends included.)
# Copy the figures into docs/BENCHMARKS.md (## Projector).
#
# Usage: deploy/bench-projector.sh       (EVENTS=1000000 BATCH=5000 IDS=seq SYNC=on POISON=0 DEDUP=table)
#   IDS=random   UUIDv4 event ids instead of ids in publishing order
#   POISON=N     N events, spread evenly, that the read model refuses (skipped to the dead
#                letters): measures what a failing event costs its batch
#   DEDUP=window the projection deduplicates by a window of offsets held in memory
#                (`[dedup] mode = "window"`) instead of recording every event id in the read store
#   SYNC=off     synchronous_commit=off on the benchmark's sessions: the projector's and COPY's
#                alike (a crash may lose the last commits, rows and checkpoint together)
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib/services.sh

EVENTS=${EVENTS:-1000000}
BATCH=${BATCH:-5000}
IDS=${IDS:-seq}
POISON=${POISON:-0}
DEDUP=${DEDUP:-table}
SYNC=${SYNC:-on}
case "$SYNC" in
    on) OPTS="" ;;
    off) OPTS="?options=-c%20synchronous_commit%3Doff" ;;
    *) echo "SYNC must be on or off, not $SYNC" >&2; exit 2 ;;
esac

ensure_postgres
cargo build --release -q -p strangler-projector --example bench_projector

DB="strangler_bench_projector_$$"
cleanup() {
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB" >/dev/null

log "projecting $EVENTS events (batches of $BATCH, $IDS ids, $DEDUP dedup, synchronous_commit $SYNC) into PostgreSQL, then COPY of the same rows"
"${CARGO_TARGET_DIR:-target}"/release/examples/bench_projector "postgres://postgres@127.0.0.1:5432/$DB$OPTS" "$EVENTS" "$BATCH" "$IDS" "$POISON" "$DEDUP"
