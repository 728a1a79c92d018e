#!/usr/bin/env python3
"""Samples a running Passerelle every INTERVAL seconds (bench/soak/README.md).

Usage: sample.py PID DATABASE_URL RUN_DIR OUT_DIR METRICS_URL [INTERVAL]
  DATABASE_URL: sqlite://FILE or postgres://…/DB (read with sqlite3 / psql).
  RUN_DIR: the service's spool and temp folders live under it (spool/, tmp/).
Writes OUT_DIR/samples.csv (one row a sample) and OUT_DIR/tables.csv (bytes and rows of each
table a sample). Stops when the process is gone.
"""
import os, re, subprocess, sys, time, urllib.request

PID, DB, RUN_DIR, OUT, METRICS = sys.argv[1:6]
INTERVAL = float(sys.argv[6]) if len(sys.argv) > 6 else 30
PG = DB.startswith("postgres")
TABLES = ["audit_events", "audit_queue", "audit_head", "beneficiaries", "ceiling_usage", "claims",
          "contributions", "coverages", "idempotency_keys", "organizations",
          "product_versions", "products", "registration_batch_duplicates", "registration_batch_errors",
          "registration_batches", "settlement_payments", "settlements", "webhook_attempts",
          "webhook_deliveries", "webhook_subscriptions"]


def status_field(name):
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return -1


def sql(query):
    if PG:
        dbname = DB.rsplit("/", 1)[1].split("?")[0]
        out = subprocess.run(["psql", "-Atq", "-h", "127.0.0.1", "-U", "postgres", "-d", dbname, "-F", ",",
                              "-c", query], capture_output=True, text=True, timeout=60).stdout
    else:
        path = DB[len("sqlite://"):].split("?")[0]
        out = subprocess.run(["sqlite3", "-csv", "-readonly", path, query], capture_output=True, text=True,
                             timeout=60).stdout
    return [line.split(",") for line in out.strip().splitlines() if line]


def folder(path):
    files = size = 0
    for root, _, names in os.walk(path):
        for n in names:
            files += 1
            try:
                size += os.path.getsize(os.path.join(root, n))
            except OSError:
                pass
    return files, size


def metric(text, name):
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return m.group(1) if m else ""


def main():
    samples = os.path.join(OUT, "samples.csv")
    tables = os.path.join(OUT, "tables.csv")
    with open(samples, "w") as f:
        f.write("unix_time,elapsed_s,rss_kb,rss_anon_kb,fds,threads,cpu_ticks,db_connections,db_bytes,wal_bytes,"
                "spool_files,spool_bytes,tmp_files,tmp_bytes,outbox_pending_metric,deliveries_pending,"
                "deliveries_failed,deliveries_delivered,audit_queue_rows,audit_events_rows,idempotency_rows,"
                "claims_rows,sample_ms\n")
    with open(tables, "w") as f:
        f.write("unix_time,table,bytes,rows\n")
    start = time.time()
    while os.path.exists(f"/proc/{PID}"):
        t0 = time.time()
        try:
            rss, anon, threads = status_field("VmRSS"), status_field("RssAnon"), status_field("Threads")
            fds = len(os.listdir(f"/proc/{PID}/fd"))
            with open(f"/proc/{PID}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
                cpu = int(st[11]) + int(st[12])
        except (FileNotFoundError, ProcessLookupError):
            break
        rows = {}
        sizes = {}
        counts = ",".join(f"(SELECT count(*) FROM {t})" for t in TABLES)
        r = sql(f"SELECT {counts}")
        if r:
            rows = dict(zip(TABLES, r[0]))
        if PG:
            sz = ",".join(f"pg_total_relation_size('{t}')" for t in TABLES)
            r = sql(f"SELECT {sz}")
            if r:
                sizes = dict(zip(TABLES, r[0]))
            dbname = DB.rsplit("/", 1)[1].split("?")[0]
            conns = sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{dbname}'")[0][0]
            db_bytes = sql("SELECT pg_database_size(current_database())")[0][0]
            wal = sql("SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()")[0][0]
        else:
            path = DB[len("sqlite://"):].split("?")[0]
            conns = len([l for l in os.listdir(f"/proc/{PID}/fd")
                         if os.path.realpath(f"/proc/{PID}/fd/{l}") == os.path.realpath(path)])
            db_bytes = os.path.getsize(path)
            wal = os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
            r = sql("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
            agg = {}
            for name, b in r:
                agg[name] = int(b)
            # indexes fold into their table by the name prefix the migrations use
            idx = sql("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('index','table')")
            owner = dict((n, t) for n, t in idx)
            for name, b in agg.items():
                t = owner.get(name, name)
                sizes[t] = sizes.get(t, 0) + b
        sf, sb = folder(os.path.join(RUN_DIR, "spool"))
        tf, tb = folder(os.path.join(RUN_DIR, "tmp"))
        try:
            text = urllib.request.urlopen(METRICS, timeout=10).read().decode()
        except OSError:
            text = ""
        dl = {}
        for s, n in sql("SELECT status, count(*) FROM webhook_deliveries GROUP BY status"):
            dl[s] = n
        now = int(t0)
        with open(samples, "a") as f:
            f.write(f"{now},{now - int(start)},{rss},{anon},{fds},{threads},{cpu},{conns},{db_bytes},{wal},{sf},{sb},"
                    f"{tf},{tb},{metric(text, 'passerelle_webhook_outbox_pending')},{dl.get('pending', 0)},"
                    f"{dl.get('failed', 0)},{dl.get('delivered', 0)},{rows.get('audit_queue', '')},"
                    f"{rows.get('audit_events', '')},{rows.get('idempotency_keys', '')},{rows.get('claims', '')},"
                    f"{1000 * (time.time() - t0):.0f}\n")
        with open(tables, "a") as f:
            for t in TABLES:
                f.write(f"{now},{t},{sizes.get(t, '')},{rows.get(t, '')}\n")
        time.sleep(max(0, INTERVAL - (time.time() - t0)))


if __name__ == "__main__":
    main()
