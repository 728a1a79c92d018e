//! API.md §7: the FHIR R4 façade gives the same answers as `/v1`, as FHIR resources, and
//! refuses the same things, as OperationOutcome.

use passerelle_adapters::Backend;
use passerelle_tests::{conformance, on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::claims::{provider, setup};

const FHIR: &str = "application/fhir+json; fhirVersion=4.0";

async fn fhir_post(app: &TestApp, path: &str, token: &str, key: Option<&str>, body: &Value) -> Reply {
    let mut request = app
        .request(Method::POST, path)
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let reply = app.send(request).await;
    // Whatever the façade takes, the document's schema of the request takes too, its nulls
    // left out as the façade reads them (FHIR JSON has none; the schemas say so).
    if reply.status.is_success() {
        if let Err(fault) = conformance::check_at(&request_schema(path), &without_nulls(body)) {
            panic!("{path} took a body its documented schema refuses: {fault}");
        }
    }
    reply
}

/// A body with every member whose value is null left out, at any depth.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The JSON Pointer of the documented schema of a FHIR resource POSTed to `path`.
fn request_schema(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path).replace('/', "~1");
    format!("/paths/{path}/post/requestBody/content/application~1fhir+json/schema")
}

/// The issues of an OperationOutcome with this status: `(code, expression or "")`.
/// The `next` link of a searchset Bundle, an absolute URL, as a path of this service.
fn next_link(reply: &Reply) -> String {
    let url = reply.json["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url.find("/fhir/").map(|i| url[i..].to_owned());
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    path.unwrap()
}

fn issues(reply: &Reply, status: u16) -> Vec<(String, String)> {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some(FHIR), "{}", reply.text);
    assert_eq!(reply.json["resourceType"], "OperationOutcome", "{}", reply.text);
    reply.json["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert!(i["diagnostics"].as_str().unwrap().starts_with("request_id: "), "{i}");
            let at = i["expression"][0].as_str().unwrap_or("").to_owned();
            (i["code"].as_str().unwrap().to_owned(), at)
        })
        .collect()
}

fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// The benefit of one type in an insurance's item.
fn benefit<'a>(insurance: &'a Value, code: &str) -> &'a Value {
    insurance["item"][0]["benefit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"]["coding"][0]["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {insurance}"))
}

