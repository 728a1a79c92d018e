//! API.md §5 Beneficiaries, merges: one person registered twice made one, so that the base
//! coverage and the mutuelle's meet at the front desk, with the ceiling usage of both records.

use std::time::Duration;

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::claims::{claim, provider, submit};
use crate::registry::{household, register, registry, registry_with, writer};

/// mut-a's household of one, its principal registered without a national id; the person's id.
async fn member_without_id(app: &TestApp, product: &str, number: &str, key: &str) -> (String, String) {
    let mut body = household(product, number, "000000000000");
    body["principal"].as_object_mut().unwrap().remove("national_id");
    body["dependants"] = json!([]);
    let reply = register(app, "mut-a", key, &body).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let member = &reply.json["members"][0];
    (
        member["beneficiary"]["id"].as_str().unwrap().to_owned(),
        member["coverage"]["id"].as_str().unwrap().to_owned(),
    )
}

/// INAM's base affiliation of the man `member_without_id` registers, with his national id (a
/// second record of him); the person's id.
async fn affiliated_by_the_scheme(app: &TestApp, family_name: &str, birth_date: &str) -> String {
    let inam = app.token("tg-inam", "registry:read registry:write");
    let base = app.create_base_product(&inam).await;
    let affiliated = app
        .post(
            "/v1/coverages",
            &inam,
            &json!({"product": base, "member_number": "INAM-1", "start_date": "2025-01-01",
                    "beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"},
                                    "family_name": family_name, "given_names": "Kossi", "sex": "M",
                                    "birth_date": birth_date}}),
        )
        .await;
    assert_eq!(affiliated.status.as_u16(), 201, "{}", affiliated.text);
    affiliated.json["beneficiary"].as_str().unwrap().to_owned()
}

async fn terminate(app: &TestApp, coverage: &str, end_date: &str) {
    let ended = app
        .send(
            app.request(Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", "\"1\"")
                .json(&json!({"status": "terminated", "end_date": end_date})),
        )
        .await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
}

async fn merge(app: &TestApp, token: &str, person: &str, if_match: Option<&str>, body: &Value) -> Reply {
    let mut request = app
        .request(Method::POST, &format!("/v1/beneficiaries/{person}/merge"))
        .bearer_auth(token)
        .json(body);
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    app.send(request).await
}

async fn check(app: &TestApp, person: Value, date: &str, amount: i64) -> Reply {
    let reply = app
        .post(
            "/v1/eligibility-checks",
            &provider(app),
            &json!({"beneficiary": person, "service_date": date, "care_level": "health_center", "amount_xof": amount}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    reply
}

/// `(action, resource_id)` of the audit log's events about people and coverages, oldest first.
async fn registry_events(app: &TestApp) -> Vec<(String, String, String)> {
    let log = app.get("/v1/audit-events?limit=500", &app.operator()).await;
    let mut events: Vec<(String, String, String)> = log.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let action = e["action"].as_str().unwrap();
            action.starts_with("beneficiary.") || action.starts_with("coverage.")
        })
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (text("action"), text("resource_id"), text("organization"))
        })
        .collect();
    events.reverse();
    events
}

fn coverage_of<'a>(answer: &'a Value, organization: &str) -> Option<&'a Value> {
    answer["coverages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["organization"] == organization)
}

