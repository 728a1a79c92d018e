//! Extreme but valid values carried end to end through the database (API.md §3, §5, §6): each
//! field at its documented limit, and just past it, where the values combine.

use chrono::{Days, Months, NaiveDate, Utc};
use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::claims::{provider, submit};
use crate::registry::{register, writer};

/// The largest amount a field takes (API.md §4 `out_of_range`: amounts 1–10^12 XOF).
const TERA: i64 = 1_000_000_000_000;

/// A given name of letters only, different for each `i`.
fn letters(i: usize) -> String {
    format!(
        "Enfant {}{}",
        (b'a' + (i / 26) as u8) as char,
        (b'a' + (i % 26) as u8) as char
    )
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The last day a coverage date may be: ten years after today (API.md §3).
fn ten_years_ahead() -> NaiveDate {
    today().checked_add_months(Months::new(120)).unwrap()
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn mutuelle(app: &TestApp) -> String {
    app.token(
        "mut-a",
        "registry:read registry:write claims:read claims:adjudicate settlements:write",
    )
}

/// mut-a's primary plan at every limit a product takes: 100 % of anything, the largest
/// ceiling, no wait, the longest grace period, the largest household, from 1900.
fn widest_plan() -> Value {
    json!({"layer": "primary", "name": "P".repeat(200), "rules": [{"rate_bp": 10000}],
           "annual_ceiling_xof": TERA, "waiting_period_days": 0, "grace_period_days": 3650,
           "max_dependants": 100, "child_max_age": 120, "effective_from": "1900-01-01"})
}

struct World {
    app: TestApp,
    product: String,
}

async fn world(backend: Backend, plan: Value) -> World {
    let app = TestApp::spawn(backend).await;
    for (id, kind) in [("mut-a", "mutuelle"), ("tg-inam", "scheme"), ("cms-a", "provider")] {
        app.create_org(id, kind, "TG").await;
    }
    let product = app.post("/v1/products", &writer(&app, "mut-a"), &plan).await;
    assert_eq!(product.status.as_u16(), 201, "{}", product.text);
    let product = product.json["id"].as_str().unwrap().to_owned();
    World { app, product }
}

/// A household of one from 1900, paid through the last day a date may be; returns the
/// principal's id and coverage.
async fn one_person(w: &World, number: &str, start: &str) -> (String, String) {
    let body = json!({"product": w.product, "member_number": number, "start_date": start,
        "paid_through": day(ten_years_ahead()),
        "principal": {"family_name": "Doe", "given_names": number, "sex": "F",
                      "birth_date": "1900-01-01", "birth_date_precision": "year"}});
    let reply = register(&w.app, "mut-a", number, &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    (
        reply.json["members"][0]["beneficiary"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned(),
    )
}

fn one_line_claim(external_id: &str, person: &str, date: &str, quantity: i64, price: i64) -> Value {
    json!({"external_id": external_id, "provider": "cms-a", "beneficiary": {"id": person},
           "service_date": date, "care_level": "hospital",
           "lines": [{"code": "C", "category": "surgery", "quantity": quantity, "unit_price_xof": price}]})
}

fn shares_add_up(c: &Value) {
    for l in c["lines"].as_array().unwrap() {
        let sum = l["base_xof"].as_i64().unwrap()
            + l["complementary_xof"].as_i64().unwrap()
            + l["patient_xof"].as_i64().unwrap();
        assert_eq!(sum, l["billed_xof"].as_i64().unwrap(), "{l}");
    }
}

async fn check(app: &TestApp, body: &Value) -> Reply {
    app.post("/v1/eligibility-checks", &provider(app), body).await
}

/// A household as large as the product allows (100 dependants), everyone born in 1900 as far
/// as anyone knows, names at their 100 characters of four UTF-8 bytes each, from 1900 and paid
/// through ten years ahead: written whole, read back byte for byte.
async fn a_household_at_every_limit_is_written_whole_and_read_back_exactly(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let long_name = "𠀀".repeat(100); // U+20000, a letter: 400 bytes
    let dependants: Vec<Value> = (0..100)
        .map(|i| {
            json!({"relationship": "child", "family_name": long_name, "given_names": letters(i),
                   "sex": "M", "birth_date": "1900-01-01", "birth_date_precision": "year"})
        })
        .collect();
    let body = json!({"product": w.product, "member_number": "X-1", "start_date": "1900-01-01",
        "paid_through": day(ten_years_ahead()),
        "principal": {"family_name": long_name, "given_names": "é".repeat(100), "sex": "F",
                      "birth_date": "1900-01-01", "birth_date_precision": "year"},
        "dependants": dependants});
    let reply = register(app, "mut-a", "big", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_eq!(reply.json["members"].as_array().unwrap().len(), 101);
    let principal = &reply.json["members"][0];
    let read = app
        .get(
            &format!("/v1/beneficiaries/{}", principal["beneficiary"]["id"].as_str().unwrap()),
            &writer(app, "mut-a"),
        )
        .await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    assert_eq!(read.json["family_name"], long_name.as_str());
    assert_eq!(read.json["given_names"], "é".repeat(100).as_str());
    assert_eq!(read.json["birth_date"], "1900-01-01");
    assert_eq!(read.json["birth_date_precision"], "year");
    let coverage = app
        .get(
            &format!("/v1/coverages/{}", principal["coverage"]["id"].as_str().unwrap()),
            &writer(app, "mut-a"),
        )
        .await;
    assert_eq!(coverage.json["paid_through"], day(ten_years_ahead()).as_str());
    assert_eq!(coverage.json["start_date"], "1900-01-01");

    // One more character, or one more dependant, is refused at its field and writes nothing.
    let before = app.count("beneficiaries").await;
    let mut longer = body.clone();
    longer["member_number"] = json!("X-2");
    longer["principal"]["family_name"] = json!("𠀀".repeat(101));
    let refused = register(app, "mut-a", "longer", &longer).await;
    assert!(
        refused
            .field_codes()
            .contains(&("/principal/family_name".to_owned(), "too_long".to_owned())),
        "{}",
        refused.text
    );
    let mut more = body.clone();
    more["member_number"] = json!("X-3");
    more["dependants"]
        .as_array_mut()
        .unwrap()
        .push(json!({"relationship": "spouse",
        "family_name": "Doe", "given_names": "Extra", "sex": "M", "birth_date": "1900-01-01",
        "birth_date_precision": "year"}));
    let refused = register(app, "mut-a", "more", &more).await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.text);
    assert_eq!(app.count("beneficiaries").await, before, "nothing half-written");

    // 101 people born in 1900 under one number: named by it and that year, no one in particular.
    let ambiguous = check(
        app,
        &json!({"beneficiary": {"organization": "mut-a", "member_number": "x-1", "birth_date": "1900"},
                "service_date": day(today()), "care_level": "hospital"}),
    )
    .await;
    assert_eq!(
        ambiguous.field_codes(),
        [("/beneficiary/birth_date".to_owned(), "ambiguous_person".to_owned())]
    );

    // The household is full: one more dependant later is 409 `household_full`, nothing written.
    let added = app
        .send(
            app.request(
                Method::POST,
                &format!(
                    "/v1/coverages/{}/dependants",
                    principal["coverage"]["id"].as_str().unwrap()
                ),
            )
            .bearer_auth(writer(app, "mut-a"))
            .header("idempotency-key", "late")
            .json(
                &json!({"relationship": "spouse", "start_date": day(today()), "family_name": "Doe",
                          "given_names": "Late", "sex": "M", "birth_date": "1950-05-05"}),
            ),
        )
        .await;
    added.problem(409, "conflict");
    assert_eq!(added.json["errors"][0]["code"], "household_full", "{}", added.text);
    assert_eq!(app.count("beneficiaries").await, before, "nothing half-written");
}

/// A check at the largest amount on the last day a check reaches (a year ahead), and on
/// 1900-01-01, for a person covered since then: the whole 10^12 on the plan, to the franc.
async fn a_check_at_the_largest_amount_and_the_date_bounds_is_priced_exactly(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let last = today().checked_add_months(Months::new(12)).unwrap();
    for date in [day(last), "1900-01-01".to_owned()] {
        let reply = check(
            app,
            &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital",
                    "category": "surgery", "amount_xof": TERA}),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 200, "{date}: {}", reply.text);
        assert_eq!(reply.json["eligible"], true, "{date}: {}", reply.text);
        assert_eq!(
            reply.json["estimate"],
            json!({"billed_xof": TERA, "base_xof": 0, "complementary_xof": TERA, "patient_xof": 0}),
            "{date}: {}",
            reply.text
        );
        assert_eq!(reply.json["coverages"][0]["remaining_ceiling_xof"], TERA);
    }
    // A day past either bound is out of range, at the service date.
    for date in [day(last + Days::new(1)), "1899-12-31".to_owned()] {
        let reply = check(
            app,
            &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital", "amount_xof": 1}),
        )
        .await;
        assert_eq!(
            reply.field_codes(),
            [("/service_date".to_owned(), "out_of_range".to_owned())],
            "{date}"
        );
    }
    let over = check(
        app,
        &json!({"beneficiary": {"id": person}, "service_date": day(today()), "care_level": "hospital", "amount_xof": TERA + 1}),
    )
    .await;
    assert_eq!(
        over.field_codes(),
        [("/amount_xof".to_owned(), "out_of_range".to_owned())]
    );
}

/// A claim at the largest bill (one line of 10^12, or 10^6 × 10^6) uses up the largest
/// ceiling exactly; the next franc is the patient's, `CEILING_EXHAUSTED` until 1 January.
async fn the_largest_claim_uses_up_the_largest_ceiling_exactly(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let first = submit(
        app,
        &provider(app),
        "c1",
        &one_line_claim("E-1", &person, &date, 1_000_000, 1_000_000),
    )
    .await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(first.json["status"], "awaiting_complementary");
    assert_eq!(
        first.json["totals"],
        json!({"billed_xof": TERA, "base_xof": 0, "complementary_xof": TERA, "patient_xof": 0})
    );
    shares_add_up(&first.json);
    let id = first.json["id"].as_str().unwrap();
    let accepted = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &mutuelle(app),
            &json!({"lines": [{"line": 1, "decision": "accept"}]}),
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 200, "{}", accepted.text);
    assert_eq!(accepted.json["totals"]["complementary_xof"], TERA);

    let checked = check(
        app,
        &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital", "amount_xof": TERA}),
    )
    .await;
    let coverage = &checked.json["coverages"][0];
    assert_eq!(coverage["remaining_ceiling_xof"], 0, "{}", checked.text);
    assert_eq!(coverage["status"], "not_eligible");
    let next_year = NaiveDate::from_ymd_opt(chrono::Datelike::year(&today()) + 1, 1, 1).unwrap();
    assert_eq!(
        coverage["reasons"],
        json!([{"code": "CEILING_EXHAUSTED", "message": coverage["reasons"][0]["message"], "until": day(next_year)}]),
        "{}",
        checked.text
    );
    let past = submit(app, &provider(app), "c2", &one_line_claim("E-2", &person, &date, 1, 1)).await;
    assert_eq!(past.status.as_u16(), 201, "{}", past.text);
    assert_eq!(past.json["status"], "rejected");
    assert_eq!(past.json["totals"]["patient_xof"], 1);
    assert_eq!(past.json["reasons"][0]["code"], "CEILING_EXHAUSTED");
    assert_eq!(past.json["reasons"][0]["until"], day(next_year).as_str());
}

/// A line past 10^12 (10^6 × 10^12, the largest quantity at the largest price, 10^18) is
/// `line_total_too_large` on every one of the 1000 lines allowed, and 1000 lines of 10^12 are
/// `claim_total_too_large`: refused, never a 500, nothing written.
async fn the_largest_products_of_quantity_and_price_are_refused_not_overflowed(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let claim_of = |external: &str, lines: Vec<Value>| {
        json!({"external_id": external, "provider": "cms-a", "beneficiary": {"id": person},
               "service_date": date, "care_level": "hospital", "lines": lines})
    };
    let huge: Vec<Value> = (0..1000)
        .map(|i| json!({"code": format!("L{i}"), "category": "surgery", "quantity": 1_000_000, "unit_price_xof": TERA}))
        .collect();
    let refused = submit(app, &provider(app), "k1", &claim_of("E-1", huge)).await;
    let codes = refused.field_codes();
    assert!(
        codes
            .iter()
            .all(|(_, c)| c == "line_total_too_large" || c == "too_many_errors"),
        "{}",
        refused.text
    );
    assert!(codes.iter().any(|(f, _)| f.starts_with("/lines/0")), "{}", refused.text);

    let tera_each: Vec<Value> = (0..1000)
        .map(|i| json!({"code": format!("L{i}"), "category": "surgery", "quantity": 1, "unit_price_xof": TERA}))
        .collect();
    let refused = submit(app, &provider(app), "k2", &claim_of("E-2", tera_each)).await;
    assert!(
        refused.field_codes().iter().any(|(_, c)| c == "claim_total_too_large"),
        "{}",
        refused.text
    );

    // 1000 lines adding up to 10^12 exactly are priced; one franc more is refused.
    let mut exact: Vec<Value> = (0..1000)
        .map(|i| json!({"code": format!("L{i}"), "category": "surgery", "quantity": 1000, "unit_price_xof": 1_000_000}))
        .collect();
    let mut over = exact.clone();
    over[999]["quantity"] = json!(1);
    over[999]["unit_price_xof"] = json!(1_000_000_001);
    let refused = submit(app, &provider(app), "k3", &claim_of("E-3", over)).await;
    assert!(
        refused.field_codes().iter().any(|(_, c)| c == "claim_total_too_large"),
        "{}",
        refused.text
    );
    assert_eq!(app.count("claims").await, 0, "nothing written");
    exact[0]["description"] = json!("x".repeat(500));
    let priced = submit(app, &provider(app), "k4", &claim_of("E-4", exact)).await;
    assert_eq!(priced.status.as_u16(), 201, "{}", priced.text);
    assert_eq!(priced.json["totals"]["billed_xof"], TERA);
    assert_eq!(priced.json["totals"]["complementary_xof"], TERA);
    shares_add_up(&priced.json);
    let read = app
        .get(
            &format!("/v1/claims/{}", priced.json["id"].as_str().unwrap()),
            &provider(app),
        )
        .await;
    assert_eq!(read.json["lines"], priced.json["lines"]);
}

/// A person whose usage of a product without a ceiling has reached the largest amount a row
/// holds (claims' shares are added saturating) still has claims priced, adjudicated and
/// cancelled: no 500 on either database.
async fn claims_on_a_usage_at_the_top_of_the_range_are_priced(backend: Backend) {
    let mut plan = widest_plan();
    plan.as_object_mut().unwrap().remove("annual_ceiling_xof");
    let w = world(backend, plan).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let first = submit(
        app,
        &provider(app),
        "c1",
        &one_line_claim("E-1", &person, &date, 1, TERA),
    )
    .await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let set = app
        .db
        .execute(&format!("UPDATE ceiling_usage SET used_xof = {}", i64::MAX - 10))
        .await;
    assert_eq!(set, 1);
    let second = submit(
        app,
        &provider(app),
        "c2",
        &one_line_claim("E-2", &person, &date, 1, TERA),
    )
    .await;
    assert_eq!(second.status.as_u16(), 201, "{}", second.text);
    assert_eq!(second.json["totals"]["complementary_xof"], TERA);
    let id = second.json["id"].as_str().unwrap();
    let accepted = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &mutuelle(app),
            &json!({"lines": [{"line": 1, "decision": "reduce", "approved_xof": 1}]}),
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 200, "{}", accepted.text);
    assert_eq!(accepted.json["totals"]["patient_xof"], TERA - 1);
    let cancelled = app
        .post(
            &format!("/v1/claims/{}/cancel", first.json["id"].as_str().unwrap()),
            &provider(app),
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status.as_u16(), 200, "{}", cancelled.text);
    let checked = check(
        app,
        &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital", "amount_xof": TERA}),
    )
    .await;
    assert_eq!(checked.status.as_u16(), 200, "{}", checked.text);
    assert_eq!(
        checked.json["estimate"]["complementary_xof"], TERA,
        "no ceiling: {}",
        checked.text
    );
}

