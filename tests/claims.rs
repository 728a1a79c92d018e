//! API.md §5 Claims and §6: pricing, the state machine, and exactness under concurrency.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::registry::{household, register, registry, writer};

pub struct Setup {
    pub app: TestApp,
    /// mut-a's family plan.
    pub product: String,
    pub principal: String,
    pub spouse: String,
}

/// mut-a's family plan (ceiling 150 000, 90 days' wait) for a household from 2026-01-01; INAM's
/// base product at 80 % for the principal only.
pub async fn setup(backend: Backend) -> Setup {
    let r = registry(backend).await;
    let reply = register(
        &r.app,
        "mut-a",
        "k1",
        &household(&r.product, "TSV-0001", "123456789012"),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let (app, product) = (r.app, r.product);
    let inam = app.token("tg-inam", "registry:read registry:write claims:submit claims:read");
    let base = app.create_base_product(&inam).await;
    let affiliation = json!({"product": base, "member_number": "INAM-1", "start_date": "2025-01-01",
        "beneficiary": {"id": reply.json["members"][0]["beneficiary"]["id"]}});
    // The scheme cannot reference a person it does not cover yet: it gives the person's fields.
    let affiliation_by_fields = json!({"product": base, "member_number": "INAM-1", "start_date": "2025-01-01",
        "beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"}, "family_name": "Agbéko",
                        "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12"}});
    assert_eq!(
        app.post("/v1/coverages", &inam, &affiliation).await.status.as_u16(),
        422
    );
    assert_eq!(
        app.post("/v1/coverages", &inam, &affiliation_by_fields)
            .await
            .status
            .as_u16(),
        201
    );
    Setup {
        product,
        principal: reply.json["members"][0]["beneficiary"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        spouse: reply.json["members"][1]["beneficiary"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        app,
    }
}

/// The six states of a claim (API.md §5 Claims).
const CLAIM_STATES: [&str; 6] = [
    "awaiting_base",
    "awaiting_complementary",
    "adjudicated",
    "settled",
    "rejected",
    "cancelled",
];

pub fn provider(app: &TestApp) -> String {
    app.token("cms-a", "claims:submit claims:read eligibility:check")
}

pub fn claim(external_id: &str, person: &str, date: &str, lines: Value) -> Value {
    json!({"external_id": external_id, "provider": "cms-a", "beneficiary": {"id": person}, "service_date": date,
           "care_level": "health_center", "diagnoses": ["J06.9"], "lines": lines})
}

/// A claim sent as this very text: its spacing, or numbers a `Value` would not keep as written.
pub async fn submit_text(app: &TestApp, token: &str, key: &str, body: String) -> Reply {
    app.send(
        app.request(Method::POST, "/v1/claims")
            .bearer_auth(token)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

pub async fn submit(app: &TestApp, token: &str, key: &str, body: &Value) -> Reply {
    app.send(
        app.request(Method::POST, "/v1/claims")
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(body),
    )
    .await
}

fn sum_ok(c: &Value) {
    for l in c["lines"].as_array().unwrap() {
        let total = l["base_xof"].as_i64().unwrap()
            + l["complementary_xof"].as_i64().unwrap()
            + l["patient_xof"].as_i64().unwrap();
        assert_eq!(total, l["billed_xof"].as_i64().unwrap(), "{l}");
    }
    let t = &c["totals"];
    assert_eq!(
        t["base_xof"].as_i64().unwrap() + t["complementary_xof"].as_i64().unwrap() + t["patient_xof"].as_i64().unwrap(),
        t["billed_xof"].as_i64().unwrap()
    );
}

async fn a_claim_goes_from_base_to_complementary_to_adjudicated(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 10001},
                       {"code": "PARA", "category": "pharmacy", "quantity": 3, "unit_price_xof": 1111}]);
    let created = submit(
        app,
        &provider(app),
        "c1",
        &claim("EXT-1", &s.principal, "2026-06-01", lines),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), Some(format!("/v1/claims/{id}").as_str()));
    assert_eq!(created.json["status"], "awaiting_base");
    assert_eq!(created.json["base_payer"], "tg-inam");
    assert_eq!(created.json["routed_to"], "mut-a");
    // Line 2: billed 3333, base floor(3333 × 0.8) = 2666, remainder 667 at 100 % (health centre).
    assert_eq!(created.json["lines"][1]["base_xof"], 2666);
    assert_eq!(created.json["lines"][1]["complementary_xof"], 667);
    sum_ok(&created.json);

    let inam = app.token("tg-inam", "claims:submit claims:read");
    let base = app
        .post(
            &format!("/v1/claims/{id}/base-adjudication"),
            &inam,
            &json!({"lines": [{"line": 1, "paid_xof": 5000}, {"line": 2, "paid_xof": 3333}]}),
        )
        .await;
    assert_eq!(base.status.as_u16(), 200, "{}", base.text);
    assert_eq!(base.json["status"], "awaiting_complementary");
    assert_eq!(base.json["lines"][0]["complementary_xof"], 5001);
    assert_eq!(base.json["lines"][1]["complementary_xof"], 0);
    sum_ok(&base.json);

    let mutuelle = app.token("mut-a", "claims:adjudicate claims:read");
    let decided = app
        .post(&format!("/v1/claims/{id}/adjudication"), &mutuelle, &json!({"lines": [{"line": 1, "decision": "reduce", "approved_xof": 4000}, {"line": 2, "decision": "accept"}]}))
        .await;
    assert_eq!(decided.status.as_u16(), 200, "{}", decided.text);
    assert_eq!(decided.json["status"], "adjudicated");
    assert_eq!(decided.json["lines"][0]["complementary_xof"], 4000);
    assert_eq!(decided.json["lines"][0]["patient_xof"], 1001);
    assert_eq!(decided.json["lines"][0]["decision"], "reduce");
    sum_ok(&decided.json);

    // Each party reads it; another mutuelle does not.
    for token in [
        provider(app),
        inam.clone(),
        mutuelle.clone(),
        app.token("audit-x", "claims:read"),
    ] {
        assert_eq!(
            app.get(&format!("/v1/claims/{id}"), &token).await.json["status"],
            "adjudicated"
        );
    }
    app.get(&format!("/v1/claims/{id}"), &app.token("mut-b", "claims:read"))
        .await
        .problem(404, "not_found");
    let listed = app.get("/v1/claims?status=adjudicated", &mutuelle).await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1);
    let none = app.get("/v1/claims", &app.token("mut-b", "claims:read")).await;
    assert_eq!(none.json["items"], json!([]));
}

async fn only_legal_moves_by_the_right_party(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 5000}]);
    let created = submit(
        app,
        &provider(app),
        "c1",
        &claim("EXT-1", &s.principal, "2026-06-01", lines),
    )
    .await;
    let id = created.json["id"].as_str().unwrap().to_owned();
    let mutuelle = app.token("mut-a", "claims:adjudicate claims:read");
    let decide = json!({"lines": [{"line": 1, "decision": "accept"}]});
    let early = app
        .post(&format!("/v1/claims/{id}/adjudication"), &mutuelle, &decide)
        .await;
    assert_eq!(
        early.problem(409, "conflict")["errors"][0]["code"],
        "claim_awaiting_base"
    );
    app.post(
        &format!("/v1/claims/{id}/adjudication"),
        &app.token("cms-a", "claims:adjudicate"),
        &decide,
    )
    .await
    .problem(403, "forbidden");
    let inam = app.token("tg-inam", "claims:submit claims:read");
    app.post(&format!("/v1/claims/{id}/cancel"), &inam, &json!({}))
        .await
        .problem(403, "forbidden");
    let cancelled = app
        .post(&format!("/v1/claims/{id}/cancel"), &provider(app), &json!({}))
        .await;
    assert_eq!(cancelled.json["status"], "cancelled", "{}", cancelled.text);
    // A retried cancel that already succeeded is told apart by its code.
    let again = app
        .post(&format!("/v1/claims/{id}/cancel"), &provider(app), &json!({}))
        .await;
    assert_eq!(again.problem(409, "conflict")["errors"][0]["code"], "claim_cancelled");
    let late = app
        .post(
            &format!("/v1/claims/{id}/base-adjudication"),
            &inam,
            &json!({"lines": [{"line": 1, "paid_xof": 1}]}),
        )
        .await;
    assert_eq!(late.problem(409, "conflict")["errors"][0]["code"], "claim_cancelled");
}