async fn a_mutuelles_record_merges_into_the_schemes_affiliate(backend: Backend) {
    let r = registry_with(backend, |c| c.webhook_allow_insecure = true).await;
    let app = &r.app;
    let mine = writer(app, "mut-a");
    let (record, coverage) = member_without_id(app, &r.product, "TSV-0001", "k1").await;
    // The scheme affiliates the same man with his national id: a second record.
    let inam = app.token("tg-inam", "registry:read registry:write");
    let person = affiliated_by_the_scheme(app, "AGBEKO", "1984-03-12").await;
    assert_ne!(person, record);
    let by_niu = json!({"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"}});

    // Split, the front desk finds the base coverage alone: the mutuelle's share is missed.
    let split = check(app, by_niu.clone(), "2026-06-01", 10_000).await;
    assert!(coverage_of(&split.json, "mut-a").is_none(), "{}", split.text);
    assert_eq!(split.json["estimate"]["patient_xof"], 2000, "{}", split.text);
    // Care on the mutuelle's record alone: 100 000 of its 150 000 ceiling used.
    let lines = json!([{"code": "HOSP", "category": "consultation", "quantity": 1, "unit_price_xof": 100_000}]);
    let first = submit(app, &provider(app), "c1", &claim("EXT-1", &record, "2026-05-01", lines)).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(first.json["totals"]["complementary_xof"], 100_000, "{}", first.text);

    // A third record of him, whose coverage ended, was merged into the mutuelle's first.
    let (third, third_coverage) = member_without_id(app, &r.product, "TSV-0003", "k3").await;
    terminate(app, &third_coverage, "2026-01-31").await;
    let folded = merge(app, &mine, &third, Some("\"1\""), &json!({"into": record})).await;
    assert_eq!(folded.json["id"], record.as_str(), "{}", folded.text);
    // A record merged away is no target: its merger is told where it went, as when racing it.
    let (fourth, _) = member_without_id(app, &r.product, "TSV-0004", "k4").await;
    let stale_target = merge(app, &mine, &fourth, Some("\"1\""), &json!({"into": third})).await;
    let fault = &stale_target.problem(409, "conflict")["errors"][0];
    assert_eq!(
        (&fault["field"], &fault["code"]),
        (&json!("/into"), &json!("already_merged"))
    );
    // Another mutuelle never covered it: as unknown.
    let theirs = merge(
        app,
        &writer(app, "mut-b"),
        &fourth,
        Some("\"1\""),
        &json!({"into": third}),
    )
    .await;
    assert_eq!(theirs.status.as_u16(), 404, "{}", theirs.text);

    let path = format!("/v1/beneficiaries/{record}");
    merge(app, &mine, &record, None, &by_niu)
        .await
        .problem(428, "precondition_required");
    for body in [json!({}), json!({"into": person, "national_id": by_niu["national_id"]})] {
        let refused = merge(app, &mine, &record, Some("\"1\""), &body).await;
        assert_eq!(
            refused.problem(422, "validation_failed")["errors"][0]["code"],
            "ambiguous_person"
        );
    }
    // Another mutuelle does not cover the record: as if it did not exist.
    merge(app, &writer(app, "mut-b"), &record, Some("\"1\""), &by_niu)
        .await
        .problem(404, "not_found");
    let events_before = registry_events(app).await.len();
    let (receiver, port) = crate::webhooks::receiver().await;
    let subscription = app
        .post(
            "/v1/webhooks",
            &app.token("mut-a", "webhooks:write"),
            &json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["beneficiary.changed"]}),
        )
        .await;
    assert_eq!(subscription.status.as_u16(), 201, "{}", subscription.text);

    let merged = merge(app, &mine, &record, Some("\"1\""), &by_niu).await;
    assert_eq!(merged.status.as_u16(), 200, "{}", merged.text);
    // The scheme's person, as it registered him, with his version.
    assert_eq!(merged.json["id"], person.as_str());
    assert_eq!(merged.json["family_name"], "AGBEKO");
    assert_eq!(merged.json["national_id"]["value"], "123456789012");
    assert_eq!(merged.header("etag"), Some("\"1\""));
    assert_eq!(
        app.get(&format!("/v1/beneficiaries/{person}"), &mine).await.json,
        merged.json
    );

    // The record merged away points at him, for the mutuelle whose record it was (and operators
    // and auditors); the scheme, which never covered it, and others do not read it.
    let old = app.get(&path, &mine).await;
    assert_eq!(old.status.as_u16(), 200, "{}", old.text);
    assert_eq!(old.json["merged_into"], person.as_str());
    assert_eq!(old.header("etag"), Some("\"2\""));
    app.get(&path, &inam).await.problem(404, "not_found");
    assert_eq!(
        app.get(&path, &app.operator()).await.json["merged_into"],
        person.as_str()
    );
    // A pointer is one step: the third record now names the scheme's person too, one version
    // more (a client's copy of version 2 is stale), and whoever merged it is told.
    let third_path = format!("/v1/beneficiaries/{third}");
    let third_read = app.get(&third_path, &mine).await;
    assert_eq!(third_read.json["merged_into"], person.as_str(), "{}", third_read.text);
    assert_eq!(third_read.header("etag"), Some("\"3\""));
    let cached = app
        .send(
            app.request(Method::GET, &third_path)
                .bearer_auth(&mine)
                .header("if-none-match", "\"2\""),
        )
        .await;
    assert_eq!(cached.status.as_u16(), 200, "{}", cached.text);
    let told = crate::webhooks::wait_for(&receiver, 2, Duration::from_secs(10)).await;
    let told: Vec<Value> = told
        .iter()
        .map(|(_, _, body)| serde_json::from_str(body).unwrap())
        .collect();
    let third_told = told.iter().find(|b| b["data"]["id"] == third.as_str()).unwrap();
    assert_eq!(third_told["type"], "beneficiary.changed");
    assert_eq!(third_told["version"], 3);
    assert_eq!(third_told["data"], third_read.json, "the record as GET shows it");
    assert!(told.iter().any(|b| b["data"]["id"] == record.as_str()), "{told:?}");
    app.get(&path, &writer(app, "mut-b")).await.problem(404, "not_found");
    let fhir = app.get(&format!("/fhir/r4/Patient/{record}"), &mine).await;
    assert_eq!(fhir.json["active"], false, "{}", fhir.text);
    assert_eq!(
        fhir.json["link"],
        json!([{"other": {"reference": format!("Patient/{person}")}, "type": "replaced-by"}])
    );
    merge(app, &mine, &record, Some("\"2\""), &by_niu)
        .await
        .problem(409, "conflict");
    let again = merge(app, &mine, &record, Some("\"2\""), &by_niu).await;
    assert_eq!(again.json["errors"][0]["code"], "already_merged");

    // The coverage moved, with its member number and a new version.
    let moved = app.get(&format!("/v1/coverages/{coverage}"), &mine).await;
    assert_eq!(moved.json["beneficiary"], person.as_str());
    assert_eq!(moved.json["member_number"], "TSV-0001");
    assert_eq!(moved.header("etag"), Some("\"2\""));
    let listed = app.get(&format!("/v1/coverages?beneficiary={record}"), &mine).await;
    assert_eq!(listed.json["items"], json!([]));

    // Now the front desk finds both payers, by national id and by the mutuelle's number, and the
    // ceiling remembers the care given under the old record: 50 000 left.
    let joined = check(app, by_niu.clone(), "2026-06-01", 10_000).await;
    assert_eq!(joined.json["beneficiary"], person.as_str());
    assert_eq!(
        joined.json["estimate"],
        json!({"billed_xof": 10_000, "base_xof": 8000, "complementary_xof": 2000, "patient_xof": 0}),
        "{}",
        joined.text
    );
    assert_eq!(
        coverage_of(&joined.json, "mut-a").unwrap()["remaining_ceiling_xof"],
        50_000
    );
    let by_number = check(
        app,
        json!({"organization": "mut-a", "member_number": "tsv-0001"}),
        "2026-06-01",
        10_000,
    )
    .await;
    assert_eq!(by_number.json["beneficiary"], person.as_str());
    // A large bill: the base pays 80 %, the mutuelle what is left of its ceiling.
    let lines = json!([{"code": "HOSP", "category": "consultation", "quantity": 1, "unit_price_xof": 1_000_000}]);
    let second = submit(app, &provider(app), "c2", &claim("EXT-2", &person, "2026-06-02", lines)).await;
    assert_eq!(second.status.as_u16(), 201, "{}", second.text);
    assert_eq!(second.json["totals"]["base_xof"], 800_000, "{}", second.text);
    assert_eq!(second.json["totals"]["complementary_xof"], 50_000, "{}", second.text);
    assert_eq!(second.json["totals"]["patient_xof"], 150_000, "{}", second.text);
    // The earlier claim keeps naming the record it was made under.
    let id = first.json["id"].as_str().unwrap();
    let kept = app.get(&format!("/v1/claims/{id}"), &provider(app)).await;
    assert_eq!(kept.json["beneficiary"], record.as_str());

    // One event for each person, one for each coverage moved; nothing else of the merge.
    let events = registry_events(app).await;
    let merge_events: Vec<(String, String, String)> = events[events_before..]
        .iter()
        .filter(|(action, _, _)| action != "beneficiary.read")
        .cloned()
        .collect();
    let event = |action: &str, id: &str| (action.to_owned(), id.to_owned(), "mut-a".to_owned());
    assert_eq!(
        merge_events,
        vec![
            event("beneficiary.merged", &record),
            event("beneficiary.merged", &person),
            event("beneficiary.merged", &third),
            event("coverage.updated", &coverage),
            event("coverage.updated", &third_coverage),
        ]
    );
}

