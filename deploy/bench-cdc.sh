#!/usr/bin/env bash
# Change-capture benchmark: UPDATES single-row update transactions captured from a logical
# replication slot and published as Debezium change events to a tansu broker (memory storage),
# beside the outbox relay carrying the same number of outbox rows to the same broker in the same
# run. Prints changes/s, events/s and the ratio; copy them into docs/BENCHMARKS.md (## Change
# capture). The logical PostgreSQL comes from STRANGLER_BENCH_PG_LOGICAL, else the shared server
# when it has wal_level = logical, else a private cluster the harness starts (and removes).
#
# Usage: deploy/bench-cdc.sh                (UPDATES=1000000 BENCH_BATCH=5000)
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib/services.sh

UPDATES=${UPDATES:-1000000}

ensure_postgres
ensure_tansu
cargo build --release -q -p strangler-cdc --example bench_cdc

port=$(free_port)
"$(tansu_bin)" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >/dev/null 2>&1 &
TANSU_PID=$!
trap 'kill "$TANSU_PID" 2>/dev/null || true' EXIT
wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"

log "capturing $UPDATES updates and relaying $UPDATES outbox rows to tansu on 127.0.0.1:$port"
target/release/examples/bench_cdc "127.0.0.1:$port" "$UPDATES"
