//! The OpenAPI document's examples are answers the service gives: each operation's 422
//! `validation_failed` example is sent as the request its summary names, and the live answer must
//! be the example, in both languages, but for its `request_id`.

use passerelle_adapters::Backend;
use passerelle_tests::{conformance, on_both_databases, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::claims::{accept_by_mut_a, claim, provider, setup, submit};

static DOCUMENT: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| serde_json::from_str(include_str!("../openapi/openapi.json")).unwrap());

/// Every example of the document fits the schema it illustrates: each request body's and each
/// response's (shared ones included), and each component schema's own.
#[test]
fn every_example_fits_its_schema() {
    let escape = |token: &str| token.replace('~', "~0").replace('/', "~1");
    let mut checked = 0;
    let mut faults = Vec::new();
    let mut check_media = |at: String, content: &Value| {
        for (media, body) in content.as_object().into_iter().flatten() {
            if body.get("schema").is_none() {
                continue;
            }
            let schema = format!("{at}/content/{}/schema", escape(media));
            let examples = body["examples"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, e)| (name.clone(), &e["value"]))
                .chain(body.get("example").map(|e| ("example".to_owned(), e)));
            for (name, example) in examples {
                checked += 1;
                if let Err(fault) = conformance::check_at(&schema, example) {
                    faults.push(format!("{at} {media} {name}: {fault}"));
                }
            }
        }
    };
    for (template, item) in DOCUMENT["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let at = format!("/paths/{}/{method}", escape(template));
            check_media(format!("{at}/requestBody"), &operation["requestBody"]["content"]);
            for (status, response) in operation["responses"].as_object().unwrap() {
                if response.get("$ref").is_none() {
                    check_media(format!("{at}/responses/{status}"), &response["content"]);
                }
            }
        }
    }
    for (name, response) in DOCUMENT["components"]["responses"].as_object().unwrap() {
        check_media(format!("/components/responses/{name}"), &response["content"]);
    }
    for (name, schema) in DOCUMENT["components"]["schemas"].as_object().unwrap() {
        let examples = schema["examples"].as_array().into_iter().flatten();
        for example in examples.chain(schema.get("example")) {
            checked += 1;
            if let Err(fault) = conformance::check_schema(name, example) {
                faults.push(format!("schema {name}: {fault}"));
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
    // 530 of media and 84 of schemas when written.
    assert!(checked > 600, "{checked}");
}

/// How to send an operation's documented request that breaks its rules: the caller and scopes
/// allowed to call it, the path with ids that exist, and the body (`None`: a query's fault).
struct Trigger {
    caller: &'static str,
    scopes: &'static str,
    path: String,
    body: Option<Value>,
    /// A CSV file sent instead of a JSON body.
    csv: Option<&'static str>,
    /// How the example's summary names the request.
    named: &'static str,
}

/// The ids the triggers need: a person, a coverage and a product of mut-a, a claim waiting for INAM, one
/// waiting for mut-a, and a settlement of mut-a.
struct World {
    person: String,
    coverage: String,
    product: String,
    awaiting_base: String,
    awaiting_mutuelle: String,
    settlement: String,
}

async fn world(app: &TestApp, s: &crate::claims::Setup) -> World {
    let line = json!([{"code": "C", "category": "consultation", "quantity": 1, "unit_price_xof": 1000}]);
    let mut claims = Vec::new();
    for (i, person) in [&s.principal, &s.spouse, &s.spouse].into_iter().enumerate() {
        let body = claim(&format!("EX-{i}"), person, "2026-06-01", line.clone());
        let reply = submit(app, &provider(app), &format!("ex-{i}"), &body).await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
        claims.push(reply.json);
    }
    assert_eq!(claims[0]["status"], "awaiting_base");
    assert_eq!(claims[1]["status"], "awaiting_complementary");
    accept_by_mut_a(app, claims[2]["id"].as_str().unwrap()).await;
    let settled = app
        .post(
            "/v1/settlements",
            &app.token("mut-a", "settlements:write"),
            &json!({"payee": "cms-a", "period_start": "2026-06-01", "period_end": "2026-06-30"}),
        )
        .await;
    assert_eq!(settled.status.as_u16(), 201, "{}", settled.text);
    let coverages = app
        .get(
            &format!("/v1/coverages?beneficiary={}", s.principal),
            &app.token("mut-a", "registry:read"),
        )
        .await;
    let coverage = coverages.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["organization"] == "mut-a")
        .unwrap_or_else(|| panic!("{}", coverages.text));
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    World {
        person: s.principal.clone(),
        coverage: id(coverage),
        product: s.product.clone(),
        awaiting_base: id(&claims[0]),
        awaiting_mutuelle: id(&claims[1]),
        settlement: id(&settled.json),
    }
}

fn trigger(method: &str, template: &str, w: &World) -> Option<Trigger> {
    let body = |caller, scopes, path: String| Trigger {
        caller,
        scopes,
        path,
        body: Some(json!({})),
        csv: None,
        named: "the body `{}`",
    };
    let query = |path: String, named| Trigger {
        caller: "operator",
        scopes: "admin registry:read claims:read audit:read settlements:write webhooks:write",
        path,
        body: None,
        csv: None,
        named,
    };
    let filled = template.replace("{id}", "01937f0e-0000-7000-8000-000000000000");
    Some(match (method, template) {
        ("get", "/v1/beneficiaries") => query(filled, "no `national_id`"),
        ("get", "/v1/settlements/{id}") => query(
            format!("/v1/settlements/{}?separator=tab", w.settlement),
            "`?separator=tab`",
        ),
        ("get", _) => query(format!("{filled}?limit=0"), "`?limit=0`"),
        ("post", "/v1/organizations") => Trigger {
            caller: "operator",
            scopes: "admin",
            path: filled,
            body: Some(json!({"id": "mut-tsevie", "kind": "mutuelle", "country": "tg"})),
            csv: None,
            named: "",
        },
        ("post", "/v1/registrations/batches") => Trigger {
            body: None,
            csv: Some("household,foo\n"),
            named: "the CSV file `household,foo`",
            ..body(
                "mut-a",
                "registry:write",
                format!("/v1/registrations/batches?product={}", w.product),
            )
        },
        ("post", "/v1/claims") => body("cms-a", "claims:submit", filled),
        ("post", "/v1/claims/{id}/adjudication") => body(
            "mut-a",
            "claims:adjudicate",
            format!("/v1/claims/{}/adjudication", w.awaiting_mutuelle),
        ),
        ("post", "/v1/claims/{id}/base-adjudication") => body(
            "tg-inam",
            "claims:submit",
            format!("/v1/claims/{}/base-adjudication", w.awaiting_base),
        ),
        ("post", "/v1/coverages") => body("tg-inam", "registry:write", filled),
        ("post", "/v1/coverages/{id}/contributions") => body(
            "mut-a",
            "registry:write",
            format!("/v1/coverages/{}/contributions", w.coverage),
        ),
        ("post", "/v1/coverages/{id}/dependants") => body(
            "mut-a",
            "registry:write",
            format!("/v1/coverages/{}/dependants", w.coverage),
        ),
        ("post", "/v1/eligibility-checks") => body("cms-a", "eligibility:check", filled),
        ("post", "/v1/products") => body("mut-a", "registry:write", filled),
        ("put", "/v1/products/{id}") => body("mut-a", "registry:write", format!("/v1/products/{}", w.product)),
        ("post", "/v1/registrations") => body("mut-a", "registry:write", filled),
        ("post", "/v1/settlements") => body("mut-a", "settlements:write", filled),
        ("post", "/v1/settlements/{id}/payments") => body(
            "mut-a",
            "settlements:write",
            format!("/v1/settlements/{}/payments", w.settlement),
        ),
        ("post", "/v1/webhooks") => body("mut-a", "webhooks:write", filled),
        ("post", "/v1/webhooks/{id}/deliveries/redeliver") => Trigger {
            body: None,
            named: "`?since=yesterday`",
            ..body("mut-a", "webhooks:write", format!("{filled}?since=yesterday"))
        },
        ("post", "/v1/beneficiaries/{id}/merge") => body(
            "mut-a",
            "registry:write",
            format!("/v1/beneficiaries/{}/merge", w.person),
        ),
        ("patch", "/v1/beneficiaries/{id}") => Trigger {
            body: Some(json!({"family_name": null})),
            named: "`{\"family_name\": null}`",
            ..body("mut-a", "registry:write", format!("/v1/beneficiaries/{}", w.person))
        },
        ("patch", "/v1/coverages/{id}") => Trigger {
            body: Some(json!({"status": "paused"})),
            named: "`{\"status\": \"paused\"}`",
            ..body("mut-a", "registry:write", format!("/v1/coverages/{}", w.coverage))
        },
        _ => return None,
    })
}

/// The `validation_failed` examples of an operation's 422, by language, from the operation's own
/// response or the shared one it refers to.
fn documented_examples(response: &Value) -> Vec<(String, Value)> {
    let response = match response["$ref"].as_str() {
        Some(target) => DOCUMENT.pointer(target.trim_start_matches('#')).unwrap(),
        None => response,
    };
    let Some(examples) = response["content"]["application/problem+json"]["examples"].as_object() else {
        return Vec::new();
    };
    examples
        .iter()
        .filter(|(_, e)| e["value"]["code"] == "validation_failed")
        .map(|(_, e)| (e["summary"].as_str().unwrap().to_owned(), e["value"].clone()))
        .collect()
}

async fn every_validation_example_is_an_answer(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let w = world(app, &s).await;
    let mut checked = 0;
    for (template, item) in DOCUMENT["paths"].as_object().unwrap() {
        if !template.starts_with("/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let Some(response) = operation["responses"].get("422") else {
                continue;
            };
            let examples = documented_examples(response);
            if examples.is_empty() {
                continue;
            }
            let t = trigger(method, template, &w)
                .unwrap_or_else(|| panic!("{method} {template}: its 422 example has no request here to send"));
            let token = app.token(t.caller, t.scopes);
            for (summary, example) in examples {
                assert!(summary.contains(t.named), "{method} {template}: {summary}");
                let english = summary.contains("English");
                let mut request = app
                    .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &t.path)
                    .bearer_auth(&token)
                    .header("accept-language", if english { "en" } else { "fr" })
                    .header("idempotency-key", format!("ex-{checked}"))
                    .header("if-match", "*");
                if let Some(body) = &t.body {
                    request = request.json(body);
                }
                if let Some(csv) = t.csv {
                    request = request.header("content-type", "text/csv").body(csv);
                }
                let answer = app.send(request).await;
                assert_eq!(answer.status.as_u16(), 422, "{method} {template}: {}", answer.text);
                let mut live = answer.json.clone();
                let mut documented = example.clone();
                // The document's ids are its examples'; the live answer's are this test's.
                let path = t.path.split('?').next().unwrap();
                assert_eq!(live["instance"], path, "{method} {template}");
                for answer in [&mut live, &mut documented] {
                    answer["request_id"] = Value::Null;
                    answer["instance"] = Value::Null;
                }
                assert_eq!(live, documented, "{method} {template}, {summary}");
                checked += 1;
            }
        }
    }
    // Both languages of every operation of /v1 that lists a 422 (POST /v1/organizations by the
    // shared example), the two reports of a bulk job and its upload included.
    assert_eq!(checked, 2 * 33);
}

