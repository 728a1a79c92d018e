# Shared by the benchmarks: build, a bench database, a running service, wrk runs and parsing.
# Every request goes to 127.0.0.1.

BENCH_PORT=${BENCH_PORT:-18080}
# The PostgreSQL server on 127.0.0.1 (psql reads PGPORT too): the machine's, 5432, unless
# BENCH_PG_PORT names another cluster on this machine.
export PGPORT=${BENCH_PG_PORT:-5432}
BENCH_SECONDS=${BENCH_SECONDS:-15}
BASE="http://127.0.0.1:${BENCH_PORT}"
OUT=bench/out
BIN=${BENCH_BIN:-target/release/passerelle}
export PASSERELLE_JWT_HS256_SECRET=bench-secret-bench-secret-bench-secret-0123
export PASSERELLE_LOG=${PASSERELLE_LOG:-warn}
export PASSERELLE_LISTEN="127.0.0.1:${BENCH_PORT}"
# BENCH_JWT=rs256: the measured requests carry an RS256 token, as an identity provider issues
# them (verified against the test JWKS), instead of the HS256 development token; setup keeps HS256.
BENCH_JWT=${BENCH_JWT:-hs256}
if [ "$BENCH_JWT" = rs256 ]; then
  export PASSERELLE_JWT_JWKS=tests/fixtures/keys/jwks.json
fi

bench_setup() {
  mkdir -p "$OUT"
  : >"$OUT/wrk-errors.log"
  if ! command -v wrk >/dev/null; then
    echo "installing wrk…" >&2
    apt-get update -qq >/dev/null
    apt-get install -y -qq wrk >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1 -p "$PGPORT"; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  fi
  cargo build --release --locked -q -p passerelle-api
}

# bench_database postgres|sqlite: a fresh, migrated database; sets PASSERELLE_DATABASE_URL.
bench_database() {
  BENCH_BACKEND=$1
  case "$1" in
    postgres)
      psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS passerelle_bench" \
        -c "CREATE DATABASE passerelle_bench" >/dev/null
      # The database is on this machine: no TLS, as in production on a Unix socket or loopback
      # (the default, `prefer`, would encrypt every round trip since the server offers TLS).
      export PASSERELLE_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/passerelle_bench?sslmode=disable" ;;
    sqlite)
      rm -f "$OUT"/bench.db*
      export PASSERELLE_DATABASE_URL="sqlite://$OUT/bench.db" ;;
  esac
  "$BIN" migrate 2>/dev/null
  if [ "$1" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d passerelle_bench -c "CREATE EXTENSION pg_prewarm" >/dev/null
  fi
}

# bench_prewarm: reads the bench database into the operating system's page cache before a
# measured run. These machines run DAMON's proactive reclaim (`kdamond`), which drops page cache
# left idle for a minute or so: between runs it took back 250 MB of a warm 1.3 GB in 90 s
# (2026-12-03), and a 10 s run, which reads about 3 % of a million people, then waited on the
# disk for the rest (915 checks/s instead of 2,702, perf showing PostgreSQL in `read_pages`).
# A busy production database keeps its working set in memory; the benchmark measures the
# service, not the disk, so it warms the cache before each run, for `/health/ready` too. Into
# PostgreSQL's own buffers when they hold twice the database (a cluster given BENCH_PG_PORT),
# else into the page cache: with 3 GB of buffers, alternating runs at concurrency 16 measured
# ratios 0.45, 0.30 and 0.39 against 0.39, 0.34 and 0.45 for the default 128 MB.
bench_prewarm() {
  case "${BENCH_BACKEND:-}" in
    postgres)
      psql -q -h 127.0.0.1 -U postgres -d passerelle_bench \
        -c "WITH m AS (SELECT CASE WHEN pg_size_bytes(current_setting('shared_buffers'))
              > 2 * pg_database_size(current_database()) THEN 'buffer' ELSE 'read' END AS mode)
            SELECT sum(pg_prewarm(c.oid, m.mode)) FROM m, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 't', 'm')" >/dev/null ;;
    sqlite)
      cat "$OUT"/bench.db* >/dev/null ;;
  esac
}

