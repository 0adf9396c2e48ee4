#!/usr/bin/env bash
# The fleet demo: a nats-server with JetStream on loopback, several
# gateways (examples/gateway.rs) each with an `auditring ship` sidecar, the
# server killed (SIGKILL) for a few seconds mid-run, then `auditring
# collect`: every gateway's chain arrives intact, exactly once.
#
# Usage: scripts/fleet-demo.sh [gateways] [events per gateway] [rate per gateway]
# Needs nats-server (apt-get install -y nats-server). Everything runs on
# 127.0.0.1 in a temporary directory; every process is stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAYS="${1:-3}"
EVENTS="${2:-150000}"
RATE="${3:-20000}"
PORT="${FLEET_DEMO_PORT:-14222}"
MONITOR="${FLEET_DEMO_MONITOR:-18222}"

command -v nats-server >/dev/null || { echo "nats-server is missing: apt-get install -y nats-server" >&2; exit 2; }
cargo build --release -q -p auditring-cli
cargo build --release -q -p auditring --example gateway
BIN=target/release/auditring
GATEWAY=target/release/examples/gateway

WORK="$(mktemp -d -t auditring-fleet-demo.XXXXXX)"
SERVER_PID=""
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_server() {
    nats-server -js -sd "$WORK/store" -a 127.0.0.1 -p "$PORT" -m "$MONITOR" 2>>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$MONITOR/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "nats-server did not become healthy; see $WORK/server.log" >&2
    exit 2
}

echo "==> nats-server with JetStream on 127.0.0.1:$PORT (store in $WORK/store)"
start_server
URL="nats://127.0.0.1:$PORT"

echo "==> $GATEWAYS gateways, $EVENTS events each at $RATE/s, each with a shipper"
GW_PIDS=()
SHIP_PIDS=()
for i in $(seq 1 "$GATEWAYS"); do
    mkdir -p "$WORK/gw-$i"
    GATEWAY_DIR="$WORK/gw-$i" GATEWAY_WORKERS=1 GATEWAY_EVENTS="$EVENTS" GATEWAY_RATE="$RATE" \
        "$GATEWAY" >"$WORK/gw-$i/gateway.out" 2>&1 &
    GW_PIDS+=($!); PIDS+=($!)
done
sleep 0.5
for i in $(seq 1 "$GATEWAYS"); do
    "$BIN" ship --url "$URL" --gateway "gw-$i" --heartbeat-s 1 --report-s 0 --until-closed \
        "$WORK/gw-$i/audit.jsonl" 2>"$WORK/gw-$i/ship.err" &
    SHIP_PIDS+=($!); PIDS+=($!)
done

sleep 2
echo "==> kill -9 nats-server (pid $SERVER_PID) for 4 seconds, mid-run"
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
sleep 4
start_server
echo "==> nats-server back (pid $SERVER_PID)"

for pid in "${GW_PIDS[@]}"; do wait "$pid"; done
echo "==> gateways done; waiting for the shippers to ship every closed log"
for pid in "${SHIP_PIDS[@]}"; do wait "$pid"; done
for i in $(seq 1 "$GATEWAYS"); do tail -n 1 "$WORK/gw-$i/ship.err"; done

echo "==> collector"
ARGS=()
for i in $(seq 1 "$GATEWAYS"); do ARGS+=(--gateway "gw-$i=$WORK/gw-$i/audit-public.pem"); done
"$BIN" collect --url "$URL" --archive "$WORK/archive" "${ARGS[@]}" --until-idle-s 3 --report-s 0
STATUS=0
echo "==> every archive verified offline, and byte for byte the gateway's log"
for i in $(seq 1 "$GATEWAYS"); do
    "$BIN" verify --key "$WORK/gw-$i/audit-public.pem" "$WORK/archive/p0/gw-$i/audit.jsonl" >/dev/null \
        && echo "gw-$i: archive INTACT" || { echo "gw-$i: archive NOT intact"; STATUS=1; }
    cmp -s "$WORK/archive/p0/gw-$i/audit.jsonl" "$WORK/gw-$i/audit.jsonl" \
        && echo "gw-$i: exactly once, in order (archive == local log)" \
        || { echo "gw-$i: archive differs from the local log"; STATUS=1; }
done
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
echo "(files in $WORK)"
exit "$STATUS"
