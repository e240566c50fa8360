#!/usr/bin/env bash
# Shadow proxy benchmark: one run, the same upstreams, five ways to reach them.
#   (a) direct to legacy            (b) strangler pass-through   (c) strangler shadow mode
#   (d) nginx proxy_pass            (e) nginx proxy_pass + mirror to the new path
# Legacy and new are nginx serving a static 2 KB JSON document (worker_processes 2), in the same
# nginx as (d) and (e) or, with UPSTREAMS=apart, in an nginx of their own.
# Throughput: wrk, 2 threads, 32 connections, $DURATION s. Latency at a fixed rate: the
# open-loop generator crates/strangler-proxy/examples/fixed_rate.rs (oha is used instead when
# installed; both keep at most $FIXED_CONNECTIONS connections). Then pass-through and shadow
# again at the fixed rate, alternating for $ROUNDS
# rounds, so their p99s are compared under the same background load; and the early-answer
# wrapper's cost (crates/strangler-proxy/examples/early_answer_cost.rs, against legacy).
# Also the CPU time per request of the whole machine, of nginx and of strangler during each
# fixed-rate phase (from /proc), and the shadow copies judged and skipped during it.
# Results go to stdout as markdown tables; copy them into docs/BENCHMARKS.md.
#
# Usage: deploy/bench-proxy.sh   (DURATION=10 RATE=5000 FIXED_SECONDS=10 ROUNDS=3 to change;
#                                 EARLY_ANSWER=0 skips the wrapper's cost; PROXY_BIN=example
#                                 runs crates/strangler-proxy/examples/proxy_server.rs, the proxy
#                                 without the CLI's mismatch store, metrics and admin services;
#                                 STRANGLER_BIN=path measures another build of the binary, for
#                                 before/after runs side by side; PROXY_EXTRA adds lines to both
#                                 proxies' [proxy] section, for example
#                                 PROXY_EXTRA='fast_pass_through = false')
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RATE=${RATE:-5000}
FIXED_SECONDS=${FIXED_SECONDS:-10}
ROUNDS=${ROUNDS:-3}
FIXED_CONNECTIONS=${FIXED_CONNECTIONS:-50}
EARLY_ANSWER=${EARLY_ANSWER:-1}
PROXY_BIN=${PROXY_BIN:-cli}
CONNECTIONS=32

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
fi

if [ -z "${SKIP_BUILD:-}" ]; then
    [ "$PROXY_BIN" = cli ] && cargo build --release -q -p strangler-cli
    cargo build --release -q -p strangler-proxy --example fixed_rate --example early_answer_cost \
        --example proxy_server
fi
STRANGLER="${STRANGLER_BIN:-${CARGO_TARGET_DIR:-target}/release/strangler}"
FIXED="${CARGO_TARGET_DIR:-target}"/release/examples/fixed_rate
EARLY="${CARGO_TARGET_DIR:-target}"/release/examples/early_answer_cost
SERVER="${CARGO_TARGET_DIR:-target}"/release/examples/proxy_server
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)" >&2

DIR=$(mktemp -d /tmp/strangler-bench.XXXXXX)
chmod 755 "$DIR"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for pid in "$DIR/nginx.pid" "$DIR/upstreams.pid"; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# The 2 KB document: an order with enough lines to weigh 2,048 bytes.
mkdir -p "$DIR/www/orders"
python3 - "$DIR/www/orders/1" <<'PY'
import json, sys
doc = {"id": "1", "customer": {"id": "c-42", "name": "Ada Lovelace"}, "status": "shipped",
       "currency": "EUR", "lines": []}
i = 0
while len(json.dumps(doc, separators=(",", ":"))) < 2048:
    doc["lines"].append({"sku": f"SKU-{i:05}", "qty": i % 7 + 1, "price": "19.90"})
    i += 1
text = json.dumps(doc, separators=(",", ":"))
text = text[:-1] + ',"pad":"' + "x" * max(0, 2048 - len(text) - 9) + '"}'
open(sys.argv[1], "w").write(text)
PY
chmod -R a+rX "$DIR/www"

# UPSTREAMS=shared (default): the static upstreams and nginx's proxies run in the same two nginx
# workers, so nginx can serve its own upstream hop without a switch to another process.
# UPSTREAMS=apart: the upstreams are a second nginx instance with workers of their own, so every
# proxy measured (nginx's and strangler's) crosses to another process for its upstream hop.
UPSTREAMS=${UPSTREAMS:-shared}
UPSTREAM_SERVERS="
    server { listen 127.0.0.1:18081; root $DIR/www; default_type application/json; }
    server { listen 127.0.0.1:18082; root $DIR/www; default_type application/json; }"