SERVER_PID=""
bench_start() {
  "$BIN" serve --no-migrate >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -sf "$BASE/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "the service did not start; see $OUT/server.log" >&2
  return 1
}

bench_stop() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

token() { "$BIN" token --org "$1" --scope "$2" --ttl 1d; }

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# measured_token ORG SCOPE: the token of the measured requests (BENCH_JWT), valid for a day.
measured_token() {
  [ "$BENCH_JWT" = rs256 ] || { token "$1" "$2"; return; }
  local now header payload signature
  now=$(date +%s)
  header=$(printf '{"alg":"RS256","typ":"JWT","kid":"test-rs256"}' | b64url)
  payload=$(printf '{"sub":"bench","org":"%s","scope":"%s","iss":"passerelle","aud":"passerelle","exp":%d,"nbf":%d,"iat":%d}' \
    "$1" "$2" $((now + 86400)) "$now" "$now" | b64url)
  signature=$(printf '%s.%s' "$header" "$payload" |
    openssl dgst -sha256 -sign tests/fixtures/keys/rs256.pem -binary | b64url)
  echo "$header.$payload.$signature"
}

# post TOKEN PATH JSON → prints the response body, fails on a non-2xx.
post() {
  curl -sf -X POST "$BASE$2" -H "Authorization: Bearer $1" -H "Content-Type: application/json" -d "$3"
}

# wrk_run CONCURRENCY SCRIPT PATH → "rps p50_ms p99_ms non2xx" (rps counts only good answers)
wrk_run() {
  local c=$1 script=$2 path=$3 threads=2
  [ "$c" -lt 2 ] && threads=1
  wrk -t"$threads" -c"$c" -d"${BENCH_SECONDS}s" --latency -s "$script" "$BASE$path" 2>>"$OUT/wrk-errors.log" |
    awk '
      function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
      /requests in/ { total = $1; secs = $4 + 0 }
      /Non-2xx or 3xx responses/ { bad = $5 }
      /Requests\/sec/ { rps = $2 }
      /^ +50%/ { p50 = ms($2) }
      /^ +99%/ { p99 = ms($2) }
      END { if (secs > 0) rps = (total - bad) / secs; printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad }'
}

# cpu_ticks → "SERVICE POSTGRES": CPU time (user + system, in clock ticks) used so far by the
# service's process and by every PostgreSQL process of this machine (backends, WAL writer,
# checkpointer…; 0 on SQLite, which runs inside the service). Read before and after a run, it
# tells where an answer's CPU goes: `cpu_per_answer`.
cpu_ticks() {
  local svc pg=0
  svc=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
  if [ "${BENCH_BACKEND:-}" = postgres ]; then
    # shellcheck disable=SC2046
    pg=$(cat $(pgrep -x postgres | sed 's|.*|/proc/&/stat|') 2>/dev/null | awk '{s += $14 + $15} END {print s + 0}')
  fi
  echo "$svc $pg"
}

# cpu_per_answer "BEFORE" "AFTER" RPS → "SERVICE_US POSTGRES_US": microseconds of CPU per good
# answer of a run of BENCH_SECONDS at RPS (processes that exited during the run are not counted).
cpu_per_answer() {
  python3 -c "
import os, sys
before, after, rps = sys.argv[1].split(), sys.argv[2].split(), float(sys.argv[3])
tick_us = 1e6 / os.sysconf('SC_CLK_TCK')
answers = max(rps * float(os.environ.get('BENCH_SECONDS', '15')), 1)
print(' '.join(f'{(int(b) - int(a)) * tick_us / answers:.0f}' for a, b in zip(before, after)))" "$1" "$2" "$3"
}
