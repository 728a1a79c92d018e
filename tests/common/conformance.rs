//! Every answer a black-box test receives is held to the committed OpenAPI document: its
//! operation lists the status, the document names the media type for that status and lists every
//! header sent, the headers it marks `required` are sent, and a JSON body validates against the
//! documented schema. An answer the document does not describe fails the
//! test that met it, so the document cannot drift from what the service says, only from what no
//! test asks.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use reqwest::header::{HeaderMap, HeaderName, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(include_str!("../../openapi/openapi.json")).expect("committed openapi.json"));

/// The committed document, parsed once for every test that reads it.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// Headers of HTTP itself, which any answer may carry and an API document does not list.
const TRANSPORT: [&str; 7] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "date",
    "vary",
];

/// Compiled validators by the JSON Pointer of their schema in the document.
static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = LazyLock::new(Default::default);

/// What is wrong with this answer by the document, if anything. A path the document does not
/// hold (a mistyped route, `/docs/…`) and a method it does not offer (405) are outside it.
pub fn check(method: &Method, path: &str, status: StatusCode, headers: &HeaderMap, body: &str) -> Result<(), String> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Some(template) = template_of(path) else {
        return Ok(());
    };
    // HEAD is GET without the body; the document lists GET.
    let (method, head) = match *method {
        Method::HEAD => (Method::GET, true),
        ref m => (m.clone(), false),
    };
    let verb = method.as_str().to_ascii_lowercase();
    let operation_pointer = format!("/paths/{}/{verb}", escape(template));
    let Some(operation) = DOCUMENT.pointer(&operation_pointer) else {
        return if status == StatusCode::METHOD_NOT_ALLOWED {
            Ok(())
        } else {
            Err(format!(
                "{method} {template} is not in the document, yet answered {status}"
            ))
        };
    };
    let code = status.as_str();
    let range = format!("{}XX", &code[..1]);
    let Some((key, documented)) = [code, range.as_str(), "default"]
        .into_iter()
        .find_map(|k| operation["responses"].get(k).map(|r| (k, r)))
    else {
        return Err(format!(
            "{method} {template} answered {status}, which its responses do not list"
        ));
    };
    let mut response_pointer = format!("{operation_pointer}/responses/{}", escape(key));
    let mut response = documented;
    if let Some(target) = documented.get("$ref").and_then(Value::as_str) {
        response_pointer = target.trim_start_matches('#').to_owned();
        response = DOCUMENT
            .pointer(&response_pointer)
            .ok_or_else(|| format!("{method} {template} {status}: dangling {target}"))?;
    }
    let listed = response.get("headers").and_then(Value::as_object);
    for name in headers.keys().map(HeaderName::as_str) {
        let documented = listed.is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(name)));
        if !documented && !TRANSPORT.contains(&name) {
            return Err(format!(
                "{method} {template} answered {status} with a header {name}, which the document does not give"
            ));
        }
    }
    // A header the document marks `required` is on every answer of that status.
    for (name, header) in listed.into_iter().flatten() {
        let sent = headers.keys().any(|k| k.as_str().eq_ignore_ascii_case(name));
        if header.get("required") == Some(&Value::Bool(true)) && !sent {
            return Err(format!(
                "{method} {template} answered {status} without the header {name}, which the document says it always carries"
            ));
        }
    }
    let content = response.get("content").and_then(Value::as_object);
    if body.is_empty() {
        return match content {
            Some(c) if !c.is_empty() && !head => Err(format!(
                "{method} {template} answered {status} without a body, where the document gives one"
            )),
            _ => Ok(()),
        };
    }
    let Some(content) = content else {
        return Err(format!(
            "{method} {template} answered {status} with a body the document does not give"
        ));
    };
    let media = content_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let Some(described) = content.get(&media) else {
        let listed: Vec<&String> = content.keys().collect();
        return Err(format!(
            "{method} {template} answered {status} as {media:?}; the document lists {listed:?}"
        ));
    };
    if !(media == "application/json" || media.ends_with("+json")) || described.get("schema").is_none() {
        return Ok(());
    }
    let instance: Value = serde_json::from_str(body)
        .map_err(|e| format!("{method} {template} answered {status} as {media} with a body that is not JSON: {e}"))?;
    let schema_pointer = format!("{response_pointer}/content/{}/schema", escape(&media));
    refusals(&schema_pointer, &instance).map_err(|faults| {
        format!(
            "{method} {template} answered {status} with a body its schema refuses:\n  {faults}\nbody: {}",
            truncated(body)
        )
    })
}

/// What is wrong with `instance` by the document's schema `name` (`#/components/schemas/…`),
/// for what the service sends outside an answer: a webhook delivery's body.
pub fn check_schema(name: &str, instance: &Value) -> Result<(), String> {
    let pointer = format!("/components/schemas/{}", escape(name));
    if DOCUMENT.pointer(&pointer).is_none() {
        return Err(format!("the document has no schema {name}"));
    }
    refusals(&pointer, instance).map_err(|faults| {
        format!(
            "{name} refuses:\n  {faults}\nvalue: {}",
            truncated(&instance.to_string())
        )
    })
}

/// What is wrong with `instance` by the schema at `pointer` in the document.
pub fn check_at(pointer: &str, instance: &Value) -> Result<(), String> {
    refusals(pointer, instance)
}