fn insurance_of<'a>(response: &'a Value, payer: &str, coverages: &Value) -> &'a Value {
    let coverage = coverages["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["organization"] == payer)
        .unwrap();
    let reference = format!("Coverage/{}", coverage["id"].as_str().unwrap());
    response["insurance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["coverage"]["reference"] == reference.as_str())
        .unwrap_or_else(|| panic!("no {reference} in {response}"))
}

async fn people_and_coverages_read_as_fhir(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let metadata = app.send(app.request(Method::GET, "/fhir/r4/metadata")).await;
    assert_eq!(metadata.status.as_u16(), 200, "{}", metadata.text);
    assert_eq!(metadata.header("content-type"), Some(FHIR));
    assert_eq!(metadata.json["resourceType"], "CapabilityStatement");
    assert_eq!(metadata.json["fhirVersion"], "4.0.1");
    // The reads that send a version ETag and answer If-None-Match say so.
    for resource in metadata.json["rest"][0]["resource"].as_array().unwrap() {
        let read = resource["interaction"]
            .as_array()
            .unwrap()
            .contains(&json!({"code": "read"}));
        let expected = if read { json!("not-match") } else { Value::Null };
        assert_eq!(resource["conditionalRead"], expected, "{resource}");
    }
    // R4's content negotiation: a format or FHIR version it does not write is 406, in FHIR,
    // whether asked by Accept or by _format; JSON and any type are answered.
    for (accept, path, status) in [
        ("application/fhir+xml", "/fhir/r4/metadata", 406),
        ("application/fhir+json; fhirVersion=3.0", "/fhir/r4/metadata", 406),
        ("*/*", "/fhir/r4/metadata?_format=xml", 406),
        ("application/json", "/fhir/r4/metadata", 200),
        ("text/html, application/fhir+json;q=0.5", "/fhir/r4/metadata", 200),
        ("application/xml", "/fhir/r4/metadata?_format=json", 200),
        (
            "*/*",
            "/fhir/r4/metadata?_format=application/fhir%2Bjson;fhirVersion=4.0",
            200,
        ),
        // `+` left unencoded, as FHIR's pages write the type, is not read as a space.
        ("*/*", "/fhir/r4/metadata?_format=application/fhir+json", 200),
        ("*/*", "/fhir/r4/metadata?_format=application/fhir+xml", 406),
        ("*/*", "/fhir/r4/metadata?_format=json&_format=xml", 406),
        ("*/*", "/fhir/r4/metadata?%5Fformat=xml", 406),
    ] {
        let reply = app.send(app.request(Method::GET, path).header("accept", accept)).await;
        assert_eq!(reply.status.as_u16(), status, "{accept} {path}: {}", reply.text);
        if status == 406 {
            assert_eq!(reply.json["resourceType"], "OperationOutcome", "{}", reply.text);
            assert_eq!(reply.json["issue"][0]["code"], "not-supported", "{}", reply.text);
        }
    }
    // Two Accept lines are one list: JSON on either will do.
    let two_lines = app
        .send(
            app.request(Method::GET, "/fhir/r4/metadata")
                .header("accept", "application/fhir+xml")
                .header("accept", "application/fhir+json"),
        )
        .await;
    assert_eq!(two_lines.status.as_u16(), 200, "{}", two_lines.text);

    let mut_a = app.token("mut-a", "registry:read");
    let patient = app.get(&format!("/fhir/r4/Patient/{}", s.principal), &mut_a).await;
    assert_eq!(patient.status.as_u16(), 200, "{}", patient.text);
    assert_eq!(patient.header("content-type"), Some(FHIR));
    assert_eq!(patient.json["id"], s.principal.as_str());
    assert_eq!(
        patient.json["identifier"],
        json!([{"system": "urn:passerelle:national-id:TG:NIU", "value": "123456789012"}])
    );
    assert_eq!(patient.json["gender"], "male");
    assert_eq!(patient.json["meta"], json!({"versionId": "1"}), "the person's version");
    // The version as R4's weak ETag; a copy of it is current.
    assert_eq!(patient.header("etag"), Some("W/\"1\""));
    for (tag, status) in [("W/\"1\"", 304), ("\"1\"", 304), ("W/\"0\", *", 304), ("W/\"2\"", 200)] {
        let cached = app
            .send(
                app.request(Method::GET, &format!("/fhir/r4/Patient/{}", s.principal))
                    .bearer_auth(&mut_a)
                    .header("if-none-match", tag),
            )
            .await;
        assert_eq!(cached.status.as_u16(), status, "{tag}: {}", cached.text);
        assert_eq!(cached.header("etag"), Some("W/\"1\""), "{tag}");
    }
    assert_eq!(patient.json["birthDate"], "1984-03-12");
    assert_eq!(patient.json["telecom"][0]["value"], "+22890123456");
    assert_eq!(patient.json["address"][0]["district"], "Zio");
    // A year-only birth date is a FHIR year; names keep their accents.
    let spouse = app.get(&format!("/fhir/r4/Patient/{}", s.spouse), &mut_a).await;
    assert_eq!(spouse.json["birthDate"], "1988");
    assert_eq!(
        spouse.json["name"],
        json!([{"use": "official", "family": "Agbéko", "given": ["Akossiwa Élise"]}])
    );
    assert!(spouse.json.get("identifier").is_none());

    // Not covered by mut-b: 404, as in /v1, as an OperationOutcome; no token: 401.
    let hidden = app
        .get(
            &format!("/fhir/r4/Patient/{}", s.principal),
            &app.token("mut-b", "registry:read"),
        )
        .await;
    assert_eq!(issues(&hidden, 404), [("not-found".to_owned(), String::new())]);
    let anonymous = app
        .send(app.request(Method::GET, &format!("/fhir/r4/Patient/{}", s.principal)))
        .await;
    assert_eq!(issues(&anonymous, 401)[0].0, "login");
    assert!(anonymous.header("www-authenticate").is_some());
    let wrong_scope = app
        .get(
            &format!("/fhir/r4/Patient/{}", s.principal),
            &app.token("mut-a", "claims:read"),
        )
        .await;
    assert_eq!(issues(&wrong_scope, 403)[0].0, "forbidden");

    // The auditor sees both coverages, a page at a time; mut-a only its own.
    let auditor = app.token("audit-x", "registry:read");
    let audited = app.audited().await;
    let path = format!("/fhir/r4/Coverage?beneficiary=Patient/{}&_count=1", s.principal);
    let first = app.get(&path, &auditor).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text);
    assert_eq!(
        (first.json["resourceType"].as_str(), first.json["type"].as_str()),
        (Some("Bundle"), Some("searchset"))
    );
    assert_eq!(first.json["entry"].as_array().unwrap().len(), 1);
    // The `self` link is the search as sent: an id's hyphens are not escaped.
    let self_link = first.json["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "self")
        .unwrap();
    assert_eq!(
        self_link["url"],
        format!("{}{path}", app.base).as_str(),
        "{}",
        first.text
    );
    let next = next_link(&first);
    let second = app.get(&next, &auditor).await;
    assert_eq!(second.status.as_u16(), 200, "{next}: {}", second.text);
    assert_eq!(second.json["entry"].as_array().unwrap().len(), 1, "{}", second.text);
    assert!(second.json["link"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["relation"] != "next"));
    let mut payors: Vec<Value> = [&first, &second]
        .iter()
        .map(|r| r.json["entry"][0]["resource"]["payor"][0]["identifier"]["value"].clone())
        .collect();
    payors.sort_by_key(|p| p.to_string());
    assert_eq!(payors, [json!("mut-a"), json!("tg-inam")]);
    // Each entry's fullUrl is its resource's absolute URL, there to be read.
    let entry = &first.json["entry"][0];
    let id = entry["resource"]["id"].as_str().unwrap();
    assert_eq!(entry["fullUrl"], format!("{}/fhir/r4/Coverage/{id}", app.base).as_str());
    let read = app.get(&format!("/fhir/r4/Coverage/{id}"), &auditor).await;
    assert_eq!(read.json["id"], id, "{}", read.text);
    let v1 = app.get(&format!("/v1/coverages/{id}"), &auditor).await;
    assert_eq!(
        read.json["meta"]["versionId"],
        v1.json["version"].to_string().as_str(),
        "the coverage's version"
    );
    // Behind a proxy that ends TLS, the scheme it names.
    let proxied = app
        .send(
            app.request(Method::GET, &path)
                .bearer_auth(&auditor)
                .header("x-forwarded-proto", "https"),
        )
        .await;
    let host = app.base.trim_start_matches("http://");
    assert_eq!(
        proxied.json["entry"][0]["fullUrl"],
        format!("https://{host}/fhir/r4/Coverage/{id}").as_str()
    );
    // An auditor's reads are audited, as in /v1: two pages, one read, its /v1 twin, one proxied
    // page.
    assert_eq!(app.audited().await, audited + 5);
    // Asked by the bare id, with a parameter no search reads: the `next` link (written with
    // `Patient/`) still follows the first page.
    let bare = app
        .get(
            &format!("/fhir/r4/Coverage?beneficiary={}&_count=1&_format=json", s.principal),
            &auditor,
        )
        .await;
    let next = next_link(&bare);
    let followed = app.get(&next, &auditor).await;
    assert_eq!(followed.status.as_u16(), 200, "{}", followed.text);
    assert_eq!(followed.json["entry"], second.json["entry"]);

    // Parameters the search does not support are ignored, unless the client asks for strict
    // handling (R4 search.html): then each is refused, by name.
    let unsupported = format!(
        "/fhir/r4/Coverage?beneficiary={}&status=cancelled&_summary=count&_count=1",
        s.principal
    );
    let lenient = app.get(&unsupported, &auditor).await;
    assert_eq!(lenient.status.as_u16(), 200, "{}", lenient.text);
    let strict = app
        .send(
            app.request(Method::GET, &unsupported)
                .bearer_auth(&auditor)
                .header("prefer", "handling=strict"),
        )
        .await;
    assert_eq!(strict.status.as_u16(), 422, "{}", strict.text);
    let refused: Vec<(&str, &str)> = strict.json["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["code"].as_str().unwrap(),
                i["diagnostics"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(refused.len(), 2, "{}", strict.text);
    assert!(
        refused.iter().all(|(code, _)| *code == "not-supported"),
        "{}",
        strict.text
    );
    assert!(
        strict.text.contains("_summary") && strict.text.contains("status"),
        "{}",
        strict.text
    );
    let supported = app
        .send(
            app.request(
                Method::GET,
                &format!("/fhir/r4/Coverage?beneficiary={}&_count=1", s.principal),
            )
            .bearer_auth(&auditor)
            .header("prefer", "return=minimal, handling = \"strict\""),
        )
        .await;
    assert_eq!(supported.status.as_u16(), 200, "{}", supported.text);

    let own = app
        .get(&format!("/fhir/r4/Coverage?beneficiary={}", s.principal), &mut_a)
        .await;
    let entries = own.json["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", own.text);
    let coverage = &entries[0]["resource"];
    assert_eq!(coverage["resourceType"], "Coverage");
    assert_eq!(coverage["status"], "active");
    assert_eq!(coverage["subscriberId"], "TSV-0001");
    assert_eq!(coverage["type"], coding("urn:passerelle:layer", "complementary"));
    assert_eq!(coverage["relationship"]["coding"][0]["code"], "self");
    assert_eq!(coverage["period"]["start"], "2026-01-01");
    assert_eq!(
        coverage["beneficiary"]["reference"],
        format!("Patient/{}", s.principal).as_str()
    );
    // mut-b holds none of them: a Bundle without entries (FHIR has no empty arrays).
    let none = app
        .get(
            &format!("/fhir/r4/Coverage?beneficiary={}", s.principal),
            &app.token("mut-b", "registry:read"),
        )
        .await;
    assert_eq!(none.json["resourceType"], "Bundle", "{}", none.text);
    assert!(none.json.get("entry").is_none(), "{}", none.text);

    // A reference to another resource type names no Patient: refused, not an empty Bundle.
    let other_type = app
        .get(
            &format!("/fhir/r4/Coverage?beneficiary=Organization/{}", s.principal),
            &mut_a,
        )
        .await;
    assert_eq!(issues(&other_type, 422)[0].0, "value", "{}", other_type.text);
    assert_eq!(
        other_type.json["issue"][0]["details"]["coding"][0]["code"],
        "invalid_reference"
    );
    assert!(other_type.json["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .ends_with("at: /query/beneficiary"));
    let missing = app.get("/fhir/r4/Coverage", &mut_a).await;
    let found = issues(&missing, 422);
    assert_eq!(found[0].0, "required");
    assert!(missing.json["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .ends_with("at: /query/beneficiary"));
    let bad_count = app
        .get(
            &format!("/fhir/r4/Coverage?beneficiary={}&_count=0", s.principal),
            &mut_a,
        )
        .await;
    assert_eq!(issues(&bad_count, 422)[0].0, "value");
    // A method the path does not take: 405, as an OperationOutcome.
    let post_only = app.get("/fhir/r4/Claim", &mut_a).await;
    assert_eq!(issues(&post_only, 405)[0].0, "not-supported");
    assert!(
        bad_count.json["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .ends_with("at: /query/_count"),
        "{}",
        bad_count.text
    );
    // Not a number at all is not a number out of range; a cursor of another list names no
    // position in this one.
    let code = |reply: &Reply| reply.json["issue"][0]["details"]["coding"][0]["code"].clone();
    let typed = app
        .get(
            &format!("/fhir/r4/Coverage?beneficiary={}&_count=abc", s.principal),
            &mut_a,
        )
        .await;
    assert_eq!(code(&typed), "invalid_type", "{}", typed.text);
    let organizations = app.get("/v1/organizations?limit=1", &app.operator()).await;
    let foreign = organizations.json["next_cursor"].as_str().unwrap();
    let crossed = app
        .get(
            &format!("/fhir/r4/Coverage?beneficiary={}&cursor={foreign}", s.principal),
            &mut_a,
        )
        .await;
    assert_eq!(code(&crossed), "invalid_cursor", "{}", crossed.text);
}

fn eligibility_request(patient: Value, date: &str, category: &str, price: Option<i64>) -> Value {
    let mut item = json!({"extension": [{"url": "urn:passerelle:care-level", "valueCode": "health_center"}],
                          "category": coding("urn:passerelle:category", category)});
    if let Some(price) = price {
        item["unitPrice"] = json!({"value": price, "currency": "XOF"});
    }
    json!({"resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["validation", "benefits"],
           "identifier": [{"system": "urn:cms-a:checks", "value": "CHK-1"}],
           "patient": patient, "servicedDate": date, "created": date,
           "insurer": {"identifier": {"system": "urn:passerelle:organization", "value": "mut-a"}},
           "item": [item]})
}

async fn eligibility_answers_as_v1_does(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let coverages = app
        .get(&format!("/v1/coverages?beneficiary={}", s.principal), &app.operator())
        .await
        .json;
    let by_member = json!({"identifier": {"system": "urn:passerelle:member-number:mut-a", "value": "TSV-0001"}});
    let audited = app.audited().await;
    let reply = fhir_post(
        app,
        "/fhir/r4/CoverageEligibilityRequest",
        &token,
        None,
        &eligibility_request(by_member, "2026-06-01", "consultation", Some(10001)),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some(FHIR));
    let r = &reply.json;
    assert_eq!(r["resourceType"], "CoverageEligibilityResponse");
    assert_eq!(r["patient"]["reference"], format!("Patient/{}", s.principal).as_str());
    assert_eq!(r["disposition"], "eligible");
    assert_eq!(r["request"]["identifier"]["value"], "CHK-1");
    assert_eq!(r["insurer"]["identifier"]["value"], "mut-a");
    // The same estimate as /v1: base floor(10001 × 0.8) = 8000, the mutuelle 100 % of 2001.
    let v1 = app
        .post(
            "/v1/eligibility-checks",
            &token,
            &json!({"beneficiary": {"id": s.principal}, "service_date": "2026-06-01", "care_level": "health_center",
                    "category": "consultation", "amount_xof": 10001}),
        )
        .await;
    assert_eq!(v1.json["estimate"]["base_xof"], 8000);
    let base = insurance_of(r, "tg-inam", &coverages);
    assert_eq!(base["inforce"], true);
    assert_eq!(benefit(base, "eligpercent")["allowedString"], "80");
    assert_eq!(
        benefit(base, "benefit")["allowedMoney"],
        json!({"value": 8000, "currency": "XOF"})
    );
    let mutuelle = insurance_of(r, "mut-a", &coverages);
    assert_eq!(benefit(mutuelle, "eligpercent")["allowedString"], "100");
    assert_eq!(
        benefit(mutuelle, "benefit")["allowedMoney"]["value"],
        v1.json["estimate"]["complementary_xof"]
    );
    assert_eq!(benefit(mutuelle, "benefit")["allowedMoney"]["value"], 2001);
    assert_eq!(benefit(mutuelle, "copay")["allowedMoney"]["value"], 0);
    // The patient's share is said once, on the payer that pays last.
    assert!(base["item"][0]["benefit"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["type"]["coding"][0]["code"] != "copay"));
    assert_eq!(benefit(mutuelle, "submitted")["allowedMoney"]["value"], 10001);
    assert_eq!(benefit(mutuelle, "remaining-ceiling")["allowedMoney"]["value"], 150000);
    // Each check is audited, whichever form it came in.
    assert_eq!(app.audited().await, audited + 2);

    // The spouse in her waiting period: not in force, with the reason and its end; nobody pays,
    // so the patient's share is all of it, said once. (An Idempotency-Key means nothing to a
    // check, as in /v1, even a malformed one.)
    let waiting = app
        .send(
            app.request(Method::POST, "/fhir/r4/CoverageEligibilityRequest")
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .header("idempotency-key", "k".repeat(300))
                .body(
                    eligibility_request(
                        json!({"reference": format!("Patient/{}", s.spouse)}),
                        "2026-02-01",
                        "consultation",
                        Some(700),
                    )
                    .to_string(),
                ),
        )
        .await;
    assert_eq!(waiting.status.as_u16(), 200, "{}", waiting.text);
    assert_eq!(waiting.json["disposition"], "not eligible");
    let insurance = &waiting.json["insurance"][0];
    // In force (R4's sense: it has started, and nothing suspends or ends it), but in its waiting
    // period: the reason says so, and the coverage pays nothing.
    assert_eq!(insurance["inforce"], true, "{}", waiting.text);
    assert!(
        insurance["extension"].to_string().contains("WAITING_PERIOD"),
        "{}",
        waiting.text
    );
    assert_eq!(insurance["item"][0]["excluded"], false);
    // Its rate is said as /v1 says it: the reason tells that it does not pay today.
    let v1_waiting = app
        .post(
            "/v1/eligibility-checks",
            &token,
            &json!({"beneficiary": {"id": s.spouse}, "service_date": "2026-02-01", "care_level": "health_center",
                    "category": "consultation"}),
        )
        .await;
    assert_ne!(
        v1_waiting.json["coverages"][0]["status"], "eligible",
        "{}",
        v1_waiting.text
    );
    let rate = v1_waiting.json["coverages"][0]["rate_bp"]
        .as_u64()
        .expect("a rate in /v1");
    assert_eq!(rate % 100, 0);
    assert_eq!(
        benefit(insurance, "eligpercent")["allowedString"],
        (rate / 100).to_string().as_str()
    );
    let reason = &insurance["extension"][0];
    assert_eq!(reason["url"], "urn:passerelle:reason");
    assert_eq!(reason["extension"][0]["valueCoding"]["code"], "WAITING_PERIOD");
    assert_eq!(
        reason["extension"][1],
        json!({"url": "until", "valueDate": "2026-04-01"})
    );
    assert_eq!(benefit(insurance, "copay")["allowedMoney"]["value"], 700);
    assert_eq!(benefit(insurance, "benefit")["allowedMoney"]["value"], 0);
    let copays = waiting.json["insurance"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["item"][0]["benefit"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"]["coding"][0]["code"] == "copay")
        .count();
    assert_eq!(copays, 1);

    // Without a category, the item is care at its level (R4 wants one or the other); a
    // quantity written as a decimal is a whole number.
    let mut plain = eligibility_request(
        json!({"reference": format!("Patient/{}", s.principal)}),
        "2026-06-01",
        "consultation",
        Some(2500),
    );
    plain["item"][0].as_object_mut().unwrap().remove("category");
    plain["item"][0]["quantity"] = json!({"value": 4.0});
    plain["item"][0]["unitPrice"]["value"] = json!(2500.0);
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &plain).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let item = &insurance_of(&reply.json, "mut-a", &coverages)["item"][0];
    assert_eq!(
        item["productOrService"],
        coding("urn:passerelle:care-level", "health_center")
    );
    assert!(item.get("category").is_none());
    assert_eq!(
        benefit(insurance_of(&reply.json, "mut-a", &coverages), "submitted")["allowedMoney"]["value"],
        10000
    );
    // A whole price past what any number type holds is out of range, not of the wrong type.
    let mut huge = plain.clone();
    huge["item"][0]["unitPrice"]["value"] = json!(1e20);
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &huge).await;
    assert_eq!(
        reply.json["issue"][0]["details"]["coding"][0]["code"], "out_of_range",
        "{}",
        reply.text
    );

    // Every fault at its element, in one answer; nothing audited.
    let audited = app.audited().await;
    let mut bad = eligibility_request(json!({"reference": "Patient/"}), "2090-01-01", "massage", Some(100));
    bad["resourceType"] = json!("Claim");
    bad["purpose"] = json!(["validation", "payment"]);
    bad["servicedPeriod"] = json!({"start": "2026-06-01"});
    bad["item"][0]["quantity"] = json!({"value": 0});
    bad["item"][0]["extension"][0]["valueCode"] = json!("clinic");
    bad["item"][0]["unitPrice"]["currency"] = json!("EUR");
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &bad).await;
    let mut found: Vec<String> = issues(&reply, 422).into_iter().map(|(_, at)| at).collect();
    found.sort();
    assert_eq!(
        found,
        [
            "CoverageEligibilityRequest.item[0].category",
            "CoverageEligibilityRequest.item[0].extension[0].valueCode",
            "CoverageEligibilityRequest.item[0].quantity.value",
            "CoverageEligibilityRequest.item[0].unitPrice.currency",
            "CoverageEligibilityRequest.patient.reference",
            "CoverageEligibilityRequest.purpose[1]",
            "CoverageEligibilityRequest.resourceType",
            "CoverageEligibilityRequest.servicedDate",
            "CoverageEligibilityRequest.servicedPeriod",
        ]
    );
    let two_items = json!({"resourceType": "CoverageEligibilityRequest", "patient": {"reference": format!("Patient/{}", s.spouse)},
                           "item": [{}, {}]});
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &two_items).await;
    assert_eq!(
        issues(&reply, 422),
        [("value".to_owned(), "CoverageEligibilityRequest.item[1]".to_owned())]
    );
    // A modifier it does not understand changes what is asked: refused where it is, never
    // answered as if it were absent (R4); a plain extension is ignored.
    let mut modified = eligibility_request(
        json!({"reference": format!("Patient/{}", s.spouse)}),
        "2026-06-01",
        "consultation",
        Some(100),
    );
    modified["modifierExtension"] = json!([{"url": "http://example.org/mod", "valueBoolean": true}]);
    modified["item"][0]["quantity"] = json!({"value": 3, "comparator": ">="});
    modified["extension"] = json!([{"url": "http://example.org/plain", "valueString": "x"}]);
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &modified).await;
    let mut found = issues(&reply, 422);
    found.sort();
    assert_eq!(
        found,
        [
            (
                "not-supported".to_owned(),
                "CoverageEligibilityRequest.item[0].quantity.comparator".to_owned()
            ),
            (
                "not-supported".to_owned(),
                "CoverageEligibilityRequest.modifierExtension".to_owned()
            ),
        ]
    );
    let unknown = eligibility_request(
        json!({"reference": "Patient/nobody"}),
        "2026-06-01",
        "consultation",
        None,
    );
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &unknown).await;
    assert_eq!(issues(&reply, 404)[0].0, "not-found");
    let not_json = app.send(
        app.request(Method::POST, "/fhir/r4/CoverageEligibilityRequest")
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body("{"),
    );
    assert_eq!(issues(&not_json.await, 400)[0].0, "structure");
    // A NUL found before the request is read: still at its element.
    let nul = eligibility_request(
        json!({"reference": "Patient/a\u{0}b"}),
        "2026-06-01",
        "consultation",
        None,
    );
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &nul).await;
    assert_eq!(
        issues(&reply, 422),
        [(
            "value".to_owned(),
            "CoverageEligibilityRequest.patient.reference".to_owned()
        )]
    );
    // Not JSON: 415 naming FHIR's type.
    let plain_text = app.send(
        app.request(Method::POST, "/fhir/r4/CoverageEligibilityRequest")
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("{}"),
    );
    let plain_text = plain_text.await;
    assert_eq!(issues(&plain_text, 415)[0].0, "not-supported");
    assert!(plain_text.json["issue"][0]["details"]["text"]
        .as_str()
        .unwrap()
        .contains("application/fhir+json"));
    // Only the 404 was a check, audited as `eligibility.not_found`; every refused request not.
    assert_eq!(app.audited().await, audited + 1);
}

fn fhir_claim(identifier: &str, patient: &str, items: Value) -> Value {
    json!({"resourceType": "Claim", "status": "active", "use": "claim", "created": "2026-06-01",
           "type": coding("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
           "identifier": [{"system": "urn:passerelle:claim-id:cms-a", "value": identifier}],
           "patient": {"reference": format!("Patient/{patient}")},
           "provider": {"reference": "Organization/cms-a"},
           "priority": {"coding": [{"code": "normal"}]},
           "insurance": [{"sequence": 1, "focal": true, "coverage": {"display": "any"}}],
           "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": coding("http://hl7.org/fhir/sid/icd-10", "J06.9")}],
           "item": items})
}

fn item(sequence: u32, code: &str, category: &str, quantity: i64, price: i64) -> Value {
    json!({"sequence": sequence, "servicedDate": "2026-06-01",
           "productOrService": {"coding": [{"code": code}], "text": format!("Acte {code}")},
           "category": coding("urn:passerelle:category", category),
           "locationCodeableConcept": coding("urn:passerelle:care-level", "health_center"),
           "quantity": {"value": quantity}, "unitPrice": {"value": price, "currency": "XOF"}})
}

/// An adjudication of a ClaimResponse item by category and payer (`None`: no payer).
fn adjudication<'a>(item: &'a Value, category: &str, payer: Option<&str>) -> &'a Value {
    item["adjudication"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["category"]["coding"][0]["code"] == category
                && a["extension"][0]["valueReference"]["identifier"]["value"].as_str() == payer
        })
        .unwrap_or_else(|| panic!("no {category} of {payer:?} in {item}"))
}

