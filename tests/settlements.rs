//! API.md §5 Settlements: batches that balance to the franc and payments in instalments.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::claims::{accept_by_mut_a, claim, provider, setup, submit};

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
        assert_eq!(created.json["version"], 1, "a claim's first version");
        let id = created.json["id"].as_str().unwrap().to_owned();
        let adjudicated = accept_by_mut_a(app, &id).await;
        assert_eq!(adjudicated["status"], "adjudicated");
        assert_eq!(adjudicated["version"], 2, "one more with its adjudication");
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
    for claim_id in &ids {
        let c = app.get(&format!("/v1/claims/{claim_id}"), &mutuelle(app)).await;
        assert_eq!(c.json["settlement"], id.as_str());
        assert_eq!(c.json["version"], 3, "one more with its batching");
        assert_eq!(c.header("etag"), Some("\"3\""), "the version is the ETag's");
    }
    // A client holding the batched claim waits for its settlement with If-None-Match.
    let read_if = |etag: &'static str| {
        app.send(
            app.request(reqwest::Method::GET, &format!("/v1/claims/{}", ids[0]))
                .bearer_auth(mutuelle(app))
                .header("if-none-match", etag),
        )
    };
    let current = read_if("\"3\"").await;
    assert_eq!(current.status.as_u16(), 304, "{}", current.text);
    assert_eq!(current.header("etag"), Some("\"3\""));
    assert_eq!(read_if("\"2\"").await.status.as_u16(), 200);

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
    // The same transfer entered again without its key (a second clerk, say): one transfer
    // counts once, surrounding white space and case aside, and is called a duplicate even when
    // its amount is more than is still due.
    for (key, reference, amount) in [
        (None, "VIR-1", 3000),
        (Some("other-key"), " VIR-1 ", 3000),
        (Some("lower-case"), "vir-1", 3000),
        (Some("full-width"), "ＶＩＲ-１", 3000),
        (Some("too-much"), "VIR-1", 5000),
    ] {
        let mut req = app
            .request(Method::POST, &format!("/v1/settlements/{id}/payments"))
            .bearer_auth(mutuelle(app))
            .json(&json!({"amount_xof": amount, "paid_at": "2026-07-02", "reference": reference}));
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let twice = app.send(req).await;
        twice.problem(409, "conflict");
        assert_eq!(twice.error_fields(), ["/reference"], "{}", twice.text);
        assert_eq!(twice.json["errors"][0]["code"], "duplicate_reference");
    }
    // An invisible character pasted with a reference would make the same transfer look new.
    for reference in ["VIR\u{200B}-1", "\u{202E}VIR-1", "VIR-1\tB", "VIR\n1"] {
        let req = app
            .request(Method::POST, &format!("/v1/settlements/{id}/payments"))
            .bearer_auth(mutuelle(app))
            .json(&json!({"amount_xof": 1, "paid_at": "2026-07-02", "reference": reference}));
        let pasted = app.send(req).await;
        pasted.problem(422, "validation_failed");
        assert_eq!(
            pasted.field_codes(),
            [("/reference".to_owned(), "invalid_characters".to_owned())],
            "{reference:?}"
        );
    }
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
    let paid = pay(1, "VIR-4").await;
    assert_eq!(paid.problem(409, "conflict")["errors"][0]["code"], "already_paid");
    for claim_id in &ids {
        let c = app.get(&format!("/v1/claims/{claim_id}"), &mutuelle(app)).await;
        assert_eq!(c.json["status"], "settled");
        assert_eq!(c.json["settlement"], id.as_str());
        assert_eq!(c.json["version"], 4, "one more with its settlement");
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
    assert_eq!(
        csv.header("content-disposition").unwrap(),
        format!("attachment; filename=\"settlement-{id}.csv\""),
        "the name a browser saves it under"
    );
    let text = csv.text.strip_prefix('\u{FEFF}').expect("a byte order mark first");
    assert!(
        text.ends_with('\n') && !text.contains('\r'),
        "lines end with LF, as in the error reports"
    );
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "claim_id,external_id,beneficiary,service_date,care_level,status,billed_xof,base_xof,complementary_xof,patient_xof");
    let sum: i64 = lines
        .map(|l| l.split(',').nth(8).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum, 6006);
    // Separated by semicolons, for a spreadsheet in a French locale; the same rows.
    let semicolons = app
        .send(
            app.request(Method::GET, &format!("/v1/settlements/{id}?separator=semicolon"))
                .bearer_auth(mutuelle(app))
                .header("accept", "text/csv"),
        )
        .await;
    assert_eq!(semicolons.status.as_u16(), 200, "{}", semicolons.text);
    assert_eq!(semicolons.text.replace(';', ","), csv.text);
    assert!(semicolons.text.contains("claim_id;external_id;"));
    let tab = app
        .send(
            app.request(Method::GET, &format!("/v1/settlements/{id}?separator=tab"))
                .bearer_auth(mutuelle(app))
                .header("accept", "text/csv"),
        )
        .await;
    tab.problem(422, "validation_failed");
    assert_eq!(tab.error_fields(), ["/query/separator"]);
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

    // The trail: each instalment recorded, the batch paid once, with the last one (the retry
    // replayed and recorded nothing; the refused payments wrote nothing).
    let trail = app
        .get(
            &format!("/v1/audit-events?resource_type=settlement&resource_id={id}"),
            &app.operator(),
        )
        .await;
    let actions: Vec<&str> = trail.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "settlement.paid",
            "settlement.payment_recorded",
            "settlement.payment_recorded",
            "settlement.created"
        ],
        "{}",
        trail.text
    );
}

