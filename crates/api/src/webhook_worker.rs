//! Delivers the outbox: leases due deliveries, POSTs them signed, records each attempt and
//! schedules retries. Runs beside the API on every replica; leases keep replicas apart, and a
//! slow or dead receiver delays its own deliveries, not others': sends run side by side in a
//! fixed number of slots, a free slot is filled at once, no subscription holds more than a few,
//! and one that is failing (its last attempt failed) holds one. Only more receivers
//! hanging at once than there are slots would make the others wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use passerelle_adapters::webhook_delivery::{HttpSender, SEND_TIMEOUT};
use passerelle_domain::claim::Claim;
use passerelle_domain::ports::{AttemptOutcome, SignedPost, WebhookSender};
use passerelle_domain::webhook::{next_attempt, Attempt, DueDelivery};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

use crate::routes::claims::ClaimView;
use crate::routes::registry::{BeneficiaryView, CoverageView};
use crate::routes::webhooks::BeneficiaryErasureView;
use crate::state::AppState;
use passerelle_domain::beneficiary::Beneficiary;
use passerelle_domain::coverage::Coverage;
use passerelle_domain::retention::ErasedRecord;

/// Sends in flight on one replica.
const SLOTS: usize = 64;
/// Sends in flight to one subscription, over every replica: a receiver that hangs holds this
/// many slots at most, however many of its deliveries are due, and one only once it has failed
/// (`lease_deliveries`).
const PER_SUBSCRIPTION: u32 = 4;
/// How long a leased delivery is another worker's: its send (at most [`SEND_TIMEOUT`], started at
/// once) and the recording of its outcome. A worker that dies mid-send (a crash) holds its
/// deliveries, and its receivers' places under [`PER_SUBSCRIPTION`], no longer than this.
const LEASE: Duration = Duration::from_secs(15);
const _: () = assert!(
    LEASE.as_secs() >= SEND_TIMEOUT.as_secs() + 5,
    "a lease outlasts its send"
);
/// How often an idle worker looks for due deliveries.
const POLL: Duration = Duration::from_millis(200);
/// How often a worker fails the deliveries no lease takes (`fail_orphaned_deliveries`) and reads
/// the outbox gauge.
const HOUSEKEEPING: Duration = Duration::from_secs(5);

/// `t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable_hmac());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(b"0") {
        Ok(m) => m,
        Err(_) => std::process::abort(),
    }
}

/// A stored event that no longer reads (written by an older version, or damaged). Says where,
/// never what: the payload holds a claim or a coverage, personal data that must not reach logs.
#[derive(Debug, PartialEq, Eq)]
pub struct Unreadable {
    part: &'static str,
    position: Option<(usize, usize)>,
}

impl Unreadable {
    fn missing(part: &'static str) -> Unreadable {
        Unreadable { part, position: None }
    }

    fn at(part: &'static str, e: &serde_json::Error) -> Unreadable {
        Unreadable {
            part,
            position: Some((e.line(), e.column())),
        }
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, column)) => write!(
                f,
                "the stored event's {} does not read (line {line}, column {column})",
                self.part
            ),
            None => write!(f, "the stored event has no {}", self.part),
        }
    }
}