async fn claims_are_priced_as_v1_prices_them(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let items = json!([
        item(1, "CONS", "consultation", 1, 10001),
        item(2, "PARA", "pharmacy", 3, 1111)
    ]);
    let body = fhir_claim("EXT-F1", &s.principal, items);
    let created = fhir_post(app, "/fhir/r4/Claim", &token, Some("f1"), &body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.header("content-type"), Some(FHIR));
    let r = &created.json;
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), Some(format!("/v1/claims/{id}").as_str()));
    assert_eq!(r["resourceType"], "ClaimResponse");
    assert_eq!(
        (r["outcome"].as_str(), r["disposition"].as_str()),
        (Some("queued"), Some("awaiting_base"))
    );
    assert_eq!(r["insurer"]["identifier"]["value"], "mut-a");
    assert_eq!(r["request"]["identifier"]["value"], "EXT-F1");
    // Line 2: billed 3333, base floor(3333 × 0.8) = 2666 proposed, the remaining 667 at 100 %.
    let line = &r["item"][1];
    assert_eq!(line["itemSequence"], 2);
    assert_eq!(adjudication(line, "submitted", None)["amount"]["value"], 3333);
    assert_eq!(adjudication(line, "eligible", Some("tg-inam"))["amount"]["value"], 2666);
    assert_eq!(adjudication(line, "eligpercent", Some("tg-inam"))["value"], 80);
    assert_eq!(adjudication(line, "eligible", Some("mut-a"))["amount"]["value"], 667);
    assert_eq!(adjudication(line, "copay", None)["amount"]["value"], 0);
    let totals: Vec<(String, i64)> = r["total"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["category"]["coding"][0]["code"].as_str().unwrap().to_owned(),
                t["amount"]["value"].as_i64().unwrap(),
            )
        })
        .collect();
    // Proposed, not yet approved: `eligible` until the claim is adjudicated.
    assert_eq!(
        totals,
        [
            ("submitted".to_owned(), 13334),
            ("eligible".to_owned(), 13334),
            ("copay".to_owned(), 0)
        ]
    );
    // The same claim through /v1, with what the FHIR items said.
    let v1 = app.get(&format!("/v1/claims/{id}"), &token).await;
    assert_eq!(v1.json["external_id"], "EXT-F1");
    assert_eq!(v1.json["diagnoses"], json!(["J06.9"]));
    assert_eq!(v1.json["lines"][1]["description"], "Acte PARA");
    assert_eq!(v1.json["lines"][1]["quantity"], 3);
    assert_eq!(v1.json["lines"][1]["base_xof"], 2666);

    // Once the base scheme has paid, its share is a benefit.
    let inam = app.token("tg-inam", "claims:submit claims:read");
    // A scheme names its affiliate by its own member numbers only, as in a check: mut-a's
    // number is no one to it.
    let mut probe = fhir_claim(
        "EXT-F9",
        &s.principal,
        json!([item(1, "CONS", "consultation", 1, 1000)]),
    );
    probe["patient"] = json!({"identifier": {"system": "urn:passerelle:member-number:mut-a", "value": "TSV-0001"}});
    let refused = fhir_post(app, "/fhir/r4/Claim", &inam, Some("f9"), &probe).await;
    assert_eq!(refused.status.as_u16(), 404, "{}", refused.text);
    let paid = app
        .post(
            &format!("/v1/claims/{id}/base-adjudication"),
            &inam,
            &json!({"lines": [{"line": 1, "paid_xof": 8000}, {"line": 2, "paid_xof": 2666}]}),
        )
        .await;
    assert_eq!(paid.status.as_u16(), 200, "{}", paid.text);
    // Read as FHIR: the base scheme's share is now a benefit, the mutuelle's still proposed.
    let response = app.get(&format!("/fhir/r4/ClaimResponse/{id}"), &token).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text);
    assert_eq!(response.header("content-type"), Some(FHIR));
    let line = &response.json["item"][1];
    assert_eq!(adjudication(line, "benefit", Some("tg-inam"))["amount"]["value"], 2666);
    assert_eq!(adjudication(line, "eligible", Some("mut-a"))["amount"]["value"], 667);
    assert_eq!(response.json["disposition"], "awaiting_complementary");
    assert_eq!(
        response.json["meta"],
        json!({"versionId": "2"}),
        "one more with the base's adjudication"
    );
    assert_eq!(response.header("etag"), Some("W/\"2\""));
    let polled = app
        .send(
            app.request(Method::GET, &format!("/fhir/r4/ClaimResponse/{id}"))
                .bearer_auth(&token)
                .header("if-none-match", "W/\"1\""),
        )
        .await;
    assert_eq!(polled.status.as_u16(), 200, "moved on since version 1");
    assert_eq!(polled.json["meta"]["versionId"], "2");
    assert_eq!(response.json["outcome"], "queued");
    let stranger = app
        .get(
            &format!("/fhir/r4/ClaimResponse/{id}"),
            &app.token("mut-b", "claims:read"),
        )
        .await;
    assert_eq!(issues(&stranger, 404)[0].0, "not-found");
    // Once the mutuelle has decided, the claim is complete.
    let decided = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &app.token("mut-a", "claims:adjudicate claims:read"),
            &json!({"lines": [{"line": 1, "decision": "accept"}, {"line": 2, "decision": "accept"}]}),
        )
        .await;
    assert_eq!(decided.status.as_u16(), 200, "{}", decided.text);
    let response = app.get(&format!("/fhir/r4/ClaimResponse/{id}"), &token).await;
    assert_eq!(response.json["outcome"], "complete");
    assert_eq!(
        adjudication(&response.json["item"][1], "benefit", Some("mut-a"))["amount"]["value"],
        667
    );
    let total = &response.json["total"][1];
    assert_eq!(
        (
            total["category"]["coding"][0]["code"].as_str(),
            total["amount"]["value"].as_i64()
        ),
        (Some("benefit"), Some(13334))
    );

    // The same key and body replay the first answer; the same identifier again is a conflict.
    let claims = app.count("claims").await;
    let replay = fhir_post(app, "/fhir/r4/Claim", &token, Some("f1"), &body).await;
    assert_eq!(replay.status.as_u16(), 201, "{}", replay.text);
    assert_eq!(replay.json, created.json, "a replay gives back the first answer");
    // The duplicate is named as the client sent it: the Claim's identifier, not a /v1 field.
    let duplicate = fhir_post(app, "/fhir/r4/Claim", &token, Some("f2"), &body).await;
    assert_eq!(
        issues(&duplicate, 409),
        [("duplicate".to_owned(), "Claim.identifier[0].value".to_owned())]
    );
    // Its code is the /v1 one, as every issue's details carry.
    assert_eq!(
        duplicate.json["issue"][0]["details"]["coding"][0]["code"], "external_id_taken",
        "{}",
        duplicate.text
    );
    let text = duplicate.json["issue"][0]["details"]["text"].as_str().unwrap();
    assert!(text.contains("identifiant") && !text.contains("external_id"), "{text}");
    assert_eq!(
        issues(&fhir_post(app, "/fhir/r4/Claim", &token, None, &body).await, 428)[0].0,
        "required"
    );
    let mut other = body.clone();
    other["identifier"][0]["value"] = json!("EXT-F9");
    let reused = fhir_post(app, "/fhir/r4/Claim", &token, Some("f1"), &other).await;
    assert_eq!(issues(&reused, 422)[0].0, "conflict");

    // Every fault at its element, in one answer; nothing written.
    let mut second = item(2, "PARA", "massage", 0, 0);
    second["servicedDate"] = json!("2026-06-02");
    second.as_object_mut().unwrap().remove("unitPrice");
    let mut first = item(1, "CONS", "consultation", 1, 10001);
    first["unitPrice"]["value"] = json!(100.5);
    let mut bad = fhir_claim("EXT-F3", &s.principal, json!([first, second]));
    bad["provider"] = json!({"reference": "Practitioner/x"});
    bad["use"] = json!("preauthorization");
    bad["item"][0]["factor"] = json!(0.5);
    bad["diagnosis"][0]["diagnosisCodeableConcept"] = coding("http://hl7.org/fhir/sid/icd-10", "not-icd");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("f3"), &bad).await;
    let mut found: Vec<String> = issues(&reply, 422).into_iter().map(|(_, at)| at).collect();
    found.sort();
    assert_eq!(
        found,
        [
            "Claim.diagnosis[0].diagnosisCodeableConcept",
            "Claim.item[0].factor",
            "Claim.item[0].unitPrice.value",
            "Claim.item[1].category",
            "Claim.item[1].quantity.value",
            "Claim.item[1].servicedDate",
            "Claim.item[1].unitPrice",
            "Claim.provider",
            "Claim.use",
        ]
    );
    // A claim with no identifier and no item: those two faults, each once.
    let mut bare = fhir_claim("unused", &s.principal, json!([]));
    bare.as_object_mut().unwrap().remove("identifier");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("f10"), &bare).await;
    assert_eq!(
        issues(&reply, 422),
        [
            ("required".to_owned(), "Claim.identifier[0].value".to_owned()),
            ("required".to_owned(), "Claim.item".to_owned()),
        ]
    );
    // Faults found with the store's facts, at their elements too: another facility, and a day
    // before the person's coverages begin.
    let mut elsewhere = fhir_claim("EXT-F5", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    elsewhere["provider"] = json!({"identifier": {"system": "urn:passerelle:organization", "value": "cms-b"}});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("f5"), &elsewhere).await;
    assert_eq!(issues(&reply, 422), [("value".to_owned(), "Claim.provider".to_owned())]);
    let mut early = fhir_claim("EXT-F6", &s.spouse, json!([item(1, "CONS", "consultation", 1, 100)]));
    early["item"][0]["servicedDate"] = json!("2025-06-01");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("f6"), &early).await;
    assert_eq!(
        issues(&reply, 422),
        [("value".to_owned(), "Claim.item[0].servicedDate".to_owned())]
    );
    // A net that is not quantity × unitPrice would bill another amount.
    let mut net = fhir_claim("EXT-F7", &s.principal, json!([item(1, "CONS", "consultation", 2, 100)]));
    net["item"][0]["net"] = json!({"value": 100, "currency": "XOF"});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("f7"), &net).await;
    assert_eq!(
        issues(&reply, 422),
        [("value".to_owned(), "Claim.item[0].net".to_owned())]
    );
    // More that would pay what was not meant, or is not a claim: each at its element.
    let mut odd = fhir_claim("EXT-F9", &s.principal, json!([item(1, "CONS", "consultation", 2, 100)]));
    odd["status"] = json!("draft");
    odd["total"] = json!({"value": 5000, "currency": "XOF"});
    odd["item"][0]["net"] = json!({"value": 200, "currency": "EUR"});
    odd["item"][0]["servicedPeriod"] = json!({"start": "2026-06-01", "end": "2026-06-03"});
    odd["item"][0].as_object_mut().unwrap().remove("servicedDate");
    odd["provider"] = json!({"reference": "Organization/cms-a",
                             "identifier": {"system": "urn:passerelle:organization", "value": "cms-a"}});
    odd["patient"] = json!({"identifier": {"system": "urn:passerelle:national-id:TG:XYZ", "value": "1"}});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("f9"), &odd).await;
    let mut found: Vec<String> = issues(&reply, 422).into_iter().map(|(_, at)| at).collect();
    found.sort();
    assert_eq!(
        found,
        [
            "Claim.item[0].net.currency",
            "Claim.item[0].servicedPeriod",
            "Claim.patient.identifier.system",
            "Claim.provider",
            "Claim.status",
            "Claim.total",
        ]
    );
    assert_eq!(app.count("claims").await, claims);
    // A period that ends before it starts is no day of care, whatever its text's days say; one
    // written at two offsets is judged as instants, on the start's day.
    let period = |start: &str, end: &str, key: &str| {
        let mut body = fhir_claim(key, &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
        body["item"][0]["servicedPeriod"] = json!({"start": start, "end": end});
        body["item"][0].as_object_mut().unwrap().remove("servicedDate");
        body
    };
    let inverted = period("2026-06-01T23:00:00-05:00", "2026-06-01T01:00:00+02:00", "EXT-P1");
    let inverted = fhir_post(app, "/fhir/r4/Claim", &token, Some("p1"), &inverted).await;
    assert_eq!(
        issues(&inverted, 422),
        [("not-supported".to_owned(), "Claim.item[0].servicedPeriod".to_owned())]
    );
    let backwards = period("2026-06-01T10:00:00Z", "2026-06-01T09:00:00Z", "EXT-P2");
    let backwards = fhir_post(app, "/fhir/r4/Claim", &token, Some("p2"), &backwards).await;
    assert_eq!(issues(&backwards, 422)[0].1, "Claim.item[0].servicedPeriod");
    let across = period("2026-06-01T23:30:00-01:00", "2026-06-02T00:45:00Z", "EXT-P3");
    let across = fhir_post(app, "/fhir/r4/Claim", &token, Some("p3"), &across).await;
    assert_eq!(across.status.as_u16(), 201, "{}", across.text);
    let v1 = app.get(across.header("location").unwrap(), &token).await;
    assert_eq!(v1.json["service_date"], "2026-06-01", "{}", v1.text);

    // The person by national id, the day from billablePeriod (a dateTime), whole numbers written
    // as decimals: the same claim as /v1 would make.
    let mut by_nid = fhir_claim("EXT-F8", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    by_nid["patient"] =
        json!({"identifier": {"system": "urn:passerelle:national-id:TG:NIU", "value": "1234 5678 9012"}});
    by_nid["billablePeriod"] = json!({"start": "2026-06-01T08:30:00Z"});
    by_nid["item"][0].as_object_mut().unwrap().remove("servicedDate");
    by_nid["item"][0]["quantity"] = json!({"value": 2.0});
    by_nid["item"][0]["unitPrice"]["value"] = json!(5000.0);
    by_nid["item"][0]["net"] = json!({"value": 10000.0, "currency": "XOF"});
    by_nid["total"] = json!({"value": 10000, "currency": "XOF"});
    // A registry's own identifier beside the reference is fine.
    by_nid["provider"] =
        json!({"reference": "Organization/cms-a", "identifier": {"system": "urn:oid:1.2.3", "value": "HF-77"}});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("f8"), &by_nid).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_eq!(
        reply.json["patient"]["reference"],
        format!("Patient/{}", s.principal).as_str()
    );
    let v1 = app
        .get(&format!("/v1/claims/{}", reply.json["id"].as_str().unwrap()), &token)
        .await;
    assert_eq!(v1.json["service_date"], "2026-06-01");
    assert_eq!(v1.json["lines"][0]["billed_xof"], 10000);

    // No eligible payer: rejected at once, everything on the patient, with the reasons.
    let waiting = fhir_claim("EXT-F4", &s.spouse, json!([item(1, "CONS", "consultation", 1, 5000)]));
    let mut waiting = waiting;
    waiting["item"][0]["servicedDate"] = json!("2026-02-01");
    let rejected = fhir_post(app, "/fhir/r4/Claim", &token, Some("f4"), &waiting).await;
    assert_eq!(rejected.status.as_u16(), 201, "{}", rejected.text);
    assert_eq!(
        (rejected.json["outcome"].as_str(), rejected.json["disposition"].as_str()),
        (Some("complete"), Some("rejected"))
    );
    let reasons: Vec<&Value> = rejected.json["extension"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["url"] == "urn:passerelle:reason")
        .collect();
    assert_eq!(reasons[0]["extension"][0]["valueCoding"]["code"], "WAITING_PERIOD");
    assert_eq!(
        adjudication(&rejected.json["item"][0], "copay", None)["amount"]["value"],
        5000
    );
    // No payer took it: the insurer is the service's operator organisation, which exists.
    let operator = app.config.operator_org.as_str();
    assert_eq!(
        rejected.json["insurer"],
        json!({"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": operator}})
    );
    let org = app.get(&format!("/v1/organizations/{operator}"), &app.operator()).await;
    assert_eq!(org.status.as_u16(), 200, "{}", org.text);

    // Cancelled before the base scheme decided: its share was only ever proposed.
    let mut cancelled = fhir_claim(
        "EXT-F11",
        &s.principal,
        json!([item(1, "CONS", "consultation", 1, 1000)]),
    );
    cancelled["item"][0]["servicedDate"] = json!("2026-06-02");
    let created = fhir_post(app, "/fhir/r4/Claim", &token, Some("f11"), &cancelled).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap();
    let cancel = app.post(&format!("/v1/claims/{id}/cancel"), &token, &json!({})).await;
    assert_eq!(cancel.status.as_u16(), 200, "{}", cancel.text);
    let response = app.get(&format!("/fhir/r4/ClaimResponse/{id}"), &token).await;
    assert_eq!(response.json["status"], "cancelled", "{}", response.text);
    assert_eq!(
        adjudication(&response.json["item"][0], "eligible", Some("tg-inam"))["amount"]["value"],
        800
    );
}