/// Copies a claim `n` times in the database, as `n` more claims of the same bill the service
/// priced one by one would be stored (their own ids and external ids).
async fn clone_claim(app: &TestApp, id: &str, n: i64) {
    let series = match app.backend {
        Backend::Postgres => format!("generate_series(1, {n}) AS s(n)"),
        Backend::Sqlite => format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n FROM s) AS s"
        ),
    };
    let inserted = app
        .db
        .execute(&format!(
            "INSERT INTO claims (id, provider, submitter, external_id, beneficiary, service_date, status, \
             base_payer, routed_to, settlement, version, body, created_at, updated_at) \
             SELECT c.id || '-' || s.n, c.provider, c.submitter, c.external_id || '-' || s.n, c.beneficiary, \
             c.service_date, c.status, c.base_payer, c.routed_to, c.settlement, c.version, \
             replace(replace(c.body, c.id, c.id || '-' || s.n), '\"external_id\":\"' || c.external_id || '\"', \
             '\"external_id\":\"' || c.external_id || '-' || s.n || '\"'), c.created_at, c.updated_at \
             FROM claims c, {series} WHERE c.id = '{id}'"
        ))
        .await;
    assert_eq!(inserted as i64, n);
}

async fn adjudicated(app: &TestApp, key: &str, body: &Value) -> String {
    let created = submit(app, &provider(app), key, body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let accepted = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &mutuelle(app),
            &json!({"lines": [{"line": 1, "decision": "accept"}]}),
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 200, "{}", accepted.text);
    id
}

async fn pay(app: &TestApp, settlement: &str, amount: i64, reference: &str) -> Reply {
    app.post(
        &format!("/v1/settlements/{settlement}/payments"),
        &mutuelle(app),
        &json!({"amount_xof": amount, "paid_at": day(today()), "reference": reference}),
    )
    .await
}

/// 9 008 claims of 10^12 owed pass 2^53 − 1 XOF: `batch_too_large`, nothing batched; the 9 007
/// of one day stay under it and are batched to the franc (API.md §5 Settlements).
async fn a_batch_just_under_the_largest_total_is_exact_and_one_over_is_refused(backend: Backend) {
    let mut plan = widest_plan();
    plan.as_object_mut().unwrap().remove("annual_ceiling_xof");
    let w = world(backend, plan).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let yesterday = day(today() - Days::new(1));
    let first = adjudicated(app, "c1", &one_line_claim("E-1", &person, &yesterday, 1, TERA)).await;
    let second = adjudicated(app, "c2", &one_line_claim("E-2", &person, &day(today()), 1, TERA)).await;
    clone_claim(app, &first, 9006).await;
    app.db
        .execute(&format!("UPDATE ceiling_usage SET used_xof = {}", 9008 * TERA))
        .await;
    let both_days = json!({"payee": "cms-a", "period_start": yesterday, "period_end": day(today())});
    let refused = app.post("/v1/settlements", &mutuelle(app), &both_days).await;
    assert_eq!(refused.field_codes(), [("".to_owned(), "batch_too_large".to_owned())]);
    assert_eq!(app.count("settlements").await, 0);
    let batched: i64 = app
        .db
        .scalar("SELECT count(*) FROM claims WHERE settlement IS NOT NULL")
        .await;
    assert_eq!(batched, 0, "nothing half-written");

    let one_day = json!({"payee": "cms-a", "period_start": yesterday, "period_end": yesterday});
    let created = app.post("/v1/settlements", &mutuelle(app), &one_day).await;
    assert_eq!(
        created.status.as_u16(),
        201,
        "{}",
        &created.text[..created.text.len().min(500)]
    );
    assert_eq!(created.json["claim_count"], 9007);
    assert_eq!(created.json["total_xof"], 9007 * TERA);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let paid = pay(app, &id, TERA, "VIR-1").await;
    assert_eq!(paid.status.as_u16(), 201, "{}", &paid.text[..paid.text.len().min(500)]);
    assert_eq!(paid.json["paid_xof"], TERA);
    assert_eq!(paid.json["status"], "partially_paid");
    let listed = app.get("/v1/settlements?limit=500", &mutuelle(app)).await;
    assert_eq!(listed.json["items"][0]["total_xof"], 9007 * TERA, "{}", listed.text);
    assert_eq!(listed.json["items"][0]["claim_count"], 9007);
    let csv = app
        .send(
            app.request(Method::GET, &format!("/v1/settlements/{id}"))
                .bearer_auth(mutuelle(app))
                .header("accept", "text/csv"),
        )
        .await;
    assert_eq!(csv.status.as_u16(), 200);
    assert_eq!(csv.text.lines().count(), 9008, "a header and one line per claim");

    // The 9 008 claims, paged at the largest limit: full pages of 500, each claim once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .get(
                &format!("/v1/claims?status=adjudicated&limit=500&cursor={cursor}"),
                &mutuelle(app),
            )
            .await;
        assert_eq!(page.status.as_u16(), 200, "{}", &page.text[..page.text.len().min(300)]);
        let items = page.json["items"].as_array().unwrap();
        pages += 1;
        for c in items {
            assert!(
                seen.insert(c["id"].as_str().unwrap().to_owned()),
                "a claim listed twice"
            );
        }
        match page.json["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), 500, "a page before the last is full");
                cursor = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (9008, 19));

    // Past 10 000 claims changed since, `since` is read in id order: still each claim once.
    clone_claim(app, &second, 1500).await;
    let mut seen = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                &format!("/v1/claims?since=1900-01-01&limit=500&cursor={cursor}"),
                &mutuelle(app),
            )
            .await;
        assert_eq!(page.status.as_u16(), 200, "{}", &page.text[..page.text.len().min(300)]);
        for c in page.json["items"].as_array().unwrap() {
            assert!(
                seen.insert(c["id"].as_str().unwrap().to_owned()),
                "a claim listed twice"
            );
        }
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10_508);

    // The batch's 9 007 `claim.batched` events, paged at the largest limit with `since`.
    let auditor = app.operator();
    let mut events = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                &format!("/v1/audit-events?since=1900-01-01&action=claim.batched&limit=500&cursor={cursor}"),
                &auditor,
            )
            .await;
        assert_eq!(page.status.as_u16(), 200, "{}", &page.text[..page.text.len().min(300)]);
        for e in page.json["items"].as_array().unwrap() {
            assert!(events.insert(e["seq"].as_i64().unwrap()), "an event listed twice");
        }
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(events.len(), 9007);
    let verified = app.get("/v1/audit-events/verify", &auditor).await;
    assert_eq!(verified.json["valid"], true, "{}", verified.text);
}