/// Every operation is refused, 403, to exactly the kinds of organisation its
/// `x-organization-kinds` leaves out, and answers its documented examples: the one refused kind
/// it shows, and a token without its scope.
async fn every_operation_refuses_the_kinds_it_leaves_out(backend: Backend) {
    let s = setup(backend).await;
    let app = &s.app;
    let callers = [
        ("operator", "operator"),
        ("mutuelle", "mut-a"),
        ("scheme", "tg-inam"),
        ("provider", "cms-a"),
        ("auditor", "audit-x"),
    ];
    let mut refused = 0;
    let mut operations = 0;
    for (template, item) in DOCUMENT["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(kinds) = operation["x-organization-kinds"].as_array() else {
                assert!(
                    operation["responses"].get("403").is_none(),
                    "{method} {template}: a 403 without the kinds it refuses"
                );
                continue;
            };
            operations += 1;
            let scope = operation["security"][0]["bearer"][0].as_str().unwrap();
            let path = template
                .replace("{seq}", "1")
                .replace("{id}", "01937f0e-0000-7000-8000-000000000000")
                .replace("{contribution}", "01937f0e-0000-7000-8000-000000000001");
            let fhir = template.starts_with("/fhir/");
            let media = if fhir {
                "application/fhir+json"
            } else {
                "application/problem+json"
            };
            let examples = &operation["responses"]["403"]["content"][media]["examples"];
            let send = |token: String| {
                let mut request = app
                    .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &path)
                    .bearer_auth(token)
                    .header("accept-language", "en")
                    .header("idempotency-key", uuid::Uuid::now_v7().to_string())
                    .header("if-match", "*");
                if template == "/v1/registrations/batches" && method == "post" {
                    request = request.header("content-type", "text/csv").body("household\n");
                } else if matches!(method.as_str(), "post" | "put" | "patch") {
                    request = request.json(&json!({}));
                }
                app.send(request)
            };
            let same = |live: &Value, documented: &Value| {
                let (mut live, mut documented) = (live.clone(), documented.clone());
                for answer in [&mut live, &mut documented] {
                    answer["request_id"] = Value::Null;
                    answer["instance"] = Value::Null;
                }
                live == documented
            };
            for (kind, org) in callers {
                let answer = send(app.token(org, scope)).await;
                let allowed = kinds.iter().any(|k| k == kind);
                assert_eq!(
                    answer.status.as_u16() == 403,
                    !allowed,
                    "{method} {template} as a {kind}: {}",
                    answer.text
                );
                if allowed {
                    // Without the scope, as the document shows it.
                    let answer = send(app.token(org, "")).await;
                    assert_eq!(answer.status.as_u16(), 403, "{method} {template}: {}", answer.text);
                    if !fhir {
                        let documented = &examples["en"]["value"];
                        let documented = if documented.is_null() {
                            &examples["missing_scope_en"]["value"]
                        } else {
                            documented
                        };
                        assert!(same(&answer.json, documented), "{method} {template}: {}", answer.text);
                    }
                    continue;
                }
                refused += 1;
                if fhir {
                    continue;
                }
                let expected = format!("An organisation of kind {kind} may not do this.");
                assert_eq!(answer.json["detail"], expected, "{method} {template}");
                let documented = &examples["wrong_kind_en"]["value"];
                if documented["detail"] == expected.as_str() {
                    assert!(same(&answer.json, documented), "{method} {template}: {}", answer.text);
                }
            }
            let shows_a_refusal = examples.get("wrong_kind_en").is_some();
            assert_eq!(shows_a_refusal, kinds.len() < callers.len(), "{method} {template}");
        }
    }
    assert_eq!(operations, 55);
    assert!(refused > 60, "{refused}");
}

on_both_databases!(
    every_validation_example_is_an_answer,
    every_operation_refuses_the_kinds_it_leaves_out,
);