/// The `details.coding` code and the expression of each issue of a 422 OperationOutcome.
fn rule_codes(reply: &Reply) -> Vec<(String, String)> {
    issues(reply, 422);
    reply.json["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["details"]["coding"][0]["code"].as_str().unwrap().to_owned(),
                i["expression"][0].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// API.md §7: a payer's share is `eligible` until it has adjudicated, `benefit` after; a
/// mutuelle that rejects every line has adjudicated (the claim is `rejected`, still routed).
async fn a_claim_the_mutuelle_rejects_reads_as_decided(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    // The spouse, past her waiting period, is covered by the mutuelle alone.
    let body = fhir_claim(
        "EXT-R1",
        &s.spouse,
        json!([
            item(1, "CONS", "consultation", 1, 4000),
            item(2, "PARA", "pharmacy", 2, 500)
        ]),
    );
    let created = fhir_post(app, "/fhir/r4/Claim", &token, Some("r1"), &body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(
        created.json["disposition"], "awaiting_complementary",
        "{}",
        created.text
    );
    let id = created.json["id"].as_str().unwrap();
    assert_eq!(
        adjudication(&created.json["item"][0], "eligible", Some("mut-a"))["amount"]["value"],
        4000
    );
    let rejected = app
        .post(
            &format!("/v1/claims/{id}/adjudication"),
            &app.token("mut-a", "claims:adjudicate claims:read"),
            &json!({"lines": [{"line": 1, "decision": "reject", "reason_code": "NOT_JUSTIFIED"},
                              {"line": 2, "decision": "reject", "reason_code": "NOT_COVERED"}]}),
        )
        .await;
    assert_eq!(rejected.status.as_u16(), 200, "{}", rejected.text);
    assert_eq!(
        (rejected.json["status"].as_str(), rejected.json["routed_to"].as_str()),
        (Some("rejected"), Some("mut-a"))
    );
    let response = app.get(&format!("/fhir/r4/ClaimResponse/{id}"), &token).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text);
    let r = &response.json;
    assert_eq!(
        (r["outcome"].as_str(), r["disposition"].as_str()),
        (Some("complete"), Some("rejected"))
    );
    for (line, reason, billed) in [(0, "NOT_JUSTIFIED", 4000), (1, "NOT_COVERED", 1000)] {
        let item = &r["item"][line];
        let share = adjudication(item, "benefit", Some("mut-a"));
        assert_eq!(share["amount"]["value"], 0, "{item}");
        assert_eq!(share["reason"]["coding"][0]["code"], reason, "{item}");
        assert!(
            item["adjudication"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["category"]["coding"][0]["code"] != "eligible"),
            "{item}"
        );
        assert_eq!(adjudication(item, "copay", None)["amount"]["value"], billed);
    }
    let total = &r["total"][1];
    assert_eq!(
        (
            total["category"]["coding"][0]["code"].as_str(),
            total["amount"]["value"].as_i64()
        ),
        (Some("benefit"), Some(0)),
        "{}",
        response.text
    );
}

/// API.md §7: `diagnostics` is the request id and the header at fault, for a missing or reused
/// `Idempotency-Key` as for a malformed one.
async fn idempotency_faults_name_the_header(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let diagnostics = |reply: &Reply| {
        let request_id = reply.header("x-request-id").unwrap().to_owned();
        (
            reply.json["issue"][0]["diagnostics"].as_str().unwrap().to_owned(),
            format!("request_id: {request_id}; at: /header/Idempotency-Key"),
        )
    };
    let body = fhir_claim("EXT-K1", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    let malformed = fhir_post(app, "/fhir/r4/Claim", &token, Some(&"k".repeat(300)), &body).await;
    issues(&malformed, 422);
    let (got, want) = diagnostics(&malformed);
    assert_eq!(got, want, "the malformed key, as the model: {}", malformed.text);
    let missing = fhir_post(app, "/fhir/r4/Claim", &token, None, &body).await;
    assert_eq!(issues(&missing, 428)[0].0, "required");
    let (got, want) = diagnostics(&missing);
    assert_eq!(got, want, "{}", missing.text);
    let first = fhir_post(app, "/fhir/r4/Claim", &token, Some("k1"), &body).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let mut other = body.clone();
    other["identifier"][0]["value"] = json!("EXT-K2");
    let reused = fhir_post(app, "/fhir/r4/Claim", &token, Some("k1"), &other).await;
    assert_eq!(issues(&reused, 422)[0].0, "conflict");
    assert_eq!(
        reused.json["issue"][0]["details"]["coding"][0]["code"],
        "idempotency_key_reused"
    );
    let (got, want) = diagnostics(&reused);
    assert_eq!(got, want, "{}", reused.text);
}

/// The elements of a CoverageEligibilityRequest named at the value at fault, with the codes
/// `/v1` gives: the care level's `valueCode`, a `purpose` that is not a list, a fractional
/// quantity (as in a Claim).
async fn eligibility_faults_name_the_value(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let patient = json!({"reference": format!("Patient/{}", s.principal)});
    let check = |change: &dyn Fn(&mut Value)| {
        let mut body = eligibility_request(patient.clone(), "2026-06-01", "consultation", Some(1000));
        change(&mut body);
        body
    };
    let post = |body: Value| {
        let token = token.clone();
        async move { fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &body).await }
    };

    // An unknown care level, its extension second among the item's.
    let unknown_level = check(&|b| {
        b["item"][0]["extension"] = json!([{"url": "urn:example:other", "valueString": "x"},
                                           {"url": "urn:passerelle:care-level", "valueCode": "clinic"}]);
    });
    assert_eq!(
        rule_codes(&post(unknown_level).await),
        [(
            "unknown_value".to_owned(),
            "CoverageEligibilityRequest.item[0].extension[1].valueCode".to_owned()
        )]
    );

    // A request that is not active (cancelled, draft, entered-in-error) is not answered as if it were.
    let cancelled = check(&|b| b["status"] = json!("cancelled"));
    assert_eq!(
        rule_codes(&post(cancelled).await),
        [(
            "unknown_value".to_owned(),
            "CoverageEligibilityRequest.status".to_owned()
        )]
    );

    // FHIR JSON has no empty list or string: an empty `purpose`, or an identifier the answer
    // would give back empty, is refused rather than answered as invalid FHIR.
    let empty = check(&|b| {
        b["purpose"] = json!([]);
        b["identifier"] = json!([{"system": "", "value": 7}]);
    });
    assert_eq!(
        rule_codes(&post(empty).await),
        [
            ("empty".to_owned(), "CoverageEligibilityRequest.purpose".to_owned()),
            (
                "empty".to_owned(),
                "CoverageEligibilityRequest.identifier[0].system".to_owned()
            ),
            (
                "invalid_type".to_owned(),
                "CoverageEligibilityRequest.identifier[0].value".to_owned()
            ),
        ]
    );
    let no_identifier = check(&|b| b["identifier"] = json!([]));
    assert_eq!(
        rule_codes(&post(no_identifier).await),
        [("empty".to_owned(), "CoverageEligibilityRequest.identifier".to_owned())]
    );
    // A period of service is not supported, and says so in FHIR's words.
    let period = check(&|b| b["servicedPeriod"] = json!({"start": "2026-06-01"}));
    let refused = post(period).await;
    assert_eq!(refused.json["issue"][0]["code"], "not-supported", "{}", refused.text);
    // A body of another FHIR version is not read as R4.
    let other_version = app
        .send(
            app.request(Method::POST, "/fhir/r4/CoverageEligibilityRequest")
                .bearer_auth(&token)
                .header(
                    "content-type",
                    "application/fhir+json; profile=\"a,b\"; fhirVersion=3.0",
                )
                .body(check(&|_| {}).to_string()),
        )
        .await;
    assert_eq!(other_version.status.as_u16(), 415, "{}", other_version.text);
    assert_eq!(other_version.json["resourceType"], "OperationOutcome");

    // `purpose` must be a list of R4's codes: a lone string is not silently ignored.
    let lone = check(&|b| b["purpose"] = json!("validation"));
    assert_eq!(
        rule_codes(&post(lone).await),
        [(
            "invalid_type".to_owned(),
            "CoverageEligibilityRequest.purpose".to_owned()
        )]
    );

    // An item that is not a list is mistyped, not missing, as in a Claim; no item is missing.
    for wrong in [json!("x"), json!({}), json!(5)] {
        let body = check(&|b| b["item"] = wrong.clone());
        assert_eq!(
            rule_codes(&post(body).await),
            [("invalid_type".to_owned(), "CoverageEligibilityRequest.item".to_owned())],
            "{wrong}"
        );
    }
    for absent in [json!(null), json!([])] {
        let body = check(&|b| b["item"] = absent.clone());
        assert_eq!(
            rule_codes(&post(body).await),
            [("required".to_owned(), "CoverageEligibilityRequest.item".to_owned())],
            "{absent}"
        );
    }

    // Surrounding white space is trimmed from a FHIR body's texts, its currency as its date.
    let padded = check(&|b| {
        b["item"][0]["unitPrice"]["currency"] = json!(" XOF ");
        b["servicedDate"] = json!(" 2026-06-01 ");
    });
    let reply = post(padded).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);

    // A fractional quantity: the same code as a Claim's item and a /v1 claim's line.
    let fraction = check(&|b| b["item"][0]["quantity"] = json!({"value": 1.5}));
    assert_eq!(
        rule_codes(&post(fraction).await),
        [(
            "invalid_type".to_owned(),
            "CoverageEligibilityRequest.item[0].quantity.value".to_owned()
        )]
    );
    let mut claim = fhir_claim("EXT-Q1", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    claim["item"][0]["quantity"] = json!({"value": 1.5});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("q1"), &claim).await;
    assert_eq!(
        rule_codes(&reply),
        [("invalid_type".to_owned(), "Claim.item[0].quantity.value".to_owned())]
    );
    let lines = json!([{"code": "CONS", "category": "consultation", "quantity": 1.5, "unit_price_xof": 100}]);
    let v1 = crate::claims::submit(
        app,
        &token,
        "q2",
        &crate::claims::claim("EXT-Q2", &s.principal, "2026-06-01", lines),
    )
    .await;
    assert_eq!(v1.status.as_u16(), 422, "{}", v1.text);
    assert_eq!(v1.json["errors"][0]["code"], "invalid_type", "{}", v1.text);
    // A whole number out of range is out of range, in both.
    let zero = check(&|b| b["item"][0]["quantity"] = json!({"value": 0}));
    assert_eq!(
        rule_codes(&post(zero).await),
        [(
            "out_of_range".to_owned(),
            "CoverageEligibilityRequest.item[0].quantity.value".to_owned()
        )]
    );
}

/// A query parameter the handler requires is required in the OpenAPI document too; leaving it
/// out is still 422 `required`.
async fn required_query_parameters_are_published_as_required(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let doc = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(doc.status.as_u16(), 200);
    for path in ["/fhir/r4/Coverage", "/v1/coverages"] {
        let parameter = doc.json["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "beneficiary")
            .unwrap_or_else(|| panic!("no beneficiary on {path}"))
            .clone();
        assert_eq!(parameter["in"], "query", "{path}: {parameter}");
        assert_eq!(parameter["required"], true, "{path}: {parameter}");
        assert_eq!(parameter["schema"]["type"], "string", "{path}: {parameter}");
    }
    let token = app.token("mut-a", "registry:read");
    let fhir = app.get("/fhir/r4/Coverage", &token).await;
    assert_eq!(rule_codes(&fhir), [("required".to_owned(), String::new())]);
    let v1 = app.get("/v1/coverages", &token).await;
    assert_eq!(
        v1.problem(422, "validation_failed")["errors"][0]["field"],
        "/query/beneficiary"
    );
}

/// A coding's `system` or `code` of the wrong JSON type, or a `coding` that is not an array, is
/// `invalid_type` where it is wrong, not a missing coding; nothing is written.
async fn a_mistyped_coding_is_named_where_it_is_wrong(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let patient = json!({"reference": format!("Patient/{}", s.principal)});
    let claims = app.count("claims").await;
    let cases = [
        (
            json!({"coding": [{"system": 7, "code": "consultation"}]}),
            "category.coding[0].system",
        ),
        (
            json!({"coding": [{"system": "urn:passerelle:category", "code": ["consultation"]}]}),
            "category.coding[0].code",
        ),
        (json!({"coding": [{"code": 12}]}), "category.coding[0].code"),
        (json!({"coding": {"code": "consultation"}}), "category.coding"),
        (json!({"coding": ["consultation"]}), "category.coding[0]"),
    ];
    for (n, (category, at)) in cases.into_iter().enumerate() {
        let mut claim = fhir_claim(
            &format!("EXT-CD{n}"),
            &s.principal,
            json!([item(1, "CONS", "consultation", 1, 5000)]),
        );
        claim["item"][0]["category"] = category.clone();
        let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some(&format!("cd{n}")), &claim).await;
        assert_eq!(
            rule_codes(&reply),
            [("invalid_type".to_owned(), format!("Claim.item[0].{at}"))],
            "{category}"
        );
        let mut check = eligibility_request(patient.clone(), "2026-06-01", "consultation", Some(5000));
        check["item"][0]["category"] = category.clone();
        let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &check).await;
        assert_eq!(
            rule_codes(&reply),
            [(
                "invalid_type".to_owned(),
                format!("CoverageEligibilityRequest.item[0].{at}")
            )],
            "{category}"
        );
    }
    // A null system is an absent one: the coding counts as the category's.
    let mut claim = fhir_claim(
        "EXT-CD8",
        &s.principal,
        json!([item(1, "CONS", "consultation", 1, 5000)]),
    );
    claim["item"][0]["category"] = json!({"coding": [{"system": null, "code": "consultation"}]});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("cd8"), &claim).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let claims = claims + 1;
    // A coding of another system, well typed, still leaves the category missing.
    let mut claim = fhir_claim(
        "EXT-CD9",
        &s.principal,
        json!([item(1, "CONS", "consultation", 1, 5000)]),
    );
    claim["item"][0]["category"] = json!({"coding": [{"system": "urn:other", "code": 7}]});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("cd9"), &claim).await;
    assert_eq!(
        rule_codes(&reply),
        [("required".to_owned(), "Claim.item[0].category".to_owned())]
    );
    assert_eq!(app.count("claims").await, claims);
}

