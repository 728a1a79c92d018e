//! API.md §5 "Service endpoints": `/metrics` read back through a Prometheus text-format parser.
//! One test in this binary: the recorder is process-wide, so the exact deltas asserted here hold
//! only while no other test makes requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

use std::collections::{BTreeMap, BTreeSet};

use passerelle_adapters::Backend;
use passerelle_tests::{Reply, TestApp};
use prom_text_format_parser::{Metric, Scrape, Type, ValueType};
use reqwest::Method;
use serde_json::{json, Value};

const REQUESTS: &str = "http_requests_total";
const DURATION: &str = "http_request_duration_seconds";
const ELIGIBILITY: &str = "passerelle_eligibility_checks_total";

/// (method, route, status)
type Key = (String, String, String);

fn key(method: &str, route: &str, status: u16) -> Key {
    (method.to_owned(), route.to_owned(), status.to_string())
}

/// One histogram series: cumulative buckets by upper bound, then `_sum` and `_count`.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

#[derive(Debug)]
struct Metrics {
    requests: BTreeMap<Key, f64>,
    durations: BTreeMap<Key, Histogram>,
    eligibility: BTreeMap<String, f64>,
}

impl Metrics {
    fn requests(&self, key: &Key) -> f64 {
        self.requests.get(key).copied().unwrap_or(0.0)
    }

    fn count(&self, key: &Key) -> f64 {
        self.durations.get(key).and_then(|h| h.count).unwrap_or(0.0)
    }

    fn outcome(&self, outcome: &str) -> f64 {
        self.eligibility.get(outcome).copied().unwrap_or(0.0)
    }
}

fn label<'a>(sample: &'a prom_text_format_parser::Sample, name: &str) -> Option<&'a str> {
    sample.labels.iter().find(|l| l.key == name).map(|l| l.value.as_str())
}

fn labels_key(sample: &prom_text_format_parser::Sample) -> Key {
    let get = |name| {
        label(sample, name)
            .unwrap_or_else(|| panic!("{name} label missing: {sample:?}"))
            .to_owned()
    };
    (get("method"), get("route"), get("status"))
}

fn metric<'a>(scrape: &'a Scrape, name: &str) -> Option<&'a Metric> {
    scrape.metrics.iter().find(|m| m.name == name)
}

/// Scrapes `/metrics` (no token), checks the content type, and parses the body strictly: the
/// parser refuses the whole scrape on any malformed line.
async fn scrape(app: &TestApp) -> Metrics {
    let reply = app.send(app.request(Method::GET, "/metrics")).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let parsed = Scrape::parse(&reply.text).unwrap_or_else(|e| panic!("not Prometheus text: {e:?}\n{}", reply.text));

    let mut requests = BTreeMap::new();
    if let Some(m) = metric(&parsed, REQUESTS) {
        assert_eq!(m.kind, Type::Counter, "{REQUESTS} is a counter");
        for sample in &m.samples {
            let previous = requests.insert(labels_key(sample), sample.value.value.as_f64());
            assert!(previous.is_none(), "duplicate series {sample:?}");
        }
    }
    let mut durations: BTreeMap<Key, Histogram> = BTreeMap::new();
    if let Some(m) = metric(&parsed, DURATION) {
        assert_eq!(m.kind, Type::Histogram, "{DURATION} is a histogram");
        for sample in &m.samples {
            let series = durations.entry(labels_key(sample)).or_default();
            let value = sample.value.value.as_f64();
            match sample.value.value_type {
                ValueType::Sample => {
                    let le = label(sample, "le").unwrap_or_else(|| panic!("bucket without le: {sample:?}"));
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    series.buckets.push((le, value));
                }
                ValueType::Sum => series.sum = Some(value),
                ValueType::Count => series.count = Some(value),
            }
        }
    }
    let mut eligibility = BTreeMap::new();
    if let Some(m) = metric(&parsed, ELIGIBILITY) {
        assert_eq!(m.kind, Type::Counter, "{ELIGIBILITY} is a counter");
        for sample in &m.samples {
            let outcome = label(sample, "outcome").unwrap().to_owned();
            eligibility.insert(outcome, sample.value.value.as_f64());
        }
    }
    let metrics = Metrics {
        requests,
        durations,
        eligibility,
    };
    check_histograms(&metrics);
    metrics
}