/// Payments add up to the franc at the largest amounts: 10^12 + 1 owed, 10^12 paid, 2 is past
/// what is due (422 naming 1 XOF), 1 pays it and settles the claims, then 409 `already_paid`.
async fn payments_at_the_largest_amount_add_up_exactly(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let (other, _) = one_person(&w, "X-2", "1900-01-01").await;
    let date = day(today());
    let big = adjudicated(app, "c1", &one_line_claim("E-1", &person, &date, 1, TERA)).await;
    adjudicated(app, "c2", &one_line_claim("E-2", &other, &date, 1, 1)).await;
    let created = app
        .post(
            "/v1/settlements",
            &mutuelle(app),
            &json!({"payee": "cms-a", "period_start": "1900-01-01", "period_end": day(ten_years_ahead())}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.json["total_xof"], TERA + 1);
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(pay(app, &id, TERA, "VIR-1").await.json["paid_xof"], TERA);
    let over = pay(app, &id, 2, "VIR-2").await;
    assert_eq!(
        over.field_codes(),
        [("/amount_xof".to_owned(), "exceeds_amount_due".to_owned())]
    );
    assert!(over.json["errors"][0]["message"].as_str().unwrap().contains('1'));
    let last = pay(app, &id, 1, "VIR-3").await;
    assert_eq!(last.status.as_u16(), 201, "{}", last.text);
    assert_eq!(
        (&last.json["paid_xof"], &last.json["status"]),
        (&json!(TERA + 1), &json!("paid"))
    );
    let references: Vec<&str> = last.json["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reference"].as_str().unwrap())
        .collect();
    assert_eq!(references.len(), 2, "the refused payment wrote nothing: {references:?}");
    let claim = app.get(&format!("/v1/claims/{big}"), &mutuelle(app)).await;
    assert_eq!(claim.json["status"], "settled");
    let refused = pay(app, &id, 1, "VIR-4").await;
    refused.problem(409, "conflict");
    assert_eq!(refused.json["errors"][0]["code"], "already_paid");
    let read = app.get(&format!("/v1/settlements/{id}"), &mutuelle(app)).await;
    assert_eq!(read.json["payments"].as_array().unwrap().len(), 2);
    assert_eq!(read.json["paid_xof"], TERA + 1);
    // The CSV writes the amounts as the integers they are, in both separators.
    for (separator, sep) in [("comma", ','), ("semicolon", ';')] {
        let csv = app
            .send(
                app.request(Method::GET, &format!("/v1/settlements/{id}?separator={separator}"))
                    .bearer_auth(mutuelle(app))
                    .header("accept", "text/csv"),
            )
            .await;
        let line = csv.text.lines().find(|l| l.starts_with(big.as_str())).unwrap();
        let cells: Vec<&str> = line.split(sep).collect();
        assert_eq!(cells[6..], ["1000000000000", "0", "1000000000000", "0"], "{line}");
    }
}