/// A Claim's `item.quantity` and a check's are FHIR Quantities: a bare number, a string or an
/// array is refused at the element, never read as absent (which would bill one unit).
async fn a_quantity_must_be_a_quantity(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let patient = json!({"reference": format!("Patient/{}", s.principal)});
    let claims = app.count("claims").await;
    for (n, quantity) in [json!(3), json!("3"), json!([{"value": 3}]), json!(true)]
        .into_iter()
        .enumerate()
    {
        let items = json!([item(1, "CONS", "consultation", 1, 5000)]);
        let mut claim = fhir_claim(&format!("EXT-QT{n}"), &s.principal, items);
        claim["item"][0]["quantity"] = quantity.clone();
        let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some(&format!("qt{n}")), &claim).await;
        assert_eq!(
            rule_codes(&reply),
            [("invalid_type".to_owned(), "Claim.item[0].quantity".to_owned())],
            "{quantity}"
        );
        let mut check = eligibility_request(patient.clone(), "2026-06-01", "consultation", Some(5000));
        check["item"][0]["quantity"] = quantity.clone();
        let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &check).await;
        assert_eq!(
            rule_codes(&reply),
            [(
                "invalid_type".to_owned(),
                "CoverageEligibilityRequest.item[0].quantity".to_owned()
            )],
            "{quantity}"
        );
    }
    // A Quantity without its value: how many units is not said, so it is asked for.
    let items = json!([item(1, "CONS", "consultation", 1, 5000)]);
    let mut claim = fhir_claim("EXT-QT8", &s.principal, items);
    claim["item"][0]["quantity"] = json!({"unit": "box"});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("qt8"), &claim).await;
    assert_eq!(
        rule_codes(&reply),
        [("required".to_owned(), "Claim.item[0].quantity.value".to_owned())]
    );
    let mut check = eligibility_request(patient.clone(), "2026-06-01", "consultation", Some(5000));
    check["item"][0]["quantity"] = json!({"valeur": 3});
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &check).await;
    assert_eq!(
        rule_codes(&reply),
        [(
            "required".to_owned(),
            "CoverageEligibilityRequest.item[0].quantity.value".to_owned()
        )]
    );
    assert_eq!(app.count("claims").await, claims);
    // Absent or null: one unit, as documented.
    let mut claim = fhir_claim(
        "EXT-QT9",
        &s.principal,
        json!([item(1, "CONS", "consultation", 1, 5000)]),
    );
    claim["item"][0]["quantity"] = Value::Null;
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("qt9"), &claim).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_eq!(
        adjudication(&reply.json["item"][0], "submitted", None)["amount"]["value"],
        5000
    );
    let mut check = eligibility_request(patient.clone(), "2026-06-01", "consultation", Some(5000));
    check["item"][0]["quantity"] = Value::Null;
    let reply = fhir_post(app, "/fhir/r4/CoverageEligibilityRequest", &token, None, &check).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(
        benefit(&reply.json["insurance"][0], "submitted")["allowedMoney"]["value"],
        5000
    );
}