async fn no_eligible_payer_puts_everything_on_the_patient(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    // The spouse has only the mutuelle, still in its 90-day waiting period on 2026-02-01.
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 2, "unit_price_xof": 2500}]);
    let created = submit(
        app,
        &provider(app),
        "c1",
        &claim("EXT-9", &s.spouse, "2026-02-01", lines),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.json["status"], "rejected");
    assert_eq!(
        created.json["totals"],
        json!({"billed_xof": 5000, "base_xof": 0, "complementary_xof": 0, "patient_xof": 5000})
    );
    let codes: Vec<&str> = created.json["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"WAITING_PERIOD"), "{codes:?}");
    let unknown = json!({"external_id": "X", "provider": "cms-a", "beneficiary": {"id": "nobody"}, "service_date": "2026-06-01",
        "care_level": "health_center", "lines": [{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 1}]});
    submit(app, &provider(app), "c2", &unknown)
        .await
        .problem(404, "not_found");
}

async fn bad_claims_write_nothing(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let line = |q: Value, p: Value, c: &str| json!({"code": "C", "category": c, "quantity": q, "unit_price_xof": p});
    let many: Vec<Value> = (0..1001).map(|_| line(json!(1), json!(1), "consultation")).collect();
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1)).to_string();
    let cases: Vec<(Value, &str)> = vec![
        (
            claim(
                "E",
                &s.principal,
                "2026-06-01",
                json!([line(json!(0), json!(100), "consultation")]),
            ),
            "/lines/0/quantity",
        ),
        (
            claim(
                "E",
                &s.principal,
                "2026-06-01",
                json!([line(json!(1), json!(-5), "consultation")]),
            ),
            "/lines/0/unit_price_xof",
        ),
        (
            claim(
                "E",
                &s.principal,
                "2026-06-01",
                json!([line(json!(1_000_000), json!(999_999_999_999_i64), "consultation")]),
            ),
            "/lines/0/unit_price_xof",
        ),
        (
            claim(
                "E",
                &s.principal,
                "2026-06-01",
                json!([line(json!(1), json!(1), "magic")]),
            ),
            "/lines/0/category",
        ),
        (
            claim(
                "E",
                &s.principal,
                &tomorrow,
                json!([line(json!(1), json!(1), "consultation")]),
            ),
            "/service_date",
        ),
        (
            claim(
                "E",
                &s.spouse,
                "2025-06-01",
                json!([line(json!(1), json!(1), "consultation")]),
            ),
            "/service_date",
        ),
        (claim("E", &s.principal, "2026-06-01", Value::Array(many)), "/lines"),
        (claim("E", &s.principal, "2026-06-01", json!([])), "/lines"),
    ];
    for (i, (body, field)) in cases.into_iter().enumerate() {
        let reply = submit(app, &provider(app), &format!("bad-{i}"), &body).await;
        reply.problem(422, "validation_failed");
        assert!(
            reply.error_fields().iter().any(|f| f == field),
            "{field}: {}",
            reply.text
        );
    }
    // A scheme's base adjudication larger than the bill.
    let mut forwarded = claim(
        "E",
        &s.principal,
        "2026-06-01",
        json!([line(json!(1), json!(1000), "consultation")]),
    );
    forwarded["base_adjudication"] = json!({"lines": [{"line": 1, "paid_xof": 1001}]});
    let inam = app.token("tg-inam", "claims:submit claims:read");
    let reply = submit(app, &inam, "bad-base", &forwarded).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), ["/base_adjudication/lines/0/paid_xof"]);
    // More than 100 diagnoses: the limit alone, not one error per wrong item.
    let mut crowded = claim(
        "E",
        &s.principal,
        "2026-06-01",
        json!([line(json!(1), json!(1000), "consultation")]),
    );
    crowded["diagnoses"] = Value::Array(vec![json!(0); 5000]);
    let reply = submit(app, &provider(app), "bad-diagnoses", &crowded).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), ["/diagnoses"], "{}", reply.text);
    assert_eq!(reply.json["errors"][0]["code"], "invalid_length");
    // A hundred is within it: each wrong one is named.
    crowded["diagnoses"] = Value::Array(vec![json!(0); 100]);
    let reply = submit(app, &provider(app), "bad-diagnoses-100", &crowded).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.error_fields().len(), 100, "{}", reply.text);
    assert_eq!(reply.error_fields()[99], "/diagnoses/99");
    // A line's code with a control or an invisible character, as an external id.
    for (i, code) in [
        "A\u{1}B",
        "CONS\u{202e}",
        "CO\u{200b}NS",
        "A\nB",
        "CO\u{200d}NS",
        "\u{3164}CONS",
        "CONS\u{fe0f}",
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = claim(
            "E",
            &s.principal,
            "2026-06-01",
            json!([line(json!(1), json!(1000), "consultation")]),
        );
        body["lines"][0]["code"] = json!(code);
        let reply = submit(app, &provider(app), &format!("bad-code-{i}"), &body).await;
        assert_eq!(
            reply.field_codes(),
            [("/lines/0/code".to_owned(), "invalid_characters".to_owned())],
            "{code:?}"
        );
    }
    assert_eq!(app.count("claims").await, 0);
    // Missing key: 428. Reused external id: 409.
    let ok = claim(
        "EXT-1",
        &s.principal,
        "2026-06-01",
        json!([line(json!(1), json!(1000), "consultation")]),
    );
    app.post("/v1/claims", &provider(app), &ok)
        .await
        .problem(428, "precondition_required");
    assert_eq!(submit(app, &provider(app), "k-a", &ok).await.status.as_u16(), 201);
    submit(app, &provider(app), "k-b", &ok).await.problem(409, "conflict");
    assert_eq!(app.count("claims").await, 1);
}

async fn concurrent_claims_never_pass_the_ceiling(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    // The spouse: the mutuelle alone at 100 %, ceiling 150 000; 50 claims of 5 000 at once.
    let bodies: Vec<Value> = (0..50)
        .map(|i| {
            claim(
                &format!("RACE-{i}"),
                &s.spouse,
                "2026-06-01",
                json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 5000}]),
            )
        })
        .collect();
    let keys: Vec<String> = (0..50).map(|i| format!("race-{i}")).collect();
    let replies = futures::future::join_all(bodies.iter().zip(&keys).map(|(b, k)| submit(app, &token, k, b))).await;
    let mut total = 0;
    for r in &replies {
        assert_eq!(r.status.as_u16(), 201, "{}", r.text);
        sum_ok(&r.json);
        total += r.json["totals"]["complementary_xof"].as_i64().unwrap();
    }
    assert_eq!(total, 150_000, "exactly the ceiling, never more");
    // A claim that found the ceiling used up by the others is not routed to a mutuelle that owes
    // nothing on it: judged again, it is refused as a check would be.
    for r in &replies {
        if r.json["totals"]["complementary_xof"] == 0 {
            assert_eq!(r.json["status"], "rejected", "{}", r.text);
            assert_eq!(r.json["routed_to"], Value::Null, "{}", r.text);
            assert_eq!(r.json["reasons"][0]["code"], "CEILING_EXHAUSTED", "{}", r.text);
        }
    }
    let check = app
        .post(
            "/v1/eligibility-checks",
            &token,
            &json!({"beneficiary": {"id": s.spouse}, "service_date": "2026-06-02", "care_level": "health_center"}),
        )
        .await;
    assert_eq!(check.json["coverages"][0]["remaining_ceiling_xof"], 0);
    // Cancelling one frees its share.
    let paid = replies
        .iter()
        .find(|r| r.json["totals"]["complementary_xof"] == 5000)
        .unwrap();
    let id = paid.json["id"].as_str().unwrap();
    app.post(&format!("/v1/claims/{id}/cancel"), &token, &json!({})).await;
    let check = app
        .post(
            "/v1/eligibility-checks",
            &token,
            &json!({"beneficiary": {"id": s.spouse}, "service_date": "2026-06-02", "care_level": "health_center"}),
        )
        .await;
    assert_eq!(check.json["coverages"][0]["remaining_ceiling_xof"], 5000);
}

