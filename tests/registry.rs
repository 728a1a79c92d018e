//! API.md §5 Registrations, Beneficiaries, Coverages and contributions, and who sees what.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::products::family_plan;

pub struct Registry {
    pub app: TestApp,
    pub product: String,
}

pub fn writer(app: &TestApp, org: &str) -> String {
    app.token(org, "registry:read registry:write")
}

/// Two mutuelles, a scheme, a provider and an auditor; mut-a has a family plan.
pub async fn registry(backend: Backend) -> Registry {
    registry_with(backend, |_| {}).await
}

/// [`registry`] on a service configured by `adjust`.
pub async fn registry_with(backend: Backend, adjust: impl FnOnce(&mut passerelle_api::config::Config)) -> Registry {
    let app = TestApp::spawn_with(backend, adjust).await;
    for (id, kind) in [
        ("mut-a", "mutuelle"),
        ("mut-b", "mutuelle"),
        ("tg-inam", "scheme"),
        ("cms-a", "provider"),
        ("audit-x", "auditor"),
    ] {
        app.create_org(id, kind, "TG").await;
    }
    let product = app
        .post("/v1/products", &writer(&app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    assert_eq!(product.status.as_u16(), 201, "{}", product.text);
    let product = product.json["id"].as_str().unwrap().to_owned();
    Registry { app, product }
}

pub fn household(product: &str, member_number: &str, niu: &str) -> Value {
    json!({
        "product": product, "member_number": member_number, "start_date": "2026-01-01", "paid_through": "2026-12-31",
        "principal": {"national_id": {"country": "tg", "type": "niu", "value": niu}, "family_name": "Agbéko",
                      "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12", "phone": "+22890123456",
                      "locality": {"region": "Maritime", "district": "Zio", "commune": "Zio 1"}},
        "dependants": [
            {"relationship": "spouse", "family_name": "Agbéko", "given_names": "Akossiwa Élise", "sex": "F",
             "birth_date": "1988-01-01", "birth_date_precision": "year"},
            {"relationship": "child", "family_name": "Agbéko", "given_names": "Yao", "sex": "M", "birth_date": "2015-07-30"}
        ]
    })
}

pub async fn register(app: &TestApp, org: &str, key: &str, body: &Value) -> Reply {
    app.send(
        app.request(Method::POST, "/v1/registrations")
            .bearer_auth(writer(app, org))
            .header("idempotency-key", key)
            .json(body),
    )
    .await
}

async fn a_household_registers_all_or_nothing(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "1234-5678 9012")).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_eq!(reply.header("location"), None);
    let members = reply.json["members"].as_array().unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| m["relationship"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["principal", "spouse", "child"]
    );
    let principal = &members[0];
    assert_eq!(
        principal["beneficiary"]["national_id"],
        json!({"country": "TG", "type": "NIU", "value": "123456789012"})
    );
    assert_eq!(members[1]["beneficiary"]["given_names"], "Akossiwa Élise");
    assert_eq!(members[1]["beneficiary"]["birth_date_precision"], "year");
    assert_eq!(principal["matched"], false);
    assert_eq!(
        members[2]["coverage"]["principal_coverage"],
        principal["coverage"]["id"]
    );
    assert_eq!(members[2]["coverage"]["member_number"], "TSV-0001");
    assert_eq!(principal["coverage"]["paid_through"], "2026-12-31");
    assert_eq!(principal["coverage"]["status"], "active");

    // The same key and body replay; a different body under the same key is refused.
    let again = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "1234-5678 9012")).await;
    assert_eq!(again.status.as_u16(), 201);
    assert_eq!(again.json, reply.json);
    register(app, "mut-a", "k1", &household(&r.product, "TSV-0002", "123456789013"))
        .await
        .problem(422, "idempotency_key_reused");
    assert_eq!(app.count("beneficiaries").await, 3);

    // A taken member number is 409, and nothing of that household is written.
    let before = (
        app.count("beneficiaries").await,
        app.count("coverages").await,
        app.audited().await,
    );
    let taken = register(app, "mut-a", "k2", &household(&r.product, "TSV-0001", "999999999999")).await;
    taken.problem(409, "conflict");
    assert_eq!(
        taken.json["errors"],
        json!([{"field": "/member_number", "code": "member_number_taken",
                "message": taken.json["errors"][0]["message"]}]),
        "{}",
        taken.text
    );
    // A dependant already holding the product: the 409 points at that dependant.
    let mut covered = household(&r.product, "TSV-0003", "999999999998");
    covered["dependants"] = json!([
        {"relationship": "spouse", "family_name": "Agbéko", "given_names": "Afi", "sex": "F", "birth_date": "1990"},
        {"relationship": "other", "national_id": {"country": "tg", "type": "niu", "value": "123456789012"},
         "family_name": "Agbéko", "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12"}
    ]);
    let twice = register(app, "mut-a", "k3", &covered).await;
    twice.problem(409, "conflict");
    assert_eq!(twice.json["errors"][0]["field"], "/dependants/1", "{}", twice.text);
    assert_eq!(twice.json["errors"][0]["code"], "already_covered", "{}", twice.text);
    let after = (
        app.count("beneficiaries").await,
        app.count("coverages").await,
        app.audited().await,
    );
    assert_eq!(before, after);
    // Without the key: 428.
    let no_key = app
        .post(
            "/v1/registrations",
            &writer(app, "mut-a"),
            &household(&r.product, "TSV-0009", "123456789019"),
        )
        .await;
    no_key.problem(428, "precondition_required");
}