/// Dates at the ends of their range through coverages and contributions: a contribution of
/// 10^12 for 1900 to ten years ahead moves `paid_through` there; one day more is out of range.
async fn contributions_and_end_dates_reach_ten_years_ahead_and_no_further(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let body = json!({"product": w.product, "member_number": "X-1", "start_date": "1900-01-01",
        "principal": {"family_name": "Doe", "given_names": "Ama", "sex": "F",
                      "birth_date": "1900-01-01", "birth_date_precision": "year"}});
    let reply = register(app, "mut-a", "k", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/coverages/{coverage}/contributions");
    let last = day(ten_years_ahead());
    let beyond = day(ten_years_ahead() + Days::new(1));
    let refused = app
        .post(
            &path,
            &writer(app, "mut-a"),
            &json!({"amount_xof": TERA, "period_start": "1900-01-01",
            "period_end": beyond, "paid_at": day(today()), "reference": "R-0"}),
        )
        .await;
    assert_eq!(
        refused.field_codes(),
        [("/period_end".to_owned(), "out_of_range".to_owned())]
    );
    let paid = app
        .post(
            &path,
            &writer(app, "mut-a"),
            &json!({"amount_xof": TERA, "period_start": "1900-01-01",
            "period_end": last, "paid_at": day(today()), "reference": "R".repeat(100)}),
        )
        .await;
    assert_eq!(paid.status.as_u16(), 201, "{}", paid.text);
    assert_eq!(paid.json["amount_xof"], TERA);
    let read = app
        .get(&format!("/v1/coverages/{coverage}"), &writer(app, "mut-a"))
        .await;
    assert_eq!(read.json["paid_through"], last.as_str(), "{}", read.text);
    let listed = app.get(&path, &writer(app, "mut-a")).await;
    assert_eq!(listed.json["items"][0]["reference"], "R".repeat(100).as_str());
    // Cancelled, the only contribution leaves no paid run: `paid_through` is absent again.
    let cancelled = app
        .post(
            &format!("{path}/{}/cancel", paid.json["id"].as_str().unwrap()),
            &writer(app, "mut-a"),
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status.as_u16(), 200, "{}", cancelled.text);
    let read = app
        .get(&format!("/v1/coverages/{coverage}"), &writer(app, "mut-a"))
        .await;
    assert!(
        read.json.get("paid_through").is_none_or(Value::is_null),
        "{}",
        read.text
    );

    let etag = read.header("etag").unwrap().to_owned();
    let patch = |end: &str| {
        app.send(
            app.request(Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", etag.clone())
                .json(&json!({"end_date": end})),
        )
    };
    let refused = patch(&beyond).await;
    assert_eq!(
        refused.field_codes(),
        [("/end_date".to_owned(), "out_of_range".to_owned())]
    );
    let ended = patch(&last).await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
    assert_eq!(ended.json["end_date"], last.as_str());
}

/// The longest grace period, counted from a `paid_through` of 1900-01-01: the day it runs out
/// is still paid, the next is `CONTRIBUTIONS_IN_ARREARS` (API.md §5 Coverages).
async fn the_longest_grace_period_ends_on_its_last_day(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let body = json!({"product": w.product, "member_number": "X-1", "start_date": "1900-01-01",
        "paid_through": "1900-01-01",
        "principal": {"family_name": "Doe", "given_names": "Ama", "sex": "F",
                      "birth_date": "1900-01-01", "birth_date_precision": "year"}});
    let reply = register(app, "mut-a", "k", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let person = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + Days::new(3650);
    for (date, eligible) in [(last, true), (last + Days::new(1), false)] {
        let reply = check(
            app,
            &json!({"beneficiary": {"id": person}, "service_date": day(date), "care_level": "hospital"}),
        )
        .await;
        assert_eq!(reply.json["eligible"], eligible, "{date}: {}", reply.text);
        if !eligible {
            assert_eq!(
                reply.json["coverages"][0]["reasons"][0]["code"],
                "CONTRIBUTIONS_IN_ARREARS"
            );
        }
    }
}

/// The longest waiting period from the latest start: a check a year ahead is `NOT_STARTED`
/// until the start and `WAITING_PERIOD` until 3650 days after it.
async fn the_longest_wait_from_the_latest_start_is_dated(backend: Backend) {
    let mut plan = widest_plan();
    plan["waiting_period_days"] = json!(3650);
    let w = world(backend, plan).await;
    let app = &w.app;
    let start = ten_years_ahead();
    let body = json!({"product": w.product, "member_number": "X-1", "start_date": day(start),
        "paid_through": day(start),
        "principal": {"family_name": "Doe", "given_names": "Ama", "sex": "F",
                      "birth_date": "1900-01-01", "birth_date_precision": "year"}});
    let reply = register(app, "mut-a", "k", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let person = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let date = today().checked_add_months(Months::new(12)).unwrap();
    let checked = check(
        app,
        &json!({"beneficiary": {"id": person}, "service_date": day(date), "care_level": "hospital"}),
    )
    .await;
    assert_eq!(checked.status.as_u16(), 200, "{}", checked.text);
    let reasons = &checked.json["coverages"][0]["reasons"];
    assert_eq!(reasons[0]["code"], "NOT_STARTED", "{}", checked.text);
    assert_eq!(reasons[0]["until"], day(start).as_str());
    assert_eq!(reasons[1]["code"], "WAITING_PERIOD");
    assert_eq!(reasons[1]["until"], day(start + Days::new(3650)).as_str());
}

/// `child_max_age` 120 with year-only birth dates: a child 120 on the start date is accepted,
/// one a year older is `dependant_age_limit` at their birth date.
async fn the_oldest_child_allowed_is_accepted_and_one_year_more_refused(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let year = chrono::Datelike::year(&today());
    let household = |number: &str, born: i32| {
        json!({"product": w.product, "member_number": number, "start_date": day(today()),
            "paid_through": day(today()),
            "principal": {"family_name": "Doe", "given_names": "Ama", "sex": "F",
                          "birth_date": "1900-01-01", "birth_date_precision": "year"},
            "dependants": [{"relationship": "child", "family_name": "Doe", "given_names": "Kofi", "sex": "M",
                            "birth_date": format!("{born}-01-01"), "birth_date_precision": "year"}]})
    };
    let ok = register(app, "mut-a", "k1", &household("X-1", year - 120)).await;
    assert_eq!(ok.status.as_u16(), 201, "{}", ok.text);
    let refused = register(app, "mut-a", "k2", &household("X-2", year - 121)).await;
    assert_eq!(
        refused.field_codes(),
        [("/dependants/0/birth_date".to_owned(), "dependant_age_limit".to_owned())]
    );
}

/// Lists and the audit log at their extremes: the largest page, the largest and smallest `seq`,
/// `since` at the ends of what a date may say. Never a 500.
async fn lists_and_the_audit_log_take_extreme_filters(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let op = app.token(
        "operator",
        "admin registry:read registry:write audit:read claims:read settlements:write webhooks:write",
    );
    for path in [
        "/v1/audit-events?limit=500",
        "/v1/audit-events?since=1900-01-01",
        "/v1/audit-events?since=0001-01-01",
        "/v1/audit-events?since=9999-12-31",
        "/v1/audit-events?since=9999-12-31T23:59:59.9999999Z",
        "/v1/audit-events?since=0000-01-01T00:00:00Z",
        "/v1/claims?limit=500&since=9999-12-31T23:59:59.9999999Z",
        "/v1/claims?since=0001-01-01T00:00:00Z",
        "/v1/claims?since=9999-12-31",
        "/v1/settlements?limit=500",
        "/v1/organizations?limit=500",
        "/v1/products?limit=500",
        "/v1/webhooks?limit=500",
        "/v1/registrations/batches?limit=500",
    ] {
        let reply = app.get(path, &op).await;
        // Every one of these is a valid filter (API.md §3: an RFC 3339 instant or a date).
        assert_eq!(reply.status.as_u16(), 200, "{path}: {}", reply.text);
        if path.contains("since=9999") {
            // Nothing changed at or after the last instant a date may say.
            assert_eq!(reply.json["items"], json!([]), "{path}: {}", reply.text);
        } else if path.starts_with("/v1/audit-events?since=") {
            // Everything this test did changed after 1900.
            assert!(
                !reply.json["items"].as_array().unwrap().is_empty(),
                "{path}: {}",
                reply.text
            );
        }
    }
    for seq in [
        "9223372036854775807",
        "9223372036854775808",
        "0",
        "-1",
        "-9223372036854775808",
        "99999999999999999999999",
    ] {
        let reply = app.get(&format!("/v1/audit-events/{seq}"), &op).await;
        assert!(
            reply.status.as_u16() == 404 || reply.status.as_u16() == 422,
            "{seq}: {} {}",
            reply.status,
            reply.text
        );
    }
    for limit in ["501", "0", "-1", "18446744073709551616", "-99999999999999999999999"] {
        let reply = app.get(&format!("/v1/audit-events?limit={limit}"), &op).await;
        assert_eq!(
            reply.field_codes(),
            [("/query/limit".to_owned(), "out_of_range".to_owned())],
            "{limit}"
        );
    }
}

/// A webhook subscription at its limits: a URL of 2000 characters and a secret of 256, kept as
/// sent; one character more is `too_long` at its field.
async fn a_subscription_at_its_limits_is_kept_as_sent(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let token = app.token("mut-a", "webhooks:write");
    let prefix = "https://mutuelle.example.org/";
    let url = format!("{prefix}{}", "a".repeat(2000 - prefix.len()));
    let secret = "s".repeat(256);
    let created = app
        .post(
            "/v1/webhooks",
            &token,
            &json!({"url": url, "events": ["claim.submitted"], "secret": secret}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let read = app
        .get(
            &format!("/v1/webhooks/{}", created.json["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(read.json["url"], url.as_str());
    let refused = app
        .post(
            "/v1/webhooks",
            &token,
            &json!({"url": format!("{url}a"), "events": ["claim.submitted"], "secret": format!("{secret}s")}),
        )
        .await;
    let mut fields = refused.error_fields();
    fields.sort();
    assert_eq!(fields, ["/secret", "/url"], "{}", refused.text);
}

/// The base scheme paying a 10^12 line in full leaves the mutuelle 0, still routed; the batch of
/// that claim alone totals 0 and is `paid` at once, its claim `settled` (API.md §5, §6).
async fn a_base_paying_the_largest_bill_in_full_leaves_a_batch_of_nothing(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let person = json!({"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"},
        "family_name": "Doe", "given_names": "Ama", "sex": "F", "birth_date": "1900-01-01",
        "birth_date_precision": "year"});
    let reply = register(
        app,
        "mut-a",
        "k",
        &json!({"product": w.product, "member_number": "X-1",
        "start_date": "1900-01-01", "paid_through": day(ten_years_ahead()), "principal": person}),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let id = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let inam = app.token(
        "tg-inam",
        "registry:read registry:write claims:submit claims:read claims:adjudicate",
    );
    let base = app.create_base_product(&inam).await;
    let affiliated = app
        .post(
            "/v1/coverages",
            &inam,
            &json!({"product": base, "member_number": "INAM-1",
            "start_date": "2024-01-01", "beneficiary": person}),
        )
        .await;
    assert_eq!(affiliated.status.as_u16(), 201, "{}", affiliated.text);
    let date = day(today());
    let created = submit(app, &provider(app), "c1", &one_line_claim("E-1", &id, &date, 1, TERA)).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.json["status"], "awaiting_base");
    assert_eq!(
        created.json["totals"],
        json!({"billed_xof": TERA, "base_xof": TERA / 10 * 8, "complementary_xof": TERA / 10 * 2, "patient_xof": 0})
    );
    let claim = created.json["id"].as_str().unwrap().to_owned();
    let over = app
        .post(
            &format!("/v1/claims/{claim}/base-adjudication"),
            &inam,
            &json!({"lines": [{"line": 1, "paid_xof": TERA + 1}]}),
        )
        .await;
    assert_eq!(over.status.as_u16(), 422, "{}", over.text);
    assert_eq!(over.error_fields(), ["/lines/0/paid_xof"], "{}", over.text);
    let full = app
        .post(
            &format!("/v1/claims/{claim}/base-adjudication"),
            &inam,
            &json!({"lines": [{"line": 1, "paid_xof": TERA}]}),
        )
        .await;
    assert_eq!(full.status.as_u16(), 200, "{}", full.text);
    assert_eq!(full.json["status"], "awaiting_complementary");
    assert_eq!(
        full.json["totals"],
        json!({"billed_xof": TERA, "base_xof": TERA, "complementary_xof": 0, "patient_xof": 0})
    );
    let accepted = app
        .post(
            &format!("/v1/claims/{claim}/adjudication"),
            &mutuelle(app),
            &json!({"lines": [{"line": 1, "decision": "accept"}]}),
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 200, "{}", accepted.text);
    let batch = app
        .post(
            "/v1/settlements",
            &mutuelle(app),
            &json!({"payee": "cms-a", "period_start": "1900-01-01", "period_end": day(ten_years_ahead())}),
        )
        .await;
    assert_eq!(batch.status.as_u16(), 201, "{}", batch.text);
    assert_eq!(
        (&batch.json["total_xof"], &batch.json["status"]),
        (&json!(0), &json!("paid"))
    );
    let read = app.get(&format!("/v1/claims/{claim}"), &mutuelle(app)).await;
    assert_eq!(read.json["status"], "settled");
}

/// The largest ceiling used up on 31 December is whole again on 1 January: the plan year is the
/// calendar year of the service date (API.md §5 Eligibility, §6.3).
async fn a_ceiling_used_up_on_the_last_day_of_a_year_is_whole_the_next_day(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let year = chrono::Datelike::year(&today());
    let new_year = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
    let eve = new_year - Days::new(1);
    adjudicated(app, "c1", &one_line_claim("E-1", &person, &day(eve), 1, TERA)).await;
    let on = |date: NaiveDate| {
        let body = json!({"beneficiary": {"id": person}, "service_date": day(date), "care_level": "hospital",
                          "amount_xof": 0});
        async move { check(app, &body).await }
    };
    let before = on(eve).await;
    assert_eq!(
        before.json["coverages"][0]["remaining_ceiling_xof"], 0,
        "{}",
        before.text
    );
    assert_eq!(
        before.json["coverages"][0]["reasons"][0]["until"],
        day(new_year).as_str()
    );
    assert_eq!(
        before.json["estimate"],
        json!({"billed_xof": 0, "base_xof": 0, "complementary_xof": 0, "patient_xof": 0})
    );
    let after = on(new_year).await;
    assert_eq!(
        after.json["coverages"][0]["remaining_ceiling_xof"], TERA,
        "{}",
        after.text
    );
    assert_eq!(after.json["eligible"], true);
    let next = submit(
        app,
        &provider(app),
        "c2",
        &one_line_claim("E-2", &person, &day(new_year), 1, TERA),
    )
    .await;
    assert_eq!(next.json["totals"]["complementary_xof"], TERA, "{}", next.text);
}

/// Claims of 1000 lines with descriptions of 500 characters (about 0.7 MiB stored each): a page
/// ends before passing 2 MiB, fewer than `limit`, and following `next_cursor` lists each claim
/// once (API.md §5 Claims).
async fn the_largest_claims_page_by_size_and_each_is_listed_once(backend: Backend) {
    let mut plan = widest_plan();
    plan.as_object_mut().unwrap().remove("annual_ceiling_xof");
    let w = world(backend, plan).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let mut ids = Vec::new();
    // Each line 10^6 × 1: the claim bills 10^9.
    for i in 0..4 {
        let lines: Vec<Value> = (0..1000)
            .map(|l| {
                json!({"code": format!("L{l}"), "category": "surgery", "description": "d".repeat(500),
                            "quantity": 1_000_000, "unit_price_xof": 1})
            })
            .collect();
        let body = json!({"external_id": format!("E-{i}"), "provider": "cms-a", "beneficiary": {"id": person},
                          "service_date": day(today()), "care_level": "hospital", "lines": lines});
        let created = submit(app, &provider(app), &format!("k{i}"), &body).await;
        assert_eq!(
            created.status.as_u16(),
            201,
            "{}",
            &created.text[..created.text.len().min(300)]
        );
        ids.push(created.json["id"].as_str().unwrap().to_owned());
    }
    for filters in ["", "&since=1900-01-01", "&status=awaiting_complementary"] {
        let (pages, seen) = page_through(app, filters).await;
        assert!(pages >= 2, "{filters}: a page holds at most 2 MiB of claims");
        assert_eq!(seen, ids, "{filters}: each claim once, in id order");
    }
}

async fn page_through(app: &TestApp, filters: &str) -> (usize, Vec<String>) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("/v1/claims?limit=500{filters}"),
            Some(c) => format!("/v1/claims?limit=500{filters}&cursor={c}"),
        };
        let page = app.get(&path, &provider(app)).await;
        assert_eq!(page.status.as_u16(), 200, "{}", &page.text[..page.text.len().min(300)]);
        pages += 1;
        for c in page.json["items"].as_array().unwrap() {
            assert_eq!(c["totals"]["billed_xof"], 1_000_000_000);
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10);
    }
    (pages, seen)
}

/// A bulk file with the largest household (100 dependants), names of 100 four-byte characters,
/// year-only birth dates of 1900, a start in 1900 and `paid_through` ten years ahead: written
/// whole, byte for byte; a household of 101 dependants fails whole (API.md §5, Bulk).
async fn a_bulk_household_at_every_limit_is_written_whole(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let long_name = "𠀀".repeat(100);
    let paid = day(ten_years_ahead());
    let mut rows = Vec::new();
    for (household, children) in [("H1", 100), ("H2", 101)] {
        rows.push(format!(
            "{household},principal,{household}-N,{long_name},Ama,F,1900,,,,,,1900-01-01,{paid}"
        ));
        for i in 0..children {
            rows.push(format!("{household},child,,{long_name},{},M,1900,,,,,,,", letters(i)));
        }
    }
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let job = crate::batches::run(
        app,
        "mut-a",
        "bulk",
        &format!("?product={}", w.product),
        crate::batches::CSV,
        crate::batches::csv(&rows),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["households_created"], 1, "{job}");
    assert_eq!(job["rows_failed"], 102, "{job}");
    let written: i64 = app
        .db
        .scalar(&format!(
            "SELECT count(*) FROM beneficiaries WHERE family_name = '{long_name}'"
        ))
        .await;
    assert_eq!(
        written, 101,
        "the names kept byte for byte, the failed household not written"
    );
    let paid_through: i64 = app
        .db
        .scalar(&format!(
            "SELECT count(*) FROM coverages WHERE paid_through = '{paid}' OR principal_coverage IS NOT NULL"
        ))
        .await;
    assert_eq!(paid_through, 101);
}

/// A ceiling of 0 is used up from the start, for good: `CEILING_EXHAUSTED` without `until`
/// (API.md §5 Eligibility), and a claim is the patient's whole.
async fn a_ceiling_of_zero_is_exhausted_without_an_end(backend: Backend) {
    let mut plan = widest_plan();
    plan["annual_ceiling_xof"] = json!(0);
    let w = world(backend, plan).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let checked = check(
        app,
        &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital", "amount_xof": TERA}),
    )
    .await;
    let coverage = &checked.json["coverages"][0];
    assert_eq!(coverage["remaining_ceiling_xof"], 0, "{}", checked.text);
    assert_eq!(coverage["reasons"][0]["code"], "CEILING_EXHAUSTED", "{}", checked.text);
    assert!(coverage["reasons"][0].get("until").is_none(), "{}", checked.text);
    assert_eq!(
        checked.json["estimate"],
        json!({"billed_xof": TERA, "base_xof": 0, "complementary_xof": 0, "patient_xof": TERA})
    );
    let claimed = submit(
        app,
        &provider(app),
        "c1",
        &one_line_claim("E-1", &person, &date, 1, TERA),
    )
    .await;
    assert_eq!(claimed.status.as_u16(), 201, "{}", claimed.text);
    assert_eq!(claimed.json["status"], "rejected");
    assert_eq!(claimed.json["totals"]["patient_xof"], TERA);
    assert_eq!(
        claimed.json["reasons"][0]["code"], "CEILING_EXHAUSTED",
        "{}",
        claimed.text
    );
    assert!(claimed.json["reasons"][0].get("until").is_none(), "{}", claimed.text);
}

/// A rule at 0 % pays nothing: the coverage is passed over and the claim is the patient's,
/// to the franc (API.md §5 Claims).
async fn a_rate_of_zero_pays_nothing(backend: Backend) {
    let mut plan = widest_plan();
    plan["rules"] = json!([{"rate_bp": 0}]);
    let w = world(backend, plan).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let checked = check(
        app,
        &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital", "amount_xof": TERA}),
    )
    .await;
    assert_eq!(checked.status.as_u16(), 200, "{}", checked.text);
    assert_eq!(checked.json["estimate"]["patient_xof"], TERA, "{}", checked.text);
    let claimed = submit(
        app,
        &provider(app),
        "c1",
        &one_line_claim("E-1", &person, &date, 1_000_000, 1_000_000),
    )
    .await;
    assert_eq!(claimed.status.as_u16(), 201, "{}", claimed.text);
    assert_eq!(claimed.json["status"], "rejected", "{}", claimed.text);
    assert_eq!(
        claimed.json["totals"],
        json!({"billed_xof": TERA, "base_xof": 0, "complementary_xof": 0, "patient_xof": TERA})
    );
}

async fn fhir(app: &TestApp, path: &str, key: Option<&str>, body: &Value) -> Reply {
    let mut request = app
        .request(Method::POST, path)
        .bearer_auth(provider(app))
        .header("content-type", "application/fhir+json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    app.send(request).await
}

/// The FHIR façade at the same limits as `/v1` (API.md §7): a check or a claim item of the
/// largest quantity at the largest price (10^18) is refused, never priced or overflowed; the
/// largest bill (10^6 × 10^6) is priced to the franc.
async fn the_fhir_facade_takes_the_same_extremes(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let check_of = |quantity: i64, price: i64| {
        json!({"resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["validation", "benefits"],
               "patient": {"reference": format!("Patient/{person}")}, "servicedDate": date, "created": date,
               "insurer": {"identifier": {"system": "urn:passerelle:organization", "value": "mut-a"}},
               "item": [{"extension": [{"url": "urn:passerelle:care-level", "valueCode": "hospital"}],
                         "category": {"coding": [{"system": "urn:passerelle:category", "code": "surgery"}]},
                         "quantity": {"value": quantity}, "unitPrice": {"value": price, "currency": "XOF"}}]})
    };
    let too_much = fhir(
        app,
        "/fhir/r4/CoverageEligibilityRequest",
        None,
        &check_of(1_000_000, TERA),
    )
    .await;
    assert_eq!(too_much.status.as_u16(), 422, "{}", too_much.text);
    let largest = fhir(
        app,
        "/fhir/r4/CoverageEligibilityRequest",
        None,
        &check_of(1_000_000, 1_000_000),
    )
    .await;
    assert_eq!(largest.status.as_u16(), 200, "{}", largest.text);
    assert!(largest.text.contains("1000000000000"), "{}", largest.text);

    let item = |sequence: usize, quantity: i64, price: i64| {
        json!({"sequence": sequence, "servicedDate": date,
               "productOrService": {"coding": [{"code": "C"}], "text": "Acte"},
               "category": {"coding": [{"system": "urn:passerelle:category", "code": "surgery"}]},
               "locationCodeableConcept": {"coding": [{"system": "urn:passerelle:care-level", "code": "hospital"}]},
               "quantity": {"value": quantity}, "unitPrice": {"value": price, "currency": "XOF"}})
    };
    let claim_of = |identifier: &str, items: Vec<Value>| {
        json!({"resourceType": "Claim", "status": "active", "use": "claim", "created": date,
               "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
               "identifier": [{"system": "urn:passerelle:claim-id:cms-a", "value": identifier}],
               "patient": {"reference": format!("Patient/{person}")},
               "provider": {"reference": "Organization/cms-a"},
               "priority": {"coding": [{"code": "normal"}]},
               "insurance": [{"sequence": 1, "focal": true, "coverage": {"display": "any"}}],
               "item": items})
    };
    let refused = fhir(
        app,
        "/fhir/r4/Claim",
        Some("f1"),
        &claim_of("F-1", vec![item(1, 1_000_000, TERA)]),
    )
    .await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.text);
    let many: Vec<Value> = (1..=1000).map(|i| item(i, 1, TERA)).collect();
    let refused = fhir(app, "/fhir/r4/Claim", Some("f2"), &claim_of("F-2", many)).await;
    assert_eq!(
        refused.status.as_u16(),
        422,
        "{}",
        &refused.text[..refused.text.len().min(600)]
    );
    assert_eq!(app.count("claims").await, 0, "nothing written");
    let priced = fhir(
        app,
        "/fhir/r4/Claim",
        Some("f3"),
        &claim_of("F-3", vec![item(1, 1_000_000, 1_000_000)]),
    )
    .await;
    assert_eq!(priced.status.as_u16(), 201, "{}", priced.text);
    let id = priced.json["id"].as_str().unwrap();
    let read = app.get(&format!("/v1/claims/{id}"), &provider(app)).await;
    assert_eq!(
        read.json["totals"],
        json!({"billed_xof": TERA, "base_xof": 0, "complementary_xof": TERA, "patient_xof": 0})
    );
}

/// Each value just past its documented limit is 422 at its own field with its code (API.md §4:
/// a list too long is one of `invalid_length`, `too_long`, `too_many`), and writes nothing.
async fn one_past_each_limit_is_named_at_its_field(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, coverage) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let beyond = day(ten_years_ahead() + Days::new(1));
    let mutuelle = mutuelle(app);
    let mut faults: Vec<String> = Vec::new();
    let mut expect = |what: &str, reply: Reply, field: &str, code: &str| {
        let got: Vec<(String, String)> = if reply.status.as_u16() == 422 {
            reply.field_codes()
        } else {
            vec![(reply.status.to_string(), reply.text.chars().take(200).collect())]
        };
        if got != [(field.to_owned(), code.to_owned())] {
            faults.push(format!("{what}: expected {field} {code}, got {got:?}"));
        }
    };
    let product = |change: &dyn Fn(&mut Value)| {
        let mut body = widest_plan();
        change(&mut body);
        body
    };
    let products: Vec<(&str, Value, &str, &str)> = vec![
        (
            "rate 10001",
            product(&|b| b["rules"][0]["rate_bp"] = json!(10001)),
            "/rules/0/rate_bp",
            "out_of_range",
        ),
        (
            "ceiling 10^12+1",
            product(&|b| b["annual_ceiling_xof"] = json!(TERA + 1)),
            "/annual_ceiling_xof",
            "out_of_range",
        ),
        (
            "wait 3651",
            product(&|b| b["waiting_period_days"] = json!(3651)),
            "/waiting_period_days",
            "out_of_range",
        ),
        (
            "grace 3651",
            product(&|b| b["grace_period_days"] = json!(3651)),
            "/grace_period_days",
            "out_of_range",
        ),
        (
            "dependants 101",
            product(&|b| b["max_dependants"] = json!(101)),
            "/max_dependants",
            "out_of_range",
        ),
        (
            "age 121",
            product(&|b| b["child_max_age"] = json!(121)),
            "/child_max_age",
            "out_of_range",
        ),
        (
            "name 201",
            product(&|b| b["name"] = json!("P".repeat(201))),
            "/name",
            "too_long",
        ),
        (
            "101 rules",
            product(&|b| b["rules"] = json!(vec![json!({"rate_bp": 1}); 101])),
            "/rules",
            "too_many",
        ),
        (
            "from 1899",
            product(&|b| b["effective_from"] = json!("1899-12-31")),
            "/effective_from",
            "out_of_range",
        ),
        (
            "from beyond",
            product(&|b| b["effective_from"] = json!(beyond)),
            "/effective_from",
            "out_of_range",
        ),
    ];
    for (what, body, field, code) in products {
        expect(
            what,
            app.post("/v1/products", &writer(app, "mut-a"), &body).await,
            field,
            code,
        );
    }
    let household = |change: &dyn Fn(&mut Value)| {
        let mut body = json!({"product": w.product, "member_number": "Y-1", "start_date": "1900-01-01",
            "paid_through": day(ten_years_ahead()),
            "principal": {"family_name": "Doe", "given_names": "Ama", "sex": "F",
                          "birth_date": "1900-01-01", "birth_date_precision": "year"}});
        change(&mut body);
        body
    };
    let children: Vec<Value> = (0..101)
        .map(|i| {
            json!({"relationship": "child", "family_name": "Doe", "given_names": letters(i), "sex": "M",
                        "birth_date": "1990-01-01"})
        })
        .collect();
    let households: Vec<(&str, Value, &str, &str)> = vec![
        (
            "start 1899",
            household(&|b| b["start_date"] = json!("1899-12-31")),
            "/start_date",
            "out_of_range",
        ),
        (
            "start beyond",
            household(&|b| b["start_date"] = json!(beyond)),
            "/start_date",
            "out_of_range",
        ),
        (
            "paid beyond",
            household(&|b| b["paid_through"] = json!(beyond)),
            "/paid_through",
            "out_of_range",
        ),
        (
            "given 101",
            household(&|b| b["principal"]["given_names"] = json!("a".repeat(101))),
            "/principal/given_names",
            "too_long",
        ),
        (
            "101 dependants",
            household(&|b| b["dependants"] = json!(children)),
            "/dependants",
            "too_many_dependants",
        ),
    ];
    for (i, (what, body, field, code)) in households.into_iter().enumerate() {
        expect(what, register(app, "mut-a", &format!("h{i}"), &body).await, field, code);
    }
    let claim = |change: &dyn Fn(&mut Value)| {
        let mut body = one_line_claim("Z-1", &person, &date, 1, 1);
        change(&mut body);
        body
    };
    let claims: Vec<(&str, Value, &str, &str)> = vec![
        (
            "quantity 10^6+1",
            claim(&|b| b["lines"][0]["quantity"] = json!(1_000_001)),
            "/lines/0/quantity",
            "out_of_range",
        ),
        (
            "price 10^12+1",
            claim(&|b| b["lines"][0]["unit_price_xof"] = json!(TERA + 1)),
            "/lines/0/unit_price_xof",
            "out_of_range",
        ),
        (
            "1001 lines",
            claim(&|b| {
                b["lines"] = json!((0..1001)
                    .map(
                        |i| json!({"code": format!("L{i}"), "category": "surgery", "quantity": 1, "unit_price_xof": 1})
                    )
                    .collect::<Vec<_>>())
            }),
            "/lines",
            "invalid_length",
        ),
        (
            "101 diagnoses",
            claim(&|b| b["diagnoses"] = json!(vec!["J06.9"; 101])),
            "/diagnoses",
            "invalid_length",
        ),
        (
            "external 101",
            claim(&|b| b["external_id"] = json!("E".repeat(101))),
            "/external_id",
            "invalid_length",
        ),
        (
            "code 51",
            claim(&|b| b["lines"][0]["code"] = json!("C".repeat(51))),
            "/lines/0/code",
            "invalid_length",
        ),
        (
            "description 501",
            claim(&|b| b["lines"][0]["description"] = json!("d".repeat(501))),
            "/lines/0/description",
            "too_long",
        ),
        (
            "tomorrow",
            claim(&|b| b["service_date"] = json!(day(today() + Days::new(1)))),
            "/service_date",
            "in_future",
        ),
    ];
    for (i, (what, body, field, code)) in claims.into_iter().enumerate() {
        expect(
            what,
            submit(app, &provider(app), &format!("c{i}"), &body).await,
            field,
            code,
        );
    }
    let contributions = format!("/v1/coverages/{coverage}/contributions");
    let contribution = |amount: i64| json!({"amount_xof": amount, "period_start": "2026-01-01", "period_end": "2026-01-31", "paid_at": date, "reference": "R"});
    expect(
        "contribution 0",
        app.post(&contributions, &writer(app, "mut-a"), &contribution(0)).await,
        "/amount_xof",
        "out_of_range",
    );
    expect(
        "contribution 10^12+1",
        app.post(&contributions, &writer(app, "mut-a"), &contribution(TERA + 1))
            .await,
        "/amount_xof",
        "out_of_range",
    );
    let checked = check(
        app,
        &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital", "amount_xof": -1}),
    )
    .await;
    expect("check -1", checked, "/amount_xof", "out_of_range");
    let settle = |start: &str, end: &str| json!({"payee": "cms-a", "period_start": start, "period_end": end});
    expect(
        "settle 1899",
        app.post("/v1/settlements", &mutuelle, &settle("1899-12-31", &date))
            .await,
        "/period_start",
        "out_of_range",
    );
    expect(
        "settle beyond",
        app.post("/v1/settlements", &mutuelle, &settle(&date, &beyond)).await,
        "/period_end",
        "out_of_range",
    );
    let events = vec!["claim.submitted"; 1001];
    let hook = app
        .post(
            "/v1/webhooks",
            &app.token("mut-a", "webhooks:write"),
            &json!({"url": "https://mutuelle.example.org/hook", "events": events}),
        )
        .await;
    expect("1001 events", hook, "/events", "invalid_length");
    assert_eq!(app.count("claims").await, 0);
    assert_eq!(app.count("contributions").await, 0);
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

/// An `external_id` is counted in its NFKC form (API.md §5 Claims): 50 `№` are 100 characters
/// (`No` each) and kept so, 51 are too long; 100 `É` written as `E` and an accent (200 code
/// points as sent) are 100 characters, kept composed, and found again as sent.
async fn an_external_id_at_its_limit_is_counted_in_its_kept_form(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let numero = submit(
        app,
        &provider(app),
        "c1",
        &one_line_claim(&"№".repeat(50), &person, &date, 1, 1),
    )
    .await;
    assert_eq!(numero.status.as_u16(), 201, "{}", numero.text);
    assert_eq!(numero.json["external_id"], "No".repeat(50).as_str());
    let longer = submit(
        app,
        &provider(app),
        "c2",
        &one_line_claim(&"№".repeat(51), &person, &date, 1, 1),
    )
    .await;
    assert_eq!(
        longer.field_codes(),
        [("/external_id".to_owned(), "invalid_length".to_owned())]
    );
    let decomposed = "E\u{301}".repeat(100);
    let accented = submit(
        app,
        &provider(app),
        "c3",
        &one_line_claim(&decomposed, &person, &date, 1, 1),
    )
    .await;
    assert_eq!(accented.status.as_u16(), 201, "{}", accented.text);
    assert_eq!(accented.json["external_id"], "É".repeat(100).as_str());
    for sent in ["É".repeat(100), decomposed] {
        let found = app
            .send(
                app.request(Method::GET, "/v1/claims")
                    .query(&[("external_id", sent.as_str())])
                    .bearer_auth(provider(app)),
            )
            .await;
        assert_eq!(
            found.status.as_u16(),
            200,
            "{} chars as sent: {}",
            sent.chars().count(),
            found.text
        );
        assert_eq!(found.json["items"].as_array().unwrap().len(), 1, "{}", found.text);
    }
}

/// Text at its limit with white space around it is that text (API.md §4: the server trims
/// `/v1` bodies): accepted, and kept trimmed; a decomposed name is kept byte for byte.
async fn text_at_its_limit_with_white_space_around_is_trimmed_first(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let date = day(today());
    let name = "e\u{301}".repeat(50); // 100 code points, decomposed
    let body = json!({"product": w.product, "member_number": " X-1 ", "start_date": "1900-01-01",
        "paid_through": day(ten_years_ahead()),
        "principal": {"family_name": format!("  {}  ", "D".repeat(100)), "given_names": name, "sex": "F",
                      "birth_date": "1900-01-01", "birth_date_precision": "year"}});
    let reply = register(app, "mut-a", "k", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let person = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let read = app
        .get(&format!("/v1/beneficiaries/{person}"), &writer(app, "mut-a"))
        .await;
    assert_eq!(read.json["family_name"], "D".repeat(100).as_str());
    assert_eq!(read.json["given_names"], name.as_str(), "byte for byte");

    let mut claim = one_line_claim(&format!(" {} ", "E".repeat(100)), &person, &date, 1, 1);
    claim["lines"][0]["code"] = json!(format!(" {} ", "C".repeat(50)));
    let claimed = submit(app, &provider(app), "c1", &claim).await;
    assert_eq!(claimed.status.as_u16(), 201, "{}", claimed.text);
    assert_eq!(claimed.json["external_id"], "E".repeat(100).as_str());
    assert_eq!(claimed.json["lines"][0]["code"], "C".repeat(50).as_str());

    let paid = app
        .post(
            &format!("/v1/coverages/{coverage}/contributions"),
            &writer(app, "mut-a"),
            &json!({"amount_xof": 1, "period_start": "2026-01-01", "period_end": "2026-01-31",
                      "paid_at": date, "reference": format!(" {} ", "R".repeat(100))}),
        )
        .await;
    assert_eq!(paid.status.as_u16(), 201, "{}", paid.text);
    assert_eq!(paid.json["reference"], "R".repeat(100).as_str());
}

/// The largest amounts however written (API.md §3): `1e12` and `1000000000000.0` are 10^12, the
/// same request as `1000000000000` for its `Idempotency-Key`; a fraction a double rounds to
/// 10^12 is `invalid_type` at its field.
async fn the_largest_amounts_read_the_same_however_written(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let text = |quantity: &str, price: &str| {
        format!(
            r#"{{"external_id": "E-1", "provider": "cms-a", "beneficiary": {{"id": "{person}"}}, "service_date": "{date}",
               "care_level": "hospital", "lines": [{{"code": "C", "category": "surgery", "quantity": {quantity}, "unit_price_xof": {price}}}]}}"#
        )
    };
    let token = provider(app);
    let first = crate::claims::submit_text(app, &token, "k", text("1e0", "1e12")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(first.json["totals"]["billed_xof"], TERA);
    let replayed = crate::claims::submit_text(app, &token, "k", text("1", "1000000000000")).await;
    assert_eq!(replayed.status.as_u16(), 201, "{}", replayed.text);
    assert_eq!(replayed.json, first.json);
    let again = crate::claims::submit_text(app, &token, "k", text("1.0", "1000000000000.0")).await;
    assert_eq!(again.json, first.json);
    let rounded = crate::claims::submit_text(app, &token, "k2", text("1", "999999999999.99999999")).await;
    assert_eq!(
        rounded.field_codes(),
        [("/lines/0/unit_price_xof".to_owned(), "invalid_type".to_owned())]
    );
    let past = crate::claims::submit_text(app, &token, "k3", text("1e6", "1000001e6")).await;
    assert_eq!(
        past.field_codes(),
        [("/lines/0/unit_price_xof".to_owned(), "out_of_range".to_owned())]
    );
    assert_eq!(app.count("claims").await, 1);
}

/// Filters holding far more than any stored value: each answered as documented (an empty
/// list, 404 or 422), never a 500.
async fn filters_far_past_any_stored_value_are_answered(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let op = app.token(
        "operator",
        "admin registry:read registry:write audit:read claims:read settlements:write webhooks:write",
    );
    let long = "x".repeat(4000);
    for (path, expected) in [
        (format!("/v1/audit-events?resource_id={long}&resource_type=claim"), 200),
        (format!("/v1/audit-events?organization={long}"), 200),
        (format!("/v1/audit-events?action={long}"), 200),
        (format!("/v1/beneficiaries?national_id=TG:NIU:{long}"), 422),
        (format!("/v1/coverages?beneficiary={long}"), 200),
        (format!("/v1/claims?status={long}"), 422),
        (format!("/v1/settlements?payee={long}"), 422),
        (format!("/v1/claims/{long}"), 404),
        (format!("/v1/beneficiaries/{long}"), 404),
        // A cursor naming a `seq` past any a log holds names no position of it.
        (format!("/v1/audit-events?cursor=c1{}", "39".repeat(30)), 422),
    ] {
        let reply = app.get(&path, &op).await;
        assert_eq!(reply.status.as_u16(), expected, "{}: {}", &path[..60], reply.text);
    }
}

/// The oldest child allowed (120, year-only) is eligible today and past the age on next year's
/// 1 January: `DEPENDANT_AGE_LIMIT` without `until` (API.md §5 Eligibility). A dependant added
/// with a start ten years ahead is `NOT_STARTED` until then.
async fn the_oldest_child_ages_out_on_the_first_of_january(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let year = chrono::Datelike::year(&today());
    let body = json!({"product": w.product, "member_number": "X-1", "start_date": day(today()),
        "paid_through": day(ten_years_ahead()),
        "principal": {"family_name": "Doe", "given_names": "Ama", "sex": "F",
                      "birth_date": "1950-01-01", "birth_date_precision": "year"},
        "dependants": [{"relationship": "child", "family_name": "Doe", "given_names": "Kofi", "sex": "M",
                        "birth_date": format!("{}-01-01", year - 120), "birth_date_precision": "year"}]});
    let reply = register(app, "mut-a", "k", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let child = reply.json["members"][1]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let principal_coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let on = |date: NaiveDate| {
        let body = json!({"beneficiary": {"id": child}, "service_date": day(date), "care_level": "hospital"});
        async move { check(app, &body).await }
    };
    let last_day = NaiveDate::from_ymd_opt(year, 12, 31).unwrap();
    let eligible = on(last_day).await;
    assert_eq!(eligible.json["eligible"], true, "{}", eligible.text);
    let aged = on(last_day + Days::new(1)).await;
    let reasons = &aged.json["coverages"][0]["reasons"];
    assert_eq!(reasons[0]["code"], "DEPENDANT_AGE_LIMIT", "{}", aged.text);
    assert!(reasons[0].get("until").is_none(), "{}", aged.text);

    let start = ten_years_ahead();
    let added = app
        .send(
            app.request(Method::POST, &format!("/v1/coverages/{principal_coverage}/dependants"))
                .bearer_auth(writer(app, "mut-a"))
                .header("idempotency-key", "late")
                .json(
                    &json!({"relationship": "spouse", "start_date": day(start), "family_name": "Doe",
                              "given_names": "Late", "sex": "M", "birth_date": "1900-01-01",
                              "birth_date_precision": "year"}),
                ),
        )
        .await;
    assert_eq!(added.status.as_u16(), 201, "{}", added.text);
    let spouse = added.json["beneficiary"]["id"].as_str().unwrap().to_owned();
    let checked = check(
        app,
        &json!({"beneficiary": {"id": spouse}, "service_date": day(today().checked_add_months(Months::new(12)).unwrap()),
                "care_level": "hospital"}),
    )
    .await;
    let reasons = &checked.json["coverages"][0]["reasons"];
    assert_eq!(reasons[0]["code"], "NOT_STARTED", "{}", checked.text);
    assert_eq!(reasons[0]["until"], day(start).as_str(), "{}", checked.text);
}

/// The whole largest ceiling freed by a reduction to 0, then by a cancellation, is the next
/// claim's to the franc (API.md §6: what an adjudication removes frees ceiling).
async fn the_largest_ceiling_freed_whole_is_used_whole_again(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let remaining = || {
        let body = json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital"});
        async move { check(app, &body).await.json["coverages"][0]["remaining_ceiling_xof"].clone() }
    };
    let a = submit(
        app,
        &provider(app),
        "a",
        &one_line_claim("E-A", &person, &date, 1, TERA),
    )
    .await;
    assert_eq!(remaining().await, 0);
    let reduced = app
        .post(
            &format!("/v1/claims/{}/adjudication", a.json["id"].as_str().unwrap()),
            &mutuelle(app),
            &json!({"lines": [{"line": 1, "decision": "reduce", "approved_xof": 0}]}),
        )
        .await;
    assert_eq!(reduced.status.as_u16(), 200, "{}", reduced.text);
    assert_eq!(reduced.json["totals"]["patient_xof"], TERA);
    assert_eq!(remaining().await, TERA);
    let b = submit(
        app,
        &provider(app),
        "b",
        &one_line_claim("E-B", &person, &date, 1, TERA),
    )
    .await;
    assert_eq!(b.json["totals"]["complementary_xof"], TERA, "{}", b.text);
    assert_eq!(remaining().await, 0);
    let cancelled = app
        .post(
            &format!("/v1/claims/{}/cancel", b.json["id"].as_str().unwrap()),
            &provider(app),
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status.as_u16(), 200, "{}", cancelled.text);
    assert_eq!(remaining().await, TERA);
    let used: i64 = app.db.scalar("SELECT used_xof FROM ceiling_usage").await;
    assert_eq!(used, 0);
}

/// A ceiling one franc under the largest, used up; a version raising it to 10^12 from tomorrow
/// ends `CEILING_EXHAUSTED` tomorrow, one from ten years ahead does not (1 January comes first),
/// and a claim priced from tomorrow gets the one franc more (API.md §5 Products, Eligibility).
async fn a_ceiling_raised_to_the_largest_by_a_later_version_is_dated(backend: Backend) {
    let mut plan = widest_plan();
    plan["annual_ceiling_xof"] = json!(TERA - 1);
    let w = world(backend, plan.clone()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    let first = submit(
        app,
        &provider(app),
        "a",
        &one_line_claim("E-A", &person, &date, 1, TERA),
    )
    .await;
    assert_eq!(first.json["totals"]["complementary_xof"], TERA - 1, "{}", first.text);
    let put = |from: NaiveDate, tag: &str| {
        let mut body = plan.clone();
        body["annual_ceiling_xof"] = json!(TERA);
        body["effective_from"] = json!(day(from));
        app.send(
            app.request(Method::PUT, &format!("/v1/products/{}", w.product))
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", tag.to_owned())
                .json(&body),
        )
    };
    let year = chrono::Datelike::year(&today());
    let new_year = NaiveDate::from_ymd_opt(year + 1, 1, 1).unwrap();
    let until = || {
        let body = json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital"});
        async move { check(app, &body).await.json["coverages"][0]["reasons"][0].clone() }
    };
    let far = put(ten_years_ahead(), "\"1\"").await;
    assert_eq!(far.status.as_u16(), 200, "{}", far.text);
    assert_eq!(until().await["until"], day(new_year).as_str());
    let tomorrow = today() + Days::new(1);
    let near = put(tomorrow, "\"2\"").await;
    assert_eq!(near.status.as_u16(), 200, "{}", near.text);
    let reason = until().await;
    assert_eq!(reason["code"], "CEILING_EXHAUSTED");
    assert_eq!(reason["until"], day(tomorrow.min(new_year)).as_str(), "{reason}");
    let versions = app
        .get(&format!("/v1/products/{}/versions", w.product), &writer(app, "mut-a"))
        .await;
    assert_eq!(versions.json["items"][1]["superseded_by"], 3, "{}", versions.text);
}

/// Ids at their longest through a whole flow: a provider's and a mutuelle's organisation ids of
/// 63 characters, a member number of 50 found in another case; the claim, the batch, its CSV
/// and the audit log's `organization` filter all name them as written (API.md §3, §5).
async fn the_longest_ids_go_through_a_whole_flow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mutuelle_id = format!("m{}", "u".repeat(62));
    let provider_id = format!("p{}", "-".repeat(61)) + "9";
    app.create_org(&mutuelle_id, "mutuelle", "TG").await;
    app.create_org(&provider_id, "provider", "TG").await;
    let writer = app.token(
        &mutuelle_id,
        "registry:read registry:write claims:read claims:adjudicate settlements:write",
    );
    let provider = app.token(&provider_id, "claims:submit claims:read eligibility:check");
    let product = app.post("/v1/products", &writer, &widest_plan()).await;
    assert_eq!(product.status.as_u16(), 201, "{}", product.text);
    let number = format!("A{}", "b".repeat(48)) + "Z";
    let registered = app
        .send(
            app.request(Method::POST, "/v1/registrations")
                .bearer_auth(&writer)
                .header("idempotency-key", "k")
                .json(
                    &json!({"product": product.json["id"], "member_number": number, "start_date": "1900-01-01",
                    "paid_through": day(ten_years_ahead()),
                    "principal": {"family_name": "Doe", "given_names": "Ama", "sex": "F",
                                  "birth_date": "1900-01-01", "birth_date_precision": "year"}}),
                ),
        )
        .await;
    assert_eq!(registered.status.as_u16(), 201, "{}", registered.text);
    let date = day(today());
    let claim = json!({"external_id": "E-1", "provider": provider_id,
        "beneficiary": {"organization": mutuelle_id, "member_number": number.to_lowercase()},
        "service_date": date, "care_level": "hospital",
        "lines": [{"code": "C", "category": "surgery", "quantity": 1, "unit_price_xof": TERA}]});
    let created = submit(&app, &provider, "c", &claim).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.json["routed_to"], mutuelle_id.as_str());
    let id = created.json["id"].as_str().unwrap();
    let accepted = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &writer,
            &json!({"lines": [{"line": 1, "decision": "accept"}]}),
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 200, "{}", accepted.text);
    let batch = app
        .post(
            "/v1/settlements",
            &writer,
            &json!({"payee": provider_id, "period_start": date, "period_end": date}),
        )
        .await;
    assert_eq!(batch.status.as_u16(), 201, "{}", batch.text);
    assert_eq!(
        (&batch.json["payee"], &batch.json["total_xof"]),
        (&json!(provider_id), &json!(TERA))
    );
    let listed = app
        .get(&format!("/v1/settlements?payee={provider_id}"), &provider)
        .await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1, "{}", listed.text);
    let audit = app
        .get(
            &format!("/v1/audit-events?organization={provider_id}&action=claim.submitted"),
            &app.operator(),
        )
        .await;
    assert_eq!(audit.json["items"].as_array().unwrap().len(), 1, "{}", audit.text);
}

/// The largest claim a body holds (1000 lines, each with a description of 500 ASCII characters:
/// of two-byte letters they pass the 1 MiB a body may hold) is
/// announced whole to a subscriber: its 1000 lines and its totals, to the franc (API.md §5
/// Webhooks).
async fn the_largest_claim_is_delivered_whole(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.webhook_allow_insecure = true;
        c.webhook_retry_initial = std::time::Duration::from_millis(50);
    })
    .await;
    for (id, kind) in [("mut-a", "mutuelle"), ("cms-a", "provider")] {
        app.create_org(id, kind, "TG").await;
    }
    let product = app.post("/v1/products", &writer(&app, "mut-a"), &widest_plan()).await;
    let w = World {
        product: product.json["id"].as_str().unwrap().to_owned(),
        app,
    };
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let (receiver, port) = crate::webhooks::receiver().await;
    // The longest secret, of four-byte letters (1024 bytes), signs the delivery.
    let secret = "𠀀".repeat(256);
    let hook = app
        .post(
            "/v1/webhooks",
            &app.token("mut-a", "webhooks:write"),
            &json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["claim.submitted"], "secret": secret}),
        )
        .await;
    assert_eq!(hook.status.as_u16(), 201, "{}", hook.text);
    let lines: Vec<Value> = (0..1000)
        .map(|l| {
            json!({"code": format!("L{l}"), "category": "surgery", "description": "d".repeat(500),
                        "quantity": 1000, "unit_price_xof": 1_000_000})
        })
        .collect();
    let body = json!({"external_id": "E-1", "provider": "cms-a", "beneficiary": {"id": person},
                      "service_date": day(today()), "care_level": "hospital", "lines": lines});
    let created = submit(app, &provider(app), "k", &body).await;
    assert_eq!(
        created.status.as_u16(),
        201,
        "{}",
        &created.text[..created.text.len().min(300)]
    );
    let got = crate::webhooks::wait_for(&receiver, 1, std::time::Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "one delivery");
    let (_, signature, delivered) = &got[0];
    let (t, v1) = signature.split_once(',').unwrap();
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret.as_bytes()).unwrap();
    hmac::Mac::update(
        &mut mac,
        format!("{}.{delivered}", t.trim_start_matches("t=")).as_bytes(),
    );
    let expected: String = hmac::Mac::finalize(mac)
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1.trim_start_matches("v1="), expected, "signed with the secret as sent");
    let event: Value = serde_json::from_str(delivered).unwrap();
    let lines = event["data"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines[999]["description"], "d".repeat(500).as_str());
    assert_eq!(event["data"]["totals"], created.json["totals"]);
    assert_eq!(event["data"]["totals"]["complementary_xof"], TERA);
}