async fn one_key_sent_twenty_times_makes_one_claim(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let body = claim(
        "ONCE",
        &s.principal,
        "2026-06-01",
        json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 7000}]),
    );
    let replies = futures::future::join_all((0..20).map(|_| submit(app, &token, "same-key", &body))).await;
    for r in &replies {
        assert_eq!(r.status.as_u16(), 201, "{}", r.text);
        assert_eq!(r.json, replies[0].json);
    }
    assert_eq!(app.count("claims").await, 1);
    // Serialised again (spaced out), it is still the same request: replayed.
    let respelt = submit_text(app, &token, "same-key", serde_json::to_string_pretty(&body).unwrap()).await;
    assert_eq!(respelt.status.as_u16(), 201, "{}", respelt.text);
    assert_eq!(respelt.json, replies[0].json);
    // The key names that first request: another body under it, even an invalid one, is refused
    // as a reused key before it is judged; the first answer still replays.
    let mut edited = body.clone();
    edited["lines"][0]["unit_price_xof"] = json!(-1);
    submit(app, &token, "same-key", &edited)
        .await
        .problem(422, "idempotency_key_reused");
    assert_eq!(submit(app, &token, "same-key", &body).await.json, replies[0].json);

    // Retries of one key racing other claims of the same person: the retries meet the locking
    // path of one another while the others move the person's ceiling usage. Each retry is the
    // first answer (never a 503 of a deadlock between the key and the usage row), and one
    // external id is one claim.
    for round in 0..12 {
        let key = format!("round-{round}");
        let retried = claim(
            &format!("RETRIED-{round}"),
            &s.principal,
            "2026-06-01",
            json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 101}]),
        );
        let other = claim(
            &format!("OTHER-{round}"),
            &s.principal,
            "2026-06-01",
            json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 103}]),
        );
        let other_keys: Vec<String> = (0..20).map(|i| format!("other-{round}-{i}")).collect();
        let (same, others) = futures::future::join(
            futures::future::join_all((0..20).map(|_| submit(app, &token, &key, &retried))),
            futures::future::join_all(other_keys.iter().map(|k| submit(app, &token, k, &other))),
        )
        .await;
        for r in &same {
            assert_eq!(r.status.as_u16(), 201, "{}", r.text);
            assert_eq!(r.json, same[0].json);
        }
        let created = others.iter().filter(|r| r.status.as_u16() == 201).count();
        assert_eq!(created, 1, "one claim per external id");
        for r in others.iter().filter(|r| r.status.as_u16() != 201) {
            r.problem(409, "conflict");
        }
    }
    assert_eq!(app.count("claims").await, 25);
}

