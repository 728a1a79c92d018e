#!/usr/bin/env bash
# The bulk registration benchmark (issue 3, Performance): on PostgreSQL, generates a CSV of
# BENCH_ROWS (default 1,000,000) people in households of three (a principal with a national id,
# a spouse and a child without), imports it with `passerelle import` (release build), then, in
# the same run, loads the same file with a plain COPY into a scratch table of the same fourteen
# text columns; and, as a floor, COPY of the rows the import wrote into the service's own tables.
# Prints the rates and their ratios. Usage: BENCH_ROWS=100000 bench/registry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Its own port and database, so that it can run beside the other benchmarks.
BENCH_PORT=${BENCH_PORT:-18081}
source bench/lib.sh
ROWS=${BENCH_ROWS:-1000000}
DB=passerelle_bench_registry
trap bench_stop EXIT

mkdir -p "$OUT"
if ! pg_isready -q -h 127.0.0.1 -p "$PGPORT"; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
cargo build --release --locked -q -p passerelle-api
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
# The database is on this machine: no TLS (see bench/lib.sh).
export PASSERELLE_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/$DB?sslmode=disable"
"$BIN" migrate 2>/dev/null

# The organisation and its product, through the API like any client.
bench_start
post "$(token operator admin)" /v1/organizations \
  '{"id":"bench-mut","kind":"mutuelle","country":"TG","name":"Bench mutuelle"}' >/dev/null
product=$(post "$(token bench-mut registry:write)" /v1/products '{"layer":"complementary","name":"Bench plan",
  "rules":[{"rate_bp":8000}],"annual_ceiling_xof":150000,"waiting_period_days":30,"grace_period_days":30,
  "max_dependants":8,"child_max_age":21,"effective_from":"2025-01-01"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
bench_stop

file="$OUT/registrations-$ROWS.csv"
python3 - "$ROWS" >"$file" <<'PY'
import sys
rows = int(sys.argv[1])
family = ["Agbéko", "Mensah", "Traoré", "Diarra", "Ndiaye", "Sène", "Kpélafia", "Guèye", "Koné", "Amégbé"]
given_m = ["Kossi", "Yao", "Moussa", "Séydou", "Cheikh", "Élom", "Kodjo", "Bakary"]
given_f = ["Akossiwa", "Adjoa", "Aïssata", "Ndèye", "Fatou", "Awa", "Mawuéna", "Kadiatou"]
out = sys.stdout
out.write("household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,"
          "region,district,commune,start_date,paid_through\n")
written = 0
h = 0
while written < rows:
    fam = family[h % len(family)]
    people = [
        ("principal", f"BENCH-{h:07d}", given_m[h % 8] + f" {h}", "M", str(1960 + h % 40),
         f"TG:NIU:9{h:011d}", "Maritime", "Zio", "Zio 1", "2026-01-01", "2026-12-31"),
        ("spouse", "", given_f[h % 8] + f" {h}", "F", str(1965 + h % 35), "", "Maritime", "Zio", "Zio 1", "", ""),
        ("child", "", given_m[(h + 3) % 8] + f" {h}", "M", f"{2008 + h % 17}-0{1 + h % 9}-1{h % 10}", "",
         "", "", "", "", ""),
    ]
    for rel, number, given, sex, birth, nid, region, district, commune, start, paid in people:
        if written == rows:
            break
        out.write(f"H{h},{rel},{number},{fam},{given},{sex},{birth},{nid},,{region},{district},{commune},{start},{paid}\n")
        written += 1
    h += 1
PY
echo "generated $ROWS rows in $file ($(du -h "$file" | cut -f1))" >&2

now() { python3 -c 'import time; print(time.time())'; }

started=$(now)
"$BIN" import "$file" --org bench-mut --product "$product" --lang en
import_s=$(python3 -c "print($(now) - $started)")

psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "DROP TABLE IF EXISTS copy_scratch" -c "CREATE TABLE copy_scratch (
  household TEXT, relationship TEXT, member_number TEXT, family_name TEXT, given_names TEXT, sex TEXT,
  birth_date TEXT, national_id TEXT, phone TEXT, region TEXT, district TEXT, commune TEXT, start_date TEXT,
  paid_through TEXT)"
started=$(now)
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "\\copy copy_scratch FROM '$file' WITH (FORMAT csv, HEADER true)"
copy_s=$(python3 -c "print($(now) - $started)")
copied=$(psql -qtA -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT count(*) FROM copy_scratch")
people=$(psql -qtA -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT count(*) FROM coverages")

# The floor: the very rows the import wrote (people, coverages, audit events), loaded with COPY
# into an empty migrated database, where they meet the same indexes, foreign keys and checks.
# No import of this schema can be faster than that; the distance to the scratch COPY is the
# price of the tables themselves.
FLOOR_DB=${DB}_floor
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $FLOOR_DB" -c "CREATE DATABASE $FLOOR_DB" >/dev/null
PASSERELLE_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/$FLOOR_DB" "$BIN" migrate 2>/dev/null
# (The operator organisation is left out: the service creates it when it starts.)
psql -q -h 127.0.0.1 -U postgres -d "$DB" \
  -c "\\copy (SELECT * FROM organizations WHERE id <> 'operator') TO '$OUT/floor-organizations.tsv'"
for t in products product_versions beneficiaries coverages audit_events; do
  psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "\\copy $t TO '$OUT/floor-$t.tsv'"
done
psql -q -h 127.0.0.1 -U postgres -d "$FLOOR_DB" -c "\\copy organizations FROM '$OUT/floor-organizations.tsv'" \
  -c "\\copy products FROM '$OUT/floor-products.tsv'" -c "\\copy product_versions FROM '$OUT/floor-product_versions.tsv'"
started=$(now)
psql -q -h 127.0.0.1 -U postgres -d "$FLOOR_DB" -c "\\copy beneficiaries FROM '$OUT/floor-beneficiaries.tsv'" \
  -c "\\copy coverages FROM '$OUT/floor-coverages.tsv'" -c "\\copy audit_events FROM '$OUT/floor-audit_events.tsv'"
floor_s=$(python3 -c "print($(now) - $started)")
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE $FLOOR_DB" >/dev/null
rm -f "$OUT"/floor-*.tsv

echo
echo "Bulk registration vs COPY on PostgreSQL, $ROWS rows, $(nproc) cores"
python3 - "$ROWS" "$import_s" "$copy_s" "$people" "$copied" "$floor_s" <<'PY'
import sys
rows, import_s, copy_s, people, copied, floor_s = (int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]),
                                                   int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
imp, cp, fl = rows / import_s, rows / copy_s, rows / floor_s
print(f"passerelle import : {import_s:8.1f} s  {imp:10.0f} rows/s  ({people} coverages)")
print(f"COPY (scratch)    : {copy_s:8.1f} s  {cp:10.0f} rows/s  ({copied} rows)")
print(f"COPY (own tables) : {floor_s:8.1f} s  {fl:10.0f} rows/s  (the import's rows, indexes and keys: the floor)")
print(f"ratio             : {imp / cp:8.1%} of COPY's rate (scratch); {imp / fl:.1%} of the floor's")
print(f"floor             : {fl / cp:8.1%} of COPY's rate (scratch): the best any import into these tables can do")
PY
