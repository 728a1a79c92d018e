//! API.md §3 and §4, where the walkthrough found them broken: a body that is not JSON is told in
//! the caller's language and our own words; a whole number is judged as one, however written;
//! a retry that writes `2.0` for `2` is the same request; a cursor works on its own list only.

use passerelle_adapters::Backend;
use passerelle_tests::{conformance, on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::claims::{claim, provider, setup, submit, submit_text};

/// `(field, code)` of every error of a 422.
fn errors(reply: &Reply) -> Vec<(String, String)> {
    reply.field_codes()
}

async fn a_body_that_is_not_json_is_told_in_our_words(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post = |body: String, lang: &str| {
        app.send(
            app.request(Method::POST, "/v1/organizations")
                .bearer_auth(app.operator())
                .header("content-type", "application/json")
                .header("accept-language", lang)
                .body(body),
        )
    };
    let fr = post("{bad".into(), "fr").await;
    fr.problem(400, "malformed_request");
    assert_eq!(
        fr.json["detail"], "Le corps n'est pas du JSON valide (ligne 1, colonne 2).",
        "{}",
        fr.text
    );
    let en = post("{bad".into(), "en").await;
    assert_eq!(
        en.json["detail"], "The body is not valid JSON (line 1, column 2).",
        "{}",
        en.text
    );
    // Nested 5000 deep: said so, with no path into the body.
    let deep = format!("{}{}", "{\"a\":[".repeat(5000), "]}".repeat(5000));
    let deep = post(deep, "en").await;
    deep.problem(400, "malformed_request");
    let detail = deep.json["detail"].as_str().unwrap();
    assert_eq!(detail, "The body nests arrays and objects more than 127 deep.");
    assert!(deep.text.len() < 1000, "{}", deep.text);
    let empty = post(String::new(), "fr").await;
    empty.problem(400, "malformed_request");
    assert_eq!(empty.json["detail"], "Le corps est vide : un objet JSON est attendu.");
    // The media types axum's extractor took are taken still.
    let fhir_typed = app
        .send(
            app.request(Method::POST, "/v1/organizations")
                .bearer_auth(app.operator())
                .header("content-type", "application/vnd.test+json; charset=utf-8")
                .body(r#"{"id": "mut-x", "kind": "mutuelle", "country": "TG", "name": "X"}"#),
        )
        .await;
    assert_eq!(fhir_typed.status.as_u16(), 201, "{}", fhir_typed.text);
}

async fn whole_numbers_are_judged_as_whole_numbers(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let op = app.token("operator", "registry:read claims:read");
    // A limit that is no number is a type error; a whole number outside 1–500, however long,
    // is out of range.
    for (query, code) in [
        ("limit=abc", "invalid_type"),
        ("limit=2.5", "invalid_type"),
        ("limit=", "invalid_type"),
        ("limit=0", "out_of_range"),
        ("limit=501", "out_of_range"),
        ("limit=99999999999999999999", "out_of_range"),
        ("limit=-99999999999999999999", "out_of_range"),
    ] {
        for list in ["/v1/organizations", "/v1/claims"] {
            let reply = app.get(&format!("{list}?{query}"), &op).await;
            assert_eq!(
                errors(&reply),
                [("/query/limit".to_owned(), code.to_owned())],
                "{list}?{query}"
            );
        }
    }
    // Body fields: past what a 64-bit integer holds is still a whole number, out of the field's
    // range, and the message gives that range.
    let token = provider(app);
    let check = |amount: &str| {
        let body = format!(
            r#"{{"beneficiary": {{"id": "{}"}}, "care_level": "health_center", "category": "consultation", "amount_xof": {amount}}}"#,
            s.principal
        );
        app.send(
            app.request(Method::POST, "/v1/eligibility-checks")
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .header("accept-language", "en")
                .body(body),
        )
    };
    for amount in [
        "99999999999999999999",
        "18446744073709551615",
        "-99999999999999999999",
        "1e300",
    ] {
        let reply = check(amount).await;
        assert_eq!(
            errors(&reply),
            [("/amount_xof".to_owned(), "out_of_range".to_owned())],
            "{amount}"
        );
        let message = reply.json["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("must be from 0 to"), "{message}");
    }
    // However a whole number is written, it is one: in range it is read, out of range said so.
    assert_eq!(check("10000.0").await.status.as_u16(), 200);
    assert_eq!(check("1e4").await.status.as_u16(), 200);
    let reply = check("1e13").await;
    assert_eq!(errors(&reply), [("/amount_xof".to_owned(), "out_of_range".to_owned())]);
    // A fraction is one however close to a whole number: past a double's precision too, where
    // the parser alone would read 10000.00000000000001 as 10000 and 1e-400 as 0.
    for amount in [
        "1.5",
        "\"10\"",
        "10000.00000000000001",
        "9999.9999999999999999",
        "1e-400",
    ] {
        let reply = check(amount).await;
        assert_eq!(
            errors(&reply),
            [("/amount_xof".to_owned(), "invalid_type".to_owned())],
            "{amount}"
        );
    }
    assert_eq!(check("10000").await.status.as_u16(), 200);
}

/// A claim line's quantity or price out of range is said once, not again as a line total too
/// large; a total too large from quantity and price both in range is said as such.
async fn a_line_out_of_range_is_one_error(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let line = |quantity: &str, price: &str| -> Value {
        serde_json::from_str(&format!(
            r#"[{{"code": "CONS", "category": "consultation", "quantity": {quantity}, "unit_price_xof": {price}}}]"#
        ))
        .unwrap()
    };
    let reply = submit(
        app,
        &token,
        "l1",
        &claim("L-1", &s.spouse, "2026-06-01", line("99999999999999999999", "1000")),
    )
    .await;
    assert_eq!(
        errors(&reply),
        [("/lines/0/quantity".to_owned(), "out_of_range".to_owned())]
    );
    let reply = submit(
        app,
        &token,
        "l2",
        &claim("L-2", &s.spouse, "2026-06-01", line("2", "1000000000000")),
    )
    .await;
    assert_eq!(
        errors(&reply),
        [("/lines/0/unit_price_xof".to_owned(), "line_total_too_large".to_owned())]
    );
    // A price or a quantity a hair from a whole number is a fraction, refused on its own field,
    // and the claim is not written: its key is free for the corrected request.
    // Written as text: a `Value` would hold the parser's rounding of these numbers.
    let body = claim("L-3", &s.spouse, "2026-06-01", line("\"QTY\"", "\"PRICE\""))
        .to_string()
        .replace("\"QTY\"", "2.0000000000000001")
        .replace("\"PRICE\"", "999999999999.99999");
    let reply = submit_text(app, &token, "l3", body).await;
    assert_eq!(
        errors(&reply),
        [
            ("/lines/0/quantity".to_owned(), "invalid_type".to_owned()),
            ("/lines/0/unit_price_xof".to_owned(), "invalid_type".to_owned())
        ]
    );
    // Prices the parser's fast float reading rounds to a whole double (99.99999999999999 reads as
    // 100.0): fractions all the same, never priced as whole francs.
    for price in ["99.99999999999999", "10000.000000000001"] {
        let body = claim("L-3", &s.spouse, "2026-06-01", line("1", "\"PRICE\""))
            .to_string()
            .replace("\"PRICE\"", price);
        let reply = submit_text(app, &token, "l3", body).await;
        assert_eq!(
            errors(&reply),
            [("/lines/0/unit_price_xof".to_owned(), "invalid_type".to_owned())],
            "{price}"
        );
    }
    let reply = submit(
        app,
        &token,
        "l3",
        &claim("L-3", &s.spouse, "2026-06-01", line("2", "1000")),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
}

fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// A FHIR Claim of one item whose quantity is `quantity`, as written.
fn fhir_claim(patient: &str, quantity: Value) -> Value {
    json!({"resourceType": "Claim", "status": "active", "use": "claim", "created": "2026-06-01",
           "type": coding("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
           "identifier": [{"system": "urn:passerelle:claim-id:cms-a", "value": "EXT-Q2"}],
           "patient": {"reference": format!("Patient/{patient}")},
           "provider": {"reference": "Organization/cms-a"},
           "priority": {"coding": [{"code": "normal"}]},
           "insurance": [{"sequence": 1, "focal": true, "coverage": {"display": "any"}}],
           "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": coding("http://hl7.org/fhir/sid/icd-10", "J06.9")}],
           "item": [{"sequence": 1, "servicedDate": "2026-06-01",
                     "productOrService": {"coding": [{"code": "PARA"}], "text": "Acte PARA"},
                     "category": coding("urn:passerelle:category", "pharmacy"),
                     "locationCodeableConcept": coding("urn:passerelle:care-level", "health_center"),
                     "quantity": {"value": quantity}, "unitPrice": {"value": 1000.0, "currency": "XOF"}}]})
}

/// API.md §3 and §7: a retry that writes `2.0` where the first wrote `2` (or `1000` for
/// `1000.0`) says the same, and replays the first response.
async fn a_retry_writing_2_for_2_0_is_the_same_request(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let token = provider(app);
    let post = |body: String| {
        app.send(
            app.request(Method::POST, "/fhir/r4/Claim")
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .header("idempotency-key", "q2")
                .body(body),
        )
    };
    let first_body = fhir_claim(&s.principal, json!(2.0)).to_string();
    assert!(first_body.contains("\"value\":2.0"), "{first_body}");
    let first = post(first_body).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    let claims = app.count("claims").await;
    let retry_body = fhir_claim(&s.principal, json!(2)).to_string().replace("1000.0", "1e3");
    let retry = post(retry_body).await;
    assert_eq!(retry.status.as_u16(), 201, "{}", retry.text);
    assert_eq!(retry.json["id"], first.json["id"]);
    assert_eq!(app.count("claims").await, claims, "nothing written twice");
    // Another quantity is another request.
    let other = post(fhir_claim(&s.principal, json!(3)).to_string()).await;
    assert_eq!(other.status.as_u16(), 422, "{}", other.text);
    assert!(other.text.contains("idempotency_key_reused"), "{}", other.text);
}

async fn a_cursor_works_on_its_own_list_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for id in ["mut-a", "mut-b", "mut-c"] {
        app.create_org(id, "mutuelle", "TG").await;
    }
    let op = app.token("operator", "registry:read audit:read claims:read");
    let first = app.get("/v1/organizations?limit=1", &op).await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text);
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    let next = app
        .get(&format!("/v1/organizations?limit=1&cursor={cursor}"), &op)
        .await;
    assert_eq!(next.status.as_u16(), 200, "{}", next.text);
    assert_ne!(next.json["items"][0]["id"], first.json["items"][0]["id"]);
    for other in ["/v1/claims", "/v1/audit-events", "/v1/products", "/v1/webhooks"] {
        let token = if other == "/v1/webhooks" {
            app.token("mut-a", "webhooks:write")
        } else {
            op.clone()
        };
        let reply = app.get(&format!("{other}?cursor={cursor}"), &token).await;
        assert_eq!(
            errors(&reply),
            [("/query/cursor".to_owned(), "invalid_cursor".to_owned())],
            "{other}"
        );
    }
    // Its filters are part of a list: the same filters in another order are the same list,
    // other filters another.
    let filtered = app.get("/v1/organizations?kind=mutuelle&limit=1", &op).await;
    let cursor = filtered.json["next_cursor"].as_str().unwrap().to_owned();
    let same = app
        .get(&format!("/v1/organizations?limit=1&cursor={cursor}&kind=mutuelle"), &op)
        .await;
    assert_eq!(same.status.as_u16(), 200, "{}", same.text);
    // A parameter the list does not read (a proxy's tracking tag) is ignored, on the page that
    // hands out the cursor as on the one that takes it.
    let tagged = app
        .get(
            &format!("/v1/organizations?utm_source=x&limit=1&cursor={cursor}&kind=mutuelle"),
            &op,
        )
        .await;
    assert_eq!(tagged.status.as_u16(), 200, "{}", tagged.text);
    assert_eq!(tagged.json, same.json);
    let tagged_first = app.get("/v1/organizations?kind=mutuelle&limit=1&ref=mail", &op).await;
    let tagged_cursor = tagged_first.json["next_cursor"].as_str().unwrap();
    let untagged = app
        .get(
            &format!("/v1/organizations?kind=mutuelle&limit=1&cursor={tagged_cursor}"),
            &op,
        )
        .await;
    assert_eq!(untagged.json, same.json, "{}", untagged.text);
    for other in ["/v1/organizations?limit=1", "/v1/organizations?kind=scheme&limit=1"] {
        let reply = app.get(&format!("{other}&cursor={cursor}"), &op).await;
        assert_eq!(
            errors(&reply),
            [("/query/cursor".to_owned(), "invalid_cursor".to_owned())],
            "{other}"
        );
    }
    // A cursor handed out before cursors named their list (`c1`, then the key in hex) still
    // works where it came from.
    let key = first.json["items"][0]["id"].as_str().unwrap();
    let legacy: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    let old = app
        .get(&format!("/v1/organizations?limit=1&cursor=c1{legacy}"), &op)
        .await;
    assert_eq!(old.status.as_u16(), 200, "{}", old.text);
    assert_eq!(old.json["items"], next.json["items"]);
}

/// The path template and operation of an operation id in the document.
fn operation(id: &str) -> (&'static str, &'static str, &'static Value) {
    conformance::document()["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(template, item)| {
            let item = item.as_object().unwrap();
            item.iter()
                .map(move |(method, op)| (template.as_str(), method.as_str(), op))
        })
        .find(|(_, _, op)| op["operationId"] == id)
        .unwrap_or_else(|| panic!("no operation {id}"))
}

