#!/usr/bin/env bash
# Passes the whole test suite on a fresh machine: starts (or installs) PostgreSQL, MariaDB, Redis,
# ClickHouse and a tansu Kafka-protocol broker where they are missing, then runs every test.
#
#   deploy/test.sh                 # the whole suite
#   deploy/test.sh -p strangler-diff   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib/services.sh

ensure_postgres
ensure_mariadb
ensure_redis               # the Redis projection sink's tests
ensure_clickhouse          # the ClickHouse projection sink's tests
ensure_tansu
ensure_chromium            # the admin dashboard test drives headless Chromium
start_test_broker          # exports STRANGLER_TEST_KAFKA, stopped on exit

# The relay suite runs the real `strangler` binary (crash and fencing tests).
cargo build -p strangler-cli --locked
echo "== cargo test (broker at $STRANGLER_TEST_KAFKA)"
cargo test --workspace --locked --no-fail-fast "$@"
