//! Retention: `passerelle erase-personal-data` (its code, `passerelle_api::erasure::run`) erases
//! the personal data of people whose coverages all ended long enough ago; the API then answers
//! them as gone (410), and nothing can cover them again.

use passerelle_adapters::Backend;
use passerelle_api::erasure::{self, EraseArgs};
use passerelle_tests::{on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::products::family_plan;
use crate::registry::{household, register, registry, registry_with, writer};
use crate::webhooks::{receiver, wait_for};

/// Runs the command's code against the service's database, as the CLI would.
async fn erase(app: &TestApp, ended_before: &str, dry_run: bool) -> Value {
    let args = EraseArgs {
        ended_before: Some(ended_before.parse().unwrap()),
        retention_days: None,
        dry_run,
    };
    let printed = erasure::run(app.config.clone(), args).await.expect("erasure");
    serde_json::from_str(&printed).expect("the command prints JSON")
}

/// The household's member ids (principal first) and the principal's coverage id.
async fn registered(app: &TestApp, product: &str, number: &str, niu: &str) -> (Vec<String>, String) {
    let reply = register(app, "mut-a", &format!("key-{number}"), &household(product, number, niu)).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let members = reply.json["members"].as_array().unwrap();
    let ids = members
        .iter()
        .map(|m| m["beneficiary"]["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, members[0]["coverage"]["id"].as_str().unwrap().to_owned())
}

async fn patch_coverage(app: &TestApp, coverage: &str, body: &Value) -> Reply {
    patch_coverage_as(app, "mut-a", coverage, body).await
}

async fn patch_coverage_as(app: &TestApp, org: &str, coverage: &str, body: &Value) -> Reply {
    let read = app.get(&format!("/v1/coverages/{coverage}"), &writer(app, org)).await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    let tag = read.header("etag").unwrap().to_owned();
    app.send(
        app.request(Method::PATCH, &format!("/v1/coverages/{coverage}"))
            .bearer_auth(writer(app, org))
            .header("if-match", tag)
            .json(body),
    )
    .await
}

async fn a_household_past_retention_is_erased_and_answered_as_gone(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    // Terminated on June 30: erased. Ended on May 31 without a termination: its principal is
    // erased, and with them the dependants of the household. Still covered: kept.
    let (terminated, terminated_cover) = registered(app, &r.product, "TSV-0001", "111111111111").await;
    let (ended, ended_cover) = registered(app, &r.product, "TSV-0002", "222222222222").await;
    let (kept, _) = registered(app, &r.product, "TSV-0003", "333333333333").await;
    let reply = patch_coverage(
        app,
        &terminated_cover,
        &json!({"status": "terminated", "end_date": "2026-06-30"}),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let reply = patch_coverage(app, &ended_cover, &json!({"end_date": "2026-05-31"})).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    // The scheme's base affiliation of the first principal, ended on June 15.
    let inam = app.token("tg-inam", "registry:read registry:write");
    let base = app.create_base_product(&inam).await;
    let affiliated = app
        .post(
            "/v1/coverages",
            &inam,
            &json!({"product": base, "member_number": "INAM-1", "start_date": "2025-01-01", "end_date": "2026-06-15",
                    "beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "111111111111"},
                                    "family_name": "Agbéko", "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12"}}),
        )
        .await;
    assert_eq!(affiliated.status.as_u16(), 201, "{}", affiliated.text);
    assert_eq!(
        affiliated.json["beneficiary"],
        terminated[0].as_str(),
        "{}",
        affiliated.text
    );

    // Covered through June 30, the terminated household had not ended before that day.
    let counted = erase(app, "2026-06-30", true).await;
    assert_eq!(
        (counted["people"].as_u64(), counted["merged_records"].as_u64()),
        (Some(3), Some(0))
    );
    let counted = erase(app, "2026-07-01", true).await;
    assert_eq!(counted["people"], 6, "{counted}");
    assert_eq!(counted["dry_run"], true);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM beneficiaries WHERE erased_at IS NOT NULL")
            .await,
        0
    );

    let done = erase(app, "2026-07-01", false).await;
    assert_eq!(
        (done["people"].as_u64(), done["merged_records"].as_u64()),
        (Some(6), Some(0)),
        "{done}"
    );
    let request_id = done["request_id"].as_str().unwrap().to_owned();
    assert!(request_id.starts_with("erase-"), "{done}");
    // Once is all: a second run finds no one.
    assert_eq!(erase(app, "2026-07-01", false).await["people"], 0);

    let erased: Vec<&String> = terminated.iter().chain(&ended).collect();
    let list = erased.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ");
    let blank = format!(
        "SELECT count(*) FROM beneficiaries WHERE id IN ({list}) AND erased_at IS NOT NULL AND family_name = '' \
         AND given_names = '' AND match_key = '' AND nid_value IS NULL AND nid_country IS NULL AND phone IS NULL \
         AND region IS NULL AND district IS NULL AND commune IS NULL AND birth_date_precision = 'year' AND version = 2"
    );
    assert_eq!(app.db.scalar(&blank).await, 6);
    // The birth year stays (registered 1984-03-12), as do the sex and the coverages.
    let year = format!(
        "SELECT count(*) FROM beneficiaries WHERE id = '{}' AND birth_date = '1984-01-01' AND sex = 'M'",
        terminated[0]
    );
    assert_eq!(app.db.scalar(&year).await, 1);
    assert_eq!(
        app.db
            .scalar(&format!("SELECT count(*) FROM coverages WHERE beneficiary IN ({list})"))
            .await,
        7
    );

    // Gone, to whoever could see them; still unknown to whoever could not.
    let mutuelle = writer(app, "mut-a");
    for id in &erased {
        let reply = app.get(&format!("/v1/beneficiaries/{id}"), &mutuelle).await;
        let problem = reply.problem(410, "personal_data_erased");
        assert!(problem["detail"]
            .as_str()
            .unwrap()
            .contains(&chrono::Utc::now().date_naive().to_string()));
        assert!(!reply.text.contains("Agb"), "{}", reply.text);
    }
    app.get(&format!("/v1/beneficiaries/{}", terminated[0]), &app.operator())
        .await
        .problem(410, "personal_data_erased");
    app.get(&format!("/v1/beneficiaries/{}", terminated[0]), &writer(app, "mut-b"))
        .await
        .problem(404, "not_found");
    let fhir = app
        .send(
            app.request(Method::GET, &format!("/fhir/r4/Patient/{}", ended[1]))
                .bearer_auth(&mutuelle),
        )
        .await;
    assert_eq!(fhir.status.as_u16(), 410, "{}", fhir.text);
    assert_eq!(fhir.json["resourceType"], "OperationOutcome");
    let found = app
        .get("/v1/beneficiaries?national_id=TG:NIU:111111111111", &app.operator())
        .await;
    assert_eq!(found.json["items"], json!([]), "{}", found.text);
    let kept_person = app.get(&format!("/v1/beneficiaries/{}", kept[0]), &mutuelle).await;
    assert_eq!(kept_person.status.as_u16(), 200, "{}", kept_person.text);
    assert_eq!(kept_person.json["family_name"], "Agbéko");

    // Nothing covers them again: the ended household is not extended, the person not corrected,
    // merged or affiliated by id.
    patch_coverage(app, &ended_cover, &json!({"end_date": null}))
        .await
        .problem(410, "personal_data_erased");
    let read = app.get(&format!("/v1/coverages/{ended_cover}"), &mutuelle).await;
    assert_eq!(read.json["end_date"], "2026-05-31", "{}", read.text);
    let added = app
        .send(
            app.request(Method::POST, &format!("/v1/coverages/{ended_cover}/dependants"))
                .bearer_auth(&mutuelle)
                .header("idempotency-key", "late-child")
                .json(
                    &json!({"relationship": "child", "start_date": "2026-03-01", "family_name": "Agbéko",
                              "given_names": "Afi", "sex": "F", "birth_date": "2026-02-27"}),
                ),
        )
        .await;
    added.problem(410, "personal_data_erased");
    let patched = app
        .send(
            app.request(Method::PATCH, &format!("/v1/beneficiaries/{}", ended[0]))
                .bearer_auth(&mutuelle)
                .header("if-match", "\"2\"")
                .json(&json!({"phone": "+22890000000"})),
        )
        .await;
    patched.problem(410, "personal_data_erased");
    let merged = app
        .send(
            app.request(Method::POST, &format!("/v1/beneficiaries/{}/merge", kept[2]))
                .bearer_auth(&mutuelle)
                .header("if-match", "\"1\"")
                .json(&json!({"into": ended[2]})),
        )
        .await;
    merged.problem(410, "personal_data_erased");
    // The scheme, which covered them, may not affiliate them again by id.
    let affiliated = app
        .post(
            "/v1/coverages",
            &inam,
            &json!({"product": base, "member_number": "INAM-9", "start_date": "2026-09-01",
                    "beneficiary": {"id": terminated[0]}}),
        )
        .await;
    affiliated.problem(410, "personal_data_erased");
    assert_eq!(
        app.db
            .scalar(&format!(
                "SELECT count(*) FROM coverages WHERE beneficiary = '{}'",
                terminated[0]
            ))
            .await,
        2
    );

    // The national id is free: the person registered again is someone new.
    let (again, _) = registered(app, &r.product, "TSV-0004", "111111111111").await;
    assert!(!erased.contains(&&again[0]));

    // One event per erased record, under the run's request id, by the operator; the chain holds.
    let log = app
        .get("/v1/audit-events?action=beneficiary.erased&limit=100", &app.operator())
        .await;
    assert_eq!(log.status.as_u16(), 200, "{}", log.text);
    let events = log.json["items"].as_array().unwrap();
    let mut named: Vec<&str> = events.iter().map(|e| e["resource_id"].as_str().unwrap()).collect();
    named.sort_unstable();
    let mut expected: Vec<&str> = erased.iter().map(|s| s.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(named, expected);
    assert!(events
        .iter()
        .all(|e| e["request_id"] == request_id.as_str() && e["organization"] == "operator"));
    let verified = app.get("/v1/audit-events/verify", &app.operator()).await;
    assert_eq!(verified.json["valid"], true, "{}", verified.text);
}

/// A record merged into a person is erased with them; a check of an erased person still answers
/// from their coverages, which name no one.
async fn records_merged_into_an_erased_person_go_with_them(backend: Backend) {
    let r = registry_with(backend, |c| c.webhook_allow_insecure = true).await;
    let app = &r.app;
    let mutuelle = writer(app, "mut-a");
    // Nothing listens there: the deliveries stay in the outbox to be counted.
    let subscribed = app
        .post(
            "/v1/webhooks",
            &app.token("mut-a", "webhooks:write"),
            &json!({"url": "http://127.0.0.1:1/hook", "events": ["beneficiary.erased"]}),
        )
        .await;
    assert_eq!(subscribed.status.as_u16(), 201, "{}", subscribed.text);
    let (person, cover) = registered(app, &r.product, "TSV-0010", "444444444444").await;
    let mut body = household(&r.product, "TSV-0011", "000000000000");
    body["principal"].as_object_mut().unwrap().remove("national_id");
    body["dependants"] = json!([]);
    let twin = register(app, "mut-a", "key-twin", &body).await;
    assert_eq!(twin.status.as_u16(), 201, "{}", twin.text);
    let twin_id = twin.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let twin_cover = twin.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    // Two coverages of one product cannot meet in one person: the twin's ends first.
    let reply = patch_coverage(
        app,
        &twin_cover,
        &json!({"status": "terminated", "end_date": "2026-02-28"}),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let merged = app
        .send(
            app.request(Method::POST, &format!("/v1/beneficiaries/{twin_id}/merge"))
                .bearer_auth(&mutuelle)
                .header("if-match", "\"1\"")
                .json(&json!({"into": person[0]})),
        )
        .await;
    assert_eq!(merged.status.as_u16(), 200, "{}", merged.text);
    let reply = patch_coverage(app, &cover, &json!({"status": "terminated", "end_date": "2026-03-31"})).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);

    let counted = erase(app, "2026-04-01", true).await;
    assert_eq!(
        (counted["people"].as_u64(), counted["merged_records"].as_u64()),
        (Some(3), Some(1))
    );
    let done = erase(app, "2026-04-01", false).await;
    assert_eq!(
        (done["people"].as_u64(), done["merged_records"].as_u64()),
        (Some(3), Some(1))
    );
    app.get(&format!("/v1/beneficiaries/{twin_id}"), &mutuelle)
        .await
        .problem(410, "personal_data_erased");
    // The merged record, which holds no coverage, is announced to the organisation that merged
    // it (mut-a, which covers the three people too).
    let announced = "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'beneficiary.erased'";
    assert_eq!(app.db.scalar(announced).await, 4);
    let twin_told = format!("{announced} AND payload LIKE '%\"id\":\"{twin_id}\"%'");
    assert_eq!(app.db.scalar(&twin_told).await, 1);

    let check = app
        .post(
            "/v1/eligibility-checks",
            &app.token("cms-a", "eligibility:check"),
            &json!({"beneficiary": {"id": person[0]}, "service_date": "2026-05-02", "care_level": "health_center"}),
        )
        .await;
    assert_eq!(check.status.as_u16(), 200, "{}", check.text);
    assert_eq!(check.json["eligible"], false, "{}", check.text);
    assert!(!check.text.contains("Agb"), "{}", check.text);
}

/// Hundreds of people, every other one still covered: the run goes through them in several
/// transactions and erases exactly the others.
async fn an_erasure_in_many_transactions_keeps_whoever_is_covered(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let (date, instant) = match backend {
        Backend::Postgres => ("DATE '1980-05-05'", "TIMESTAMPTZ '2026-01-01T00:00:00Z'"),
        Backend::Sqlite => ("'1980-05-05'", "'2026-01-01T00:00:00+00:00'"),
    };
    let ended = match backend {
        Backend::Postgres => "CASE WHEN i % 2 = 1 THEN DATE '2026-03-31' END",
        Backend::Sqlite => "CASE WHEN i % 2 = 1 THEN '2026-03-31' END",
    };
    let people = 450;
    app.db
        .execute(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {people}) \
             INSERT INTO beneficiaries (id, family_name, given_names, match_key, sex, birth_date, birth_date_precision, \
               phone, created_at) \
             SELECT 'p-' || (1000 + i), 'Koffi', 'Ama', 'koffi ama', 'F', {date}, 'day', '+22890000000', {instant} FROM n"
        ))
        .await;
    app.db
        .execute(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {people}) \
             INSERT INTO coverages (id, beneficiary, product, organization, layer, member_number, own_number, relationship, \
               start_date, end_date, status, version, created_at, updated_at) \
             SELECT 'c-' || (1000 + i), 'p-' || (1000 + i), '{}', 'mut-a', 'complementary', 'N-' || i, true, 'principal', \
               {date}, {ended}, 'active', 1, {instant}, {instant} FROM n",
            r.product
        ))
        .await;
    assert_eq!(erase(app, "2026-04-01", true).await["people"], people / 2);
    assert_eq!(erase(app, "2026-04-01", false).await["people"], people / 2);
    let erased_odd =
        "SELECT count(*) FROM beneficiaries WHERE erased_at IS NOT NULL AND family_name = '' AND phone IS NULL \
                      AND id IN (SELECT beneficiary FROM coverages WHERE end_date IS NOT NULL)";
    assert_eq!(app.db.scalar(erased_odd).await, people / 2);
    let kept_even = "SELECT count(*) FROM beneficiaries WHERE erased_at IS NULL AND family_name = 'Koffi' \
                     AND phone = '+22890000000' AND version = 1 \
                     AND id IN (SELECT beneficiary FROM coverages WHERE end_date IS NULL)";
    assert_eq!(app.db.scalar(kept_even).await, people / 2);
    let log = app
        .get("/v1/audit-events?action=beneficiary.erased&limit=1", &app.operator())
        .await;
    assert_eq!(log.status.as_u16(), 200, "{}", log.text);
    let verified = app.get("/v1/audit-events/verify", &app.operator()).await;
    assert_eq!(verified.json["valid"], true, "{}", verified.text);
    let events = "SELECT count(*) FROM audit_events WHERE action = 'beneficiary.erased'";
    assert_eq!(app.db.scalar(events).await, people / 2);
}