/// A batch of 20 000 claims of 1 XOF, announced to a subscriber: one payment of 20 000 pays it
/// exactly and settles every claim, each `claim.settled` queued once (API.md §5 Settlements).
async fn one_payment_settles_twenty_thousand_claims(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.webhook_allow_insecure = true).await;
    for (id, kind) in [("mut-a", "mutuelle"), ("cms-a", "provider")] {
        app.create_org(id, kind, "TG").await;
    }
    let product = app.post("/v1/products", &writer(&app, "mut-a"), &widest_plan()).await;
    let w = World {
        product: product.json["id"].as_str().unwrap().to_owned(),
        app,
    };
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let (_receiver, port) = crate::webhooks::receiver().await;
    let hook = app
        .post(
            "/v1/webhooks",
            &app.token("mut-a", "webhooks:write"),
            &json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["claim.settled"]}),
        )
        .await;
    assert_eq!(hook.status.as_u16(), 201, "{}", hook.text);
    let date = day(today());
    let first = adjudicated(app, "c1", &one_line_claim("E-1", &person, &date, 1, 1)).await;
    clone_claim(app, &first, 19_999).await;
    let batch = || {
        app.send(
            app.request(Method::POST, "/v1/settlements")
                .bearer_auth(mutuelle(app))
                .header("idempotency-key", "batch")
                .json(&json!({"payee": "cms-a", "period_start": date, "period_end": date})),
        )
    };
    let created = batch().await;
    assert_eq!(
        created.status.as_u16(),
        201,
        "{}",
        &created.text[..created.text.len().min(300)]
    );
    assert_eq!(
        (&created.json["claim_count"], &created.json["total_xof"]),
        (&json!(20_000), &json!(20_000))
    );
    // Its answer, 20 000 claim ids long, is replayed whole.
    let replayed = batch().await;
    assert_eq!(replayed.status.as_u16(), 201);
    assert_eq!(replayed.json, created.json);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let paid = pay(app, &id, 20_000, "VIR-1").await;
    assert_eq!(paid.status.as_u16(), 201, "{}", &paid.text[..paid.text.len().min(300)]);
    assert_eq!(paid.json["status"], "paid");
    let settled: i64 = app
        .db
        .scalar("SELECT count(*) FROM claims WHERE status = 'settled'")
        .await;
    assert_eq!(settled, 20_000);
    let queued: i64 = app.db.scalar("SELECT count(*) FROM webhook_deliveries").await;
    assert_eq!(queued, 20_000, "one claim.settled for each claim");
}

