//! FHIR errors: every problem+json answer on a `/fhir` path is rewritten as an
//! `OperationOutcome`, with the same status and headers. The handlers, extractors and fallbacks
//! stay those of `/v1`, so both forms refuse the same things for the same reasons.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{CodeableConcept, Coding};
use super::FHIR_JSON;
use crate::problem::{Lang, PROBLEM_JSON};
use passerelle_domain::error::FieldError;

/// Codes of `details`: the problem's `code` (API.md §4), or for a broken rule the rule's.
pub const PROBLEM_SYSTEM: &str = "urn:passerelle:problem";

/// Most faults an OperationOutcome lists; a last issue (`too_many_errors`) says how many more.
pub const MAX_ISSUES: usize = crate::problem::MAX_LISTED_ERRORS;

/// The most of a problem document read to rewrite it: far beyond what [`MAX_ISSUES`] faults
/// take; a larger one is answered with a generic outcome of the same status.
const READ_LIMIT: usize = 16 << 20;

/// One thing that went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Issue {
    /// `error`, or `fatal` for a failure of the service itself (500, 503).
    pub severity: &'static str,
    /// FHIR's issue type: `structure`, `login`, `forbidden`, `not-found`, `deleted` (a person
    /// whose personal data was erased), `not-supported`,
    /// `conflict`, `duplicate`, `too-long`, `required`, `value`, `invalid`, `transient`,
    /// `throttled`, `exception`, or `too-costly` on the last issue of an outcome that lists
    /// only the first 100 faults (details `too_many_errors`, saying how many more).
    pub code: &'static str,
    /// The service's stable code (`urn:passerelle:problem`) and the message, in the language
    /// of `Accept-Language`.
    pub details: IssueDetails,
    /// `request_id: <X-Request-Id>`, and the header or query parameter at fault, if any.
    pub diagnostics: String,
    /// The element at fault, as a FHIRPath expression (`Claim.item[0].unitPrice`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

/// A coded detail and its text.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssueDetails {
    /// The code, in `urn:passerelle:problem`: `not_found`, `required`, `out_of_range`…
    pub coding: Vec<Coding>,
    /// What is wrong, for people.
    pub text: String,
}

/// The body of every error on `/fhir/r4` (`application/fhir+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "value",
    "details": {"coding": [{"system": "urn:passerelle:problem", "code": "unknown_value"}],
                "text": "doit être l'une des valeurs health_post, health_center, hospital, university_hospital"},
    "diagnostics": "request_id: 0193a5b2-7c1e-7d3a-9f00-2b1c4e5d6f70",
    "expression": ["Claim.item[0].locationCodeableConcept"]}]}))]
pub struct OperationOutcome {
    /// `OperationOutcome`.
    pub resource_type: &'static str,
    /// Every fault: one per broken rule of a request (at most 100, then one saying how many
    /// more), else one.
    pub issue: Vec<Issue>,
}

#[derive(Deserialize)]
struct ProblemIn {
    code: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    errors: Option<Vec<FieldIn>>,
}

#[derive(Deserialize)]
struct FieldIn {
    field: String,
    code: String,
    message: String,
}

fn issue_type(problem_code: &str) -> &'static str {
    match problem_code {
        "malformed_request" => "structure",
        "unauthorized" => "login",
        "forbidden" => "forbidden",
        "not_found" => "not-found",
        // R4's IssueType for content that existed and was deleted.
        "personal_data_erased" => "deleted",
        "method_not_allowed" | "unsupported_media_type" | "not_acceptable" => "not-supported",
        "conflict" | "precondition_failed" | "idempotency_key_reused" => "conflict",
        "payload_too_large" => "too-long",
        "precondition_required" => "required",
        "unavailable" => "transient",
        "request_timeout" => "timeout",
        "rate_limited" => "throttled",
        "validation_failed" => "invalid",
        _ => "exception",
    }
}

fn rule_type(rule: &str) -> &'static str {
    match rule {
        "required" => "required",
        "unknown_field" | "invalid_type" | "ambiguous_person" => "structure",
        "duplicate" | "external_id_taken" => "duplicate",
        "too_many_errors" => "too-costly",
        "unsupported_modifier" | "not_supported" => "not-supported",
        _ => "value",
    }
}

