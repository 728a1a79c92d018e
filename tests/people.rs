//! API.md §5 Beneficiaries: `PATCH /v1/beneficiaries/{id}`, a person's names, phone and
//! locality corrected by an organisation that covers them.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::registry::{household, register, registry, writer, Registry};

/// mut-a's household (a principal with a national id, a spouse and a child), registered.
async fn household_of_mut_a(r: &Registry) -> Reply {
    let reply = register(
        &r.app,
        "mut-a",
        "k1",
        &household(&r.product, "TSV-0001", "123456789012"),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    reply
}

/// The person id of a registration's `i`-th member.
fn member(reply: &Reply, i: usize) -> String {
    reply.json["members"][i]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn patch(app: &TestApp, token: &str, person: &str, if_match: Option<&str>, body: &Value) -> Reply {
    let mut request = app
        .request(Method::PATCH, &format!("/v1/beneficiaries/{person}"))
        .bearer_auth(token)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string());
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    app.send(request).await
}

/// The `beneficiary.updated` events of the audit log, as `(organization, resource_id)`.
async fn corrections(app: &TestApp) -> Vec<(String, String)> {
    let events = app.get("/v1/audit-events?limit=500", &app.operator()).await;
    events.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "beneficiary.updated")
        .map(|e| {
            (
                e["organization"].as_str().unwrap().to_owned(),
                e["resource_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn a_person_is_corrected_by_whoever_covers_them(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let person = member(&reply, 0);
    let path = format!("/v1/beneficiaries/{person}");
    let mine = writer(app, "mut-a");

    let read = app.get(&path, &mine).await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    patch(app, &mine, &person, None, &json!({"given_names": "Kossi Mawuli"}))
        .await
        .problem(428, "precondition_required");

    // Names keep their accents, the phone is normalised, one locality part is merged in.
    let fixed = patch(
        app,
        &mine,
        &person,
        Some("\"1\""),
        &json!({"family_name": "Agbékö", "given_names": "Kossi Mawuli", "phone": "+228 91-23.45.67",
                "locality": {"commune": "Zio 2"}}),
    )
    .await;
    assert_eq!(fixed.status.as_u16(), 200, "{}", fixed.text);
    assert_eq!(fixed.header("etag"), Some("\"2\""));
    let again = app.get(&path, &mine).await;
    assert_eq!(again.header("etag"), Some("\"2\""));
    assert_eq!(again.json, fixed.json);
    assert_eq!(again.json["family_name"], "Agbékö");
    assert_eq!(again.json["given_names"], "Kossi Mawuli");
    assert_eq!(again.json["phone"], "+22891234567");
    assert_eq!(
        again.json["locality"],
        json!({"region": "Maritime", "district": "Zio", "commune": "Zio 2"})
    );
    // Identity is untouched.
    for field in ["national_id", "sex", "birth_date", "birth_date_precision"] {
        assert_eq!(again.json[field], read.json[field], "{field}");
    }
    assert_eq!(corrections(app).await, vec![("mut-a".to_owned(), person.clone())]);
    // No personal data in the event: the corrected values appear nowhere in the log.
    let log = app.get("/v1/audit-events?limit=500", &app.operator()).await;
    for value in ["Mawuli", "Agbékö", "91234567", "Zio 2"] {
        assert!(!log.text.contains(value), "{value} in the audit log");
    }

    // The old tag is stale; `null` removes the phone and the locality.
    patch(app, &mine, &person, Some("\"1\""), &json!({"phone": null}))
        .await
        .problem(412, "precondition_failed");
    let removed = patch(
        app,
        &mine,
        &person,
        Some("\"2\""),
        &json!({"phone": null, "locality": null}),
    )
    .await;
    assert_eq!(removed.status.as_u16(), 200, "{}", removed.text);
    assert!(removed.json.get("phone").is_none() && removed.json.get("locality").is_none());
    assert_eq!(removed.header("etag"), Some("\"3\""));

    // Sending back what was read changes nothing, writes nothing and keeps the tag.
    let events = app.audited().await;
    let mut whole = removed.json.clone();
    whole.as_object_mut().unwrap().remove("id");
    let same = patch(app, &mine, &person, Some("\"3\""), &whole).await;
    assert_eq!(same.status.as_u16(), 200, "{}", same.text);
    assert_eq!(same.header("etag"), Some("\"3\""));
    assert_eq!(app.audited().await, events);

    // Another mutuelle that covers the same person (matched by national id) corrects them too,
    // and the first sees it.
    let product_b = app
        .post(
            "/v1/products",
            &writer(app, "mut-b"),
            &crate::products::family_plan("2026-01-01"),
        )
        .await;
    let product_b = product_b.json["id"].as_str().unwrap();
    let mut theirs = household(product_b, "B-1", "123456789012");
    theirs["dependants"] = json!([]);
    let joined = register(app, "mut-b", "k2", &theirs).await;
    assert_eq!(joined.status.as_u16(), 201, "{}", joined.text);
    assert_eq!(joined.json["members"][0]["beneficiary"]["id"], person.as_str());
    let by_b = patch(
        app,
        &writer(app, "mut-b"),
        &person,
        Some("*"),
        &json!({"given_names": "Kossi"}),
    )
    .await;
    assert_eq!(by_b.status.as_u16(), 200, "{}", by_b.text);
    assert_eq!(app.get(&path, &mine).await.json["given_names"], "Kossi");
    assert_eq!(app.get(&path, &mine).await.header("etag"), Some("\"4\""));
    // FHIR serves the person as corrected.
    let patient = app.get(&format!("/fhir/r4/Patient/{person}"), &mine).await;
    assert_eq!(patient.status.as_u16(), 200, "{}", patient.text);
    assert_eq!(
        patient.json["name"],
        json!([{"use": "official", "family": "Agbékö", "given": ["Kossi"]}])
    );
    assert!(patient.json.get("telecom").is_none(), "{}", patient.text);
}

/// Corrections sent with `If-Match: *` at once are all applied, one version each: as many
/// writers on one person as a change has tries (each try is lost only to another's commit).
async fn corrections_under_any_version_build_on_each_other(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let person = member(&reply, 0);
    let mine = writer(app, "mut-a");
    let bodies: Vec<Value> = (0..10).map(|i| json!({"phone": format!("+228900000{i:02}")})).collect();
    let replies =
        futures::future::join_all(bodies.iter().map(|body| patch(app, &mine, &person, Some("*"), body))).await;
    let mut tags: Vec<u32> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
            reply.header("etag").unwrap().trim_matches('"').parse().unwrap()
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, (2..=11).collect::<Vec<u32>>());
    let read = app.get(&format!("/v1/beneficiaries/{person}"), &mine).await;
    let last = replies.iter().find(|r| r.header("etag") == Some("\"11\"")).unwrap();
    assert_eq!(read.json["phone"], last.json["phone"]);
    assert_eq!(corrections(app).await.len(), 10);
}

/// The 422's faults, in any order, are exactly these `(field, code)` pairs (sorted by field).
fn assert_faults(reply: &Reply, expected: &[(&str, &str)]) {
    let mut found = reply.field_codes();
    found.sort();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(found, expected, "{}", reply.text);
}

async fn only_names_phone_and_locality_change(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let person = member(&reply, 0);
    let spouse = member(&reply, 1);
    let mine = writer(app, "mut-a");
    let before = app.count("beneficiaries").await;
    let events = app.audited().await;

    let wrong = patch(
        app,
        &mine,
        &person,
        Some("*"),
        &json!({"sex": "F", "birth_date": "1985-03-12", "national_id": {"country": "TG", "type": "NIU", "value": "123456789013"},
                "member_number": "X", "family_name": null, "given_names": 5, "phone": "12",
                "locality": {"region": null, "quartier": "Adidogomé"}}),
    )
    .await;
    assert_faults(
        &wrong,
        &[
            ("/birth_date", "not_changeable"),
            ("/family_name", "required"),
            ("/given_names", "invalid_type"),
            ("/locality/quartier", "unknown_field"),
            ("/locality/region", "incomplete_locality"),
            ("/member_number", "unknown_field"),
            ("/national_id", "not_changeable"),
            ("/phone", "invalid_phone"),
            ("/sex", "not_changeable"),
        ],
    );
    // Each corrected field is judged as at registration.
    let bad = patch(
        app,
        &mine,
        &person,
        Some("*"),
        &json!({"family_name": "AgbÃ©ko", "given_names": "  ", "phone": "90123456",
                "locality": {"region": null}}),
    )
    .await;
    assert_eq!(
        bad.field_codes(),
        [
            ("/family_name", "garbled_characters"),
            ("/given_names", "empty"),
            ("/phone", "invalid_phone"),
            ("/locality/region", "incomplete_locality"),
        ]
        .map(|(f, c)| (f.to_owned(), c.to_owned()))
        .to_vec(),
        "{}",
        bad.text
    );
    let long = patch(app, &mine, &spouse, Some("*"), &json!({"given_names": "é".repeat(101)})).await;
    assert_eq!(
        long.field_codes(),
        vec![("/given_names".to_owned(), "too_long".to_owned())]
    );
    // A year-only birth date stays as it is through a correction.
    let spouse_fixed = patch(app, &mine, &spouse, Some("*"), &json!({"given_names": "Akossiwa"})).await;
    assert_eq!(spouse_fixed.status.as_u16(), 200, "{}", spouse_fixed.text);
    assert_eq!(spouse_fixed.json["birth_date"], "1988-01-01");
    assert_eq!(spouse_fixed.json["birth_date_precision"], "year");
    // Likely matches are judged on the corrected names.
    let lookalike = json!({
        "product": r.product, "member_number": "TSV-0002", "start_date": "2026-01-01",
        "principal": {"family_name": "AGBEKO", "given_names": "akossiwa", "sex": "F", "birth_date": "1988"},
    });
    let twin = register(app, "mut-a", "k2", &lookalike).await;
    assert_eq!(twin.status.as_u16(), 201, "{}", twin.text);
    assert_eq!(twin.json["members"][0]["possible_duplicates"], json!([spouse]));

    // A JSON Patch is not a merge patch.
    let json_patch = app
        .send(
            app.request(Method::PATCH, &format!("/v1/beneficiaries/{person}"))
                .bearer_auth(&mine)
                .header("if-match", "*")
                .header("content-type", "application/json-patch+json")
                .body(r#"[{"op": "replace", "path": "/given_names", "value": "X"}]"#),
        )
        .await;
    json_patch.problem(415, "unsupported_media_type");
    assert_eq!(json_patch.header("accept-patch"), Some("application/merge-patch+json"));

    let person_now = app.get(&format!("/v1/beneficiaries/{person}"), &mine).await;
    assert_eq!(person_now.header("etag"), Some("\"1\""));
    assert_eq!(person_now.json["given_names"], "Kossi");
    // The spouse's correction and the look-alike's registration are all that was written.
    assert_eq!(app.count("beneficiaries").await, before + 1);
    assert_eq!(app.audited().await, events + 3);
}

/// Identity members sent back as registration reads them change nothing; a locality merged down
/// to no part is removed, as `null` removes it; a member that does not read is reported once.
async fn identity_as_registered_and_emptied_localities(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let (person, spouse) = (member(&reply, 0), member(&reply, 1));
    let mine = writer(app, "mut-a");
    let events = app.audited().await;
    // The spouse was registered as born in 1988 (year only); the principal on 1984-03-12.
    for (who, body) in [
        (&spouse, json!({"birth_date": "1988"})),
        (&spouse, json!({"birth_date": "1988", "birth_date_precision": "year"})),
        (
            &spouse,
            json!({"birth_date": "1988-01-01", "birth_date_precision": " year "}),
        ),
        (&person, json!({"sex": " M ", "birth_date": " 1984-03-12 "})),
        (&person, json!({"id": format!(" {person} ")})),
        (&person, json!({"version": 1})),
    ] {
        let same = patch(app, &mine, who, Some("*"), &body).await;
        assert_eq!(same.status.as_u16(), 200, "{body}: {}", same.text);
        assert_eq!(same.header("etag"), Some("\"1\""), "{body}");
    }
    for (body, at) in [
        (json!({"birth_date": "1989"}), "/birth_date"),
        (json!({"birth_date": "1988-06-01"}), "/birth_date"),
        (json!({"birth_date_precision": "day"}), "/birth_date_precision"),
        (json!({"sex": "M"}), "/sex"),
        (json!({"sex": 1}), "/sex"),
        // A read older or newer than the person: sent back, it would undo a correction.
        (json!({"version": 2}), "/version"),
        (json!({"version": "1"}), "/version"),
    ] {
        let changed = patch(app, &mine, &spouse, Some("*"), &body).await;
        assert_eq!(
            changed.field_codes(),
            vec![(at.to_owned(), "not_changeable".to_owned())],
            "{body}: {}",
            changed.text
        );
    }
    // A year alone reads as a year-only birth date, not the principal's day.
    let year_only = patch(app, &mine, &person, Some("*"), &json!({"birth_date": "1984"})).await;
    assert_eq!(
        year_only.field_codes(),
        vec![("/birth_date".to_owned(), "not_changeable".to_owned())],
        "{}",
        year_only.text
    );
    assert_eq!(app.audited().await, events, "nothing written");

    // Every part removed is the locality removed; on the spouse, who has none, nothing at all.
    let parts = json!({"locality": {"region": null, "district": null, "commune": null}});
    let removed = patch(app, &mine, &person, Some("\"1\""), &parts).await;
    assert_eq!(removed.status.as_u16(), 200, "{}", removed.text);
    assert_eq!(removed.header("etag"), Some("\"2\""));
    assert!(removed.json.get("locality").is_none(), "{}", removed.text);
    for body in [parts, json!({"locality": {}})] {
        let none = patch(app, &mine, &spouse, Some("\"1\""), &body).await;
        assert_eq!(none.status.as_u16(), 200, "{body}: {}", none.text);
        assert_eq!(none.header("etag"), Some("\"1\""), "{body}");
    }
    // A part of the wrong type is reported as such, not again as the locality's missing part;
    // faults of the members that did read are listed beside it.
    let mixed = patch(
        app,
        &mine,
        &person,
        Some("*"),
        &json!({"locality": {"region": 5, "district": "Zio", "commune": "Zio 1"}, "given_names": "", "phone": 5}),
    )
    .await;
    assert_faults(
        &mixed,
        &[
            ("/given_names", "empty"),
            ("/locality/region", "invalid_type"),
            ("/phone", "invalid_type"),
        ],
    );
}

async fn no_one_else_corrects_a_person(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let person = member(&reply, 0);
    let body = json!({"phone": null});
    // Another mutuelle and a scheme that do not cover the person: 404, as for an unknown id.
    for token in [writer(app, "mut-b"), writer(app, "tg-inam")] {
        patch(app, &token, &person, Some("*"), &body)
            .await
            .problem(404, "not_found");
        patch(app, &token, "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", Some("*"), &body)
            .await
            .problem(404, "not_found");
    }
    // Providers, auditors and operators read but do not correct; a reader's token neither.
    for token in [
        app.token("cms-a", "registry:read registry:write"),
        app.token("audit-x", "registry:read registry:write"),
        app.token("operator", "admin registry:read registry:write"),
        app.token("mut-a", "registry:read"),
    ] {
        patch(app, &token, &person, Some("*"), &body)
            .await
            .problem(403, "forbidden");
    }
    let read = app
        .get(&format!("/v1/beneficiaries/{person}"), &writer(app, "mut-a"))
        .await;
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.json["phone"], "+22890123456");
    assert!(corrections(app).await.is_empty());
}

/// An organisation whose coverages of a person are all terminated still reads them (its claims
/// and history name them) but no longer corrects them.
async fn an_organisation_whose_coverage_ended_no_longer_corrects(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let person = member(&reply, 0);
    // mut-b enrols the same principal, matched by national id.
    let theirs = writer(app, "mut-b");
    let plan_b = app
        .post("/v1/products", &theirs, &crate::products::family_plan("2026-01-01"))
        .await;
    let mut alone = household(plan_b.json["id"].as_str().unwrap(), "B-1", "123456789012");
    alone["dependants"] = json!([]);
    let joined = register(app, "mut-b", "kb", &alone).await;
    assert_eq!(joined.status.as_u16(), 201, "{}", joined.text);
    assert_eq!(joined.json["members"][0]["beneficiary"]["id"], person.as_str());
    let coverage = joined.json["members"][0]["coverage"]["id"].as_str().unwrap().to_owned();
    let fixed = patch(
        app,
        &theirs,
        &person,
        Some("\"1\""),
        &json!({"given_names": "Kossi Mawuli"}),
    )
    .await;
    assert_eq!(fixed.status.as_u16(), 200, "{}", fixed.text);

    let ended = app
        .send(
            app.request(Method::PATCH, &format!("/v1/coverages/{coverage}"))
                .bearer_auth(&theirs)
                .header("if-match", "\"1\"")
                .json(&json!({"status": "terminated"})),
        )
        .await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
    let refused = patch(app, &theirs, &person, Some("\"2\""), &json!({"phone": null})).await;
    refused.problem(409, "conflict");
    assert_eq!(
        refused.json["errors"][0]["code"], "coverage_terminated",
        "{}",
        refused.text
    );
    let read = app.get(&format!("/v1/beneficiaries/{person}"), &theirs).await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    assert_eq!(read.header("etag"), Some("\"2\""));
    assert_eq!(read.json["phone"], "+22890123456", "nothing written");
    // The mutuelle that still covers the person corrects on.
    let mine = patch(
        app,
        &writer(app, "mut-a"),
        &person,
        Some("\"2\""),
        &json!({"phone": null}),
    )
    .await;
    assert_eq!(mine.status.as_u16(), 200, "{}", mine.text);
    assert_eq!(
        corrections(app).await,
        [("mut-a".to_owned(), person.clone()), ("mut-b".to_owned(), person)],
        "newest first: the refusal wrote nothing"
    );

    // A household whose principal was terminated before a termination ended the dependants'
    // coverages with it: the spouse's row still says active, but eligibility reads it as
    // terminated, and so does the right to correct.
    let spouse = reply.json["members"][1]["beneficiary"]["id"].as_str().unwrap();
    let principal_coverage = reply.json["members"][0]["coverage"]["id"].as_str().unwrap();
    let ended = app
        .db
        .execute(&format!(
            "UPDATE coverages SET status = 'terminated', end_date = start_date WHERE id = '{principal_coverage}'"
        ))
        .await;
    assert_eq!(ended, 1);
    let legacy = patch(
        app,
        &writer(app, "mut-a"),
        spouse,
        Some("\"1\""),
        &json!({"phone": "+22891234567"}),
    )
    .await;
    legacy.problem(409, "conflict");
    assert_eq!(
        legacy.json["errors"][0]["code"], "coverage_terminated",
        "{}",
        legacy.text
    );
}

/// A file posted again is compared with the registry's names as they stand (API.md §5).
async fn a_file_posted_again_meets_the_corrected_names(backend: Backend) {
    use crate::batches::{codes, counts, csv, run, CSV, GOOD};
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    // The household as registered by hand, then the mutuelle's spreadsheet that lists it.
    let reply = register(app, "mut-a", "k0", &household(&r.product, "TSV-1001", "123456789012")).await;
    let spouse = member(&reply, 1);
    let job = run(app, "mut-a", "k1", &query, CSV, csv(&GOOD)).await;
    assert_eq!(counts(&job), [4, 1, 1, 0, 0], "{job}");
    let fixed = patch(
        app,
        &writer(app, "mut-a"),
        &spouse,
        Some("\"1\""),
        &json!({"given_names": "Akossiwa"}),
    )
    .await;
    assert_eq!(fixed.status.as_u16(), 200, "{}", fixed.text);
    // The old spelling is no longer the registry's: its row is reported, nothing is added.
    let job = run(app, "mut-a", "k2", &query, CSV, csv(&GOOD)).await;
    assert_eq!(
        codes(&job),
        [(3, String::new(), "not_in_household".to_owned())],
        "{job}"
    );
    assert_eq!(app.count("beneficiaries").await, 4);
    // The corrected spreadsheet is registered already.
    let corrected = GOOD.map(|row| row.replace("Akossiwa Élise", "Akossiwa"));
    let corrected: Vec<&str> = corrected.iter().map(String::as_str).collect();
    let job = run(app, "mut-a", "k3", &query, CSV, csv(&corrected)).await;
    assert_eq!(counts(&job), [4, 0, 2, 0, 0], "{job}");
    assert_eq!(app.count("beneficiaries").await, 4);
}

/// A person registered without papers gets their national id later, by which a scheme's base
/// affiliation then finds them (API.md §5 Beneficiaries).
async fn a_national_id_is_added_to_a_person_registered_without_one(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let spouse = member(&reply, 1);
    let child = member(&reply, 2);
    let mine = writer(app, "mut-a");

    // Malformed ones are told as at registration; nothing is written.
    let bad = patch(
        app,
        &mine,
        &spouse,
        Some("*"),
        &json!({"national_id": {"country": "TG", "type": "NIU", "value": "12"}}),
    )
    .await;
    assert_eq!(
        bad.field_codes(),
        vec![("/national_id/value".to_owned(), "invalid_national_id".to_owned())]
    );
    let partial = patch(
        app,
        &mine,
        &spouse,
        Some("*"),
        &json!({"national_id": {"country": "TG", "kind": "NIU"}}),
    )
    .await;
    let mut found = partial.field_codes();
    found.sort();
    assert_eq!(
        found,
        [
            ("/national_id/kind", "unknown_field"),
            ("/national_id/type", "required"),
            ("/national_id/value", "required")
        ]
        .map(|(f, c)| (f.to_owned(), c.to_owned()))
        .to_vec()
    );
    let compact = patch(
        app,
        &mine,
        &spouse,
        Some("*"),
        &json!({"national_id": "TG:NIU:222233334444"}),
    )
    .await;
    assert_eq!(
        compact.field_codes(),
        vec![("/national_id".to_owned(), "invalid_type".to_owned())]
    );
    // Another person's is refused, and the records are not merged.
    let taken = patch(
        app,
        &mine,
        &child,
        Some("\"1\""),
        &json!({"national_id": {"country": "TG", "type": "NIU", "value": "123456789012"}}),
    )
    .await;
    assert_eq!(taken.problem(409, "conflict")["errors"][0]["code"], "national_id_taken");
    assert_eq!(taken.json["errors"][0]["field"], "/national_id");
    assert!(!taken.text.contains("Kossi"), "{}", taken.text);
    // The refusal says the id is registered: it leaves a trace naming the caller's own person.
    let log = app.get("/v1/audit-events?limit=500", &app.operator()).await;
    let traces: Vec<&Value> = log.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "beneficiary.national_id_taken")
        .collect();
    assert_eq!(traces.len(), 1, "{}", log.text);
    assert_eq!(
        (&traces[0]["organization"], &traces[0]["resource_id"]),
        (&json!("mut-a"), &json!(child))
    );
    let unchanged = app.get(&format!("/v1/beneficiaries/{child}"), &mine).await;
    assert_eq!(unchanged.header("etag"), Some("\"1\""));
    assert!(unchanged.json.get("national_id").is_none());

    let added = patch(
        app,
        &mine,
        &spouse,
        Some("\"1\""),
        &json!({"national_id": {"country": "tg", "type": "niu", "value": "2222 3333-4444"}}),
    )
    .await;
    assert_eq!(added.status.as_u16(), 200, "{}", added.text);
    assert_eq!(
        added.json["national_id"],
        json!({"country": "TG", "type": "NIU", "value": "222233334444"})
    );
    assert_eq!(added.header("etag"), Some("\"2\""));
    // Sent again in another spelling it changes nothing; another value is not a correction.
    let again = patch(
        app,
        &mine,
        &spouse,
        Some("*"),
        &json!({"national_id": {"country": "TG", "type": "NIU", "value": "222233334444"}}),
    )
    .await;
    assert_eq!(again.header("etag"), Some("\"2\""), "{}", again.text);
    let other = patch(
        app,
        &mine,
        &spouse,
        Some("*"),
        &json!({"national_id": {"country": "TG", "type": "NIU", "value": "222233334445"}}),
    )
    .await;
    assert_eq!(
        other.field_codes(),
        vec![("/national_id".to_owned(), "not_changeable".to_owned())]
    );

    // The scheme affiliates her by that id: the same person, not a new one.
    let inam = writer(app, "tg-inam");
    let base = app.create_base_product(&inam).await;
    let people = app.count("beneficiaries").await;
    let affiliated = app
        .post(
            "/v1/coverages",
            &inam,
            &json!({"product": base, "member_number": "INAM-0001", "start_date": "2025-01-01",
                "beneficiary": {"national_id": {"country": "TG", "type": "NIU", "value": "222233334444"},
                    "family_name": "Agbéko", "given_names": "Akossiwa", "sex": "F", "birth_date": "1988"}}),
        )
        .await;
    assert_eq!(affiliated.status.as_u16(), 201, "{}", affiliated.text);
    assert_eq!(affiliated.json["beneficiary"], spouse.as_str());
    assert_eq!(affiliated.json["matched"], true);
    assert_eq!(app.count("beneficiaries").await, people);
}

/// A household registered without a national id, given one since: the spreadsheet that does
/// not know it is still the same household, and so is one that does.
async fn a_file_without_the_national_id_added_since_still_skips_its_household(backend: Backend) {
    use crate::batches::{codes, counts, csv, run, CSV};
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let without = csv(&["H1,principal,P-1,Dossou,Komi,M,1980,,,Maritime,Zio,Zio 1,2026-01-01,2026-12-31"]);
    let with =
        csv(&["H1,principal,P-1,Dossou,Komi,M,1980,TG:NIU:555566667777,,Maritime,Zio,Zio 1,2026-01-01,2026-12-31"]);
    assert_eq!(
        counts(&run(app, "mut-a", "k1", &query, CSV, without.clone()).await),
        [1, 1, 0, 0, 0]
    );
    // A file that gives the household's holder an id the registry lacks is not taken for them.
    let refused = run(app, "mut-a", "k2", &query, CSV, with.clone()).await;
    assert_eq!(
        codes(&refused),
        [(2, "member_number".to_owned(), "member_number_taken".to_owned())]
    );
    // The id is recorded by a correction; then either file is the same household, skipped.
    let check = app
        .post(
            "/v1/eligibility-checks",
            &app.token("mut-a", "eligibility:check"),
            &json!({"beneficiary": {"organization": "mut-a", "member_number": "P-1"}, "service_date": "2026-06-01",
                    "care_level": "health_center"}),
        )
        .await;
    let person = check.json["beneficiary"].as_str().expect(&check.text).to_owned();
    let added = patch(
        app,
        &writer(app, "mut-a"),
        &person,
        Some("\"1\""),
        &json!({"national_id": {"country": "TG", "type": "NIU", "value": "555566667777"}}),
    )
    .await;
    assert_eq!(added.status.as_u16(), 200, "{}", added.text);
    for (key, file) in [("k3", without), ("k4", with)] {
        let job = run(app, "mut-a", key, &query, CSV, file).await;
        assert_eq!(counts(&job), [1, 0, 1, 0, 0], "{job}");
    }
    assert_eq!(app.count("beneficiaries").await, 1);
}

/// A copy held is read again only once the person is corrected.
async fn a_copy_of_a_person_is_read_again_once_corrected(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let person = member(&reply, 0);
    let mine = writer(app, "mut-a");
    let conditional = |tag: &'static str, header: &'static str| {
        let request = app
            .request(Method::GET, &format!("/v1/beneficiaries/{person}"))
            .bearer_auth(&mine)
            .header(header, tag);
        app.send(request)
    };
    let unchanged = conditional("\"1\"", "if-none-match").await;
    assert_eq!(unchanged.status.as_u16(), 304);
    assert_eq!(unchanged.header("etag"), Some("\"1\""));
    assert!(unchanged.text.is_empty());
    let fixed = patch(
        app,
        &mine,
        &person,
        Some("\"1\""),
        &json!({"given_names": "Kossi Mawuli"}),
    )
    .await;
    assert_eq!(fixed.status.as_u16(), 200, "{}", fixed.text);
    let changed = conditional("\"1\"", "if-none-match").await;
    assert_eq!(changed.status.as_u16(), 200);
    assert_eq!(changed.json["given_names"], "Kossi Mawuli");
    conditional("\"1\"", "if-match")
        .await
        .problem(412, "precondition_failed");
}

/// Runs `held` in a write transaction of the test's own, sends `request` while it is open, and
/// commits 300 ms later: the request meets a change committing under it. Returns its answer and
/// the rows `held` changed.
pub async fn while_committing<F: std::future::Future<Output = Reply>>(
    app: &TestApp,
    held: &str,
    request: F,
) -> (Reply, u64) {
    use sqlx::Connection;
    let commit_later = || tokio::time::sleep(std::time::Duration::from_millis(300));
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            let rows = sqlx::raw_sql(&format!("BEGIN IMMEDIATE; {held}"))
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected();
            let commit = async {
                commit_later().await;
                sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
            };
            (tokio::join!(request, commit).0, rows)
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            let rows = sqlx::raw_sql(&format!("BEGIN; {held}"))
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected();
            let commit = async {
                commit_later().await;
                sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
            };
            (tokio::join!(request, commit).0, rows)
        }
    }
}