PROXY_SERVERS="
    upstream legacy  { server 127.0.0.1:18081; keepalive 128; }
    upstream newpath { server 127.0.0.1:18082; keepalive 128; }
    server {
        listen 127.0.0.1:18083;
        location / { proxy_pass http://legacy; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }
    server {
        listen 127.0.0.1:18084;
        location / {
            mirror /mirror;
            proxy_pass http://legacy; proxy_http_version 1.1; proxy_set_header Connection \"\";
        }
        location = /mirror {
            internal;
            proxy_pass http://newpath\$request_uri;
            proxy_http_version 1.1; proxy_set_header Connection \"\";
        }
    }"
nginx_conf() { # nginx_conf NAME SERVERS...
    local name=$1; shift
    cat > "$DIR/$name.conf" <<NGINX
worker_processes 2;
user root;
pid $DIR/$name.pid;
error_log $DIR/$name-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    $*
}
NGINX
    nginx -c "$DIR/$name.conf" -p "$DIR"
}
case "$UPSTREAMS" in
    shared) nginx_conf nginx "$UPSTREAM_SERVERS" "$PROXY_SERVERS" ;;
    apart) nginx_conf upstreams "$UPSTREAM_SERVERS"; nginx_conf nginx "$PROXY_SERVERS" ;;
    *) echo "UPSTREAMS must be shared or apart, not $UPSTREAMS" >&2; exit 2 ;;
esac
echo "nginx upstreams: $UPSTREAMS" >&2

for kind in pass shadow; do
    port=$([ "$kind" = pass ] && echo 18090 || echo 18091)
    cat > "$DIR/$kind.toml" <<TOML
[store]
url = "sqlite://$DIR/$kind.db"

[proxy]
listen = "127.0.0.1:$port"
legacy_url = "http://127.0.0.1:18081"
new_url = "http://127.0.0.1:18082"
${PROXY_EXTRA:-}

[telemetry]
log_filter = "warn"

[[capability]]
name = "orders"
routes = ["GET /orders/{id}"]
mirror_max_in_flight = 256
TOML
    mode=$([ "$kind" = pass ] && echo legacy || echo shadow)
    if [ "$PROXY_BIN" = cli ]; then
        "$STRANGLER" -c "$DIR/$kind.toml" migrate >/dev/null
        if [ "$kind" = shadow ]; then
            "$STRANGLER" -c "$DIR/$kind.toml" cutover set orders shadow --reason bench --actor bench >/dev/null
        fi
        "$STRANGLER" -c "$DIR/$kind.toml" proxy >"$DIR/$kind.log" 2>&1 &
    else
        "$SERVER" "$DIR/$kind.toml" "$mode" >"$DIR/$kind.log" 2>&1 &
    fi
    PIDS+=($!)
done

for port in 18081 18082 18083 18084 18090 18091; do
    for _ in $(seq 50); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/orders/1" && break
        sleep 0.1
    done
done
cmp <(curl -s http://127.0.0.1:18081/orders/1) <(curl -s http://127.0.0.1:18091/orders/1) \
    || { echo "shadow proxy does not return legacy's bytes" >&2; exit 1; }

declare -A URL=(
    [a]=http://127.0.0.1:18081/orders/1 [b]=http://127.0.0.1:18090/orders/1
    [c]=http://127.0.0.1:18091/orders/1 [d]=http://127.0.0.1:18083/orders/1
    [e]=http://127.0.0.1:18084/orders/1
)
declare -A NAME=(
    [a]="direct to legacy (nginx static)" [b]="strangler pass-through" [c]="strangler shadow"
    [d]="nginx proxy_pass" [e]="nginx proxy_pass + mirror"
)
declare -A RPS P99 FIX

fixed_rate() {
    if need oha; then
        oha -q "$RATE" -c "$FIXED_CONNECTIONS" --latency-correction -z "${FIXED_SECONDS}s" --no-tui --json "$1" |
            python3 -c 'import json,sys; d=json.load(sys.stdin)["latencyPercentiles"]; print(f"p50_us={int(d["p50"]*1e6)} p99_us={int(d["p99"]*1e6)}")'
    else
        "$FIXED" "$1" "$RATE" "$FIXED_SECONDS" "$FIXED_CONNECTIONS"
    fi
}

# Copies the shadow proxy has judged and skipped so far (the store is written once a second).
judged() {
    sleep 2
    python3 - "$DIR/shadow.db" <<'PY'
import sqlite3, sys
m, s = sqlite3.connect(sys.argv[1]).execute(
    "SELECT coalesce(sum(matches + mismatches + stale + errors), 0), coalesce(sum(skipped), 0) "
    "FROM strangler_verdict_counts").fetchone()
print(m, s)
PY
}

# Busy CPU time in clock ticks: the whole machine's, one process's, all nginx processes'.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
nginx_ticks() {
    local t=0 p
    for p in $(pgrep -x nginx); do t=$((t + $(proc_ticks "$p"))); done
    echo "$t"
}
# Microseconds of CPU per request: ticks, requests.
per_request() { python3 -c "print(round($1 * 1e6 / $(getconf CLK_TCK) / max($2, 1), 1))"; }
declare -A CPU

for k in a b c d e; do
    curl -s -o /dev/null "${URL[$k]}"
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${URL[$k]}" >"$DIR/wrk-$k.txt"
    RPS[$k]=$(awk '/Requests\/sec/ {print $2}' "$DIR/wrk-$k.txt")
    P99[$k]=$(awk '$1 == "99%" {print $2}' "$DIR/wrk-$k.txt")
    sleep 1
    [ "$k" = c ] && read -r j0 s0 < <(judged)
    own=""
    case $k in b) own=${PIDS[0]} ;; c) own=${PIDS[1]} ;; esac
    m0=$(machine_ticks) n0=$(nginx_ticks) o0=$([ -n "$own" ] && proc_ticks "$own" || echo 0)
    FIX[$k]=$(fixed_rate "${URL[$k]}")
    m1=$(machine_ticks) n1=$(nginx_ticks) o1=$([ -n "$own" ] && proc_ticks "$own" || echo 0)
    sent=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"${FIX[$k]}")
    sent=${sent:-$((RATE * FIXED_SECONDS))}
    CPU[$k]="$(per_request $((m1 - m0)) "$sent") | $(per_request $((n1 - n0)) "$sent") | $(per_request $((o1 - o0)) "$sent")"
    if [ "$k" = c ]; then
        read -r j1 s1 < <(judged)
        FIXED_JUDGED="$((j1 - j0)) copies judged, $((s1 - s0)) skipped"
        echo "shadow at $RATE/s: $FIXED_JUDGED" >&2
    fi
    echo "($k) ${NAME[$k]}: ${RPS[$k]} req/s, wrk p99 ${P99[$k]}; at $RATE/s: ${FIX[$k]}" >&2