/// A principal who is also a dependant elsewhere is freed only once that other household's
/// principal is erased, and their own dependants a pass later still: the dry run counts all
/// three passes, as many as the run then erases.
async fn a_dry_run_counts_households_freed_by_later_passes(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let id = |niu: &str| json!({"country": "TG", "type": "NIU", "value": niu});
    // Ama: principal of mut-a's household, with Kodjo as her spouse; Kodjo: principal of
    // mut-b's, with their daughter Yawa.
    let first = json!({
        "product": r.product, "member_number": "CHN-0001", "start_date": "2026-01-01", "paid_through": "2026-12-31",
        "principal": {"national_id": id("444444444444"), "family_name": "Mensah", "given_names": "Ama", "sex": "F",
                      "birth_date": "1986-02-14"},
        "dependants": [{"relationship": "spouse", "national_id": id("555555555555"), "family_name": "Mensah",
                        "given_names": "Kodjo", "sex": "M", "birth_date": "1983-09-01"}]
    });
    let reply = register(app, "mut-a", "key-chn-1", &first).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let first_cover = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let plan = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    assert_eq!(plan.status.as_u16(), 201, "{}", plan.text);
    let second = json!({
        "product": plan.json["id"], "member_number": "CHN-0002", "start_date": "2026-01-01", "paid_through": "2026-12-31",
        "principal": {"national_id": id("555555555555"), "family_name": "Mensah", "given_names": "Kodjo", "sex": "M",
                      "birth_date": "1983-09-01"},
        "dependants": [{"relationship": "child", "family_name": "Mensah", "given_names": "Yawa", "sex": "F",
                        "birth_date": "2012-04-20"}]
    });
    let reply = register(app, "mut-b", "key-chn-2", &second).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let second_cover = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let kodjo = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Both households ended on May 31, neither terminated: Ama goes in the first pass, Kodjo in
    // the second (his place in her household ends with her erasure), Yawa in the third.
    for (org, cover) in [("mut-a", &first_cover), ("mut-b", &second_cover)] {
        let reply = patch_coverage_as(app, org, cover, &json!({"end_date": "2026-05-31"})).await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    }
    let counted = erase(app, "2026-07-01", true).await;
    assert_eq!(counted["people"], 3, "{counted}");
    let done = erase(app, "2026-07-01", false).await;
    assert_eq!(done["people"], 3, "{done}");
    let erased = "SELECT count(*) FROM beneficiaries WHERE erased_at IS NOT NULL AND family_name = ''";
    assert_eq!(app.db.scalar(erased).await, 3);
    let him = format!("SELECT count(*) FROM beneficiaries WHERE id = '{kodjo}' AND erased_at IS NOT NULL");
    assert_eq!(app.db.scalar(&him).await, 1);
}