/// A coverage that pays none of a claim's lines is passed over for the next payer, as an
/// eligibility check passes it over; one that pays some line keeps the claim, and pays those.
async fn a_payer_owing_nothing_is_passed_over(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let first = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let member = |i: usize| {
        first.json["members"][i]["beneficiary"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (person, spouse) = (member(0), member(1));
    // mut-b, joined a month later: dental at 80 %, every other care carved out at 0 %.
    let plan = app
        .post(
            "/v1/products",
            &writer(app, "mut-b"),
            &json!({"layer": "complementary", "name": "Dentaire", "effective_from": "2026-01-01",
                    "rules": [{"category": "dental", "rate_bp": 8000}, {"rate_bp": 0}]}),
        )
        .await;
    assert_eq!(plan.status.as_u16(), 201, "{}", plan.text);
    let joined = register(
        app,
        "mut-b",
        "k2",
        &json!({"product": plan.json["id"], "member_number": "B-1", "start_date": "2026-02-01", "paid_through": "2026-12-31",
                "principal": {"national_id": {"country": "tg", "type": "niu", "value": "123456789012"},
                              "family_name": "Agbéko", "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12"}}),
    )
    .await;
    assert_eq!(joined.status.as_u16(), 201, "{}", joined.text);
    assert_eq!(joined.json["members"][0]["beneficiary"]["id"], person.as_str());
    let desk = provider(app);
    let dental = json!({"code": "DENT", "category": "dental", "quantity": 1, "unit_price_xof": 10001});
    let consultation = json!({"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 5000});

    // Dental alone: mut-a, the earlier, excludes it; mut-b pays floor(10001 × 0.8) = 8000.
    let alone = submit(
        app,
        &desk,
        "c1",
        &claim("EXT-1", &person, "2026-06-01", json!([dental])),
    )
    .await;
    assert_eq!(alone.status.as_u16(), 201, "{}", alone.text);
    assert_eq!(alone.json["status"], "awaiting_complementary");
    assert_eq!(alone.json["routed_to"], "mut-b");
    assert_eq!(
        alone.json["totals"],
        json!({"billed_xof": 10001, "base_xof": 0, "complementary_xof": 8000, "patient_xof": 2001})
    );
    sum_ok(&alone.json);
    let check = app
        .post(
            "/v1/eligibility-checks",
            &desk,
            &json!({"beneficiary": {"id": person}, "service_date": "2026-06-01", "care_level": "health_center",
                    "category": "dental", "amount_xof": 10001}),
        )
        .await;
    assert_eq!(check.json["estimate"]["complementary_xof"], 8000, "{}", check.text);

    // With a consultation, mut-a pays a line, so the earlier keeps the claim: dental is the patient's.
    let both = submit(
        app,
        &desk,
        "c2",
        &claim("EXT-2", &person, "2026-06-01", json!([consultation, dental])),
    )
    .await;
    assert_eq!(both.json["routed_to"], "mut-a", "{}", both.text);
    assert_eq!(both.json["lines"][0]["complementary_xof"], 5000);
    assert_eq!(both.json["lines"][1]["complementary_xof"], 0);
    assert_eq!(both.json["lines"][1]["patient_xof"], 10001);
    sum_ok(&both.json);

    // The spouse has only mut-a, which pays no dental care: rejected, with the reason.
    let refused = submit(
        app,
        &desk,
        "c3",
        &claim("EXT-3", &spouse, "2026-06-01", json!([dental])),
    )
    .await;
    assert_eq!(refused.status.as_u16(), 201, "{}", refused.text);
    assert_eq!(refused.json["status"], "rejected");
    assert_eq!(refused.json["routed_to"], Value::Null);
    let codes: Vec<&Value> = refused.json["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["code"])
        .collect();
    assert_eq!(codes, [&json!("EXCLUDED_CATEGORY")], "{}", refused.text);
    assert_eq!(refused.json["totals"]["patient_xof"], 10001);
}

/// The annual ceiling is the person's for a product and plan year (API.md §6.3): a household
/// terminated and registered again under the same product is not paid it a second time.
async fn the_ceiling_is_the_persons_not_the_coverages(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let check = |date: &'static str| {
        let token = token.clone();
        let person = s.principal.clone();
        async move {
            let reply = app
                .post(
                    "/v1/eligibility-checks",
                    &token,
                    &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "health_center",
                            "amount_xof": 10000}),
                )
                .await;
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
            reply
        }
    };
    // Billed 1 000 000: the base pays floor(× 0.8) = 800 000, the mutuelle the rest up to its
    // 150 000 ceiling.
    let lines = json!([{"code": "HOSP", "category": "consultation", "quantity": 1, "unit_price_xof": 1_000_000}]);
    let first = submit(app, &token, "c1", &claim("EXT-1", &s.principal, "2026-06-01", lines)).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(first.json["totals"]["complementary_xof"], 150_000);
    let before = check("2026-06-02").await;
    let old = before.json["coverages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["organization"] == "mut-a")
        .unwrap()["coverage"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = app
        .send(
            app.request(Method::PATCH, &format!("/v1/coverages/{old}"))
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", "\"1\"")
                .json(&json!({"status": "terminated", "end_date": "2026-06-30"})),
        )
        .await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
    let mut again = household(&s.product, "TSV-0002", "123456789012");
    again["start_date"] = json!("2026-07-01");
    again["dependants"] = json!([]);
    let joined = register(app, "mut-a", "k2", &again).await;
    assert_eq!(joined.status.as_u16(), 201, "{}", joined.text);
    let new = joined.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    assert_eq!(joined.json["members"][0]["beneficiary"]["id"], s.principal.as_str());
    // After the new coverage's 90 days' wait: the year's ceiling is spent all the same.
    let after = check("2026-10-01").await;
    let answer = after.json["coverages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["coverage"] == new.as_str())
        .unwrap()
        .clone();
    assert_eq!(answer["remaining_ceiling_xof"], 0, "{}", after.text);
    assert_eq!(answer["reasons"][0]["code"], "CEILING_EXHAUSTED", "{}", after.text);
    assert_eq!(answer["reasons"][0]["until"], "2027-01-01");
    assert_eq!(after.json["estimate"]["complementary_xof"], 0);
    assert_eq!(after.json["estimate"]["patient_xof"], 2000);
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 10000}]);
    let second = submit(app, &token, "c2", &claim("EXT-2", &s.principal, "2026-10-01", lines)).await;
    assert_eq!(second.status.as_u16(), 201, "{}", second.text);
    assert_eq!(second.json["totals"]["complementary_xof"], 0, "{}", second.text);
    assert_eq!(second.json["totals"]["patient_xof"], 2000);
    sum_ok(&second.json);
    // A new plan year starts from nothing, under the new coverage.
    let next_year = check("2027-01-04").await;
    assert_eq!(
        next_year.json["estimate"]["complementary_xof"], 2000,
        "{}",
        next_year.text
    );
    // The old coverage's claim, cancelled, frees the year it was counted in, for the new one.
    let id = first.json["id"].as_str().unwrap();
    let cancelled = app.post(&format!("/v1/claims/{id}/cancel"), &token, &json!({})).await;
    assert_eq!(cancelled.status.as_u16(), 200, "{}", cancelled.text);
    let freed = check("2026-10-02").await;
    assert_eq!(freed.json["estimate"]["complementary_xof"], 2000, "{}", freed.text);
}

/// The `(field, code)` pairs of a 422, in order.
fn field_codes(reply: &Reply) -> Vec<(String, String)> {
    reply.field_codes()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
        .collect()
}

/// API.md §4: a 422 lists every broken rule, once each: an entry without `line` is `required`
/// there, a `line` of the wrong type only `invalid_type`, and a line named twice is a `duplicate`
/// even when its first entry is refused for another reason.
async fn adjudication_errors_name_each_fault_once(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    // The spouse: mut-a alone, at 100 %; two lines proposing 1000 and 2000.
    let lines = json!([{"code": "C1", "category": "consultation", "quantity": 1, "unit_price_xof": 1000},
                       {"code": "C2", "category": "consultation", "quantity": 1, "unit_price_xof": 2000}]);
    let created = submit(
        app,
        &provider(app),
        "c1",
        &claim("EXT-1", &s.spouse, "2026-06-01", lines),
    )
    .await;
    assert_eq!(created.json["status"], "awaiting_complementary", "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let mutuelle = app.token("mut-a", "claims:adjudicate claims:read");
    let two = json!({"line": 2, "decision": "accept"});
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!([{"decision": "accept"}, two]),
            vec![("/lines/0/line", "required")],
        ),
        (
            json!([{"line": "1", "decision": "accept"}, two]),
            vec![("/lines/0/line", "invalid_type")],
        ),
        (
            json!([{"line": 1, "decision": "reduce", "approved_xof": 999999}, {"line": 1, "decision": "accept"}]),
            vec![
                ("/lines/0/approved_xof", "exceeds_proposed"),
                ("/lines/1/line", "duplicate"),
            ],
        ),
        (
            json!([{"line": 1, "decision": "reduce", "approved_xof": 1001}, two]),
            vec![("/lines/0/approved_xof", "exceeds_proposed")],
        ),
        (
            json!([{"line": 1, "decision": "accept", "approved_xof": 500}, two]),
            vec![("/lines/0/approved_xof", "not_allowed_for_decision")],
        ),
        (
            json!([{"line": 1, "decision": "reduce", "approved_xof": "5"}, two]),
            vec![("/lines/0/approved_xof", "invalid_type")],
        ),
        (
            json!([{"line": 1, "decision": 7}, two]),
            vec![("/lines/0/decision", "invalid_type")],
        ),
        (
            json!([{"line": 1, "decision": "reject", "reason_code": 5}, two]),
            vec![("/lines/0/reason_code", "invalid_type")],
        ),
        (
            json!([{"line": 3, "decision": "accept"}, {"line": 1, "decision": "accept"}, two]),
            vec![("/lines/0/line", "unknown_line")],
        ),
        // An entry whose line is refused still has its decision checked, all but against the
        // line's proposed share.
        (
            json!([{"line": 99, "decision": "maybe"}, {"line": 1, "decision": "accept"}, two]),
            vec![
                ("/lines/0/line", "unknown_line"),
                ("/lines/0/decision", "unknown_value"),
            ],
        ),
        (
            json!([{"line": "1", "decision": "reject"}, two]),
            vec![("/lines/0/line", "invalid_type"), ("/lines/0/reason_code", "required")],
        ),
        (
            json!([{"decision": "reduce", "approved_xof": -1}, two]),
            vec![("/lines/0/line", "required"), ("/lines/0/approved_xof", "out_of_range")],
        ),
        (
            json!([{"line": 1, "decision": "accept"}, {"line": 1, "decision": "reduce"}, two]),
            vec![("/lines/1/line", "duplicate"), ("/lines/1/approved_xof", "required")],
        ),
        (
            json!([{"line": 9, "decision": "reduce", "approved_xof": 999999}, {"line": 1, "decision": "accept"}, two]),
            vec![("/lines/0/line", "unknown_line")],
        ),
        (
            json!([{"line": 1, "decision": "accept"}]),
            vec![("/lines", "every_line_once")],
        ),
    ];
    for (lines, expected) in cases {
        let reply = app
            .post(
                &format!("/v1/claims/{id}/adjudication"),
                &mutuelle,
                &json!({"lines": lines}),
            )
            .await;
        assert_eq!(field_codes(&reply), pairs(&expected), "{lines}");
    }
    let decided = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &mutuelle,
            &json!({"lines": [{"line": 1, "decision": "reduce", "approved_xof": 1000}, two]}),
        )
        .await;
    assert_eq!(decided.json["status"], "adjudicated", "{}", decided.text);

    // The base scheme's adjudication, of the principal's claim (INAM, then mut-a).
    let lines = json!([{"code": "C1", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]);
    let created = submit(
        app,
        &provider(app),
        "c2",
        &claim("EXT-2", &s.principal, "2026-06-01", lines),
    )
    .await;
    assert_eq!(created.json["status"], "awaiting_base", "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let inam = app.token("tg-inam", "claims:submit claims:read");
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!([{"paid_xof": 1}]), vec![("/lines/0/line", "required")]),
        (
            json!([{"line": "1", "paid_xof": 1}]),
            vec![("/lines/0/line", "invalid_type")],
        ),
        (
            json!([{"line": 1, "paid_xof": "1"}]),
            vec![("/lines/0/paid_xof", "invalid_type")],
        ),
        (json!([{"line": 1}]), vec![("/lines/0/paid_xof", "required")]),
        (
            json!([{"line": 1, "paid_xof": -1}]),
            vec![("/lines/0/paid_xof", "out_of_range")],
        ),
        // An entry whose line is refused still has its amount checked, but not against a bill.
        (
            json!([{"line": "1"}]),
            vec![("/lines/0/line", "invalid_type"), ("/lines/0/paid_xof", "required")],
        ),
        (
            json!([{"line": 7, "paid_xof": -1}]),
            vec![("/lines/0/line", "unknown_line"), ("/lines/0/paid_xof", "out_of_range")],
        ),
        (
            json!([{"line": 7, "paid_xof": 999999}]),
            vec![("/lines/0/line", "unknown_line")],
        ),
        (
            json!([{"line": 1, "paid_xof": 1}, {"line": 1}]),
            vec![("/lines/1/line", "duplicate"), ("/lines/1/paid_xof", "required")],
        ),
        (
            json!([{"line": 1, "paid_xof": 999999}, {"line": 1, "paid_xof": 1}]),
            vec![("/lines/0/paid_xof", "exceeds_billed"), ("/lines/1/line", "duplicate")],
        ),
    ];
    for (lines, expected) in cases {
        let reply = app
            .post(
                &format!("/v1/claims/{id}/base-adjudication"),
                &inam,
                &json!({"lines": lines}),
            )
            .await;
        assert_eq!(field_codes(&reply), pairs(&expected), "{lines}");
    }
    // The same body, forwarded with a claim by the scheme.
    let mut forwarded = claim(
        "EXT-3",
        &s.principal,
        "2026-06-01",
        json!([{"code": "C1", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]),
    );
    forwarded["base_adjudication"] = json!({"lines": [{"line": 1, "paid_xof": 999999}, {"line": 1, "paid_xof": 1},
                                                      {"paid_xof": 1}, {"line": "1", "paid_xof": 1}]});
    let reply = submit(app, &inam, "c3", &forwarded).await;
    assert_eq!(
        field_codes(&reply),
        pairs(&[
            ("/base_adjudication/lines/3/line", "invalid_type"),
            ("/base_adjudication/lines/0/paid_xof", "exceeds_billed"),
            ("/base_adjudication/lines/1/line", "duplicate"),
            ("/base_adjudication/lines/2/line", "required"),
        ])
    );
    // A line of the body refused for its own faults exists all the same: naming it is no
    // `unknown_line`, and its bill, unknown, bounds nothing; the entry's other faults are listed.
    let mut forwarded = claim(
        "EXT-4",
        &s.principal,
        "2026-06-01",
        json!([{"code": "C1", "category": "consultation", "quantity": 1, "unit_price_xof": 1000},
               {"code": "C2", "category": "bogus", "quantity": 1, "unit_price_xof": 1000}]),
    );
    forwarded["base_adjudication"] = json!({"lines": [{"line": 1, "paid_xof": 500}, {"line": 2, "paid_xof": 999999},
                                                      {"line": 2}, {"line": 3, "paid_xof": 1}]});
    let reply = submit(app, &inam, "c4", &forwarded).await;
    assert_eq!(
        field_codes(&reply),
        pairs(&[
            ("/lines/1/category", "unknown_value"),
            ("/base_adjudication/lines/2/line", "duplicate"),
            ("/base_adjudication/lines/2/paid_xof", "required"),
            ("/base_adjudication/lines/3/line", "unknown_line"),
        ])
    );
    // `lines` of the wrong type: no line can be judged, so none is called unknown.
    let mut forwarded = claim("EXT-5", &s.principal, "2026-06-01", json!("C1"));
    forwarded["base_adjudication"] = json!({"lines": [{"line": 1, "paid_xof": 500}]});
    let reply = submit(app, &inam, "c5", &forwarded).await;
    assert_eq!(field_codes(&reply), pairs(&[("/lines", "invalid_type")]));
    let based = app
        .post(
            &format!("/v1/claims/{id}/base-adjudication"),
            &inam,
            &json!({"lines": [{"line": 1, "paid_xof": 800}]}),
        )
        .await;
    assert_eq!(based.json["status"], "awaiting_complementary", "{}", based.text);
}