/// A claim of `provider` for `person` on `date`, accepted in full by the mutuelle it is routed to.
async fn adjudicated(app: &TestApp, provider: &str, mutuelle: &str, person: &str, date: &str, external_id: &str) {
    let mut body = claim(
        external_id,
        person,
        date,
        json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]),
    );
    body["provider"] = json!(provider);
    let token = app.token(provider, "claims:submit claims:read");
    let created = submit(app, &token, &uuid::Uuid::now_v7().to_string(), &body).await;
    assert_eq!(created.json["routed_to"], mutuelle, "{}", created.text);
    let id = created.json["id"].as_str().unwrap();
    let decided = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &app.token(mutuelle, "claims:adjudicate"),
            &json!({"lines": [{"line": 1, "decision": "accept"}]}),
        )
        .await;
    assert_eq!(decided.json["status"], "adjudicated", "{}", decided.text);
}

/// A batch of `mutuelle`'s for `payee` over one month; its id.
async fn batch(app: &TestApp, mutuelle: &str, payee: &str, month: &str) -> String {
    let (start, end) = (format!("2026-{month}-01"), format!("2026-{month}-28"));
    let body = json!({"payee": payee, "period_start": start, "period_end": end});
    let created = app
        .post("/v1/settlements", &app.token(mutuelle, "settlements:write"), &body)
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    created.json["id"].as_str().unwrap().to_owned()
}

fn v(ids: &[&String]) -> Vec<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

