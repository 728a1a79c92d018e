//! API.md §5 Audit: every change is chained; tampering is found and named.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, TestApp};
use serde_json::json;

async fn changes_are_audited_without_personal_data(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-tsevie", "mutuelle", "TG").await;
    let events = app.get("/v1/audit-events", &app.operator()).await;
    let items = events.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let newest = &items[0];
    assert_eq!(newest["seq"], 2);
    assert_eq!(newest["action"], "organization.created");
    assert_eq!(newest["resource_id"], "mut-tsevie");
    assert_eq!(newest["organization"], "operator");
    assert_eq!(newest["prev_digest"], items[1]["digest"]);
    assert!(
        !events.text.contains("Test mut-tsevie"),
        "names are not copied into events"
    );
}

async fn an_edited_event_is_named_by_verify(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..6 {
        app.create_org(&format!("org-{i}"), "provider", "SN").await;
    }
    let auditor_id = "cabinet-audit";
    app.create_org(auditor_id, "auditor", "SN").await;
    let auditor = app.token(auditor_id, "audit:read registry:read");
    let ok = app.get("/v1/audit-events/verify", &auditor).await;
    assert_eq!(
        (&ok.json["valid"], &ok.json["events_checked"]),
        (&json!(true), &json!(8))
    );
    app.db
        .execute("UPDATE audit_events SET subject = 'someone-else' WHERE seq = 5")
        .await;
    let broken = app.get("/v1/audit-events/verify", &auditor).await;
    assert_eq!(broken.json["valid"], false);
    assert_eq!(broken.json["first_invalid_seq"], 5);
    assert_eq!(broken.json["failure"], "digest_mismatch", "{}", broken.text);
}

/// The record of the head altered, every event left intact: verification names the head, and
/// says it cannot tell the record from the event at `head_seq` (which an intruder may have
/// rewritten with a recomputed digest), rather than blaming that event alone.
async fn an_altered_head_record_is_told_as_such(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..4 {
        app.create_org(&format!("org-{i}"), "provider", "SN").await;
    }
    let operator = app.operator();
    let ok = app.get("/v1/audit-events/verify", &operator).await;
    assert_eq!((&ok.json["valid"], &ok.json["head_seq"]), (&json!(true), &json!(5)));
    assert!(ok.json.get("failure").is_none(), "{}", ok.text);
    app.db
        .execute(&format!(
            "UPDATE audit_head SET digest = '{}' WHERE id = 1",
            "0".repeat(64)
        ))
        .await;
    // The operator's verification above is itself audited, so the head may have moved past 5.
    let v = app.get("/v1/audit-events/verify", &operator).await;
    let head = v.json["head_seq"].as_i64().unwrap();
    assert!(head >= 5, "{}", v.text);
    assert_eq!(
        (
            &v.json["valid"],
            &v.json["events_checked"],
            &v.json["first_invalid_seq"],
            &v.json["failure"]
        ),
        (&json!(false), &json!(head), &json!(head), &json!("head_mismatch")),
        "{}",
        v.text
    );
}

async fn auditor_reads_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("cabinet-audit", "auditor", "SN").await;
    let auditor = app.token("cabinet-audit", "audit:read registry:read");
    let before = app.audited().await;
    assert_eq!(
        app.get("/v1/organizations/operator", &auditor).await.status.as_u16(),
        200
    );
    assert_eq!(app.audited().await, before + 1);
    let mine = app
        .get(
            "/v1/audit-events?organization=cabinet-audit&action=organization.read",
            &auditor,
        )
        .await;
    let items = mine.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["resource_id"], "operator");
    // A coverage search naming no one (here a national id typed as the parameter) reads
    // nothing, and the typed text never reaches the chain.
    let before = app.audited().await;
    let nobody = app.get("/v1/coverages?beneficiary=TG:NIU:123456789012", &auditor).await;
    assert_eq!(nobody.json["items"], serde_json::json!([]), "{}", nobody.text);
    assert_eq!(app.audited().await, before);
}

