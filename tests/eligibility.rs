//! API.md §5 Eligibility and §6: the front-desk check on both databases.

use passerelle_adapters::Backend;
use passerelle_tests::{conformance, on_both_databases, Reply, TestApp};
use serde_json::{json, Value};

use crate::registry::{household, register, registry, writer};

async fn check(app: &TestApp, token: &str, body: Value) -> Reply {
    app.post("/v1/eligibility-checks", token, &body).await
}

/// The organisations whose coverages an answer lists.
fn organizations(reply: &Reply) -> Vec<&str> {
    reply.json["coverages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["organization"].as_str().unwrap())
        .collect()
}

fn provider(app: &TestApp) -> String {
    app.token("cms-a", "eligibility:check")
}

struct Setup {
    app: TestApp,
    principal: String,
    spouse: String,
    principal_coverage: String,
}

async fn setup(backend: Backend, paid_through: &str) -> Setup {
    let r = registry(backend).await;
    let mut body = household(&r.product, "TSV-0001", "123456789012");
    body["paid_through"] = json!(paid_through);
    let reply = register(&r.app, "mut-a", "k1", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let m = &reply.json["members"];
    Setup {
        principal: m[0]["beneficiary"]["id"].as_str().unwrap().to_owned(),
        spouse: m[1]["beneficiary"]["id"].as_str().unwrap().to_owned(),
        principal_coverage: m[0]["coverage"]["id"].as_str().unwrap().to_owned(),
        app: r.app,
    }
}

async fn a_mutuelle_alone_pays_its_rate_with_floors(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let by_member = json!({"beneficiary": {"organization": "mut-a", "member_number": "TSV-0001"},
        "service_date": "2026-06-01", "care_level": "health_center", "category": "consultation", "amount_xof": 10001});
    let reply = check(app, &provider(app), by_member.clone()).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(reply.json["eligible"], true);
    assert_eq!(reply.json["beneficiary"], s.principal.as_str());
    // Member numbers are stored trimmed; a lookup is trimmed the same way.
    let mut spaced = by_member.clone();
    spaced["beneficiary"]["member_number"] = json!(" TSV-0001 ");
    let again = check(app, &provider(app), spaced).await;
    assert_eq!(again.json["beneficiary"], s.principal.as_str(), "{}", again.text);
    // So is every text and date (API.md §4), as a spreadsheet's cells often carry spaces.
    let padded = json!({"beneficiary": {"organization": " mut-a ", "member_number": "TSV-0001"},
        "service_date": " 2026-06-01 ", "care_level": "health_center\t", "category": " consultation",
        "amount_xof": 10001});
    let padded = check(app, &provider(app), padded).await;
    assert_eq!(padded.status.as_u16(), 200, "{}", padded.text);
    assert_eq!(padded.json["service_date"], "2026-06-01");
    assert_eq!(padded.json["estimate"], reply.json["estimate"], "{}", padded.text);
    let coverage = &reply.json["coverages"][0];
    assert_eq!(coverage["status"], "eligible");
    assert_eq!(coverage["rate_bp"], 10000);
    assert_eq!(coverage["remaining_ceiling_xof"], 150000);
    assert_eq!(
        reply.json["estimate"],
        json!({"billed_xof": 10001, "base_xof": 0, "complementary_xof": 10001, "patient_xof": 0})
    );

    // Pharmacy at 70 %: floor(10001 × 7000 / 10000) = 7000; the patient pays the other 3001.
    let pharmacy = json!({"beneficiary": {"id": s.principal}, "service_date": "2026-06-01", "care_level": "hospital",
        "category": "pharmacy", "amount_xof": 10001});
    let reply = check(app, &provider(app), pharmacy).await;
    assert_eq!(
        reply.json["estimate"],
        json!({"billed_xof": 10001, "base_xof": 0, "complementary_xof": 7000, "patient_xof": 3001})
    );

    // The same person by national id, in any spelling.
    let by_nid = json!({"beneficiary": {"national_id": {"country": "tg", "type": "NIU", "value": "1234 5678 9012"}},
        "service_date": "2026-06-01", "care_level": "health_center"});
    let reply = check(app, &provider(app), by_nid).await;
    assert_eq!(reply.json["beneficiary"], s.principal.as_str());
    assert!(reply.json.get("estimate").is_none());
}

async fn every_reason_is_reported_with_its_end(backend: Backend) {
    let s = setup(backend, "2026-01-31").await;
    let app = &s.app;
    // Day 74 of a 90-day waiting period, and contributions lapsed (paid to 01-31, 30 days' grace).
    let early = json!({"beneficiary": {"id": s.spouse}, "service_date": "2026-03-15", "care_level": "health_center",
        "category": "dental"});
    let reply = check(app, &provider(app), early).await;
    assert_eq!(reply.json["eligible"], false);
    let reasons = reply.json["coverages"][0]["reasons"].as_array().unwrap();
    let codes: Vec<&str> = reasons.iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert!(
        codes.contains(&"WAITING_PERIOD")
            && codes.contains(&"CONTRIBUTIONS_IN_ARREARS")
            && codes.contains(&"EXCLUDED_CATEGORY"),
        "{codes:?}"
    );
    let waiting = reasons.iter().find(|r| r["code"] == "WAITING_PERIOD").unwrap();
    assert_eq!(waiting["until"], "2026-04-01");
    assert!(waiting["message"].as_str().unwrap().len() > 3);

    // The principal pays: the spouse's eligibility follows the principal's payments.
    let pay = json!({"amount_xof": 6000, "period_start": "2026-02-01", "period_end": "2026-12-31", "paid_at": "2026-02-02", "reference": "R-1"});
    let paid = app
        .post(
            &format!("/v1/coverages/{}/contributions", s.principal_coverage),
            &writer(app, "mut-a"),
            &pay,
        )
        .await;
    assert_eq!(paid.status.as_u16(), 201, "{}", paid.text);
    let later = json!({"beneficiary": {"id": s.spouse}, "service_date": "2026-06-15", "care_level": "health_center"});
    let reply = check(app, &provider(app), later.clone()).await;
    assert_eq!(reply.json["eligible"], true, "{}", reply.text);

    // The membership is the principal's: suspended, or ended, it stops the spouse's coverage too.
    let principal_path = format!("/v1/coverages/{}", s.principal_coverage);
    let patch = |tag: String, body: Value| {
        app.send(
            app.request(reqwest::Method::PATCH, &principal_path)
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", tag)
                .json(&body),
        )
    };
    let current = app.get(&principal_path, &writer(app, "mut-a")).await;
    let suspended = patch(
        current.header("etag").unwrap().to_owned(),
        json!({"status": "suspended"}),
    )
    .await;
    assert_eq!(suspended.status.as_u16(), 200, "{}", suspended.text);
    let reply = check(app, &provider(app), later.clone()).await;
    assert_eq!(reply.json["eligible"], false, "{}", reply.text);
    assert_eq!(
        reply.json["coverages"][0]["reasons"][0]["code"], "SUSPENDED",
        "{}",
        reply.text
    );
    let claims = app.token("cms-a", "claims:submit");
    let refused = app
        .send(
            app.request(reqwest::Method::POST, "/v1/claims")
                .bearer_auth(&claims)
                .header("idempotency-key", "spouse-1")
                .json(
                    &json!({"external_id": "SP-1", "provider": "cms-a", "beneficiary": {"id": s.spouse},
                    "service_date": "2026-06-15", "care_level": "health_center",
                    "lines": [{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 3000}]}),
                ),
        )
        .await;
    assert_eq!(refused.json["status"], "rejected", "{}", refused.text);
    let ended = patch(
        suspended.header("etag").unwrap().to_owned(),
        json!({"status": "active", "end_date": "2026-06-30"}),
    )
    .await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
    assert_eq!(check(app, &provider(app), later).await.json["eligible"], true);
    let after = json!({"beneficiary": {"id": s.spouse}, "service_date": "2026-07-01", "care_level": "health_center"});
    let reply = check(app, &provider(app), after).await;
    assert_eq!(
        reply.json["coverages"][0]["reasons"][0]["code"], "ENDED",
        "{}",
        reply.text
    );
}

async fn who_may_ask_about_whom(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let body = json!({"beneficiary": {"id": s.principal}, "service_date": "2026-06-01", "care_level": "health_post"});
    assert_eq!(
        check(app, &app.token("mut-a", "eligibility:check"), body.clone())
            .await
            .status
            .as_u16(),
        200
    );
    check(app, &app.token("mut-b", "eligibility:check"), body.clone())
        .await
        .problem(404, "not_found");
    check(app, &app.token("audit-x", "eligibility:check"), body.clone())
        .await
        .problem(403, "forbidden");
    check(app, &app.token("cms-a", "registry:read"), body.clone())
        .await
        .problem(403, "forbidden");
    let unknown = json!({"beneficiary": {"id": "nobody"}, "care_level": "health_post"});
    check(app, &provider(app), unknown).await.problem(404, "not_found");
    let unknown_member =
        json!({"beneficiary": {"organization": "mut-a", "member_number": "NOPE"}, "care_level": "health_post"});
    check(app, &provider(app), unknown_member)
        .await
        .problem(404, "not_found");
    let unknown_id = "01937f0e-0000-7000-8000-000000000000";
    check(
        app,
        &provider(app),
        json!({"beneficiary": {"id": unknown_id}, "care_level": "health_post"}),
    )
    .await
    .problem(404, "not_found");
    // Every 404 left a trace: who asked, and the id asked about when it was sent as one,
    // whether or not such a person exists, so that the caller's own events tell it nothing.
    // Neither the typed-in `nobody` nor the member number is kept. The 403s are no checks.
    let events = app
        .get("/v1/audit-events?action=eligibility.not_found", &app.operator())
        .await;
    assert_eq!(events.status.as_u16(), 200, "{}", events.text);
    let mut seen: Vec<(String, String, String)> = events.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["resource_type"], "beneficiary", "{e}");
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            (s("organization"), s("resource_id"), s("subject"))
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        ("cms-a".to_owned(), String::new()),
        ("cms-a".to_owned(), String::new()),
        ("cms-a".to_owned(), unknown_id.to_owned()),
        ("mut-b".to_owned(), s.principal.clone()),
    ];
    expected.sort();
    assert_eq!(
        seen.into_iter().map(|(o, r, _)| (o, r)).collect::<Vec<_>>(),
        expected,
        "{}",
        events.text
    );
    assert!(
        !events.text.contains("NOPE") && !events.text.contains("nobody"),
        "{}",
        events.text
    );
}