async fn a_merge_refuses_what_would_not_be_one_person(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mine = writer(app, "mut-a");
    let (record, _) = member_without_id(app, &r.product, "TSV-0001", "k1").await;
    // A household whose principal has a national id and whose spouse, a woman, has none.
    let family = register(app, "mut-a", "k2", &household(&r.product, "TSV-0002", "123456789012")).await;
    assert_eq!(family.status.as_u16(), 201, "{}", family.text);
    let principal = family.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let spouse = family.json["members"][1]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let plan_b = app
        .post(
            "/v1/products",
            &writer(app, "mut-b"),
            &crate::products::family_plan("2026-01-01"),
        )
        .await;
    let plan_b = plan_b.json["id"].as_str().unwrap().to_owned();
    let other = register(app, "mut-b", "k3", &household(&plan_b, "B-1", "222233334444")).await;
    assert_eq!(other.status.as_u16(), 201, "{}", other.text);
    let theirs = other.json["members"][2]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let codes = |reply: &Reply| {
        (
            reply.status.as_u16(),
            reply.json["errors"][0]["code"].as_str().unwrap_or_default().to_owned(),
            reply.json["errors"][0]["field"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let expect = |status: u16, code: &str, field: &str| (status, code.to_owned(), field.to_owned());
    let niu = |value: &str| json!({"national_id": {"country": "TG", "type": "NIU", "value": value}});

    // A record with a national id is the one others merge into.
    let with_id = merge(app, &mine, &principal, Some("\"1\""), &json!({"into": record})).await;
    assert_eq!(codes(&with_id), expect(409, "has_national_id", ""));
    // The spouse is a woman born in 1988, the record a man born in 1984.
    let stranger = merge(app, &mine, &record, Some("\"1\""), &json!({"into": spouse})).await;
    assert_eq!(codes(&stranger), expect(409, "identity_mismatch", "/into"));
    let woman = merge(app, &mine, &spouse, Some("\"1\""), &niu("123456789012")).await;
    assert_eq!(codes(&woman), expect(409, "identity_mismatch", "/national_id"));
    // Unknown, not covered by the caller, or itself.
    for into in ["01937f0e-0000-7000-8000-000000000000", theirs.as_str()] {
        let unknown = merge(app, &mine, &record, Some("\"1\""), &json!({"into": into})).await;
        assert_eq!(codes(&unknown), expect(422, "unknown_reference", "/into"));
    }
    let itself = merge(app, &mine, &record, Some("\"1\""), &json!({"into": record})).await;
    assert_eq!(codes(&itself), expect(422, "same_person", "/into"));
    let malformed = merge(app, &mine, &record, Some("\"1\""), &niu("12345")).await;
    assert_eq!(codes(&malformed).0, 422, "{}", malformed.text);
    assert_eq!(codes(&malformed).2, "/national_id/value", "{}", malformed.text);
    let stale = merge(app, &mine, &record, Some("\"7\""), &json!({"into": principal})).await;
    stale.problem(412, "precondition_failed");

    // Nothing was written: both people at their first version, each with its own coverage.
    for id in [&record, &principal, &spouse] {
        let read = app.get(&format!("/v1/beneficiaries/{id}"), &mine).await;
        assert_eq!(read.header("etag"), Some("\"1\""), "{}", read.text);
        assert!(read.json.get("merged_into").is_none());
        let held = app.get(&format!("/v1/coverages?beneficiary={id}"), &mine).await;
        assert_eq!(held.json["items"].as_array().unwrap().len(), 1, "{}", held.text);
    }
    // The two refusals on a national id's holder or sex left a trace naming no one.
    let log = app
        .get("/v1/audit-events?action=beneficiary.identity_mismatch", &app.operator())
        .await;
    let traces = log.json["items"].as_array().unwrap();
    assert_eq!(traces.len(), 2, "{}", log.text);
    assert!(traces.iter().all(|e| e["resource_id"] == ""));
    let merges = app
        .get("/v1/audit-events?action=beneficiary.merged", &app.operator())
        .await;
    assert_eq!(merges.json["items"], json!([]));

    // A national id no one holds is given to the record, as a correction would, and only as
    // one would: not to a record whose coverages by the caller all ended.
    let (ended, ended_coverage) = member_without_id(app, &r.product, "TSV-0009", "k9").await;
    terminate(app, &ended_coverage, "2026-02-28").await;
    let refused = merge(app, &mine, &ended, Some("\"1\""), &niu("5555 6666 7777")).await;
    assert_eq!(codes(&refused), expect(409, "coverage_terminated", ""));
    let given = merge(app, &mine, &record, Some("\"1\""), &niu("5555 6666 7777")).await;
    assert_eq!(given.status.as_u16(), 200, "{}", given.text);
    assert_eq!(given.json["id"], record.as_str());
    assert_eq!(given.json["national_id"]["value"], "555566667777");
    assert_eq!(given.header("etag"), Some("\"2\""));
}

async fn one_mutuelles_two_records_merge_and_their_ceilings_add_up(backend: Backend) {
    let r = registry_with(backend, |c| c.webhook_allow_insecure = true).await;
    let app = &r.app;
    let mine = writer(app, "mut-a");
    let (first, _) = member_without_id(app, &r.product, "TSV-0001", "k1").await;
    let (second, second_coverage) = member_without_id(app, &r.product, "TSV-0002", "k2").await;
    let (receiver, port) = crate::webhooks::receiver().await;
    let subscription = app
        .post(
            "/v1/webhooks",
            &app.token("mut-a", "webhooks:write"),
            &json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["beneficiary.changed", "coverage.changed"]}),
        )
        .await;
    assert_eq!(subscription.status.as_u16(), 201, "{}", subscription.text);
    let token = provider(app);
    let bill =
        |amount: i64| json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": amount}]);
    let a = submit(app, &token, "c1", &claim("EXT-1", &first, "2026-05-01", bill(100_000))).await;
    assert_eq!(a.json["totals"]["complementary_xof"], 100_000, "{}", a.text);
    let b = submit(app, &token, "c2", &claim("EXT-2", &second, "2026-05-02", bill(30_000))).await;
    assert_eq!(b.json["totals"]["complementary_xof"], 30_000, "{}", b.text);

    // Both hold the family plan: one of the two coverages must end first.
    let clash = merge(app, &mine, &second, Some("\"1\""), &json!({"into": first})).await;
    assert_eq!(clash.problem(409, "conflict")["errors"][0]["code"], "already_covered");
    assert_eq!(clash.json["errors"][0]["field"], "", "{}", clash.text);
    terminate(app, &second_coverage, "2026-05-31").await;
    let merged = merge(app, &mine, &second, Some("*"), &json!({"into": first})).await;
    assert_eq!(merged.status.as_u16(), 200, "{}", merged.text);
    assert_eq!(merged.json["id"], first.as_str());

    // The year's usage of both records is the person's: 150 000 - 130 000.
    let after = check(app, json!({"id": first}), "2026-06-01", 10_000).await;
    assert_eq!(
        coverage_of(&after.json, "mut-a").unwrap()["remaining_ceiling_xof"],
        20_000,
        "{}",
        after.text
    );
    // A claim of the record merged away, cancelled, frees its share of the person's ceiling.
    let id = b.json["id"].as_str().unwrap();
    let cancelled = app.post(&format!("/v1/claims/{id}/cancel"), &token, &json!({})).await;
    assert_eq!(cancelled.status.as_u16(), 200, "{}", cancelled.text);
    let freed = check(app, json!({"id": first}), "2026-06-01", 10_000).await;
    assert_eq!(
        coverage_of(&freed.json, "mut-a").unwrap()["remaining_ceiling_xof"],
        50_000,
        "{}",
        freed.text
    );
    // A front desk holding the old id is answered for the person it was merged into, and a
    // claim under the old id is that person's, priced on the same ceiling.
    let old_id = check(app, json!({"id": second}), "2026-06-01", 10_000).await;
    assert_eq!(old_id.json["beneficiary"], first.as_str());
    assert_eq!(old_id.json["coverages"], freed.json["coverages"]);
    let c = submit(app, &token, "c3", &claim("EXT-3", &second, "2026-06-03", bill(60_000))).await;
    assert_eq!(c.status.as_u16(), 201, "{}", c.text);
    assert_eq!(c.json["beneficiary"], first.as_str());
    assert_eq!(c.json["totals"]["complementary_xof"], 50_000, "{}", c.text);

    // The caller's subscription is told: the coverage ended, then moved; the record merged away.
    let got = crate::webhooks::wait_for(&receiver, 3, Duration::from_secs(10)).await;
    let bodies: Vec<Value> = got
        .iter()
        .map(|(_, _, body)| serde_json::from_str(body).unwrap())
        .collect();
    let kinds: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "coverage.changed").count(),
        2,
        "{kinds:?}"
    );
    let person = bodies.iter().find(|b| b["type"] == "beneficiary.changed").unwrap();
    let old = app.get(&format!("/v1/beneficiaries/{second}"), &mine).await;
    assert_eq!(person["data"], old.json, "the record as GET shows it");
    assert_eq!(person["data"]["merged_into"], first.as_str());
    assert_eq!(person["version"], 2);
    // Deliveries may arrive in any order (API.md §5 Webhooks): the move is the one naming the
    // person merged into.
    let moved: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["type"] == "coverage.changed" && b["data"]["beneficiary"] == first.as_str())
        .collect();
    assert_eq!(moved.len(), 1, "{bodies:?}");
    assert_eq!(moved[0]["data"]["id"], second_coverage.as_str());
    assert_eq!(moved[0]["data"]["status"], "terminated");
}