/// More items than a `/v1` claim takes is one issue naming the limit, whatever the items are;
/// within the limits, an answer lists at most 100 faults and says how many more there are, so
/// that it stays a readable OperationOutcome.
async fn a_long_claim_is_told_its_limit(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let claims = app.count("claims").await;
    for n in [1001, 2300] {
        let zeros = Value::Array(vec![json!(0); n]);
        let claim = fhir_claim(&format!("EXT-L{n}"), &s.principal, zeros);
        let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some(&format!("l{n}")), &claim).await;
        assert_eq!(
            rule_codes(&reply),
            [("invalid_length".to_owned(), "Claim.item".to_owned())],
            "{n}"
        );
        let text = reply.json["issue"][0]["details"]["text"].as_str().unwrap();
        assert!(text.contains("1000"), "{text}");
    }
    // A thousand wrong items: the first 100 faults, then how many more.
    let claim = fhir_claim("EXT-L1000", &s.principal, Value::Array(vec![json!(0); 1000]));
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("l1000"), &claim).await;
    let found = rule_codes(&reply);
    assert_eq!(found.len(), 101, "{}", reply.text);
    assert_eq!(found[0], ("invalid_type".to_owned(), "Claim.item[0]".to_owned()));
    assert_eq!(found[99], ("invalid_type".to_owned(), "Claim.item[99]".to_owned()));
    assert_eq!(found[100], ("too_many_errors".to_owned(), "Claim".to_owned()));
    let last = &reply.json["issue"][100];
    assert_eq!(last["code"], "too-costly");
    assert!(last["details"]["text"].as_str().unwrap().contains("900"), "{last}");
    // Diagnoses past /v1's 100: the limit alone.
    let mut many = fhir_claim("EXT-L5", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    many["diagnosis"] = Value::Array(vec![json!(0); 5000]);
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("l5"), &many).await;
    assert_eq!(
        rule_codes(&reply),
        [("invalid_length".to_owned(), "Claim.diagnosis".to_owned())],
        "{}",
        reply.text
    );
    // Items that are not a list: said so, not called missing.
    let mut single = fhir_claim("EXT-L8", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    single["item"] = json!({"sequence": 1});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("l8"), &single).await;
    assert_eq!(
        rule_codes(&reply),
        [("invalid_type".to_owned(), "Claim.item".to_owned())],
        "{}",
        reply.text
    );
    // A sequence is a whole number however written; text is no number, and a time that is no
    // time is no dateTime.
    let mut odd = fhir_claim("EXT-L9", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    odd["item"][0]["sequence"] = json!("1");
    odd["item"][0]["servicedDate"] = json!("2026-06-01T25:99:00Z");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("l9"), &odd).await;
    let mut found = rule_codes(&reply);
    found.sort();
    assert_eq!(
        found,
        [
            ("invalid_date".to_owned(), "Claim.item[0].servicedDate".to_owned()),
            ("invalid_type".to_owned(), "Claim.item[0].sequence".to_owned()),
        ],
        "{}",
        reply.text
    );
    odd["item"][0]["sequence"] = json!(1.0);
    odd["item"][0]["servicedDate"] = json!("2026-06-01T09:30:00+00:00");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("l10"), &odd).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    // Not a list at all: said so, never read as no diagnosis.
    many["diagnosis"] = json!("J06.9");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("l7"), &many).await;
    assert_eq!(
        rule_codes(&reply),
        [("invalid_type".to_owned(), "Claim.diagnosis".to_owned())],
        "{}",
        reply.text
    );
    // Within it, each wrong one is named.
    many["diagnosis"] = Value::Array(vec![json!(0); 100]);
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("l6"), &many).await;
    let found = rule_codes(&reply);
    assert_eq!(found.len(), 100, "{}", reply.text);
    assert_eq!(found[0], ("invalid_type".to_owned(), "Claim.diagnosis[0]".to_owned()));
    // A billablePeriod.start that is no date is said once, not once per item that needs it.
    let mut items = json!([
        item(1, "CONS", "consultation", 1, 100),
        item(2, "CONS", "consultation", 1, 100),
        item(3, "CONS", "consultation", 1, 100)
    ]);
    for item in items.as_array_mut().unwrap() {
        item.as_object_mut().unwrap().remove("servicedDate");
    }
    let mut period = fhir_claim("EXT-L6", &s.principal, items);
    period["billablePeriod"] = json!({"start": 20260601});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("l6"), &period).await;
    assert_eq!(
        rule_codes(&reply),
        [("invalid_type".to_owned(), "Claim.billablePeriod.start".to_owned())]
    );
    assert_eq!(app.count("claims").await, claims + 1, "EXT-L9 alone, sent right");
}