/// An erasure is announced (`beneficiary.erased`, the record's id alone) to the organisations
/// that covered the person, and the deliveries that held the person as corrected are forgotten,
/// whatever their status: a failed one would otherwise be sent again, names and all.
async fn an_erasure_is_announced_and_the_corrections_sent_of_the_person_forgotten(backend: Backend) {
    let r = registry_with(backend, |c| {
        c.webhook_allow_insecure = true;
        c.webhook_retry_initial = std::time::Duration::from_millis(50);
    })
    .await;
    let app = &r.app;
    let subscribe = |org: &'static str, url: String, events: Value| async move {
        let made = app
            .post(
                "/v1/webhooks",
                &app.token(org, "webhooks:write"),
                &json!({"url": url, "events": events}),
            )
            .await;
        assert_eq!(made.status.as_u16(), 201, "{}", made.text);
        made.json["id"].as_str().unwrap().to_owned()
    };
    // mut-a's corrections go to a receiver that is down (nothing listens on port 1), and stay
    // there to be sent again; its erasures, and the auditor's, to receivers that answer.
    let (for_a, port_a) = receiver().await;
    let (for_b, port_b) = receiver().await;
    let (for_auditor, port_auditor) = receiver().await;
    let dead = subscribe(
        "mut-a",
        "http://127.0.0.1:1/hook".into(),
        json!(["beneficiary.changed"]),
    )
    .await;
    subscribe(
        "mut-a",
        format!("http://127.0.0.1:{port_a}/hook"),
        json!(["beneficiary.erased"]),
    )
    .await;
    let hook = |port: u16| format!("http://127.0.0.1:{port}/hook");
    subscribe(
        "mut-b",
        hook(port_b),
        json!(["beneficiary.erased", "beneficiary.changed"]),
    )
    .await;
    subscribe("audit-x", hook(port_auditor), json!(["beneficiary.erased"])).await;

    let (gone, cover) = registered(app, &r.product, "TSV-0020", "555555555555").await;
    let (kept, _) = registered(app, &r.product, "TSV-0021", "666666666666").await;
    for person in [&gone[0], &kept[0]] {
        let fixed = app
            .send(
                app.request(Method::PATCH, &format!("/v1/beneficiaries/{person}"))
                    .bearer_auth(writer(app, "mut-a"))
                    .header("if-match", "\"1\"")
                    .json(&json!({"phone": "+22890777777"})),
            )
            .await;
        assert_eq!(fixed.status.as_u16(), 200, "{}", fixed.text);
    }
    let reply = patch_coverage(app, &cover, &json!({"status": "terminated", "end_date": "2026-06-30"})).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let corrections = format!(
        "SELECT count(*) FROM webhook_deliveries WHERE subscription = '{dead}' AND event_type = 'beneficiary.changed'"
    );
    assert_eq!(app.db.scalar(&corrections).await, 2);

    let counted = erase(app, "2026-07-01", true).await;
    assert_eq!(
        (counted["people"].as_u64(), counted["webhook_deliveries"].as_u64()),
        (Some(3), Some(1)),
        "{counted}"
    );
    assert_eq!(app.db.scalar(&corrections).await, 2);
    let done = erase(app, "2026-07-01", false).await;
    assert_eq!(
        (done["people"].as_u64(), done["webhook_deliveries"].as_u64()),
        (Some(3), Some(1)),
        "{done}"
    );
    // The kept person's correction stays, to be sent again; nothing of the erased one does.
    assert_eq!(app.db.scalar(&corrections).await, 1);
    let naming_gone = format!(
        "SELECT count(*) FROM webhook_deliveries WHERE event_type = 'beneficiary.changed' AND payload LIKE '%{}%'",
        gone[0]
    );
    assert_eq!(app.db.scalar(&naming_gone).await, 0);
    assert_eq!(
        app.db
            .scalar(
                "SELECT count(*) FROM webhook_attempts a LEFT JOIN webhook_deliveries d \
        ON d.id = a.delivery WHERE d.id IS NULL"
            )
            .await,
        0
    );
    assert_eq!(erase(app, "2026-07-01", false).await["webhook_deliveries"], 0);

    // Each erased record announced once to mut-a and the auditor, as the webhook's schema says
    // (`wait_for` checks each body against the OpenAPI document), with its id alone.
    for (who, r) in [("mut-a", &for_a), ("audit-x", &for_auditor)] {
        let got = wait_for(r, 3, std::time::Duration::from_secs(10)).await;
        assert_eq!(got.len(), 3, "{who}");
        let mut ids = Vec::new();
        for (_, _, body) in &got {
            let event: Value = serde_json::from_str(body).unwrap();
            assert_eq!(event["type"], "beneficiary.erased", "{who}");
            assert_eq!(event["organization"], "operator", "{who}");
            let data = event["data"].as_object().unwrap();
            let mut members: Vec<&str> = data.keys().map(String::as_str).collect();
            members.sort_unstable();
            assert_eq!(members, ["erased_at", "id", "version"], "{who}: {body}");
            // The principal was corrected once before: version 3; the dependants 2.
            let version = if data["id"] == gone[0].as_str() { 3 } else { 2 };
            assert_eq!(
                (&event["version"], &data["version"]),
                (&json!(version), &json!(version)),
                "{body}"
            );
            assert!(!body.contains("Agb") && !body.contains("555555555555"), "{body}");
            ids.push(data["id"].as_str().unwrap().to_owned());
        }
        ids.sort_unstable();
        let mut expected = gone.clone();
        expected.sort_unstable();
        assert_eq!(ids, expected, "{who}");
    }
    // mut-b never covered them: told nothing, then or now.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(wait_for(&for_b, 1, std::time::Duration::ZERO).await.is_empty());
    let for_mut_b = "SELECT count(*) FROM webhook_deliveries d JOIN webhook_subscriptions w ON w.id = d.subscription \
                     WHERE w.organization = 'mut-b'";
    assert_eq!(app.db.scalar(for_mut_b).await, 0);
}