fn ids(reply: &passerelle_tests::Reply) -> Vec<String> {
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    reply.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET /v1/settlements`: a mutuelle whose 201 was lost finds its batch, a payee the batches that
/// pay it; nobody sees another's. Newest first, in pages.
async fn settlements_are_listed_to_their_parties(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    app.create_org("cms-b", "provider", "TG").await;
    // mut-b's own member, for a batch of mut-b's.
    let product = app
        .post(
            "/v1/products",
            &crate::registry::writer(app, "mut-b"),
            &crate::products::family_plan("2026-01-01"),
        )
        .await;
    assert_eq!(product.status.as_u16(), 201, "{}", product.text);
    let household = crate::registry::household(product.json["id"].as_str().unwrap(), "MB-1", "210987654321");
    let registered = crate::registry::register(app, "mut-b", "mb-1", &household).await;
    assert_eq!(registered.status.as_u16(), 201, "{}", registered.text);
    let member_b = registered.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    adjudicated(app, "cms-a", "mut-a", &s.spouse, "2026-06-01", "A-06").await;
    adjudicated(app, "cms-a", "mut-a", &s.spouse, "2026-07-01", "A-07").await;
    adjudicated(app, "cms-a", "mut-a", &s.spouse, "2026-08-01", "A-08").await;
    adjudicated(app, "cms-b", "mut-a", &s.spouse, "2026-06-02", "B-06").await;
    adjudicated(app, "cms-a", "mut-b", &member_b, "2026-06-03", "C-06").await;
    let a_june = batch(app, "mut-a", "cms-a", "06").await;
    let a_july = batch(app, "mut-a", "cms-a", "07").await;
    let b_june = batch(app, "mut-a", "cms-b", "06").await;
    let a_august = batch(app, "mut-a", "cms-a", "08").await;
    let c_june = batch(app, "mut-b", "cms-a", "06").await;

    let reader = |org: &str| app.token(org, "claims:read");
    let list = |org: &str, query: &str| {
        let token = reader(org);
        let path = format!("/v1/settlements{query}");
        async move { app.get(&path, &token).await }
    };
    // Each party sees its own batches, newest first; operators and auditors see them all.
    assert_eq!(
        ids(&list("mut-a", "").await),
        v(&[&a_august, &b_june, &a_july, &a_june])
    );
    assert_eq!(ids(&list("mut-b", "").await), v(&[&c_june]));
    assert_eq!(
        ids(&list("cms-a", "").await),
        v(&[&c_june, &a_august, &a_july, &a_june])
    );
    assert_eq!(ids(&list("cms-b", "").await), v(&[&b_june]));
    let every = [&c_june, &a_august, &b_june, &a_july, &a_june];
    assert_eq!(ids(&list("audit-x", "").await), v(&every));
    assert_eq!(ids(&list("operator", "").await), v(&every));
    list("tg-inam", "").await.problem(403, "forbidden");
    // An item: the batch without its lists.
    let first = list("cms-b", "").await;
    let item = &first.json["items"][0];
    assert_eq!(
        (
            item["mutuelle"].as_str(),
            item["payee"].as_str(),
            item["status"].as_str()
        ),
        (Some("mut-a"), Some("cms-b"), Some("open"))
    );
    assert_eq!(
        (item["claim_count"].as_i64(), item["total_xof"].as_i64()),
        (Some(1), Some(1000))
    );
    assert_eq!(
        (item["paid_xof"].as_i64(), item["period_start"].as_str()),
        (Some(0), Some("2026-06-01"))
    );
    assert!(item.get("claims").is_none() && item.get("payments").is_none(), "{item}");
    assert_eq!(first.json["next_cursor"], Value::Null);

    // Filters: within what the caller sees.
    assert_eq!(ids(&list("mut-a", "?payee=cms-b").await), v(&[&b_june]));
    assert_eq!(ids(&list("cms-b", "?payee=cms-a").await), Vec::<String>::new());
    assert_eq!(
        ids(&list("audit-x", "?payee=cms-a").await),
        v(&[&c_june, &a_august, &a_july, &a_june])
    );
    let pay = app
        .send(
            app.request(Method::POST, &format!("/v1/settlements/{a_july}/payments"))
                .bearer_auth(app.token("mut-a", "settlements:write"))
                .header("idempotency-key", "P-1")
                .json(&json!({"amount_xof": 400, "paid_at": "2026-08-01", "reference": "P-1"})),
        )
        .await;
    assert_eq!(pay.json["status"], "partially_paid", "{}", pay.text);
    assert_eq!(ids(&list("mut-a", "?status=partially_paid").await), v(&[&a_july]));
    assert_eq!(
        ids(&list("mut-a", "?status=open&payee=cms-a").await),
        v(&[&a_august, &a_june])
    );
    assert_eq!(
        ids(&list("mut-b", "?status=partially_paid").await),
        Vec::<String>::new()
    );

    // Pages: the same batches, each once, in the same order.
    let mut walked = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let page = list("cms-a", &format!("?limit=1&cursor={cursor}")).await;
        walked.extend(ids(&page));
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(walked, v(&[&c_june, &a_august, &a_july, &a_june]));
    let two = list("mut-a", "?limit=2").await;
    assert_eq!(ids(&two), v(&[&a_august, &b_june]));
    let next = two.json["next_cursor"].as_str().unwrap();
    assert_eq!(
        ids(&list("mut-a", &format!("?limit=2&cursor={next}")).await),
        v(&[&a_july, &a_june])
    );

    // Bad filters: every one named, under /query.
    for (query, fields) in [
        ("?status=settled", vec!["/query/status"]),
        ("?payee=nobody", vec!["/query/payee"]),
        ("?payee=mut-b", vec!["/query/payee"]),
        ("?payee=Not%20An%20Id", vec!["/query/payee"]),
        ("?payee=", vec!["/query/payee"]),
        ("?cursor=garbage", vec!["/query/cursor"]),
        (
            "?limit=0&status=x&payee=y",
            vec!["/query/limit", "/query/status", "/query/payee"],
        ),
    ] {
        let reply = list("mut-a", query).await;
        reply.problem(422, "validation_failed");
        assert_eq!(reply.error_fields(), fields, "{query}");
    }
    // An auditor's list is audited, as its read of one batch is (a party's is not).
    let audited = app
        .get("/v1/audit-events?action=settlement.read", &app.operator())
        .await;
    let items = audited.json["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|e| e["organization"] == "audit-x" && e["resource_id"] == "*"),
        "{}",
        audited.text
    );
    assert!(
        items
            .iter()
            .all(|e| e["organization"] == "audit-x" || e["organization"] == "operator"),
        "{}",
        audited.text
    );
}

/// `GET /v1/settlements/{id}` reads the batch, its claims and its payments as one state: while
/// payments are recorded, `paid_xof` and `status` are always those of the payments it lists.
async fn a_read_never_mixes_two_states_of_a_batch(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    adjudicated_claims(app, &s.spouse).await;
    let body = json!({"payee": "cms-a", "period_start": "2026-06-01", "period_end": "2026-06-30"});
    let created = app.post("/v1/settlements", &mutuelle(app), &body).await;
    let id = created.json["id"].as_str().unwrap().to_owned();
    let total = created.json["total_xof"].as_i64().unwrap();
    let token = mutuelle(app);
    let path = format!("/v1/settlements/{id}");
    let reads = std::sync::atomic::AtomicUsize::new(0);
    for round in 0..3 {
        let done = std::sync::atomic::AtomicBool::new(false);
        let payments = async {
            let replies = futures::future::join_all((0..15).map(|i| {
                let reference = format!("R{round}-{i}");
                app.send(
                    app.request(Method::POST, &format!("{path}/payments"))
                        .bearer_auth(&token)
                        .json(&json!({"amount_xof": 1, "paid_at": "2026-07-01", "reference": reference})),
                )
            }))
            .await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            for r in replies {
                assert_eq!(r.status.as_u16(), 201, "{}", r.text);
            }
        };
        let reader = || async {
            // Bounded: the payments end long before.
            for _ in 0..2000 {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let read = app.get(&path, &token).await;
                assert_eq!(read.status.as_u16(), 200, "{}", read.text);
                let paid = read.json["paid_xof"].as_i64().unwrap();
                let listed: i64 = read.json["payments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["amount_xof"].as_i64().unwrap())
                    .sum();
                assert_eq!(paid, listed, "{}", read.text);
                let status = if paid == 0 {
                    "open"
                } else if paid < total {
                    "partially_paid"
                } else {
                    "paid"
                };
                assert_eq!(read.json["status"], status, "{}", read.text);
                reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        };
        futures::join!(payments, reader(), reader(), reader(), reader());
    }
    assert!(reads.load(std::sync::atomic::Ordering::SeqCst) > 0);
    let end = app.get(&path, &token).await;
    assert_eq!(end.json["paid_xof"], 45, "{}", end.text);
    assert_eq!(end.json["payments"].as_array().unwrap().len(), 45);
}

/// The bordereau opens in a spreadsheet as text: the provider's `external_id` never runs as a
/// formula, and a byte order mark keeps the accents. `Accept` is weighed by its q-values.
async fn the_bordereau_is_safe_in_a_spreadsheet(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    // (A leading tab or carriage return is trimmed from an `external_id`; the import's unit
    // covers those.)
    // The last would start a formula in a spreadsheet that splits at semicolons (a French
    // locale's), unless quoted.
    let dangerous = [
        "=HYPERLINK(\"http://127.0.0.1/\",\"x\")",
        "+33",
        "-2+3",
        "@SUM(A1)",
        "X;=1+1;",
    ];
    for (i, external_id) in dangerous.iter().enumerate() {
        adjudicated(
            app,
            "cms-a",
            "mut-a",
            &s.spouse,
            &format!("2026-06-{:02}", i + 1),
            external_id,
        )
        .await;
    }
    let body = json!({"payee": "cms-a", "period_start": "2026-06-01", "period_end": "2026-06-30"});
    let created = app.post("/v1/settlements", &mutuelle(app), &body).await;
    assert_eq!(created.json["claim_count"], 5, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    let get = |accept: Option<&'static str>| {
        let mut request = app
            .request(Method::GET, &format!("/v1/settlements/{id}"))
            .bearer_auth(mutuelle(app));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        app.send(request)
    };
    let csv = get(Some("text/csv")).await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = csv.text.strip_prefix('\u{FEFF}').expect("a byte order mark first");
    for expected in [
        "\"'=HYPERLINK(\"\"http://127.0.0.1/\"\",\"\"x\"\")\"",
        ",'+33,",
        ",'-2+3,",
        ",'@SUM(A1),",
        ",\"X;=1+1;\",",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    // No cell starts a formula, quoted or not, whether the line is split at commas or, outside
    // quotes, at semicolons.
    for line in text.lines() {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(!cell.starts_with(['=', '+', '-', '@', '\t']), "{cell:?} in {line:?}");
        }
        let mut quoted = false;
        let mut cells = vec![String::new()];
        for ch in line.chars() {
            match ch {
                '"' => quoted = !quoted,
                ';' if !quoted => cells.push(String::new()),
                _ => cells.last_mut().unwrap().push(ch),
            }
        }
        for cell in &cells {
            assert!(
                !cell.starts_with(['=', '+', '@']),
                "{cell:?} split at semicolons in {line:?}"
            );
        }
    }
    // The amounts stay numbers.
    assert!(text.lines().nth(1).unwrap().ends_with(",1000,0,1000,0"), "{text}");

    for (accept, csv) in [
        (None, false),
        (Some("application/json, text/csv;q=0"), false),
        (Some("text/csv;q=0"), false),
        (Some("text/csv;q=0.5, application/json"), false),
        (Some("text/csv, application/json;q=0.9"), true),
        (Some("text/csv, */*"), true),
        (Some("*/*"), false),
    ] {
        let reply = get(accept).await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        let content_type = reply.header("content-type").unwrap();
        assert_eq!(content_type.starts_with("text/csv"), csv, "{accept:?}: {content_type}");
        // The form follows `Accept`, and the body names beneficiaries: no cache may keep it or
        // hand it to another `Accept`.
        let varies: Vec<&str> = reply
            .headers
            .get_all("vary")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        assert!(
            varies.iter().any(|v| v.eq_ignore_ascii_case("accept")),
            "{accept:?}: {varies:?}"
        );
        assert_eq!(reply.header("cache-control"), Some("private, no-store"), "{accept:?}");
        if !csv {
            assert_eq!(reply.json["id"], id.as_str(), "{accept:?}");
        }
    }
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
    // Paid in full at once: the trail says so, as after the last payment of a batch.
    let batch_id = batch.json["id"].as_str().unwrap();
    let trail = app
        .get(
            &format!("/v1/audit-events?resource_type=settlement&resource_id={batch_id}"),
            &app.operator(),
        )
        .await;
    let mut actions: Vec<&str> = trail.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(actions, ["settlement.created", "settlement.paid"], "{}", trail.text);
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
    settlements_are_listed_to_their_parties,
    a_read_never_mixes_two_states_of_a_batch,
    the_bordereau_is_safe_in_a_spreadsheet,
    claims_owing_nothing_are_settled,
    a_batch_is_paid_in_instalments_and_settles_its_claims,
    concurrent_batches_never_share_a_claim,
    bad_settlements_are_refused,
);