/// The header a problem without field errors is about, as a broken rule at a header names it
/// (`/header/Idempotency-Key`), or `""`. The only header a `/fhir` request must carry is
/// `Idempotency-Key` (on `POST /fhir/r4/Claim`): its absence (428) and its reuse with another
/// request (422) are its faults.
fn header_at_fault(problem_code: &str) -> &'static str {
    match problem_code {
        "precondition_required" | "idempotency_key_reused" => "/header/Idempotency-Key",
        _ => "",
    }
}

/// A JSON Pointer into a `resource` sent as the body, as the FHIRPath of the same element:
/// `/item/0/unitPrice` → `Claim.item[0].unitPrice`. Faults found before a request is read into
/// its `/v1` form (a NUL, a body that is not an object) carry such pointers.
fn fhirpath(resource: &str, pointer: &str) -> String {
    let mut path = resource.to_owned();
    for segment in pointer.split('/').skip(1) {
        let name = segment.replace("~1", "/").replace("~0", "~");
        if name.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() {
            path.push_str(&format!("[{name}]"));
        } else {
            path.push('.');
            path.push_str(&name);
        }
    }
    path
}

/// The problem code of a status, for a problem document that could not be read.
fn problem_code(status: u16) -> &'static str {
    match status {
        400 => "malformed_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        412 => "precondition_failed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_failed",
        428 => "precondition_required",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "internal_error",
    }
}

/// The outcome for a problem document; `resource` is the type of the request's body, if any.
fn outcome(mut problem: ProblemIn, resource: Option<&str>, lang: Lang) -> OperationOutcome {
    // Faults found before a request is read (a NUL in each of thousands of strings) are not
    // bounded by the reading: the first ones are listed, then how many more.
    if let Some(errors) = problem.errors.as_mut().filter(|e| e.len() > MAX_ISSUES + 1) {
        let more = FieldError::too_many("", errors.len() - MAX_ISSUES, false);
        errors.truncate(MAX_ISSUES);
        errors.push(FieldIn {
            field: more.field,
            code: more.code,
            message: lang.pick(&more.en, &more.fr).to_owned(),
        });
    }
    let severity = match problem.code.as_str() {
        "internal_error" | "unavailable" => "fatal",
        _ => "error",
    };
    let diagnostics = format!("request_id: {}", problem.request_id);
    let issue = |code: &'static str, detail: &str, text: String, at: &str| {
        // A FHIRPath names an element of the resource; a header or query parameter is a
        // JSON Pointer (`/header/Idempotency-Key`) and goes in the diagnostics.
        let fhirpath = at.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        Issue {
            severity,
            code,
            details: IssueDetails {
                coding: CodeableConcept::of(PROBLEM_SYSTEM, detail).coding,
                text,
            },
            diagnostics: if fhirpath || at.is_empty() {
                diagnostics.clone()
            } else {
                format!("{diagnostics}; at: {at}")
            },
            expression: if fhirpath { vec![at.to_owned()] } else { Vec::new() },
        }
    };
    let issues = match problem.errors {
        Some(errors) if !errors.is_empty() => errors
            .into_iter()
            .map(|e| {
                let at = match resource {
                    Some(r) if !e.field.starts_with("/header/") && !e.field.starts_with("/query/") => {
                        if e.field.is_empty() || e.field.starts_with('/') {
                            fhirpath(r, &e.field)
                        } else {
                            e.field
                        }
                    }
                    _ => e.field,
                };
                issue(rule_type(&e.code), &e.code, e.message, &at)
            })
            .collect(),
        _ => vec![issue(
            issue_type(&problem.code),
            &problem.code,
            problem.detail,
            header_at_fault(&problem.code),
        )],
    };
    OperationOutcome {
        resource_type: "OperationOutcome",
        issue: issues,
    }
}

