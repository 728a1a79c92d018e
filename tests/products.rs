//! API.md §5 Products: ownership by layer, validation, versions with If-Match.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

pub fn family_plan(effective_from: &str) -> Value {
    json!({
        "layer": "complementary", "name": "Formule famille — Tsévié",
        "rules": [{"care_level": "health_center", "rate_bp": 10000}, {"category": "pharmacy", "rate_bp": 7000}],
        "annual_ceiling_xof": 150000, "waiting_period_days": 90, "grace_period_days": 30,
        "excluded_categories": ["dental"], "max_dependants": 8, "child_max_age": 21,
        "effective_from": effective_from
    })
}

async fn app_with_orgs(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    app.create_org("mut-b", "mutuelle", "TG").await;
    app.create_org("tg-inam", "scheme", "TG").await;
    app.create_org("cms-a", "provider", "TG").await;
    app
}

fn writer(app: &TestApp, org: &str) -> String {
    app.token(org, "registry:read registry:write")
}

async fn create(app: &TestApp, org: &str, body: &Value) -> Reply {
    app.post("/v1/products", &writer(app, org), body).await
}

async fn owners_create_and_read_their_products(backend: Backend) {
    let app = app_with_orgs(backend).await;
    let created = create(&app, "mut-a", &family_plan("2026-01-01")).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), Some(format!("/v1/products/{id}").as_str()));
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(created.json["organization"], "mut-a");
    assert_eq!(created.json["version"], 1);
    assert_eq!(
        created.json["rules"][1],
        json!({"category": "pharmacy", "rate_bp": 7000})
    );

    let read = app.get(&format!("/v1/products/{id}"), &writer(&app, "mut-a")).await;
    assert_eq!(read.json, created.json);
    // Another mutuelle, a provider: not visible. The operator: visible.
    app.get(&format!("/v1/products/{id}"), &writer(&app, "mut-b"))
        .await
        .problem(404, "not_found");
    app.get(&format!("/v1/products/{id}"), &app.token("cms-a", "registry:read"))
        .await
        .problem(404, "not_found");
    assert_eq!(
        app.get(&format!("/v1/products/{id}"), &app.operator())
            .await
            .status
            .as_u16(),
        200
    );
    let listed_b = app.get("/v1/products", &writer(&app, "mut-b")).await;
    assert_eq!(listed_b.json["items"], json!([]));
    let listed_a = app.get("/v1/products", &writer(&app, "mut-a")).await;
    assert_eq!(listed_a.json["items"].as_array().unwrap().len(), 1);
    let spying = app.get("/v1/products?organization=mut-a", &writer(&app, "mut-b")).await;
    assert_eq!(spying.json["items"], json!([]));

    let mut base = family_plan("2026-01-01");
    base["layer"] = json!("base");
    base.as_object_mut().unwrap().remove("annual_ceiling_xof");
    // A base affiliation is one person's: household rules would never apply.
    let r = create(&app, "tg-inam", &base).await;
    r.problem(422, "validation_failed");
    let faults: Vec<(&str, &str)> = r.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        faults,
        [
            ("/max_dependants", "not_allowed_for_layer"),
            ("/child_max_age", "not_allowed_for_layer")
        ]
    );
    assert_eq!(app.count("products").await, 1);
    for household_rule in ["max_dependants", "child_max_age"] {
        base.as_object_mut().unwrap().remove(household_rule);
    }
    assert_eq!(create(&app, "tg-inam", &base).await.status.as_u16(), 201);
}

async fn layers_must_suit_the_owner(backend: Backend) {
    let app = app_with_orgs(backend).await;
    let mut base = family_plan("2026-01-01");
    base["layer"] = json!("base");
    let r = create(&app, "mut-a", &base).await;
    r.problem(422, "validation_failed");
    assert!(r.error_fields().contains(&"/layer".to_owned()));
    let r = create(&app, "tg-inam", &family_plan("2026-01-01")).await;
    assert!(r.problem(422, "validation_failed").to_string().contains("/layer"));
    let r = create(&app, "cms-a", &family_plan("2026-01-01")).await;
    r.problem(403, "forbidden");
    let r = app
        .post(
            "/v1/products",
            &app.token("mut-a", "registry:read"),
            &family_plan("2026-01-01"),
        )
        .await;
    r.problem(403, "forbidden");
    assert_eq!(app.count("products").await, 0);
}