async fn bad_checks_name_the_field(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let base = json!({"beneficiary": {"id": s.principal}, "care_level": "health_post"});
    // One year ahead is the limit (API.md §3), a calendar year: not 366 days.
    let today = chrono::Utc::now().date_naive();
    let a_year = today.checked_add_months(chrono::Months::new(12)).unwrap();
    let a_year_and_a_day = a_year.succ_opt().unwrap().to_string();
    let mut at_the_limit = base.clone();
    at_the_limit["service_date"] = json!(a_year.to_string());
    assert_eq!(check(app, &provider(app), at_the_limit).await.status.as_u16(), 200);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"service_date": "1899-12-31"}), "/service_date"),
        (json!({"service_date": "2999-01-01"}), "/service_date"),
        (json!({"service_date": "30/11/2026"}), "/service_date"),
        (json!({"service_date": "2026-6-1"}), "/service_date"),
        (json!({"service_date": "+2026-06-01"}), "/service_date"),
        (json!({"service_date": a_year_and_a_day}), "/service_date"),
        (json!({"care_level": "clinic"}), "/care_level"),
        (json!({"category": "magic"}), "/category"),
        (json!({"amount_xof": -1}), "/amount_xof"),
        (json!({"amount_xof": 1_000_000_000_001_i64}), "/amount_xof"),
        (json!({"amount_xof": "100"}), "/amount_xof"),
        (
            json!({"beneficiary": {"id": s.principal, "member_number": "X"}}),
            "/beneficiary",
        ),
        (
            json!({"beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "12"}}}),
            "/beneficiary/national_id/value",
        ),
        (
            json!({"beneficiary": {"national_id": {"country": "TG", "type": "CNI", "value": "123456789012"}}}),
            "/beneficiary/national_id/type",
        ),
        (json!({"colour": "blue"}), "/colour"),
    ];
    let before = app.audited().await;
    for (patch, field) in cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let reply = check(app, &provider(app), body).await;
        reply.problem(422, "validation_failed");
        assert!(
            reply.error_fields().iter().any(|f| f == field),
            "{field}: {}",
            reply.text
        );
    }
    // One fault, one error: a mistyped form of the person is that form's error alone (not also
    // an ambiguity), and a blank one is missing, not an unknown person.
    let exact: Vec<(Value, (&str, &str))> = vec![
        (json!({"id": 123}), ("/beneficiary/id", "invalid_type")),
        (
            json!({"national_id": "TG:NIU:123456789012"}),
            ("/beneficiary/national_id", "invalid_type"),
        ),
        (json!({"id": "   "}), ("/beneficiary/id", "required")),
        (
            json!({"organization": "mut-a", "member_number": ""}),
            ("/beneficiary/member_number", "required"),
        ),
        (
            json!({"organization": 123, "member_number": "M-1"}),
            ("/beneficiary/organization", "invalid_type"),
        ),
        (
            json!({"organization": "mut-a", "member_number": 42}),
            ("/beneficiary/member_number", "invalid_type"),
        ),
        (
            json!({"organization": "mut-a"}),
            ("/beneficiary/member_number", "required"),
        ),
        (
            json!({"national_id": {"country": "Togo", "type": "NIU", "value": "123456789012"}}),
            ("/beneficiary/national_id/country", "invalid_country"),
        ),
    ];
    // A mistyped one sent alone: its type, and the other missing.
    let mut body = base.clone();
    body["beneficiary"] = json!({"organization": 5});
    assert_eq!(
        check(app, &provider(app), body).await.field_codes(),
        [
            ("/beneficiary/organization".to_owned(), "invalid_type".to_owned()),
            ("/beneficiary/member_number".to_owned(), "required".to_owned())
        ]
    );
    for (person, (field, code)) in exact {
        let mut body = base.clone();
        body["beneficiary"] = person.clone();
        let reply = check(app, &provider(app), body).await;
        assert_eq!(reply.field_codes(), [(field.to_owned(), code.to_owned())], "{person}");
    }
    assert_eq!(app.audited().await, before, "refused checks are not audited");
}