/// A reason several lines give with different ends is listed once, ending on the first of them
/// (the claim is paid from then on, for that line): here dental care is covered again from a
/// later version, optical care never.
async fn a_reason_of_several_lines_is_listed_once(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = writer(app, "mut-a");
    let path = format!("/v1/products/{}", s.product);
    for (version, from, excluded) in [
        (1, "2026-03-01", json!(["dental", "optical"])),
        (2, "2026-07-01", json!(["optical"])),
    ] {
        let mut body = crate::products::family_plan(from);
        body["excluded_categories"] = excluded;
        let put = app
            .send(
                app.request(Method::PUT, &path)
                    .bearer_auth(&token)
                    .header("if-match", format!("\"{version}\""))
                    .json(&body),
            )
            .await;
        assert_eq!(put.status.as_u16(), 200, "{}", put.text);
    }
    let lines = json!([
        {"code": "DENT", "category": "dental", "quantity": 1, "unit_price_xof": 5000},
        {"code": "OPT", "category": "optical", "quantity": 1, "unit_price_xof": 5000}
    ]);
    let created = submit(
        app,
        &provider(app),
        "c1",
        &claim("EXT-1", &s.spouse, "2026-06-01", lines),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.json["status"], "rejected", "{}", created.text);
    let reasons = created.json["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{}", created.text);
    assert_eq!(reasons[0]["code"], "EXCLUDED_CATEGORY");
    // Optical is never covered; dental is from 2026-07-01, and the claim with it.
    assert_eq!(reasons[0]["until"], "2026-07-01", "{}", created.text);
}

/// The same across coverages: two mutuelles exclude dental care, one of them only until July; the
/// other's coverage is still waiting. Reasons come in the order API.md lists the codes, whatever
/// the order of the coverages.
async fn a_reason_of_several_coverages_is_listed_once(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let other = app
        .post(
            "/v1/products",
            &writer(app, "mut-b"),
            &crate::products::family_plan("2026-01-01"),
        )
        .await;
    let other = other.json["id"].as_str().unwrap().to_owned();
    let first = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let mut later = household(&other, "B-0001", "123456789012");
    later["start_date"] = json!("2026-05-01");
    let second = register(app, "mut-b", "k2", &later).await;
    assert_eq!(second.status.as_u16(), 201, "{}", second.text);
    let person = first.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(second.json["members"][0]["beneficiary"]["id"], person.as_str());
    let mut v2 = crate::products::family_plan("2026-07-01");
    v2["excluded_categories"] = json!([]);
    let put = app
        .send(
            app.request(Method::PUT, &format!("/v1/products/{}", r.product))
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", "\"1\"")
                .json(&v2),
        )
        .await;
    assert_eq!(put.status.as_u16(), 200, "{}", put.text);
    let lines = json!([{"code": "DENT", "category": "dental", "quantity": 1, "unit_price_xof": 5000}]);
    let created = submit(app, &provider(app), "c1", &claim("EXT-1", &person, "2026-06-01", lines)).await;
    assert_eq!(created.json["status"], "rejected", "{}", created.text);
    let reasons: Vec<(String, Value)> = created.json["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["code"].as_str().unwrap().to_owned(), r["until"].clone()))
        .collect();
    // mut-b waits 90 days from 2026-05-01; mut-a pays dental from 2026-07-01.
    assert_eq!(
        reasons,
        [
            ("WAITING_PERIOD".to_owned(), json!("2026-07-30")),
            ("EXCLUDED_CATEGORY".to_owned(), json!("2026-07-01"))
        ],
        "{}",
        created.text
    );
}

/// API.md §4: one 422 lists every fault, those the store reveals (the provider, the person's
/// coverages) with the body's; nothing is written.
async fn every_fault_of_a_claim_is_listed_at_once(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    app.create_org("cms-b", "provider", "TG").await;
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]);
    // Another provider, which exists and which cms-a may read: named as such, with the body's
    // faults and the base adjudication a provider may not send.
    let mut body = claim("", &s.principal, "2026-06-01", lines.clone());
    body["provider"] = json!("cms-b");
    body["base_adjudication"] = json!({"lines": [{"line": 1, "paid_xof": 500}]});
    let reply = submit(app, &provider(app), "all-1", &body).await;
    assert_eq!(
        field_codes(&reply),
        pairs(&[
            ("/external_id", "invalid_length"),
            ("/provider", "not_own_organization"),
            ("/base_adjudication", "not_allowed"),
        ]),
        "{}",
        reply.text
    );
    let message = reply.json["errors"][1]["message"].as_str().unwrap();
    assert!(message.contains("cms-a"), "{message}");
    assert!(
        app.get("/v1/organizations/cms-b", &app.token("cms-a", "registry:read"))
            .await
            .status
            .is_success(),
        "the organisation named is visible to the provider"
    );
    // Each alone, as before.
    let mut alone = claim("EXT-A", &s.principal, "2026-06-01", lines.clone());
    alone["provider"] = json!("cms-b");
    let reply = submit(app, &provider(app), "all-2", &alone).await;
    assert_eq!(field_codes(&reply), pairs(&[("/provider", "not_own_organization")]));
    // An organisation that does not exist stays an unknown reference.
    alone["provider"] = json!("cms-nowhere");
    alone["lines"][0]["quantity"] = json!(0);
    let reply = submit(app, &provider(app), "all-3", &alone).await;
    assert_eq!(
        field_codes(&reply),
        pairs(&[
            ("/lines/0/quantity", "out_of_range"),
            ("/provider", "unknown_reference"),
        ])
    );
    // A day before the person's coverages begin, with a fault of the body.
    let mut early = claim("EXT-B", &s.spouse, "2025-06-01", lines.clone());
    early["care_level"] = json!("clinic");
    let reply = submit(app, &provider(app), "all-4", &early).await;
    assert_eq!(
        field_codes(&reply),
        pairs(&[("/care_level", "unknown_value"), ("/service_date", "before_coverage"),])
    );
    // A scheme forwarding for a provider that is not one, with a fault of the body.
    let inam = app.token("tg-inam", "claims:submit claims:read");
    let mut forwarded = claim("", &s.principal, "2026-06-01", lines.clone());
    forwarded["provider"] = json!("mut-a");
    let reply = submit(app, &inam, "all-5", &forwarded).await;
    assert_eq!(
        field_codes(&reply),
        pairs(&[("/external_id", "invalid_length"), ("/provider", "not_a_provider"),])
    );
    // An unknown person is 404 only when nothing else is wrong: the 422 comes first.
    let mut nobody = claim("", "nobody", "2026-06-01", lines.clone());
    nobody["provider"] = json!("cms-b");
    let reply = submit(app, &provider(app), "all-6", &nobody).await;
    assert_eq!(
        field_codes(&reply),
        pairs(&[
            ("/external_id", "invalid_length"),
            ("/provider", "not_own_organization"),
        ])
    );
    assert_eq!(app.count("claims").await, 0);
    // Once each fault is corrected, the claim goes through.
    let ok = submit(
        app,
        &provider(app),
        "all-7",
        &claim("EXT-C", &s.principal, "2026-06-01", lines),
    )
    .await;
    assert_eq!(ok.status.as_u16(), 201, "{}", ok.text);
}