/// A record merged away is its merger's alone: an organisation that covers the person it went
/// into, but never covered the record, reads it as 404, and is not told of its erasure either
/// (it is told of the person's).
async fn a_merged_record_s_erasure_is_told_to_its_merger_alone(backend: Backend) {
    let r = registry_with(backend, |c| c.webhook_allow_insecure = true).await;
    let app = &r.app;
    let mine = writer(app, "mut-a");
    let inam = app.token("tg-inam", "registry:read registry:write");
    // Nothing listens there: the deliveries stay in the outbox to be counted.
    for org in ["mut-a", "tg-inam"] {
        let made = app
            .post(
                "/v1/webhooks",
                &app.token(org, "webhooks:write"),
                &json!({"url": "http://127.0.0.1:1/hook", "events": ["beneficiary.erased"]}),
            )
            .await;
        assert_eq!(made.status.as_u16(), 201, "{}", made.text);
    }
    let mut body = household(&r.product, "TSV-0900", "000000000000");
    body["principal"].as_object_mut().unwrap().remove("national_id");
    body["dependants"] = json!([]);
    let registered = register(app, "mut-a", "key-merged", &body).await;
    assert_eq!(registered.status.as_u16(), 201, "{}", registered.text);
    let record = registered.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cover = registered.json["members"][0]["coverage"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = patch_coverage(app, &cover, &json!({"status": "terminated", "end_date": "2026-01-31"})).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let base = app.create_base_product(&inam).await;
    let affiliated = app
        .post(
            "/v1/coverages",
            &inam,
            &json!({"product": base, "member_number": "INAM-9", "start_date": "2025-01-01", "end_date": "2026-02-28",
                    "beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "987654321098"},
                                    "family_name": "Dossou", "given_names": "Yao", "sex": "M", "birth_date": "1984-03-12"}}),
        )
        .await;
    assert_eq!(affiliated.status.as_u16(), 201, "{}", affiliated.text);
    let person = affiliated.json["beneficiary"].as_str().unwrap().to_owned();
    let merged = app
        .send(
            app.request(Method::POST, &format!("/v1/beneficiaries/{record}/merge"))
                .bearer_auth(&mine)
                .header("if-match", "\"1\"")
                .json(&json!({"national_id": {"country": "TG", "type": "NIU", "value": "987654321098"}})),
        )
        .await;
    assert_eq!(merged.status.as_u16(), 200, "{}", merged.text);
    app.get(&format!("/v1/beneficiaries/{record}"), &inam)
        .await
        .problem(404, "not_found");
    let done = erase(app, "2026-04-01", false).await;
    assert_eq!(
        (done["people"].as_u64(), done["merged_records"].as_u64()),
        (Some(1), Some(1)),
        "{done}"
    );
    let told = |org: &str, id: &str| {
        format!(
            "SELECT count(*) FROM webhook_deliveries d JOIN webhook_subscriptions w ON w.id = d.subscription \
             WHERE w.organization = '{org}' AND d.event_type = 'beneficiary.erased' AND d.payload LIKE '%\"id\":\"{id}\"%'"
        )
    };
    assert_eq!(app.db.scalar(&told("tg-inam", &record)).await, 0);
    assert_eq!(app.db.scalar(&told("mut-a", &record)).await, 1);
    // Both covered the person, whose coverages (mut-a's moved there by the merge) all ended.
    assert_eq!(app.db.scalar(&told("tg-inam", &person)).await, 1);
    assert_eq!(app.db.scalar(&told("mut-a", &person)).await, 1);
}

on_both_databases!(
    a_household_past_retention_is_erased_and_answered_as_gone,
    records_merged_into_an_erased_person_go_with_them,
    an_erasure_in_many_transactions_keeps_whoever_is_covered,
    a_dry_run_counts_households_freed_by_later_passes,
    an_erasure_is_announced_and_the_corrections_sent_of_the_person_forgotten,
    a_merged_record_s_erasure_is_told_to_its_merger_alone,
);