/// The OpenAPI document's `PersonSelector` accepts exactly the forms the service reads: one of
/// an id, a national id, or an organisation with a member number, a member sent as `null`
/// counting as not sent. A generated client or a validator built from the document refuses
/// what the service would refuse, and nothing it would take.
async fn the_documented_person_forms_are_the_ones_read(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let nid = json!({"country": "TG", "type": "NIU", "value": "123456789012"});
    let forms = [
        json!({"id": s.principal}),
        json!({"national_id": nid}),
        json!({"organization": "mut-a", "member_number": "TSV-0001"}),
        json!({"id": s.principal, "national_id": null, "member_number": null}),
        json!({"id": null, "organization": "mut-a", "member_number": "TSV-0001"}),
        json!({}),
        json!({"id": null}),
        json!({"id": s.principal, "national_id": nid}),
        json!({"id": s.principal, "member_number": "TSV-0001"}),
        json!({"national_id": nid, "organization": "mut-a", "member_number": "TSV-0001"}),
        json!({"organization": "mut-a"}),
        json!({"member_number": "TSV-0001"}),
    ];
    let (mut taken, mut documented_forms) = (0, 0);
    for person in forms {
        let documented = conformance::check_schema("PersonSelector", &person).is_ok();
        let body = json!({"beneficiary": person, "care_level": "health_post"});
        let reply = check(app, &provider(app), body).await;
        let read = reply.status.as_u16() == 200;
        if !read {
            reply.problem(422, "validation_failed");
            assert!(
                reply.error_fields().iter().all(|f| f.starts_with("/beneficiary")),
                "{}",
                reply.text
            );
        }
        // The document names each form closed, for generated clients; the service also takes
        // the other members sent as null, as its description says.
        let null_members = person.as_object().unwrap().values().any(Value::is_null);
        assert_eq!(
            documented || (read && null_members),
            read,
            "{person}: documented {documented}, read {read}: {}",
            reply.text
        );
        documented_forms += usize::from(documented);
        taken += usize::from(read);
    }
    assert_eq!(documented_forms, 3, "the three forms");
    assert_eq!(taken, 5, "the three forms, two with members sent as null");
}

async fn checks_are_audited_in_groups_without_personal_data(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let before = app.audited().await;
    let token = provider(app);
    let body = json!({"beneficiary": {"id": s.principal}, "service_date": "2026-06-01", "care_level": "health_center"});
    let replies = futures::future::join_all((0..50).map(|_| check(app, &token, body.clone()))).await;
    assert!(replies.iter().all(|r| r.status.as_u16() == 200));
    assert_eq!(app.audited().await, before + 50);
    let events = app
        .get(
            &format!("/v1/audit-events?resource_id={}&limit=500", s.principal),
            &app.operator(),
        )
        .await;
    let items = events.json["items"].as_array().unwrap();
    assert_eq!(
        items
            .iter()
            .filter(|e| e["action"] == "eligibility.eligible" && e["organization"] == "cms-a")
            .count(),
        50
    );
    assert!(!events.text.contains("Agbéko") && !events.text.contains("123456789012"));
    let verify = app.get("/v1/audit-events/verify", &app.operator()).await;
    assert_eq!(verify.json["valid"], true);
}