/// A duplicate `external_id` is a 409 whose `errors` point at it, with its code.
async fn a_duplicate_external_id_is_named(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]);
    let body = claim("EXT-DUP", &s.principal, "2026-06-01", lines);
    let first = submit(app, &provider(app), "dup-1", &body).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let again = submit(app, &provider(app), "dup-2", &body).await;
    again.problem(409, "conflict");
    assert_eq!(again.error_fields(), ["/external_id"], "{}", again.text);
    assert_eq!(again.json["errors"][0]["code"], "external_id_taken");
    assert_eq!(app.count("claims").await, 1);
    // The provider finds the claim again by its reference, as written after trimming; the
    // parties of the claim do, others find nothing.
    let id = first.json["id"].as_str().unwrap();
    let found = |token: String, reference: &str| {
        let path = format!("/v1/claims?external_id={reference}");
        async move { app.get(&path, &token).await }
    };
    for (token, reference, expected) in [
        (provider(app), "EXT-DUP", vec![id]),
        (provider(app), "%20EXT-DUP%20", vec![id]),
        (provider(app), "ext-dup", vec![]),
        (app.token("mut-a", "claims:read"), "EXT-DUP", vec![id]),
        (app.token("operator", "claims:read"), "EXT-DUP", vec![id]),
        (app.token("mut-b", "claims:read"), "EXT-DUP", vec![]),
    ] {
        let reply = found(token, reference).await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        let ids: Vec<&str> = reply.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected, "{reference}");
    }
    let filtered = found(provider(app), "EXT-DUP&status=cancelled").await;
    assert_eq!(filtered.json["items"], json!([]), "{}", filtered.text);
    let blank = found(provider(app), "%20").await;
    assert_eq!(field_codes(&blank), pairs(&[("/query/external_id", "invalid_length")]));
    // An invoice number holds no control character (a carriage return, a bell), nor an
    // invisible one (a right-to-left override shows `EXT-1` as `1-TXE`, a zero-width space makes
    // a second `EXT-DUP` that compares different).
    for (i, bad) in ["EXT\rDUP", "\u{7}=1", "\u{202E}EXT-1", "EXT\u{200B}-DUP"]
        .iter()
        .enumerate()
    {
        let mut body = body.clone();
        body["external_id"] = json!(bad);
        let reply = submit(app, &provider(app), &format!("ctl-{i}"), &body).await;
        reply.problem(422, "validation_failed");
        assert_eq!(
            field_codes(&reply),
            pairs(&[("/external_id", "invalid_characters")]),
            "{}",
            reply.text
        );
    }
    assert_eq!(app.count("claims").await, 1);
    // One invoice written by two programs: its `É` composed or decomposed, a plain space or a
    // no-break one. Compared as sent, it was two references, and the care was paid twice.
    let mut composed = body.clone();
    composed["external_id"] = json!("FACT É-1");
    let first = submit(app, &provider(app), "nfc-1", &composed).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let mut decomposed = body.clone();
    decomposed["external_id"] = json!("FACT\u{A0}E\u{301}-1");
    let again = submit(app, &provider(app), "nfd-1", &decomposed).await;
    again.problem(409, "conflict");
    assert_eq!(again.json["errors"][0]["code"], "external_id_taken", "{}", again.text);
    let reply = found(provider(app), "FACT%C2%A0E%CC%81-1").await;
    assert_eq!(reply.json["items"][0]["id"], first.json["id"], "{}", reply.text);
    assert_eq!(reply.json["items"][0]["external_id"], "FACT É-1");
    assert_eq!(app.count("claims").await, 2);
    // A claim stored before references were kept in one form holds the form it was sent in:
    // sent again in that form, it is that claim, and that form finds it.
    let mut old = body.clone();
    old["external_id"] = json!("FACT-OLD-É");
    let first = submit(app, &provider(app), "old-1", &old).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    app.db
        .execute(&format!(
            "UPDATE claims SET external_id = 'FACT-OLD-E\u{301}' WHERE id = '{}'",
            first.json["id"].as_str().unwrap()
        ))
        .await;
    old["external_id"] = json!("FACT-OLD-E\u{301}");
    let again = submit(app, &provider(app), "old-2", &old).await;
    again.problem(409, "conflict");
    assert_eq!(again.json["errors"][0]["code"], "external_id_taken", "{}", again.text);
    let reply = found(provider(app), "FACT-OLD-E%CC%81").await;
    assert_eq!(reply.json["items"][0]["id"], first.json["id"], "{}", reply.text);
    // Its retry with the same key is still a replay.
    let replayed = submit(app, &provider(app), "old-1", &{
        let mut b = body.clone();
        b["external_id"] = json!("FACT-OLD-É");
        b
    })
    .await;
    assert_eq!(replayed.status.as_u16(), 201, "{}", replayed.text);
    // The length is counted in the kept form: `№` is kept as `No`.
    let mut long = body.clone();
    long["external_id"] = json!(format!("{}\u{2116}", "F".repeat(99)));
    let reply = submit(app, &provider(app), "long-1", &long).await;
    assert_eq!(
        field_codes(&reply),
        pairs(&[("/external_id", "invalid_length")]),
        "{}",
        reply.text
    );
    assert_eq!(app.count("claims").await, 3);
}

/// The claims list names the states it takes, and every fault of its query at once.
async fn the_list_names_the_states_it_takes(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let reply = app
        .send(
            app.request(Method::GET, "/v1/claims?status=open")
                .bearer_auth(&token)
                .header("accept-language", "en"),
        )
        .await;
    assert_eq!(field_codes(&reply), pairs(&[("/query/status", "unknown_value")]));
    let message = reply.json["errors"][0]["message"].as_str().unwrap();
    for state in CLAIM_STATES {
        assert!(message.contains(state), "{state} missing from {message}");
    }
    let reply = app.get("/v1/claims?limit=0&status=open&since=yesterday", &token).await;
    let fields: Vec<String> = field_codes(&reply).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        ["/query/limit", "/query/status", "/query/since"],
        "{}",
        reply.text
    );
}

