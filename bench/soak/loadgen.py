#!/usr/bin/env python3
"""Steady mixed load for a soak run of Passerelle (bench/soak/README.md). Loopback only.

Usage: loadgen.py BASE_URL OUT_DIR SECONDS [RATE] [RECEIVER_PORT]
  BASE_URL must be http://127.0.0.1:PORT; PASSERELLE_JWT_HS256_SECRET must be the service's.
Sets up its organisations, products, members and webhook subscriptions, then sends about RATE
requests a second (default 40) of a fixed mix from a pool of threads, and one eligibility
check a second on its own connection (the probe). Writes OUT_DIR/load.csv (every 30 s: each
kind and status, its count and latency) and OUT_DIR/probe.csv (every probe).
SOAK_ONLY=kind1,kind2 runs only those kinds (to narrow a growth down).
"""
import base64, collections, datetime, hashlib, hmac, http.client, json, os, random, sys
import threading, time, urllib.parse, uuid

BASE = sys.argv[1]
OUT = sys.argv[2]
SECONDS = float(sys.argv[3])
RATE = float(sys.argv[4]) if len(sys.argv) > 4 else 40.0
RECEIVER_PORT = int(sys.argv[5]) if len(sys.argv) > 5 else 18151
u = urllib.parse.urlsplit(BASE)
assert u.hostname in ("127.0.0.1", "::1"), "loopback only"
HOST, PORT = u.hostname, u.port
SECRET = os.environ["PASSERELLE_JWT_HS256_SECRET"].encode()
RUN = uuid.uuid4().hex[:6]  # keeps ids unique across runs on one database
TODAY = datetime.date.today().isoformat()


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(org, scope, sub=None, ttl=86400):
    now = int(time.time())
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps({"sub": sub or f"soak-{org}", "org": org, "scope": scope, "iss": "passerelle",
                        "aud": "passerelle", "exp": now + ttl, "nbf": now, "iat": now}).encode())
    s = b64(hmac.new(SECRET, f"{h}.{p}".encode(), hashlib.sha256).digest())
    return f"{h}.{p}.{s}"


MUT, SCHEME, CMS, AUD, OP = "soak-mut", "soak-inam", "soak-cms", "soak-aud", "operator"
T = {
    OP: token(OP, "admin registry:read claims:read webhooks:write audit:read"),
    MUT: token(MUT, "registry:read registry:write eligibility:check claims:read claims:adjudicate "
                    "settlements:write webhooks:write audit:read"),
    SCHEME: token(SCHEME, "registry:read registry:write eligibility:check claims:submit claims:read "
                          "webhooks:write audit:read"),
    CMS: token(CMS, "registry:read eligibility:check claims:submit claims:read webhooks:write"),
    AUD: token(AUD, "registry:read claims:read webhooks:write audit:read"),
}

local = threading.local()


def conn():
    c = getattr(local, "c", None)
    if c is None:
        c = local.c = http.client.HTTPConnection(HOST, PORT, timeout=60)
    return c


def req(method, path, org=None, body=None, headers=None, raw=None, tok=None, fresh=False):
    """→ (status, parsed body or None, headers dict, seconds)."""
    h = {"Accept": "application/json"}
    if org or tok:
        h["Authorization"] = "Bearer " + (tok or T[org])
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    for attempt in (0, 1):
        c = http.client.HTTPConnection(HOST, PORT, timeout=60) if fresh else conn()
        t0 = time.perf_counter()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
            dt = time.perf_counter() - t0
            if fresh or r.getheader("connection", "").lower() == "close":
                c.close()
                if not fresh:
                    local.c = None
            try:
                parsed = json.loads(text) if text and text[:1] in b"{[" else None
            except ValueError:
                parsed = None
            return r.status, parsed, {k.lower(): v for k, v in r.getheaders()}, dt
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            c.close()
            local.c = None
            if attempt == 1 or fresh:
                return 0, str(e), {}, time.perf_counter() - t0


# --- statistics ------------------------------------------------------------------------------
lock = threading.Lock()
window = collections.defaultdict(list)  # (kind, status) -> [seconds]


def note(kind, status, dt):
    with lock:
        window[(kind, status)].append(dt)