/// 1000 lines of 10^9 against the largest ceiling less one franc: the ceiling runs out on the
/// last line, which pays one franc less; a reduction of another line moves its franc to the
/// patient and never raises the last (API.md §6.3).
async fn the_largest_ceiling_runs_out_on_the_last_of_a_thousand_lines(backend: Backend) {
    let w = world(backend, widest_plan()).await;
    let app = &w.app;
    let (person, _) = one_person(&w, "X-1", "1900-01-01").await;
    let date = day(today());
    submit(app, &provider(app), "one", &one_line_claim("E-0", &person, &date, 1, 1)).await;
    let lines: Vec<Value> = (0..1000)
        .map(
            |i| json!({"code": format!("L{i}"), "category": "surgery", "quantity": 1, "unit_price_xof": 1_000_000_000}),
        )
        .collect();
    let body = json!({"external_id": "E-1", "provider": "cms-a", "beneficiary": {"id": person},
                      "service_date": date, "care_level": "hospital", "lines": lines});
    let claimed = submit(app, &provider(app), "big", &body).await;
    assert_eq!(
        claimed.status.as_u16(),
        201,
        "{}",
        &claimed.text[..claimed.text.len().min(300)]
    );
    let lines = claimed.json["lines"].as_array().unwrap();
    assert!(lines[..999].iter().all(|l| l["complementary_xof"] == 1_000_000_000));
    assert_eq!(
        (&lines[999]["complementary_xof"], &lines[999]["patient_xof"]),
        (&json!(999_999_999), &json!(1))
    );
    assert_eq!(
        claimed.json["totals"],
        json!({"billed_xof": TERA, "base_xof": 0, "complementary_xof": TERA - 1, "patient_xof": 1})
    );
    let decisions: Vec<Value> = (1..=1000)
        .map(|l| {
            if l == 1 {
                json!({"line": l, "decision": "reduce", "approved_xof": 0})
            } else {
                json!({"line": l, "decision": "accept"})
            }
        })
        .collect();
    let decided = app
        .post(
            &format!("/v1/claims/{}/adjudication", claimed.json["id"].as_str().unwrap()),
            &mutuelle(app),
            &json!({"lines": decisions}),
        )
        .await;
    assert_eq!(
        decided.status.as_u16(),
        200,
        "{}",
        &decided.text[..decided.text.len().min(300)]
    );
    assert_eq!(
        decided.json["totals"],
        json!({"billed_xof": TERA, "base_xof": 0, "complementary_xof": TERA - 1 - 1_000_000_000,
               "patient_xof": 1 + 1_000_000_000})
    );
    assert_eq!(
        decided.json["lines"][999]["complementary_xof"], 999_999_999,
        "never raised"
    );
    let remaining = check(
        app,
        &json!({"beneficiary": {"id": person}, "service_date": date, "care_level": "hospital"}),
    )
    .await;
    assert_eq!(
        remaining.json["coverages"][0]["remaining_ceiling_xof"], 1_000_000_000,
        "{}",
        remaining.text
    );
}