/// The body a receiver gets: `{event_id, type, created_at, organization, version, data}`, `data`
/// being the resource as its GET shows it and `version` the resource's version after the change,
/// by which a receiver orders the events of one resource. An event whose stored form does not
/// read is never sent with a made-up part (`data: null` would be taken for the resource).
pub fn envelope(d: &DueDelivery) -> Result<Vec<u8>, Unreadable> {
    let stored: Value = serde_json::from_str(&d.payload).map_err(|e| Unreadable::at("payload", &e))?;
    let (data, version) = match stored["resource"].as_str() {
        Some("claim") => as_viewed::<Claim, ClaimView>(&stored["data"], |c| c.version)?,
        Some("coverage") => as_viewed::<Coverage, CoverageView>(&stored["data"], |c| c.version)?,
        Some("beneficiary") => as_viewed::<Beneficiary, BeneficiaryView>(&stored["data"], |b| b.version)?,
        Some("beneficiary_erasure") => {
            as_viewed::<ErasedRecord, BeneficiaryErasureView>(&stored["data"], |r| r.version)?
        }
        _ => (stored["data"].clone(), None),
    };
    if data.is_null() {
        return Err(Unreadable::missing("data"));
    }
    // A person's correction is sent to another organisation that covers them without its
    // author (`null`): who else covers the person is not that organisation's to know.
    let author_withheld = stored["resource"] == "beneficiary" && stored["organization"].is_null();
    for part in ["created_at", "organization"] {
        let withheld = part == "organization" && author_withheld;
        if !withheld && !stored[part].is_string() {
            return Err(Unreadable::missing(part));
        }
    }
    let mut body = serde_json::json!({
        "event_id": d.event_id,
        "type": d.event_type,
        "created_at": stored["created_at"],
        "organization": stored["organization"],
        "data": data,
    });
    if let Some(version) = version {
        body["version"] = version.into();
    }
    serde_json::to_vec(&body).map_err(|e| Unreadable::at("body", &e))
}

/// The stored resource `T` as its GET shows it, `V`, with its version.
fn as_viewed<T: DeserializeOwned, V: From<T> + Serialize>(
    data: &Value,
    version: fn(&T) -> u32,
) -> Result<(Value, Option<u32>), Unreadable> {
    let resource = T::deserialize(data).map_err(|e| Unreadable::at("data", &e))?;
    let version = version(&resource);
    let view = serde_json::to_value(V::from(resource)).map_err(|e| Unreadable::at("data", &e))?;
    Ok((view, Some(version)))
}

/// A running worker: its task, and the switch that stops its leasing.
pub struct Worker {
    task: JoinHandle<()>,
    stop: StopSwitch,
}

/// Stops a worker's leasing; the sends in flight go on (see [`Worker::finished`]).
#[derive(Clone)]
pub struct StopSwitch(Arc<watch::Sender<bool>>);

impl StopSwitch {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Worker {
    /// Takes no new lease; the sends in flight go on (see [`Worker::finished`]).
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// The switch alone, for whoever stops the worker while another waits for it.
    pub fn stop_switch(&self) -> StopSwitch {
        self.stop.clone()
    }

    /// Ends the worker and its sends at once, as a process exit would.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Waits until a stopped worker's sends in flight have recorded their attempts, at most
    /// `limit`. False when some were still running: they are abandoned, and their leases expire
    /// for another replica to send them again (a receiver may then get one of them twice).
    pub async fn finished(mut self, limit: Duration) -> bool {
        if tokio::time::timeout(limit, &mut self.task).await.is_ok() {
            return true;
        }
        self.task.abort();
        false
    }
}

pub fn start(state: AppState) -> Option<Worker> {
    let sender = match HttpSender::new(state.config.webhook_allow_insecure) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; deliveries stay queued");
            return None;
        }
    };
    let owner = format!("worker-{}", uuid::Uuid::new_v4().simple());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(state, sender, owner, stopped));
    Some(Worker {
        task,
        stop: StopSwitch(Arc::new(stop)),
    })
}