async fn people_are_matched_across_organisations(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    let product_b = plan_b.json["id"].as_str().unwrap();
    let mut body = household(product_b, "B-77", "123456789012");
    body["dependants"] = json!([]);
    let reply = register(app, "mut-b", "k1", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_eq!(
        reply.json["members"][0]["matched"], true,
        "same national id = same person"
    );
    let person = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Both mutuelles see the person; each sees only its own coverage.
    let a = app
        .get(&format!("/v1/coverages?beneficiary={person}"), &writer(app, "mut-a"))
        .await;
    let b = app
        .get(&format!("/v1/coverages?beneficiary={person}"), &writer(app, "mut-b"))
        .await;
    assert_eq!(a.json["items"].as_array().unwrap().len(), 1);
    assert_eq!(b.json["items"].as_array().unwrap().len(), 1);
    assert_ne!(a.json["items"][0]["organization"], b.json["items"][0]["organization"]);
    let all = app
        .get(
            &format!("/v1/coverages?beneficiary={person}"),
            &app.token("audit-x", "registry:read"),
        )
        .await;
    assert_eq!(all.json["items"].as_array().unwrap().len(), 2);

    // Without a national id, a look-alike is reported, never merged.
    let mut twin = household(&r.product, "TSV-0002", "000000000000");
    twin["principal"] =
        json!({"family_name": "AGBEKO", "given_names": "kossi", "sex": "M", "birth_date": "1984-03-12"});
    twin["dependants"] = json!([]);
    let first = register(app, "mut-a", "k2", &twin).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    twin["member_number"] = json!("TSV-0003");
    twin["principal"]["family_name"] = json!("Agbéko");
    let second = register(app, "mut-a", "k3", &twin).await;
    let dups = second.json["members"][0]["possible_duplicates"].as_array().unwrap();
    // The first look-alike, and the original Kossi Agbéko (known by national id) too.
    assert!(
        dups.contains(&first.json["members"][0]["beneficiary"]["id"]),
        "{dups:?}"
    );
    assert!(dups.contains(&json!(person)), "{dups:?}");
    assert_eq!(dups.len(), 2);
    let unrelated = first.json["members"][0]["possible_duplicates"].as_array().unwrap();
    assert_eq!(unrelated, &vec![json!(person)]);
    assert_ne!(
        second.json["members"][0]["beneficiary"]["id"],
        first.json["members"][0]["beneficiary"]["id"]
    );
    // Another mutuelle is told only of the look-alikes it covers itself: mut-a's two are not
    // its to know of.
    let mut elsewhere = twin.clone();
    elsewhere["product"] = json!(product_b);
    elsewhere["member_number"] = json!("B-78");
    let third = register(app, "mut-b", "k4", &elsewhere).await;
    assert_eq!(third.status.as_u16(), 201, "{}", third.text);
    assert_eq!(
        third.json["members"][0]["possible_duplicates"],
        json!([person]),
        "{}",
        third.text
    );
}

async fn visibility_follows_coverage(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    let person = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let outsiders = [
        writer(app, "mut-b"),
        app.token("tg-inam", "registry:read registry:write"),
        app.token("cms-a", "registry:read"),
    ];
    for token in &outsiders {
        app.get(&format!("/v1/beneficiaries/{person}"), token)
            .await
            .problem(404, "not_found");
        app.get(&format!("/v1/coverages/{coverage}"), token)
            .await
            .problem(404, "not_found");
        app.get(&format!("/v1/coverages/{coverage}/contributions"), token)
            .await
            .problem(404, "not_found");
        let listed = app.get(&format!("/v1/coverages?beneficiary={person}"), token).await;
        assert_eq!(listed.json["items"], json!([]));
        let found = app
            .get("/v1/beneficiaries?national_id=TG:NIU:123456789012", token)
            .await;
        assert_eq!(found.json["items"], json!([]));
    }
    let patch = app
        .send(
            app.request(Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(writer(app, "mut-b"))
                .header("if-match", "\"1\"")
                .json(&json!({"status": "suspended"})),
        )
        .await;
    patch.problem(404, "not_found");
    let pay = app.post(&format!("/v1/coverages/{coverage}/contributions"), &writer(app, "mut-b"), &json!({"amount_xof": 1, "period_start": "2026-01-01", "period_end": "2026-01-31", "paid_at": "2026-01-02", "reference": "x"})).await;
    pay.problem(404, "not_found");
    // Insiders: the mutuelle and the auditor (whose reads are audited).
    for token in [writer(app, "mut-a"), app.token("audit-x", "registry:read")] {
        assert_eq!(
            app.get(&format!("/v1/beneficiaries/{person}"), &token)
                .await
                .status
                .as_u16(),
            200
        );
        let found = app
            .get("/v1/beneficiaries?national_id=tg:niu:1234-5678-9012", &token)
            .await;
        assert_eq!(found.json["items"][0]["id"], person.as_str());
    }
    app.get("/v1/beneficiaries?national_id=TG:NIU:12", &writer(app, "mut-a"))
        .await
        .problem(422, "validation_failed");
    // Providers may not register at all.
    register(app, "cms-a", "k9", &household(&r.product, "X", "123456789099"))
        .await
        .problem(403, "forbidden");
}

async fn coverages_change_with_if_match_and_contributions(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let mut body = household(&r.product, "TSV-0001", "123456789012");
    body.as_object_mut().unwrap().remove("paid_through");
    let reply = register(app, "mut-a", "k1", &body).await;
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/coverages/{coverage}");
    let read = app.get(&path, &token).await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert!(read.json.get("paid_through").is_none());

    let patch = |tag: Option<&str>, body: Value| {
        let mut b = app
            .request(Method::PATCH, &path)
            .bearer_auth(&token)
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string());
        if let Some(tag) = tag {
            b = b.header("if-match", tag);
        }
        app.send(b)
    };
    patch(None, json!({"status": "suspended"}))
        .await
        .problem(428, "precondition_required");
    // A JSON Patch is a list of operations, not a merge patch: refused by its type, even when
    // its body would read as one, and the coverage stays as it was.
    for (content_type, body) in [
        (
            "application/json-patch+json",
            json!({"status": "suspended"}).to_string(),
        ),
        (
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/status", "value": "suspended"}]).to_string(),
        ),
        ("text/plain", json!({"status": "suspended"}).to_string()),
    ] {
        let req = app
            .request(Method::PATCH, &path)
            .bearer_auth(&token)
            .header("content-type", content_type)
            .header("if-match", "\"1\"")
            .body(body);
        let refused = app.send(req).await;
        refused.problem(415, "unsupported_media_type");
        assert_eq!(
            refused.header("accept-patch"),
            Some("application/merge-patch+json"),
            "{content_type}"
        );
    }
    let unchanged = app.get(&path, &token).await;
    assert_eq!(unchanged.json["status"], "active");
    assert_eq!(unchanged.header("etag"), Some("\"1\""));
    // `application/json`, in any case and with parameters, is taken as a merge patch: it goes
    // on to the If-Match check.
    let plain = app
        .request(Method::PATCH, &path)
        .bearer_auth(&token)
        .header("content-type", "Application/JSON; charset=utf-8")
        .header("if-match", "\"9\"")
        .body(json!({"status": "suspended"}).to_string());
    app.send(plain).await.problem(412, "precondition_failed");
    // A patch that changes nothing writes nothing: same version, no audit event.
    let audit = app.token("mut-a", "audit:read");
    let about_it = format!("/v1/audit-events?resource_type=coverage&resource_id={coverage}");
    let events_before = app.get(&about_it, &audit).await.json["items"].as_array().unwrap().len();
    let same = patch(Some("\"1\""), json!({"status": "active"})).await;
    assert_eq!(same.status.as_u16(), 200, "{}", same.text);
    assert_eq!(same.header("etag"), Some("\"1\""));
    let events_after = app.get(&about_it, &audit).await.json["items"].as_array().unwrap().len();
    assert_eq!(events_after, events_before);
    patch(Some("\"9\""), json!({"status": "suspended"}))
        .await
        .problem(412, "precondition_failed");
    // A status cannot be removed: `null` is refused, as the schema says (not nullable).
    let no_status = patch(Some("\"1\""), json!({"status": null})).await;
    no_status.problem(422, "validation_failed");
    assert_eq!(
        no_status.json["errors"][0]["code"], "invalid_type",
        "{}",
        no_status.text
    );
    let bad = patch(
        Some("\"1\""),
        json!({"status": "paused", "end_date": "2025-01-01", "member_number": "x"}),
    )
    .await;
    bad.problem(422, "validation_failed");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["/end_date", "/member_number", "/status"]);
    let suspended = patch(Some("\"1\""), json!({"status": "suspended"})).await;
    assert_eq!(suspended.status.as_u16(), 200, "{}", suspended.text);
    assert_eq!(suspended.json["status"], "suspended");
    assert_eq!(suspended.header("etag"), Some("\"2\""));

    let contributions = format!("{path}/contributions");
    let pay = |body: Value| {
        let req = app
            .request(Method::POST, &contributions)
            .bearer_auth(&token)
            .json(&body);
        app.send(req)
    };
    let first = pay(json!({"amount_xof": 6000, "period_start": "2026-01-01", "period_end": "2026-06-30", "paid_at": "2026-01-05", "reference": "RECU-1"})).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(first.header("location"), None);
    pay(json!({"amount_xof": 3000, "period_start": "2026-07-01", "period_end": "2026-12-31", "paid_at": "2026-07-02", "reference": "RECU-2"})).await;
    // An older period paid late never moves paid_through back.
    let late = pay(json!({"amount_xof": 500, "period_start": "2026-03-01", "period_end": "2026-03-31", "paid_at": "2026-08-01", "reference": "RECU-0"})).await;
    assert_eq!(late.status.as_u16(), 201, "{}", late.text);
    let bad = pay(json!({"amount_xof": 0, "period_start": "2026-02-01", "period_end": "2026-01-01", "paid_at": "2999-01-01", "reference": ""})).await;
    bad.problem(422, "validation_failed");
    assert_eq!(bad.error_fields().len(), 4, "{}", bad.text);
    // A period wholly before the coverage started (it starts 2026-01-01) is a mistyped year.
    let mistyped = pay(json!({"amount_xof": 500, "period_start": "2025-01-01", "period_end": "2025-12-31", "paid_at": "2026-08-01", "reference": "RECU-00"})).await;
    assert_eq!(
        mistyped.field_codes(),
        [("/period_end".to_owned(), "before_coverage_start".to_owned())]
    );
    let now = app.get(&path, &token).await;
    assert_eq!(now.json["paid_through"], "2026-12-31");
    let listed = app.get(&format!("{path}/contributions?limit=2"), &token).await;
    let refs: Vec<_> = listed.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reference"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refs, ["RECU-0", "RECU-2"], "newest paid first");
    let cursor = listed.json["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("{path}/contributions?limit=2&cursor={cursor}"), &token)
        .await;
    assert_eq!(rest.json["items"][0]["reference"], "RECU-1");
    assert_eq!(rest.json["next_cursor"], Value::Null);
    // Cursors that decode but name no position here ("x|y", "abc", a date PostgreSQL cannot
    // hold: "-5000-01-01|x"): 422, never a 500.
    for forged in ["c1787c79", "c1616263", "c12d353030302d30312d30317c78"] {
        let refused = app.get(&format!("{path}/contributions?cursor={forged}"), &token).await;
        refused.problem(422, "validation_failed");
        assert_eq!(refused.json["errors"][0]["code"], "invalid_cursor", "{}", refused.text);
    }

    let etag = now.header("etag").unwrap().to_owned();
    // A termination takes effect today at the latest: a later end date sent with it is refused
    // rather than dropped, so that no one believes the coverage pays until then.
    let today = chrono::Utc::now().date_naive();
    let later = (today + chrono::Days::new(30)).to_string();
    let refused = patch(Some(&etag), json!({"status": "terminated", "end_date": later})).await;
    assert_eq!(
        refused.field_codes(),
        [("/end_date".to_owned(), "after_termination".to_owned())],
        "{}",
        refused.text
    );
    let ended = patch(Some(&etag), json!({"status": "terminated"})).await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
    assert_eq!(ended.json["end_date"], today.to_string(), "{}", ended.text);
    let etag = ended.header("etag").unwrap().to_owned();
    // Sent again, the same termination changes nothing, a later end date with it included.
    let again = patch(Some(&etag), json!({"status": "terminated", "end_date": later})).await;
    assert_eq!(again.status.as_u16(), 200, "{}", again.text);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    // Its end date alone cannot change any more.
    let frozen = patch(Some(&etag), json!({"end_date": "2026-06-30"})).await;
    assert_eq!(
        frozen.problem(409, "conflict")["errors"][0]["code"],
        "coverage_terminated"
    );
    patch(Some(&etag), json!({"status": "active"}))
        .await
        .problem(409, "conflict");
    // Nothing more is paid into a terminated coverage, and it stays as it was.
    let late = json!({"amount_xof": 500, "period_start": "2027-01-01", "period_end": "2027-12-31",
        "paid_at": "2026-12-01", "reference": "RECU-LATE"});
    let refused = app.post(&contributions, &token, &late).await;
    refused.problem(409, "conflict");
    assert_eq!(
        refused.json["errors"][0]["code"], "coverage_terminated",
        "{}",
        refused.text
    );
    let after = app.get(&path, &token).await;
    assert_eq!(after.header("etag"), Some(etag.as_str()));
    assert_eq!(after.json["paid_through"], now.json["paid_through"]);
    // Nor is one cancelled; a contribution it does not hold is still unknown.
    let cancel = |id: &str| {
        app.send(
            app.request(Method::POST, &format!("{contributions}/{id}/cancel"))
                .bearer_auth(&token),
        )
    };
    let kept = cancel(first.json["id"].as_str().unwrap()).await;
    kept.problem(409, "conflict");
    assert_eq!(kept.json["errors"][0]["code"], "coverage_terminated", "{}", kept.text);
    cancel("no-such-contribution").await.problem(404, "not_found");
}

async fn bad_registrations_list_every_problem(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let before = (app.count("beneficiaries").await, app.count("coverages").await);
    let mut body = household(&r.product, "TSV 0001 !", "12345");
    body["principal"]["family_name"] = json!("é".repeat(2_000));
    body["principal"]["birth_date"] = json!("2090-01-01");
    body["principal"]["phone"] = json!("90123456");
    body["principal"]["sex"] = json!("X");
    body["dependants"][1]["birth_date"] = json!("1990-01-01");
    let spouse_again = body["dependants"][0].clone();
    body["dependants"].as_array_mut().unwrap().push(spouse_again);
    let reply = register(app, "mut-a", "bad-1", &body).await;
    reply.problem(422, "validation_failed");
    let fields = reply.error_fields();
    for expected in [
        "/member_number",
        "/principal/national_id/value",
        "/principal/family_name",
        "/principal/birth_date",
        "/principal/phone",
        "/principal/sex",
        "/dependants/1/birth_date",
        "/dependants/2",
    ] {
        assert!(
            fields.iter().any(|f| f.starts_with(expected)),
            "{expected} missing from {fields:?}"
        );
    }
    let other_product = register(app, "mut-b", "bad-2", &household(&r.product, "B-1", "123456789012")).await;
    other_product.problem(422, "validation_failed");
    assert_eq!(other_product.json["errors"][0]["code"], "unknown_reference");
    let wrong_types = register(
        app,
        "mut-a",
        "bad-3",
        &json!({"product": 1, "member_number": [], "principal": "x", "dependants": {}}),
    )
    .await;
    wrong_types.problem(422, "validation_failed");
    let too_big = app
        .send(
            app.request(Method::POST, "/v1/registrations")
                .bearer_auth(writer(app, "mut-a"))
                .header("idempotency-key", "big")
                .json(&json!({"principal": {"family_name": "é".repeat(1_100_000)}})),
        )
        .await;
    too_big.problem(413, "payload_too_large");
    // No one is covered before birth: a principal born after the household's start date is
    // refused on their birth date. (Dependants share the household's start date, which a file
    // posted again keeps while its children are born: batches.rs.)
    let mut body = household(&r.product, "NEWBORN-1", "123456789012");
    body["principal"]["birth_date"] = json!("2026-03-01");
    body["start_date"] = json!("2026-02-28");
    let reply = register(app, "mut-a", "unborn-1", &body).await;
    assert_eq!(
        reply.field_codes(),
        [("/principal/birth_date".to_owned(), "born_after_start".to_owned())]
    );
    // Names go on cards and into other systems: no invisible formatting either. A right-to-left
    // override would show the name backwards, a zero-width space or a byte order mark would make
    // a second name that looks the same and compares different, a line separator breaks lines.
    for (i, bad) in ["\u{202E}Amégbé", "Amé\u{200B}gbé", "\u{FEFF}Amégbé", "Amé\u{2028}gbé"]
        .iter()
        .enumerate()
    {
        let mut body = household(&r.product, &format!("INV-{i}"), "123456789012");
        body["principal"]["family_name"] = json!(bad);
        let reply = register(app, "mut-a", &format!("invisible-{i}"), &body).await;
        assert_eq!(
            reply.field_codes(),
            [("/principal/family_name".to_owned(), "invalid_characters".to_owned())],
            "{bad:?}"
        );
    }
    // The zero-width non-joiner and joiner are parts of names in Arabic script: kept as sent.
    let mut body = household(&r.product, "AJAMI-1", "123456789012");
    body["principal"]["given_names"] = json!("عبد\u{200C}الله");
    let kept = register(app, "mut-a", "ajami-1", &body).await;
    assert_eq!(kept.status.as_u16(), 201, "{}", kept.text);
    let id = kept.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let person = app.get(&format!("/v1/beneficiaries/{id}"), &writer(app, "mut-a")).await;
    assert_eq!(person.json["given_names"], "عبد\u{200C}الله");
    assert_eq!(
        (app.count("beneficiaries").await, app.count("coverages").await),
        (before.0 + 3, before.1 + 3)
    );
}

/// Dates reach from 1900 to ten years ahead: a contribution "paid through 9999" would keep a
/// coverage paid up for ever, and a product version dated 9999 could never be followed. Each is
/// 422 on its field, and nothing is written.
async fn dates_stay_within_the_business(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let mut far = household(&r.product, "TSV-0009", "123456789019");
    far["start_date"] = json!("0000-01-01");
    far["paid_through"] = json!("9999-12-31");
    let reply = register(app, "mut-a", "far", &far).await;
    reply.problem(422, "validation_failed");
    let mut fields = reply.error_fields();
    fields.sort();
    assert_eq!(fields, ["/paid_through", "/start_date"]);
    assert_eq!(app.count("beneficiaries").await, 0);

    let reply = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let pay = app
        .post(
            &format!("/v1/coverages/{coverage}/contributions"),
            &token,
            &json!({"amount_xof": 1, "period_start": "0000-01-01", "period_end": "9999-12-31",
                    "paid_at": "2026-01-02", "reference": "x"}),
        )
        .await;
    pay.problem(422, "validation_failed");
    let mut fields = pay.error_fields();
    fields.sort();
    assert_eq!(fields, ["/period_end", "/period_start"]);
    assert_eq!(pay.json["errors"][0]["code"], "out_of_range");
    assert_eq!(
        app.get(&format!("/v1/coverages/{coverage}"), &token).await.json["paid_through"],
        "2026-12-31"
    );

    let mut plan = family_plan("9999-01-01");
    plan["name"] = json!("Formule éternelle");
    let product = app.post("/v1/products", &token, &plan).await;
    product.problem(422, "validation_failed");
    assert_eq!(product.error_fields(), ["/effective_from"]);
}

/// Concurrent patches of one coverage under `If-Match: *` all succeed, each on the version the
/// one before it left: the ETags they answer are every version from 2 on, once each (as many
/// at once as a change has tries: each try is lost only to another's commit).
async fn patches_under_any_version_build_on_each_other(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let reply = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/coverages/{coverage}");
    let replies = futures::future::join_all((0..10).map(|i| {
        app.send(
            app.request(Method::PATCH, &path)
                .bearer_auth(&token)
                .header("if-match", "*")
                .json(&json!({"end_date": format!("2030-01-{:02}", i + 1)})),
        )
    }))
    .await;
    let mut tags: Vec<String> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
            reply.header("etag").unwrap().to_owned()
        })
        .collect();
    tags.sort_by_key(|t| t.trim_matches('"').parse::<u32>().unwrap());
    let expected: Vec<String> = (2..=11).map(|v| format!("\"{v}\"")).collect();
    assert_eq!(tags, expected);
    let read = app.get(&path, &token).await;
    assert_eq!(read.header("etag"), Some("\"11\""));
    let last = replies.iter().find(|r| r.header("etag") == Some("\"11\"")).unwrap();
    assert_eq!(read.json["end_date"], last.json["end_date"]);
}