/// The OperationOutcome of a problem document, for the OpenAPI examples: the same rewriting
/// as [`rewrite`] does for a response.
pub fn from_problem(problem: &serde_json::Value) -> serde_json::Value {
    serde_json::from_value::<ProblemIn>(problem.clone())
        .ok()
        .and_then(|p| serde_json::to_value(outcome(p, None, Lang::default())).ok())
        .unwrap_or_default()
}

/// The outcome of a response whose problem document could not be read: its status, its
/// request id, and no more.
fn generic(status: u16, request_id: &str, lang: Lang) -> OperationOutcome {
    let detail = lang.pick(
        "The request failed; the details of the failure could not be given.",
        "La requête a échoué ; le détail de l'échec n'a pas pu être donné.",
    );
    let problem = ProblemIn {
        code: problem_code(status).to_owned(),
        detail: detail.to_owned(),
        request_id: request_id.to_owned(),
        errors: None,
    };
    outcome(problem, None, lang)
}

/// Rewrites the problem documents of `/fhir` paths; passes everything else through.
pub async fn rewrite(request: Request, next: Next) -> Response {
    // Every `/v1` request passes here, the eligibility checks among them: nothing else is done
    // for them.
    if !request.uri().path().starts_with("/fhir/") {
        return next.run(request).await;
    }
    // The resource a POST sends: the last segment of its path (`/fhir/r4/Claim`).
    let resource = (request.method() == axum::http::Method::POST)
        .then(|| request.uri().path().rsplit('/').next().map(str::to_owned))
        .flatten();
    let lang = Lang::negotiate(
        request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if !is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Problem documents are a few hundred bytes, or a few KiB with their faults; the limit
    // only guards the read. One that cannot be read or understood still answers a FHIR client
    // in FHIR, with its status.
    let problem = axum::body::to_bytes(body, READ_LIMIT)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ProblemIn>(&bytes).ok());
    let outcome = match problem {
        Some(problem) => outcome(problem, resource.as_deref(), lang),
        None => {
            let request_id = parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            generic(parts.status.as_u16(), request_id, lang)
        }
    };
    let body = serde_json::to_vec(&outcome).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(code: &str, errors: Option<Vec<(&str, &str)>>) -> ProblemIn {
        ProblemIn {
            code: code.into(),
            detail: "detail".into(),
            request_id: "r1".into(),
            errors: errors.map(|e| {
                e.into_iter()
                    .map(|(field, code)| FieldIn {
                        field: field.into(),
                        code: code.into(),
                        message: "message".into(),
                    })
                    .collect()
            }),
        }
    }

    #[test]
    fn each_broken_rule_is_an_issue_at_its_element() {
        let out = outcome(
            problem(
                "validation_failed",
                Some(vec![
                    ("Claim.item[0].unitPrice", "out_of_range"),
                    ("/header/Idempotency-Key", "invalid_format"),
                    ("Claim.patient", "required"),
                ]),
            ),
            None,
            Lang::En,
        );
        let codes: Vec<_> = out.issue.iter().map(|i| i.code).collect();
        assert_eq!(codes, ["value", "value", "required"]);
        assert_eq!(out.issue[0].expression, ["Claim.item[0].unitPrice"]);
        assert!(out.issue[1].expression.is_empty());
        assert_eq!(out.issue[1].diagnostics, "request_id: r1; at: /header/Idempotency-Key");
        assert_eq!(out.issue[2].details.coding[0].code, "required");
    }

    #[test]
    fn pointers_into_the_body_become_fhirpaths() {
        let out = outcome(
            problem(
                "validation_failed",
                Some(vec![
                    ("/item/0/unitPrice/value", "invalid_character"),
                    ("", "invalid_type"),
                    ("/query/_count", "out_of_range"),
                    ("/a~1b", "invalid_character"),
                ]),
            ),
            Some("Claim"),
            Lang::En,
        );
        let at: Vec<_> = out
            .issue
            .iter()
            .map(|i| i.expression.first().cloned().unwrap_or_default())
            .collect();
        assert_eq!(at, ["Claim.item[0].unitPrice.value", "Claim", "", "Claim.a/b"]);
    }

    #[test]
    fn other_problems_are_one_issue_with_their_code() {
        let out = outcome(problem("not_found", None), None, Lang::En);
        assert_eq!(out.issue.len(), 1);
        assert_eq!((out.issue[0].severity, out.issue[0].code), ("error", "not-found"));
        assert_eq!(out.issue[0].details.text, "detail");
        let out = outcome(problem("internal_error", None), None, Lang::En);
        assert_eq!((out.issue[0].severity, out.issue[0].code), ("fatal", "exception"));
        assert_eq!(out.issue[0].diagnostics, "request_id: r1");
    }

    #[test]
    fn a_missing_or_reused_idempotency_key_names_the_header() {
        for code in ["precondition_required", "idempotency_key_reused"] {
            let out = outcome(problem(code, None), Some("Claim"), Lang::En);
            assert_eq!(out.issue[0].diagnostics, "request_id: r1; at: /header/Idempotency-Key");
            assert!(out.issue[0].expression.is_empty());
        }
    }

    #[test]
    fn thousands_of_faults_are_listed_a_hundred_then_how_many_more() {
        let faults: Vec<(String, &str)> = (0..2300).map(|i| (format!("/item/{i}"), "invalid_type")).collect();
        let faults = faults.iter().map(|(f, c)| (f.as_str(), *c)).collect();
        let out = outcome(problem("validation_failed", Some(faults)), Some("Claim"), Lang::En);
        assert_eq!(out.issue.len(), MAX_ISSUES + 1);
        assert_eq!(out.issue[99].expression, ["Claim.item[99]"]);
        let last = &out.issue[100];
        assert_eq!(
            (last.code, last.details.coding[0].code.as_str()),
            ("too-costly", "too_many_errors")
        );
        assert_eq!(last.expression, ["Claim"]);
        assert!(
            last.details.text.starts_with("2200 more faults"),
            "{}",
            last.details.text
        );
        // A list already bounded (a hundred and the count) is kept as it is.
        let faults: Vec<(String, &str)> = (0..=MAX_ISSUES)
            .map(|i| (format!("/item/{i}"), "invalid_type"))
            .collect();
        let faults = faults.iter().map(|(f, c)| (f.as_str(), *c)).collect();
        let out = outcome(problem("validation_failed", Some(faults)), Some("Claim"), Lang::En);
        assert_eq!(out.issue.len(), MAX_ISSUES + 1);
        assert_eq!(out.issue[100].code, "structure");
    }

    /// A problem document too large to read, or not one, is still an OperationOutcome with its
    /// status and request id: never an empty body.
    #[tokio::test]
    async fn an_unreadable_problem_is_still_an_outcome() {
        use axum::http::StatusCode;
        use tower::ServiceExt;

        let problem = |body: Vec<u8>| {
            move || async move {
                let mut response = Response::new(Body::from(body));
                *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
                headers.insert("x-request-id", HeaderValue::from_static("r9"));
                response
            }
        };
        let mut huge = br#"{"code": "validation_failed", "errors": []"#.to_vec();
        huge.resize(READ_LIMIT + 1, b' ');
        huge.push(b'}');
        let app = axum::Router::new()
            .route("/fhir/r4/Claim", axum::routing::post(problem(huge)))
            .route("/fhir/r4/Other", axum::routing::post(problem(b"not json".to_vec())))
            .layer(axum::middleware::from_fn(rewrite));
        for path in ["/fhir/r4/Claim", "/fhir/r4/Other"] {
            let request = Request::builder()
                .method("POST")
                .uri(path)
                .header(header::ACCEPT_LANGUAGE, "en")
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(response.headers()[header::CONTENT_TYPE], FHIR_JSON);
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            let out: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(out["resourceType"], "OperationOutcome", "{path}");
            let issue = &out["issue"][0];
            assert_eq!(issue["code"], "invalid");
            assert_eq!(issue["details"]["coding"][0]["code"], "validation_failed");
            assert_eq!(issue["diagnostics"], "request_id: r9");
            assert!(issue["details"]["text"]
                .as_str()
                .unwrap()
                .starts_with("The request failed"));
        }
    }
}