/// A claim rejected for want of a payer gives the reasons of the coverages its submitter may see,
/// as an eligibility check would show them: a scheme forwarding it is not told of a mutuelle's
/// waiting period; the provider, at whose desk every coverage shows, is.
async fn a_rejected_claims_reasons_follow_what_its_submitter_may_see(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let inam = app.token("tg-inam", "registry:read registry:write claims:submit claims:read");
    let listed = app
        .get(&format!("/v1/coverages?beneficiary={}", s.principal), &inam)
        .await;
    let coverage = listed.json["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/coverages/{coverage}");
    let etag = app.get(&path, &inam).await.header("etag").unwrap().to_owned();
    let suspended = app
        .send(
            app.request(Method::PATCH, &path)
                .bearer_auth(&inam)
                .header("if-match", etag)
                .json(&json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(suspended.status.as_u16(), 200, "{}", suspended.text);
    // 2026-02-01: the mutuelle's 90 days' wait, and INAM's coverage suspended.
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]);
    let codes = |reply: &Reply| -> Vec<String> {
        assert_eq!(reply.json["status"], "rejected", "{}", reply.text);
        reply.json["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_provider = submit(
        app,
        &provider(app),
        "rj-1",
        &claim("RJ-1", &s.principal, "2026-02-01", lines.clone()),
    )
    .await;
    assert_eq!(codes(&by_provider), ["WAITING_PERIOD", "SUSPENDED"]);
    let forwarded = submit(app, &inam, "rj-2", &claim("RJ-2", &s.principal, "2026-02-01", lines)).await;
    assert_eq!(codes(&forwarded), ["SUSPENDED"]);
}

/// A scheme forwarding a claim learns nothing it could not read: a person named by another
/// mutuelle's member number is unknown to it (404, or the body's own faults alone), even one it
/// covers, and a day before its coverages begin is `before_coverage` whether or not a mutuelle's
/// coverage it cannot see began earlier.
async fn a_forwarded_claim_reveals_nothing_the_scheme_cannot_read(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let inam = app.token("tg-inam", "registry:read registry:write claims:submit claims:read");
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]);
    let by = |person: Value, date: &str, lines: &Value| {
        let mut body = claim("FWD", "", date, lines.clone());
        body["beneficiary"] = person;
        body
    };
    let bad_lines = json!([{"code": "CONS", "category": "magic", "quantity": 1, "unit_price_xof": 1000}]);
    // INAM covers the principal, whom mut-a numbers TSV-0001.
    let theirs = json!({"organization": "mut-a", "member_number": "TSV-0001"});
    let nobody = json!({"organization": "mut-a", "member_number": "TSV-9999"});
    for (n, person) in [&theirs, &nobody].into_iter().enumerate() {
        let reply = submit(
            app,
            &inam,
            &format!("mn-{n}"),
            &by(person.clone(), "2026-03-01", &lines),
        )
        .await;
        reply.problem(404, "not_found");
    }
    let known = submit(app, &inam, "mn-2", &by(theirs.clone(), "2000-01-01", &bad_lines)).await;
    let unknown = submit(app, &inam, "mn-3", &by(nobody.clone(), "2000-01-01", &bad_lines)).await;
    assert_eq!(
        known.field_codes(),
        [("/lines/0/category".to_owned(), "unknown_value".to_owned())]
    );
    assert_eq!(known.field_codes(), unknown.field_codes());
    let own = json!({"organization": "tg-inam", "member_number": "INAM-1"});
    let reply = submit(app, &inam, "mn-4", &by(own, "2026-03-01", &lines)).await;
    assert_eq!(
        reply.status.as_u16(),
        201,
        "its own numbers name its affiliate: {}",
        reply.text
    );

    // A second household of mut-a's from 2026-01-01, affiliated to INAM from 2026-06-01.
    let other = register(app, "mut-a", "k2", &household(&s.product, "TSV-0002", "223456789012")).await;
    assert_eq!(other.status.as_u16(), 201, "{}", other.text);
    let person = other.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = app.create_base_product(&inam).await;
    let affiliation = json!({"product": base, "member_number": "INAM-2", "start_date": "2026-06-01",
        "beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "223456789012"}, "family_name": "Agbéko",
                        "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12"}});
    let affiliated = app.post("/v1/coverages", &inam, &affiliation).await;
    assert_eq!(affiliated.status.as_u16(), 201, "{}", affiliated.text);
    // Before mut-a's coverage, and between its start and INAM's: the same answer to INAM, which
    // names the day INAM's own coverage begins.
    let before_both = submit(app, &inam, "bc-1", &claim("BC-1", &person, "2025-12-31", lines.clone())).await;
    let before_inams = submit(app, &inam, "bc-2", &claim("BC-2", &person, "2026-03-01", lines.clone())).await;
    before_both.problem(422, "validation_failed");
    assert_eq!(
        before_both.field_codes(),
        [("/service_date".to_owned(), "before_coverage".to_owned())]
    );
    assert_eq!(
        before_both.json["errors"], before_inams.json["errors"],
        "{}",
        before_inams.text
    );
    assert!(before_both.text.contains("2026-06-01"), "{}", before_both.text);
    // The provider, who sees every coverage, is told of mut-a's.
    let at_the_desk = submit(
        app,
        &provider(app),
        "bc-3",
        &claim("BC-3", &person, "2025-12-31", lines.clone()),
    )
    .await;
    assert!(at_the_desk.text.contains("2026-01-01"), "{}", at_the_desk.text);
    let priced = submit(
        app,
        &provider(app),
        "bc-4",
        &claim("BC-4", &person, "2026-03-01", lines.clone()),
    )
    .await;
    assert_eq!(priced.status.as_u16(), 201, "{}", priced.text);
}

/// mut-a accepts the one line of a claim waiting for it; the claim it answers.
pub async fn accept_by_mut_a(app: &TestApp, id: &str) -> Value {
    let decided = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &app.token("mut-a", "claims:adjudicate"),
            &json!({"lines": [{"line": 1, "decision": "accept"}]}),
        )
        .await;
    assert_eq!(decided.status.as_u16(), 200, "{}", decided.text);
    decided.json
}

/// Lists of claims, for each kind of caller and each filter, paged two at a time, answer exactly
/// the claims the caller takes part in (as provider, submitter, base payer or mutuelle) that the
/// filter names, each once, in id order.
async fn claim_lists_answer_what_each_filter_names(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    app.create_org("cms-b", "provider", "TG").await;
    let line = json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]);
    let mut ids = Vec::new();
    let mut mark = String::new();
    for i in 0..12 {
        if i == 6 {
            // Everything after this instant is `since` it; nothing before.
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            mark = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        let provider = if i % 3 == 0 { "cms-b" } else { "cms-a" };
        let person = if i % 2 == 0 { &s.principal } else { &s.spouse };
        let mut body = claim(&format!("L-{i}"), person, "2026-06-01", line.clone());
        body["provider"] = json!(provider);
        let token = app.token(provider, "claims:submit claims:read");
        let reply = submit(app, &token, &format!("l{i}"), &body).await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        ids.push(reply.json["id"].as_str().unwrap().to_owned());
    }
    // Two claims of before the mark change after it: the spouse's first, adjudicated by mut-a,
    // and the principal's first, cancelled by its provider.
    accept_by_mut_a(app, &ids[1]).await;
    let cancelled = app
        .post(
            &format!("/v1/claims/{}/cancel", ids[0]),
            &app.token("cms-b", "claims:submit"),
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status.as_u16(), 200, "{}", cancelled.text);
    let changed_late = |i: usize| i >= 6 || i <= 1;
    let operator = app.token("operator", "claims:read");
    let mut claims = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let c = app.get(&format!("/v1/claims/{id}"), &operator).await;
        assert_eq!(c.status.as_u16(), 200, "{}", c.text);
        claims.push((i, c.json));
    }
    let statuses: Vec<String> = claims
        .iter()
        .map(|(_, c)| c["status"].as_str().unwrap().to_owned())
        .collect();
    assert!(statuses.contains(&"awaiting_base".to_owned()) && statuses.contains(&"awaiting_complementary".to_owned()));
    assert!(statuses.contains(&"adjudicated".to_owned()) && statuses.contains(&"cancelled".to_owned()));
    for caller in ["operator", "audit-x", "cms-a", "cms-b", "tg-inam", "mut-a", "mut-b"] {
        let token = app.token(caller, "claims:read");
        let everything = matches!(caller, "operator" | "audit-x");
        let mut filters: Vec<(Option<&str>, bool)> = vec![(None, false), (None, true)];
        for status in CLAIM_STATES {
            filters.push((Some(status), false));
            filters.push((Some(status), true));
        }
        for (status, since) in filters {
            let mut expected: Vec<&str> = claims
                .iter()
                .filter(|(i, c)| {
                    let party = ["provider", "submitter", "base_payer", "routed_to"]
                        .iter()
                        .any(|role| c[*role] == caller);
                    (everything || party) && status.is_none_or(|s| c["status"] == s) && (!since || changed_late(*i))
                })
                .map(|(_, c)| c["id"].as_str().unwrap())
                .collect();
            expected.sort_unstable();
            let mut listed: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = vec![("limit", "2".to_owned())];
                if let Some(status) = status {
                    query.push(("status", status.to_owned()));
                }
                if since {
                    query.push(("since", mark.clone()));
                }
                if let Some(c) = &cursor {
                    query.push(("cursor", c.clone()));
                }
                let page = app
                    .send(app.request(Method::GET, "/v1/claims").query(&query).bearer_auth(&token))
                    .await;
                assert_eq!(page.status.as_u16(), 200, "{}", page.text);
                for c in page.json["items"].as_array().unwrap() {
                    listed.push(c["id"].as_str().unwrap().to_owned());
                }
                match page.json["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
                assert!(
                    listed.len() <= ids.len(),
                    "{caller} {status:?} {since}: the pages do not end"
                );
            }
            assert_eq!(listed, expected, "{caller}, status {status:?}, since the mark: {since}");
        }
    }
}