async fn run(state: AppState, sender: Arc<dyn WebhookSender>, owner: String, mut stopped: watch::Receiver<bool>) {
    let owner: Arc<str> = owner.into();
    // Dropped with this task, which aborts the sends: a worker aborted outright sends nothing more.
    let mut sends = JoinSet::new();
    let mut last_gauge = Instant::now() - Duration::from_secs(60);
    // While the database is out of reach, leasing fails five times a second: said when it
    // starts, then once a minute, and when it ends.
    let mut failing_since: Option<Instant> = None;
    let mut last_warning = Instant::now();
    loop {
        if *stopped.borrow() {
            break;
        }
        while sends.try_join_next().is_some() {}
        let free = SLOTS - sends.len();
        if free > 0 {
            match lease(&state, &owner, free).await {
                Ok(due) => {
                    if let Some(since) = failing_since.take() {
                        tracing::info!(
                            after_seconds = since.elapsed().as_secs(),
                            "webhook worker leases deliveries again"
                        );
                    }
                    for d in due {
                        sends.spawn(deliver(state.clone(), sender.clone(), owner.clone(), d));
                    }
                }
                Err(e) => {
                    if failing_since.is_none() || last_warning.elapsed() >= Duration::from_secs(60) {
                        tracing::warn!(error = %e, "webhook worker could not lease deliveries");
                        last_warning = Instant::now();
                    }
                    failing_since.get_or_insert_with(Instant::now);
                }
            }
        }
        if last_gauge.elapsed() >= HOUSEKEEPING {
            // Never leased, they would stay pending for ever and count in the gauge.
            match state.store.fail_orphaned_deliveries().await {
                Ok(0) | Err(_) => {}
                Ok(n) => tracing::info!(
                    failed = n,
                    "webhook deliveries of deleted subscriptions or deactivated organisations failed unsent"
                ),
            }
            if let Ok(n) = state.store.pending_deliveries().await {
                metrics::gauge!("passerelle_webhook_outbox_pending").set(n as f64);
            }
            last_gauge = Instant::now();
        }
        // Lease again as soon as a slot frees, or after a pause while slots stay free (nothing
        // was due, or only deliveries of subscriptions at their cap); and wake for the next
        // reading of the gauge, also while every slot waits on a receiver that hangs.
        let housekeeping = last_gauge + HOUSEKEEPING;
        tokio::select! {
            Some(_) = sends.join_next(), if !sends.is_empty() => {}
            () = tokio::time::sleep(POLL), if sends.len() < SLOTS => {}
            () = tokio::time::sleep_until(housekeeping.into()) => {}
            changed = stopped.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    while sends.join_next().await.is_some() {}
}

/// The time an attempt is recorded at, in the microseconds both databases keep: SQLite would
/// otherwise store and answer nanoseconds, PostgreSQL microseconds.
fn now() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

async fn lease(state: &AppState, owner: &str, free: usize) -> Result<Vec<DueDelivery>, String> {
    let now = now();
    let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let limit = u32::try_from(free).unwrap_or(u32::MAX);
    state
        .store
        .lease_deliveries(owner, now, lease_until, limit, PER_SUBSCRIPTION)
        .await
        .map_err(|e| e.to_string())
}

async fn deliver(state: AppState, sender: Arc<dyn WebhookSender>, owner: Arc<str>, d: DueDelivery) {
    // A client span per try, the child of the request that made the change when its trace was
    // stored with the delivery; its `traceparent` goes with the request, so that the receiver's
    // trace joins in. Only the receiver's host is recorded: a path or query may hold its secret.
    let url = reqwest::Url::parse(&d.url).ok();
    // An IPv6 literal without its brackets, as the conventions write an address.
    let host = url
        .as_ref()
        .and_then(|u| u.host_str())
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .unwrap_or_default();
    let port = url
        .as_ref()
        .and_then(reqwest::Url::port_or_known_default)
        .map_or(0, i64::from);
    let span = tracing::info_span!(
        "webhook.delivery",
        otel.name = "POST",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
        http.request.method = "POST",
        http.response.status_code = tracing::field::Empty,
        server.address = %host,
        server.port = port,
        passerelle.webhook.event_type = %d.event_type,
        passerelle.webhook.attempt = i64::from(d.attempts.saturating_add(1)),
    );
    let traceparent = crate::telemetry::delivery_traceparent(&span, stored_traceparent(&d.payload).as_deref());
    let outcome = send(&state, sender.as_ref(), &d, traceparent)
        .instrument(span.clone())
        .await;
    if let Some(status) = outcome.attempt.status_code {
        span.record("http.response.status_code", i64::from(status));
    }
    if !outcome.delivered {
        span.record("otel.status_code", "ERROR");
        // The conventions' `error.type`: the answer's status, or what stopped the try.
        let error = match (outcome.attempt.status_code, outcome.attempt.error.as_deref()) {
            (Some(status), _) => status.to_string(),
            (None, Some("timeout")) => "timeout".to_owned(),
            _ => "_OTHER".to_owned(),
        };
        span.record("error.type", error.as_str());
    }
    if let Err(e) = state.store.record_attempt(&d.id, &owner, &outcome).await {
        tracing::warn!(error = %e, "cannot record a webhook attempt");
    }
}

/// The `traceparent` stored with a delivery's event (`outbox_payload`), if any.
fn stored_traceparent(payload: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Stored {
        traceparent: Option<String>,
    }
    serde_json::from_str::<Stored>(payload).ok()?.traceparent
}

async fn send(
    state: &AppState,
    sender: &dyn WebhookSender,
    d: &DueDelivery,
    traceparent: Option<String>,
) -> AttemptOutcome {
    let started = Instant::now();
    let at = now();
    let body = match envelope(d) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(delivery = %d.id, error = %e, "a stored webhook event does not read; given up unsent");
            return given_up_unsent(d, at, &e);
        }
    };
    let post = SignedPost {
        url: d.url.clone(),
        event_id: d.event_id.clone(),
        signature: signature(&d.secret, at.timestamp(), &body),
        traceparent,
        body,
    };
    let result = sender.send(post).await;
    let attempt_no = d.attempts + 1;
    // A redelivered delivery starts the schedule again: its place in it, not its number.
    let scheduled = d.scheduled_attempt();
    let (status_code, error, delivered) = match result {
        Ok(status) => (Some(status), None, (200..300).contains(&status)),
        Err(e) => (None, Some(e), false),
    };
    // 1000–1200 ‰: retries spread out, never earlier than the configured delay.
    let jitter = 1000 + u32::from(uuid::Uuid::new_v4().as_bytes()[0]) * 200 / 255;
    let initial = chrono::Duration::from_std(state.config.webhook_retry_initial).unwrap_or_default();
    let retry_at = if delivered {
        None
    } else {
        next_attempt(now(), scheduled, state.config.webhook_max_attempts, initial, jitter)
    };
    AttemptOutcome {
        attempt: Attempt {
            attempt: attempt_no,
            at,
            status_code,
            error,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
        delivered,
        retry_at,
        sent: true,
    }
}

/// A delivery whose event does not read fails for good: another try would read the same bytes.
/// The attempt is recorded, so that the subscriber sees why in its deliveries.
fn given_up_unsent(d: &DueDelivery, at: DateTime<Utc>, e: &Unreadable) -> AttemptOutcome {
    AttemptOutcome {
        attempt: Attempt {
            attempt: d.attempts + 1,
            at,
            status_code: None,
            error: Some(format!("not sent: {e}")),
            duration_ms: 0,
        },
        delivered: false,
        retry_at: None,
        sent: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body sent is the `WebhookEvent` the OpenAPI document publishes, member for member.
    #[test]
    fn the_envelope_is_the_published_event() {
        let coverage = serde_json::json!({"id": "c1", "beneficiary": "b1", "product": "p1", "organization": "mut-a",
            "layer": "complementary", "member_number": "A-1", "relationship": "principal", "principal_coverage": null,
            "start_date": "2026-01-01", "end_date": null, "status": "active", "paid_through": null, "version": 7});
        // The trace context stored with it goes in a header, not in the body.
        let payload = serde_json::json!({"resource": "coverage", "created_at": "2026-11-30T10:15:00Z",
            "organization": "mut-a", "data": coverage,
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
        assert_eq!(
            stored_traceparent(&payload.to_string()).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let due = DueDelivery {
            id: "d".into(),
            url: "https://127.0.0.1/".into(),
            secret: "s".into(),
            event_id: "e".into(),
            event_type: "coverage.changed".into(),
            payload: payload.to_string(),
            attempts: 0,
            attempt_base: 0,
        };
        let body: Value = serde_json::from_slice(&envelope(&due).unwrap()).unwrap();
        let sent: std::collections::BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        let doc = serde_json::to_value(crate::openapi::document()).unwrap();
        let published: std::collections::BTreeSet<&str> = doc["components"]["schemas"]["WebhookEvent"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(sent, published);
        assert_eq!(
            (
                body["event_id"].as_str(),
                body["type"].as_str(),
                body["version"].as_u64()
            ),
            (Some("e"), Some("coverage.changed"), Some(7))
        );
        assert_eq!(body["data"]["member_number"], "A-1");
    }

    /// An erasure is sent as its record's id, version and instant, the version beside it as
    /// for any other event; a stored one missing its version is not sent with a made-up one.
    #[test]
    fn an_erasure_is_sent_as_the_record_alone() {
        let payload = serde_json::json!({"resource": "beneficiary_erasure", "created_at": "2036-12-08T02:30:00Z",
            "organization": "operator", "data": {"id": "b1", "version": 3, "erased_at": "2036-12-08T02:30:00Z"}});
        let mut erased = due(&payload.to_string());
        erased.event_type = "beneficiary.erased".into();
        let body: Value = serde_json::from_slice(&envelope(&erased).unwrap()).unwrap();
        assert_eq!(body["version"], 3);
        assert_eq!(
            body["data"],
            serde_json::json!({"id": "b1", "version": 3, "erased_at": "2036-12-08T02:30:00Z"})
        );
        assert_eq!(body["organization"], "operator");
        let without_version = serde_json::json!({"resource": "beneficiary_erasure", "created_at": "2036-12-08T02:30:00Z",
            "organization": "operator", "data": {"id": "b1", "erased_at": "2036-12-08T02:30:00Z"}});
        assert!(envelope(&due(&without_version.to_string())).is_err());
    }

    fn due(payload: &str) -> DueDelivery {
        DueDelivery {
            id: "e:s".into(),
            url: "http://127.0.0.1:9/".into(),
            secret: "s".into(),
            event_id: "e".into(),
            event_type: "claim.submitted".into(),
            payload: payload.into(),
            attempts: 2,
            attempt_base: 0,
        }
    }

    /// A stored claim that no longer reads is not sent as `data: null`: the delivery fails for
    /// good, with the reason recorded, and neither the reason nor the log quotes the payload.
    #[test]
    fn an_event_that_does_not_read_is_given_up_unsent() {
        let name = "Adjoa Mensah-Koffi";
        let claim = serde_json::json!({"resource": "claim", "created_at": "2026-11-30T10:15:00Z",
            "organization": "cms-a", "data": {"id": "c1", "beneficiary": {"family_name": name}}});
        let coverage = serde_json::json!({"resource": "coverage", "created_at": "2026-11-30T10:15:00Z",
            "organization": "mut-a", "data": name});
        let without_data = serde_json::json!({"resource": "other", "created_at": "2026-11-30T10:15:00Z",
            "organization": "mut-a"});
        let without_time = serde_json::json!({"resource": "other", "organization": "mut-a", "data": {"id": "x"}});
        // Only a person's correction is sent without its author.
        let without_author = serde_json::json!({"resource": "other", "created_at": "2026-11-30T10:15:00Z",
            "organization": null, "data": {"id": "x"}});
        for (payload, expected) in [
            (claim.to_string(), "data"),
            (coverage.to_string(), "data"),
            (format!("{{\"data\": \"{name}"), "payload"),
            (without_data.to_string(), "data"),
            (without_time.to_string(), "created_at"),
            (without_author.to_string(), "organization"),
        ] {
            let e = envelope(&due(&payload)).unwrap_err();
            assert_eq!(e.part, expected, "{payload}");
            let outcome = given_up_unsent(&due(&payload), now(), &e);
            assert!(!outcome.delivered && outcome.retry_at.is_none(), "{outcome:?}");
            assert_eq!((outcome.attempt.attempt, outcome.attempt.status_code), (3, None));
            let reason = outcome.attempt.error.unwrap();
            assert!(reason.starts_with("not sent: the stored event"), "{reason}");
            assert!(
                !reason.contains("Adjoa") && !e.to_string().contains("Adjoa"),
                "{reason}"
            );
        }
    }

    /// On shutdown a worker takes no new lease, and the send in flight records its attempt
    /// before the worker ends: the pool can close without leaving it to be sent again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_worker_finishes_its_sends_and_leases_nothing_more() {
        use passerelle_adapters::testing::TestDatabase;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let db = TestDatabase::new(passerelle_adapters::Backend::Sqlite).await;
        let mut config = crate::config::Config::for_database(&db.url);
        config.webhook_allow_insecure = true;
        let database = crate::app::connect(&config).await.unwrap();
        database.migrate().await.unwrap();
        let state = crate::app::state(config, &database).await.unwrap();
        crate::app::ensure_operator(&state).await.unwrap();

        // Answers 204 half a second after each request arrives, and says when one arrives.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let arrived = arrived.clone();
                tokio::spawn(async move {
                    let mut buf = [0_u8; 8192];
                    let _ = socket.read(&mut buf).await;
                    let _ = arrived.send(());
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = socket
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        let payload = r#"{"resource": "other", "created_at": "2026-11-30T10:15:00Z", "organization": "operator", "data": {"id": "x"}}"#;
        let delivery = |event: &str| {
            format!(
                "INSERT INTO webhook_deliveries (id, subscription, event_id, event_type, payload, status, attempts, \
                 next_attempt_at, created_at) VALUES ('{event}:s1', 's1', '{event}', 'claim.submitted', '{payload}', \
                 'pending', 0, '2000-01-01T00:00:00+00:00', '2000-01-01T00:00:00+00:00')"
            )
        };
        db.execute(&format!(
            "INSERT INTO webhook_subscriptions (id, organization, url, events, secret, created_at) VALUES \
             ('s1', 'operator', 'http://127.0.0.1:{port}/hook', ' claim.submitted ', 's', '2000-01-01T00:00:00+00:00')"
        ))
        .await;
        db.execute(&delivery("e1")).await;

        let worker = start(state).unwrap();
        tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await
            .expect("the first delivery is sent");
        worker.stop();
        db.execute(&delivery("e2")).await;
        assert!(worker.finished(Duration::from_secs(5)).await, "the send in flight ends");

        let status = |id: &str| format!("SELECT count(*) FROM webhook_deliveries WHERE id = '{id}' AND ");
        assert_eq!(db.scalar(&format!("{} status = 'delivered'", status("e1:s1"))).await, 1);
        assert_eq!(
            db.scalar("SELECT count(*) FROM webhook_attempts WHERE delivery = 'e1:s1'")
                .await,
            1
        );
        assert_eq!(
            db.scalar(&format!(
                "{} status = 'pending' AND lock_owner IS NULL",
                status("e2:s1")
            ))
            .await,
            1,
            "nothing is leased after the stop"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(arrivals.try_recv().is_err(), "nothing more is sent");
        database.close().await;
    }

    #[test]
    fn signatures_follow_the_contract() {
        // HMAC-SHA256("secret", "1700000000.{}") computed independently with openssl:
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
        let s = signature("secret", 1_700_000_000, b"{}");
        assert_eq!(
            s,
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
