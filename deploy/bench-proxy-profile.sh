#!/usr/bin/env bash
# Instruction counts of the shadow proxy per request, under valgrind's callgrind (repeatable, not
# disturbed by other load, unlike wall-clock figures on a shared machine). Starts nginx serving
# the 2 KB JSON order as legacy and new (as deploy/bench-proxy.sh does), runs `strangler proxy`
# under callgrind in pass-through and in shadow mode, sends REQUESTS requests at RATE/s through
# each, and prints instructions per request plus the top inclusive costs of the shadow run.
#
# Usage: deploy/bench-proxy-profile.sh     (REQUESTS=1000 RATE=100; SKIP_BUILD=1 to reuse builds;
#        PROXY_BIN=example profiles crates/strangler-proxy/examples/proxy_server.rs instead of
#        `strangler proxy`: the same proxy without the CLI's mismatch store, metrics and admin;
#        PROXY_EXTRA adds lines to the [proxy] section, e.g. PROXY_EXTRA='fast_pass_through = false')
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-1000}
RATE=${RATE:-100}
PROXY_BIN=${PROXY_BIN:-cli}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need valgrind; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx valgrind >/dev/null
fi
if [ -z "${SKIP_BUILD:-}" ]; then
    [ "$PROXY_BIN" = cli ] && cargo build --release -q -p strangler-cli
    cargo build --release -q -p strangler-proxy --example fixed_rate --example proxy_server
fi
STRANGLER=$PWD/target/release/strangler
FIXED=$PWD/target/release/examples/fixed_rate
SERVER=$PWD/target/release/examples/proxy_server

DIR=$(mktemp -d /tmp/strangler-profile.XXXXXX)
chmod 755 "$DIR"
cleanup() {
    [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT

mkdir -p "$DIR/www/orders"
python3 - "$DIR/www/orders/1" <<'PY'
import json, sys
doc = {"id": "1", "customer": {"id": "c-42", "name": "Ada Lovelace"}, "status": "shipped",
       "currency": "EUR", "lines": []}
i = 0
while len(json.dumps(doc, separators=(",", ":"))) < 2048:
    doc["lines"].append({"sku": f"SKU-{i:05}", "qty": i % 7 + 1, "price": "19.90"})
    i += 1
open(sys.argv[1], "w").write(json.dumps(doc, separators=(",", ":")))
PY
chmod -R a+rX "$DIR/www"
cat > "$DIR/nginx.conf" <<NGINX
worker_processes 1;
user root;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:18181; root $DIR/www; default_type application/json; }
    server { listen 127.0.0.1:18182; root $DIR/www; default_type application/json; }
}
NGINX
nginx -c "$DIR/nginx.conf" -p "$DIR"

run() { # kind
    local kind=$1 port=18190
    cat > "$DIR/$kind.toml" <<TOML
[store]
url = "sqlite://$DIR/$kind.db"

[proxy]
listen = "127.0.0.1:$port"
legacy_url = "http://127.0.0.1:18181"
new_url = "http://127.0.0.1:18182"
${PROXY_EXTRA:-}

[telemetry]
log_filter = "warn"
shutdown_grace_ms = 5000

[[capability]]
name = "orders"
routes = ["GET /orders/{id}"]
TOML
    local cmd
    if [ "$PROXY_BIN" = cli ]; then
        "$STRANGLER" -c "$DIR/$kind.toml" migrate >/dev/null
        if [ "$kind" = shadow ]; then
            "$STRANGLER" -c "$DIR/$kind.toml" cutover set orders shadow --reason profile --actor profile >/dev/null
        fi
        cmd=("$STRANGLER" -c "$DIR/$kind.toml" proxy)
    else
        cmd=("$SERVER" "$DIR/$kind.toml" "$([ "$kind" = shadow ] && echo shadow || echo legacy)")
    fi
    # --separate-threads=no: the mirror lane's thread is counted with the rest.
    valgrind --tool=callgrind --callgrind-out-file="$DIR/callgrind.$kind" \
        "${cmd[@]}" >"$DIR/$kind.log" 2>&1 &
    local pid=$!
    for _ in $(seq 300); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/orders/1" && break
        sleep 0.2
    done
    # Idle cost (start-up, one warm-up request) measured apart, then the load.
    "$FIXED" "http://127.0.0.1:$port/orders/1" "$RATE" "$((REQUESTS / RATE))" >"$DIR/$kind.fixed"
    sleep 2
    kill -INT "$pid"
    wait "$pid" || true
    cat "$DIR/$kind.fixed" >&2
}

total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
run pass
run shadow
pass=$(total "$DIR/callgrind.pass")
shadow=$(total "$DIR/callgrind.shadow")
echo "instructions per request (start-up and idle loops included, so an upper bound):"
echo "  pass-through: $((pass / REQUESTS))"
echo "  shadow:       $((shadow / REQUESTS))"
echo
echo "top inclusive costs, shadow run:"
callgrind_annotate --inclusive=yes "$DIR/callgrind.shadow" 2>/dev/null | sed -n '/^Ir/,$p' | head -45
echo "callgrind files: $DIR/callgrind.pass $DIR/callgrind.shadow"
