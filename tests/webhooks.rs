//! API.md §5 Webhooks: subscriptions, signed deliveries from the outbox, retries, restarts and
//! several replicas. Receivers listen on 127.0.0.1 only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use passerelle_adapters::Backend;
use passerelle_tests::{conformance, on_both_databases, TestApp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::claims::{claim, provider, setup, submit};

#[derive(Clone, Default)]
pub struct Receiver {
    got: Arc<Mutex<Vec<(String, String, String)>>>,
    fail_first: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicUsize>,
    /// Requests whose head was read, answered or not yet.
    arrived: Arc<AtomicUsize>,
    /// Each request's `User-Agent`.
    agents: Arc<Mutex<Vec<String>>>,
    /// Each request's event id and `traceparent` headers (every one, in order).
    traces: Arc<Mutex<Vec<Traced>>>,
}

/// A delivery's event id and the `traceparent` headers it came with.
type Traced = (String, Vec<String>);

/// A minimal HTTP/1.1 receiver: records (event id header, signature header, body), answers 500
/// for the first `fail_first` requests, then 204.
async fn receive_on(listener: TcpListener, r: Receiver) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let r = r.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0_u8; 8192];
            let (head_end, length) = loop {
                let Ok(n) = socket.read(&mut chunk).await else { return };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    break (i + 4, length);
                }
            };
            while buf.len() < head_end + length {
                let Ok(n) = socket.read(&mut chunk).await else { return };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
            r.arrived.fetch_add(1, Ordering::SeqCst);
            r.agents.lock().unwrap().push(header("user-agent"));
            let traceparents = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("traceparent"))
                .map(|(_, v)| v.trim().to_owned())
                .collect();
            r.traces
                .lock()
                .unwrap()
                .push((header("passerelle-event-id"), traceparents));
            let delay = r.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay as u64)).await;
            }
            let failing = r.fail_first.load(Ordering::SeqCst) > 0;
            if failing {
                r.fail_first.fetch_sub(1, Ordering::SeqCst);
            }
            r.got
                .lock()
                .unwrap()
                .push((header("passerelle-event-id"), header("passerelle-signature"), body));
            let status = if failing {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let _ = socket
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                .await;
        });
    }
}

pub async fn receiver() -> (Receiver, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = Receiver::default();
    tokio::spawn(receive_on(listener, r.clone()));
    (r, port)
}

fn fast(config: &mut passerelle_api::config::Config) {
    config.webhook_allow_insecure = true;
    config.webhook_retry_initial = Duration::from_millis(50);
}

async fn subscribe(app: &TestApp, port: u16, events: Value) -> (String, String) {
    let token = app.token("mut-a", "webhooks:write");
    let r = app
        .post(
            "/v1/webhooks",
            &token,
            &json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": events}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    (
        r.json["id"].as_str().unwrap().to_owned(),
        r.json["secret"].as_str().unwrap().to_owned(),
    )
}

impl Receiver {
    /// Requests whose head was read and that are not answered yet.
    fn in_flight(&self) -> usize {
        self.arrived.load(Ordering::SeqCst) - self.got.lock().unwrap().len()
    }
}

