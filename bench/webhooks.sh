#!/usr/bin/env bash
# The webhook outbox's drain behind a slow receiver's backlog. Subscription 1 has BENCH_BACKLOG
# (default 20,000) deliveries due for an hour, to a receiver that answers after 250 ms; the
# others (BENCH_SUBSCRIPTIONS in all, default 4) share BENCH_DELIVERIES (default 20,000) due
# since a minute, to a receiver that answers 204 at once (bench/receiver.py, on 127.0.0.1). The
# slow one is always at its 4 sends in flight (API.md Webhooks), with the oldest due rows: the
# case in which a lease that walks the due deliveries in time order reads its whole backlog.
# The service starts on these rows, and its worker sends for BENCH_SECONDS; the rate of the
# quick subscriptions' deliveries recorded as delivered is printed next to the baseline
# measured in the same run: wrk POSTing a body of the same shape to the quick receiver with as
# many connections as the service may hold sends in flight to those subscriptions (4 each).
# A ratio near 1 means the drain goes as fast as the receiver takes deliveries at that
# concurrency; far below it, the worker's own statements are the limit.
# Usage: bench/webhooks.sh [postgres|sqlite|both]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SUBSCRIPTIONS=${BENCH_SUBSCRIPTIONS:-4}
DELIVERIES=${BENCH_DELIVERIES:-20000}
BACKLOG=${BENCH_BACKLOG:-20000}
RECEIVER_PORT=${BENCH_RECEIVER_PORT:-18081}
RECEIVER="http://127.0.0.1:${RECEIVER_PORT}"
[ "$SUBSCRIPTIONS" -ge 2 ] || { echo "BENCH_SUBSCRIPTIONS: at least 2 (one slow, one quick)" >&2; exit 2; }
# The receiver is on this machine: only a development setting lets the worker send there.
export PASSERELLE_WEBHOOK_ALLOW_INSECURE=true
RECEIVER_PID=""
stop_all() {
  bench_stop
  [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null || true
}
trap stop_all EXIT

# Organisations and their subscriptions (bench-sub-1 the slow one), and the due deliveries, as
# the service writes them: the backlog of bench-sub-1 due an hour ago, then one quick delivery in
# g to subscription 2 + g mod (SUBSCRIPTIONS - 1), due a minute ago, in id order. The payload
# names a resource the worker sends as stored (`webhook_worker::envelope`).
seed_postgres() {
  psql -q -h 127.0.0.1 -U postgres -d passerelle_bench -v subs="$SUBSCRIPTIONS" -v backlog="$BACKLOG" \
    -v deliveries="$DELIVERIES" -v url="$RECEIVER" <<'SQL'
INSERT INTO organizations (id, kind, country, name, created_at)
SELECT 'bench-org-' || g, 'mutuelle', 'TG', 'Bench mutuelle ' || g, now() FROM generate_series(1, :subs) AS g;
INSERT INTO webhook_subscriptions (id, organization, url, events, secret, created_at)
SELECT 'bench-sub-' || g, 'bench-org-' || g, :'url' || CASE WHEN g = 1 THEN '/slow' ELSE '/hook' END,
  ' claim.submitted ', 'bench-secret-' || g, now()
FROM generate_series(1, :subs) AS g;
INSERT INTO webhook_deliveries (id, subscription, event_id, event_type, payload, status, attempts, next_attempt_at, created_at)
SELECT 'bench-dlv-' || lpad(g::text, 9, '0'), s.sub, 'bench-evt-' || g, 'claim.submitted',
  json_build_object('organization', replace(s.sub, 'sub', 'org'), 'created_at', '2026-12-06T08:00:00Z',
    'resource', 'bench', 'data', json_build_object('n', g))::text,
  'pending', 0, now() - CASE WHEN g <= :backlog THEN interval '1 hour' ELSE interval '1 minute' END, now()
FROM generate_series(1, :backlog + :deliveries) AS g,
  LATERAL (SELECT CASE WHEN g <= :backlog THEN 'bench-sub-1' ELSE 'bench-sub-' || (2 + g % (:subs - 1)) END AS sub) AS s;
ANALYZE;
CHECKPOINT;
SQL
}

seed_sqlite() {
  # Instants as the service writes them on SQLite (RFC 3339, `+00:00`), which it compares as text.
  sqlite3 "$OUT/bench.db" <<SQL
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $SUBSCRIPTIONS)
INSERT INTO organizations (id, kind, country, name, created_at)
SELECT 'bench-org-' || x, 'mutuelle', 'TG', 'Bench mutuelle ' || x, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now') FROM g;
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $SUBSCRIPTIONS)
INSERT INTO webhook_subscriptions (id, organization, url, events, secret, created_at)
SELECT 'bench-sub-' || x, 'bench-org-' || x, '$RECEIVER' || CASE WHEN x = 1 THEN '/slow' ELSE '/hook' END,
  ' claim.submitted ', 'bench-secret-' || x, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now') FROM g;
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $BACKLOG + $DELIVERIES),
  s(x, sub) AS (SELECT x, CASE WHEN x <= $BACKLOG THEN 'bench-sub-1' ELSE 'bench-sub-' || (2 + x % ($SUBSCRIPTIONS - 1)) END FROM g)