async fn claims_racing_a_merge_count_on_the_persons_ceiling(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mine = writer(app, "mut-a");
    let (record, _) = member_without_id(app, &r.product, "TSV-0001", "k1").await;
    let person = affiliated_by_the_scheme(app, "Agbéko", "1984").await;
    let token = provider(app);
    // Forty claims under the old id, the merge sent among them: each is priced on one record's
    // usage or the other's, and whatever each was counted ends up on the person's.
    let bodies: Vec<Value> = (0..40)
        .map(|i| {
            let lines = json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 5000}]);
            claim(&format!("RACE-{i}"), &record, "2026-06-01", lines)
        })
        .collect();
    let keys: Vec<String> = (0..40).map(|i| format!("race-{i}")).collect();
    let claims = futures::future::join_all(bodies.iter().zip(&keys).map(|(b, k)| submit(app, &token, k, b)));
    let by_niu = json!({"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"}});
    let merged = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        merge(app, &mine, &record, Some("\"1\""), &by_niu).await
    };
    let (replies, merged) = tokio::join!(claims, merged);
    assert_eq!(merged.status.as_u16(), 200, "{}", merged.text);
    let mut counted = 0;
    for reply in &replies {
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        counted += reply.json["totals"]["complementary_xof"].as_i64().unwrap();
    }
    let after = check(app, json!({"id": person}), "2026-06-02", 1000).await;
    let left = coverage_of(&after.json, "mut-a").unwrap()["remaining_ceiling_xof"]
        .as_i64()
        .unwrap();
    assert_eq!(left, 150_000 - counted, "{}", after.text);
    let orphans = app
        .db
        .scalar(&format!(
            "SELECT count(*) FROM ceiling_usage WHERE beneficiary = '{record}'"
        ))
        .await;
    assert_eq!(orphans, 0);
}