/// Checks asked at the same moment are answered together by storage: each must still get its
/// own person, whichever way it names them, and an unknown person stays a 404 among the others.
async fn simultaneous_checks_each_get_their_own_answer(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mut people = Vec::new();
    for i in 0..6 {
        let mut body = household(&r.product, &format!("TSV-{i:04}"), &format!("10000000000{i}"));
        // Odd households' contributions lapsed long before the service date.
        body["paid_through"] = json!(if i % 2 == 0 { "2026-12-31" } else { "2026-01-31" });
        let reply = register(app, "mut-a", &format!("k{i}"), &body).await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        let principal = reply.json["members"][0]["beneficiary"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        people.push((i, principal));
    }
    let token = provider(app);
    let mut asked = Vec::new();
    for round in 0..5 {
        for (i, principal) in &people {
            let who = match (round + i) % 3 {
                0 => json!({"id": principal}),
                1 => json!({"national_id": {"country": "TG", "type": "NIU", "value": format!("10000000000{i}")}}),
                _ => json!({"organization": "mut-a", "member_number": format!("TSV-{i:04}")}),
            };
            asked.push((Some((*i, principal.clone())), who));
        }
        asked.push((
            None,
            json!({"organization": "mut-a", "member_number": format!("NOBODY-{round}")}),
        ));
    }
    let replies = futures::future::join_all(asked.iter().map(|(_, who)| {
        check(
            app,
            &token,
            json!({"beneficiary": who, "service_date": "2026-06-01", "care_level": "health_center"}),
        )
    }))
    .await;
    for ((expected, who), reply) in asked.iter().zip(&replies) {
        match expected {
            Some((i, principal)) => {
                assert_eq!(reply.status.as_u16(), 200, "{who}: {}", reply.text);
                assert_eq!(reply.json["beneficiary"], principal.as_str(), "{who}");
                assert_eq!(reply.json["eligible"], i % 2 == 0, "{who}: {}", reply.text);
            }
            None => {
                reply.problem(404, "not_found");
            }
        }
    }
}

/// A NUL character (U+0000) is refused wherever text comes in, alike on both databases.
/// PostgreSQL's text cannot hold it: a check carrying one in its member number used to fail the
/// batched facts statement, and with it the checks of other callers asked at the same moment.
async fn a_nul_character_is_refused_and_fails_no_one_else(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let token = provider(app);
    let good = json!({"beneficiary": {"id": s.principal}, "service_date": "2026-06-01", "care_level": "health_center"});
    let bad = json!({"beneficiary": {"organization": "mut-a", "member_number": "TSV\u{0}0001"},
        "service_date": "2026-06-01", "care_level": "health_center"});
    let replies = futures::future::join_all(
        (0..40).map(|i| check(app, &token, if i % 2 == 0 { bad.clone() } else { good.clone() })),
    )
    .await;
    for (i, reply) in replies.iter().enumerate() {
        if i % 2 == 0 {
            reply.problem(422, "validation_failed");
            assert_eq!(reply.error_fields(), ["/beneficiary/member_number"]);
            assert_eq!(reply.json["errors"][0]["code"], "invalid_character");
        } else {
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        }
    }
    // In a path, a NUL names nothing; in a query, the parameter is named; a write changes nothing.
    let reader = app.token("mut-a", "registry:read claims:read");
    app.get("/v1/claims/a%00b", &reader).await.problem(404, "not_found");
    app.get("/v1/beneficiaries/a%00b", &reader)
        .await
        .problem(404, "not_found");
    let listed = app.get("/v1/coverages?beneficiary=a%00b", &reader).await;
    listed.problem(422, "validation_failed");
    assert_eq!(listed.error_fields(), ["/query/beneficiary"]);
    // Named in any parameter of an operation that reads its query, once the caller is known;
    // an operation that reads none ignores it, as any parameter it does not read.
    let listed = app.get("/v1/coverages?beneficiary=x&other=%00", &reader).await;
    listed.problem(422, "validation_failed");
    assert_eq!(listed.error_fields(), ["/query/other"]);
    app.get("/v1/coverages?beneficiary=a%00b", "not-a-token")
        .await
        .problem(401, "unauthorized");
    // Escapes that are no UTF-8 are no text either: named, where they read as U+FFFD and the
    // filter quietly matched nothing.
    let audit = app.get("/v1/audit-events?organization=%FF", &app.operator()).await;
    audit.problem(422, "validation_failed");
    assert_eq!(
        audit.field_codes(),
        [("/query/organization".to_owned(), "invalid_encoding".to_owned())]
    );
    let listed = app.get("/v1/coverages?beneficiary=x&%C3=1", &reader).await;
    assert_eq!(
        listed.field_codes(),
        [("/query".to_owned(), "invalid_encoding".to_owned())]
    );
    let accented = app.get("/v1/coverages?beneficiary=%C3%A9", &reader).await;
    assert_eq!(accented.status.as_u16(), 200, "UTF-8 escapes read: {}", accented.text);
    let read = app.get("/v1/organizations/mut-a?x=%00", &reader).await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    let live = app.send(app.request(reqwest::Method::GET, "/health/live?x=%00")).await;
    assert_eq!(live.status.as_u16(), 200, "{}", live.text);
    let before = app.count("organizations").await;
    let created = app
        .post(
            "/v1/organizations",
            &app.token("operator", "admin"),
            &json!({"id": "mut-nul", "kind": "mutuelle", "country": "TG", "name": "Mutuelle\u{0}"}),
        )
        .await;
    created.problem(422, "validation_failed");
    assert_eq!(created.error_fields(), ["/name"]);
    assert_eq!(app.count("organizations").await, before);
}

/// A product changed from 2026-07-01 (80 % instead of 100 % at a health centre, a 50 000 ceiling
/// instead of 150 000): a check answers with the version in force on its service date, the day
/// before and the day the new one starts, for the rate, the ceiling left and the estimate.
async fn a_check_uses_the_version_in_force_on_the_service_date(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let token = writer(app, "mut-a");
    let coverage = app
        .get(&format!("/v1/coverages/{}", s.principal_coverage), &token)
        .await;
    let product_path = format!("/v1/products/{}", coverage.json["product"].as_str().unwrap());
    let mut v2 = crate::products::family_plan("2026-07-01");
    v2["rules"] = json!([{"care_level": "health_center", "rate_bp": 8000}, {"category": "pharmacy", "rate_bp": 7000}]);
    v2["annual_ceiling_xof"] = json!(50000);
    let put = app
        .send(
            app.request(reqwest::Method::PUT, &product_path)
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .json(&v2),
        )
        .await;
    assert_eq!(put.status.as_u16(), 200, "{}", put.text);
    let on = |service_date: &str| {
        json!({"beneficiary": {"id": s.principal}, "service_date": service_date, "care_level": "health_center",
               "category": "consultation", "amount_xof": 100001})
    };
    let before = check(app, &provider(app), on("2026-06-30")).await;
    assert_eq!(before.status.as_u16(), 200, "{}", before.text);
    let c = &before.json["coverages"][0];
    assert_eq!(
        (&c["status"], &c["rate_bp"], &c["remaining_ceiling_xof"]),
        (&json!("eligible"), &json!(10000), &json!(150000))
    );
    assert_eq!(
        before.json["estimate"],
        json!({"billed_xof": 100001, "base_xof": 0, "complementary_xof": 100001, "patient_xof": 0})
    );
    // From 2026-07-01: floor(100 001 × 0.8) = 80 000, held to the new 50 000 ceiling.
    let after = check(app, &provider(app), on("2026-07-01")).await;
    assert_eq!(after.status.as_u16(), 200, "{}", after.text);
    let c = &after.json["coverages"][0];
    assert_eq!(
        (&c["status"], &c["rate_bp"], &c["remaining_ceiling_xof"]),
        (&json!("eligible"), &json!(8000), &json!(50000))
    );
    assert_eq!(
        after.json["estimate"],
        json!({"billed_xof": 100001, "base_xof": 0, "complementary_xof": 50000, "patient_xof": 50001})
    );
}

/// mut-a's plan, held by the principal, gets `v2` as its second version.
async fn second_version(s: &Setup, v2: &Value) {
    let app = &s.app;
    let token = writer(app, "mut-a");
    let coverage = app
        .get(&format!("/v1/coverages/{}", s.principal_coverage), &token)
        .await;
    let product_path = format!("/v1/products/{}", coverage.json["product"].as_str().unwrap());
    let put = app
        .send(
            app.request(reqwest::Method::PUT, &product_path)
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .json(v2),
        )
        .await;
    assert_eq!(put.status.as_u16(), 200, "{}", put.text);
}

/// The principal's claim of one consultation on `day`, which must be rejected.
async fn refused_claim(s: &Setup, day: &str) -> Reply {
    let app = &s.app;
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 2500}]);
    let claimed = crate::claims::submit(
        app,
        &crate::claims::provider(app),
        "c1",
        &crate::claims::claim("EXT-1", &s.principal, day, lines),
    )
    .await;
    assert_eq!(claimed.json["status"], "rejected", "{}", claimed.text);
    claimed
}