async fn organisations_see_only_their_own_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let a = app.token("mut-a", "audit:read");
    let own = app.get("/v1/audit-events", &a).await;
    assert_eq!(own.status.as_u16(), 200);
    assert_eq!(own.json["items"], json!([]), "the operator's events are not mut-a's");
    let other = app.get("/v1/audit-events?organization=operator", &a).await;
    assert_eq!(other.json, json!({"items": [], "next_cursor": null}));
    let since = app.get("/v1/audit-events?since=2026-13-45", &app.operator()).await;
    since.problem(422, "validation_failed");
    let by_date = app.get("/v1/audit-events?since=2000-01-01", &app.operator()).await;
    assert_eq!(by_date.json["items"].as_array().unwrap().len(), 2);
    let future = app
        .get("/v1/audit-events?since=2999-01-01T00:00:00Z", &app.operator())
        .await;
    assert_eq!(future.json["items"], json!([]));
    // The last minute of 9999 west of Greenwich is in the year 10000 in UTC: still after every
    // event (SQLite would compare the text `+10000-…` before them all).
    for since in ["9999-12-31T23:59:59-00:01", "9999-12-31T10:00:00-14:00"] {
        let beyond = app
            .get(&format!("/v1/audit-events?since={since}"), &app.operator())
            .await;
        assert_eq!(beyond.json["items"], json!([]), "{since}: {}", beyond.text);
    }
    // A cursor that decodes to no sequence number ("abc") is 422, never a 500.
    let forged = app.get("/v1/audit-events?cursor=c1616263", &app.operator()).await;
    forged.problem(422, "validation_failed");
    assert_eq!(forged.json["errors"][0]["code"], "invalid_cursor", "{}", forged.text);
}

