//! API.md §5 Settlements: batches that balance to the franc and payments in instalments.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::claims::{claim, provider, setup, submit};

/// Three adjudicated claims for the spouse (mutuelle alone, 100 %), returns their ids.
async fn adjudicated_claims(app: &TestApp, person: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, price) in [1001, 2002, 3003].into_iter().enumerate() {
        let body = claim(
            &format!("S-{i}"),
            person,
            "2026-06-01",
            json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": price}]),
        );
        let created = submit(app, &provider(app), &format!("s-{i}"), &body).await;
        assert_eq!(created.json["status"], "awaiting_complementary", "{}", created.text);
        let id = created.json["id"].as_str().unwrap().to_owned();
        let decided = app
            .post(
                &format!("/v1/claims/{id}/adjudication"),
                &app.token("mut-a", "claims:adjudicate"),
                &json!({"lines": [{"line": 1, "decision": "accept"}]}),
            )
            .await;
        assert_eq!(decided.json["status"], "adjudicated", "{}", decided.text);
        ids.push(id);
    }
    ids
}

fn mutuelle(app: &TestApp) -> String {
    app.token("mut-a", "settlements:write claims:read claims:adjudicate")
}

async fn a_batch_is_paid_in_instalments_and_settles_its_claims(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let ids = adjudicated_claims(app, &s.spouse).await;
    let body = json!({"payee": "cms-a", "period_start": "2026-06-01", "period_end": "2026-06-30"});
    let created = app.post("/v1/settlements", &mutuelle(app), &body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.json["total_xof"], 6006);
    assert_eq!(created.json["claim_count"], 3);
    assert_eq!(created.json["status"], "open");
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/settlements/{id}").as_str())
    );
    let mut listed: Vec<String> = created.json["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);

    // Nothing left to batch: a second batch is empty.
    app.post("/v1/settlements", &mutuelle(app), &body)
        .await
        .problem(422, "validation_failed");

    // Each payment carries its reference as its Idempotency-Key, as a retrying client would.
    let pay = |amount: i64, reference: &str| {
        let req = app
            .request(Method::POST, &format!("/v1/settlements/{id}/payments"))
            .bearer_auth(mutuelle(app))
            .header("idempotency-key", reference)
            .json(&json!({"amount_xof": amount, "paid_at": "2026-07-01", "reference": reference}));
        app.send(req)
    };
    let first = pay(3000, "VIR-1").await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(first.json["status"], "partially_paid");
    // A retry of the same payment (the answer was lost, say) is answered as the first was and
    // pays nothing more; the same key for another payment is refused.
    let retried = pay(3000, "VIR-1").await;
    assert_eq!(retried.status.as_u16(), 201, "{}", retried.text);
    assert_eq!(retried.json, first.json);
    assert_eq!(retried.json["paid_xof"], 3000);
    let reused = app
        .send(
            app.request(Method::POST, &format!("/v1/settlements/{id}/payments"))
                .bearer_auth(mutuelle(app))
                .header("idempotency-key", "VIR-1")
                .json(&json!({"amount_xof": 5, "paid_at": "2026-07-01", "reference": "VIR-1"})),
        )
        .await;
    reused.problem(422, "idempotency_key_reused");
    assert_eq!(
        app.get(&format!("/v1/settlements/{id}"), &mutuelle(app)).await.json["paid_xof"],
        3000
    );
    let over = pay(3007, "VIR-2").await;
    over.problem(422, "validation_failed");
    assert!(
        over.json["errors"][0]["message"].as_str().unwrap().contains("3006"),
        "{}",
        over.text
    );
    let rest = pay(3006, "VIR-3").await;
    assert_eq!(rest.json["status"], "paid");
    assert_eq!(rest.json["paid_xof"], 6006);
    pay(1, "VIR-4").await.problem(409, "conflict");
    for claim_id in &ids {
        let c = app.get(&format!("/v1/claims/{claim_id}"), &mutuelle(app)).await;
        assert_eq!(c.json["status"], "settled");
        assert_eq!(c.json["settlement"], id.as_str());
    }

    // CSV: one row per claim, and its complementary column adds up to the total.
    let csv = app
        .send(
            app.request(Method::GET, &format!("/v1/settlements/{id}"))
                .bearer_auth(mutuelle(app))
                .header("accept", "text/csv"),
        )
        .await;
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let mut lines = csv.text.lines();
    assert_eq!(lines.next().unwrap(), "claim_id,external_id,beneficiary,service_date,care_level,status,billed_xof,base_xof,complementary_xof,patient_xof");
    let sum: i64 = lines
        .map(|l| l.split(',').nth(8).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum, 6006);
    // The payee reads it; another mutuelle does not.
    assert_eq!(
        app.get(&format!("/v1/settlements/{id}"), &app.token("cms-a", "claims:read"))
            .await
            .status
            .as_u16(),
        200
    );
    app.get(
        &format!("/v1/settlements/{id}"),
        &app.token("mut-b", "claims:read settlements:write"),
    )
    .await
    .problem(404, "not_found");
}

