//! An audit event's `at` tampered with on SQLite, where it is text: no instant at all, or the
//! same instant spelled otherwise than the server writes it. Verification names the event, over
//! the API and offline (`passerelle audit verify`), and the reads answer a problem, never a
//! decoding error. And the `at` served is always RFC 3339, UTC, with six fractional digits,
//! the form the digest covers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
use passerelle_adapters::{Backend, DatabaseOptions};
use passerelle_domain::audit::NewAuditEvent;
use passerelle_tests::{Reply, TestApp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Six organisations: the operator's creation is event 1, theirs are events 2 to 7.
async fn six_organisations(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    for i in 0..6 {
        app.create_org(&format!("org-{i}"), "provider", "SN").await;
    }
    app
}

/// `(valid, events_checked, first_invalid_seq)` over the API and offline, which must agree.
async fn verdicts(app: &TestApp) -> ((Value, Value, Value), (bool, u64, Option<i64>)) {
    let online = app.get("/v1/audit-events/verify", &app.operator()).await;
    assert_eq!(online.status.as_u16(), 200, "{}", online.text);
    let online = (
        online.json["valid"].clone(),
        online.json["events_checked"].clone(),
        online.json["first_invalid_seq"].clone(),
    );
    // What `passerelle audit verify` runs, read-only on the same file.
    let db = passerelle_api::app::connect_read_only(&app.config).await.unwrap();
    let offline = passerelle_api::routes::audit::verify_chain(db.store.as_ref())
        .await
        .expect("verification reports tampering, it does not fail");
    db.close().await;
    (
        online,
        (offline.valid, offline.events_checked, offline.first_invalid_seq),
    )
}

async fn assert_named(app: &TestApp, seq: i64, what: &str) {
    let (online, offline) = verdicts(app).await;
    assert_eq!(online, (json!(false), json!(seq), json!(seq)), "{what}");
    assert_eq!(offline, (false, seq as u64, Some(seq)), "{what}");
}

async fn assert_valid(app: &TestApp, what: &str) {
    let (online, offline) = verdicts(app).await;
    assert_eq!(online.0, json!(true), "{what}: {online:?}");
    assert!(offline.0, "{what}: {offline:?}");
}

async fn stored_at(app: &TestApp, seq: i64) -> String {
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.db.url)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT at FROM audit_events WHERE seq = $1")
        .bind(seq)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

async fn set_at(app: &TestApp, seq: i64, at: &str) {
    let changed = app
        .db
        .execute(&format!(
            "UPDATE audit_events SET at = '{}' WHERE seq = {seq}",
            at.replace('\'', "''")
        ))
        .await;
    assert_eq!(changed, 1);
}

/// A damaged event's read is a problem+json 500 `audit_log_damaged` naming the event's `seq`,
/// and leaks no driver message.
fn assert_damaged(reply: &Reply, seq: i64) {
    reply.problem(500, "audit_log_damaged");
    let detail = reply.json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&format!(" {seq} ")), "{}", reply.text);
    assert!(
        !reply.text.contains("decod") && !reply.text.contains("column"),
        "{}",
        reply.text
    );
}

fn seqs(reply: &Reply) -> Vec<i64> {
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    reply.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_that_is_no_instant_is_named_by_verify() {
    let app = six_organisations(Backend::Sqlite).await;
    assert_valid(&app, "untouched").await;
    for garbage in ["not a date", "", "2026-13-45T25:61:61+00:00"] {
        set_at(&app, 4, garbage).await;
        assert_named(&app, 4, garbage).await;
    }
    let operator = app.operator();
    // The event itself, and a page holding it, are a problem.
    assert_damaged(&app.get("/v1/audit-events/4", &operator).await, 4);
    assert_damaged(
        &app.get("/v1/audit-events?resource_type=organization", &operator).await,
        4,
    );
    // Pages and events around it read as before: the page of 7 to 5 (which reads one more
    // row, event 4, to know that more follow), an older one, and the events beside it.
    let newest = app
        .get("/v1/audit-events?resource_type=organization&limit=3", &operator)
        .await;
    assert_eq!(seqs(&newest), vec![7, 6, 5]);
    let older = app
        .get(
            "/v1/audit-events?resource_type=organization&resource_id=org-0",
            &operator,
        )
        .await;
    assert_eq!(seqs(&older), vec![2]);
    let fifth = app.get("/v1/audit-events/5", &operator).await;
    assert_eq!(fifth.json["seq"], 5, "{}", fifth.text);
}

/// The same instant spelled otherwise passes the digest, which covers the instant, but SQLite
/// compares the text (`since`), so it is tampering all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_spelled_otherwise_is_named_by_verify() {
    let app = six_organisations(Backend::Sqlite).await;
    let written = stored_at(&app, 4).await;
    let instant: DateTime<Utc> = DateTime::parse_from_rfc3339(&written).unwrap().into();
    let minus_one = FixedOffset::west_opt(3600).unwrap();
    let respelled = [
        instant.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        instant
            .with_timezone(&minus_one)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        instant.to_rfc3339_opts(SecondsFormat::Nanos, false),
        // Seven fractional digits.
        format!("{}0+00:00", instant.format("%Y-%m-%dT%H:%M:%S%.6f")),
        instant.to_rfc3339_opts(SecondsFormat::AutoSi, false).replace('T', " "),
        instant.to_rfc3339_opts(SecondsFormat::AutoSi, false).replace('T', "t"),
    ];
    for other in &respelled {
        assert_ne!(other, &written);
        set_at(&app, 4, other).await;
        assert_named(&app, 4, other).await;
        // The instant is still the one the digest covers: the event is served as written.
        let event = app.get("/v1/audit-events/4", &app.operator()).await;
        assert_eq!(event.status.as_u16(), 200, "{}", event.text);
        assert_eq!(
            event.json["at"],
            instant.to_rfc3339_opts(SecondsFormat::Micros, true),
            "{other}"
        );
        set_at(&app, 4, &written).await;
        assert_valid(&app, "restored").await;
    }
}