/// A resource's events filtered by organisation (a mutuelle's is always added) or by action,
/// which the resource's index answers: exactly the events that match, and none of another's.
async fn a_resource_is_filtered_by_organisation_and_action(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    app.create_org("mut-b", "mutuelle", "TG").await;
    let writer = app.token("mut-a", "registry:write");
    let created = app
        .post("/v1/products", &writer, &crate::products::family_plan("2026-01-01"))
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let product = created.json["id"].as_str().unwrap();
    let actions = |reader: String, query: String| {
        let app = &app;
        async move {
            let page = app
                .get(&format!("/v1/audit-events?resource_id={product}{query}"), &reader)
                .await;
            assert_eq!(page.status.as_u16(), 200, "{}", page.text);
            page.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["action"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let (a, b, op) = (
        app.token("mut-a", "audit:read"),
        app.token("mut-b", "audit:read"),
        app.operator(),
    );
    let created = vec!["product.created".to_owned()];
    assert_eq!(actions(a.clone(), String::new()).await, created);
    assert_eq!(actions(a.clone(), "&action=product.created".into()).await, created);
    assert!(actions(a, "&action=product.versioned".into()).await.is_empty());
    assert!(actions(b, String::new()).await.is_empty(), "not mut-b's");
    assert_eq!(
        actions(op.clone(), "&organization=mut-a&action=product.created".into()).await,
        created
    );
    assert!(actions(op.clone(), "&organization=mut-b".into()).await.is_empty());
    assert!(actions(op, "&organization=mut-a&action=claim.submitted".into())
        .await
        .is_empty());
}

/// A mutuelle's `since` among more recent events than SQLite reads through the index of `at`
/// (10,000): its organisation's index is read down to the first of them, and exactly its own
/// events at or after `since` come back, one stored out of `at` order among them.
async fn a_mutuelle_polls_its_own_events_among_many_others(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let reader = app.token("mut-a", "audit:read");
    // Chained now, so that the rows below follow the head.
    let none = app.get("/v1/audit-events", &reader).await;
    assert_eq!(none.json["items"], json!([]), "{}", none.text);
    let head = app.db.scalar("SELECT max(seq) FROM audit_events").await;
    // seq head+1: mut-a, a day early; head+2..: 10,100 others' events; then mut-a twice, on the
    // day and, out of order, before `since`.
    let rows = |first: &str, last: &str, org: &str, at: &str| match backend {
        Backend::Postgres => format!(
            "INSERT INTO audit_events (seq, at, organization, subject, action, resource_type, resource_id, \
             request_id, digest, prev_digest) SELECT g, timestamptz '{at}', '{org}', 's', 'coverage.read', 'coverage', \
             'c' || g, 'r', md5(g::text), md5((g + 1)::text) FROM generate_series({first}, {last}) AS g"
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE g(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM g WHERE x < {last}) \
             INSERT INTO audit_events (seq, at, organization, subject, action, resource_type, resource_id, \
             request_id, digest, prev_digest) SELECT x, '{at}', '{org}', 's', 'coverage.read', 'coverage', \
             'c' || x, 'r', lower(hex(randomblob(16))), lower(hex(randomblob(16))) FROM g"
        ),
    };
    let h = |n: i64| (head + n).to_string();
    for (first, last, org, at) in [
        (h(1), h(1), "mut-a", "2030-01-01T00:00:00+00:00"),
        (h(2), h(10_101), "mut-b", "2030-01-02T00:00:00+00:00"),
        (h(10_102), h(10_102), "mut-a", "2030-01-02T00:00:00+00:00"),
        (h(10_103), h(10_103), "mut-a", "2030-01-01T06:00:00+00:00"),
    ] {
        app.db.execute(&rows(&first, &last, org, at)).await;
    }
    if backend == Backend::Postgres {
        app.db
            .execute(&format!(
                "UPDATE audit_head SET seq = {0}, digest = (SELECT digest FROM audit_events WHERE seq = {0}) WHERE id = 1",
                h(10_103)
            ))
            .await;
    }
    let seqs = |since: &'static str| {
        let (app, reader) = (&app, &reader);
        async move {
            let page = app.get(&format!("/v1/audit-events?since={since}"), reader).await;
            assert_eq!(page.status.as_u16(), 200, "{}", page.text);
            page.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap() - head)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(seqs("2030-01-01T12:00:00Z").await, [10_102]);
    assert_eq!(seqs("2030-01-01T03:00:00Z").await, [10_103, 10_102]);
    assert_eq!(seqs("2029-12-31T00:00:00Z").await, [10_103, 10_102, 1]);
}

/// Deleting the newest events, or all of them, is found: the walk must end at the chain's
/// recorded head.
async fn a_deleted_tail_is_named_by_verify(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..5 {
        app.create_org(&format!("org-{i}"), "provider", "SN").await;
    }
    let operator = app.operator();
    let verify = || app.get("/v1/audit-events/verify", &operator);
    let ok = verify().await;
    assert_eq!(
        (&ok.json["valid"], &ok.json["events_checked"], &ok.json["head_seq"]),
        (&json!(true), &json!(6), &json!(6))
    );
    let sixth = app.get("/v1/audit-events/6", &operator).await;
    assert_eq!(
        ok.json["head_digest"], sixth.json["digest"],
        "the head is the newest event"
    );
    // A position is written in digits alone.
    for other in ["%2B6", "%206", "-6", "6.0"] {
        app.get(&format!("/v1/audit-events/{other}"), &operator)
            .await
            .problem(404, "not_found");
    }
    // The record of the head moved back one event, its digest matching: every event is intact,
    // but none could be chained after that head, and every check would fail.
    let newest = app.db.scalar("SELECT max(seq) FROM audit_events").await;
    let move_head = |seq: i64| {
        format!("UPDATE audit_head SET seq = {seq}, digest = (SELECT digest FROM audit_events WHERE seq = {seq}) WHERE id = 1")
    };
    app.db.execute(&move_head(newest - 1)).await;
    let back = verify().await;
    assert_eq!(
        (
            &back.json["valid"],
            &back.json["events_checked"],
            &back.json["first_invalid_seq"],
            &back.json["failure"]
        ),
        (&json!(false), &json!(newest), &json!(newest), &json!("head_behind")),
        "{}",
        back.text
    );
    // Reads of the log wait for a chaining that cannot happen: 503, saying why.
    let list = app.get("/v1/audit-events", &operator).await;
    list.problem(503, "unavailable");
    assert!(list.text.contains("journal d'audit"), "{}", list.text);
    // An operator's repair takes minutes, not the 5 s of an outage's retry.
    assert_eq!(list.header("retry-after"), Some("60"));
    // Put right, the chain grows again.
    app.db.execute(&move_head(newest)).await;
    assert_eq!(verify().await.json["valid"], true);
    assert_eq!(
        app.db.scalar("SELECT max(seq) FROM audit_events").await,
        newest + 1,
        "the verification is recorded"
    );
    // A row stored beyond the head, copied from a real one, is walked and found.
    app.db
        .execute(
            "INSERT INTO audit_events (seq, at, organization, subject, action, resource_type, resource_id, \
             request_id, digest, prev_digest) SELECT 1000, at, organization, subject, action, resource_type, \
             resource_id, request_id, digest, prev_digest FROM audit_events WHERE seq = 6",
        )
        .await;
    assert_eq!(verify().await.json["valid"], false);
    app.db.execute("DELETE FROM audit_events WHERE seq > 4").await;
    let cut = verify().await;
    assert_eq!(
        (
            &cut.json["valid"],
            &cut.json["events_checked"],
            &cut.json["first_invalid_seq"],
            &cut.json["failure"]
        ),
        (&json!(false), &json!(4), &json!(5), &json!("missing_tail"))
    );
    app.db.execute("DELETE FROM audit_events").await;
    let gone = verify().await;
    assert_eq!(
        (
            &gone.json["valid"],
            &gone.json["events_checked"],
            &gone.json["first_invalid_seq"]
        ),
        (&json!(false), &json!(0), &json!(1))
    );
}

/// SQL straight on the database that may be refused: the error's text when it is.
async fn try_execute(app: &TestApp, sql: &str) -> Result<u64, String> {
    use sqlx::{Connection, Executor};
    let url = &app.db.url;
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            c.execute(sql)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string())
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            c.execute(sql)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string())
        }
    }
}