/// Every claim id a list answers, walked page by page.
async fn list_every_page(app: &TestApp, token: &str, mut query: Vec<(&str, String)>) -> Vec<String> {
    let mut listed = Vec::new();
    loop {
        let page = app
            .send(app.request(Method::GET, "/v1/claims").query(&query).bearer_auth(token))
            .await;
        assert_eq!(page.status.as_u16(), 200, "{}", page.text);
        for c in page.json["items"].as_array().unwrap() {
            listed.push(c["id"].as_str().unwrap().to_owned());
        }
        let Some(next) = page.json["next_cursor"].as_str() else {
            return listed;
        };
        query.retain(|(name, _)| *name != "cursor");
        query.push(("cursor", next.to_owned()));
        assert!(listed.len() <= 20_000, "{query:?}: the pages do not end");
    }
}

/// A `since` that more than 10,000 claims changed after is read in id order, as without it, and
/// a recent one from the claims changed since: both answer exactly the claims changed since, for
/// every kind of caller and state. 10,000 claims of another provider, copied in the database
/// between the two instants, make the first one old.
async fn a_since_far_back_answers_as_a_recent_one(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    app.create_org("cms-z", "provider", "TG").await;
    let line = json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]);
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(30));
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut ids = Vec::new();
    let mut marks = Vec::new();
    for i in 0..6 {
        if i == 3 || i == 4 {
            pause().await;
            marks.push(now());
            pause().await;
        }
        let person = if i % 2 == 0 { &s.principal } else { &s.spouse };
        let reply = submit(
            app,
            &provider(app),
            &format!("w{i}"),
            &claim(&format!("W-{i}"), person, "2026-06-01", line.clone()),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        ids.push(reply.json["id"].as_str().unwrap().to_owned());
    }
    // The spouse's first claim, of before both instants, changes after them.
    accept_by_mut_a(app, &ids[1]).await;
    const COPIES: usize = 10_000;
    let copied = app
        .db
        .execute(&format!(
            "INSERT INTO claims (id, provider, submitter, external_id, beneficiary, service_date, status, \
             base_payer, routed_to, settlement, version, body, created_at, updated_at) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {COPIES}) \
             SELECT 'zz-' || (100000 + i), 'cms-z', 'cms-z', 'copy-' || i, beneficiary, service_date, status, \
             NULL, NULL, NULL, version, replace(body, id, 'zz-' || (100000 + i)), created_at, updated_at \
             FROM claims, n WHERE claims.id = '{}'",
            ids[3]
        ))
        .await;
    assert_eq!(copied, COPIES as u64);
    let copies: Vec<String> = (1..=COPIES).map(|i| format!("zz-{}", 100_000 + i)).collect();
    let operator = app.token("operator", "claims:read");
    let mut claims = Vec::new();
    for id in &ids {
        let c = app.get(&format!("/v1/claims/{id}"), &operator).await;
        assert_eq!(c.status.as_u16(), 200, "{}", c.text);
        claims.push(c.json);
    }
    let copied_status = claims[3]["status"].as_str().unwrap().to_owned();
    // Changed since the first instant: the three claims after it and the decided one (and the
    // copies); since the second, the two after it and the decided one.
    let changed_since = [vec![1, 3, 4, 5], vec![1, 4, 5]];
    let mut asked = 0;
    for caller in ["operator", "cms-a", "mut-a", "tg-inam", "cms-z"] {
        let token = app.token(caller, "claims:read");
        let everything = caller == "operator";
        for (m, mark) in marks.iter().enumerate() {
            for status in std::iter::once(None).chain(CLAIM_STATES.map(Some)) {
                let mut expected: Vec<String> = changed_since[m]
                    .iter()
                    .map(|i| &claims[*i])
                    .filter(|c| {
                        let party = ["provider", "submitter", "base_payer", "routed_to"]
                            .iter()
                            .any(|role| c[*role] == caller);
                        (everything || party) && status.is_none_or(|s| c["status"] == s)
                    })
                    .map(|c| c["id"].as_str().unwrap().to_owned())
                    .collect();
                if m == 0 && (everything || caller == "cms-z") && status.is_none_or(|s| s == copied_status) {
                    expected.extend(copies.iter().cloned());
                }
                expected.sort_unstable();
                let limit = if expected.len() > 100 { 499 } else { 2 };
                let mut query = vec![("limit", limit.to_string()), ("since", mark.clone())];
                if let Some(status) = status {
                    query.push(("status", status.to_owned()));
                }
                let listed = list_every_page(app, &token, query).await;
                assert_eq!(listed, expected, "{caller}, status {status:?}, since mark {m}");
                asked += 1;
            }
        }
    }
    assert_eq!(asked, 70);
}

/// A page of claims holds at most 2 MiB of them: a claim may hold 1000 lines, and 500 such made
/// a 335 MB answer that took a gigabyte and every runtime worker for half a minute. The next page
/// starts where it stopped; following the cursors gives every claim once, in id order.
async fn a_page_of_large_claims_stops_at_its_size(backend: Backend) {
    const CLAIMS: usize = 10;
    let s = setup(backend).await;
    let app = &s.app;
    let lines: Vec<Value> = (0..1000)
        .map(
            |i| json!({"code": format!("ACTE-{i:04}"), "category": "consultation", "quantity": 1, "unit_price_xof": 1}),
        )
        .collect();
    let mut submitted = Vec::new();
    for i in 0..CLAIMS {
        let reply = submit(
            app,
            &provider(app),
            &format!("big-{i}"),
            &claim(&format!("BIG-{i}"), &s.principal, "2026-06-01", json!(lines)),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        submitted.push(reply.json["id"].as_str().unwrap().to_owned());
    }
    let mut listed = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/v1/claims?limit=500".to_owned();
    loop {
        let page = app.get(&path, &provider(app)).await;
        assert_eq!(page.status.as_u16(), 200, "{}", page.text);
        let items = page.json["items"].as_array().unwrap();
        assert!(!items.is_empty(), "a page holds at least one claim");
        pages.push((items.len(), page.text.len()));
        listed.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page.json["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/claims?limit=500&cursor={cursor}"),
            None => break,
        }
    }
    assert!(pages.len() > 1, "the claims did not fit one page: {pages:?}");
    assert!(pages.iter().all(|(_, bytes)| *bytes < 8 * 1024 * 1024), "{pages:?}");
    submitted.sort();
    assert_eq!(listed, submitted, "every claim once, in id order");
}

/// A line's description holds no line break (it split the adjudicator's table and a statement's
/// row) and no direction override (it showed the text reversed).
async fn a_line_description_holds_no_control_character(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    for (i, bad) in ["Consultation\nurgente", "\u{202E}Consultation"].iter().enumerate() {
        let lines = json!([{"code": "CONS", "category": "consultation", "description": bad, "quantity": 1, "unit_price_xof": 1000}]);
        let reply = submit(
            app,
            &provider(app),
            &format!("d-{i}"),
            &claim(&format!("D-{i}"), &s.principal, "2026-06-01", lines),
        )
        .await;
        assert_eq!(
            field_codes(&reply),
            pairs(&[("/lines/0/description", "invalid_characters")]),
            "{}",
            reply.text
        );
    }
    assert_eq!(app.count("claims").await, 0);
}

on_both_databases!(
    a_line_description_holds_no_control_character,
    a_page_of_large_claims_stops_at_its_size,
    claim_lists_answer_what_each_filter_names,
    a_since_far_back_answers_as_a_recent_one,
    every_fault_of_a_claim_is_listed_at_once,
    a_rejected_claims_reasons_follow_what_its_submitter_may_see,
    a_forwarded_claim_reveals_nothing_the_scheme_cannot_read,
    a_duplicate_external_id_is_named,
    the_list_names_the_states_it_takes,
    a_reason_of_several_coverages_is_listed_once,
    a_reason_of_several_lines_is_listed_once,
    adjudication_errors_name_each_fault_once,
    the_ceiling_is_the_persons_not_the_coverages,
    a_payer_owing_nothing_is_passed_over,
    a_claim_goes_from_base_to_complementary_to_adjudicated,
    only_legal_moves_by_the_right_party,
    no_eligible_payer_puts_everything_on_the_patient,
    bad_claims_write_nothing,
    concurrent_claims_never_pass_the_ceiling,
    one_key_sent_twenty_times_makes_one_claim,
);
