#!/usr/bin/env bash
# The audit log's filters on a large log: seeds BENCH_EVENTS (default 2,000,000) events, most of
# them eligibility checks as in a running service, then reads filtered pages of
# `GET /v1/audit-events` as an operator with wrk at concurrency 4 for BENCH_SECONDS each, next to
# /health/ready (one database round trip) measured in the same run, on PostgreSQL and SQLite.
# Most filters are ones that few events match (a rare action, a mutuelle's recent `since` as
# polling asks, an id without its type, an organisation and an action it never did): a filter
# that reads the whole log shows as a ratio near 0.
# Usage: bench/audit.sh [postgres|sqlite|both]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
EVENTS=${BENCH_EVENTS:-2000000}
trap bench_stop EXIT

# The seeded events' columns, one row per g in 1..EVENTS: an event every 5 seconds from
# 2026-01-01; 80 % eligibility checks about people, the rest claims, with a coverage termination
# every 1,000 events and an identity mismatch every 100,000; 50 organisations. Digests are not
# computed: `audit verify` would fail on this log, which only the list reads.
seed_postgres() {
  psql -q -h 127.0.0.1 -U postgres -d passerelle_bench -v events="$EVENTS" <<'SQL'
INSERT INTO audit_events (seq, at, organization, subject, action, resource_type, resource_id, request_id, digest, prev_digest)
SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '5 seconds', 'bench-org-' || (g % 50), 'bench',
  CASE WHEN g % 100000 = 7 THEN 'beneficiary.identity_mismatch' WHEN g % 1000 = 0 THEN 'coverage.terminated'
       WHEN g % 10 < 8 THEN 'eligibility.eligible' ELSE 'claim.submitted' END,
  CASE WHEN g % 1000 = 0 THEN 'coverage' WHEN g % 10 < 8 OR g % 100000 = 7 THEN 'beneficiary' ELSE 'claim' END,
  md5(g::text), md5((g + 1)::text), md5((g + 2)::text) || md5((g + 3)::text), md5((g + 4)::text) || md5((g + 5)::text)
FROM generate_series(1, :events) AS g;
UPDATE audit_head SET seq = :events, digest = (SELECT digest FROM audit_events WHERE seq = :events) WHERE id = 1;
ANALYZE audit_events;
SQL
}

seed_sqlite() {
  # The instant as the service writes it on SQLite (sqlx's RFC 3339, `+00:00`); the head follows
  # the inserts by the migrations' trigger.
  sqlite3 "$OUT/bench.db" <<SQL
WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $EVENTS)
INSERT INTO audit_events (seq, at, organization, subject, action, resource_type, resource_id, request_id, digest, prev_digest)
SELECT x, strftime('%Y-%m-%dT%H:%M:%S+00:00', 1767225600 + x * 5, 'unixepoch'), 'bench-org-' || (x % 50), 'bench',
  CASE WHEN x % 100000 = 7 THEN 'beneficiary.identity_mismatch' WHEN x % 1000 = 0 THEN 'coverage.terminated'
       WHEN x % 10 < 8 THEN 'eligibility.eligible' ELSE 'claim.submitted' END,
  CASE WHEN x % 1000 = 0 THEN 'coverage' WHEN x % 10 < 8 OR x % 100000 = 7 THEN 'beneficiary' ELSE 'claim' END,
  lower(hex(randomblob(16))), lower(hex(randomblob(16))), lower(hex(randomblob(32))), lower(hex(randomblob(32)))
FROM g;
SQL
  # No ANALYZE: the service never runs it, so its SQLite plans are made without statistics.
}