/// A copy of the first event stored at `seq`.
fn copy_of_first(seq: &str) -> String {
    format!(
        "INSERT INTO audit_events (seq, at, organization, subject, action, resource_type, resource_id, \
         request_id, digest, prev_digest) SELECT {seq}, at, organization, subject, action, resource_type, \
         resource_id, request_id, digest, prev_digest FROM audit_events WHERE seq = 1"
    )
}

/// A row stored before the first event (`seq` 0 or below) is listed like any other, so
/// verification walks it too and names it, over the API and offline (`passerelle audit
/// verify`) alike. The schema refuses such rows since migration 21; a database holding one from
/// before is what the guard's removal stands for here.
async fn a_row_before_the_first_is_named_by_verify(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..3 {
        app.create_org(&format!("org-{i}"), "provider", "SN").await;
    }
    let guarded = |e: &str| e.contains("audit_events_seq_positive") || e.contains("audit_events.seq must be positive");
    for seq in ["0", "-1", "(-9223372036854775807 - 1)"] {
        let refused = try_execute(&app, &copy_of_first(seq)).await.unwrap_err();
        assert!(guarded(&refused), "{seq}: {refused}");
    }
    let refused = try_execute(&app, "UPDATE audit_events SET seq = 0 WHERE seq = 1")
        .await
        .unwrap_err();
    assert!(guarded(&refused), "{refused}");
    assert_eq!(app.db.scalar("SELECT min(seq) FROM audit_events").await, 1);

    let unguard = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_events_seq_positive_insert",
        Backend::Postgres => "ALTER TABLE audit_events DROP CONSTRAINT audit_events_seq_positive",
    };
    app.db.execute(unguard).await;
    app.db.execute(&copy_of_first("0")).await;
    let auditor_id = "cabinet-audit";
    app.create_org(auditor_id, "auditor", "SN").await;
    let auditor = app.token(auditor_id, "audit:read registry:read");
    let listed = app.get("/v1/audit-events?limit=500", &auditor).await;
    let items = listed.json["items"].as_array().unwrap();
    assert_eq!(items.last().unwrap()["seq"], 0, "the list shows the row");
    let verdict = |r: &passerelle_tests::Reply| {
        (
            r.json["valid"].clone(),
            r.json["events_checked"].clone(),
            r.json["first_invalid_seq"].clone(),
        )
    };
    let verify = app.get("/v1/audit-events/verify", &auditor).await;
    assert_eq!(verdict(&verify), (json!(false), json!(1), json!(0)), "{}", verify.text);
    let offline = || async {
        let db = passerelle_api::app::connect_read_only(&app.config).await.unwrap();
        let v = passerelle_api::routes::audit::verify_chain(db.store.as_ref())
            .await
            .unwrap();
        db.close().await;
        (v.valid, v.events_checked, v.first_invalid_seq)
    };
    assert_eq!(offline().await, (false, 1, Some(0)));
    // The lowest `seq` there can be is walked as well.
    app.db.execute(&copy_of_first("(-9223372036854775807 - 1)")).await;
    let verify = app.get("/v1/audit-events/verify", &auditor).await;
    assert_eq!(
        verdict(&verify),
        (json!(false), json!(1), json!(i64::MIN)),
        "{}",
        verify.text
    );
    assert_eq!(offline().await, (false, 1, Some(i64::MIN)));
}