async fn every_rule_violation_is_listed(backend: Backend) {
    let app = app_with_orgs(backend).await;
    let before = app.audited().await;
    let body = json!({
        "layer": "complementary", "name": "",
        "rules": [{"care_level": "clinic", "rate_bp": 10001}, {"category": "pharmacy", "rate_bp": "70"}, 3],
        "annual_ceiling_xof": -1, "waiting_period_days": -5, "excluded_categories": ["dental", "magic"],
        "effective_from": "2026-02-30", "colour": "red"
    });
    let r = create(&app, "mut-a", &body).await;
    r.problem(422, "validation_failed");
    let fields = r.error_fields();
    for expected in [
        "/name",
        "/rules/0/care_level",
        "/rules/0/rate_bp",
        "/rules/1/rate_bp",
        "/rules/2",
        "/annual_ceiling_xof",
        "/waiting_period_days",
        "/excluded_categories/1",
        "/effective_from",
        "/colour",
    ] {
        assert!(
            fields.contains(&expected.to_owned()),
            "{expected} missing from {fields:?}"
        );
    }
    assert_eq!(app.count("products").await, 0);
    assert_eq!(app.audited().await, before);

    // An item of the wrong type first: the items after it keep their own pointers.
    let shifted = json!({
                "layer": "complementary", "name": "Formule\nfamille",
        "rules": [1, {"rate_bp": 5}, {"rate_bp": 20000}], "excluded_categories": [1, "teeth"],
        "effective_from": "2026-01-01"
    });
    let r = create(&app, "mut-a", &shifted).await;
    r.problem(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "/excluded_categories/0",
            "/excluded_categories/1",
            "/name",
            "/rules/0",
            "/rules/2/rate_bp"
        ],
        "{}",
        r.text
    );

    // More rules than a product may have: the rule says so once, the items are not read.
    let too_many = json!({
        "layer": "complementary", "name": "Formule famille", "rules": vec![json!(0); 150],
        "effective_from": "2026-01-01"
    });
    let r = create(&app, "mut-a", &too_many).await;
    r.problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["/rules"], "{}", r.text);
    assert_eq!(r.json["errors"][0]["code"], "too_many");
    // A list past a thousand items is one error, not one per item.
    let crowded = json!({
        "layer": "complementary", "name": "Formule famille", "rules": [{"rate_bp": 5000}],
        "excluded_categories": vec![json!(1); 50_000], "effective_from": "2026-01-01"
    });
    let r = create(&app, "mut-a", &crowded).await;
    r.problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["/excluded_categories"], "{}", r.text);
    assert_eq!(r.json["errors"][0]["code"], "invalid_length");
    assert_eq!(app.audited().await, before);
}

