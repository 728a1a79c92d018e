#!/usr/bin/env bash
# Runs every test: unit, property, storage conformance and black-box HTTP tests, on SQLite and
# on PostgreSQL. PostgreSQL tests fail (never skip) when the server is unreachable, so this
# starts the local cluster first when it is installed but stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url="${PASSERELLE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL…" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi
echo "PostgreSQL tests use ${pg_url%%\?*}" >&2

cargo test --workspace --locked "$@"