bench_setup
results=()
for backend in $( [ "${1:-both}" = both ] && echo postgres sqlite || echo "$1" ); do
  bench_database "$backend"
  started=$(date +%s)
  "seed_$backend"
  echo "$backend: seeded $EVENTS events in $(( $(date +%s) - started )) s" >&2
  bench_start
  export BENCH_TOKEN BENCH_PATH
  op=$(measured_token operator audit:read)
  # A mutuelle of the log reads its own events only (the service adds its organisation), and
  # its reads are not audited: its polling finds only what happened to it.
  post "$(token operator admin)" /v1/organizations \
    '{"id":"bench-org-7","kind":"mutuelle","country":"TG","name":"Bench mutuelle"}' >/dev/null
  mut=$(measured_token bench-org-7 audit:read)
  # An id of the middle of the log, and a minute before its last event.
  half=$((EVENTS / 2))
  if [ "$backend" = postgres ]; then
    id=$(psql -Atq -h 127.0.0.1 -U postgres -d passerelle_bench -c "SELECT resource_id FROM audit_events WHERE seq = $half")
  else
    id=$(sqlite3 "$OUT/bench.db" "SELECT resource_id FROM audit_events WHERE seq = $half")
  fi
  # One of bench-org-7's own events (organisations take turns, seq modulo 50), and a claim's.
  own=$((half - half % 50 + 7)) claim=$((half - half % 10 + 8))
  if [ "$backend" = postgres ]; then
    own_id=$(psql -Atq -h 127.0.0.1 -U postgres -d passerelle_bench -c "SELECT resource_id FROM audit_events WHERE seq = $own")
    claim_id=$(psql -Atq -h 127.0.0.1 -U postgres -d passerelle_bench -c "SELECT resource_id FROM audit_events WHERE seq = $claim")
  else
    own_id=$(sqlite3 "$OUT/bench.db" "SELECT resource_id FROM audit_events WHERE seq = $own")
    claim_id=$(sqlite3 "$OUT/bench.db" "SELECT resource_id FROM audit_events WHERE seq = $claim")
  fi
  recent=$(python3 -c "import datetime as d; print((d.datetime(2026,1,1,tzinfo=d.timezone.utc)+d.timedelta(seconds=5*$EVENTS-60)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
  # name, reader, path. The operator's own reads are audited, so its `since` finds them too.
  queries=(
    "newest $op /v1/audit-events?limit=50"
    "rare_action $op /v1/audit-events?action=beneficiary.identity_mismatch&limit=50"
    "recent_since $op /v1/audit-events?since=$recent&limit=50"
    "id_alone $op /v1/audit-events?resource_id=$id&limit=50"
    "type_and_id $op /v1/audit-events?resource_type=beneficiary&resource_id=$id&limit=50"
    "org_and_action $op /v1/audit-events?organization=bench-org-7&action=coverage.terminated&limit=50"
    "own_since $mut /v1/audit-events?since=$recent&limit=50"
    "own_action $mut /v1/audit-events?action=claim.submitted&limit=50"
    "id_and_action $op /v1/audit-events?resource_id=$claim_id&action=claim.submitted&limit=50"
    "own_id $mut /v1/audit-events?resource_id=$own_id&limit=50"
  )
  BENCH_TOKEN=$op BENCH_PATH="/v1/audit-events?limit=50" BENCH_SECONDS=2 wrk_run 4 bench/audit.lua /v1/audit-events >/dev/null
  read -r h_rps h_p50 h_p99 _ < <(wrk_run 4 bench/health.lua /health/ready)
  results+=("$backend ready $h_rps $h_p50 $h_p99 1.00 0")
  for q in "${queries[@]}"; do
    read -r name BENCH_TOKEN BENCH_PATH <<<"$q"
    read -r a_rps a_p50 a_p99 a_bad < <(wrk_run 4 bench/audit.lua /v1/audit-events)
    ratio=$(python3 -c "print(f'{$a_rps / max($h_rps, 1):.3f}')")
    results+=("$backend $name $a_rps $a_p50 $a_p99 $ratio $a_bad")
  done
  bench_stop
done

echo
echo "audit log filters vs /health/ready, ${BENCH_SECONDS}s per run at concurrency 4, $EVENTS events, $(nproc) cores"
printf '%-9s %-15s | %9s %9s %9s | %6s | %s\n' backend query "r/s" "p50 ms" "p99 ms" "ratio" "errors"
for r in "${results[@]}"; do
  # shellcheck disable=SC2086
  printf '%-9s %-15s | %9s %9s %9s | %6s | %s\n' $r
done
if [ -s "$OUT/wrk-errors.log" ]; then
  echo "non-200 answers were logged in $OUT/wrk-errors.log" >&2
fi