/// Follows every link to a read that the document gives the answer `reply` of operation `id`
/// to `path`: each parameter evaluated on the live answer (or the request's path), the read must
/// answer 200. Returns how many were followed.
async fn follow_links(app: &TestApp, token: &str, id: &str, path: &str, reply: &Reply) -> usize {
    let (template, _, op) = operation(id);
    let asked: std::collections::HashMap<&str, &str> = template
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, p)| Some((t.strip_prefix('{')?.strip_suffix('}')?, p)))
        .collect();
    let links = &op["responses"][reply.status.as_str()]["links"];
    let mut followed = 0;
    for (name, link) in links
        .as_object()
        .unwrap_or_else(|| panic!("{id} {}: no links", reply.status))
    {
        let (target, method, target_op) = operation(link["operationId"].as_str().unwrap());
        if method != "get" {
            continue;
        }
        let mut url = target.to_owned();
        let mut query = Vec::new();
        for (parameter, expression) in link["parameters"].as_object().unwrap() {
            let expression = expression.as_str().unwrap();
            let value = match expression.strip_prefix("$response.body#") {
                Some(pointer) => reply.json.pointer(pointer).and_then(Value::as_str),
                None => expression
                    .strip_prefix("$request.path.")
                    .and_then(|p| asked.get(p).copied()),
            };
            let value = value.unwrap_or_else(|| panic!("{name}: {expression} is nothing in {}", reply.text));
            let place = target_op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == parameter.as_str())
                .unwrap();
            if place["in"] == "path" {
                url = url.replace(&format!("{{{parameter}}}"), value);
            } else {
                query.push(format!("{parameter}={value}"));
            }
        }
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let read = app.get(&url, token).await;
        assert_eq!(read.status.as_u16(), 200, "{id} → {name}: GET {url}: {}", read.text);
        followed += 1;
    }
    followed
}