/// `GET /fhir/r4/Coverage/{id}`: the references the façade writes (`Coverage/<id>`) resolve,
/// with the visibility and audit of `GET /v1/coverages/{id}`.
async fn a_coverage_is_read_as_v1_reads_it(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let metadata = app.send(app.request(Method::GET, "/fhir/r4/metadata")).await;
    let coverage = metadata.json["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Coverage")
        .unwrap()
        .clone();
    let interactions: Vec<&str> = coverage["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert!(interactions.contains(&"read"), "{coverage}");

    let mut_a = app.token("mut-a", "registry:read");
    let search = app
        .get(&format!("/fhir/r4/Coverage?beneficiary={}", s.principal), &mut_a)
        .await;
    let entry = &search.json["entry"][0];
    let id = entry["resource"]["id"].as_str().unwrap().to_owned();
    let path = format!("/fhir/r4/Coverage/{id}");
    for (who, token) in [
        ("mut-a", mut_a.clone()),
        ("auditor", app.token("audit-x", "registry:read")),
    ] {
        let audited = app.audited().await;
        let v1 = app.get(&format!("/v1/coverages/{id}"), &token).await;
        assert_eq!(v1.status.as_u16(), 200, "{who}: {}", v1.text);
        let v1_audits = app.audited().await - audited;
        let read = app.get(&path, &token).await;
        assert_eq!(read.status.as_u16(), 200, "{who}: {}", read.text);
        assert_eq!(read.header("content-type"), Some(FHIR));
        assert_eq!(read.json, entry["resource"], "{who}: the search's resource");
        assert_eq!(read.json["subscriberId"], "TSV-0001");
        // Audited as /v1 audits it.
        assert_eq!(app.audited().await - audited, 2 * v1_audits, "{who}");
    }
    // A dependant's principal-coverage reference resolves too.
    let spouse = app
        .get(&format!("/fhir/r4/Coverage?beneficiary={}", s.spouse), &mut_a)
        .await;
    let principal = spouse.json["entry"][0]["resource"]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "urn:passerelle:principal-coverage")
        .unwrap()["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = app.get(&format!("/fhir/r4/{principal}"), &mut_a).await;
    assert_eq!(read.status.as_u16(), 200, "{}", read.text);
    assert_eq!(read.json["id"], id.as_str());
    // Another organisation, a provider, an unknown id: 404 as an OperationOutcome, as in /v1.
    for org in ["mut-b", "cms-a", "tg-inam"] {
        let token = app.token(org, "registry:read");
        let hidden = app.get(&path, &token).await;
        assert_eq!(issues(&hidden, 404), [("not-found".to_owned(), String::new())], "{org}");
        let v1 = app.get(&format!("/v1/coverages/{id}"), &token).await;
        assert_eq!(v1.status.as_u16(), 404, "{org}");
    }
    let unknown = app.get("/fhir/r4/Coverage/nobody", &mut_a).await;
    assert_eq!(issues(&unknown, 404)[0].0, "not-found");
    let wrong_scope = app.get(&path, &app.token("mut-a", "claims:read")).await;
    assert_eq!(issues(&wrong_scope, 403)[0].0, "forbidden");
}

/// API.md §4 and §7: `Claim.provider` is judged with the other elements, in one answer: another
/// facility that exists is `not_own_organization`, one that does not `unknown_reference`; an
/// unknown patient is 404 only when nothing else is wrong. Nothing is written.
async fn a_claims_provider_is_judged_with_its_other_elements(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    app.create_org("cms-b", "provider", "TG").await;
    let token = provider(app);
    // A fault of the resource itself, one of the body's rules, and another existing facility.
    let mut body = fhir_claim("EXT-P1", &s.principal, json!([item(1, "CONS", "consultation", 0, 100)]));
    body["use"] = json!("preauthorization");
    body["provider"] = json!({"reference": "Organization/cms-b"});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("p1"), &body).await;
    assert_eq!(
        rule_codes(&reply),
        [
            ("unknown_value".to_owned(), "Claim.use".to_owned()),
            ("out_of_range".to_owned(), "Claim.item[0].quantity.value".to_owned()),
            ("not_own_organization".to_owned(), "Claim.provider".to_owned()),
        ],
        "{}",
        reply.text
    );
    // Alone, it is named the same way; an id no organisation has stays an unknown reference.
    let mut alone = fhir_claim("EXT-P2", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    alone["provider"] = json!({"identifier": {"system": "urn:passerelle:organization", "value": "cms-b"}});
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("p2"), &alone).await;
    assert_eq!(
        rule_codes(&reply),
        [("not_own_organization".to_owned(), "Claim.provider".to_owned())]
    );
    let mut nowhere = fhir_claim("EXT-P3", &s.principal, json!([item(1, "CONS", "consultation", 1, 100)]));
    nowhere["provider"] = json!({"reference": "Organization/cms-nowhere"});
    nowhere["item"][0]["locationCodeableConcept"] = coding("urn:passerelle:care-level", "clinic");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("p3"), &nowhere).await;
    assert_eq!(
        rule_codes(&reply),
        [
            (
                "unknown_value".to_owned(),
                "Claim.item[0].locationCodeableConcept".to_owned()
            ),
            ("unknown_reference".to_owned(), "Claim.provider".to_owned()),
        ],
        "{}",
        reply.text
    );
    // An unknown patient with a fault of the resource: the 422, not the 404.
    let mut unknown = fhir_claim("EXT-P4", "nobody", json!([item(1, "CONS", "consultation", 1, 100)]));
    unknown["status"] = json!("draft");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("p4"), &unknown).await;
    assert_eq!(
        rule_codes(&reply),
        [("unknown_value".to_owned(), "Claim.status".to_owned())]
    );
    unknown["status"] = json!("active");
    let reply = fhir_post(app, "/fhir/r4/Claim", &token, Some("p5"), &unknown).await;
    assert_eq!(issues(&reply, 404)[0].0, "not-found");
    assert_eq!(app.count("claims").await, 0);
}