/// The first faults of `instance` by the schema at `pointer`, one per line.
fn refusals(pointer: &str, instance: &Value) -> Result<(), String> {
    let faults: Vec<String> = validator(pointer)?
        .iter_errors(instance)
        .take(5)
        .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
        .collect();
    if faults.is_empty() {
        Ok(())
    } else {
        Err(faults.join("\n  "))
    }
}

/// The document's path that names `path`; a literal segment wins over a parameter, as routing
/// does (`/v1/registrations/batches` before `/v1/registrations/{id}`).
fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    DOCUMENT["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

/// The validator of the schema at `pointer`, which resolves its references within the whole
/// document (the schema is the document itself, pointing at the part that applies).
fn validator(pointer: &str) -> Result<Arc<jsonschema::Validator>, String> {
    let mut cache = VALIDATORS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(pointer) {
        return Ok(found.clone());
    }
    let mut schema = DOCUMENT.clone();
    // A fragment is a URI's: the braces of path parameters are percent-encoded.
    let fragment = pointer.replace('%', "%25").replace('{', "%7B").replace('}', "%7D");
    schema["$ref"] = Value::String(format!("#{fragment}"));
    let built = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("the schema at {pointer} does not compile: {e}"))?;
    let built = Arc::new(built);
    cache.insert(pointer.to_owned(), built.clone());
    Ok(built)
}

/// A JSON Pointer token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn truncated(body: &str) -> &str {
    match body.char_indices().nth(600) {
        Some((at, _)) => &body[..at],
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = r#"{"id": "mut-a", "kind": "mutuelle", "country": "TG", "name": "Mutuelle A", "registration_number": null, "created_at": "2026-01-01T00:00:00Z"}"#;

    /// The headers every answer carries (`required` in the document).
    const ALWAYS: [(&str, &str); 2] = [("x-request-id", "r"), ("cache-control", "no-store")];

    fn org(status: u16, media: &str, body: &str) -> Result<(), String> {
        org_with(status, &[("content-type", media), ALWAYS[0], ALWAYS[1]], body)
    }

    fn org_with(status: u16, headers: &[(&'static str, &str)], body: &str) -> Result<(), String> {
        let status = StatusCode::from_u16(status).unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        check(&Method::GET, "/v1/organizations/mut-a", status, &map, body)
    }

    fn bare(method: Method, path: &str, status: StatusCode) -> Result<(), String> {
        check(&method, path, status, &HeaderMap::new(), "")
    }

    #[test]
    fn a_documented_answer_passes() {
        org(200, "application/json", ORG).unwrap();
        org(200, "application/json; charset=utf-8", ORG).unwrap();
        org(
            404,
            "application/problem+json",
            r#"{"type": "about:blank", "title": "Not found", "status": 404, "detail": "No such organisation.", "instance": "/v1/organizations/mut-a", "code": "not_found", "request_id": "r"}"#,
        )
        .unwrap();
        // Outside the document: a path it does not hold, a method a path does not offer.
        bare(Method::GET, "/nowhere", StatusCode::NOT_FOUND).unwrap();
        bare(Method::PUT, "/v1/organizations/mut-a", StatusCode::METHOD_NOT_ALLOWED).unwrap();
    }

    #[test]
    fn what_the_document_does_not_say_fails() {
        let missing = ORG.replace(r#""kind": "mutuelle", "#, "");
        assert!(org(200, "application/json", &missing).unwrap_err().contains("kind"));
        let mistyped = ORG.replace(r#""TG""#, "5");
        assert!(org(200, "application/json", &mistyped)
            .unwrap_err()
            .contains("/country"));
        let bad_date = ORG.replace("2026-01-01T00:00:00Z", "yesterday");
        assert!(org(200, "application/json", &bad_date)
            .unwrap_err()
            .contains("/created_at"));
        assert!(org(200, "text/plain", ORG).unwrap_err().contains("text/plain"));
        assert!(org(200, "application/json", "").unwrap_err().contains("without a body"));
        assert!(org(418, "application/json", ORG).unwrap_err().contains("do not list"));
        // Headers: the documented ones and HTTP's own pass, any other fails.
        let json = ("content-type", "application/json");
        org_with(
            200,
            &[
                json,
                ("x-request-id", "r"),
                ("cache-control", "no-store"),
                ("date", "x"),
            ],
            ORG,
        )
        .unwrap();
        let fault = org_with(200, &[json, ALWAYS[0], ALWAYS[1], ("retry-after", "1")], ORG).unwrap_err();
        assert!(fault.contains("retry-after"), "{fault}");
        // A header the document marks `required` must be sent.
        for (missing, kept) in [(ALWAYS[0], ALWAYS[1]), (ALWAYS[1], ALWAYS[0])] {
            let fault = org_with(200, &[json, kept], ORG).unwrap_err();
            assert!(fault.contains("without the header"), "{fault}");
            assert!(fault.to_ascii_lowercase().contains(missing.0), "{fault}");
        }
        let undocumented = bare(Method::DELETE, "/v1/organizations/mut-a", StatusCode::NO_CONTENT);
        assert!(undocumented.unwrap_err().contains("not in the document"));
    }

    #[test]
    fn a_literal_segment_wins_over_a_parameter() {
        assert_eq!(
            template_of("/v1/registrations/batches"),
            Some("/v1/registrations/batches")
        );
        assert_eq!(
            template_of("/v1/registrations/batches/b1"),
            Some("/v1/registrations/batches/{id}")
        );
        assert_eq!(template_of("/v1/audit-events/verify"), Some("/v1/audit-events/verify"));
        assert_eq!(template_of("/v1/organizations/"), None);
    }
}