/// API.md §3: a stale `If-Match` is 412 before the members of the body are checked, and a
/// missing one 428; a merge takes `If-Match` as `PATCH` does, so a body naming neither `into`
/// nor `national_id` is judged only under the record's current version.
/// A merge whose `into` is merged away by a merge committing under it is told so at `/into`, as
/// when it comes after: the record merged away is not the one merged already.
async fn a_merge_into_a_record_merged_meanwhile_names_it(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let (first, _) = member_without_id(app, &r.product, "TSV-0001", "k1").await;
    let (second, second_coverage) = member_without_id(app, &r.product, "TSV-0002", "k2").await;
    let (third, _) = member_without_id(app, &r.product, "TSV-0003", "k3").await;
    terminate(app, &second_coverage, "2026-05-31").await;
    // `second` merged into `third` (as a merge writes it), while `first` is merged into it.
    let held = format!(
        "UPDATE beneficiaries SET merged_into = '{third}', merged_by = 'mut-a', version = version + 1 WHERE id = '{second}';
         UPDATE coverages SET beneficiary = '{third}', version = version + 1 WHERE beneficiary = '{second}'"
    );
    let body = json!({"into": second});
    let token = writer(app, "mut-a");
    let request = merge(app, &token, &first, Some("\"1\""), &body);
    let (raced, _) = crate::people::while_committing(app, &held, request).await;
    let fault = &raced.problem(409, "conflict")["errors"][0];
    assert_eq!(
        (&fault["field"], &fault["code"]),
        (&json!("/into"), &json!("already_merged")),
        "{}",
        raced.text
    );
    let after = merge(app, &token, &first, Some("\"1\""), &body).await;
    assert_eq!(
        after.json["errors"], raced.json["errors"],
        "the same answer after the race"
    );
}