pub async fn wait_for(r: &Receiver, n: usize, within: Duration) -> Vec<(String, String, String)> {
    let started = Instant::now();
    while started.elapsed() < within {
        if r.got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = r.got.lock().unwrap().clone();
    // Every delivery is the envelope the OpenAPI document publishes.
    for (_, _, body) in &got {
        let event: Value = serde_json::from_str(body).expect("a delivery's body is JSON");
        if let Err(fault) = conformance::check_schema("WebhookEvent", &event) {
            panic!("undocumented delivery: {fault}");
        }
        // And the body of its type's entry in `webhooks`, whose `data` is that type's resource.
        let kind = event["type"].as_str().unwrap();
        let pointer = format!("/webhooks/{kind}/post/requestBody/content/application~1json/schema");
        if let Err(fault) = conformance::check_at(&pointer, &event) {
            panic!("a {kind} delivery unlike its webhook: {fault}");
        }
    }
    got
}

fn verify(secret: &str, signature: &str, body: &str) -> bool {
    let Some((t, v1)) = signature.split_once(',') else {
        return false;
    };
    let (Some(t), Some(v1)) = (t.strip_prefix("t="), v1.strip_prefix("v1=")) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    hex_lower(&mac.finalize().into_bytes()) == v1
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn one_line(price: i64) -> Value {
    json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": price}])
}

async fn urls_are_checked_without_any_request(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = app.token("mut-a", "webhooks:write");
    for url in [
        "http://127.0.0.1:9/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://localhost/x",
        "https://localhost./x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://198.18.0.1/x",
        "https://printer/x",
        "ftp://example.org/x",
        "not a url",
    ] {
        let r = app
            .post(
                "/v1/webhooks",
                &token,
                &json!({"url": url, "events": ["claim.submitted"]}),
            )
            .await;
        r.problem(422, "validation_failed");
        assert_eq!(r.error_fields(), ["/url"], "{url}");
    }
    let r = app.post("/v1/webhooks", &token, &json!({"url": "https://mutuelle.example.org/hook", "events": ["claim.submitted", "claim.exploded"], "secret": "short"})).await;
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["/events/1", "/secret"]);
    // The bounds count characters, as the message says: sixteen accented letters are 32 bytes
    // of UTF-8 but 16 characters.
    let r = app.post("/v1/webhooks", &token, &json!({"url": "https://mutuelle.example.org/hook", "events": ["claim.submitted"], "secret": "é".repeat(16)})).await;
    assert_eq!(r.error_fields(), ["/secret"]);
    let ok = app
        .post(
            "/v1/webhooks",
            &token,
            &json!({"url": "https://mutuelle.example.org/hook", "events": ["claim.submitted"]}),
        )
        .await;
    assert_eq!(ok.status.as_u16(), 201);
    assert!(ok.json["secret"].as_str().unwrap().len() >= 32);
    let id = ok.json["id"].as_str().unwrap();
    let listed = app.get("/v1/webhooks", &token).await;
    assert!(
        listed.json["items"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    let del = app
        .send(
            app.request(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(del.status.as_u16(), 204);
    let again = app
        .send(
            app.request(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"))
                .bearer_auth(&token),
        )
        .await;
    again.problem(404, "not_found");
}

async fn deliveries_are_signed_and_retried(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    r.fail_first.store(2, Ordering::SeqCst);
    let (sub, secret) = subscribe(&app, port, json!(["claim.submitted"])).await;
    let created = submit(
        &app,
        &provider(&app),
        "w1",
        &claim("W-1", &s.spouse, "2026-06-01", one_line(5000)),
    )
    .await;
    let got = wait_for(&r, 3, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 3, "two failures, then the delivery");
    let (event_id, signature, body) = &got[2];
    assert!(verify(&secret, signature, body), "{signature}");
    let parsed: Value = serde_json::from_str(body).unwrap();
    assert_eq!(parsed["type"], "claim.submitted");
    assert_eq!(&parsed["event_id"], event_id);
    assert_eq!(parsed["organization"], "cms-a");
    assert_eq!(parsed["version"], 1, "a claim's first version");
    assert_eq!(created.json["version"], 1, "as the claim shows it");
    assert_eq!(parsed["data"]["version"], 1);
    assert_eq!(parsed["data"]["id"], created.json["id"]);
    assert_eq!(
        parsed["data"]["totals"], created.json["totals"],
        "the resource as its GET shows it"
    );
    assert!(
        got.iter().all(|(e, _, _)| e == event_id),
        "retries carry the same event id"
    );
    // Named, so that a receiver's firewall that drops requests without a User-Agent lets them in.
    let agents = r.agents.lock().unwrap().clone();
    let expected = format!("passerelle-webhooks/{}", env!("CARGO_PKG_VERSION"));
    assert!(agents.len() >= 3 && agents.iter().all(|a| *a == expected), "{agents:?}");
    let token = app.token("mut-a", "webhooks:write");
    let mut deliveries = app.get(&format!("/v1/webhooks/{sub}/deliveries"), &token).await;
    for _ in 0..40 {
        if deliveries.json["items"][0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        deliveries = app.get(&format!("/v1/webhooks/{sub}/deliveries"), &token).await;
    }
    let d = &deliveries.json["items"][0];
    assert_eq!(d["status"], "delivered", "{}", deliveries.text);
    let codes: Vec<Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(500), json!(204)]);
    // Times in the microseconds every other time of the API has, on both databases.
    for a in d["attempts"].as_array().unwrap() {
        let at = a["at"].as_str().unwrap();
        let fraction = at.split_once('.').map_or("Z", |(_, f)| f);
        assert!(fraction.len() <= 7, "{at}");
    }
    // Another organisation's events are not delivered to mut-b, which reads nothing of it.
    app.get(
        &format!("/v1/webhooks/{sub}/deliveries"),
        &app.token("mut-b", "webhooks:write"),
    )
    .await
    .problem(404, "not_found");
}

async fn deliveries_survive_a_restart(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    // The receiver is down: reserve a port, then free it.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    subscribe(&app, port, json!(["claim.submitted"])).await;
    submit(
        &app,
        &provider(&app),
        "w1",
        &claim("W-1", &s.spouse, "2026-06-01", one_line(5000)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let app = app
        .restart(|c| c.webhook_retry_initial = Duration::from_millis(50))
        .await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let r = Receiver::default();
    tokio::spawn(receive_on(listener, r.clone()));
    let got = wait_for(&r, 1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1, "the undelivered event arrives after the restart");
    drop(app);
}

async fn two_replicas_deliver_each_event_once(backend: Backend) {
    let s = setup(backend).await;
    let a = s.app.restart(fast).await;
    let b = a.replica().await;
    let (r, port) = receiver().await;
    subscribe(&a, port, json!(["claim.submitted"])).await;
    let token = provider(&a);
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        let reply = submit(
            app,
            &token,
            &format!("k{i}"),
            &claim(&format!("R-{i}"), &s.spouse, "2026-06-01", one_line(100)),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    }
    let got = wait_for(&r, 20, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 20);
    assert_eq!(got_after.len(), 20, "nothing delivered twice");
    let mut ids: Vec<&String> = got_after.iter().map(|(e, _, _)| e).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

/// A subscription deleted while one of its deliveries is in flight gets nothing more: the failed
/// attempt is recorded, and not retried.
async fn a_deleted_subscription_gets_no_retry(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    r.delay_ms.store(700, Ordering::SeqCst);
    r.fail_first.store(100, Ordering::SeqCst);
    let (sub, _) = subscribe(&app, port, json!(["claim.submitted"])).await;
    let created = submit(
        &app,
        &provider(&app),
        "d1",
        &claim("D-1", &s.spouse, "2026-06-01", one_line(5000)),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let started = Instant::now();
    while r.arrived.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(r.arrived.load(Ordering::SeqCst), 1, "the first attempt is in flight");
    let deleted = app
        .send(
            app.request(reqwest::Method::DELETE, &format!("/v1/webhooks/{sub}"))
                .bearer_auth(app.token("mut-a", "webhooks:write")),
        )
        .await;
    assert_eq!(deleted.status.as_u16(), 204, "{}", deleted.text);
    assert_eq!(wait_for(&r, 1, Duration::from_secs(5)).await.len(), 1);
    // Retries would come 50 ms after the 500, doubling: well within this wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.arrived.load(Ordering::SeqCst), 1, "nothing more after the deletion");
}

/// A service whose retries wait about 1.5 s, a receiver that fails its first `fails` requests,
/// and a `claim.submitted` subscription of mut-a to it; with the insured spouse of `setup`.
async fn retrying(backend: Backend, fails: usize) -> (String, TestApp, Receiver, String) {
    let s = setup(backend).await;
    let app = s
        .app
        .restart(|c| {
            fast(c);
            c.webhook_retry_initial = Duration::from_millis(1500);
        })
        .await;
    let (r, port) = receiver().await;
    r.fail_first.store(fails, Ordering::SeqCst);
    let (sub, _) = subscribe(&app, port, json!(["claim.submitted"])).await;
    (s.spouse, app, r, sub)
}

/// Submits a claim and waits for its delivery's first attempt to fail and be recorded, its retry
/// due about 1.5 s later; `n` attempts have arrived in all by then.
async fn first_attempt_failed(app: &TestApp, person: &str, r: &Receiver, external: &str, n: usize) {
    let created = submit(
        app,
        &provider(app),
        external,
        &claim(external, person, "2026-06-01", one_line(5000)),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let pending =
        "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND attempts = 1 AND lock_owner IS NULL";
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10)
        && (r.arrived.load(Ordering::SeqCst) < n || app.db.scalar(pending).await != 1)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(r.arrived.load(Ordering::SeqCst), n, "the first attempt failed");
    assert_eq!(app.db.scalar(pending).await, 1, "its retry is scheduled");
}

/// Waits past the retry that is due, and asserts that it never came and that its delivery failed
/// (the worker fails such deliveries every 5 s).
async fn never_retried(app: &TestApp, r: &Receiver, n: usize) {
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(r.arrived.load(Ordering::SeqCst), n, "nothing is sent again");
    let pending = "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'";
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) && app.db.scalar(pending).await != 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.db.scalar(pending).await, 0, "the delivery is failed");
    assert_eq!(r.arrived.load(Ordering::SeqCst), n, "nothing is sent again");
}

/// On PostgreSQL a delivery written while its subscription is deleted can commit after the
/// deletion failed the pending ones: such a delivery (made here by deleting the subscription in
/// the database alone) is failed, never sent, and never signed with the deleted secret.
async fn a_delivery_that_outlived_its_subscription_is_not_sent(backend: Backend) {
    let (spouse, app, r, sub) = retrying(backend, 1).await;
    first_attempt_failed(&app, &spouse, &r, "O-1", 1).await;
    app.db
        .execute(&format!(
            "UPDATE webhook_subscriptions SET deleted_at = '2026-06-01T00:00:00Z', secret = '' WHERE id = '{sub}'"
        ))
        .await;
    never_retried(&app, &r, 1).await;
}

/// The same for an organisation deactivated while the delivery was written (made here by
/// deactivating it in the database alone); and one still pending when it is reactivated is of
/// the time in between, and is not sent either.
async fn deliveries_that_outlived_a_deactivation_are_not_sent(backend: Backend) {
    let (spouse, app, r, sub) = retrying(backend, 2).await;
    let deactivate = "UPDATE organizations SET deactivated_at = '2026-06-01T00:00:00Z' WHERE id = 'mut-a'";
    let reactivate = || async {
        let reply = app
            .send(
                app.request(reqwest::Method::POST, "/v1/organizations/mut-a/reactivate")
                    .bearer_auth(app.operator()),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    };
    first_attempt_failed(&app, &spouse, &r, "O-2", 1).await;
    app.db.execute(deactivate).await;
    never_retried(&app, &r, 1).await;
    reactivate().await;
    first_attempt_failed(&app, &spouse, &r, "O-3", 2).await;
    app.db.execute(deactivate).await;
    reactivate().await;
    never_retried(&app, &r, 2).await;
    // Each delivery lists its own attempts, a page at a time: the failed first try of each.
    let token = app.token("mut-a", "webhooks:write");
    let mut seen = Vec::new();
    let mut path = format!("/v1/webhooks/{sub}/deliveries?limit=1");
    loop {
        let page = app.get(&path, &token).await;
        assert_eq!(page.status.as_u16(), 200, "{}", page.text);
        for d in page.json["items"].as_array().unwrap() {
            assert_eq!(d["status"], "failed", "{d}");
            let codes: Vec<&Value> = d["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a["status_code"])
                .collect();
            assert_eq!(codes, [&json!(500)], "{d}");
            seen.push(d["id"].as_str().unwrap().to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(next) => path = format!("/v1/webhooks/{sub}/deliveries?limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0] > seen[1], "newest first: {seen:?}");
}

async fn a_slow_receiver_never_slows_the_api(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    r.delay_ms.store(3000, Ordering::SeqCst);
    subscribe(&app, port, json!(["claim.submitted"])).await;
    for i in 0..3 {
        let started = Instant::now();
        let reply = submit(
            &app,
            &provider(&app),
            &format!("s{i}"),
            &claim(&format!("S-{i}"), &s.spouse, "2026-06-01", one_line(100)),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
}

async fn coverage_changes_are_announced(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    subscribe(&app, port, json!(["coverage.changed"])).await;
    let token = app.token("mut-a", "registry:read registry:write");
    let listed = app
        .get(&format!("/v1/coverages?beneficiary={}", s.principal), &token)
        .await;
    let coverage = listed.json["items"][0]["id"].as_str().unwrap().to_owned();
    let patched = app
        .send(
            app.request(reqwest::Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .json(&json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(patched.status.as_u16(), 200, "{}", patched.text);
    let reactivated = app
        .send(
            app.request(reqwest::Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(&token)
                .header("if-match", "\"2\"")
                .json(&json!({"status": "active"})),
        )
        .await;
    assert_eq!(reactivated.status.as_u16(), 200, "{}", reactivated.text);
    let got = wait_for(&r, 2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    // Delivered in no set order: the version says which change came last.
    let mut bodies: Vec<Value> = got.iter().map(|g| serde_json::from_str(&g.2).unwrap()).collect();
    bodies.sort_by_key(|b| b["version"].as_u64());
    for (body, (etag, status)) in bodies.iter().zip([
        (patched.header("etag").unwrap(), "suspended"),
        (reactivated.header("etag").unwrap(), "active"),
    ]) {
        assert_eq!(body["type"], "coverage.changed");
        assert_eq!(body["data"]["id"], coverage.as_str());
        assert_eq!(format!("\"{}\"", body["version"]), etag, "the version is the ETag's");
        assert_eq!(body["data"]["status"], status);
        assert_eq!(
            body["data"]["version"], body["version"],
            "the resource as its GET shows it, version included"
        );
    }
}

/// W3C Trace Context, with no traces exported: a delivery passes on the `traceparent` of the
/// request that made the change, at every try, whichever path wrote it (a claim, a coverage's
/// PATCH, a correction sent to the organisations covering the person); a request without one, with
/// one that does not read, or with two, gives its deliveries none.
async fn deliveries_carry_on_their_requests_trace_context(backend: Backend) {
    const CLAIM_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const PATCH_TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    const CORRECTION_TRACE: &str = "00-a3ce929d0e0e47364bf92f3577b34da6-00f067aa0ba902b8-01";
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    // One try fails, so that a retry is among the requests checked.
    r.fail_first.store(1, Ordering::SeqCst);
    subscribe(
        &app,
        port,
        json!(["claim.submitted", "coverage.changed", "beneficiary.changed"]),
    )
    .await;
    let provider = provider(&app);
    let traced_claim = |external: &str, key: &str, traces: &[&str]| {
        let mut request = app
            .request(reqwest::Method::POST, "/v1/claims")
            .bearer_auth(&provider)
            .header("idempotency-key", key)
            .json(&claim(external, &s.spouse, "2026-06-01", one_line(5000)));
        for trace in traces {
            request = request.header("traceparent", *trace);
        }
        app.send(request)
    };
    let claims = [
        (traced_claim("TR-1", "tr1", &[CLAIM_TRACE]).await, Some(CLAIM_TRACE)),
        (traced_claim("TR-2", "tr2", &[]).await, None),
        // An all-zero trace id is invalid; so are upper-case hex digits.
        (
            traced_claim(
                "TR-3",
                "tr3",
                &["00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
            )
            .await,
            None,
        ),
        (
            traced_claim(
                "TR-4",
                "tr4",
                &["00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"],
            )
            .await,
            None,
        ),
        (traced_claim("TR-5", "tr5", &[CLAIM_TRACE, PATCH_TRACE]).await, None),
    ];
    let mut expected: Vec<(Value, Option<&str>)> = Vec::new();
    for (reply, trace) in claims {
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        expected.push((reply.json["id"].clone(), trace));
    }
    let token = app.token("mut-a", "registry:read registry:write");
    let listed = app
        .get(&format!("/v1/coverages?beneficiary={}", s.principal), &token)
        .await;
    let coverage = listed.json["items"][0]["id"].as_str().unwrap().to_owned();
    let patched = app
        .send(
            app.request(reqwest::Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .header("traceparent", PATCH_TRACE)
                .json(&json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(patched.status.as_u16(), 200, "{}", patched.text);
    expected.push((json!(coverage), Some(PATCH_TRACE)));
    let person = app.get(&format!("/v1/beneficiaries/{}", s.principal), &token).await;
    assert_eq!(person.status.as_u16(), 200, "{}", person.text);
    let corrected = app
        .send(
            app.request(reqwest::Method::PATCH, &format!("/v1/beneficiaries/{}", s.principal))
                .bearer_auth(&token)
                .header("if-match", person.header("etag").unwrap())
                .header("traceparent", CORRECTION_TRACE)
                .json(&json!({"phone": "+22890000001"})),
        )
        .await;
    assert_eq!(corrected.status.as_u16(), 200, "{}", corrected.text);
    expected.push((json!(s.principal), Some(CORRECTION_TRACE)));

    // Seven events, one of them tried twice.
    let got = wait_for(&r, 8, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 8, "{got:?}");
    let traces = r.traces.lock().unwrap().clone();
    for (id, trace) in expected {
        let events: Vec<&String> = got
            .iter()
            .filter(|(_, _, body)| serde_json::from_str::<Value>(body).unwrap()["data"]["id"] == id)
            .map(|(event, _, _)| event)
            .collect();
        assert!(!events.is_empty(), "no delivery of {id}");
        let sent: Vec<&Vec<String>> = traces
            .iter()
            .filter(|(event, _)| events.contains(&event))
            .map(|(_, t)| t)
            .collect();
        assert!(!sent.is_empty(), "{id}");
        let want: Vec<String> = trace.into_iter().map(str::to_owned).collect();
        for t in sent {
            assert_eq!(t, &want, "the traceparent of {id}'s delivery");
        }
    }
    let retried = traces.len()
        - traces
            .iter()
            .map(|(e, _)| e)
            .collect::<std::collections::HashSet<_>>()
            .len();
    assert_eq!(retried, 1, "one delivery tried twice: {traces:?}");
}

/// A person's correction goes to the organisations that cover them (and auditors), as their GET
/// shows it; another mutuelle, and one whose coverage of the person ended, hear nothing of it.
async fn corrections_are_announced_to_whoever_covers_the_person(backend: Backend) {
    const INAM_TRACE: &str = "00-5af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01";
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    // mut-b covers someone else.
    let writer_b = app.token("mut-b", "registry:read registry:write");
    let plan_b = app
        .post("/v1/products", &writer_b, &crate::products::family_plan("2026-01-01"))
        .await;
    let other = crate::registry::household(plan_b.json["id"].as_str().unwrap(), "B-1", "987654321098");
    let registered = crate::registry::register(&app, "mut-b", "kb", &other).await;
    assert_eq!(registered.status.as_u16(), 201, "{}", registered.text);
    // It covered the principal too, matched by national id, until it terminated that coverage.
    let mut alone = crate::registry::household(plan_b.json["id"].as_str().unwrap(), "B-2", "123456789012");
    alone["dependants"] = json!([]);
    let joined = crate::registry::register(&app, "mut-b", "kb2", &alone).await;
    assert_eq!(
        joined.json["members"][0]["beneficiary"]["id"],
        s.principal.as_str(),
        "{}",
        joined.text
    );
    let ended = app
        .send(
            app.request(
                reqwest::Method::PATCH,
                &format!(
                    "/v1/coverages/{}",
                    joined.json["members"][0]["coverage"]["id"].as_str().unwrap()
                ),
            )
            .bearer_auth(&writer_b)
            .header("if-match", "\"1\"")
            .json(&json!({"status": "terminated"})),
        )
        .await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
    let mut receivers = Vec::new();
    for org in ["mut-a", "tg-inam", "mut-b", "audit-x"] {
        let (r, port) = receiver().await;
        let made = app
            .post(
                "/v1/webhooks",
                &app.token(org, "webhooks:write"),
                &json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["beneficiary.changed"]}),
            )
            .await;
        assert_eq!(made.status.as_u16(), 201, "{}", made.text);
        receivers.push(r);
    }
    // The scheme corrects the person it shares with mut-a.
    let inam = app.token("tg-inam", "registry:read registry:write");
    let fixed = app
        .send(
            app.request(reqwest::Method::PATCH, &format!("/v1/beneficiaries/{}", s.principal))
                .bearer_auth(&inam)
                .header("if-match", "\"1\"")
                .header("traceparent", INAM_TRACE)
                .json(&json!({"phone": "+22891234567"})),
        )
        .await;
    assert_eq!(fixed.status.as_u16(), 200, "{}", fixed.text);
    let seen_by_a = app
        .get(
            &format!("/v1/beneficiaries/{}", s.principal),
            &app.token("mut-a", "registry:read"),
        )
        .await;
    for (org, r) in ["mut-a", "tg-inam", "audit-x"]
        .iter()
        .zip([&receivers[0], &receivers[1], &receivers[3]])
    {
        let got = wait_for(r, 1, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1, "{org}");
        let body: Value = serde_json::from_str(&got[0].2).unwrap();
        assert_eq!(body["type"], "beneficiary.changed", "{org}");
        // mut-a is not told that the scheme covers the person too; the author and the auditor are.
        let author = if *org == "mut-a" { Value::Null } else { json!("tg-inam") };
        assert_eq!(body["organization"], author, "{org}");
        assert_eq!(body["version"], 2);
        assert_eq!(body["data"], seen_by_a.json, "{org}: the person as GET shows it");
        // Nor is mut-a handed the scheme's trace: a trace id the scheme uses for its other
        // requests too (those whose events name it) would tell mut-a who corrected the person.
        let trace: Vec<String> = if *org == "mut-a" {
            Vec::new()
        } else {
            vec![INAM_TRACE.to_owned()]
        };
        let traces = r.traces.lock().unwrap().clone();
        assert_eq!(traces, vec![(got[0].0.clone(), trace)], "{org}: the traceparent sent");
    }
    // mut-b no longer covers the person: by the time the others were served, nothing came for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receivers[2].got.lock().unwrap().is_empty());
    let for_b = "SELECT count(*) FROM webhook_deliveries d JOIN webhook_subscriptions w ON w.id = d.subscription \
                 WHERE w.organization = 'mut-b'";
    assert_eq!(app.db.scalar(for_b).await, 0);
}

/// A subscription retried with its `Idempotency-Key` is the first one again, secret included:
/// a client whose answer was lost must not end up with two subscriptions, each delivering
/// every event.
async fn a_retried_subscription_creates_nothing_new(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = app.token("mut-a", "webhooks:write");
    let post = |body: Value| {
        app.send(
            app.request(reqwest::Method::POST, "/v1/webhooks")
                .bearer_auth(&token)
                .header("idempotency-key", "hook-1")
                .json(&body),
        )
    };
    let body = json!({"url": "https://mutuelle.example.org/hook", "events": ["claim.submitted"]});
    let first = post(body.clone()).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let again = post(body).await;
    assert_eq!(again.status.as_u16(), 201, "{}", again.text);
    assert_eq!(again.json, first.json);
    assert_eq!(again.header("location"), first.header("location"));
    post(json!({"url": "https://mutuelle.example.org/other", "events": ["claim.submitted"]}))
        .await
        .problem(422, "idempotency_key_reused");
    let listed = app.get("/v1/webhooks", &token).await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1, "{}", listed.text);
    assert_eq!(app.count("webhook_subscriptions").await, 1);
}

/// Submits `n` claims of 100 XOF for `person`, external ids `<prefix>-<i>`; each must be 201.
async fn submit_claims(app: &TestApp, person: &str, prefix: &str, n: usize) {
    let token = provider(app);
    for i in 0..n {
        let body = claim(&format!("{prefix}-{i}"), person, "2026-06-01", one_line(100));
        let reply = submit(app, &token, &format!("{prefix}{i}"), &body).await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    }
}

/// A crash in the middle of sends holds their deliveries, and their receiver's four places, only
/// as long as a send may last (a lease of 15 s for a send of at most 10 s): the service started
/// again delivers them, and what came since, soon after.
async fn a_crash_mid_send_holds_the_receiver_briefly(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    r.delay_ms.store(60_000, Ordering::SeqCst);
    subscribe(&app, port, json!(["claim.submitted"])).await;
    submit_claims(&app, &s.spouse, "X", 4).await;
    let started = Instant::now();
    while r.arrived.load(Ordering::SeqCst) < 4 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(r.arrived.load(Ordering::SeqCst), 4, "four sends hang on the receiver");
    // The workers are aborted as a killed process's would be: the four leases stay behind.
    let app = app.restart(fast).await;
    let restarted = Instant::now();
    r.delay_ms.store(0, Ordering::SeqCst);
    let body = claim("X-4", &s.spouse, "2026-06-01", one_line(100));
    let reply = submit(&app, &provider(&app), "x4", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let got = wait_for(&r, 5, Duration::from_secs(30)).await;
    let mut events: Vec<&str> = got.iter().map(|(e, _, _)| e.as_str()).collect();
    events.sort_unstable();
    events.dedup();
    assert_eq!(events.len(), 5, "the four interrupted events and the new one");
    assert!(
        restarted.elapsed() < Duration::from_secs(22),
        "held past the lease of a send: {:?}",
        restarted.elapsed()
    );
}

/// A receiver that never answers holds a few sends at most (four), and the other receivers'
/// deliveries go out at once, not after its timeouts (ten seconds each).
async fn a_dead_receiver_delays_only_its_own_deliveries(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (dead, dead_port) = receiver().await;
    dead.delay_ms.store(60_000, Ordering::SeqCst);
    let (live, live_port) = receiver().await;
    subscribe(&app, dead_port, json!(["claim.submitted"])).await;
    subscribe(&app, live_port, json!(["claim.submitted"])).await;
    let token = provider(&app);
    let submit_one = |i: usize| {
        let body = claim(&format!("H-{i}"), &s.spouse, "2026-06-01", one_line(100));
        let app = &app;
        let token = &token;
        async move {
            let reply = submit(app, token, &format!("h{i}"), &body).await;
            assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        }
    };
    submit_one(0).await;
    assert_eq!(wait_for(&live, 1, Duration::from_secs(5)).await.len(), 1);
    let started = Instant::now();
    while dead.arrived.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dead.arrived.load(Ordering::SeqCst), 1, "the dead receiver holds a send");

    let started = Instant::now();
    for i in 1..6 {
        submit_one(i).await;
    }
    let got = wait_for(&live, 6, Duration::from_secs(8)).await;
    assert_eq!(got.len(), 6, "every event reached the live receiver");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the live receiver waited for the dead one: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        dead.arrived.load(Ordering::SeqCst),
        4,
        "six events are due to the dead receiver; four sends at most hang on it"
    );
    assert!(dead.got.lock().unwrap().is_empty(), "the dead receiver never answered");
}

/// A receiver that has failed is sent one delivery at a time until it answers again: when it
/// then hangs, it holds one of the replica's send slots, not four, so that a few such receivers
/// cannot take every slot from the healthy ones.
async fn a_failing_receiver_is_sent_one_delivery_at_a_time(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    r.fail_first.store(1_000_000, Ordering::SeqCst);
    subscribe(&app, port, json!(["claim.submitted"])).await;
    submit_claims(&app, &s.spouse, "F", 6).await;
    // Every delivery has failed once (500 at once) and is due again within a few backoffs.
    assert!(
        wait_for(&r, 6, Duration::from_secs(10)).await.len() >= 6,
        "six failed attempts"
    );
    r.delay_ms.store(60_000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(r.in_flight(), 1, "sends held by the failing receiver");
}

/// A receiver that answers again is sent up to four deliveries at once again: the one-at-a-time
/// rule lasts while its last attempt failed, not while an old retry is scheduled.
async fn a_receiver_that_answers_again_gets_four_at_once(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    r.fail_first.store(1, Ordering::SeqCst);
    subscribe(&app, port, json!(["claim.submitted"])).await;
    submit_claims(&app, &s.spouse, "G", 1).await;
    // Refused once, then delivered on its retry.
    assert_eq!(wait_for(&r, 2, Duration::from_secs(10)).await.len(), 2);
    r.delay_ms.store(3_000, Ordering::SeqCst);
    submit_claims(&app, &s.spouse, "K", 6).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(r.in_flight(), 4, "sends in flight to the receiver that answers again");
}

/// A creation replayed after its subscription was deleted does not hand back the deleted
/// subscription's secret, nor create another: 409. The key never kept the secret at all.
async fn a_replay_after_deletion_gets_no_secret(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let token = app.token("mut-a", "webhooks:write");
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["claim.submitted"]});
    let post = || {
        app.send(
            app.request(reqwest::Method::POST, "/v1/webhooks")
                .bearer_auth(&token)
                .header("idempotency-key", "hook-del")
                .json(&body),
        )
    };
    let first = post().await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let id = first.json["id"].as_str().unwrap().to_owned();
    let secret = first.json["secret"].as_str().unwrap().to_owned();
    let kept_with =
        |table: &str, column: &str| format!("SELECT count(*) FROM {table} WHERE {column} LIKE '%{secret}%'");
    assert_eq!(app.db.scalar(&kept_with("idempotency_keys", "response")).await, 0);
    let again = post().await;
    assert_eq!(again.status.as_u16(), 201, "{}", again.text);
    assert_eq!(again.json, first.json, "a replay is the first answer, secret included");

    let deleted = app
        .send(
            app.request(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(deleted.status.as_u16(), 204, "{}", deleted.text);
    let after = post().await;
    after.problem(409, "conflict");
    assert!(!after.text.contains(&secret), "{}", after.text);
    assert!(
        after.json["detail"].as_str().unwrap().contains("Idempotency-Key"),
        "{}",
        after.text
    );
    assert_eq!(
        app.count("webhook_subscriptions").await,
        1,
        "the key creates nothing new"
    );
    assert_eq!(
        app.db.scalar(&kept_with("webhook_subscriptions", "secret")).await,
        0,
        "the deletion erased the secret"
    );
}

/// A deactivated organisation is sent no new event; reactivated, it is sent those that follow.
async fn a_deactivated_organisation_is_sent_nothing_new(backend: Backend) {
    let s = setup(backend).await;
    let app = s.app.restart(fast).await;
    let (r, port) = receiver().await;
    subscribe(&app, port, json!(["claim.submitted"])).await;
    let switch = |action: &str| {
        app.send(
            app.request(reqwest::Method::POST, &format!("/v1/organizations/mut-a/{action}"))
                .bearer_auth(app.operator()),
        )
    };
    // A delivery still being retried when the organisation is deactivated is dropped.
    r.fail_first.store(1000, Ordering::SeqCst);
    let token = provider(&app);
    let queued = submit(
        &app,
        &token,
        "d0",
        &claim("D-0", &s.spouse, "2026-06-01", one_line(5000)),
    )
    .await;
    assert_eq!(queued.status.as_u16(), 201, "{}", queued.text);
    wait_for(&r, 1, Duration::from_secs(10)).await;
    assert_eq!(switch("deactivate").await.status.as_u16(), 200);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
            .await,
        0
    );
    let before = app.count("webhook_deliveries").await;
    r.fail_first.store(0, Ordering::SeqCst);
    r.got.lock().unwrap().clear();
    let quiet = submit(
        &app,
        &token,
        "d1",
        &claim("D-1", &s.spouse, "2026-06-01", one_line(5000)),
    )
    .await;
    assert_eq!(quiet.status.as_u16(), 201, "{}", quiet.text);
    assert_eq!(app.count("webhook_deliveries").await, before);
    assert_eq!(switch("reactivate").await.status.as_u16(), 200);
    let heard = submit(
        &app,
        &token,
        "d2",
        &claim("D-2", &s.spouse, "2026-06-02", one_line(5000)),
    )
    .await;
    assert_eq!(heard.status.as_u16(), 201, "{}", heard.text);
    // (An attempt at the dropped delivery already on its way may still land: look for this one.)
    let started = Instant::now();
    let mut found = false;
    while !found && started.elapsed() < Duration::from_secs(10) {
        found =
            r.got.lock().unwrap().iter().any(|(_, _, body)| {
                serde_json::from_str::<Value>(body).is_ok_and(|b| b["data"]["id"] == heard.json["id"])
            });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "the event after the reactivation is delivered");
    assert_eq!(app.count("webhook_deliveries").await, before + 1);
}

/// Polls a subscription's deliveries until `ready` holds of the page (10 s at most).
async fn deliveries_until(app: &TestApp, query: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let token = app.token("mut-a", "webhooks:write");
    let started = Instant::now();
    loop {
        let page = app.get(query, &token).await;
        assert_eq!(page.status.as_u16(), 200, "{}", page.text);
        if ready(&page.json) || started.elapsed() > Duration::from_secs(10) {
            return page.json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn attempt_codes(delivery: &Value) -> Vec<(u64, Value)> {
    delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].as_u64().unwrap(), a["status_code"].clone()))
        .collect()
}

/// API.md §5 Webhooks: a delivery given up after its last attempt is `failed`, listed with
/// `?status=failed`, and sent again on request, one or many, with the whole retry schedule
/// again and its attempts numbered on; only a failed one, and only by its subscriber.
async fn failed_deliveries_are_sent_again_on_request(backend: Backend) {
    let s = setup(backend).await;
    let app = s
        .app
        .restart(|c| {
            fast(c);
            c.webhook_max_attempts = 2;
        })
        .await;
    let (r, port) = receiver().await;
    r.fail_first.store(4, Ordering::SeqCst);
    let (sub, secret) = subscribe(&app, port, json!(["claim.submitted"])).await;
    let token = app.token("mut-a", "webhooks:write");
    for external in ["R-1", "R-2"] {
        let created = submit(
            &app,
            &provider(&app),
            external,
            &claim(external, &s.spouse, "2026-06-01", one_line(5000)),
        )
        .await;
        assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    }
    let list = format!("/v1/webhooks/{sub}/deliveries");
    let failed = deliveries_until(&app, &format!("{list}?status=failed"), |p| {
        p["items"].as_array().unwrap().len() == 2
    })
    .await;
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "both given up after two attempts: {failed}");
    for d in items {
        assert_eq!(d["status"], "failed");
        assert_eq!(attempt_codes(d), [(1, json!(500)), (2, json!(500))]);
        assert_eq!(d["redelivered_at"], Value::Null);
    }
    // Newest first: the second claim's delivery, then the first's.
    let (second, first) = (items[0]["id"].as_str().unwrap(), items[1]["id"].as_str().unwrap());
    let none = app.get(&format!("{list}?status=pending"), &token).await;
    assert_eq!(none.json["items"], json!([]), "{}", none.text);
    let bad = app.get(&format!("{list}?status=given_up&limit=0"), &token).await;
    let fields: Vec<(&str, &str)> = bad.problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert!(fields.contains(&("/query/status", "unknown_value")), "{}", bad.text);
    assert!(
        fields.iter().any(|(f, _)| *f == "/query/limit"),
        "every fault at once: {}",
        bad.text
    );

    // One, by its id: pending at once, its two attempts kept; the receiver now answers.
    let redeliver = |delivery: &str, org: &str| {
        app.send(
            app.request(
                reqwest::Method::POST,
                &format!("/v1/webhooks/{sub}/deliveries/{delivery}/redeliver"),
            )
            .bearer_auth(app.token(org, "webhooks:write")),
        )
    };
    let other = redeliver(first, "mut-b").await;
    other.problem(404, "not_found");
    redeliver(&format!("{first}x"), "mut-a").await.problem(404, "not_found");
    let again = redeliver(first, "mut-a").await;
    assert_eq!(again.status.as_u16(), 202, "{}", again.text);
    assert_eq!(again.json["status"], "pending");
    assert!(again.json["redelivered_at"].is_string(), "{}", again.text);
    assert!(again.json["next_attempt_at"].is_string(), "{}", again.text);
    assert_eq!(attempt_codes(&again.json), [(1, json!(500)), (2, json!(500))]);
    let got = wait_for(&r, 5, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 5, "the redelivery is sent");
    let (event_id, signature, body) = &got[4];
    assert!(verify(&secret, signature, body), "signed afresh");
    assert_eq!(
        first.split_once(':').map(|(e, _)| e),
        Some(event_id.as_str()),
        "the same event"
    );
    let page = deliveries_until(&app, &format!("{list}?status=delivered"), |p| {
        p["items"].as_array().unwrap().len() == 1
    })
    .await;
    assert_eq!(page["items"][0]["id"], first, "{page}");
    assert_eq!(
        attempt_codes(&page["items"][0]),
        [(1, json!(500)), (2, json!(500)), (3, json!(204))]
    );
    let done = redeliver(first, "mut-a").await;
    assert_eq!(done.problem(409, "conflict")["errors"][0]["code"], "already_delivered");

    // Many: none raised after tomorrow; then every failed one. The receiver fails twice more,
    // which the fresh budget of two attempts absorbs only once: failed again, at attempt 4.
    let many = |query: String| {
        app.send(
            app.request(
                reqwest::Method::POST,
                &format!("/v1/webhooks/{sub}/deliveries/redeliver{query}"),
            )
            .bearer_auth(app.token("mut-a", "webhooks:write")),
        )
    };
    many("?since=yesterday".to_owned())
        .await
        .problem(422, "validation_failed");
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let later = many(format!("?since={tomorrow}")).await;
    assert_eq!(later.status.as_u16(), 202, "{}", later.text);
    assert_eq!(later.json, json!({"redelivered": 0, "next_cursor": null}));
    r.fail_first.store(2, Ordering::SeqCst);
    let unnamed = many(String::new()).await;
    let fault = &unnamed.problem(422, "validation_failed")["errors"][0];
    assert_eq!(
        (&fault["field"], &fault["code"]),
        (&json!("/query/since"), &json!("required"))
    );
    let all = many("?since=1970-01-01".to_owned()).await;
    assert_eq!(all.status.as_u16(), 202, "{}", all.text);
    assert_eq!(all.json, json!({"redelivered": 1, "next_cursor": null}));
    let page = deliveries_until(&app, &format!("{list}?status=failed"), |p| {
        p["items"][0]["attempts"].as_array().is_some_and(|a| a.len() == 4)
    })
    .await;
    assert_eq!(page["items"][0]["id"], second, "{page}");
    assert_eq!(
        attempt_codes(&page["items"][0]),
        [(1, json!(500)), (2, json!(500)), (3, json!(500)), (4, json!(500))],
        "two more attempts, then given up again"
    );
    // While a try is under way the delivery is pending: not sent twice.
    r.delay_ms.store(1500, Ordering::SeqCst);
    let all = many("?since=2026-01-01".to_owned()).await;
    assert_eq!(all.json, json!({"redelivered": 1, "next_cursor": null}), "{}", all.text);
    let started = Instant::now();
    while r.in_flight() == 0 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = redeliver(second, "mut-a").await;
    assert_eq!(busy.problem(409, "conflict")["errors"][0]["code"], "delivery_pending");
    let page = deliveries_until(&app, &format!("{list}?status=delivered"), |p| {
        p["items"].as_array().unwrap().len() == 2
    })
    .await;
    assert_eq!(page["items"][0]["id"], second, "{page}");
    assert_eq!(attempt_codes(&page["items"][0]).last(), Some(&(5, json!(204))));
    assert_eq!(r.got.lock().unwrap().len(), 8, "each try once");
    // Audited, by the subscription, once per request that sent any again.
    let log = app
        .get(
            &format!("/v1/audit-events?resource_type=webhook&resource_id={sub}&action=webhook.redelivered"),
            &app.operator(),
        )
        .await;
    assert_eq!(log.json["items"].as_array().unwrap().len(), 3, "{}", log.text);
}

/// A service with fast retries and mut-a, subscribed to a loopback receiver.
async fn bare(backend: Backend) -> (TestApp, Receiver, String) {
    let app = TestApp::spawn_with(backend, fast).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    app.create_org("mut-b", "mutuelle", "TG").await;
    let (r, port) = receiver().await;
    let (sub, _) = subscribe(&app, port, json!(["claim.submitted"])).await;
    (app, r, sub)
}

/// `n` failed deliveries of `sub`, each tried 12 times, written straight into the database;
/// ids `e1000000001:<sub>`… in the order raised, raised at `at`.
async fn failed_rows(app: &TestApp, sub: &str, first: u64, n: u64, at: &str) {
    let payload =
        format!(r#"{{"resource": "other", "created_at": "{at}", "organization": "mut-a", "data": {{"id": "x"}}}}"#);
    app.db
        .execute(&format!(
            "WITH RECURSIVE k(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM k WHERE i < {last}) \
             INSERT INTO webhook_deliveries (id, subscription, event_id, event_type, payload, status, attempts, \
             next_attempt_at, created_at) \
             SELECT 'e' || (1000000000 + i) || ':{sub}', '{sub}', 'e' || (1000000000 + i), 'claim.submitted', \
             '{payload}', 'failed', 12, '{at}', '{at}' FROM k",
            last = first + n - 1
        ))
        .await;
}

async fn wait_got(r: &Receiver, n: usize, within: Duration) {
    let started = Instant::now();
    while started.elapsed() < within && r.got.lock().unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(app: &TestApp, path: &str, org: &str) -> passerelle_tests::Reply {
    app.send(
        app.request(reqwest::Method::POST, path)
            .bearer_auth(app.token(org, "webhooks:write")),
    )
    .await
}

/// A send under way when the organisation is deactivated leaves its delivery `failed` but
/// still leased. Reactivated, the subscriber asks for it again: the redelivery used to clear
/// the lease of the send still under way, which was then sent a second time at once, and one
/// of the two answers was never recorded. It keeps the lease now.
async fn a_redelivery_does_not_race_the_send_under_way(backend: Backend) {
    let (app, r, sub) = bare(backend).await;
    r.delay_ms.store(2000, Ordering::SeqCst);
    failed_rows(&app, &sub, 1, 1, "2026-06-01T00:00:00+00:00").await;
    app.db
        .execute("UPDATE webhook_deliveries SET status = 'pending', attempts = 0")
        .await;
    let started = Instant::now();
    while r.arrived.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(r.in_flight(), 1, "the first send is under way");
    for action in ["deactivate", "reactivate"] {
        let reply = app
            .send(
                app.request(reqwest::Method::POST, &format!("/v1/organizations/mut-a/{action}"))
                    .bearer_auth(app.operator()),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    }
    let delivery = format!("e1000000001:{sub}");
    let again = post(
        &app,
        &format!("/v1/webhooks/{sub}/deliveries/{delivery}/redeliver"),
        "mut-a",
    )
    .await;
    assert_eq!(again.status.as_u16(), 202, "{}", again.text);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let in_flight = r.in_flight();
    // Let everything settle.
    wait_got(&r, 2, Duration::from_secs(6)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent = r.got.lock().unwrap().len();
    let page = app
        .get(
            &format!("/v1/webhooks/{sub}/deliveries"),
            &app.token("mut-a", "webhooks:write"),
        )
        .await;
    let d = &page.json["items"][0];
    assert!(
        in_flight <= 1,
        "one delivery sent twice at once ({in_flight} in flight)"
    );
    assert_eq!(
        d["attempts"].as_array().unwrap().len(),
        sent,
        "every send's answer is recorded: {d}"
    );
}

/// A redelivery that meets the subscription's deletion answers 202 (before it) or 404
/// (after it), never 409 `delivery_pending` for a delivery that is failed.
async fn a_redelivery_meeting_a_deletion_is_404(backend: Backend) {
    let app = TestApp::spawn_with(backend, fast).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let mut seen = std::collections::BTreeMap::new();
    for round in 0..50 {
        // A closed port: nothing is delivered.
        let (sub, _) = subscribe(&app, 9, json!(["claim.submitted"])).await;
        failed_rows(&app, &sub, round * 10 + 1, 1, "2026-06-01T00:00:00+00:00").await;
        let delivery = format!("e{}:{sub}", 1000000000 + round * 10 + 1);
        let path = format!("/v1/webhooks/{sub}/deliveries/{delivery}/redeliver");
        let delete = app.send(
            app.request(reqwest::Method::DELETE, &format!("/v1/webhooks/{sub}"))
                .bearer_auth(app.token("mut-a", "webhooks:write")),
        );
        let (deleted, again) = tokio::join!(delete, post(&app, &path, "mut-a"));
        assert_eq!(deleted.status.as_u16(), 204, "{}", deleted.text);
        let key = format!("{} {}", again.status.as_u16(), again.json["errors"][0]["code"]);
        *seen.entry(key).or_insert(0) += 1;
    }
    assert!(
        seen.keys().all(|k| k.starts_with("202") || k.starts_with("404")),
        "{seen:?}"
    );
}

/// The creation's `Location` is a resource: its owner reads it there, without the secret;
/// another organisation, and anyone once it is deleted, gets 404.
async fn a_subscription_reads_where_its_location_says(backend: Backend) {
    let app = TestApp::spawn_with(backend, fast).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    app.create_org("mut-b", "mutuelle", "TG").await;
    let token = app.token("mut-a", "webhooks:write");
    let created = app
        .post(
            "/v1/webhooks",
            &token,
            &json!({"url": "http://127.0.0.1:9/hook", "events": ["claim.submitted", "coverage.changed"]}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let location = created.header("location").unwrap().to_owned();
    let read = app.get(&location, &token).await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    let mut expected = created.json.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(read.json, expected, "the creation's answer, without its secret");
    app.get(&location, &app.token("mut-b", "webhooks:write"))
        .await
        .problem(404, "not_found");
    let deleted = app
        .send(app.request(reqwest::Method::DELETE, &location).bearer_auth(&token))
        .await;
    assert_eq!(deleted.status.as_u16(), 204, "{}", deleted.text);
    app.get(&location, &token).await.problem(404, "not_found");
}

/// A pass of bulk redeliveries takes each failed delivery once and ends, even when what it
/// sent fails again at once: here 1,001 deliveries whose stored event does not read, each
/// failed again within moments of being made pending. Each request continues after the last
/// delivery the previous one took (`cursor`), where taking the oldest failed ones again would
/// have gone on for ever.
async fn a_bulk_redelivery_takes_each_failed_delivery_once_a_pass(backend: Backend) {
    let app = TestApp::spawn_with(backend, fast).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let (sub, _) = subscribe(&app, 9, json!(["claim.submitted"])).await;
    failed_rows(&app, &sub, 1, 1001, "2026-06-01T00:00:00+00:00").await;
    app.db
        .execute("UPDATE webhook_deliveries SET payload = 'not an event'")
        .await;
    let path = format!("/v1/webhooks/{sub}/deliveries/redeliver?since=2026-06-01");
    let first = post(&app, &path, "mut-a").await;
    assert_eq!(first.status.as_u16(), 202, "{}", first.text);
    assert_eq!(first.json["redelivered"], 1000, "{}", first.text);
    let cursor = first.json["next_cursor"].as_str().expect("more are left").to_owned();
    // The 1,000 fail again, unsent.
    let failed = "SELECT count(*) FROM webhook_deliveries WHERE status = 'failed'";
    let started = Instant::now();
    while app.db.scalar(failed).await < 1001 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.db.scalar(failed).await, 1001, "failed again");
    // A parameter the route does not read (a tracking tag) leaves the cursor valid.
    let second = post(&app, &format!("{path}&utm_source=x&cursor={cursor}"), "mut-a").await;
    assert_eq!(
        second.json,
        json!({"redelivered": 1, "next_cursor": null}),
        "{}",
        second.text
    );
    // A cursor is bound to its request's `since`.
    let other = post(
        &app,
        &format!("/v1/webhooks/{sub}/deliveries/redeliver?since=2026-05-01&cursor={cursor}"),
        "mut-a",
    )
    .await;
    let fault = &other.problem(422, "validation_failed")["errors"][0];
    assert_eq!(
        (&fault["field"], &fault["code"]),
        (&json!("/query/cursor"), &json!("invalid_cursor"))
    );
}

/// An organisation holds at most 10 live subscriptions: each event is written once per
/// subscription and each hanging receiver holds a send slot, so hundreds of them to a dead
/// receiver slowed every write and kept other organisations' events waiting for hours.
async fn an_organisation_holds_at_most_ten_subscriptions(backend: Backend) {
    let app = TestApp::spawn_with(backend, fast).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    app.create_org("mut-b", "mutuelle", "TG").await;
    let create = |org: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/v1/webhooks",
                &app.token(org, "webhooks:write"),
                &json!({"url": "http://127.0.0.1:9/hook", "events": ["claim.submitted"]}),
            )
            .await
        }
    };
    let mut ids = Vec::new();
    for _ in 0..10 {
        let created = create("mut-a").await;
        assert_eq!(created.status.as_u16(), 201, "{}", created.text);
        ids.push(created.json["id"].as_str().unwrap().to_owned());
    }
    let eleventh = create("mut-a").await;
    eleventh.problem(409, "conflict");
    assert_eq!(
        eleventh.json["errors"][0]["code"], "too_many_subscriptions",
        "{}",
        eleventh.text
    );
    assert_eq!(app.count("webhook_subscriptions").await, 10, "nothing written");
    // Another organisation's are its own; a deletion makes room.
    assert_eq!(create("mut-b").await.status.as_u16(), 201);
    let deleted = app
        .send(
            app.request(reqwest::Method::DELETE, &format!("/v1/webhooks/{}", ids[0]))
                .bearer_auth(app.token("mut-a", "webhooks:write")),
        )
        .await;
    assert_eq!(deleted.status.as_u16(), 204, "{}", deleted.text);
    assert_eq!(create("mut-a").await.status.as_u16(), 201);
}

on_both_databases!(
    an_organisation_holds_at_most_ten_subscriptions,
    a_subscription_reads_where_its_location_says,
    a_bulk_redelivery_takes_each_failed_delivery_once_a_pass,
    failed_deliveries_are_sent_again_on_request,
    a_redelivery_does_not_race_the_send_under_way,
    a_redelivery_meeting_a_deletion_is_404,
    a_deactivated_organisation_is_sent_nothing_new,
    a_dead_receiver_delays_only_its_own_deliveries,
    a_failing_receiver_is_sent_one_delivery_at_a_time,
    a_receiver_that_answers_again_gets_four_at_once,
    a_crash_mid_send_holds_the_receiver_briefly,
    a_replay_after_deletion_gets_no_secret,
    a_retried_subscription_creates_nothing_new,
    coverage_changes_are_announced,
    deliveries_carry_on_their_requests_trace_context,
    corrections_are_announced_to_whoever_covers_the_person,
    urls_are_checked_without_any_request,
    deliveries_are_signed_and_retried,
    deliveries_survive_a_restart,
    two_replicas_deliver_each_event_once,
    a_slow_receiver_never_slows_the_api,
    a_deleted_subscription_gets_no_retry,
    a_delivery_that_outlived_its_subscription_is_not_sent,
    deliveries_that_outlived_a_deactivation_are_not_sent,
);