/// SHA-256 over `prev_digest`, a newline and the event's canonical form, from the event as
/// served (README, "The audit chain").
fn rehash(e: &Value) -> String {
    let canonical = json!([
        e["seq"],
        e["at"],
        e["organization"],
        e["subject"],
        e["action"],
        e["resource_type"],
        e["resource_id"],
        e["request_id"],
        e["prev_digest"]
    ]);
    let mut hasher = Sha256::new();
    hasher.update(e["prev_digest"].as_str().unwrap().as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.to_string().as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn served_at_has_six_fractional_digits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let second = Utc.with_ymd_and_hms(2026, 12, 2, 1, 34, 50).unwrap();
    let instants = [
        (second, "2026-12-02T01:34:50.000000Z"),
        (
            second + chrono::Duration::milliseconds(640),
            "2026-12-02T01:34:50.640000Z",
        ),
        (
            second + chrono::Duration::microseconds(640_100),
            "2026-12-02T01:34:50.640100Z",
        ),
        (
            second + chrono::Duration::microseconds(7),
            "2026-12-02T01:34:50.000007Z",
        ),
    ];
    // Written as the service writes any event, through another process on the same database.
    let other = passerelle_adapters::connect(&DatabaseOptions::new(&app.db.url))
        .await
        .unwrap();
    let events: Vec<NewAuditEvent> = instants
        .iter()
        .enumerate()
        .map(|(i, (at, _))| NewAuditEvent {
            at: *at,
            organization: "operator".into(),
            subject: "tester".into(),
            action: "organization.read".into(),
            resource_type: "organization".into(),
            resource_id: format!("instant-{i}"),
            request_id: format!("req-{i}"),
        })
        .collect();
    other.store.append_audit(&events).await.unwrap();
    other.close().await;
    let operator = app.operator();
    let listed = app.get("/v1/audit-events?limit=100", &operator).await;
    assert_eq!(listed.status.as_u16(), 200, "{}", listed.text);
    let items = listed.json["items"].as_array().unwrap();
    for (i, (_, served)) in instants.iter().enumerate() {
        let listed = items
            .iter()
            .find(|e| e["resource_id"] == format!("instant-{i}"))
            .unwrap();
        assert_eq!(listed["at"], *served, "{listed}");
        assert_eq!(rehash(listed), listed["digest"].as_str().unwrap(), "{listed}");
        let one = app.get(&format!("/v1/audit-events/{}", listed["seq"]), &operator).await;
        assert_eq!(one.json["at"], *served, "{}", one.text);
    }
    // Every event served re-hashes to its digest, the server's own too (microseconds whatever
    // they are), and the instants as stored verify.
    for e in items {
        assert_eq!(rehash(e), e["digest"].as_str().unwrap(), "{e}");
        let at = e["at"].as_str().unwrap();
        assert_eq!((at.len(), at.ends_with('Z')), (27, true), "{at}");
    }
    assert_valid(&app, "events at whole seconds and milliseconds").await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn served_at_has_six_fractional_digits() {
        super::served_at_has_six_fractional_digits(passerelle_adapters::Backend::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn served_at_has_six_fractional_digits() {
        super::served_at_has_six_fractional_digits(passerelle_adapters::Backend::Postgres).await;
    }
}