/// A reason's `until` is the first day it no longer holds, under the version then in force: a
/// later version that shortens the waiting period brings the day forward.
async fn until_follows_a_later_version(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let token = writer(app, "mut-a");
    let on = json!({"beneficiary": {"id": s.principal}, "service_date": "2026-01-20", "care_level": "health_center",
           "category": "consultation"});
    let until = |reply: &passerelle_tests::Reply| {
        let reason = &reply.json["coverages"][0]["reasons"][0];
        json!({"code": reason["code"], "until": reason["until"]})
    };
    // Version 1 alone: 90 days from the start on 2026-01-01.
    let before = check(app, &provider(app), on.clone()).await;
    assert_eq!(
        until(&before),
        json!({"code": "WAITING_PERIOD", "until": "2026-04-01"}),
        "{}",
        before.text
    );
    let mut v2 = crate::products::family_plan("2026-02-01");
    v2["waiting_period_days"] = json!(30);
    second_version(&s, &v2).await;
    // From 2026-02-01 the 30 days, ended on 2026-01-31, are already past.
    let after = check(app, &provider(app), on.clone()).await;
    assert_eq!(
        until(&after),
        json!({"code": "WAITING_PERIOD", "until": "2026-02-01"}),
        "{}",
        after.text
    );
    // A claim refused for that day says the same.
    let claimed = refused_claim(&s, "2026-01-20").await;
    let reason = &claimed.json["reasons"][0];
    assert_eq!(
        (&reason["code"], &reason["until"]),
        (&json!("WAITING_PERIOD"), &json!("2026-02-01")),
        "{}",
        claimed.text
    );
    // A coverage that ends the day before never reaches that day: no day is named. Ending on
    // it, it does.
    let coverage_path = format!("/v1/coverages/{}", s.principal_coverage);
    for (end, expected) in [("2026-01-31", Value::Null), ("2026-02-01", json!("2026-02-01"))] {
        let tag = app.get(&coverage_path, &token).await.header("etag").unwrap().to_owned();
        let ended = app
            .send(
                app.request(reqwest::Method::PATCH, &coverage_path)
                    .bearer_auth(&token)
                    .header("if-match", tag)
                    .json(&json!({"end_date": end})),
            )
            .await;
        assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
        let reply = check(app, &provider(app), on.clone()).await;
        assert_eq!(
            until(&reply),
            json!({"code": "WAITING_PERIOD", "until": expected}),
            "{}",
            reply.text
        );
    }
}

/// Arrears carry no day of their own (a payment ends them), but a later version whose longer
/// grace reaches back over the service date ends them the day it takes effect, and the check of
/// that day agrees.
async fn arrears_end_with_a_later_versions_longer_grace(backend: Backend) {
    // Paid through June, 30 days' grace: in arrears from 2026-07-31.
    let s = setup(backend, "2026-06-30").await;
    let app = &s.app;
    let on = |day: &str| {
        json!({"beneficiary": {"id": s.principal}, "service_date": day, "care_level": "health_center",
               "category": "consultation"})
    };
    let reasons = |reply: &Reply| reply.json["coverages"][0]["reasons"].clone();
    let before = check(app, &provider(app), on("2026-09-15")).await;
    assert_eq!(
        before.json["coverages"][0]["reasons"].as_array().unwrap().len(),
        1,
        "{}",
        before.text
    );
    assert_eq!(
        before.json["coverages"][0]["reasons"][0]["code"],
        "CONTRIBUTIONS_IN_ARREARS"
    );
    assert!(
        before.json["coverages"][0]["reasons"][0].get("until").is_none(),
        "{}",
        before.text
    );
    let mut v2 = crate::products::family_plan("2026-10-01");
    v2["grace_period_days"] = json!(365);
    second_version(&s, &v2).await;
    let after = check(app, &provider(app), on("2026-09-15")).await;
    assert_eq!(reasons(&after)[0]["code"], "CONTRIBUTIONS_IN_ARREARS", "{}", after.text);
    assert_eq!(reasons(&after)[0]["until"], "2026-10-01", "{}", after.text);
    let that_day = check(app, &provider(app), on("2026-10-01")).await;
    assert_eq!(that_day.json["eligible"], true, "{}", that_day.text);
    // A claim refused for the earlier day names the same end.
    let claimed = refused_claim(&s, "2026-09-15").await;
    assert_eq!(claimed.json["reasons"], reasons(&after), "{}", claimed.text);
}

/// A child who passes the age limit (21) before the waiting period is over never reaches its
/// end: no day is named, in a check or a claim's refusal. A sibling a few days younger does.
async fn until_is_never_past_a_childs_age_limit(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let products = app.get("/v1/products", &writer(app, "mut-a")).await;
    let product = products.json["items"][0]["id"].as_str().unwrap().to_owned();
    let mut body = household(&product, "TSV-0002", "223456789012");
    // 22 on 2026-03-31, the day before the 90 days from 2026-01-01 end; and 22 on 2026-04-02.
    body["dependants"] = json!([
        {"relationship": "child", "family_name": "Agbéko", "given_names": "Afi", "sex": "F", "birth_date": "2004-03-31"},
        {"relationship": "child", "family_name": "Agbéko", "given_names": "Komi", "sex": "M", "birth_date": "2004-04-02"}
    ]);
    let reply = register(app, "mut-a", "grown", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let id = |i: usize| {
        reply.json["members"][i]["beneficiary"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (child, until) in [(id(1), Value::Null), (id(2), json!("2026-04-01"))] {
        let on = json!({"beneficiary": {"id": child}, "service_date": "2026-01-20", "care_level": "health_center",
               "category": "consultation"});
        let checked = check(app, &provider(app), on).await;
        let reason = &checked.json["coverages"][0]["reasons"][0];
        assert_eq!(
            json!({"code": reason["code"], "until": reason["until"]}),
            json!({"code": "WAITING_PERIOD", "until": until}),
            "{}",
            checked.text
        );
        let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 2500}]);
        let claimed = crate::claims::submit(
            app,
            &crate::claims::provider(app),
            &format!("c-{child}"),
            &crate::claims::claim(&format!("EXT-{child}"), &child, "2026-01-20", lines),
        )
        .await;
        assert_eq!(claimed.json["status"], "rejected", "{}", claimed.text);
        assert_eq!(claimed.json["reasons"][0]["until"], until, "{}", claimed.text);
    }
}

on_both_databases!(
    until_is_never_past_a_childs_age_limit,
    a_child_is_covered_from_its_birth,
    until_follows_a_later_version,
    arrears_end_with_a_later_versions_longer_grace,
    a_check_uses_the_version_in_force_on_the_service_date,
    a_nul_character_is_refused_and_fails_no_one_else,
    simultaneous_checks_each_get_their_own_answer,
    a_mutuelle_alone_pays_its_rate_with_floors,
    every_reason_is_reported_with_its_end,
    who_may_ask_about_whom,
    bad_checks_name_the_field,
    the_documented_person_forms_are_the_ones_read,
    checks_are_audited_in_groups_without_personal_data,
    base_then_complementary,
    a_dependant_without_a_number_is_named_by_birth_date,
);