async fn versions_need_if_match_and_a_later_date(backend: Backend) {
    let app = app_with_orgs(backend).await;
    let token = writer(&app, "mut-a");
    let created = create(&app, "mut-a", &family_plan("2026-01-01")).await;
    let id = created.json["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/products/{id}");
    let put = |if_match: Option<&str>, body: Value| {
        let mut b = app.request(Method::PUT, &path).bearer_auth(&token).json(&body);
        if let Some(tag) = if_match {
            b = b.header("if-match", tag);
        }
        app.send(b)
    };
    put(None, family_plan("2026-07-01"))
        .await
        .problem(428, "precondition_required");
    put(Some("\"7\""), family_plan("2026-07-01"))
        .await
        .problem(412, "precondition_failed");
    let r = put(Some("\"1\""), family_plan("2025-12-31")).await;
    r.problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["/effective_from"]);
    let mut richer = family_plan("2026-07-01");
    richer["annual_ceiling_xof"] = json!(200000);
    let v2 = put(Some("\"1\""), richer).await;
    assert_eq!(v2.status.as_u16(), 200, "{}", v2.text);
    assert_eq!(v2.header("etag"), Some("\"2\""));
    assert_eq!(v2.json["version"], 2);
    put(Some("\"1\""), family_plan("2026-09-01"))
        .await
        .problem(412, "precondition_failed");
    // A weak tag names its version as the strong one does (a compressing proxy weakens the
    // ETag it passes on, API.md §3), so a stale one is still 412; a list matches when one of its
    // tags does; `*` matches any current version.
    put(Some("W/\"1\""), family_plan("2026-09-01"))
        .await
        .problem(412, "precondition_failed");
    let v3 = put(Some("\"1\", W/\"2\""), family_plan("2026-09-01")).await;
    assert_eq!(v3.status.as_u16(), 200, "{}", v3.text);
    assert_eq!(v3.header("etag"), Some("\"3\""));
    // Several If-Match lines are one list.
    let two_lines = app
        .send(
            app.request(Method::PUT, &path)
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .header("if-match", "\"3\"")
                .json(&family_plan("2026-09-15")),
        )
        .await;
    assert_eq!(two_lines.status.as_u16(), 200, "{}", two_lines.text);
    let v4 = put(Some("*"), family_plan("2026-10-01")).await;
    assert_eq!(v4.status.as_u16(), 200, "{}", v4.text);
    assert_eq!(v4.header("etag"), Some("\"5\""));
    let mut richer = family_plan("2026-11-01");
    richer["annual_ceiling_xof"] = json!(200000);
    assert_eq!(put(Some("\"5\""), richer).await.status.as_u16(), 200);
    let latest = app.get(&path, &token).await;
    assert_eq!(latest.json["annual_ceiling_xof"], 200000);
    let versions = app.get(&format!("{path}/versions"), &token).await;
    let items = versions.json["items"].as_array().unwrap();
    assert_eq!(
        items.iter().map(|v| v["version"].as_i64().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(items[0]["annual_ceiling_xof"], 150000, "older versions are kept");
    // Another mutuelle cannot even see it to update it.
    let other = app
        .send(
            app.request(Method::PUT, &path)
                .bearer_auth(writer(&app, "mut-b"))
                .header("if-match", "\"6\"")
                .json(&family_plan("2027-01-01")),
        )
        .await;
    other.problem(404, "not_found");
}

/// Two updates sent at the same moment from the same version: the compare-and-set lets exactly
/// one through (200, version 2) and the other finds its If-Match stale (412), never a 500 or a
/// 503, and never two versions numbered 2.
async fn concurrent_updates_from_one_version_make_one_winner(backend: Backend) {
    let app = app_with_orgs(backend).await;
    let token = writer(&app, "mut-a");
    let created = create(&app, "mut-a", &family_plan("2026-01-01")).await;
    let id = created.json["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/products/{id}");
    for round in 0..5 {
        let tag = app.get(&path, &token).await.header("etag").unwrap().to_owned();
        let bodies: Vec<Value> = (0..2)
            .map(|i| {
                let mut body = family_plan(&format!("2027-{:02}-{:02}", round + 1, i + 1));
                body["annual_ceiling_xof"] = json!(200_000 + 1_000 * i);
                body
            })
            .collect();
        let replies = futures::future::join_all(bodies.iter().map(|body| {
            app.send(
                app.request(Method::PUT, &path)
                    .bearer_auth(&token)
                    .header("if-match", tag.as_str())
                    .json(body),
            )
        }))
        .await;
        let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 412],
            "round {round}: {:?}",
            replies.iter().map(|r| &r.text).collect::<Vec<_>>()
        );
        let (won, lost) = if replies[0].status.as_u16() == 200 {
            (&replies[0], &replies[1])
        } else {
            (&replies[1], &replies[0])
        };
        lost.problem(412, "precondition_failed");
        let expected = round + 2;
        assert_eq!(won.json["version"], expected);
        assert_eq!(won.header("etag"), Some(format!("\"{expected}\"").as_str()));
        // What is stored is the winner's body, whole.
        let latest = app.get(&path, &token).await;
        assert_eq!(latest.json, won.json);
    }
    let versions = app.get(&format!("{path}/versions"), &token).await;
    let numbers: Vec<i64> = versions.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
}