/// Operators read everything, as auditors do: their reads of people, coverages and claims are
/// audited too (DOMAIN.md, "Health data is sensitive data"), by id only.
async fn operator_reads_are_audited(backend: Backend) {
    let r = crate::registry::registry(backend).await;
    let app = &r.app;
    let household = crate::registry::household(&r.product, "TSV-0001", "123456789012");
    let registered = crate::registry::register(app, "mut-a", "k1", &household).await;
    assert_eq!(registered.status.as_u16(), 201, "{}", registered.text);
    let member = &registered.json["members"][0];
    let person = member["beneficiary"]["id"].as_str().unwrap().to_owned();
    let coverage = member["coverage"]["id"].as_str().unwrap().to_owned();
    let operator = app.token("operator", "registry:read claims:read audit:read");
    for (path, resource_type, resource_id) in [
        (format!("/v1/coverages/{coverage}"), "coverage", coverage.clone()),
        (format!("/v1/beneficiaries/{person}"), "beneficiary", person.clone()),
    ] {
        let before = app.audited().await;
        let read = app.get(&path, &operator).await;
        assert_eq!(read.status.as_u16(), 200, "{}", read.text);
        assert_eq!(app.audited().await, before + 1, "{path}");
        let events = app
            .get(
                &format!("/v1/audit-events?organization=operator&action={resource_type}.read"),
                &operator,
            )
            .await;
        let items = events.json["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{}", events.text);
        assert_eq!(items[0]["resource_id"], resource_id.as_str());
        assert!(!events.text.contains("Agbéko") && !events.text.contains("123456789012"));
    }
    // A mutuelle reading its own member is not an operator's or auditor's read: not audited.
    let before = app.audited().await;
    let own = app
        .get(
            &format!("/v1/coverages/{coverage}"),
            &crate::registry::writer(app, "mut-a"),
        )
        .await;
    assert_eq!(own.status.as_u16(), 200, "{}", own.text);
    assert_eq!(app.audited().await, before);
}

/// A `since` between two microseconds (instants are kept to the microsecond) keeps what is at or
/// after it: an event at its microsecond is before it, on both databases (PostgreSQL rounded
/// the instant to the nearest microsecond and kept that event).
async fn a_since_past_the_microsecond_is_after_its_microsecond(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("sincex", "provider", "TG").await;
    let operator = app.operator();
    let created = app
        .get("/v1/audit-events?action=organization.created&limit=1", &operator)
        .await;
    let event = &created.json["items"][0];
    assert_eq!(event["resource_id"], "sincex", "{}", created.text);
    let at: chrono::DateTime<chrono::Utc> = event["at"].as_str().unwrap().parse().unwrap();
    for (nanos, kept) in [(0, true), (1, false), (500, false), (999, false)] {
        let since = (at + chrono::Duration::nanoseconds(nanos)).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let listed = app
            .send(
                app.request(reqwest::Method::GET, "/v1/audit-events")
                    .query(&[("action", "organization.created"), ("since", since.as_str())])
                    .bearer_auth(&operator),
            )
            .await;
        let found = listed.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["seq"] == event["seq"]);
        assert_eq!(found, kept, "since {since}: {}", listed.text);
    }
}

on_both_databases!(
    a_since_past_the_microsecond_is_after_its_microsecond,
    a_mutuelle_polls_its_own_events_among_many_others,
    a_resource_is_filtered_by_organisation_and_action,
    a_row_before_the_first_is_named_by_verify,
    operator_reads_are_audited,
    a_deleted_tail_is_named_by_verify,
    changes_are_audited_without_personal_data,
    an_edited_event_is_named_by_verify,
    an_altered_head_record_is_told_as_such,
    auditor_reads_are_audited,
    organisations_see_only_their_own_events,
);