INSERT INTO webhook_deliveries (id, subscription, event_id, event_type, payload, status, attempts, next_attempt_at, created_at)
SELECT printf('bench-dlv-%09d', x), sub, 'bench-evt-' || x, 'claim.submitted',
  json_object('organization', replace(sub, 'sub', 'org'), 'created_at', '2026-12-06T08:00:00Z',
    'resource', 'bench', 'data', json_object('n', x)),
  'pending', 0, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', CASE WHEN x <= $BACKLOG THEN '-1 hour' ELSE '-1 minute' END),
  strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')
FROM s;
SQL
}

# delivered_of CONDITION → how many deliveries are recorded as delivered, of subscriptions
# matching the condition (`= 'bench-sub-1'`: the slow one; `<> 'bench-sub-1'`: the quick ones).
delivered_of() {
  local q="SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered' AND subscription $1"
  if [ "$BENCH_BACKEND" = postgres ]; then
    psql -Atq -h 127.0.0.1 -U postgres -d passerelle_bench -c "$q"
  else
    sqlite3 "$OUT/bench.db" "$q"
  fi
}

bench_setup
python3 bench/receiver.py "$RECEIVER_PORT" &
RECEIVER_PID=$!
for _ in $(seq 1 50); do
  curl -s -o /dev/null -X POST "$RECEIVER/hook" -d '{}' && break
  sleep 0.1
done
concurrency=$(((SUBSCRIPTIONS - 1) * 4))
threads=2
[ "$concurrency" -lt 2 ] && threads=1
results=()
for backend in $( [ "${1:-both}" = both ] && echo postgres sqlite || echo "$1" ); do
  bench_database "$backend"
  "seed_$backend"
  bench_prewarm
  # The baseline first, so that the receiver is warm for both.
  base_rps=$(wrk -t"$threads" -c"$concurrency" -d"${BENCH_SECONDS}s" -s bench/receiver.lua "$RECEIVER/hook" 2>>"$OUT/wrk-errors.log" |
    awk '/requests in/ { total = $1; secs = $4 + 0 } /Non-2xx or 3xx responses/ { bad = $5 }
         END { printf "%.0f\n", (total - bad) / secs }')
  bench_start
  # The first second fills the slots; the measure starts after it.
  sleep 1
  first=$(delivered_of "<> 'bench-sub-1'") started=$(date +%s.%N)
  sleep "$BENCH_SECONDS"
  last=$(delivered_of "<> 'bench-sub-1'") ended=$(date +%s.%N)
  slow=$(delivered_of "= 'bench-sub-1'")
  bench_stop
  rate=$(python3 -c "print(f'{($last - $first) / ($ended - $started):.0f}')")
  ratio=$(python3 -c "print(f'{$rate / max($base_rps, 1):.3f}')")
  if [ "$last" -ge "$DELIVERIES" ]; then
    echo "$backend: the quick deliveries ran out during the run (the rate is a floor); raise BENCH_DELIVERIES" >&2
  fi
  results+=("$backend $base_rps $rate $ratio $slow")
done

echo
echo "webhook drain behind a slow receiver's backlog vs the receiver's own rate, ${BENCH_SECONDS}s," \
  "$BACKLOG due to the slow one, $DELIVERIES to $((SUBSCRIPTIONS - 1)) quick ones, concurrency $concurrency, $(nproc) cores"
printf '%-9s | %13s | %13s | %6s | %s\n' backend "receiver r/s" "quick/s" ratio "slow delivered"
for r in "${results[@]}"; do
  read -r b base rate ratio slow <<<"$r"
  printf '%-9s | %13s | %13s | %6s | %s\n' "$b" "$base" "$rate" "$ratio" "$slow"
done
if [ -s "$OUT/wrk-errors.log" ]; then
  echo "non-204 answers were logged in $OUT/wrk-errors.log" >&2
fi