async fn concurrent_batches_never_share_a_claim(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    adjudicated_claims(app, &s.spouse).await;
    let token = mutuelle(app);
    let body = json!({"payee": "cms-a", "period_start": "2026-01-01", "period_end": "2026-12-31"});
    let replies = futures::future::join_all((0..6).map(|_| app.post("/v1/settlements", &token, &body))).await;
    let created: Vec<&Value> = replies
        .iter()
        .filter(|r| r.status.as_u16() == 201)
        .map(|r| &r.json)
        .collect();
    assert_eq!(created.len(), 1, "one batch takes the claims; the others are empty");
    assert!(replies
        .iter()
        .all(|r| r.status.as_u16() == 201 || r.status.as_u16() == 422));
    assert_eq!(
        app.db
            .scalar("SELECT count(DISTINCT settlement) FROM claims WHERE settlement IS NOT NULL")
            .await,
        1
    );
}

async fn bad_settlements_are_refused(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = mutuelle(app);
    let r = app
        .post(
            "/v1/settlements",
            &token,
            &json!({"payee": "mut-b", "period_start": "2026-06-30", "period_end": "2026-06-01"}),
        )
        .await;
    r.problem(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["/payee", "/period_end"]);
    let far = app
        .post(
            "/v1/settlements",
            &token,
            &json!({"payee": "cms-a", "period_start": "0000-01-01", "period_end": "9999-12-31"}),
        )
        .await;
    far.problem(422, "validation_failed");
    let mut fields = far.error_fields();
    fields.sort();
    assert_eq!(fields, ["/period_end", "/period_start"]);
    app.post(
        "/v1/settlements",
        &app.token("cms-a", "settlements:write"),
        &json!({"payee": "cms-a", "period_start": "2026-01-01", "period_end": "2026-01-02"}),
    )
    .await
    .problem(403, "forbidden");
    assert_eq!(app.count("settlements").await, 0);
}

/// A claim adjudicated with nothing owed (every line reduced to 0) is settled by a batch too: a
/// batch of only such claims totals 0 and is paid at once, so none stays unsettled for good.
async fn claims_owing_nothing_are_settled(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let body = claim(
        "Z-1",
        &s.spouse,
        "2026-07-01",
        json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 4000}]),
    );
    let created = submit(app, &provider(app), "z-1", &body).await;
    assert_eq!(created.json["status"], "awaiting_complementary", "{}", created.text);
    let claim_id = created.json["id"].as_str().unwrap().to_owned();
    let reduced = app
        .post(
            &format!("/v1/claims/{claim_id}/adjudication"),
            &mutuelle(app),
            &json!({"lines": [{"line": 1, "decision": "reduce", "approved_xof": 0, "reason_code": "TARIFF_EXCEEDED"}]}),
        )
        .await;
    assert_eq!(reduced.json["status"], "adjudicated", "{}", reduced.text);
    assert_eq!(reduced.json["totals"]["complementary_xof"], 0);
    let period = json!({"payee": "cms-a", "period_start": "2026-07-01", "period_end": "2026-07-31"});
    let batch = app.post("/v1/settlements", &mutuelle(app), &period).await;
    assert_eq!(batch.status.as_u16(), 201, "{}", batch.text);
    assert_eq!(batch.json["status"], "paid");
    assert_eq!(
        (batch.json["total_xof"].as_i64(), batch.json["paid_xof"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(batch.json["claims"], json!([claim_id]));
    let settled = app.get(&format!("/v1/claims/{claim_id}"), &mutuelle(app)).await;
    assert_eq!(settled.json["status"], "settled", "{}", settled.text);
    assert_eq!(settled.json["settlement"], batch.json["id"]);
    // Nothing is left to batch, and nothing can be paid on it.
    app.post("/v1/settlements", &mutuelle(app), &period)
        .await
        .problem(422, "validation_failed");
    let id = batch.json["id"].as_str().unwrap();
    app.send(
        app.request(Method::POST, &format!("/v1/settlements/{id}/payments"))
            .bearer_auth(mutuelle(app))
            .header("idempotency-key", "Z-PAY")
            .json(&json!({"amount_xof": 1, "paid_at": "2026-08-01", "reference": "Z-PAY"})),
    )
    .await
    .problem(409, "conflict");
}

on_both_databases!(
    claims_owing_nothing_are_settled,
    a_batch_is_paid_in_instalments_and_settles_its_claims,
    concurrent_batches_never_share_a_claim,
    bad_settlements_are_refused,
);