/// Every latency series: the same bounds, cumulative counts, `+Inf` equal to `_count`, and one
/// series per request-counter series.
fn check_histograms(m: &Metrics) {
    let bounds: BTreeSet<Vec<u64>> = m
        .durations
        .values()
        .map(|h| h.buckets.iter().map(|(le, _)| le.to_bits()).collect())
        .collect();
    assert!(bounds.len() <= 1, "series disagree on bucket bounds: {bounds:?}");
    for (key, h) in &m.durations {
        assert!(h.buckets.len() >= 2, "{key:?}: {h:?}");
        for pair in h.buckets.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{key:?}: bounds not increasing: {h:?}");
            assert!(pair[0].1 <= pair[1].1, "{key:?}: buckets not cumulative: {h:?}");
        }
        let (last_le, last_count) = *h.buckets.last().unwrap();
        assert_eq!(last_le, f64::INFINITY, "{key:?}: no le=\"+Inf\" bucket: {h:?}");
        let count = h.count.unwrap_or_else(|| panic!("{key:?}: no _count"));
        assert_eq!(last_count, count, "{key:?}: le=\"+Inf\" differs from _count");
        let sum = h.sum.unwrap_or_else(|| panic!("{key:?}: no _sum"));
        assert!(sum >= 0.0 && sum.is_finite(), "{key:?}: _sum {sum}");
        assert_eq!(
            count,
            m.requests(key),
            "{key:?}: histogram _count differs from {REQUESTS}"
        );
    }
    let counted: BTreeSet<&Key> = m.requests.keys().collect();
    let timed: BTreeSet<&Key> = m.durations.keys().collect();
    assert_eq!(counted, timed, "counter and histogram series differ");
}

fn family_plan() -> Value {
    json!({
        "layer": "complementary", "name": "Formule famille — Tsévié",
        "rules": [{"care_level": "health_center", "rate_bp": 10000}, {"category": "pharmacy", "rate_bp": 7000}],
        "annual_ceiling_xof": 150000, "waiting_period_days": 90, "grace_period_days": 30,
        "excluded_categories": ["dental"], "max_dependants": 8, "child_max_age": 21,
        "effective_from": "2026-01-01"
    })
}

fn household(product: &str) -> Value {
    json!({
        "product": product, "member_number": "OBS-0001", "start_date": "2026-01-01", "paid_through": "2026-12-31",
        "principal": {"national_id": {"country": "TG", "type": "NIU", "value": "998877665544"},
                      "family_name": "Tchalla", "given_names": "Essowè", "sex": "F", "birth_date": "1979-05-02"},
        "dependants": []
    })
}