def flush_forever(stop):
    path = os.path.join(OUT, "load.csv")
    with open(path, "w") as f:
        f.write("unix_time,kind,status,count,mean_ms,p50_ms,p99_ms,max_ms\n")
    while not stop.wait(30):
        with lock:
            w = dict(window)
            window.clear()
        now = int(time.time())
        with open(path, "a") as f:
            for (k, s), v in sorted(w.items(), key=lambda x: (x[0][0], str(x[0][1]))):
                v.sort()
                f.write(f"{now},{k},{s},{len(v)},{1000 * sum(v) / len(v):.2f},{1000 * v[len(v) // 2]:.2f},"
                        f"{1000 * v[min(len(v) - 1, int(len(v) * 0.99))]:.2f},{1000 * v[-1]:.2f}\n")


# --- setup -----------------------------------------------------------------------------------
def must(status, body, *ok):
    if status not in ok:
        raise SystemExit(f"setup: unexpected {status}: {body}")
    return body


def nid():
    return "".join(random.choice("0123456789") for _ in range(12))


def person(i):
    return {"family_name": f"Soak{RUN}", "given_names": f"Membre {i}", "sex": random.choice("FM"),
            "birth_date": f"19{random.randint(50, 99)}-0{random.randint(1, 9)}-1{random.randint(0, 9)}",
            "national_id": {"country": "TG", "type": "NIU", "value": nid()}}


def register(product, number, idem, body=None):
    body = body or {"product": product, "member_number": number, "start_date": "2025-01-01",
                    "paid_through": "2030-12-31", "principal": person(number), "dependants": []}
    s, b, h, dt = req("POST", "/v1/registrations", MUT, body, {"Idempotency-Key": idem})
    return s, b, body, dt


def setup():
    for oid, kind in ((MUT, "mutuelle"), (SCHEME, "scheme"), (CMS, "provider"), (AUD, "auditor")):
        s, b, _, _ = req("POST", "/v1/organizations", OP, {"id": oid, "kind": kind, "country": "TG",
                                                           "name": f"Soak {kind}"},
                         {"Idempotency-Key": f"org-{oid}"})
        must(s, b, 201, 200, 409)
    comp = must(*req("POST", "/v1/products", MUT, {
        "layer": "complementary", "name": f"Soak plan {RUN}", "rules": [{"rate_bp": 8000}],
        "waiting_period_days": 0, "grace_period_days": 30, "effective_from": "2025-01-01"},
        {"Idempotency-Key": f"prod-{RUN}"})[:2], 201)["id"]
    members, coverages = [], []
    for i in range(60):
        s, b, _, _ = register(comp, f"S{RUN}-{i:05d}", f"reg-{RUN}-{i}")
        must(s, b, 201)
        (members if i < 40 else coverages).append((f"S{RUN}-{i:05d}", b["members"][0]["coverage"]["id"]))
    subs = []
    for org, path, events in ((MUT, "/ok", ["claim.submitted", "claim.adjudicated", "claim.cancelled",
                                             "claim.settled", "coverage.changed"]),
                              (CMS, "/flaky", ["claim.submitted", "claim.adjudicated", "claim.settled"]),
                              (AUD, "/fail", ["claim.cancelled", "coverage.changed"]),
                              (CMS, "/timeout", ["claim.cancelled"])):
        b = must(*req("POST", "/v1/webhooks", org, {"url": f"http://127.0.0.1:{RECEIVER_PORT}{path}-{RUN}",
                                                    "events": events},
                      {"Idempotency-Key": f"sub-{RUN}-{path}"})[:2], 201)
        subs.append((org, b["id"]))
    return comp, members, coverages, subs


