#!/usr/bin/env bash
# Outbox relay benchmark: a PostgreSQL outbox of ROWS rows with 1 KB payloads relayed to a tansu
# broker (memory storage), beside the same records sent straight to that broker by a bare
# idempotent rdkafka producer in the same process (the ceiling). Prints events/s, the ratio and
# the relay's RSS over the run; copy the figures into docs/BENCHMARKS.md (## Outbox relay).
#
# Usage: deploy/bench-relay.sh              (ROWS=1000000 BENCH_BATCH=2000 BENCH_IN_FLIGHT=20000)
#        BENCH_VARIANTS=split/jsonb,single/json  relay runs, each on a freshly filled outbox:
#            reads `split` over two connections or `single`, and the payload column's type
#            (default `split`, jsonb as in migrations/outbox/postgres.sql)
#        BENCH_SINGLE_READ=1 adds `single`; BENCH_PAYLOAD_TYPE=json sets the type of variants
#        without one. The bare producer runs first and again after the relay runs, to bracket
#        the machine's drift.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib/services.sh

ROWS=${ROWS:-1000000}

ensure_postgres
ensure_tansu
cargo build --release -q -p strangler-outbox --example bench_relay

port=$(free_port)
"$(tansu_bin)" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >/dev/null 2>&1 &
TANSU_PID=$!
DB="strangler_bench_$$"
cleanup() {
    kill "$TANSU_PID" 2>/dev/null || true
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB" >/dev/null

log "relaying $ROWS rows from PostgreSQL to tansu on 127.0.0.1:$port"
BENCH_BROKER_PID=$TANSU_PID "${CARGO_TARGET_DIR:-target}"/release/examples/bench_relay "postgres://postgres@127.0.0.1:5432/$DB" "127.0.0.1:$port" "$ROWS"