done

sleep 2
python3 - "$DIR/shadow.db" <<'PY' >&2
import sqlite3, sys
m, mm, e, s = sqlite3.connect(sys.argv[1]).execute(
    "SELECT sum(matches), sum(mismatches), sum(errors), sum(skipped) FROM strangler_verdict_counts"
).fetchone()
print(f"shadow verdicts flushed to the store: matches={m} mismatches={mm} errors={e} skipped={s}")
PY

# Pass-through and shadow at the fixed rate, alternating, so both see the same background load.
declare -A ROUND_P99
for r in $(seq "$ROUNDS"); do
    for k in b c; do
        f=$(fixed_rate "${URL[$k]}")
        ROUND_P99[$k$r]=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$f")
        echo "round $r ($k) ${NAME[$k]} at $RATE/s: $f" >&2
        sleep 1
    done
done

if [ "$EARLY_ANSWER" = 1 ]; then
    echo "early-answer wrapper's cost (GET and a 2 KB POST to legacy, alternating rounds):" >&2
    "$EARLY" "${URL[a]}" 20000 6 8 >"$DIR/early-answer.txt"
    cat "$DIR/early-answer.txt" >&2
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
echo
echo "| setup | wrk req/s (32 conn) | wrk p99 | fixed ${RATE}/s p50 / p99 |"
echo "|---|---:|---:|---|"
for k in a b c d e; do
    f=${FIX[$k]}
    p50=$(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$f")
    p99=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$f")
    echo "| ($k) ${NAME[$k]} | ${RPS[$k]} | ${P99[$k]} | ${p50} µs / ${p99} µs |"
done
echo
echo "pass-through / nginx proxy_pass = $(ratio "${RPS[b]}" "${RPS[d]}")x (target >= 0.9)"
echo "shadow / nginx mirror           = $(ratio "${RPS[c]}" "${RPS[e]}")x (target >= 2)"
echo "shadow at a fixed $RATE/s ($(ratio "$RATE" "${RPS[e]}")x nginx mirror's saturation): $FIXED_JUDGED"
echo
echo "CPU per request during the fixed-rate phase (µs; machine = every process, the generator included):"
echo
echo "| setup | machine | nginx (all workers) | strangler |"
echo "|---|---:|---:|---:|"
for k in a b c d e; do echo "| ($k) ${NAME[$k]} | ${CPU[$k]} |"; done
echo
echo "| round | pass-through p99 at ${RATE}/s | shadow p99 | shadow - pass-through |"
echo "|---|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
    b=${ROUND_P99[b$r]} c=${ROUND_P99[c$r]}
    echo "| $r | ${b} µs | ${c} µs | $((c - b)) µs |"
done
if [ "$EARLY_ANSWER" = 1 ]; then
    echo
    grep medians "$DIR/early-answer.txt"
fi