/// mut-a's family plan gets a version, in force from `day`, that allows no dependant.
async fn allow_no_dependant_from(app: &TestApp, product: &str, day: &str) {
    let mut stricter = family_plan(day);
    stricter["max_dependants"] = json!(0);
    let put = app
        .send(
            app.request(Method::PUT, &format!("/v1/products/{product}"))
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", "*")
                .json(&stricter),
        )
        .await;
    assert_eq!(put.status.as_u16(), 200, "{}", put.text);
}

/// A household starting before the product's first version is held to that first version's
/// rules, not to the latest one's.
async fn a_start_before_the_first_version_uses_the_first(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    allow_no_dependant_from(app, &r.product, "2026-09-01").await;
    let mut early = household(&r.product, "TSV-0001", "123456789012");
    early["start_date"] = json!("2025-12-01");
    let reply = register(app, "mut-a", "k1", &early).await;
    assert_eq!(
        reply.status.as_u16(),
        201,
        "two dependants, as the first version allows: {}",
        reply.text
    );
    let mut late = household(&r.product, "TSV-0002", "123456789013");
    late["start_date"] = json!("2026-10-01");
    let reply = register(app, "mut-a", "k2", &late).await;
    reply.problem(422, "validation_failed");
}

/// A deployment's national id rules (`PASSERELLE_NATIONAL_ID_RULES`) replace the shipped ones: a
/// 13-character NINA registers and is found, a type the file does not list is refused at the
/// type, and a file with a mistake stops the service at start.
async fn a_deployment_sets_its_national_id_rules(backend: Backend) {
    let file = std::env::temp_dir().join(format!("passerelle-nid-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(
        &file,
        r#"[{"country": "ML", "type": "NINA", "min_len": 13, "max_len": 15, "charset": "letters_and_digits"}]"#,
    )
    .unwrap();
    let r = registry(backend).await;
    let path = file.clone();
    let app = r.app.restart(move |c| c.national_id_rules = Some(path)).await;
    let mut body = household(&r.product, "TSV-0001", "123456789012");
    body["dependants"] = json!([]);
    body["principal"]["national_id"] = json!({"country": "ML", "type": "NINA", "value": "1234567890123"});
    let created = register(&app, "mut-a", "k1", &body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let check = app
        .post(
            "/v1/eligibility-checks",
            &app.token("cms-a", "eligibility:check"),
            &json!({"beneficiary": {"national_id": {"country": "ML", "type": "NINA", "value": "1234567890123"}},
                    "service_date": "2026-06-01", "care_level": "health_center"}),
        )
        .await;
    assert_eq!(check.status.as_u16(), 200, "{}", check.text);
    let mut shipped = household(&r.product, "TSV-0002", "123456789012");
    shipped["dependants"] = json!([]);
    let refused = register(&app, "mut-a", "k2", &shipped).await;
    refused.problem(422, "validation_failed");
    assert_eq!(
        refused.json["errors"][0]["field"], "/principal/national_id/type",
        "{}",
        refused.text
    );

    std::fs::write(
        &file,
        r#"[{"country": "ML", "type": "NINA", "min_len": 0, "max_len": 15, "charset": "digits"}]"#,
    )
    .unwrap();
    let mut config = app.config.clone();
    config.national_id_rules = Some(file.clone());
    let database = passerelle_api::app::connect(&config).await.unwrap();
    let stopped = passerelle_api::app::state(config, &database).await.err().unwrap();
    assert!(
        stopped.contains("PASSERELLE_NATIONAL_ID_RULES") && stopped.contains("lengths"),
        "{stopped}"
    );
    std::fs::remove_file(&file).unwrap();
}

/// Terminating the principal's coverage terminates the household's: each dependant's coverage
/// ends with it, and the household can be registered again.
async fn a_household_ends_with_its_principal(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let first = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let coverage = |i: usize| first.json["members"][i]["coverage"]["id"].as_str().unwrap().to_owned();
    let token = writer(app, "mut-a");
    // The child's own coverage ends earlier: it keeps its own end date.
    let child = app
        .send(
            app.request(Method::PATCH, &format!("/v1/coverages/{}", coverage(2)))
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .json(&json!({"end_date": "2026-10-31"})),
        )
        .await;
    assert_eq!(child.status.as_u16(), 200, "{}", child.text);
    // A period that starts after that end pays for nothing the coverage covers.
    let after_end = app
        .post(
            &format!("/v1/coverages/{}/contributions", coverage(2)),
            &token,
            &json!({"amount_xof": 100, "period_start": "2026-11-01", "period_end": "2026-11-30",
                "paid_at": "2026-10-01", "reference": "RECU-LATE"}),
        )
        .await;
    assert_eq!(
        after_end.field_codes(),
        [("/period_start".to_owned(), "after_coverage_end".to_owned())]
    );
    // A newborn who joins the day after the household's coverage will end.
    let newborn = app
        .send(
            app.request(Method::POST, &format!("/v1/coverages/{}/dependants", coverage(0)))
                .bearer_auth(&token)
                .header("idempotency-key", "newborn")
                .json(
                    &json!({"relationship": "child", "start_date": "2026-12-01", "family_name": "Agbéko",
                    "given_names": "Afi", "sex": "F", "birth_date": "2026-11-28"}),
                ),
        )
        .await;
    assert_eq!(newborn.status.as_u16(), 201, "{}", newborn.text);
    let newborn_coverage = newborn.json["coverage"]["id"].as_str().unwrap().to_owned();
    let ended = app
        .send(
            app.request(Method::PATCH, &format!("/v1/coverages/{}", coverage(0)))
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .json(&json!({"status": "terminated", "end_date": "2026-11-30"})),
        )
        .await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
    for (i, end, tag) in [(1, "2026-11-30", "\"2\""), (2, "2026-10-31", "\"3\"")] {
        let dependant = app.get(&format!("/v1/coverages/{}", coverage(i)), &token).await;
        assert_eq!(dependant.json["status"], "terminated", "{}", dependant.text);
        assert_eq!(dependant.json["end_date"], end);
        assert_eq!(dependant.header("etag"), Some(tag));
    }
    // Terminated before it started, the newborn's coverage keeps no end date before its start
    // (FHIR's period could not end before it begins) and never pays.
    let joined_late = app.get(&format!("/v1/coverages/{newborn_coverage}"), &token).await;
    assert_eq!(joined_late.json["status"], "terminated", "{}", joined_late.text);
    assert!(joined_late.json["end_date"].is_null(), "{}", joined_late.text);
    let fhir = app.get(&format!("/fhir/r4/Coverage/{newborn_coverage}"), &token).await;
    assert_eq!(fhir.json["period"], json!({"start": "2026-12-01"}), "{}", fhir.text);
    let check = app
        .post(
            "/v1/eligibility-checks",
            &app.token("cms-a", "eligibility:check"),
            &json!({"beneficiary": {"id": newborn.json["beneficiary"]["id"]}, "service_date": "2026-12-01",
                "care_level": "health_center", "category": "consultation"}),
        )
        .await;
    assert_eq!(check.json["eligible"], false, "{}", check.text);
    let codes: Vec<&str> = check.json["coverages"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"TERMINATED"), "{}", check.text);
    // A service before the termination, claimed late, is paid; one after it is not.
    let spouse = first.json["members"][1]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let claim_on = |key: &'static str, day: &'static str| {
        app.send(
            app.request(Method::POST, "/v1/claims")
                .bearer_auth(app.token("cms-a", "claims:submit"))
                .header("idempotency-key", key)
                .json(
                    &json!({"external_id": key, "provider": "cms-a", "beneficiary": {"id": spouse},
                    "service_date": day, "care_level": "health_center",
                    "lines": [{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 3000}]}),
                ),
        )
    };
    let late = claim_on("late-1", "2026-11-15").await;
    assert_eq!(late.status.as_u16(), 201, "{}", late.text);
    assert_eq!(late.json["status"], "awaiting_complementary", "{}", late.text);
    assert_eq!(late.json["totals"]["complementary_xof"], 3000, "{}", late.text);
    let after = claim_on("late-2", "2026-11-30").await;
    assert_eq!(
        after.json["status"], "awaiting_complementary",
        "the last day is covered: {}",
        after.text
    );
    let too_late = claim_on("late-3", "2026-12-01").await;
    assert_eq!(too_late.json["status"], "rejected", "{}", too_late.text);
    let codes: Vec<&str> = too_late.json["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"TERMINATED") && codes.contains(&"ENDED"), "{codes:?}");
    let again = register(app, "mut-a", "k2", &household(&r.product, "TSV-0002", "123456789012")).await;
    assert_eq!(again.status.as_u16(), 201, "{}", again.text);
}

/// A retried registration is answered as the first was, though the product's rules changed
/// since; the same key with another body, even an invalid one, is `idempotency_key_reused`.
async fn a_retry_is_answered_as_the_first_was(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mut body = household(&r.product, "TSV-0001", "123456789012");
    body["start_date"] = json!("2026-03-01");
    let first = register(app, "mut-a", "k1", &body).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    allow_no_dependant_from(app, &r.product, "2026-02-01").await;
    let again = register(app, "mut-a", "k1", &body).await;
    assert_eq!(again.status.as_u16(), 201, "{}", again.text);
    assert_eq!(again.json, first.json);
    let mut other = body.clone();
    other["member_number"] = json!("");
    register(app, "mut-a", "k1", &other)
        .await
        .problem(422, "idempotency_key_reused");
    // A new request is judged by the version now in force.
    let mut fresh = household(&r.product, "TSV-0002", "123456789013");
    fresh["start_date"] = json!("2026-03-01");
    register(app, "mut-a", "k2", &fresh)
        .await
        .problem(422, "validation_failed");
    assert_eq!(app.count("coverages").await, 3);
}

/// A stored person registered into one product by several requests at once gets one coverage:
/// the others are 409 `already_covered`, however their commits interleave.
async fn one_person_joins_a_product_once_under_concurrency(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    let mut first = household(plan_b.json["id"].as_str().unwrap(), "B-1", "123456789012");
    first["dependants"] = json!([]);
    assert_eq!(register(app, "mut-b", "b", &first).await.status.as_u16(), 201);
    let attempts = (0..32).map(|i| {
        let mut body = household(&r.product, &format!("TSV-{i}"), "123456789012");
        body["dependants"] = json!([]);
        async move { register(app, "mut-a", &format!("k{i}"), &body).await }
    });
    let replies = futures::future::join_all(attempts).await;
    let created = replies.iter().filter(|r| r.status.as_u16() == 201).count();
    assert_eq!(
        created,
        1,
        "{:?}",
        replies.iter().map(|r| r.status.as_u16()).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status.as_u16() != 201) {
        reply.problem(409, "conflict");
        let detail = reply.json["detail"].as_str().unwrap();
        assert!(detail.contains("déjà couverte par ce produit"), "{}", reply.text);
    }
    assert_eq!(app.count("coverages").await, 2);
}

/// A receipt entered twice is refused, and a contribution recorded by mistake is cancelled:
/// paid_through falls back to what is left, down to the registration's own.
async fn a_contribution_entered_by_mistake_is_cancelled(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let mut body = household(&r.product, "TSV-0001", "123456789012");
    body["paid_through"] = json!("2026-03-31");
    let reply = register(app, "mut-a", "k1", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let spouse = reply.json["members"][1]["coverage"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/coverages/{coverage}");
    let contributions = format!("{path}/contributions");
    let pay = |reference: &str, amount: i64, start: &str, end: &str| {
        let body = json!({"amount_xof": amount, "period_start": start, "period_end": end,
            "paid_at": "2026-04-02", "reference": reference});
        let req = app
            .request(Method::POST, &contributions)
            .bearer_auth(&token)
            .json(&body);
        app.send(req)
    };
    let paid_through = || async { app.get(&path, &token).await.json["paid_through"].clone() };
    let april = pay("RECU-1", 3000, "2026-04-01", "2026-06-30").await;
    assert_eq!(april.status.as_u16(), 201, "{}", april.text);
    let july = pay("RECU-2", 3000, "2026-07-01", "2026-12-31").await;
    assert_eq!(july.status.as_u16(), 201, "{}", july.text);
    assert_eq!(paid_through().await, "2026-12-31");

    // The same receipt again, whatever its amount: 409 pointing at the reference, nothing kept.
    let twice = pay("RECU-2", 2500, "2026-07-01", "2026-12-31").await;
    twice.problem(409, "conflict");
    assert_eq!(twice.error_fields(), ["/reference"], "{}", twice.text);
    assert_eq!(twice.json["errors"][0]["code"], "duplicate_reference");
    // In another case, or with an invisible character pasted in, it is still not a new receipt.
    let lower = pay("recu-2", 2500, "2026-07-01", "2026-12-31").await;
    lower.problem(409, "conflict");
    assert_eq!(lower.json["errors"][0]["code"], "duplicate_reference");
    // Nor in full-width letters (the same comparison folds an accent's forms).
    let wide = pay("ＲＥＣＵ-２", 2500, "2026-07-01", "2026-12-31").await;
    wide.problem(409, "conflict");
    assert_eq!(wide.json["errors"][0]["code"], "duplicate_reference", "{}", wide.text);
    for pasted in ["RECU\u{200B}-2", "RECU\r-2", "RE\u{FEFF}CU-2"] {
        let reply = pay(pasted, 2500, "2026-07-01", "2026-12-31").await;
        assert_eq!(
            reply.field_codes(),
            [("/reference".to_owned(), "invalid_characters".to_owned())],
            "{pasted:?}: {}",
            reply.text
        );
    }
    let count = format!("SELECT count(*) FROM contributions WHERE coverage = '{coverage}'");
    assert_eq!(app.db.scalar(&count).await, 2);
    // Another coverage may carry the same reference.
    let on_spouse = app
        .post(
            &format!("/v1/coverages/{spouse}/contributions"),
            &token,
            &json!({"amount_xof": 100, "period_start": "2026-07-01", "period_end": "2026-12-31",
                "paid_at": "2026-04-02", "reference": "RECU-2"}),
        )
        .await;
    assert_eq!(on_spouse.status.as_u16(), 201, "{}", on_spouse.text);

    let cancel = |id: &str, org: &str, on: &str| {
        let req = app
            .request(Method::POST, &format!("/v1/coverages/{on}/contributions/{id}/cancel"))
            .bearer_auth(writer(app, org));
        app.send(req)
    };
    let july_id = july.json["id"].as_str().unwrap().to_owned();
    let before = app.get(&path, &token).await.header("etag").unwrap().to_owned();
    // Nobody else cancels it, and it is cancelled only through its own coverage.
    cancel(&july_id, "mut-b", &coverage).await.problem(404, "not_found");
    cancel(&july_id, "mut-a", &spouse).await.problem(404, "not_found");
    cancel("no-such-contribution", "mut-a", &coverage)
        .await
        .problem(404, "not_found");
    let reader = app.token("mut-a", "registry:read");
    let req = app
        .request(Method::POST, &format!("{contributions}/{july_id}/cancel"))
        .bearer_auth(&reader);
    app.send(req).await.problem(403, "forbidden");
    assert_eq!(paid_through().await, "2026-12-31");

    let cancelled = cancel(&july_id, "mut-a", &coverage).await;
    assert_eq!(cancelled.status.as_u16(), 200, "{}", cancelled.text);
    assert_eq!(cancelled.json["reference"], "RECU-2");
    assert!(cancelled.json["cancelled_at"].is_string(), "{}", cancelled.text);
    let now = app.get(&path, &token).await;
    assert_eq!(now.json["paid_through"], "2026-06-30");
    assert_ne!(now.header("etag"), Some(before.as_str()));
    let twice = cancel(&july_id, "mut-a", &coverage).await;
    twice.problem(409, "conflict");
    assert_eq!(twice.json["errors"][0]["code"], "already_cancelled", "{}", twice.text);
    // Its receipt may now be recorded again, rightly.
    let again = pay("RECU-2", 2500, "2026-07-01", "2026-09-30").await;
    assert_eq!(again.status.as_u16(), 201, "{}", again.text);
    assert_eq!(paid_through().await, "2026-09-30");
    // With every contribution cancelled, the registration's paid_through is what is left.
    for id in [april.json["id"].as_str().unwrap(), again.json["id"].as_str().unwrap()] {
        let done = cancel(id, "mut-a", &coverage).await;
        assert_eq!(done.status.as_u16(), 200, "{}", done.text);
    }
    assert_eq!(paid_through().await, "2026-03-31");
    let listed = app.get(&contributions, &token).await;
    let items = listed.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{}", listed.text);
    assert!(items.iter().all(|c| c["cancelled_at"].is_string()), "{}", listed.text);
    // Terminated since, the coverage still tells a retried cancel that it had succeeded.
    let read = app.get(&path, &token).await;
    let end = app
        .request(Method::PATCH, &path)
        .bearer_auth(&token)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", read.header("etag").unwrap())
        .body(json!({"status": "terminated"}).to_string());
    assert_eq!(app.send(end).await.status.as_u16(), 200);
    let retried = cancel(&july_id, "mut-a", &coverage).await;
    retried.problem(409, "conflict");
    assert_eq!(
        retried.json["errors"][0]["code"], "already_cancelled",
        "{}",
        retried.text
    );
    // Eligibility follows: in arrears once the registration's paid_through and the product's
    // 30 days of grace are past.
    let checker = app.token("mut-a", "eligibility:check");
    let check = |date: &str| {
        let body = json!({"beneficiary": {"organization": "mut-a", "member_number": "TSV-0001"},
            "service_date": date, "care_level": "health_center", "category": "consultation"});
        let req = app
            .request(Method::POST, "/v1/eligibility-checks")
            .bearer_auth(&checker)
            .json(&body);
        app.send(req)
    };
    assert_eq!(check("2026-04-30").await.json["eligible"], true);
    let late = check("2026-06-15").await;
    assert_eq!(late.json["eligible"], false, "{}", late.text);
    let audit = app.token("audit-x", "audit:read");
    let events = app
        .get(
            &format!("/v1/audit-events?resource_type=contribution&resource_id={july_id}"),
            &audit,
        )
        .await;
    let actions: Vec<_> = events.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert!(actions.contains(&json!("contribution.cancelled")), "{}", events.text);

    // A contribution that never made paid_through leaves it as it is when cancelled, even on a
    // row whose registration value is not known (written by the previous release).
    let third = register(app, "mut-a", "k3", &household(&r.product, "TSV-0003", "123456789014")).await;
    let legacy = third.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let early = app
        .post(
            &format!("/v1/coverages/{legacy}/contributions"),
            &token,
            &json!({"amount_xof": 100, "period_start": "2026-01-01", "period_end": "2026-03-31",
                "paid_at": "2026-04-02", "reference": "RECU-5"}),
        )
        .await;
    app.db
        .execute(&format!(
            "UPDATE coverages SET registered_paid_through = NULL WHERE id = '{legacy}'"
        ))
        .await;
    let undone = cancel(early.json["id"].as_str().unwrap(), "mut-a", &legacy).await;
    assert_eq!(undone.status.as_u16(), 200, "{}", undone.text);
    let kept = app.get(&format!("/v1/coverages/{legacy}"), &token).await;
    assert_eq!(kept.json["paid_through"], "2026-12-31", "{}", kept.text);

    // A coverage registered without paid_through has nothing left once its one payment goes.
    let mut bare = household(&r.product, "TSV-0002", "123456789013");
    bare.as_object_mut().unwrap().remove("paid_through");
    let second = register(app, "mut-a", "k2", &bare).await;
    let other = second.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let paid = app
        .post(
            &format!("/v1/coverages/{other}/contributions"),
            &token,
            &json!({"amount_xof": 100, "period_start": "2026-01-01", "period_end": "2026-12-31",
                "paid_at": "2026-04-02", "reference": "RECU-9"}),
        )
        .await;
    let gone = cancel(paid.json["id"].as_str().unwrap(), "mut-a", &other).await;
    assert_eq!(gone.status.as_u16(), 200, "{}", gone.text);
    let read = app.get(&format!("/v1/coverages/{other}"), &token).await;
    assert!(read.json.get("paid_through").is_none(), "{}", read.text);
}

/// Migration 19 keeps a registration's paid_through for rows written before it, unless a
/// contribution reaches it (then the registration's own is not known).
async fn registered_paid_through_of_the_previous_release(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let mut ids = Vec::new();
    for (n, niu) in [("TSV-0001", "123456789012"), ("TSV-0002", "123456789013")] {
        let reply = register(app, "mut-a", n, &household(&r.product, n, niu)).await;
        ids.push(reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned());
    }
    // The first one's paid_through (2026-12-31) is reached by a contribution, the second's not.
    for (id, end) in [(&ids[0], "2026-12-31"), (&ids[1], "2026-06-30")] {
        let paid = app
            .post(
                &format!("/v1/coverages/{id}/contributions"),
                &token,
                &json!({"amount_xof": 100, "period_start": "2026-01-01", "period_end": end,
                    "paid_at": "2026-04-02", "reference": "RECU-1"}),
            )
            .await;
        assert_eq!(paid.status.as_u16(), 201, "{}", paid.text);
    }
    app.db
        .execute("UPDATE coverages SET registered_paid_through = NULL")
        .await;
    let migration = match backend {
        Backend::Postgres => include_str!("../migrations/postgres/20261201000019_contribution_cancellation.sql"),
        Backend::Sqlite => include_str!("../migrations/sqlite/20261201000019_contribution_cancellation.sql"),
    };
    let backfill = &migration[migration.find("UPDATE coverages").unwrap()..];
    app.db.execute(backfill).await;
    let registered = |id: &str, condition: &str| {
        let sql = format!("SELECT count(*) FROM coverages WHERE id = '{id}' AND registered_paid_through {condition}");
        async move { app.db.scalar(&sql).await }
    };
    assert_eq!(registered(&ids[0], "IS NULL").await, 1);
    assert_eq!(registered(&ids[1], "= '2026-12-31'").await, 1);
}

/// A birth or a marriage: a dependant joins a registered household, under its product's rules,
/// and is eligible as the household's other dependants are.
async fn a_dependant_joins_a_registered_household(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let principal = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let spouse = reply.json["members"][1]["coverage"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/coverages/{principal}/dependants");
    let add = |org: &str, key: Option<&str>, on: &str, body: &Value| {
        let mut req = app
            .request(Method::POST, &format!("/v1/coverages/{on}/dependants"))
            .bearer_auth(writer(app, org))
            .json(body);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        app.send(req)
    };
    let newborn = json!({"relationship": "child", "start_date": "2026-03-02", "family_name": "Agbéko",
        "given_names": "Afi", "sex": "F", "birth_date": "2026-03-01"});
    // The household paid beyond its registration: the principal's paid_through moves, and stays
    // the principal's (a dependant's eligibility follows it).
    let paid = app
        .post(
            &format!("/v1/coverages/{principal}/contributions"),
            &writer(app, "mut-a"),
            &json!({"amount_xof": 100, "period_start": "2027-01-01", "period_end": "2027-06-30",
                "paid_at": "2026-03-01", "reference": "RECU-1"}),
        )
        .await;
    assert_eq!(paid.status.as_u16(), 201, "{}", paid.text);
    let before = app.count("coverages").await;
    add("mut-a", None, &principal, &newborn)
        .await
        .problem(428, "precondition_required");
    // Covered from before it was born: refused on its birth date, and nothing written.
    let mut unborn = newborn.clone();
    unborn["start_date"] = json!("2026-02-28");
    let refused = add("mut-a", Some("b0"), &principal, &unborn).await;
    assert_eq!(
        refused.field_codes(),
        [("/birth_date".to_owned(), "born_after_start".to_owned())]
    );
    assert_eq!(app.count("coverages").await, before);
    let born = add("mut-a", Some("b1"), &principal, &newborn).await;
    assert_eq!(born.status.as_u16(), 201, "{}", born.text);
    let coverage = &born.json["coverage"];
    let id = coverage["id"].as_str().unwrap().to_owned();
    assert_eq!(born.header("location"), Some(format!("/v1/coverages/{id}").as_str()));
    assert_eq!(born.header("etag"), Some("\"1\""));
    assert_eq!(born.json["relationship"], "child");
    assert_eq!(born.json["matched"], false);
    assert_eq!(born.json["beneficiary"]["given_names"], "Afi");
    assert_eq!(coverage["principal_coverage"], principal.as_str());
    assert_eq!(coverage["member_number"], "TSV-0001");
    assert_eq!(coverage["product"], r.product.as_str());
    assert_eq!(coverage["start_date"], "2026-03-02");
    // The registration's own, as for the dependants registered with the household: a payment
    // of the principal's cancelled later must not live on in the dependant's row.
    assert_eq!(coverage["paid_through"], "2026-12-31");
    // The same key again answers the same, and adds nobody.
    let replay = add("mut-a", Some("b1"), &principal, &newborn).await;
    assert_eq!(replay.status.as_u16(), 201, "{}", replay.text);
    assert_eq!(replay.json["coverage"]["id"], id.as_str());
    assert_eq!(app.count("coverages").await, before + 1);
    // The same child again, under another key: already a member of the household.
    let twice = add("mut-a", Some("b1-again"), &principal, &newborn).await;
    twice.problem(409, "conflict");
    assert_eq!(twice.json["errors"][0]["code"], "duplicate_member", "{}", twice.text);
    assert_eq!(app.count("coverages").await, before + 1);

    // The newborn waits the product's 90 days from their own start, then is covered.
    let checker = app.token("cms-a", "eligibility:check");
    let person = born.json["beneficiary"]["id"].clone();
    let check = |date: &str| {
        let body = json!({"beneficiary": {"id": person}, "service_date": date,
            "care_level": "health_center", "category": "consultation"});
        app.send(
            app.request(Method::POST, "/v1/eligibility-checks")
                .bearer_auth(&checker)
                .json(&body),
        )
    };
    let waiting = check("2026-04-01").await;
    assert_eq!(waiting.json["eligible"], false, "{}", waiting.text);
    assert_eq!(
        waiting.json["coverages"][0]["reasons"][0]["code"], "WAITING_PERIOD",
        "{}",
        waiting.text
    );
    assert_eq!(check("2026-06-15").await.json["eligible"], true);

    // Only the household's own mutuelle, only through the principal's coverage.
    add("mut-b", Some("b2"), &principal, &newborn)
        .await
        .problem(404, "not_found");
    let through_dependant = add("mut-a", Some("b3"), &spouse, &newborn).await;
    through_dependant.problem(409, "conflict");
    assert_eq!(through_dependant.json["errors"][0]["code"], "not_principal");
    let scheme = app
        .request(Method::POST, &path)
        .bearer_auth(writer(app, "tg-inam"))
        .header("idempotency-key", "b4")
        .json(&newborn);
    app.send(scheme).await.problem(403, "forbidden");

    // Every problem at once, at the body's own pointers; nothing written.
    let bad = add(
        "mut-a",
        Some("b5"),
        &principal,
        &json!({"relationship": "principal", "start_date": "2025-12-31", "given_names": "Afi", "sex": "X",
            "birth_date": "2090-01-01", "colour": "blue"}),
    )
    .await;
    bad.problem(422, "validation_failed");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "/birth_date",
            "/colour",
            "/family_name",
            "/relationship",
            "/sex",
            "/start_date"
        ],
        "{}",
        bad.text
    );
    // A child past the product's age limit (21) on their start date.
    let grown = add(
        "mut-a",
        Some("b6"),
        &principal,
        &json!({"relationship": "child", "start_date": "2026-03-02", "family_name": "Agbéko",
            "given_names": "Kodjo", "sex": "M", "birth_date": "2004-01-01"}),
    )
    .await;
    grown.problem(422, "validation_failed");
    assert_eq!(grown.error_fields(), ["/birth_date"], "{}", grown.text);
    // The principal, by their national id, already holds the product.
    let again = add("mut-a", Some("b7"), &principal,
        &json!({"relationship": "parent", "start_date": "2026-03-02", "national_id": {"country": "TG", "type": "NIU",
            "value": "123456789012"}, "family_name": "Agbéko", "given_names": "Kossi", "sex": "M", "birth_date": "1984-03-12"}))
        .await;
    again.problem(409, "conflict");
    assert_eq!(again.json["errors"][0]["code"], "already_covered", "{}", again.text);
    // An own member number already held: pointed at.
    let mut numbered = child_body("Kafui");
    numbered["member_number"] = json!("TSV-0001");
    let taken = add("mut-a", Some("b7b"), &principal, &numbered).await;
    taken.problem(409, "conflict");
    assert_eq!(taken.error_fields(), ["/member_number"], "{}", taken.text);
    assert_eq!(taken.json["errors"][0]["code"], "member_number_taken");
    assert_eq!(app.count("coverages").await, before + 1);

    // A product admitting three dependants: two additions racing for the last place, one wins.
    let mut small = family_plan("2026-01-01");
    small["max_dependants"] = json!(3);
    let small = app.post("/v1/products", &writer(app, "mut-a"), &small).await;
    let small = small.json["id"].as_str().unwrap().to_owned();
    let family = register(app, "mut-a", "k2", &household(&small, "TSV-0002", "123456789013")).await;
    assert_eq!(family.status.as_u16(), 201, "{}", family.text);
    let head = family.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let child = child_body;
    let (first, second) = tokio::join!(
        add("mut-a", Some("c1"), &head, &child("Abla")),
        add("mut-a", Some("c2"), &head, &child("Adjoa")),
    );
    let mut statuses = [first.status.as_u16(), second.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} / {}", first.text, second.text);
    let lost = if first.status.as_u16() == 409 { &first } else { &second };
    assert_eq!(lost.json["errors"][0]["code"], "household_full", "{}", lost.text);
    let live = format!("SELECT count(*) FROM coverages WHERE principal_coverage = '{head}'");
    assert_eq!(app.db.scalar(&live).await, 3);

    // A terminated household takes nobody more.
    let token = writer(app, "mut-a");
    let read = app.get(&format!("/v1/coverages/{principal}"), &token).await;
    let end = app
        .request(Method::PATCH, &format!("/v1/coverages/{principal}"))
        .bearer_auth(&token)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", read.header("etag").unwrap())
        .body(json!({"status": "terminated"}).to_string());
    assert_eq!(app.send(end).await.status.as_u16(), 200);
    let ended = add("mut-a", Some("b8"), &principal, &child("Akú")).await;
    ended.problem(409, "conflict");
    assert_eq!(ended.json["errors"][0]["code"], "household_terminated");
}

/// A dependant added while the household has an end date keeps none of its own, as one
/// registered with the household: it ends with the principal, and goes on when the household is
/// extended (it kept the old end date, and alone of the household was `ENDED` after it).
async fn an_added_dependant_goes_on_when_the_household_is_extended(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let principal = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let token = writer(app, "mut-a");
    let set_end = |end: Value| {
        app.send(
            app.request(Method::PATCH, &format!("/v1/coverages/{principal}"))
                .bearer_auth(&token)
                .header("if-match", "*")
                .json(&json!({ "end_date": end })),
        )
    };
    assert_eq!(set_end(json!("2026-11-30")).await.status.as_u16(), 200);
    let added = app
        .send(
            app.request(Method::POST, &format!("/v1/coverages/{principal}/dependants"))
                .bearer_auth(&token)
                .header("idempotency-key", "d1")
                .json(&child_body("Afi")),
        )
        .await;
    assert_eq!(added.status.as_u16(), 201, "{}", added.text);
    assert!(added.json["coverage"].get("end_date").is_none(), "{}", added.text);
    let person = added.json["beneficiary"]["id"].clone();
    let checker = app.token("cms-a", "eligibility:check");
    let check = || {
        app.send(
            app.request(Method::POST, "/v1/eligibility-checks")
                .bearer_auth(&checker)
                .json(&json!({"beneficiary": {"id": person}, "service_date": "2026-12-15",
                    "care_level": "health_center", "category": "consultation"})),
        )
    };
    let ended = check().await;
    assert_eq!(
        ended.json["coverages"][0]["reasons"][0]["code"], "ENDED",
        "with the household: {}",
        ended.text
    );
    assert_eq!(set_end(Value::Null).await.status.as_u16(), 200);
    let extended = check().await;
    assert_eq!(extended.json["eligible"], true, "{}", extended.text);
}

/// A child found by national id is the person stored under it: the age limit is judged on the
/// stored birth date, not the one sent, which agreed with it only by its year. Born "2004" (from
/// 1 January) the person is 22 on 2026-03-02, past the plan's 21, where the 2004-12-20 sent
/// would be 21: each way of joining a household refuses them, and writes nothing.
async fn a_child_found_by_national_id_is_judged_on_the_stored_birth_date(backend: Backend) {
    use crate::batches::{codes, counts, csv, run, CSV};
    let r = registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let other_plan = app.post("/v1/products", &token, &family_plan("2026-01-01")).await;
    let other_plan = other_plan.json["id"].as_str().unwrap().to_owned();
    let kodjo = json!({"national_id": {"country": "TG", "type": "NIU", "value": "555555555555"},
        "family_name": "Agbéko", "given_names": "Kodjo", "sex": "M", "birth_date": "2004"});
    let mut alone = household(&other_plan, "TSV-0100", "123456789099");
    alone["principal"] = kodjo.clone();
    alone["dependants"] = json!([]);
    assert_eq!(register(app, "mut-a", "k0", &alone).await.status.as_u16(), 201);
    let family = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(family.status.as_u16(), 201, "{}", family.text);
    let principal = family.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let before = app.count("coverages").await;

    let mut child = kodjo.clone();
    child["relationship"] = json!("child");
    child["birth_date"] = json!("2004-12-20");
    child["start_date"] = json!("2026-03-02");
    let add = |key: &'static str, body: &Value| {
        app.send(
            app.request(Method::POST, &format!("/v1/coverages/{principal}/dependants"))
                .bearer_auth(&token)
                .header("idempotency-key", key)
                .json(body),
        )
    };
    let added = add("d1", &child).await;
    added.problem(422, "validation_failed");
    assert_eq!(
        added.field_codes(),
        [("/birth_date".to_owned(), "dependant_age_limit".to_owned())],
        "{}",
        added.text
    );

    let mut joining = household(&r.product, "TSV-0002", "123456789013");
    joining["start_date"] = json!("2026-03-02");
    let mut dependant = child.clone();
    dependant.as_object_mut().unwrap().remove("start_date");
    joining["dependants"] = json!([dependant]);
    let registered = register(app, "mut-a", "k2", &joining).await;
    registered.problem(422, "validation_failed");
    assert_eq!(
        registered.field_codes(),
        [("/dependants/0/birth_date".to_owned(), "dependant_age_limit".to_owned())],
        "{}",
        registered.text
    );

    let job = run(
        app,
        "mut-a",
        "k3",
        &format!("?product={}", r.product),
        CSV,
        csv(&[
            "H1,principal,TSV-0003,Agbéko,Kossi,M,1984-03-12,TG:NIU:123456789014,,,,,2026-03-02,2026-12-31",
            "H1,child,,Agbéko,Kodjo,M,2004-12-20,TG:NIU:555555555555,,,,,,",
        ]),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [(3, "birth_date".to_owned(), "dependant_age_limit".to_owned())],
        "{job}"
    );
    assert_eq!(counts(&job), [2, 0, 0, 2, 1]);
    assert_eq!(app.count("coverages").await, before, "nothing written");

    // Someone else, unknown by that national id, is judged on the 2004-12-20 sent: 21, admitted.
    child["national_id"]["value"] = json!("555555555556");
    let admitted = add("d2", &child).await;
    assert_eq!(admitted.status.as_u16(), 201, "{}", admitted.text);
}

/// A household whose dependant's member number is taken is told so whatever its principal's
/// national id matches: answered only after the match, `member_number_taken` told a right guess
/// of someone's sex and birth without an audit event, where a wrong one was the audited
/// `identity_mismatch` (from a privacy review).
async fn a_taken_number_is_told_before_any_national_id_is_matched(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let first = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    let plan_b = plan_b.json["id"].as_str().unwrap();
    let own = register(app, "mut-b", "b1", &household(plan_b, "B-0001", "123456789099")).await;
    assert_eq!(own.status.as_u16(), 201, "{}", own.text);
    let before = app.audited().await;
    // mut-b guesses the sex of mut-a's member, its dependant numbered with a number it holds.
    for (key, sex) in [("g-right", "M"), ("g-wrong", "F")] {
        let mut guess = household(plan_b, "B-0002", "123456789012");
        guess["principal"]["sex"] = json!(sex);
        guess["principal"]["birth_date"] = json!("1984");
        guess["dependants"] = json!([{"relationship": "spouse", "member_number": "B-0001", "family_name": "Agbéko",
            "given_names": "Ama", "sex": "F", "birth_date": "1990-01-01"}]);
        let reply = register(app, "mut-b", key, &guess).await;
        reply.problem(409, "conflict");
        assert_eq!(
            (&reply.json["errors"][0]["field"], &reply.json["errors"][0]["code"]),
            (&json!("/dependants/0/member_number"), &json!("member_number_taken")),
            "{sex}: {}",
            reply.text
        );
    }
    assert_eq!(app.audited().await, before, "neither answer depends on the guess");
}

/// What B is told when a national id it sends is stored for someone else: 409 `identity_mismatch`
/// at the member at fault, in both languages, and not a word of that person.
fn refused_as_mismatch(reply: &Reply, at: &str, stored: &[&str]) {
    reply.problem(409, "conflict");
    assert_eq!(reply.json["errors"].as_array().map(Vec::len), Some(1), "{}", reply.text);
    assert_eq!(reply.json["errors"][0]["field"], at, "{}", reply.text);
    assert_eq!(reply.json["errors"][0]["code"], "identity_mismatch", "{}", reply.text);
    for secret in stored {
        assert!(!reply.text.contains(secret), "{secret} in {}", reply.text);
    }
}

/// A national id names one person: a match stands only when the sex and the birth date agree
/// (the same day; the same year when either is known only by its year). Otherwise the request is
/// refused at the member at fault, nothing is written, and nothing of the stored person is told:
/// guessing a national id harvests no one's data, and a typo attaches no one to a stranger.
async fn a_national_id_matches_only_the_same_sex_and_birth(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let first = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let kossi = first.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Born in 1990, the year alone known.
    let mut year_only = household(&r.product, "TSV-0002", "123456789013");
    year_only["principal"] = json!({"national_id": {"country": "TG", "type": "NIU", "value": "123456789013"},
        "family_name": "Lawson", "given_names": "Edem", "sex": "F", "birth_date": "1990", "phone": "+22891112233"});
    year_only["dependants"] = json!([]);
    let edem = register(app, "mut-a", "k2", &year_only).await;
    assert_eq!(edem.status.as_u16(), 201, "{}", edem.text);
    let edem = edem.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = [
        kossi.as_str(),
        edem.as_str(),
        "Agb",
        "Kossi",
        "Lawson",
        "Edem",
        "22890123456",
        "22891112233",
        "1984-03-12",
        "1990-01-01",
        "Zio",
        "Maritime",
    ];

    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    let product_b = plan_b.json["id"].as_str().unwrap().to_owned();
    // B's member, under another name (names are not compared) and its own phone.
    let member = |niu: &str, sex: &str, birth: &str| {
        json!({"national_id": {"country": "TG", "type": "NIU", "value": niu}, "family_name": "Mensah",
            "given_names": "Ama", "sex": sex, "birth_date": birth, "phone": "+22899887766"})
    };
    let solo = |principal: Value| {
        json!({"product": product_b, "member_number": "B-1", "start_date": "2026-01-01", "principal": principal,
            "dependants": []})
    };
    let before = (
        app.count("beneficiaries").await,
        app.count("coverages").await,
        app.audited().await,
    );
    for (i, (niu, sex, birth)) in [
        // Another sex, the same day.
        ("123456789012", "F", "1984-03-12"),
        // Another year, another day of the year, another year known alone.
        ("123456789012", "M", "1985-03-12"),
        ("123456789012", "M", "1984-03-13"),
        ("123456789012", "M", "1985"),
        // A stored year-only birth: a full date of another year, or another sex.
        ("123456789013", "F", "1991-06-15"),
        ("123456789013", "M", "1990-06-15"),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = register(app, "mut-b", &format!("m{i}"), &solo(member(niu, sex, birth))).await;
        refused_as_mismatch(&reply, "/principal", &stored);
    }
    // In English too, naming no one.
    let en = app
        .send(
            app.request(Method::POST, "/v1/registrations")
                .bearer_auth(writer(app, "mut-b"))
                .header("idempotency-key", "m-en")
                .header("accept-language", "en")
                .json(&solo(member("123456789012", "F", "1984-03-12"))),
        )
        .await;
    refused_as_mismatch(&en, "/principal", &stored);
    assert!(
        en.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("national id"),
        "{}",
        en.text
    );
    // A dependant at fault: the 409 points at them, and the principal, new, is not written either.
    let mut family = solo(member("123456789020", "F", "1992-02-02"));
    family["dependants"] = json!([
        {"relationship": "child", "family_name": "Mensah", "given_names": "Kafui", "sex": "M", "birth_date": "2016"},
        {"relationship": "spouse", "national_id": {"country": "TG", "type": "NIU", "value": "1234 5678 9012"},
         "family_name": "Mensah", "given_names": "Kodjo", "sex": "M", "birth_date": "1984-03-21"}
    ]);
    let reply = register(app, "mut-b", "m-dep", &family).await;
    refused_as_mismatch(&reply, "/dependants/1", &stored);
    let after = (
        app.count("beneficiaries").await,
        app.count("coverages").await,
        app.audited().await,
    );
    assert_eq!((before.0, before.1), (after.0, after.1), "nothing written");
    // Each refusal leaves a trace for the auditors, naming no one: 6 + 1 + 1 refusals.
    assert_eq!(after.2 - before.2, 8, "one event per refusal");
    let refusals = "SELECT count(*) FROM (SELECT organization, action, resource_type, resource_id FROM audit_events \
                    UNION ALL SELECT organization, action, resource_type, resource_id FROM audit_queue) e \
                    WHERE action = 'beneficiary.identity_mismatch' AND organization = 'mut-b' \
                    AND resource_type = 'beneficiary' AND resource_id = ''";
    assert_eq!(app.db.scalar(refusals).await, 8);
    let principal = app
        .get(
            "/v1/beneficiaries?national_id=TG:NIU:123456789020",
            &app.token("audit-x", "registry:read"),
        )
        .await;
    assert_eq!(principal.json["items"], json!([]), "{}", principal.text);
    // Answers about people are kept by no cache.
    assert_eq!(principal.header("cache-control"), Some("no-store"));

    // Agreeing identities match, whatever the names: a year-only birth and a full date of that
    // year, either way round; the same day.
    let year = register(app, "mut-b", "ok1", &solo(member("123456789012", "M", "1984"))).await;
    assert_eq!(year.status.as_u16(), 201, "{}", year.text);
    assert_eq!(year.json["members"][0]["matched"], true);
    assert_eq!(year.json["members"][0]["beneficiary"]["id"], kossi.as_str());
    let mut full = solo(member("123456789013", "F", "1990-06-15"));
    full["member_number"] = json!("B-2");
    let full = register(app, "mut-b", "ok2", &full).await;
    assert_eq!(full.status.as_u16(), 201, "{}", full.text);
    assert_eq!(full.json["members"][0]["matched"], true);
    assert_eq!(full.json["members"][0]["beneficiary"]["id"], edem.as_str());
    // The stored record is kept as it was.
    assert_eq!(full.json["members"][0]["beneficiary"]["birth_date_precision"], "year");

    // Adding a dependant: the same rule, at the body.
    let head = year.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let add = |key: &str, body: Value| {
        app.send(
            app.request(Method::POST, &format!("/v1/coverages/{head}/dependants"))
                .bearer_auth(writer(app, "mut-b"))
                .header("idempotency-key", key)
                .json(&body),
        )
    };
    let mut dependant = member("123456789013", "M", "1990-06-15");
    dependant["relationship"] = json!("spouse");
    dependant["start_date"] = json!("2026-02-01");
    let before = (app.count("beneficiaries").await, app.count("coverages").await);
    let refused = add("d1", dependant.clone()).await;
    refused_as_mismatch(&refused, "", &stored);
    assert_eq!(before, (app.count("beneficiaries").await, app.count("coverages").await));
    assert_eq!(app.db.scalar(refusals).await, 9, "the dependant's refusal is audited");

    // A scheme's base affiliation by the person's fields: the same rule, at /beneficiary.
    let inam = writer(app, "tg-inam");
    let base = app.create_base_product(&inam).await;
    let affiliation = |sex: &str| {
        json!({"product": base, "member_number": "INAM-0001", "start_date": "2025-01-01",
            "beneficiary": member("123456789012", sex, "1984-03-12")})
    };
    let refused = app.post("/v1/coverages", &inam, &affiliation("F")).await;
    refused_as_mismatch(&refused, "/beneficiary", &stored);
    assert_eq!(before.1, app.count("coverages").await);
    let scheme_refusals = refusals.replace("'mut-b'", "'tg-inam'");
    assert_eq!(
        app.db.scalar(&scheme_refusals).await,
        1,
        "the scheme's refusal is audited"
    );
    let affiliated = app.post("/v1/coverages", &inam, &affiliation("M")).await;
    assert_eq!(affiliated.status.as_u16(), 201, "{}", affiliated.text);
    assert_eq!(affiliated.json["beneficiary"], kossi.as_str(), "the same day matches");
    assert_eq!(affiliated.json["matched"], true, "{}", affiliated.text);
    assert_eq!(affiliated.json["possible_duplicates"], json!([]));
    // Without a national id, the scheme's own look-alike is reported, not merged; the mutuelle's
    // members are not searched.
    let unnamed = |number: &str, given: &str| {
        json!({"product": base, "member_number": number, "start_date": "2025-01-01",
            "beneficiary": {"family_name": "Lawson", "given_names": given, "sex": "M", "birth_date": "1990"}})
    };
    let first = app.post("/v1/coverages", &inam, &unnamed("INAM-0002", "Edem")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(
        (&first.json["matched"], &first.json["possible_duplicates"]),
        (&json!(false), &json!([]))
    );
    let second = app.post("/v1/coverages", &inam, &unnamed("INAM-0003", "Édem")).await;
    assert_eq!(second.status.as_u16(), 201, "{}", second.text);
    assert_eq!(second.json["matched"], false);
    assert_eq!(second.json["possible_duplicates"], json!([first.json["beneficiary"]]));
    assert_ne!(second.json["beneficiary"], first.json["beneficiary"]);
    // A replay answers the same.
    let keyed = || {
        app.send(
            app.request(Method::POST, "/v1/coverages")
                .bearer_auth(&inam)
                .header("idempotency-key", "aff-3")
                .json(&unnamed("INAM-0004", "EDEM")),
        )
    };
    let again = keyed().await;
    let replay = keyed().await;
    assert_eq!(again.status.as_u16(), 201, "{}", again.text);
    assert_eq!(replay.json, again.json);
    assert_eq!(
        again.json["possible_duplicates"].as_array().unwrap().len(),
        2,
        "{}",
        again.text
    );
}

fn child_body(given: &str) -> Value {
    json!({"relationship": "child", "start_date": "2026-03-02", "family_name": "Agbéko",
        "given_names": given, "sex": "F", "birth_date": "2026-03-01"})
}

/// A member number is one number in whatever case it is typed: another household cannot take
/// another spelling of it, a dependant's own number cannot either, and a check finds the
/// household by any spelling. The number keeps the spelling it was registered with; another
/// organisation's numbers are its own.
async fn member_numbers_ignore_case(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let first = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let principal = first.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let coverage = first.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let before = (app.count("beneficiaries").await, app.count("coverages").await);

    let taken = register(app, "mut-a", "k2", &household(&r.product, "tsv-0001", "999999999999")).await;
    taken.problem(409, "conflict");
    assert_eq!(taken.error_fields(), ["/member_number"], "{}", taken.text);
    assert_eq!(taken.json["errors"][0]["code"], "member_number_taken");
    // A dependant's own number, within the request and against the stored one.
    let mut own = household(&r.product, "TSV-0002", "999999999999");
    own["dependants"][0]["member_number"] = json!("Tsv-0002");
    let twice = register(app, "mut-a", "k3", &own).await;
    twice.problem(422, "validation_failed");
    assert_eq!(twice.error_fields(), ["/dependants/0/member_number"], "{}", twice.text);
    own["dependants"][0]["member_number"] = json!("tsv-0001");
    let stored = register(app, "mut-a", "k4", &own).await;
    stored.problem(409, "conflict");
    assert_eq!(
        stored.error_fields(),
        ["/dependants/0/member_number"],
        "{}",
        stored.text
    );
    let newborn = json!({"relationship": "child", "start_date": "2026-03-02", "family_name": "Agbéko",
        "given_names": "Afi", "sex": "F", "birth_date": "2026-03-01", "member_number": "tSV-0001"});
    let added = app
        .send(
            app.request(Method::POST, &format!("/v1/coverages/{coverage}/dependants"))
                .bearer_auth(writer(app, "mut-a"))
                .header("idempotency-key", "k5")
                .json(&newborn),
        )
        .await;
    added.problem(409, "conflict");
    assert_eq!(added.json["errors"][0]["code"], "member_number_taken", "{}", added.text);
    assert_eq!(before, (app.count("beneficiaries").await, app.count("coverages").await));

    // Any spelling reaches the household. Only ASCII letters fold, alike on both databases: the
    // Kelvin sign is not a `k`, nor `İ` an `i` (PostgreSQL's `lower` would fold both).
    let kit = register(app, "mut-a", "k7", &household(&r.product, "KIT-0001", "999999999996")).await;
    assert_eq!(kit.status.as_u16(), 201, "{}", kit.text);
    let kit = kit.json["members"][0]["beneficiary"]["id"].as_str().unwrap().to_owned();
    let token = app.token("cms-a", "eligibility:check");
    for (typed, person) in [
        ("tsv-0001", Some(&principal)),
        ("Tsv-0001", Some(&principal)),
        (" TSV-0001", Some(&principal)),
        ("kit-0001", Some(&kit)),
        ("\u{212A}IT-0001", None),
        ("K\u{0130}T-0001", None),
    ] {
        let found = app
            .post(
                "/v1/eligibility-checks",
                &token,
                &json!({"beneficiary": {"organization": "mut-a", "member_number": typed},
                        "service_date": "2026-06-01", "care_level": "health_center"}),
            )
            .await;
        match person {
            Some(id) => {
                assert_eq!(found.status.as_u16(), 200, "{typed}: {}", found.text);
                assert_eq!(found.json["beneficiary"], id.as_str(), "{typed}");
            }
            None => assert_eq!(found.status.as_u16(), 404, "{typed}: {}", found.text),
        }
    }
    // The stored spelling is as registered.
    let read = app
        .get(&format!("/v1/coverages/{coverage}"), &writer(app, "mut-a"))
        .await;
    assert_eq!(read.json["member_number"], "TSV-0001", "{}", read.text);
    // Another mutuelle numbers its own members.
    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    let plan_b = plan_b.json["id"].as_str().unwrap();
    let other = register(app, "mut-b", "k6", &household(plan_b, "tsv-0001", "999999999997")).await;
    assert_eq!(other.status.as_u16(), 201, "{}", other.text);
}

/// A payment for a later period does not pay the months before it: `paid_through` follows the
/// contributions only as far as they join up, whatever order they are recorded in.
async fn a_payment_after_a_gap_counts_once_the_gap_is_paid(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let mut body = household(&r.product, "TSV-0001", "123456789012");
    body["paid_through"] = json!("2026-03-31");
    body["dependants"] = json!([]);
    let reply = register(app, "mut-a", "k1", &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let person = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let pay = |reference: &'static str, start: &'static str, end: &'static str| {
        let request = app
            .request(Method::POST, &format!("/v1/coverages/{coverage}/contributions"))
            .bearer_auth(&token)
            .json(&json!({"amount_xof": 1750, "period_start": start, "period_end": end,
                          "paid_at": "2026-04-02", "reference": reference}));
        app.send(request)
    };
    let paid_through =
        || async { app.get(&format!("/v1/coverages/{coverage}"), &token).await.json["paid_through"].clone() };
    let august = || async {
        let body = json!({"beneficiary": {"id": person}, "service_date": "2026-08-14", "care_level": "health_center"});
        let reply = app
            .post(
                "/v1/eligibility-checks",
                &app.token("cms-a", "eligibility:check"),
                &body,
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        reply.json["coverages"][0]["reasons"].clone()
    };

    // December alone: recorded, and April to November are still owed.
    let december = pay("DEC", "2026-12-01", "2026-12-31").await;
    assert_eq!(december.status.as_u16(), 201, "{}", december.text);
    assert_eq!(paid_through().await, "2026-03-31");
    let owed = august().await;
    assert_eq!(owed[0]["code"], "CONTRIBUTIONS_IN_ARREARS", "{owed}");
    // August to November, then April to July: the run joins up to December.
    assert_eq!(pay("AUG", "2026-08-01", "2026-11-30").await.status.as_u16(), 201);
    assert_eq!(paid_through().await, "2026-03-31");
    let april = pay("APR", "2026-04-01", "2026-07-31").await;
    assert_eq!(april.status.as_u16(), 201, "{}", april.text);
    assert_eq!(paid_through().await, "2026-12-31");
    assert_eq!(august().await, json!([]));
    // Cancelling April to July opens the gap again.
    let id = april.json["id"].as_str().unwrap();
    let cancel = app
        .send(
            app.request(
                Method::POST,
                &format!("/v1/coverages/{coverage}/contributions/{id}/cancel"),
            )
            .bearer_auth(&token),
        )
        .await;
    assert_eq!(cancel.status.as_u16(), 200, "{}", cancel.text);
    assert_eq!(paid_through().await, "2026-03-31");
}

/// A body as PowerShell writes it (a byte order mark first) and a phone number dialled with
/// `00` are taken as meant.
async fn a_byte_order_mark_and_a_00_prefix_are_read_as_meant(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mut body = household(&r.product, "TSV-0001", "123456789012");
    body["principal"]["phone"] = json!("00228 90 12 34 56");
    let text = format!("\u{FEFF}{body}");
    let reply = app
        .send(
            app.request(Method::POST, "/v1/registrations")
                .bearer_auth(writer(app, "mut-a"))
                .header("idempotency-key", "bom-1")
                .header("content-type", "application/json")
                .body(text),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_eq!(reply.json["members"][0]["beneficiary"]["phone"], "+22890123456");
}

/// API.md §4: the server trims the texts and dates of `/v1` bodies, `PATCH /v1/coverages/{id}`'s
/// `status` and `end_date` among them (a value copied from a spreadsheet cell).
async fn a_coverage_patch_reads_its_values_trimmed(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let patch = |tag: &'static str, body: Value| {
        app.send(
            app.request(Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", tag)
                .json(&body),
        )
    };
    let suspended = patch("\"1\"", json!({"status": " suspended "})).await;
    assert_eq!(suspended.status.as_u16(), 200, "{}", suspended.text);
    assert_eq!(suspended.json["status"], "suspended");
    let ending = patch("\"2\"", json!({"end_date": "\t2026-06-30 "})).await;
    assert_eq!(ending.status.as_u16(), 200, "{}", ending.text);
    assert_eq!(ending.json["end_date"], "2026-06-30");
}

on_both_databases!(
    a_taken_number_is_told_before_any_national_id_is_matched,
    a_coverage_patch_reads_its_values_trimmed,
    a_byte_order_mark_and_a_00_prefix_are_read_as_meant,
    a_payment_after_a_gap_counts_once_the_gap_is_paid,
    a_copy_held_is_read_again_only_once_changed,
    member_numbers_ignore_case,
    a_national_id_matches_only_the_same_sex_and_birth,
    a_dependant_joins_a_registered_household,
    an_added_dependant_goes_on_when_the_household_is_extended,
    a_child_found_by_national_id_is_judged_on_the_stored_birth_date,
    a_contribution_entered_by_mistake_is_cancelled,
    registered_paid_through_of_the_previous_release,
    terminations_of_the_previous_release_take_effect_on_their_day,
    a_household_ends_with_its_principal,
    a_deployment_sets_its_national_id_rules,
    a_retry_is_answered_as_the_first_was,
    a_start_before_the_first_version_uses_the_first,
    one_person_joins_a_product_once_under_concurrency,
    dates_stay_within_the_business,
    a_household_registers_all_or_nothing,
    people_are_matched_across_organisations,
    visibility_follows_coverage,
    coverages_change_with_if_match_and_contributions,
    patches_under_any_version_build_on_each_other,
    bad_registrations_list_every_problem,
);

/// Reads of a coverage and a product evaluate their preconditions (RFC 9110 §13.2.2): a client
/// holding the current version gets 304 without a body, a stale `If-Match` 412.
async fn a_copy_held_is_read_again_only_once_changed(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let reply = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    let coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let read = |path: String, header: &'static str, value: &'static str| {
        app.send(
            app.request(Method::GET, &path)
                .bearer_auth(&token)
                .header(header, value),
        )
    };
    for path in [
        format!("/v1/coverages/{coverage}"),
        format!("/v1/products/{}", r.product),
    ] {
        for held in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
            let again = read(path.clone(), "if-none-match", held).await;
            assert_eq!(again.status.as_u16(), 304, "{path} {held}: {}", again.text);
            assert_eq!(again.text, "");
            assert_eq!(again.header("etag"), Some("\"1\""));
        }
        let other = read(path.clone(), "if-none-match", "\"2\"").await;
        assert_eq!(other.status.as_u16(), 200, "{}", other.text);
        assert_eq!(other.header("etag"), Some("\"1\""));
        read(path.clone(), "if-match", "\"2\"")
            .await
            .problem(412, "precondition_failed");
        assert_eq!(read(path.clone(), "if-match", "\"1\"").await.status.as_u16(), 200);
    }
    // Once changed, the copy held is stale: the read answers in full.
    let patched = app
        .send(
            app.request(Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(&token)
                .header("content-type", "application/merge-patch+json")
                .header("if-match", "\"1\"")
                .body(json!({"status": "suspended"}).to_string()),
        )
        .await;
    assert_eq!(patched.status.as_u16(), 200, "{}", patched.text);
    let fresh = read(format!("/v1/coverages/{coverage}"), "if-none-match", "\"1\"").await;
    assert_eq!(fresh.status.as_u16(), 200, "{}", fresh.text);
    assert_eq!(fresh.json["status"], "suspended");
    assert_eq!(fresh.header("etag"), Some("\"2\""));
    // Preconditions never reveal what the caller may not read.
    let stranger = app
        .send(
            app.request(Method::GET, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(writer(app, "mut-b"))
                .header("if-none-match", "*"),
        )
        .await;
    stranger.problem(404, "not_found");
}

/// Migration 17 brings a coverage terminated before this release with a later end date back to
/// the day it was terminated (its last change), keeps an earlier end date, and clears the end
/// of one terminated before it started: run again here on rows written as the previous release
/// left them.
async fn terminations_of_the_previous_release_take_effect_on_their_day(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let first = register(app, "mut-a", "k1", &household(&r.product, "TSV-0001", "123456789012")).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let coverage = |i: usize| first.json["members"][i]["coverage"]["id"].as_str().unwrap().to_owned();
    let (later, earlier, unstarted) = (coverage(0), coverage(1), coverage(2));
    let instant = |at: &str| match backend {
        Backend::Postgres => format!("TIMESTAMPTZ '{at}'"),
        Backend::Sqlite => format!("'{at}'"),
    };
    for (id, end, start, updated) in [
        // Late in the UTC day: the day is UTC's, whatever the server's time zone.
        (&later, "'2027-06-30'", "2026-01-01", "2026-11-01T23:30:00.000000Z"),
        (&earlier, "'2026-10-15'", "2026-01-01", "2026-11-01T10:00:00.000000Z"),
        (&unstarted, "NULL", "2026-12-01", "2026-11-01T10:00:00.000000Z"),
    ] {
        app.db
            .execute(&format!(
                "UPDATE coverages SET status = 'terminated', end_date = {end}, start_date = '{start}', \
                 updated_at = {} WHERE id = '{id}'",
                instant(updated)
            ))
            .await;
    }
    let migration = match backend {
        Backend::Postgres => include_str!("../migrations/postgres/20261201000017_termination_takes_effect.sql"),
        Backend::Sqlite => include_str!("../migrations/sqlite/20261201000017_termination_takes_effect.sql"),
    };
    app.db.execute(migration).await;
    let ends = |id: &str, condition: &str| {
        let sql = format!("SELECT count(*) FROM coverages WHERE id = '{id}' AND {condition}");
        async move { app.db.scalar(&sql).await }
    };
    assert_eq!(
        ends(&later, "end_date = '2026-11-01'").await,
        1,
        "brought back to its day"
    );
    assert_eq!(
        ends(&earlier, "end_date = '2026-10-15'").await,
        1,
        "an earlier end is kept"
    );
    assert_eq!(
        ends(&unstarted, "end_date IS NULL").await,
        1,
        "never started, never pays"
    );
}