/// The document's links lead where they say: from a registration to its principal and their
/// coverage, from a person to their coverages and their FHIR Patient, from a coverage to its
/// contributions and its FHIR Coverage, from a claim to itself and its ClaimResponse, from a new
/// organisation to itself, and from a claim's read to its ClaimResponse.
async fn links_lead_where_they_say(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let mut_a = app.token("mut-a", "registry:read registry:write");
    let reply = crate::registry::register(
        app,
        "mut-a",
        "links",
        &crate::registry::household(&s.product, "TSV-0777", "987654321098"),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let mut followed = follow_links(app, &mut_a, "register", "/v1/registrations", &reply).await;
    let person = format!(
        "/v1/beneficiaries/{}",
        reply.json["members"][0]["beneficiary"]["id"].as_str().unwrap()
    );
    let read = app.get(&person, &mut_a).await;
    followed += follow_links(app, &mut_a, "get_beneficiary", &person, &read).await;
    let coverage = format!(
        "/v1/coverages/{}",
        reply.json["members"][0]["coverage"]["id"].as_str().unwrap()
    );
    let read = app.get(&coverage, &mut_a).await;
    followed += follow_links(app, &mut_a, "get_coverage", &coverage, &read).await;
    let token = provider(app);
    let lines = json!([{"code": "CS", "category": "consultation", "quantity": 1, "unit_price_xof": 10000}]);
    let submitted = submit(
        app,
        &token,
        "links",
        &claim("EXT-L1", &s.principal, "2026-06-01", lines),
    )
    .await;
    assert_eq!(submitted.status.as_u16(), 201, "{}", submitted.text);
    followed += follow_links(app, &token, "submit_claim", "/v1/claims", &submitted).await;
    let read = format!("/v1/claims/{}", submitted.json["id"].as_str().unwrap());
    let claim_read = app.get(&read, &token).await;
    followed += follow_links(app, &token, "get_claim", &read, &claim_read).await;
    let body = json!({"id": "cms-links", "kind": "provider", "country": "TG", "name": "CMS des liens"});
    let created = app.post("/v1/organizations", &app.operator(), &body).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    followed += follow_links(
        app,
        &app.operator(),
        "create_organization",
        "/v1/organizations",
        &created,
    )
    .await;
    assert_eq!(followed, 2 + 2 + 2 + 2 + 1 + 1);
}

on_both_databases!(
    links_lead_where_they_say,
    a_line_out_of_range_is_one_error,
    a_body_that_is_not_json_is_told_in_our_words,
    whole_numbers_are_judged_as_whole_numbers,
    a_retry_writing_2_for_2_0_is_the_same_request,
    a_cursor_works_on_its_own_list_only,
);