/// `If-Match: *` matches the version current when the change is written (RFC 9110): concurrent
/// replacements under `*` each build on the one before, none is 412, and their versions are
/// numbered one after the other.
async fn concurrent_updates_under_any_version_all_succeed(backend: Backend) {
    let app = app_with_orgs(backend).await;
    let token = writer(&app, "mut-a");
    let created = create(&app, "mut-a", &family_plan("2026-01-01")).await;
    let id = created.json["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/products/{id}");
    let bodies: Vec<Value> = (0..6)
        .map(|i| {
            let mut body = family_plan(&format!("2027-0{}-01", i + 1));
            body["annual_ceiling_xof"] = json!(200_000 + 1_000 * i);
            body
        })
        .collect();
    let replies = futures::future::join_all(bodies.iter().map(|body| {
        app.send(
            app.request(Method::PUT, &path)
                .bearer_auth(&token)
                .header("if-match", "*")
                .json(body),
        )
    }))
    .await;
    let mut won: Vec<i64> = Vec::new();
    for reply in &replies {
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        won.push(reply.json["version"].as_i64().unwrap());
    }
    won.sort_unstable();
    assert_eq!(won, [2, 3, 4, 5, 6, 7]);
    let latest = app.get(&path, &token).await;
    assert_eq!(latest.header("etag"), Some("\"7\""));
    let last = replies.iter().find(|r| r.json["version"] == 7).unwrap();
    assert_eq!(latest.json, last.json);
}

/// A version scheduled with a mistake is replaced from its own day by a later-numbered one and
/// never takes effect: checks on its dates see the correction, and `/versions` says which
/// replaced it. A version may not start on or before the start of the one in force today.
async fn a_scheduled_version_is_corrected_by_one_from_the_same_day(backend: Backend) {
    let r = crate::registry::registry(backend).await;
    let app = &r.app;
    let token = writer(app, "mut-a");
    let mut body = crate::registry::household(&r.product, "TSV-0001", "123456789012");
    body["paid_through"] = json!("2035-12-31");
    let registered = crate::registry::register(app, "mut-a", "k1", &body).await;
    assert_eq!(registered.status.as_u16(), 201, "{}", registered.text);
    let person = registered.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/products/{}", r.product);
    let put = |tag: &str, body: Value| {
        app.send(
            app.request(Method::PUT, &path)
                .bearer_auth(&token)
                .header("if-match", tag)
                .json(&body),
        )
    };
    let with_pharmacy = |from: &str, rate: u32| {
        let mut plan = family_plan(from);
        plan["rules"][1]["rate_bp"] = json!(rate);
        plan
    };
    let pharmacy_rate = |on: String| {
        let body = json!({"beneficiary": {"id": person}, "service_date": on, "care_level": "hospital",
            "category": "pharmacy"});
        let provider = app.token("cms-a", "eligibility:check");
        async move {
            let reply = app.post("/v1/eligibility-checks", &provider, &body).await;
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
            reply.json["coverages"][0]["rate_bp"].as_i64()
        }
    };
    let today = chrono::Utc::now().date_naive();
    let from = (today + chrono::Days::new(60)).to_string();
    let after = (today + chrono::Days::new(61)).to_string();
    // v2 is scheduled with 7 % for 70 %; v3, from the same day, corrects it.
    let v2 = put("\"1\"", with_pharmacy(&from, 700)).await;
    assert_eq!(v2.status.as_u16(), 200, "{}", v2.text);
    assert_eq!(pharmacy_rate(after.clone()).await, Some(700));
    let v3 = put("\"2\"", with_pharmacy(&from, 7500)).await;
    assert_eq!(v3.status.as_u16(), 200, "{}", v3.text);
    assert_eq!(pharmacy_rate(after.clone()).await, Some(7500));
    assert_eq!(pharmacy_rate(today.to_string()).await, Some(7000));
    // Withdrawn altogether: v4 restates v1's terms from the same day.
    let v4 = put("\"3\"", family_plan(&from)).await;
    assert_eq!(v4.status.as_u16(), 200, "{}", v4.text);
    assert_eq!(pharmacy_rate(after).await, Some(7000));
    let versions = app.get(&format!("{path}/versions"), &token).await;
    let superseded: Vec<Value> = versions.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["superseded_by"].clone())
        .collect();
    assert_eq!(superseded, [Value::Null, json!(3), json!(4), Value::Null]);
    assert_eq!(app.get(&path, &token).await.json.get("superseded_by"), None);
    // What is in force today (v1, from 2026-01-01) stays as it was.
    let refused = put("\"4\"", with_pharmacy("2026-01-01", 7500)).await;
    refused.problem(422, "validation_failed");
    assert_eq!(refused.json["errors"][0]["field"], "/effective_from");
    assert_eq!(refused.json["errors"][0]["code"], "not_after_current_version");
}

