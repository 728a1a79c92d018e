#!/usr/bin/env bash
# The eligibility and claims benchmarks (issues 4 and 5): seeds BENCH_PEOPLE (default 1,000,000)
# people with coverages, then runs eligibility checks (or 3-line claim submissions) for random
# people with wrk at concurrency 1, 16 and 64 for BENCH_SECONDS each, next to /health/ready (one
# database round trip) measured in the same run, on PostgreSQL and SQLite; then the CPU each
# answer cost the service and PostgreSQL in those runs (read from /proc).
# Usage: bench/eligibility.sh [postgres|sqlite|both]      (eligibility checks)
#        BENCH_TARGET=claims bench/eligibility.sh [...]    (claim submissions; or bench/claims.sh)
#        BENCH_JWT=rs256 bench/eligibility.sh [...]         (measured with an RS256 token; see lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
PEOPLE=${BENCH_PEOPLE:-1000000}
export BENCH_PEOPLE=$PEOPLE
trap bench_stop EXIT

bench_setup
results=()
cpu=()
for backend in $( [ "${1:-both}" = both ] && echo postgres sqlite || echo "$1" ); do
  bench_database "$backend"
  bench_start
  op=$(token operator admin)
  post "$op" /v1/organizations '{"id":"bench-mut","kind":"mutuelle","country":"TG","name":"Bench mutuelle"}' >/dev/null
  post "$op" /v1/organizations '{"id":"bench-inam","kind":"scheme","country":"TG","name":"Bench scheme"}' >/dev/null
  post "$op" /v1/organizations '{"id":"bench-cms","kind":"provider","country":"TG","name":"Bench facility"}' >/dev/null
  comp=$(post "$(token bench-mut registry:write)" /v1/products '{"layer":"complementary","name":"Bench plan",
    "rules":[{"care_level":"health_center","rate_bp":10000},{"rate_bp":5000}],"annual_ceiling_xof":150000,
    "waiting_period_days":30,"grace_period_days":30,"effective_from":"2025-01-01"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  base=$(post "$(token bench-inam registry:write)" /v1/products '{"layer":"base","name":"Bench AMU",
    "rules":[{"rate_bp":8000}],"effective_from":"2024-01-01"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  started=$(date +%s)
  if [ "$backend" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d passerelle_bench -v people="$PEOPLE" -v comp_product="$comp" \
      -v base_product="$base" -f bench/seed-postgres.sql >/dev/null
  else
    sed -e "s/__PEOPLE__/$PEOPLE/g; s/__COMP__/$comp/g; s/__BASE__/$base/g" bench/seed-sqlite.sql |
      sqlite3 "$OUT/bench.db" >/dev/null
  fi
  echo "$backend: seeded $PEOPLE people in $(( $(date +%s) - started )) s" >&2
  export BENCH_TOKEN
  if [ "${BENCH_TARGET:-eligibility}" = claims ]; then
    BENCH_TOKEN=$(measured_token bench-cms "claims:submit claims:read")
    script=bench/claims.lua path=/v1/claims
  else
    BENCH_TOKEN=$(measured_token bench-cms eligibility:check)
    script=bench/eligibility.lua path=/v1/eligibility-checks
  fi
  bench_prewarm
  BENCH_SECONDS=3 wrk_run 16 "$script" "$path" >/dev/null
  for c in 1 16 64; do
    bench_prewarm
    before=$(cpu_ticks)
    read -r h_rps h_p50 h_p99 _ < <(wrk_run "$c" bench/health.lua /health/ready)
    h_cpu=$(cpu_per_answer "$before" "$(cpu_ticks)" "$h_rps")
    bench_prewarm
    before=$(cpu_ticks)
    read -r e_rps e_p50 e_p99 e_bad < <(wrk_run "$c" "$script" "$path")
    e_cpu=$(cpu_per_answer "$before" "$(cpu_ticks)" "$e_rps")
    ratio=$(python3 -c "print(f'{$e_rps / max($h_rps, 1):.2f}')")
    results+=("$backend $c $h_rps $h_p50 $h_p99 $e_rps $e_p50 $e_p99 $ratio $e_bad")
    cpu+=("$backend $c $h_cpu $e_cpu")
  done
  bench_stop
done

echo
echo "${BENCH_TARGET:-eligibility} vs /health/ready, ${BENCH_SECONDS}s per run, $PEOPLE people, $BENCH_JWT tokens, $(nproc) cores"
printf '%-9s %5s | %9s %8s %8s | %9s %8s %8s | %5s | %s\n' backend conc "ready r/s" "p50 ms" "p99 ms" "target r/s" "p50 ms" "p99 ms" "ratio" "errors"
for r in "${results[@]}"; do
  # shellcheck disable=SC2086
  printf '%-9s %5s | %9s %8s %8s | %9s %8s %8s | %5s | %s\n' $r
done
echo
echo "CPU per good answer, in µs: the service's process, and PostgreSQL's processes (0 on SQLite)"
printf '%-9s %5s | %9s %9s | %10s %9s\n' backend conc "ready svc" "ready db" "target svc" "target db"
for r in "${cpu[@]}"; do
  # shellcheck disable=SC2086
  printf '%-9s %5s | %9s %9s | %10s %9s\n' $r
done
if [ -s "$OUT/wrk-errors.log" ]; then
  echo "non-200 answers were logged in $OUT/wrk-errors.log" >&2
fi
