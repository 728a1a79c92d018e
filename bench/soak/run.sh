#!/usr/bin/env bash
# A soak run: the service on 127.0.0.1 under a steady mixed load, sampled every 30 s.
# Usage: bench/soak/run.sh sqlite|postgres MINUTES [RATE]
#   SOAK_BIN      the binary (default target/release/passerelle)
#   SOAK_PORT     the service's port (default 18150); the receiver takes SOAK_PORT + 1
#   SOAK_OUT      where the CSV files go (default bench/out/soak-BACKEND)
#   SOAK_PG_DB    the PostgreSQL database, dropped and created (default passerelle_soak)
#   SOAK_ONLY     kinds of request to send, comma-separated (loadgen.py WEIGHTS; default all)
# Every request goes to 127.0.0.1. Stops the service and the receiver at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=$1 MINUTES=$2 RATE=${3:-40}
BIN=${SOAK_BIN:-target/release/passerelle}
PORT=${SOAK_PORT:-18150}
RPORT=$((PORT + 1))
OUT=$(realpath -m "${SOAK_OUT:-bench/out/soak-$BACKEND}")
DB=${SOAK_PG_DB:-passerelle_soak}
rm -rf "$OUT" && mkdir -p "$OUT/run/spool" "$OUT/run/tmp"
export PASSERELLE_JWT_HS256_SECRET=soak-secret-soak-secret-soak-secret-012345
export PASSERELLE_LISTEN=127.0.0.1:$PORT
export PASSERELLE_LOG=${PASSERELLE_LOG:-warn}
export PASSERELLE_WEBHOOK_ALLOW_INSECURE=true
export PASSERELLE_WEBHOOK_RETRY_INITIAL_MS=${PASSERELLE_WEBHOOK_RETRY_INITIAL_MS:-1000}
export PASSERELLE_WEBHOOK_MAX_ATTEMPTS=${PASSERELLE_WEBHOOK_MAX_ATTEMPTS:-4}
export PASSERELLE_BATCH_SPOOL_DIR=$OUT/run/spool
if [ "$BACKEND" = postgres ]; then
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
  export PASSERELLE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable"
else
  export PASSERELLE_DATABASE_URL="sqlite://$OUT/run/soak.db"
fi
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
python3 bench/soak/receiver.py "$RPORT" "$OUT/receiver.csv" & PIDS+=($!)
TMPDIR=$OUT/run/tmp "$BIN" serve >"$OUT/server.log" 2>&1 & SERVER=$!; PIDS+=($SERVER)
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
echo "service pid $SERVER on $PORT ($BACKEND), out $OUT"
python3 bench/soak/sample.py "$SERVER" "$PASSERELLE_DATABASE_URL" "$OUT/run" "$OUT" \
  "http://127.0.0.1:$PORT/metrics" 30 & PIDS+=($!)
python3 bench/soak/loadgen.py "http://127.0.0.1:$PORT" "$OUT" $((MINUTES * 60)) "$RATE" "$RPORT"
sleep 31  # one more sample after the load, to see what drains
curl -s "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics-end.txt" || true
python3 bench/soak/summary.py "$OUT" | tee "$OUT/summary.txt"