on_both_databases!(
    a_household_at_every_limit_is_written_whole_and_read_back_exactly,
    a_check_at_the_largest_amount_and_the_date_bounds_is_priced_exactly,
    the_largest_claim_uses_up_the_largest_ceiling_exactly,
    the_largest_products_of_quantity_and_price_are_refused_not_overflowed,
    claims_on_a_usage_at_the_top_of_the_range_are_priced,
    a_batch_just_under_the_largest_total_is_exact_and_one_over_is_refused,
    payments_at_the_largest_amount_add_up_exactly,
    contributions_and_end_dates_reach_ten_years_ahead_and_no_further,
    the_longest_grace_period_ends_on_its_last_day,
    the_longest_wait_from_the_latest_start_is_dated,
    the_oldest_child_allowed_is_accepted_and_one_year_more_refused,
    lists_and_the_audit_log_take_extreme_filters,
    a_subscription_at_its_limits_is_kept_as_sent,
    a_base_paying_the_largest_bill_in_full_leaves_a_batch_of_nothing,
    a_ceiling_used_up_on_the_last_day_of_a_year_is_whole_the_next_day,
    the_largest_claims_page_by_size_and_each_is_listed_once,
    a_bulk_household_at_every_limit_is_written_whole,
    a_ceiling_of_zero_is_exhausted_without_an_end,
    a_rate_of_zero_pays_nothing,
    the_fhir_facade_takes_the_same_extremes,
    one_past_each_limit_is_named_at_its_field,
    text_at_its_limit_with_white_space_around_is_trimmed_first,
    the_largest_amounts_read_the_same_however_written,
    filters_far_past_any_stored_value_are_answered,
    the_oldest_child_ages_out_on_the_first_of_january,
    the_largest_ceiling_freed_whole_is_used_whole_again,
    a_ceiling_raised_to_the_largest_by_a_later_version_is_dated,
    the_longest_ids_go_through_a_whole_flow,
    the_largest_claim_is_delivered_whole,
    one_payment_settles_twenty_thousand_claims,
    the_largest_ceiling_runs_out_on_the_last_of_a_thousand_lines,
    an_external_id_at_its_limit_is_counted_in_its_kept_form,
);