/// A dependant with no member number of their own carries the household's, which alone names
/// the principal: their birth date tells them apart (API.md §5 Eligibility), in a check and in a
/// claim. Before, a front desk holding the household's card had no way to name the child.
async fn a_dependant_without_a_number_is_named_by_birth_date(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mut body = household(&r.product, "TSV-0003", "323456789012");
    let twin = |name: &str, sex: &str| json!({"relationship": "child", "family_name": "Agbéko", "given_names": name, "sex": sex, "birth_date": "2020-02-02"});
    body["dependants"]
        .as_array_mut()
        .unwrap()
        .extend([twin("Kafui", "F"), twin("Kodjo", "M")]);
    let reply = register(app, "mut-a", "twins", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let id = |n: usize| {
        reply.json["members"][n]["beneficiary"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (principal, spouse, child) = (id(0), id(1), id(2));
    let ask = |born: Option<&str>| {
        let mut person = json!({"organization": "mut-a", "member_number": "tsv-0003"});
        if let Some(born) = born {
            person["birth_date"] = json!(born);
        }
        json!({"beneficiary": person, "service_date": "2026-06-01", "care_level": "health_center",
               "category": "consultation", "amount_xof": 5000})
    };
    for (born, who) in [
        (None, &principal),
        (Some("1984-03-12"), &principal),
        (Some("2015-07-30"), &child),
        // A year given compares years, and so does a year stored (the spouse's).
        (Some("2015"), &child),
        (Some("1988"), &spouse),
        (Some("1988-06-01"), &spouse),
    ] {
        let reply = check(app, &provider(app), ask(born)).await;
        assert_eq!(reply.status.as_u16(), 200, "{born:?}: {}", reply.text);
        assert_eq!(&reply.json["beneficiary"], who.as_str(), "{born:?}");
    }
    // The twins, neither with a number of their own, are told apart by no birth date.
    let twins = check(app, &provider(app), ask(Some("2020-02-02"))).await;
    assert_eq!(
        twins.problem(422, "validation_failed")["errors"][0]["field"],
        "/beneficiary/birth_date"
    );
    assert_eq!(
        twins.field_codes(),
        [("/beneficiary/birth_date".to_owned(), "ambiguous_person".to_owned())]
    );
    let nobody = check(app, &provider(app), ask(Some("2001-01-01"))).await;
    assert_eq!(nobody.status.as_u16(), 404, "{}", nobody.text);
    // Neither answer names anyone, and each is audited as a check that found no one.
    let not_found = || async {
        let events = app
            .get(
                "/v1/audit-events?action=eligibility.not_found&limit=500",
                &app.operator(),
            )
            .await;
        events.json["items"].as_array().unwrap().len()
    };
    assert_eq!(not_found().await, 2);
    // Another mutuelle asking under mut-a's numbers is told nothing of who they cover: 404,
    // whether several people, one or no one was born on that day.
    let other = app.token("mut-b", "eligibility:check");
    for born in ["2020-02-02", "2015-07-30", "2001-01-01"] {
        assert_eq!(check(app, &other, ask(Some(born))).await.status.as_u16(), 404, "{born}");
    }
    assert_eq!(not_found().await, 5);
    for (person, code) in [
        (json!({"id": child, "birth_date": "2015-07-30"}), "not_allowed"),
        (
            json!({"organization": "mut-a", "member_number": "TSV-0003", "birth_date": "2015-02-30"}),
            "invalid_date",
        ),
        (
            json!({"organization": "mut-a", "member_number": "TSV-0003", "birth_date": 2015}),
            "invalid_type",
        ),
    ] {
        let reply = check(
            app,
            &provider(app),
            json!({"beneficiary": person, "care_level": "health_center"}),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 422, "{}", reply.text);
        assert_eq!(
            reply.field_codes(),
            [("/beneficiary/birth_date".to_owned(), code.to_owned())]
        );
    }
    let own = app.token("mut-a", "eligibility:check");
    assert_eq!(
        check(app, &own, ask(Some("2015-07-30"))).await.json["beneficiary"],
        child.as_str()
    );
    // A claim naming the twins lists that fault with the others.
    let twins_claim = app
        .send(
            app.request(reqwest::Method::POST, "/v1/claims")
                .bearer_auth(app.token("cms-a", "claims:submit"))
                .header("idempotency-key", "twins-1")
                .json(&json!({"external_id": "TWINS-1", "provider": "cms-a",
                    "beneficiary": {"organization": "mut-a", "member_number": "TSV-0003", "birth_date": "2020-02-02"},
                    "service_date": "2026-06-01", "care_level": "health_center",
                    "lines": [{"code": "C", "category": "consultation", "quantity": 0, "unit_price_xof": 5000}]})),
        )
        .await;
    let mut faults = twins_claim.field_codes();
    faults.sort();
    assert_eq!(
        faults,
        [
            ("/beneficiary/birth_date".to_owned(), "ambiguous_person".to_owned()),
            ("/lines/0/quantity".to_owned(), "out_of_range".to_owned()),
        ]
    );
    // Of twins, one whose coverage was terminated, the other is meant.
    let kafui_coverage = reply.json["members"][3]["coverage"]["id"].as_str().unwrap().to_owned();
    let terminated = app
        .send(
            app.request(reqwest::Method::PATCH, &format!("/v1/coverages/{kafui_coverage}"))
                .bearer_auth(crate::registry::writer(app, "mut-a"))
                .header("if-match", "*")
                .json(&json!({"status": "terminated"})),
        )
        .await;
    assert_eq!(terminated.status.as_u16(), 200, "{}", terminated.text);
    let kodjo = id(4);
    assert_eq!(
        check(app, &provider(app), ask(Some("2020-02-02"))).await.json["beneficiary"],
        kodjo.as_str()
    );
    // A claim so named is the child's, priced on the child's coverage alone.
    let claim = app
        .send(
            app.request(reqwest::Method::POST, "/v1/claims")
                .bearer_auth(app.token("cms-a", "claims:submit"))
                .header("idempotency-key", "child-1")
                .json(&json!({"external_id": "CHILD-1", "provider": "cms-a",
                    "beneficiary": {"organization": "mut-a", "member_number": "TSV-0003", "birth_date": "2015-07-30"},
                    "service_date": "2026-06-01", "care_level": "health_center",
                    "lines": [{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 5000}]})),
        )
        .await;
    assert_eq!(claim.status.as_u16(), 201, "{}", claim.text);
    assert_eq!(claim.json["beneficiary"], child.as_str());
    assert_eq!(claim.json["totals"]["complementary_xof"], 5000, "{}", claim.text);
}

/// TG: INAM pays 80 % first, the mutuelle its rate of the remainder (the ticket modérateur).
async fn base_then_complementary(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let inam = app.token("tg-inam", "registry:read registry:write eligibility:check");
    let base = app.create_base_product(&inam).await;
    let affiliation = json!({"product": base, "member_number": "INAM-0001", "start_date": "2025-01-01",
        "beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"}, "family_name": "Agbeko",
                        "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12"}});
    let created = app.post("/v1/coverages", &inam, &affiliation).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(
        created.json["beneficiary"],
        s.principal.as_str(),
        "matched by national id"
    );
    assert_eq!(created.json["layer"], "base");
    assert!(created.header("location").unwrap().starts_with("/v1/coverages/"));
    // A scheme names a person by its own numbers, not by a mutuelle's, even one it covers: asking
    // another organisation's numbers in turn would list which of its affiliates that one holds.
    let by_number = |organization: &str, number: &str| {
        json!({"beneficiary": {"organization": organization, "member_number": number},
            "service_date": "2026-06-01", "care_level": "health_post"})
    };
    let own = check(app, &inam, by_number("tg-inam", "INAM-0001")).await;
    assert_eq!(own.status.as_u16(), 200, "{}", own.text);
    check(app, &inam, by_number("mut-a", "TSV-0001"))
        .await
        .problem(404, "not_found");
    let by_provider = check(app, &provider(app), by_number("mut-a", "TSV-0001")).await;
    assert_eq!(by_provider.status.as_u16(), 200, "{}", by_provider.text);

    let ask_at = |care_level: &str, category: &str| {
        json!({"beneficiary": {"id": s.principal}, "service_date": "2026-06-01", "care_level": care_level,
               "category": category, "amount_xof": 10001})
    };
    let ask = |category: &str| ask_at("health_center", category);
    // base = floor(10001 × 0.8) = 8000; remainder 2001 paid in full by the mutuelle.
    let reply = check(app, &provider(app), ask("consultation")).await;
    assert_eq!(
        reply.json["estimate"],
        json!({"billed_xof": 10001, "base_xof": 8000, "complementary_xof": 2001, "patient_xof": 0})
    );
    let layers: Vec<&str> = reply.json["coverages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["layer"].as_str().unwrap())
        .collect();
    assert_eq!(layers.len(), 2);
    assert!(layers.contains(&"base") && layers.contains(&"complementary"));
    // Pharmacy at a hospital, 70 % of the remainder: floor(2001 × 0.7) = 1400; the patient pays 601.
    let reply = check(app, &provider(app), ask_at("hospital", "pharmacy")).await;
    assert_eq!(
        reply.json["estimate"],
        json!({"billed_xof": 10001, "base_xof": 8000, "complementary_xof": 1400, "patient_xof": 601})
    );
    // The scheme checks its affiliate: it sees its own coverage alone; the mutuelle's coverage,
    // rate and ceiling are not its to read, nor the estimate, which would need them.
    let reply = check(app, &inam, ask("consultation")).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let seen = reply.json["coverages"].as_array().unwrap();
    assert_eq!(seen.len(), 1, "{}", reply.text);
    assert_eq!(
        (&seen[0]["organization"], &seen[0]["layer"]),
        (&json!("tg-inam"), &json!("base"))
    );
    assert!(reply.json.get("estimate").is_none(), "{}", reply.text);
    // The mutuelle sees its own coverage and the base affiliation it takes its share after.
    let mutuelle = app.token("mut-a", "eligibility:check");
    let reply = check(app, &mutuelle, ask("consultation")).await;
    let orgs = organizations(&reply);
    assert_eq!(orgs.len(), 2, "{}", reply.text);
    assert!(orgs.contains(&"mut-a") && orgs.contains(&"tg-inam"), "{orgs:?}");
    assert!(reply.json.get("estimate").is_none(), "{}", reply.text);
    // Its own coverage lapsed (paid to 2026-12-31, 30 days' grace): it says so; the person is
    // still eligible, through the base affiliation the mutuelle sees.
    let lapsed = json!({"beneficiary": {"id": s.principal}, "service_date": "2027-03-01",
        "care_level": "health_center", "category": "consultation"});
    let reply = check(app, &mutuelle, lapsed).await;
    assert_eq!(reply.json["eligible"], true, "{}", reply.text);
    let own = reply.json["coverages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["organization"] == "mut-a")
        .unwrap();
    assert_eq!(own["status"], "not_eligible", "{}", reply.text);
    assert_eq!(own["reasons"][0]["code"], "CONTRIBUTIONS_IN_ARREARS", "{}", reply.text);
    // Another mutuelle covering the same person sees neither mut-a's coverage nor its share.
    let plan_b = app
        .post(
            "/v1/products",
            &writer(app, "mut-b"),
            &crate::products::family_plan("2026-01-01"),
        )
        .await;
    let mut body_b = household(plan_b.json["id"].as_str().unwrap(), "B-1", "123456789012");
    body_b["dependants"] = json!([]);
    let joined = register(app, "mut-b", "b1", &body_b).await;
    assert_eq!(joined.status.as_u16(), 201, "{}", joined.text);
    let reply = check(app, &app.token("mut-b", "eligibility:check"), ask("consultation")).await;
    let orgs = organizations(&reply);
    assert!(!orgs.contains(&"mut-a"), "{orgs:?}");
    assert!(orgs.contains(&"mut-b") && orgs.contains(&"tg-inam"), "{orgs:?}");

    // Base affiliations are the schemes' alone, and reference only what they may see.
    let mutuelle = app.post("/v1/coverages", &writer(app, "mut-a"), &affiliation).await;
    mutuelle.problem(403, "forbidden");
    let mut unknown = affiliation.clone();
    unknown["product"] = json!("nope");
    unknown["member_number"] = json!("INAM-0002");
    unknown["beneficiary"] = json!({"id": s.spouse});
    let reply = app.post("/v1/coverages", &inam, &unknown).await;
    reply.problem(422, "validation_failed");
    let mut fields = reply.error_fields();
    fields.sort();
    assert_eq!(fields, ["/beneficiary/id", "/product"]);
    let again = app.post("/v1/coverages", &inam, &affiliation).await;
    again.problem(409, "conflict");
    assert_eq!(again.json["errors"][0]["field"], "/member_number", "{}", again.text);
    assert_eq!(again.json["errors"][0]["code"], "member_number_taken");
    let mut renumbered = affiliation.clone();
    renumbered["member_number"] = json!("INAM-0003");
    let twice = app.post("/v1/coverages", &inam, &renumbered).await;
    twice.problem(409, "conflict");
    assert_eq!(twice.json["errors"][0]["field"], "/beneficiary", "{}", twice.text);
    assert_eq!(twice.json["errors"][0]["code"], "already_covered");
    // No one is covered before birth, by a base affiliation no more than by a registration: by
    // fields at the birth date sent, by id at the start date (the birth date is not repeated).
    let mut unborn = affiliation.clone();
    unborn["member_number"] = json!("INAM-0004");
    unborn["beneficiary"]["national_id"]["value"] = json!("223456789012");
    unborn["beneficiary"]["birth_date"] = json!("2025-01-02");
    let reply = app.post("/v1/coverages", &inam, &unborn).await;
    reply.problem(422, "validation_failed");
    assert_eq!(
        reply.field_codes(),
        [("/beneficiary/birth_date".to_owned(), "born_after_start".to_owned())]
    );
    let mut by_id = affiliation.clone();
    by_id["member_number"] = json!("INAM-0005");
    by_id["start_date"] = json!("1984-03-11");
    by_id["beneficiary"] = json!({"id": s.principal});
    let reply = app.post("/v1/coverages", &inam, &by_id).await;
    assert_eq!(
        reply.field_codes(),
        [("/start_date".to_owned(), "before_birth".to_owned())]
    );
    assert!(!reply.text.contains("1984-03-12"), "{}", reply.text);
}

/// A household's dependants share its start date, and a file of the household posted again keeps
/// it while its children are born (API.md §5): a child born since is covered from its birth, and
/// care before it is neither eligible nor paid.
async fn a_child_is_covered_from_its_birth(backend: Backend) {
    let s = setup(backend, "2026-12-31").await;
    let app = &s.app;
    let products = app.get("/v1/products", &writer(app, "mut-a")).await;
    let product = products.json["items"][0]["id"].as_str().unwrap().to_owned();
    let mut body = household(&product, "TSV-0002", "223456789012");
    body["dependants"] = json!([{"relationship": "child", "family_name": "Agbéko", "given_names": "Afi",
                                 "sex": "F", "birth_date": "2026-05-10"}]);
    let reply = register(app, "mut-a", "newborn", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let child = reply.json["members"][1]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reply.json["members"][1]["coverage"]["start_date"], "2026-01-01");
    let on = |date: &str| {
        json!({"beneficiary": {"id": child}, "service_date": date, "care_level": "health_center",
               "category": "consultation", "amount_xof": 3000})
    };
    let before = check(app, &provider(app), on("2026-05-09")).await;
    assert_eq!(before.json["eligible"], false, "{}", before.text);
    assert_eq!(
        before.json["coverages"][0]["reasons"],
        json!([{"code": "NOT_STARTED", "message": "la couverture n'a pas encore commencé", "until": "2026-05-10"}])
    );
    assert_eq!(before.json["estimate"]["patient_xof"], 3000, "{}", before.text);
    let born = check(app, &provider(app), on("2026-05-10")).await;
    assert_eq!(born.json["eligible"], true, "{}", born.text);
    let claim = |key: &str, date: &str| {
        app.send(
            app.request(reqwest::Method::POST, "/v1/claims")
                .bearer_auth(app.token("cms-a", "claims:submit"))
                .header("idempotency-key", key)
                .json(
                    &json!({"external_id": key, "provider": "cms-a", "beneficiary": {"id": child},
                    "service_date": date, "care_level": "health_center",
                    "lines": [{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 3000}]}),
                ),
        )
    };
    let refused = claim("NB-1", "2026-05-09").await;
    assert_eq!(refused.json["status"], "rejected", "{}", refused.text);
    assert_eq!(refused.json["totals"]["complementary_xof"], 0, "{}", refused.text);
    let paid = claim("NB-2", "2026-05-10").await;
    assert_eq!(paid.json["totals"]["complementary_xof"], 3000, "{}", paid.text);
}

/// With `PASSERELLE_DATABASE_READ_URL`, checks read the replica and everything else the primary.
/// Cutting the replica's connection moves checks to the primary (readiness says so and stays
/// green) while claims, which must never read a lagging copy, price from the primary as always;
/// once the replica answers again, checks go back to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_checks_read_the_replica_and_claims_the_primary() {
    use passerelle_tests::proxy::Proxy;
    let s = setup(Backend::Postgres, "2026-12-31").await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let replica = s
        .app
        .db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let app = s
        .app
        .restart(|c| {
            c.database_read_url = Some(replica);
            c.database_read_timeout = std::time::Duration::from_millis(250);
        })
        .await;
    let ready = || async { app.send(app.request(reqwest::Method::GET, "/health/ready")).await };
    assert_eq!(ready().await.json, json!({"status": "ready", "read_replica": "up"}));
    let body = json!({"beneficiary": {"id": s.principal}, "service_date": "2026-06-01", "care_level": "health_center"});
    let answer = check(&app, &provider(&app), body.clone()).await;
    assert_eq!(answer.status.as_u16(), 200);
    // Bytes sent to the replica by three checks (the probe's pings are a few dozen at most).
    let three_checks = || async {
        let before = proxy.sent();
        for _ in 0..3 {
            let reply = check(&app, &provider(&app), body.clone()).await;
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
            assert_eq!(reply.json["coverages"], answer.json["coverages"]);
        }
        proxy.sent() - before
    };
    let on_replica = three_checks().await;
    assert!(on_replica > 300, "checks did not read the replica: {on_replica} bytes");

    // The replica goes silent: its connections stay open and nothing comes back. The check that
    // finds out waits for the read timeout (250 ms here, 1 s by default), then is answered from
    // the primary.
    proxy.stall();
    let started = std::time::Instant::now();
    let fallback = check(&app, &provider(&app), body.clone()).await;
    let waited = started.elapsed();
    assert_eq!(fallback.status.as_u16(), 200, "{}", fallback.text);
    assert_eq!(fallback.json["coverages"], answer.json["coverages"]);
    assert!(
        waited >= std::time::Duration::from_millis(250) && waited < std::time::Duration::from_millis(900),
        "{waited:?}"
    );
    assert_eq!(ready().await.json, json!({"status": "ready", "read_replica": "down"}));
    // While it is down, no check sends it anything.
    let while_down = three_checks().await;
    assert!(
        while_down < on_replica / 2,
        "checks still went to the replica: {while_down} bytes"
    );

    // Back: the probe sees it answer, and checks read it again.
    proxy.restore();
    let mut waited = 0;
    while ready().await.json["read_replica"] != "up" {
        assert!(waited < 100, "the replica was not seen answering again within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let back = three_checks().await;
    assert!(back > 300, "checks did not go back to the replica: {back} bytes");
    eprintln!("bytes to the replica for three checks: up {on_replica}, down {while_down}, back {back}");

    proxy.cut();
    let claim = json!({"external_id": "PRIMARY-1", "provider": "cms-a", "beneficiary": {"id": s.principal},
        "service_date": "2026-06-01", "care_level": "health_center",
        "lines": [{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]});
    let token = app.token("cms-a", "claims:submit");
    let reply = app
        .send(
            app.request(reqwest::Method::POST, "/v1/claims")
                .bearer_auth(token)
                .header("idempotency-key", "p1")
                .json(&claim),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
}