# --- the mix ---------------------------------------------------------------------------------
class Mix:
    def __init__(self, comp, members, coverages, subs):
        self.comp, self.members, self.coverages, self.subs = comp, members, coverages, subs
        self.regs = []  # (key, body) of registrations sent, for replays
        self.pending_claims = collections.deque(maxlen=2000)
        self.n = 0
        self.nlock = threading.Lock()

    def seq(self):
        with self.nlock:
            self.n += 1
            return self.n

    def check_body(self, number):
        return {"beneficiary": {"organization": MUT, "member_number": number}, "service_date": TODAY,
                "care_level": "health_center", "category": "consultation", "amount_xof": 10000}

    def eligibility(self):
        s, *_, dt = req("POST", "/v1/eligibility-checks", CMS, self.check_body(random.choice(self.members)[0]))
        return s, dt

    def eligibility_fresh_token(self):
        # A new valid token each time, as short-lived tokens from an identity provider are.
        tok = token(CMS, "eligibility:check", sub=f"desk-{uuid.uuid4().hex}")
        s, *_, dt = req("POST", "/v1/eligibility-checks", None, self.check_body(random.choice(self.members)[0]), tok=tok)
        return s, dt

    def claim(self):
        n = self.seq()
        body = {"external_id": f"SK-{RUN}-{n}", "provider": CMS,
                "beneficiary": {"organization": MUT, "member_number": random.choice(self.members)[0]},
                "service_date": TODAY, "care_level": "health_center",
                "lines": [{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 5000},
                          {"code": "LAB", "category": "laboratory", "quantity": 2, "unit_price_xof": 1750}]}
        s, b, _, dt = req("POST", "/v1/claims", CMS, body, {"Idempotency-Key": f"claim-{RUN}-{n}"})
        if s == 201 and isinstance(b, dict):
            self.pending_claims.append((b["id"], [ln["line"] for ln in b.get("lines", [])]))
        return s, dt

    def claim_next_step(self):
        try:
            cid, lines = self.pending_claims.popleft()
        except IndexError:
            return None
        if random.random() < 0.3:
            s, *_, dt = req("POST", f"/v1/claims/{cid}/cancel", CMS)
            return s, dt, "claim_cancel"
        s, *_, dt = req("POST", f"/v1/claims/{cid}/adjudication", MUT,
                        {"lines": [{"line": ln, "decision": "accept"} for ln in lines]})
        return s, dt, "claim_adjudicate"

    def settle(self):
        s, b, _, dt = req("POST", "/v1/settlements", MUT, {"payee": CMS, "period_start": "2026-01-01",
                                                          "period_end": "2026-12-31"})
        if s != 201 or not isinstance(b, dict) or b.get("status") == "paid":
            return s, dt
        s2, b2, _, dt2 = req("POST", f"/v1/settlements/{b['id']}/payments", MUT,
                             {"amount_xof": b["total_xof"], "paid_at": TODAY, "reference": f"PAY-{RUN}-{self.seq()}"})
        note("settlement_payment", s2, dt2)
        return s, dt

    def registration_new(self):
        n = self.seq()
        key = f"reg-{RUN}-new-{n}"
        s, b, body, dt = register(self.comp, f"N{RUN}-{n:07d}", key)
        if s == 201:
            with self.nlock:
                self.regs.append((key, body))
        return s, dt

    def registration_replay(self):
        with self.nlock:
            if not self.regs:
                return None
            key, body = random.choice(self.regs[-500:])
        s, b, _, dt = register(self.comp, None, key, body)
        return s, dt

    def coverage_change(self):
        number, cov = random.choice(self.coverages)
        s, b, h, dt = req("GET", f"/v1/coverages/{cov}", MUT)
        if s != 200:
            return s, dt
        new = "suspended" if b["status"] == "active" else "active"
        s, b, _, dt2 = req("PATCH", f"/v1/coverages/{cov}", MUT, None,
                           {"If-Match": h.get("etag", "*"), "Content-Type": "application/merge-patch+json"},
                           raw=json.dumps({"status": new}).encode())
        return s, dt + dt2

    def audit_read(self):
        org = random.choice((AUD, MUT))
        s, *_, dt = req("GET", "/v1/audit-events?limit=50", org)
        return s, dt

    def webhook_deliveries_read(self):
        org, sid = random.choice(self.subs)
        s, *_, dt = req("GET", f"/v1/webhooks/{sid}/deliveries?limit=20", org)
        return s, dt

    def claims_list(self):
        s, *_, dt = req("GET", "/v1/claims?limit=20", random.choice((CMS, MUT)))
        return s, dt

    def bulk_csv(self):
        n = self.seq()
        rows = ["household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,"
                "phone,region,district,commune,start_date,paid_through"]
        for hh in range(3):
            rows.append(f"h{hh},principal,B{RUN}-{n}-{hh},Bulk{RUN},Chef {hh},M,1980-05-0{hh + 1},TG:NIU:{nid()},"
                        f",Maritime,Zio,Tsevie,2025-01-01,2030-12-31")
            rows.append(f"h{hh},child,,Bulk{RUN},Enfant {hh},F,2015,,,,,,,")
        s, *_, dt = req("POST", f"/v1/registrations/batches?product={self.comp}", MUT, None,
                        {"Idempotency-Key": f"bulk-{RUN}-{n}", "Content-Type": "text/csv"},
                        raw=("\n".join(rows) + "\n").encode())
        return s, dt

    def bad_401(self):
        if random.random() < 0.5:
            s, *_, dt = req("GET", "/v1/claims?limit=5")
        else:
            forged = token(CMS, "claims:read", sub=f"x-{uuid.uuid4().hex}")[:-4] + "AAAA"
            s, *_, dt = req("GET", "/v1/claims?limit=5", tok=forged)
        return s, dt

    def bad_404(self):
        s, *_, dt = req("GET", f"/v1/claims/{uuid.uuid4()}", CMS)
        return s, dt

    def bad_422(self):
        body = self.check_body(random.choice(self.members)[0])
        body["care_level"] = "nowhere"
        s, *_, dt = req("POST", "/v1/eligibility-checks", CMS, body)
        return s, dt

    def bad_413(self):
        body = self.check_body("X")
        body["pad"] = "x" * (1100 * 1024)
        s, *_, dt = req("POST", "/v1/eligibility-checks", CMS, body, fresh=True)
        return s, dt