async fn check(app: &TestApp, body: Value) -> Reply {
    app.post(
        "/v1/eligibility-checks",
        &app.token("cms-a", "eligibility:check"),
        &body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_eligibility_metrics_move_by_exactly_what_was_asked() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (id, kind) in [("mut-a", "mutuelle"), ("cms-a", "provider")] {
        app.create_org(id, kind, "TG").await;
    }
    let writer = app.token("mut-a", "registry:read registry:write");
    let product = app.post("/v1/products", &writer, &family_plan()).await;
    assert_eq!(product.status.as_u16(), 201, "{}", product.text);
    let registration = app
        .send(
            app.request(Method::POST, "/v1/registrations")
                .bearer_auth(&writer)
                .header("idempotency-key", "obs-1")
                .json(&household(product.json["id"].as_str().unwrap())),
        )
        .await;
    assert_eq!(registration.status.as_u16(), 201, "{}", registration.text);
    let person = registration.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let before = scrape(&app).await;
    let operator = app.operator();
    let mut made: BTreeMap<Key, f64> = BTreeMap::new();
    let mut made_one = |method: &str, route: &str, reply: &Reply| {
        *made.entry(key(method, route, reply.status.as_u16())).or_default() += 1.0;
    };

    for _ in 0..3 {
        let reply = app.get("/v1/organizations/mut-a", &operator).await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        made_one("GET", "/v1/organizations/{id}", &reply);
    }
    for id in ["no-such-org", "nor-this-one"] {
        let reply = app.get(&format!("/v1/organizations/{id}"), &operator).await;
        reply.problem(404, "not_found");
        made_one("GET", "/v1/organizations/{id}", &reply);
    }
    for body in [
        json!({"id": "Not A Slug", "kind": "mutuelle", "country": "TG", "name": "x"}),
        json!({"id": "mut-z", "kind": "bank", "country": "TG", "name": "x"}),
    ] {
        let reply = app.post("/v1/organizations", &operator, &body).await;
        reply.problem(422, "validation_failed");
        made_one("POST", "/v1/organizations", &reply);
    }
    // A path that matches no route is counted under one label, never under its concrete path.
    let unrouted = app.get(&format!("/v1/nowhere/{person}"), &operator).await;
    unrouted.problem(404, "not_found");
    made_one("GET", "unmatched", &unrouted);
    // Any token is a method: one the API does not know is counted as `other`, never under its
    // own name (each would add series for the life of the process).
    for made_up in ["FOO00001", "FOO00002"] {
        let method = Method::from_bytes(made_up.as_bytes()).unwrap();
        let reply = app
            .send(app.request(method, "/v1/organizations/mut-a").bearer_auth(&operator))
            .await;
        reply.problem(405, "method_not_allowed");
        made_one("other", "/v1/organizations/{id}", &reply);
    }

    let eligible = check(
        &app,
        json!({"beneficiary": {"id": person}, "service_date": "2026-06-01", "care_level": "health_center"}),
    )
    .await;
    assert_eq!(eligible.status.as_u16(), 200, "{}", eligible.text);
    assert_eq!(eligible.json["eligible"], true, "{}", eligible.text);
    made_one("POST", "/v1/eligibility-checks", &eligible);
    for date in ["2026-02-01", "2025-12-31"] {
        let not_eligible = check(
            &app,
            json!({"beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "998877665544"}},
                   "service_date": date, "care_level": "health_center"}),
        )
        .await;
        assert_eq!(not_eligible.status.as_u16(), 200, "{}", not_eligible.text);
        assert_eq!(not_eligible.json["eligible"], false, "{}", not_eligible.text);
        made_one("POST", "/v1/eligibility-checks", &not_eligible);
    }
    let unknown = check(
        &app,
        json!({"beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "111122223333"}},
               "service_date": "2026-06-01", "care_level": "health_center"}),
    )
    .await;
    unknown.problem(404, "not_found");
    made_one("POST", "/v1/eligibility-checks", &unknown);
    // The first scrape was itself a request, counted once it had answered.
    *made.entry(key("GET", "/metrics", 200)).or_default() += 1.0;

    let after = scrape(&app).await;

    let moved: BTreeMap<Key, f64> = after
        .requests
        .iter()
        .map(|(k, v)| (k.clone(), v - before.requests(k)))
        .filter(|(_, delta)| *delta != 0.0)
        .collect();
    assert_eq!(moved, made, "{REQUESTS} moved by other than the requests made");
    for (k, n) in &made {
        assert_eq!(after.count(k) - before.count(k), *n, "{DURATION}_count for {k:?}");
    }
    for (k, h) in &after.durations {
        let Some(earlier) = before.durations.get(k) else {
            continue;
        };
        for ((le, now), (le_before, then)) in h.buckets.iter().zip(&earlier.buckets) {
            assert_eq!(le, le_before, "{k:?}: bucket bounds changed between scrapes");
            assert!(now >= then, "{k:?}: bucket le={le} went down from {then} to {now}");
        }
    }
    for (k, _) in after.requests.iter() {
        assert!(
            !k.1.contains(&person) && !k.1.contains("nowhere") && !k.1.contains("no-such-org"),
            "a concrete path became a route label: {k:?}"
        );
        assert!(!k.0.contains("FOO"), "a made-up method became a label: {k:?}");
    }
    let text = app.send(app.request(Method::GET, "/metrics")).await.text;
    assert!(!text.contains("FOO0000"), "a made-up method is in /metrics");

    // The recorder drains its histograms on its own (`install_recorder` leaves that to its
    // caller), not only when scraped: the thread that does it runs.
    #[cfg(target_os = "linux")]
    {
        let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect();
        assert!(
            threads.iter().any(|n| n == passerelle_api::metrics::UPKEEP_THREAD),
            "no metrics upkeep thread among {threads:?}"
        );
    }

    assert_eq!(after.outcome("eligible") - before.outcome("eligible"), 1.0, "{after:?}");
    assert_eq!(
        after.outcome("not_eligible") - before.outcome("not_eligible"),
        2.0,
        "{after:?}"
    );
    // The 404 is a check too, of its own outcome.
    assert_eq!(
        after.outcome("not_found") - before.outcome("not_found"),
        1.0,
        "{after:?}"
    );
    let outcomes: BTreeSet<&String> = after.eligibility.keys().collect();
    assert_eq!(
        outcomes,
        BTreeSet::from([
            &"eligible".to_owned(),
            &"not_eligible".to_owned(),
            &"not_found".to_owned()
        ])
    );
}