/// R4 references.html: an absolute reference on this server's base names the same resource as
/// the relative one (scheme and host in any case); one to another server names nothing here.
async fn an_absolute_reference_to_this_server_is_the_relative_one(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let ours = format!("{}/fhir/r4", app.base.replace("http://", "HTTP://"));
    let patient = json!({"reference": format!("{ours}/Patient/{}", s.principal)});
    let asked = eligibility_request(patient.clone(), "2026-06-01", "consultation", Some(10001));
    let relative = eligibility_request(
        json!({"reference": format!("Patient/{}", s.principal)}),
        "2026-06-01",
        "consultation",
        Some(10001),
    );
    let path = "/fhir/r4/CoverageEligibilityRequest";
    let absolute = fhir_post(app, path, &token, None, &asked).await;
    assert_eq!(absolute.status.as_u16(), 200, "{}", absolute.text);
    let plain = fhir_post(app, path, &token, None, &relative).await;
    assert_eq!(absolute.json["insurance"], plain.json["insurance"]);
    assert_eq!(
        absolute.json["patient"]["reference"],
        format!("Patient/{}", s.principal).as_str()
    );

    // A Claim, its patient and provider both absolute, is priced as the relative one.
    let mut claim = fhir_claim(
        "EXT-ABS",
        &s.principal,
        json!([item(1, "CONS", "consultation", 1, 5000)]),
    );
    claim["patient"] = patient;
    claim["provider"] = json!({"reference": format!("{ours}/Organization/cms-a")});
    let created = fhir_post(app, "/fhir/r4/Claim", &token, Some("abs-1"), &claim).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(
        created.json["patient"]["reference"],
        format!("Patient/{}", s.principal).as_str()
    );

    // A Coverage search by the absolute reference finds what the relative one does.
    let found = |beneficiary: String| {
        let q: String = url_escape(&beneficiary);
        async move {
            app.get(&format!("/fhir/r4/Coverage?beneficiary={q}"), &app.operator())
                .await
        }
    };
    let by_absolute = found(format!("{ours}/Patient/{}", s.principal)).await;
    assert_eq!(by_absolute.status.as_u16(), 200, "{}", by_absolute.text);
    let by_relative = found(format!("Patient/{}", s.principal)).await;
    assert_eq!(by_absolute.json["entry"], by_relative.json["entry"]);
    assert!(by_absolute.json["entry"].as_array().is_some_and(|e| !e.is_empty()));

    // Another server's (or another path's) reference is refused where it stands; nothing written.
    let claims = app.count("claims").await;
    for elsewhere in [
        format!("https://registry.example.invalid/fhir/r4/Patient/{}", s.principal),
        format!("{}/fhir/r3/Patient/{}", app.base, s.principal),
    ] {
        let mut other = claim.clone();
        other["identifier"][0]["value"] = json!("EXT-ELSEWHERE");
        other["patient"] = json!({"reference": elsewhere});
        let refused = fhir_post(app, "/fhir/r4/Claim", &token, Some(&format!("x-{elsewhere}")), &other).await;
        assert_eq!(
            rule_codes(&refused),
            [("invalid_reference".to_owned(), "Claim.patient.reference".to_owned())],
            "{}",
            refused.text
        );
        let told = refused.json["issue"][0]["details"]["text"].as_str().unwrap();
        assert!(told.contains(&format!("{}/fhir/r4/Patient/", app.base)), "{told}");
        let search = found(elsewhere.clone()).await;
        assert_eq!(issues(&search, 422)[0].0, "value", "{}", search.text);
    }
    assert_eq!(app.count("claims").await, claims);
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The document's schemas of the two FHIR request bodies say what the façade reads: a body it
/// takes fits its schema (with the elements a client's own R4 model adds, which are ignored), and
/// each fault a schema can state is refused by both the façade and the schema.
async fn the_request_schemas_are_the_facades_rules(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let by_member = json!({"identifier": {"system": "urn:passerelle:member-number:mut-a", "value": "TSV-0001"}});
    let check = eligibility_request(by_member, "2026-06-01", "consultation", Some(10000));
    let claim = fhir_claim(
        "EXT-S1",
        &s.principal,
        json!([item(1, "CONS", "consultation", 1, 10000)]),
    );
    type Change = fn(&mut Value);
    // The façade takes each of these (`fhir_post` holds them to the schema as well).
    let taken: [(&str, &str, Change); 14] = [
        ("eligibility", "as written", |_| {}),
        ("eligibility", "decimals holding whole numbers", |b| {
            b["item"][0]["unitPrice"]["value"] = json!(10000.0);
            b["item"][0]["quantity"] = json!({"value": 2.0, "unit": "acte"});
        }),
        ("eligibility", "elements it does not read", |b| {
            b["extension"] = json!([{"url": "urn:other", "valueString": "x"}]);
            b["item"][0]["extension"]
                .as_array_mut()
                .unwrap()
                .insert(0, json!({"url": "urn:other", "valueBoolean": true}));
            b["item"][0]["productOrService"] = coding("urn:other", "X");
            b["enterer"] = json!({"display": "Guichet 2"});
            b["modifierExtension"] = json!([]);
        }),
        ("claim", "as written", |_| {}),
        (
            "claim",
            "a period of one day, a coding without system, an identifier of another system",
            |b| {
                let item = &mut b["item"][0];
                item.as_object_mut().unwrap().remove("servicedDate");
                item["servicedPeriod"] = json!({"start": "2026-06-01T08:00:00Z", "end": "2026-06-01T09:00:00Z"});
                item["category"] = json!({"coding": [{"code": "consultation"}]});
                item["factor"] = json!(1.0);
                item["net"] = json!({"value": 10000, "currency": "XOF"});
                b["total"] = json!({"value": 10000.0});
                b["provider"]["identifier"] = json!({"system": "urn:registry:facilities", "value": "F-1"});
            },
        ),
        ("claim", "its day from billablePeriod", |b| {
            b["item"][0].as_object_mut().unwrap().remove("servicedDate");
            b["billablePeriod"] = json!({"start": "2026-06-01"});
        }),
        (
            "claim",
            "a reference beside a hospital's own identifier, and what it does not read",
            |b| {
                b["patient"]["identifier"] = json!({"system": "http://his.example.tg/patient-id", "value": "HIS-1"});
                b["patient"]["display"] = json!(7);
                b["identifier"][0]["system"] = json!(7);
                b["identifier"].as_array_mut().unwrap().push(json!(5));
                b["diagnosis"][0]["sequence"] = json!("1");
            },
        ),
        ("claim", "members sent as null", |b| {
            b["item"][0]["unitPrice"]["currency"] = Value::Null;
            b["item"][0]["sequence"] = Value::Null;
            b["provider"] =
                json!({"reference": null, "identifier": {"system": "urn:passerelle:organization", "value": "cms-a"}});
            b["patient"] = json!({"reference": null,
                "identifier": {"system": "urn:passerelle:member-number:mut-a", "value": "TSV-0001"}});
        }),
        ("eligibility", "members sent as null", |b| {
            b["item"][0]["unitPrice"]["currency"] = Value::Null;
            b["patient"]["reference"] = Value::Null;
        }),
        (
            "eligibility",
            "a national id's country within spaces, identifiers after the first of any shape",
            |b| {
                b["patient"] =
                    json!({"identifier": {"system": "urn:passerelle:national-id: TG :NIU", "value": "123456789012"}});
                b["identifier"] = json!([{"value": "CHK-1"}, 5]);
            },
        ),
        (
            "eligibility",
            "an absolute reference on this base with its path in capitals, a null identifier",
            |b| {
                b["patient"] = json!({"reference": "{BASE}/FHIR/R4/Patient/{PRINCIPAL}"});
                b["identifier"] = json!([null]);
            },
        ),
        ("claim", "an organisation's absolute reference in capitals", |b| {
            b["provider"] = json!({"reference": "{BASE}/Fhir/R4/Organization/cms-a"});
        }),
        ("claim", "two items on one day, one within spaces", |b| {
            let mut second = b["item"][0].clone();
            second["sequence"] = json!(2);
            second["servicedDate"] = json!(" 2026-06-01");
            b["item"].as_array_mut().unwrap().push(second);
        }),
        ("eligibility", "a currency within white space as Rust trims it", |b| {
            b["item"][0]["unitPrice"]["currency"] = json!("\u{85}XOF\u{3000}");
            b["servicedDate"] = json!("\t2026-06-01\u{a0}");
        }),
    ];
    // Each is refused by the façade, 422, and by the schema.
    let refused: [(&str, &str, Change); 34] = [
        ("eligibility", "no patient", |b| {
            b.as_object_mut().unwrap().remove("patient");
        }),
        ("eligibility", "another resource type", |b| {
            b["resourceType"] = json!("Claim")
        }),
        ("eligibility", "a draft", |b| b["status"] = json!("draft")),
        ("eligibility", "no purpose", |b| b["purpose"] = json!([])),
        ("eligibility", "an unknown purpose", |b| {
            b["purpose"] = json!(["payment"])
        }),
        ("eligibility", "two items", |b| {
            let item = b["item"][0].clone();
            b["item"].as_array_mut().unwrap().push(item);
        }),
        ("eligibility", "no item", |b| b["item"] = json!([])),
        ("eligibility", "no care level", |b| {
            b["item"][0].as_object_mut().unwrap().remove("extension");
        }),
        ("eligibility", "a fraction of a franc", |b| {
            b["item"][0]["unitPrice"]["value"] = json!(100.5)
        }),
        ("eligibility", "euros", |b| {
            b["item"][0]["unitPrice"]["currency"] = json!("EUR")
        }),
        ("eligibility", "no units", |b| {
            b["item"][0]["quantity"] = json!({"value": 0})
        }),
        ("eligibility", "a bare quantity", |b| {
            b["item"][0]["quantity"] = json!(3)
        }),
        ("eligibility", "a modifier extension", |b| {
            b["item"][0]["modifierExtension"] = json!([{"url": "urn:other", "valueBoolean": true}])
        }),
        (
            "eligibility",
            "a patient by another system",
            |b| b["patient"] = json!({"identifier": {"system": "urn:registry:people", "value": "P-1"}}),
        ),
        ("claim", "a preauthorization", |b| b["use"] = json!("preauthorization")),
        ("claim", "no identifier", |b| b["identifier"] = json!([])),
        ("claim", "no provider", |b| {
            b.as_object_mut().unwrap().remove("provider");
        }),
        ("claim", "a factor of 2", |b| b["item"][0]["factor"] = json!(2)),
        ("claim", "an item without price", |b| {
            b["item"][0].as_object_mut().unwrap().remove("unitPrice");
        }),
        ("claim", "an item without care level", |b| {
            b["item"][0].as_object_mut().unwrap().remove("locationCodeableConcept");
        }),
        ("claim", "101 diagnoses", |b| {
            let one = b["diagnosis"][0].clone();
            b["diagnosis"] = Value::Array(vec![one; 101]);
        }),
        ("claim", "a patient that is no Reference", |b| {
            b["patient"] = json!("Patient/x")
        }),
        ("eligibility", "identifiers that are no list", |b| {
            b["identifier"] = json!({"value": "x"})
        }),
        ("eligibility", "an identifier that is no object", |b| {
            b["identifier"] = json!(["CHK-1"])
        }),
        ("claim", "an identifier without value", |b| {
            b["identifier"] = json!([{"system": "urn:x"}])
        }),
        ("claim", "a negative price", |b| {
            b["item"][0]["unitPrice"]["value"] = json!(-5)
        }),
        ("eligibility", "a price past 10^12", |b| {
            b["item"][0]["unitPrice"]["value"] = json!(1_000_000_000_001_i64)
        }),
        ("eligibility", "a thirteenth month", |b| {
            b["servicedDate"] = json!("2026-13-01")
        }),
        ("claim", "a day that is no date", |b| {
            b["item"][0]["servicedDate"] = json!("yesterday")
        }),
        ("eligibility", "an empty identifier system", |b| {
            b["identifier"] = json!([{"system": "", "value": "x"}])
        }),
        ("claim", "a price without value", |b| {
            b["item"][0]["unitPrice"] = json!({"value": null, "currency": "XOF"})
        }),
        ("eligibility", "a patient named by nothing", |b| {
            b["patient"] = json!({"display": "Kossi"})
        }),
        ("claim", "a provider named by nothing", |b| {
            b["provider"] = json!({"display": "CMS"})
        }),
        ("eligibility", "a currency with a byte order mark", |b| {
            b["item"][0]["unitPrice"]["currency"] = json!("XOF\u{feff}")
        }),
    ];
    let path = |kind: &str| match kind {
        "claim" => "/fhir/r4/Claim",
        _ => "/fhir/r4/CoverageEligibilityRequest",
    };
    let mut sent = 0;
    // What a change cannot know: this server's base and the person's id.
    let placed = |body: Value| -> Value {
        let text = body
            .to_string()
            .replace("{BASE}", &app.base)
            .replace("{PRINCIPAL}", &s.principal);
        serde_json::from_str(&text).unwrap()
    };
    for (kind, what, change) in taken {
        let mut body = if kind == "claim" { claim.clone() } else { check.clone() };
        change(&mut body);
        let mut body = placed(body);
        if kind == "claim" {
            sent += 1;
            body["identifier"][0]["value"] = json!(format!("EXT-S{sent}"));
        }
        let key = format!("s{sent}");
        let key = (kind == "claim").then_some(key.as_str());
        let reply = fhir_post(app, path(kind), &token, key, &body).await;
        assert!(reply.status.is_success(), "{kind}, {what}: {}", reply.text);
    }
    for (i, (kind, what, change)) in refused.into_iter().enumerate() {
        let mut body = if kind == "claim" { claim.clone() } else { check.clone() };
        change(&mut body);
        let key = format!("refused-{i}");
        let reply = fhir_post(app, path(kind), &token, Some(&key), &body).await;
        assert_eq!(reply.status.as_u16(), 422, "{kind}, {what}: {}", reply.text);
        assert!(
            conformance::check_at(&request_schema(path(kind)), &body).is_err(),
            "{kind}, {what}: the schema takes what the façade refuses"
        );
    }
}

on_both_databases!(
    the_request_schemas_are_the_facades_rules,
    an_absolute_reference_to_this_server_is_the_relative_one,
    a_mistyped_coding_is_named_where_it_is_wrong,
    a_claims_provider_is_judged_with_its_other_elements,
    people_and_coverages_read_as_fhir,
    eligibility_answers_as_v1_does,
    claims_are_priced_as_v1_prices_them,
    a_claim_the_mutuelle_rejects_reads_as_decided,
    idempotency_faults_name_the_header,
    eligibility_faults_name_the_value,
    required_query_parameters_are_published_as_required,
    a_quantity_must_be_a_quantity,
    a_long_claim_is_told_its_limit,
    a_coverage_is_read_as_v1_reads_it,
);