WEIGHTS = {
    "eligibility": 30, "eligibility_fresh_token": 4, "claim": 14, "claim_next_step": 12,
    "registration_new": 4, "registration_replay": 3, "coverage_change": 4, "audit_read": 4,
    "webhook_deliveries_read": 2, "claims_list": 3, "bulk_csv": 0.5,
    "bad_401": 3, "bad_404": 2, "bad_422": 2, "bad_413": 0.5,
}


def worker(mix, stop, kinds, weights, per_thread_rate):
    period = 1.0 / per_thread_rate
    nxt = time.monotonic()
    while not stop.is_set():
        kind = random.choices(kinds, weights)[0]
        out = getattr(mix, kind)()
        if out is not None:
            if len(out) == 3:
                kind = out[2]
            note(kind, out[0], out[1])
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        elif delay < -5:
            nxt = time.monotonic()  # fell behind: do not burst to catch up


def settler(mix, stop):
    while not stop.wait(15):
        s, dt = mix.settle()
        note("settlement", s, dt)


def probe(mix, stop):
    path = os.path.join(OUT, "probe.csv")
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    number = mix.members[0][0]
    body = json.dumps(mix.check_body(number)).encode()
    h = {"Authorization": "Bearer " + T[CMS], "Content-Type": "application/json"}
    with open(path, "w") as f:
        f.write("unix_time,status,ms\n")
        while not stop.wait(1):
            t0 = time.perf_counter()
            try:
                c.request("POST", "/v1/eligibility-checks", body=body, headers=h)
                r = c.getresponse()
                r.read()
                st = r.status
            except (ConnectionError, http.client.HTTPException, OSError):
                c.close()
                c = http.client.HTTPConnection(HOST, PORT, timeout=30)
                st = 0
            f.write(f"{time.time():.1f},{st},{1000 * (time.perf_counter() - t0):.2f}\n")
            f.flush()


def main():
    os.makedirs(OUT, exist_ok=True)
    comp, members, coverages, subs = setup()
    mix = Mix(comp, members, coverages, subs)
    only = os.environ.get("SOAK_ONLY")
    weights = {k: v for k, v in WEIGHTS.items() if not only or k in only.split(",")}
    stop = threading.Event()
    threads = [threading.Thread(target=flush_forever, args=(stop,)),
               threading.Thread(target=probe, args=(mix, stop))]
    if not only or "settlement" in only.split(","):
        threads.append(threading.Thread(target=settler, args=(mix, stop)))
    n = 8
    if weights:
        for _ in range(n):
            threads.append(threading.Thread(target=worker, args=(mix, stop, list(weights), list(weights.values()), RATE / n)))
    for t in threads:
        t.start()
    print(f"load: run {RUN}, {RATE}/s, kinds {','.join(weights)}", flush=True)
    try:
        time.sleep(SECONDS)
    except KeyboardInterrupt:
        pass
    stop.set()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