/// API.md §4: the date and successor rules are judged with the body's other rules, in one
/// answer, on `POST` and `PUT` alike; nothing is written.
async fn date_and_successor_faults_come_with_the_others(backend: Backend) {
    let app = app_with_orgs(backend).await;
    let token = writer(&app, "mut-a");
    let far = (chrono::Utc::now().date_naive() + chrono::Duration::days(366 * 11)).to_string();
    let mut body = family_plan(&far);
    body["name"] = json!("");
    let r = create(&app, "mut-a", &body).await;
    r.problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["/name", "/effective_from"], "{}", r.text);
    assert_eq!(r.json["errors"][1]["code"], "out_of_range");
    assert_eq!(app.count("products").await, 0);

    let created = create(&app, "mut-a", &family_plan("2026-01-01")).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let path = format!("/v1/products/{}", created.json["id"].as_str().unwrap());
    let put = |body: Value| {
        app.send(
            app.request(Method::PUT, &path)
                .bearer_auth(&token)
                .header("if-match", "\"1\"")
                .json(&body),
        )
    };
    let codes = |r: &Reply| r.field_codes();
    // Not after the version in force, and another layer, with a fault of the body.
    let mut body = family_plan("2025-12-31");
    body["name"] = json!("");
    body["layer"] = json!("primary");
    let r = put(body).await;
    assert_eq!(
        codes(&r),
        [
            ("/name".to_owned(), "empty".to_owned()),
            ("/layer".to_owned(), "layer_changed".to_owned()),
            ("/effective_from".to_owned(), "not_after_current_version".to_owned()),
        ],
        "{}",
        r.text
    );
    // Another layer is a change, also one the caller's kind may not create (a mutuelle's
    // `base`): the same mistake, the same code, from every owner.
    let mut body = family_plan("2026-02-01");
    body["layer"] = json!("base");
    let r = put(body).await;
    assert_eq!(
        codes(&r),
        [("/layer".to_owned(), "layer_changed".to_owned())],
        "{}",
        r.text
    );
    // Out of range is the date's one fault: it is not judged against the versions then.
    let mut body = family_plan(&far);
    body["rules"] = json!([]);
    let r = put(body).await;
    assert_eq!(
        codes(&r),
        [
            ("/rules".to_owned(), "empty".to_owned()),
            ("/effective_from".to_owned(), "out_of_range".to_owned()),
        ],
        "{}",
        r.text
    );
    let versions = app.get(&format!("{path}/versions"), &token).await;
    assert_eq!(versions.json["items"].as_array().unwrap().len(), 1);
}

on_both_databases!(
    date_and_successor_faults_come_with_the_others,
    a_scheduled_version_is_corrected_by_one_from_the_same_day,
    owners_create_and_read_their_products,
    layers_must_suit_the_owner,
    every_rule_violation_is_listed,
    versions_need_if_match_and_a_later_date,
    concurrent_updates_from_one_version_make_one_winner,
    concurrent_updates_under_any_version_all_succeed,
);