async fn a_merge_is_told_of_its_if_match_before_its_body(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let (person, _) = member_without_id(app, &r.product, "TSV-0001", "k1").await;
    let token = writer(app, "mut-a");
    let stale = merge(app, &token, &person, Some("\"7\""), &json!({})).await;
    stale.problem(412, "precondition_failed");
    let missing = merge(app, &token, &person, None, &json!({})).await;
    missing.problem(428, "precondition_required");
    let current = merge(app, &token, &person, Some("\"1\""), &json!({})).await;
    let fault = &current.problem(422, "validation_failed")["errors"][0];
    assert_eq!(fault["code"], "ambiguous_person", "{}", current.text);
}

/// What both records used adds up as the claims path adds a claim to the usage: held at the
/// largest amount a record can hold instead of overflowing, so the merge cannot fail on the
/// sum. Care alone cannot get there (millions of claims at the 10^12 XOF limit), so the
/// usages are set in the database.
async fn a_merge_adds_the_usages_without_overflowing(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mine = writer(app, "mut-a");
    let (first, _) = member_without_id(app, &r.product, "TSV-0001", "k1").await;
    let (second, second_coverage) = member_without_id(app, &r.product, "TSV-0002", "k2").await;
    let token = provider(app);
    let bill = json!([{"code": "CONS", "category": "consultation", "quantity": 1, "unit_price_xof": 1_000}]);
    for (key, external, person) in [("c1", "EXT-1", &first), ("c2", "EXT-2", &second)] {
        let claimed = submit(app, &token, key, &claim(external, person, "2026-05-01", bill.clone())).await;
        assert_eq!(claimed.status.as_u16(), 201, "{}", claimed.text);
    }
    terminate(app, &second_coverage, "2026-05-31").await;
    let near_the_top = i64::MAX - 10;
    let set = app
        .db
        .execute(&format!("UPDATE ceiling_usage SET used_xof = {near_the_top}"))
        .await;
    assert_eq!(set, 2, "one usage row for each record");

    let merged = merge(app, &mine, &second, Some("*"), &json!({"into": first})).await;
    assert_eq!(merged.status.as_u16(), 200, "{}", merged.text);
    let usage = |person: &str| format!("SELECT used_xof FROM ceiling_usage WHERE beneficiary = '{person}'");
    assert_eq!(app.db.scalar(&usage(&first)).await, i64::MAX);
    assert_eq!(
        app.count("ceiling_usage").await,
        1,
        "the record merged away keeps no usage"
    );
    let after = check(app, json!({"id": first}), "2026-06-01", 10_000).await;
    assert_eq!(
        coverage_of(&after.json, "mut-a").unwrap()["remaining_ceiling_xof"],
        0,
        "{}",
        after.text
    );
}

on_both_databases!(
    a_merge_adds_the_usages_without_overflowing,
    a_merge_into_a_record_merged_meanwhile_names_it,
    a_merge_is_told_of_its_if_match_before_its_body,
    claims_racing_a_merge_count_on_the_persons_ceiling,
    a_mutuelles_record_merges_into_the_schemes_affiliate,
    a_merge_refuses_what_would_not_be_one_person,
    one_mutuelles_two_records_merge_and_their_ceilings_add_up,
);