/// A correction that passed its checks while a termination of the caller's last coverage was
/// committing is refused once that termination has committed: the caller no longer covers the
/// person when the correction would commit (API.md §5 Beneficiaries). One that met a merge of
/// the record committing is told the record changed (412), not that its coverages ended.
async fn a_correction_meeting_a_termination_in_flight_is_refused(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let reply = household_of_mut_a(&r).await;
    let person = member(&reply, 0);
    let token = writer(app, "mut-a");
    let body = json!({"given_names": "Kossi Mawuli"});
    let terminate =
        format!("UPDATE coverages SET status = 'terminated', version = version + 1 WHERE beneficiary = '{person}'");
    let correct = patch(app, &token, &person, Some("\"1\""), &body);
    let (refused, terminated) = while_committing(app, &terminate, correct).await;
    assert_eq!(terminated, 1);
    refused.problem(409, "conflict");
    assert_eq!(
        refused.json["errors"][0]["code"], "coverage_terminated",
        "{}",
        refused.text
    );
    let read = app.get(&format!("/v1/beneficiaries/{person}"), &token).await;
    assert_eq!(read.header("etag"), Some("\"1\""), "nothing written");
    assert_eq!(read.json["given_names"], "Kossi");

    // Another household's spouse merged into the first principal meanwhile (as a merge writes
    // it: the record one version more, its coverages moved away).
    let other = register(app, "mut-a", "k2", &household(&r.product, "TSV-0002", "223456789012")).await;
    assert_eq!(other.status.as_u16(), 201, "{}", other.text);
    let spouse = member(&other, 1);
    let merge = format!(
        "UPDATE beneficiaries SET merged_into = '{person}', merged_by = 'mut-a', version = version + 1 WHERE id = '{spouse}';
         UPDATE coverages SET beneficiary = '{person}', version = version + 1 WHERE beneficiary = '{spouse}'"
    );
    let correct = patch(app, &token, &spouse, Some("\"1\""), &body);
    let (stale, _) = while_committing(app, &merge, correct).await;
    stale.problem(412, "precondition_failed");
}

on_both_databases!(
    a_correction_meeting_a_termination_in_flight_is_refused,
    a_person_is_corrected_by_whoever_covers_them,
    only_names_phone_and_locality_change,
    identity_as_registered_and_emptied_localities,
    no_one_else_corrects_a_person,
    an_organisation_whose_coverage_ended_no_longer_corrects,
    a_copy_of_a_person_is_read_again_once_corrected,
    a_file_posted_again_meets_the_corrected_names,
    a_national_id_is_added_to_a_person_registered_without_one,
    corrections_under_any_version_build_on_each_other,
    a_file_without_the_national_id_added_since_still_skips_its_household,
);
