#!/usr/bin/env python3
"""Summarises a soak run's CSV files (bench/soak/README.md). Usage: summary.py OUT_DIR [WARMUP_S]"""
import collections, csv, os, sys

OUT = sys.argv[1]
WARMUP = float(sys.argv[2]) if len(sys.argv) > 2 else 300


def rows(name):
    p = os.path.join(OUT, name)
    return list(csv.DictReader(open(p))) if os.path.exists(p) else []


def slope(xs, ys):
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    d = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / d if d else 0.0


s = rows("samples.csv")
t0 = int(s[0]["unix_time"]) if s else 0
steady = [r for r in s if float(r["elapsed_s"]) >= WARMUP] or s
load_end = max((int(r["unix_time"]) for r in rows("load.csv")), default=None)
if load_end:
    steady = [r for r in steady if int(r["unix_time"]) <= load_end] or steady
print(f"samples: {len(s)}, steady (after {WARMUP:.0f} s warm-up, until the load's end): {len(steady)}")
print(f"{'metric':24} {'start':>12} {'end':>12} {'min':>12} {'max':>12} {'slope/10min':>12}")
for col in ("rss_kb", "rss_anon_kb", "fds", "threads", "db_connections", "db_bytes", "wal_bytes", "spool_files",
            "spool_bytes", "tmp_files", "outbox_pending_metric", "deliveries_pending", "deliveries_failed",
            "deliveries_delivered", "audit_queue_rows", "audit_events_rows", "idempotency_rows", "claims_rows"):
    vals = [(float(r["elapsed_s"]), float(r[col])) for r in steady if r.get(col) not in ("", None)]
    if not vals:
        continue
    ys = [v for _, v in vals]
    sl = slope([x for x, _ in vals], ys) * 600
    print(f"{col:24} {ys[0]:12.0f} {ys[-1]:12.0f} {min(ys):12.0f} {max(ys):12.0f} {sl:12.1f}")

# requests
load = rows("load.csv")
tot = collections.Counter()
for r in load:
    tot[(r["kind"], r["status"])] += int(r["count"])
print("\nrequests by kind and status (whole run):")
for (k, st), n in sorted(tot.items()):
    print(f"  {k:26} {st:>4} {n:8}")
total = sum(tot.values())
print(f"  total {total}")
fivexx = collections.Counter()
for r in load:
    if r["status"].startswith("5") or r["status"] == "0":
        fivexx[(int(r["unix_time"]) - t0) // 300] += int(r["count"])
print("5xx or transport errors by 5-minute slot:", dict(sorted(fivexx.items())) or "none")

# latency of each kind by 5-minute slot
lat = collections.defaultdict(list)
for r in load:
    if r["status"][0] in "234":
        lat[(r["kind"], (int(r["unix_time"]) - t0) // 300)].append((int(r["count"]), float(r["mean_ms"])))
kinds = sorted({k for k, _ in lat})
slots = sorted({sl for _, sl in lat})
print("\nmean latency (ms) of each kind by 5-minute slot:")
print(f"  {'kind':26}" + "".join(f"{sl * 5:>5}m" for sl in slots))
for k in kinds:
    line = f"  {k:26}"
    for sl in slots:
        v = lat.get((k, sl))
        line += f"{sum(c * m for c, m in v) / sum(c for c, _ in v):6.1f}" if v else "     -"
    print(line)

# probe
p = rows("probe.csv")
if p:
    pt0 = float(p[0]["unix_time"])
    by = collections.defaultdict(list)
    bad = collections.Counter()
    for r in p:
        slot = int((float(r["unix_time"]) - pt0) // 300)
        by[slot].append(float(r["ms"]))
        if r["status"] != "200":
            bad[slot] += 1
    print("\nprobe (one eligibility check a second): by 5-minute slot")
    print(f"  {'slot':>5} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'non-200':>8}")
    for sl in sorted(by):
        v = sorted(by[sl])
        q = lambda f: v[min(len(v) - 1, int(len(v) * f))]
        print(f"  {sl * 5:>4}m {len(v):5} {q(.5):8.2f} {q(.9):8.2f} {q(.99):8.2f} {v[-1]:8.2f} {bad[sl]:8}")

# table growth over the steady part
tb = rows("tables.csv")
if tb and steady:
    a, b = steady[0]["unix_time"], steady[-1]["unix_time"]
    first = {r["table"]: r for r in tb if r["unix_time"] == a}
    last = {r["table"]: r for r in tb if r["unix_time"] == b}
    secs = int(b) - int(a)
    print(f"\ntables over the steady part ({secs} s): bytes and rows, and bytes per added row")
    print(f"  {'table':30} {'bytes start':>12} {'bytes end':>12} {'rows start':>10} {'rows end':>10} {'B/row':>7}")
    for t in first:
        f, l = first[t], last.get(t)
        if not l or not f["bytes"] or not l["bytes"]:
            continue
        dr = int(l["rows"] or 0) - int(f["rows"] or 0)
        db = int(l["bytes"]) - int(f["bytes"])
        print(f"  {t:30} {int(f['bytes']):12} {int(l['bytes']):12} {f['rows']:>10} {l['rows']:>10} "
              f"{(db / dr if dr else 0):7.0f}")

rc = rows("receiver.csv")
if rc:
    agg = collections.Counter()
    for r in rc:
        agg[(r["path"].split("-")[0], r["status"])] += int(r["count"])
    print("\nreceiver: answers by path and status:", dict(agg))
