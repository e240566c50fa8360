#!/usr/bin/env bash
# Sink benchmark (#13): EVENTS order events in the built-in log on PostgreSQL, projected by the
# runtime into each non-SQL sink, beside each store's own bulk-load ceiling in the same run:
#   Redis:      the sink (a rebuild through the runtime: Lua script per batch with positions and
#               applied ids, checkpoints in PostgreSQL), pipelined HSET of the same hashes from
#               the same process, and `redis-benchmark -P 16 -t set` (pipelined SET) before and
#               after the projector.
#   ClickHouse: the sink (a rebuild through the runtime: one JSONEachRow insert per batch with
#               the events' positions, offsets stored in ClickHouse, checkpoints in PostgreSQL),
#               append and aggregate shapes, beside one bulk `INSERT ... FORMAT JSONEachRow` of
#               the same rows over HTTP from the same process (CH_SHAPES="append aggregate").
# Prints markdown rows; copy them into docs/BENCHMARKS.md (## #13 sinks). The machine may be
# shared: compare the figures of one run with each other, not across runs.
#
# Usage: deploy/bench-sinks.sh            (EVENTS=200000 BATCH=2000 SINKS="redis")
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib/services.sh

EVENTS=${EVENTS:-200000}
BATCH=${BATCH:-2000}
SINKS=${SINKS:-redis}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}

ensure_postgres
cargo build --release -q -p strangler-projector --example bench_sinks

DB="strangler_bench_sinks_$$"
cleanup() {
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

clickhouse_sql() { # one statement over the HTTP interface
    curl -fsS 'http://127.0.0.1:8123/' --data-binary "$1" >/dev/null
}

redis_benchmark() { # pipelined SET, 16 deep: requests per second
    redis-benchmark -h 127.0.0.1 -p 6379 -P 16 -t set -n 1000000 -q 2>/dev/null \
        | tr '\r' '\n' | grep -o 'SET: [0-9.]* requests per second' | tail -1 | grep -o '[0-9.]*' | head -1
}

for sink in $SINKS; do
    case "$sink" in
    redis)
        ensure_redis
        psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
        psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB" >/dev/null
        log "redis-benchmark -P 16 -t set (before)"
        before=$(redis_benchmark)
        log "projecting $EVENTS events into Redis (batches of $BATCH), then pipelined HSET of the same hashes"
        echo "| sink | events | batch | sink s | sink events/s | pipelined HSET s | HSET rows/s | sink / HSET |"
        echo "|---|---|---|---|---|---|---|---|"
        "${CARGO_TARGET_DIR:-target}"/release/examples/bench_sinks "postgres://postgres@127.0.0.1:5432/$DB" "$REDIS_URL" "$EVENTS" "$BATCH"
        log "redis-benchmark -P 16 -t set (after)"
        after=$(redis_benchmark)
        echo
        echo "redis-benchmark -P 16 -t set -n 1000000: ${before} SET/s before, ${after} SET/s after"
        ;;
    clickhouse)
        ensure_clickhouse
        cargo build --release -q -p strangler-projector --example bench_clickhouse
        for shape in ${CH_SHAPES:-append aggregate}; do
            psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
            psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB" >/dev/null
            clickhouse_sql "DROP DATABASE IF EXISTS $DB"
            clickhouse_sql "CREATE DATABASE $DB"
            log "projecting $EVENTS events into ClickHouse ($shape, batches of $BATCH), then one bulk INSERT ... FORMAT JSONEachRow of the same rows"
            echo "| events | batch | shape | sink s | sink events/s | bulk INSERT s | bulk rows/s | sink / bulk |"
            echo "|---|---|---|---|---|---|---|---|"
            "${CARGO_TARGET_DIR:-target}"/release/examples/bench_clickhouse "postgres://postgres@127.0.0.1:5432/$DB" \
                "http://127.0.0.1:8123/$DB" "$EVENTS" "$BATCH" "$shape"
            clickhouse_sql "DROP DATABASE IF EXISTS $DB"
            echo
        done
        ;;
    *)
        echo "unknown sink $sink (redis, clickhouse)" >&2
        exit 2
        ;;
    esac
done
